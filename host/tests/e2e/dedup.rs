//! WeChat's retries run the plugin once and all get the first reply.

use wxhost::wechat::{Mode, Reply};

use crate::harness::{KEY_A, Server, account, push, text};

#[tokio::test]
async fn the_same_msg_id_six_times_runs_the_plugin_once_and_replays_its_reply() {
    let config = format!(
        "[[tenants]]\nid = \"shop\"\nappid = \"wxshop\"\ntoken = \"tokenshop\"\nmode = \"safe\"\n\
         encoding_aes_key = \"{KEY_A}\"\n[[tenants.plugins]]\nname = \"slow-counter\"\nsettings = {{ spin_ms = 400 }}\n"
    );
    let server = Server::start(&config);
    let acc = account("wxshop", "tokenshop", Some(KEY_A), Mode::Safe);
    // One push, sent as WeChat retries it: the identical request again.
    let (query, body) = push(&acc, &text("o_user", "count me", 777));

    let (a, b, c) = tokio::join!(
        server.post("shop", &query, body.clone()),
        server.post("shop", &query, body.clone()),
        server.post("shop", &query, body.clone()),
    );
    let mut bodies = Vec::new();
    for (status, answer) in [a, b, c] {
        assert_eq!(status, 200, "{answer}");
        bodies.push(answer);
    }
    for _ in 0..3 {
        let (status, answer) = server.post("shop", &query, body.clone()).await;
        assert_eq!(status, 200);
        bodies.push(answer);
    }
    for answer in &bodies {
        let reply = acc
            .read_answer(answer, true)
            .expect("valid encrypted answer")
            .expect("a reply");
        assert_eq!(
            reply.reply,
            Reply::text("run #1"),
            "the plugin ran more than once"
        );
    }
    let distinct: std::collections::HashSet<_> = bodies.iter().collect();
    assert_eq!(distinct.len(), 6, "every answer is encrypted afresh");

    let metrics = server.metrics().await;
    let hits: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("wxhost_dedup_hits_total{tenant=\"shop\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(hits, 5, "{metrics}");

    // A new message id runs the plugin again.
    let reply = server
        .send("shop", &acc, &text("o_user", "again", 778))
        .await;
    assert_eq!(reply.map(|r| r.reply), Some(Reply::text("run #2")));
}
