//! Two tenants with different keys and chains, isolated from each other.

use wxhost::wechat::{Mode, Reply};

use crate::harness::{KEY_A, KEY_B, Server, account, push, tenant, text};

#[tokio::test]
async fn tenants_have_their_own_keys_chains_and_data() {
    let config = [
        tenant(
            "a",
            "wxaaaa",
            "tokena",
            Some(KEY_A),
            "safe",
            &["guess-number", "echo"],
        ),
        tenant("b", "wxbbbb", "tokenb", Some(KEY_B), "safe", &["echo"]),
    ]
    .concat();
    let server = Server::start(&config);
    let a = account("wxaaaa", "tokena", Some(KEY_A), Mode::Safe);
    let b = account("wxbbbb", "tokenb", Some(KEY_B), Mode::Safe);

    let started = server
        .send("a", &a, &text("o_same", "guess", 1))
        .await
        .expect("reply");
    assert!(matches!(started.reply, Reply::Text { ref content } if content.contains("1 to 100")));
    // Tenant b has its own chain (no game) and its own data.
    let echoed = server
        .send("b", &b, &text("o_same", "50", 2))
        .await
        .expect("reply");
    assert_eq!(echoed.reply, Reply::text("echo: 50"));
    let played = server
        .send("a", &a, &text("o_same", "50", 3))
        .await
        .expect("reply");
    assert!(matches!(played.reply, Reply::Text { ref content } if content.starts_with("50 is")));

    // A push for tenant a sent to tenant b's URL is refused: b's token does not sign it...
    let (query, body) = push(&a, &text("o_same", "hi", 4));
    assert_eq!(server.post("b", &query, body).await.0, 401);
    // ...and a push signed with b's token but encrypted for a does not decrypt for b.
    let forged = account("wxaaaa", "tokenb", Some(KEY_A), Mode::Safe);
    let (query, body) = push(&forged, &text("o_same", "hi", 5));
    let (status, reason) = server.post("b", &query, body).await;
    assert_eq!(status, 400, "{reason}");
}
