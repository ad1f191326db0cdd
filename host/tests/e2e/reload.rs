//! The config file is watched: tenants are added and changed without a restart; an invalid
//! file is refused and the old config keeps serving.

use std::time::{Duration, Instant};

use wxhost::wechat::{Mode, Reply};

use crate::harness::{KEY_A, Server, account, push, tenant, text};

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn tenants_are_added_changed_and_bad_configs_refused_without_a_restart() {
    let one = tenant("one", "wxone", "tokenone", Some(KEY_A), "safe", &["echo"]);
    let server = Server::start(&one);
    let acc_one = account("wxone", "tokenone", Some(KEY_A), Mode::Safe);
    let acc_two = account("wxtwo", "tokentwo", None, Mode::Plain);
    let (q, b) = push(&acc_two, &text("o", "hi", 1));
    assert_eq!(server.post("two", &q, b).await.0, 404);

    // Add tenant two, and change tenant one's chain.
    let two = tenant("two", "wxtwo", "tokentwo", None, "plain", &["reply-kinds"]);
    let one_changed = tenant(
        "one",
        "wxone",
        "tokenone",
        Some(KEY_A),
        "safe",
        &["reply-kinds", "echo"],
    );
    server.rewrite_config(&format!("{one_changed}{two}"));
    let mut id = 10;
    wait_for("tenant two", async || {
        id += 1;
        let (q, b) = push(&acc_two, &text("o", "text", id));
        server.post("two", &q, b).await.0 == 200
    })
    .await;
    let reply = server.send("one", &acc_one, &text("o", "image", 100)).await;
    assert_eq!(
        reply.map(|r| r.reply),
        Some(Reply::Image {
            media_id: "IMAGE_MEDIA".into()
        })
    );

    // An invalid file is refused; both tenants keep serving.
    server.rewrite_config(&format!("{one_changed}{two}[[tenants]]\nid = \"bad\"\nappid = \"x\"\ntoken = \"tokenbad\"\nencoding_aes_key = \"nope\"\n"));
    wait_for("the refusal", async || {
        server.logs().contains("config change refused")
    })
    .await;
    assert!(
        server.logs().contains("tenants[bad].encoding_aes_key"),
        "{}",
        server.logs()
    );
    assert!(
        server
            .send("one", &acc_one, &text("o", "text", 101))
            .await
            .is_some()
    );
    assert!(
        server
            .send("two", &acc_two, &text("o", "text", 102))
            .await
            .is_some()
    );
}
