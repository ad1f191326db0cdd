//! Each `late_reply` mode in the real binary, with a plugin slower than the passive budget:
//! `hold_for_retry` against a sender that behaves like WeChat (gives up on an attempt after
//! 5 s and sends it again, three attempts in all), `next_message` delivering the reply with the
//! user's next message, `customer_service` falling back when WeChat answers 48001, and `drop`.

use std::time::{Duration, Instant};

use wxhost::wechat::{Account, Message, Mode, Reply, ReplyMessage};
use wxhost_fake_wechat::FakeWechat;

use crate::harness::{Server, account, push, text};

const SECRET: &str = "app-secret-for-tests-0001";
const CUSTOM: &str = "cgi-bin/message/custom/send";

/// A plain tenant `id` with `late` (its late-reply lines), the WeChat API at `fake`, and a
/// chain of slow-counter (for texts `slow`, taking `spin_ms`) then echo.
fn tenant(id: &str, late: &str, fake: &FakeWechat, spin_ms: u64) -> String {
    format!(
        "[[tenants]]\nid = \"{id}\"\nappid = \"wx{id}\"\ntoken = \"token{id}\"\nmode = \"plain\"\n\
         app_secret = \"{SECRET}\"\napi_base_url = \"{}\"\n{late}\n\
         [[tenants.plugins]]\nname = \"slow-counter\"\nmatch = {{ keywords = [\"slow\"] }}\n\
         settings = {{ spin_ms = {spin_ms} }}\n\
         limits = {{ deadline_ms = {}, fuel = 1000000000000 }}\n\
         [[tenants.plugins]]\nname = \"echo\"\n",
        fake.base_url(),
        spin_ms + 1_000
    )
}

fn plain(id: &str) -> Account {
    account(&format!("wx{id}"), &format!("token{id}"), None, Mode::Plain)
}

fn content(answer: Option<ReplyMessage>) -> Option<String> {
    answer.map(|m| match m.reply {
        Reply::Text { content } => content,
        other => panic!("expected a text reply, got {other:?}"),
    })
}

/// What a sender that behaves like WeChat got for `msg`.
#[derive(Debug)]
struct Delivery {
    /// The attempt that was answered (1 to 3), `None` if none was.
    attempt: Option<u32>,
    /// The answer's reply.
    reply: Option<String>,
    /// From the first attempt until the answer (or the last attempt's end).
    elapsed: Duration,
}

/// Sends `msg` to `tenant` as WeChat does: the same request again when an attempt has no
/// answer within 5 s, three attempts in all.
async fn send_like_wechat(server: &Server, tenant: &str, msg: &Message) -> Delivery {
    let wechat = plain(tenant);
    let (query, body) = push(&wechat, msg);
    let started = Instant::now();
    for attempt in 1..=3 {
        let sent = server
            .http
            .post(server.url(&format!("/wx/{tenant}")))
            .query(&query)
            .body(body.clone())
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        let answer = match sent {
            Ok(response) => response.text().await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(answer) => {
                let reply = wechat
                    .read_answer(&answer, false)
                    .expect("an answer WeChat takes");
                return Delivery {
                    attempt: Some(attempt),
                    reply: content(reply),
                    elapsed: started.elapsed(),
                };
            }
            Err(e) => assert!(e.is_timeout(), "attempt {attempt}: {e}"),
        }
    }
    Delivery {
        attempt: None,
        reply: None,
        elapsed: started.elapsed(),
    }
}

async fn say(server: &Server, id: &str, from: &str, words: &str, msg_id: u64) -> Option<String> {
    content(
        server
            .send(id, &plain(id), &text(from, words, msg_id))
            .await,
    )
}

/// Waits until `metrics` shows `line` (or 5 s pass); the last metrics.
async fn metrics_show(server: &Server, line: &str) -> String {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = server.metrics().await;
        if metrics.contains(line) || Instant::now() > until {
            return metrics;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_for_retry_gives_a_slow_chain_the_time_of_wechats_retries() {
    let fake = FakeWechat::start("wxunused", SECRET).await.expect("fake");
    // An 8 s chain: answered on the second attempt. A 13 s one: the third attempt is answered
    // in time (at the passive budget after WeChat sent it), without a reply.
    let config = [
        "passive_budget_ms = 1000\nasync_budget_ms = 20000\n".to_owned(),
        tenant("held", "late_reply = \"hold_for_retry\"", &fake, 8_000),
        tenant("longer", "late_reply = \"hold_for_retry\"", &fake, 13_000),
    ]
    .concat();
    let server = Server::start(&config);
    assert_eq!(
        say(&server, "held", "o_u", "warm up", 1).await.as_deref(),
        Some("echo: warm up")
    );

    let (slow, slower) = (text("o_u", "slow", 2), text("o_u", "slow", 3));
    let (held, longer) = tokio::join!(
        send_like_wechat(&server, "held", &slow),
        send_like_wechat(&server, "longer", &slower),
    );
    #[expect(clippy::print_stderr, reason = "the measurement BENCHMARKS.md reports")]
    {
        eprintln!("hold_for_retry: 8 s chain {held:?}; 13 s chain {longer:?}");
    }
    assert_eq!(
        held.reply.as_deref(),
        Some("run #1"),
        "{held:?}: {}",
        server.logs()
    );
    assert_eq!(held.attempt, Some(2), "{held:?}");
    assert!(
        (Duration::from_millis(7_900)..Duration::from_millis(9_500)).contains(&held.elapsed),
        "answered as the chain ended: {held:?}"
    );
    assert_eq!(
        longer.attempt,
        Some(3),
        "the last attempt is answered: {longer:?}"
    );
    assert_eq!(longer.reply, None, "{longer:?}");
    // Its decision comes at the passive budget of the last attempt: 10 s (two 5 s attempts)
    // and 1 s.
    assert!(
        (Duration::from_millis(10_900)..Duration::from_millis(12_500)).contains(&longer.elapsed),
        "{longer:?}"
    );
    // The held chain ran once, and a late retry gets the same answer without running it.
    let again = server.send("held", &plain("held"), &slow).await;
    assert_eq!(content(again).as_deref(), Some("run #1"));
    let metrics = metrics_show(
        &server,
        r#"wxhost_late_replies_total{tenant="longer",outcome="dropped"} 1"#,
    )
    .await;
    for line in [
        r#"wxhost_late_replies_total{tenant="held",outcome="held"} 1"#,
        r#"wxhost_late_replies_total{tenant="longer",outcome="dropped"} 1"#,
        r#"wxhost_requests_total{tenant="held",outcome="retry_waited"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert_eq!(fake.calls(CUSTOM), 0, "no customer-service send");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_message_answers_the_users_next_message_with_the_late_reply() {
    let fake = FakeWechat::start("wxunused", SECRET).await.expect("fake");
    let config = [
        "passive_budget_ms = 300\nasync_budget_ms = 5000\n".to_owned(),
        tenant(
            "later",
            "late_reply = \"next_message\"\nlate_reply_note = \"(earlier) \"",
            &fake,
            900,
        ),
    ]
    .concat();
    let server = Server::start(&config);
    assert_eq!(
        say(&server, "later", "o_a", "slow", 1).await,
        None,
        "{}",
        server.logs()
    );
    metrics_show(
        &server,
        r#"wxhost_late_replies_total{tenant="later",outcome="kept"} 1"#,
    )
    .await;
    // Another user's message does not get it; the user's next one does, with its own answer.
    assert_eq!(
        say(&server, "later", "o_b", "hi", 2).await.as_deref(),
        Some("echo: hi")
    );
    assert_eq!(
        say(&server, "later", "o_a", "hello", 3).await.as_deref(),
        Some("(earlier) run #1\n\necho: hello")
    );
    assert_eq!(
        say(&server, "later", "o_a", "again", 4).await.as_deref(),
        Some("echo: again")
    );
    // A slow message that carries a kept reply answers with it, its own reply kept in turn.
    assert_eq!(say(&server, "later", "o_a", "slow", 5).await, None);
    metrics_show(
        &server,
        r#"wxhost_late_replies_total{tenant="later",outcome="kept"} 2"#,
    )
    .await;
    assert_eq!(
        say(&server, "later", "o_a", "slow", 6).await.as_deref(),
        Some("(earlier) run #2")
    );
    let metrics = metrics_show(
        &server,
        r#"wxhost_late_replies_total{tenant="later",outcome="kept"} 3"#,
    )
    .await;
    for line in [
        r#"wxhost_late_replies_total{tenant="later",outcome="kept"} 3"#,
        r#"wxhost_late_replies_total{tenant="later",outcome="delivered"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert_eq!(fake.calls(CUSTOM), 0, "no customer-service send");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_service_refused_with_48001_falls_back_and_drop_drops() {
    let fake = FakeWechat::start("wxcs", SECRET).await.expect("fake");
    fake.inject(CUSTOM, 48001, 1);
    let config = [
        "passive_budget_ms = 300\nasync_budget_ms = 5000\n".to_owned(),
        tenant("cs", "late_reply = \"customer_service\"", &fake, 900),
        tenant("gone", "late_reply = \"drop\"", &fake, 900),
    ]
    .concat();
    let server = Server::start(&config);
    assert_eq!(say(&server, "cs", "o_a", "slow", 1).await, None);
    assert_eq!(say(&server, "gone", "o_a", "slow", 2).await, None);
    let fallback = r#"wxhost_late_reply_fallback{tenant="cs",outcome="next_message"} 1"#;
    metrics_show(&server, fallback).await;
    // The refused reply went to the fallback: the user's next message carries it.
    assert_eq!(
        say(&server, "cs", "o_a", "hi", 3).await.as_deref(),
        Some("(the answer to your previous message)\nrun #1\n\necho: hi")
    );
    // Later late replies take the fallback without asking WeChat again.
    assert_eq!(say(&server, "cs", "o_a", "slow", 4).await, None);
    let metrics = metrics_show(
        &server,
        r#"wxhost_late_replies_total{tenant="cs",outcome="kept"} 2"#,
    )
    .await;
    for line in [
        fallback,
        r#"wxhost_late_replies_total{tenant="cs",outcome="failed"} 1"#,
        r#"wxhost_late_replies_total{tenant="cs",outcome="kept"} 2"#,
        r#"wxhost_late_replies_total{tenant="gone",outcome="dropped"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert_eq!(fake.calls(CUSTOM), 1, "WeChat was asked once");
    let logs = server.logs();
    assert_eq!(logs.matches("(48001").count(), 1, "logged once: {logs}");
}
