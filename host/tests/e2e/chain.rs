//! Every mode with every reply type; the passive budget against a spinning plugin.

use std::time::{Duration, Instant};

use wxhost::wechat::{Article, Mode, Reply};

use crate::harness::{KEY_A, Server, account, push, tenant, text};

#[tokio::test]
async fn every_mode_answers_every_reply_type() {
    let config = [
        tenant(
            "plain",
            "wxplain",
            "tokenplain",
            None,
            "plain",
            &["reply-kinds"],
        ),
        tenant(
            "compat",
            "wxcompat",
            "tokencompat",
            Some(KEY_A),
            "compatible",
            &["reply-kinds"],
        ),
        tenant(
            "safe",
            "wxsafe",
            "tokensafe",
            Some(KEY_A),
            "safe",
            &["reply-kinds"],
        ),
    ]
    .concat();
    let server = Server::start(&config);
    let expected = [
        ("text", Reply::text("a text ]]> <&>")),
        (
            "image",
            Reply::Image {
                media_id: "IMAGE_MEDIA".into(),
            },
        ),
        (
            "voice",
            Reply::Voice {
                media_id: "VOICE_MEDIA".into(),
            },
        ),
        (
            "video",
            Reply::Video {
                media_id: "VIDEO_MEDIA".into(),
                title: "A video".into(),
                description: "About it".into(),
            },
        ),
        (
            "music",
            Reply::Music {
                title: "A song".into(),
                description: String::new(),
                music_url: "https://m.example/song.mp3".into(),
                hq_music_url: "https://m.example/song.mp3".into(),
                thumb_media_id: "THUMB_MEDIA".into(),
            },
        ),
        (
            "news",
            Reply::News {
                articles: vec![
                    Article {
                        title: "First".into(),
                        url: "https://example.com/1".into(),
                        pic_url: "https://example.com/1.jpg".into(),
                        ..Article::default()
                    },
                    Article {
                        title: "Second".into(),
                        url: "https://example.com/2".into(),
                        description: "more".into(),
                        ..Article::default()
                    },
                ],
            },
        ),
        (
            "transfer",
            Reply::TransferCustomerService { kf_account: None },
        ),
        (
            "transfer-to",
            Reply::TransferCustomerService {
                kf_account: Some("agent1@account".into()),
            },
        ),
    ];
    let mut msg_id = 1_000;
    for (id, mode, key) in [
        ("plain", Mode::Plain, None),
        ("compat", Mode::Compatible, Some(KEY_A)),
        ("safe", Mode::Safe, Some(KEY_A)),
    ] {
        let acc = account(&format!("wx{id}"), &format!("token{id}"), key, mode);
        for (kind, reply) in &expected {
            msg_id += 1;
            let answer = server
                .send(id, &acc, &text("o_user", kind, msg_id))
                .await
                .unwrap_or_else(|| panic!("{id}/{kind}: no reply"));
            assert_eq!(&answer.reply, reply, "{id}/{kind}");
            assert_eq!(answer.to_user, "o_user");
            assert_eq!(answer.from_user, "gh_e2e");
        }
        // Nothing for the chain: `success` in plaintext, an empty body when encrypted.
        msg_id += 1;
        let (query, body) = push(&acc, &text("o_user", "nothing", msg_id));
        let (status, body) = server.post(id, &query, body).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            if mode == Mode::Plain { "success" } else { "" },
            "{id}"
        );
    }
}

#[tokio::test]
async fn a_spinning_plugin_gets_success_within_the_budget_while_other_tenants_stay_fast() {
    let config = format!(
        "passive_budget_ms = 600\nasync_budget_ms = 1500\n{}[tenants.plugins.limits]\ndeadline_ms = 5000\nfuel = 100000000000\n{}",
        tenant(
            "stuck",
            "wxstuck",
            "tokenstuck",
            None,
            "plain",
            &["infinite-loop"]
        ),
        tenant(
            "fast",
            "wxfast",
            "tokenfast",
            Some(KEY_A),
            "safe",
            &["echo"]
        ),
    );
    let server = Server::start(&config);
    let stuck = account("wxstuck", "tokenstuck", None, Mode::Plain);
    let fast = account("wxfast", "tokenfast", Some(KEY_A), Mode::Safe);

    let started = Instant::now();
    let stuck_call = {
        let (query, body) = push(&stuck, &text("o_user", "spin", 1));
        let server = &server;
        async move { server.post("stuck", &query, body).await }
    };
    let fast_calls = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut answers = Vec::new();
        for i in 0..5 {
            let reply = server
                .send("fast", &fast, &text("o_user", "ping", 100 + i))
                .await;
            answers.push((reply, started.elapsed()));
        }
        answers
    };
    let ((status, body), answers) = tokio::join!(stuck_call, fast_calls);
    let stuck_took = started.elapsed();
    assert_eq!((status, body.as_str()), (200, "success"));
    assert!(
        stuck_took >= Duration::from_millis(600),
        "answered before the budget: {stuck_took:?}"
    );
    assert!(
        stuck_took < Duration::from_millis(4_500),
        "answered late: {stuck_took:?}"
    );
    for (reply, at) in &answers {
        assert_eq!(
            reply.as_ref().map(|r| &r.reply),
            Some(&Reply::text("echo: ping"))
        );
        assert!(*at < stuck_took, "the fast tenant waited for the stuck one");
    }
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"wxhost_requests_total{tenant="stuck",outcome="budget_exhausted"} 1"#),
        "{metrics}"
    );
}
