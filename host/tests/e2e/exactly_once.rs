//! A push runs its chain at most once, every retry gets the first answer, and acknowledged kv
//! writes are kept, whatever a hostile sender or the machine does: clients that hang up
//! mid-chain, replays after the retry TTL and across restarts, captured signatures carrying
//! other bodies, compatible-mode pushes stripped of `Encrypt`, and kill -9.

use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use wxhost::wechat::{CallbackQuery, EnvelopeParams, Mode, Reply};

use crate::harness::{KEY_A, Server, account, push, text};

/// A safe-mode tenant whose chain is the counting plugin (`run #N`, N from kv).
fn counter(spin_ms: u64, top: &str) -> String {
    format!(
        "{top}[[tenants]]\nid = \"shop\"\nappid = \"wxshop\"\ntoken = \"tokenshop\"\nmode = \"safe\"\n\
         encoding_aes_key = \"{KEY_A}\"\n[[tenants.plugins]]\nname = \"slow-counter\"\n\
         settings = {{ spin_ms = {spin_ms} }}\n"
    )
}

fn shop() -> wxhost::wechat::Account {
    account("wxshop", "tokenshop", Some(KEY_A), Mode::Safe)
}

/// The reply in an answer body (`None` for `success`/empty).
fn reply_of(body: &str) -> Option<Reply> {
    shop()
        .read_answer(body, true)
        .unwrap_or_else(|e| panic!("WeChat would not accept {body:?}: {e}"))
        .map(|r| r.reply)
}

/// Sends the push over a raw socket and hangs up after `after`, before the answer.
async fn post_and_hang_up(server: &Server, query: &CallbackQuery, body: &str, after: Duration) {
    let mut socket = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connects");
    let request = format!(
        "POST /wx/shop?{} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        query.to_query_string(),
        server.addr,
        body.len()
    );
    socket
        .write_all(request.as_bytes())
        .await
        .expect("request written");
    tokio::time::sleep(after).await;
    drop(socket);
}

#[tokio::test]
async fn clients_hanging_up_mid_chain_do_not_run_it_again() {
    let server = Server::start(&counter(400, ""));
    let (query, body) = push(&shop(), &text("o_user", "count me", 9001));
    for _ in 0..5 {
        post_and_hang_up(&server, &query, &body, Duration::from_millis(80)).await;
    }
    let (status, answer) = server.post("shop", &query, body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(reply_of(&answer), Some(Reply::text("run #1")));
    let next = server
        .send("shop", &shop(), &text("o_user", "next", 9002))
        .await;
    assert_eq!(next.map(|r| r.reply), Some(Reply::text("run #2")));
}

#[tokio::test]
async fn a_client_hanging_up_leaves_the_chain_to_finish_and_its_answer_for_the_retry() {
    let server = Server::start(&counter(600, ""));
    let (query, body) = push(&shop(), &text("o_user", "count me", 9101));
    post_and_hang_up(&server, &query, &body, Duration::from_millis(200)).await;
    // Once the chain has finished without its request (and is counted, having no request left
    // to count it), the retry gets its answer without running it again.
    let finished = r#"wxhost_requests_total{tenant="shop",outcome="reply"} 1"#;
    let waited = std::time::Instant::now();
    while !server.metrics().await.contains(finished) {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "the push never ran to its end: {}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, answer) = server.post("shop", &query, body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(reply_of(&answer), Some(Reply::text("run #1")));
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"wxhost_requests_total{tenant="shop",outcome="retry_replayed"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_replay_after_the_retry_ttl_inside_the_window_is_not_run() {
    // The shortest TTL the config takes (WeChat retries for about 15 s), and a window a little
    // longer: the replay comes 2 s before the window ends, after the answer is forgotten.
    let server = Server::start(&counter(
        0,
        "timestamp_skew_secs = 20\ndedup_ttl_secs = 15\n",
    ));
    let (query, body) = push(&shop(), &text("o_user", "count me", 9201));
    let (status, answer) = server.post("shop", &query, body.clone()).await;
    assert_eq!(
        (status, reply_of(&answer)),
        (200, Some(Reply::text("run #1")))
    );
    tokio::time::sleep(Duration::from_secs(18)).await;
    let (status, answer) = server.post("shop", &query, body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        reply_of(&answer),
        None,
        "a replay is answered without a reply"
    );
    let next = server
        .send("shop", &shop(), &text("o_user", "next", 9202))
        .await;
    assert_eq!(
        next.map(|r| r.reply),
        Some(Reply::text("run #2")),
        "the replay did not run the plugin"
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"wxhost_requests_total{tenant="shop",outcome="replay_ignored"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_replay_after_a_restart_inside_the_window_is_not_run() {
    for signal in ["TERM", "KILL"] {
        let mut server = Server::start(&counter(0, ""));
        let (query, body) = push(&shop(), &text("o_user", "count me", 9301));
        let (_, answer) = server.post("shop", &query, body.clone()).await;
        assert_eq!(reply_of(&answer), Some(Reply::text("run #1")));
        server.restart(signal);
        let (status, answer) = server.post("shop", &query, body).await;
        assert_eq!(status, 200, "{signal}: {answer}");
        assert_eq!(
            reply_of(&answer),
            None,
            "{signal}: the restarted server knows the push as seen, without its answer"
        );
        let next = server
            .send("shop", &shop(), &text("o_user", "next", 9302))
            .await;
        assert_eq!(
            next.map(|r| r.reply),
            Some(Reply::text("run #2")),
            "after SIG{signal} the replay ran the plugin again"
        );
    }
}

#[tokio::test]
async fn kill_9_after_answered_pushes_loses_none_of_their_writes() {
    let config = format!(
        "[[tenants]]\nid = \"shop\"\nappid = \"wxshop\"\ntoken = \"tokenshop\"\nmode = \"safe\"\n\
         encoding_aes_key = \"{KEY_A}\"\n[[tenants.plugins]]\nname = \"visit-counter\"\n"
    );
    let mut server = Server::start(&config);
    for n in 1..=20u64 {
        let reply = server
            .send("shop", &shop(), &text("o_user", "hello", 9400 + n))
            .await;
        assert_eq!(
            reply.map(|r| r.reply),
            Some(Reply::text(format!("visit #{n}")))
        );
    }
    // Right after the 20th answer, before any periodic commit: only the per-push commits
    // made before each answer left can have kept the writes.
    server.restart("KILL");
    let reply = server
        .send("shop", &shop(), &text("o_user", "after the crash", 9500))
        .await;
    assert_eq!(reply.map(|r| r.reply), Some(Reply::text("visit #21")));
}

#[tokio::test]
async fn a_captured_query_cannot_carry_another_body() {
    let config = "[[tenants]]\nid = \"plain\"\nappid = \"wxplain\"\ntoken = \"tokenplain\"\n\
                  mode = \"plain\"\n[[tenants.plugins]]\nname = \"echo\"\n";
    let server = Server::start(config);
    let plain = account("wxplain", "tokenplain", None, Mode::Plain);
    let (query, body) = push(&plain, &text("o_user", "mine", 9601));
    let (status, _) = server.post("plain", &query, body.clone()).await;
    assert_eq!(status, 200);
    let (_, forged) = push(&plain, &text("o_victim", "not mine", 9602));
    let (status, reason) = server.post("plain", &query, forged).await;
    assert_eq!(
        (status, reason.trim()),
        (401, "signature already used with another body")
    );
    let (status, answer) = server.post("plain", &query, body).await;
    assert_eq!(
        status, 200,
        "the same query with its own body is a retry: {answer}"
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"wxhost_requests_total{tenant="plain",outcome="signature_reused"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_compatible_push_stripped_of_encrypt_is_refused() {
    let config = format!(
        "[[tenants]]\nid = \"compat\"\nappid = \"wxcompat\"\ntoken = \"tokencompat\"\n\
         mode = \"compatible\"\nencoding_aes_key = \"{KEY_A}\"\n[[tenants.plugins]]\nname = \"echo\"\n"
    );
    let server = Server::start(&config);
    let compat = account("wxcompat", "tokencompat", Some(KEY_A), Mode::Compatible);
    let (query, body) = push(&compat, &text("o_user", "hi", 9701));
    let start = body
        .find("<Encrypt>")
        .expect("compatible pushes carry Encrypt");
    let end = body.find("</Encrypt>").expect("closed") + "</Encrypt>".len();
    let stripped = format!("{}{}", &body[..start], &body[end..]);
    let (status, reason) = server.post("compat", &query, stripped).await;
    assert_eq!(status, 400, "{reason}");
    assert!(reason.contains("plaintext push refused"), "{reason}");
}

#[tokio::test]
async fn encrypted_pushes_sharing_a_timestamp_and_nonce_are_both_answered() {
    // Each carries its own msg_signature over its own ciphertext, so neither is a forgery; two
    // plain pushes alike are indistinguishable from one, and the second is refused.
    let server = Server::start(&counter(0, ""));
    let params = EnvelopeParams::fresh(wxhost::clock::unix_now(), &mut rand::rng());
    for (n, id) in [(1, 9801), (2, 9802)] {
        let (query, body) = shop()
            .simulate_push(&text("o_user", "same nonce", id), &params)
            .expect("push");
        let (status, answer) = server.post("shop", &query, body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(reply_of(&answer), Some(Reply::text(format!("run #{n}"))));
    }
}
