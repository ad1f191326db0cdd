//! The HTTP surface: URL verification, refusals with their status, health, metrics, shutdown.

use wxhost::wechat::{CallbackQuery, Mode, signature};

use crate::harness::{KEY_A, Server, account, push, tenant, text};

fn config() -> String {
    [
        tenant(
            "safe",
            "wxsafe",
            "tokensafe",
            Some(KEY_A),
            "safe",
            &["echo"],
        ),
        tenant("plain", "wxplain", "tokenplain", None, "plain", &["echo"]),
    ]
    .concat()
}

#[tokio::test]
async fn url_verification_echoes_exactly_when_signed() {
    let server = Server::start(&config());
    let ts = wxhost::clock::unix_now().to_string();
    let query = [
        ("signature", signature::signature("tokensafe", &ts, "n1")),
        ("timestamp", ts.clone()),
        ("nonce", "n1".to_owned()),
        ("echostr", "3318 9921 echo&more".to_owned()),
    ];
    let response = server
        .http
        .get(server.url("/wx/safe"))
        .query(&query)
        .send()
        .await
        .expect("get");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.expect("body"), "3318 9921 echo&more");
    let bad = [
        ("signature", "0".repeat(40)),
        ("timestamp", ts),
        ("nonce", "n1".into()),
        ("echostr", "x".into()),
    ];
    let response = server
        .http
        .get(server.url("/wx/safe"))
        .query(&bad)
        .send()
        .await
        .expect("get");
    assert_eq!(response.status().as_u16(), 401);
}

#[tokio::test]
async fn bad_input_gets_a_4xx_with_its_reason() {
    let server = Server::start(&config());
    let safe = account("wxsafe", "tokensafe", Some(KEY_A), Mode::Safe);
    let plain = account("wxplain", "tokenplain", None, Mode::Plain);
    let (query, body) = push(&safe, &text("o", "hi", 1));

    assert_eq!(server.post("nobody", &query, body.clone()).await.0, 404);

    let forged = CallbackQuery {
        signature: Some("f".repeat(40)),
        ..query.clone()
    };
    let (status, reason) = server.post("safe", &forged, body.clone()).await;
    assert_eq!((status, reason.trim()), (401, "signature mismatch"));

    let no_params = CallbackQuery::default();
    assert_eq!(server.post("safe", &no_params, body.clone()).await.0, 401);

    let (pq, pbody) = push(&plain, &text("o", "hi", 2));
    let (status, reason) = server.post("plain", &pq, "<xml><unclosed>").await;
    assert_eq!(status, 400, "{reason}");
    let _ = pbody;

    // A plaintext push to a safe-mode tenant, correctly signed with its token.
    let safe_as_plain = account("wxsafe", "tokensafe", None, Mode::Plain);
    let (q, b) = push(&safe_as_plain, &text("o", "hi", 3));
    let (status, reason) = server.post("safe", &q, b).await;
    assert_eq!(status, 400);
    assert!(reason.contains("plaintext push refused"), "{reason}");

    let huge = vec![b'a'; 70 * 1024];
    assert_eq!(server.post("plain", &pq, huge).await.0, 413);

    assert_eq!(
        server.health().await,
        (
            200,
            r#"{"reachable":true,"status":"ok","storage":"embedded"}"#.to_owned()
        )
    );
    let metrics = server.metrics().await;
    for line in [
        r#"wxhost_requests_total{tenant="unknown",outcome="unknown_tenant"} 1"#,
        r#"wxhost_requests_total{tenant="safe",outcome="bad_signature"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from {metrics}");
    }
    assert!(
        !metrics.contains("tokensafe") && !metrics.contains(KEY_A),
        "a secret leaked into metrics"
    );
    assert!(
        !server.logs().contains("tokensafe"),
        "a secret leaked into the logs"
    );
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let server = Server::start(&config());
    let plain = account("wxplain", "tokenplain", None, Mode::Plain);
    let reply = server.send("plain", &plain, &text("o", "bye", 9)).await;
    assert!(reply.is_some());
    let (status, logs) = server.terminate();
    assert!(status.success(), "exit status {status:?}; logs: {logs}");
    assert!(logs.contains("stopped"), "{logs}");
}
