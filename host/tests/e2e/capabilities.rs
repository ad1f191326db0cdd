//! Plugins acting beyond the passive reply, against the fake WeChat API: late replies sent as
//! customer-service messages, early replies, and the `wechat-api` and `http` capabilities
//! granted, denied and allow-listed, HTTP reaching the fake's loopback address only where
//! `http_private_addresses` grants it.

use std::time::{Duration, Instant};

use serde_json::Value;
use wxhost::wechat::Mode;
use wxhost_fake_wechat::FakeWechat;

use crate::harness::{Server, account, reply_text, text};

const APPID: &str = "wxcapabilities";
const SECRET: &str = "app-secret-for-tests-0001";
const TOKEN: &str = "tokencaps";
const CUSTOM: &str = "cgi-bin/message/custom/send";

/// Config text: top-level `head`, then one plain-mode tenant `t` using `fake`, then `plugins`
/// (`[[tenants.plugins]]` tables).
fn config(head: &str, fake: &FakeWechat, plugins: &str) -> String {
    format!(
        "{head}\n[[tenants]]\nid = \"t\"\nappid = \"{APPID}\"\ntoken = \"{TOKEN}\"\nmode = \"plain\"\n\
         app_secret = \"{SECRET}\"\napi_base_url = \"{}\"\n{plugins}",
        fake.base_url()
    )
}

/// Waits until the fake has accepted `count` customer-service messages (or 5 s pass).
async fn custom_messages(fake: &FakeWechat, count: usize) -> Vec<Value> {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let sent = fake.sent(CUSTOM);
        if sent.len() >= count || Instant::now() > until {
            return sent;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_reply_after_the_passive_budget_is_sent_once_as_a_customer_service_message() {
    let fake = FakeWechat::start(APPID, SECRET).await.expect("fake");
    let server = Server::start(&config(
        "passive_budget_ms = 300\nasync_budget_ms = 5000",
        &fake,
        "[[tenants.plugins]]\nname = \"slow-counter\"\nsettings = { spin_ms = 900 }\nlimits = { deadline_ms = 3000 }\n",
    ));
    server.serving().await;
    let wechat = account(APPID, TOKEN, None, Mode::Plain);
    let started = Instant::now();
    let answer = server.send("t", &wechat, &text("o_slow", "hi", 1)).await;
    assert!(answer.is_none(), "answered `success` without a reply");
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "{:?}; logs: {}",
        started.elapsed(),
        server.logs()
    );

    let sent = custom_messages(&fake, 1).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["touser"], "o_slow");
    assert_eq!(sent[0]["text"]["content"], "run #1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.sent(CUSTOM).len(), 1, "exactly one send");
    assert_eq!(fake.token_fetches(), 1);
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"wxhost_late_replies_total{tenant="t",outcome="sent"} 1"#),
        "{metrics}"
    );
    assert!(!metrics.contains(SECRET) && !server.logs().contains(SECRET));
}

#[tokio::test]
async fn the_stock_quote_example_answers_at_once_then_sends_the_quote() {
    let fake = FakeWechat::start(APPID, SECRET).await.expect("fake");
    let server = Server::start(&config(
        "",
        &fake,
        &format!(
            "[[tenants.plugins]]\nname = \"stock-quote\"\ncapabilities = [\"http\", \"wechat-api\"]\n\
             http_hosts = [\"{}\"]\nhttp_private_addresses = [\"127.0.0.1\"]\n\
             settings = {{ service_url = \"{}\" }}\n",
            fake.addr,
            fake.base_url()
        ),
    ));
    let wechat = account(APPID, TOKEN, None, Mode::Plain);
    let answer = server
        .send("t", &wechat, &text("o_quote", "quote WX", 2))
        .await;
    assert_eq!(reply_text(answer), "working on it… (quote WX)");
    let sent = custom_messages(&fake, 1).await;
    assert_eq!(sent.len(), 1, "{sent:?}; logs: {}", server.logs());
    assert_eq!(sent[0]["touser"], "o_quote");
    // The fake price service prices WX at (87 + 88) % 1000.
    assert_eq!(sent[0]["text"]["content"], "WX: 175");
}

#[tokio::test]
async fn without_grants_every_capability_is_an_error_value_and_nothing_is_called() {
    let fake = FakeWechat::start(APPID, SECRET).await.expect("fake");
    let server = Server::start(&config(
        "",
        &fake,
        "[[tenants.plugins]]\nname = \"capability-probe\"\n",
    ));
    let wechat = account(APPID, TOKEN, None, Mode::Plain);
    let quote = format!("http {}/quote?symbol=A", fake.base_url());
    let cases = [
        ("api hello", "api error: Denied("),
        ("template tpl", "template error: Denied("),
        ("raw cgi-bin/user/info", "raw error: Denied("),
        (quote.as_str(), "http error: Denied"),
    ];
    for (i, (command, expected)) in cases.iter().enumerate() {
        let answer = reply_text(
            server
                .send("t", &wechat, &text("o", command, 10 + i as u64))
                .await,
        );
        assert!(answer.starts_with(expected), "{command}: {answer}");
    }
    assert_eq!(fake.token_fetches(), 0);
    assert_eq!(fake.calls(CUSTOM), 0);
    let logs = server.logs_with("outbound HTTP denied").await;
    assert!(logs.contains("outbound HTTP denied"), "{logs}");
}

#[tokio::test]
async fn granted_capabilities_work_within_their_allow_lists() {
    let fake = FakeWechat::start(APPID, SECRET).await.expect("fake");
    let elsewhere = FakeWechat::start(APPID, SECRET).await.expect("second fake");
    let server = Server::start(&config(
        "",
        &fake,
        &format!(
            "[[tenants.plugins]]\nname = \"capability-probe\"\ncapabilities = [\"http\", \"wechat-api\"]\n\
             http_hosts = [\"{}\"]\nhttp_private_addresses = [\"127.0.0.1\"]\n\
             api_paths = [\"cgi-bin/message/custom/send\"]\n",
            fake.addr
        ),
    ));
    let wechat = account(APPID, TOKEN, None, Mode::Plain);
    let mut id = 100;
    let mut ask = async |command: String| {
        id += 1;
        reply_text(
            server
                .send("t", &wechat, &text("o_granted", &command, id))
                .await,
        )
    };

    assert_eq!(ask("api hello".into()).await, "api ok");
    assert!(
        ask("template tpl-1".into())
            .await
            .starts_with("template ok ")
    );
    // Raw calls: only the listed path.
    let denied = ask("raw cgi-bin/user/info".into()).await;
    assert!(denied.starts_with("raw error: Denied("), "{denied}");
    // The fake serves this path for POST only: its 405 shows the GET reached it.
    let raw = ask("raw cgi-bin/message/custom/send".into()).await;
    assert_eq!(
        raw,
        r#"raw error: Unavailable("WeChat API answered HTTP 405")"#
    );

    let allowed = ask(format!("http {}/quote?symbol=A", fake.base_url())).await;
    assert_eq!(allowed, r#"http 200 {"price":65,"symbol":"A"}"#);
    for off_list in [
        format!("http http://localhost:{}/quote", fake.addr.port()),
        format!("http {}/quote", elsewhere.base_url()),
    ] {
        assert_eq!(
            ask(off_list.clone()).await,
            "http error: Denied",
            "{off_list}"
        );
    }
    assert_eq!(elsewhere.calls("quote"), 0);

    // An early reply answers WeChat; what the plugin returns afterwards is sent late.
    assert_eq!(ask("early first".into()).await, "first");
    let sent = custom_messages(&fake, 2).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0]["text"]["content"], "hello");
    assert_eq!(sent[1]["text"]["content"], "late first");
    assert_eq!(fake.sent("cgi-bin/message/template/send").len(), 1);
    assert_eq!(fake.token_fetches(), 1);
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_and_loopback_is_reached_only_where_granted() {
    let fake = FakeWechat::start(APPID, SECRET).await.expect("fake");
    let port = fake.addr.port();
    let probe = |private: &str| {
        format!(
            "[[tenants.plugins]]\nname = \"capability-probe\"\ncapabilities = [\"http\"]\n\
             http_hosts = [\"localhost:{port}\"]\n{private}"
        )
    };
    // Tenant `t` lists the name only; tenant `u` also grants loopback.
    let server = Server::start(&config(
        "",
        &fake,
        &format!(
            "{}[[tenants]]\nid = \"u\"\nappid = \"{APPID}\"\ntoken = \"{TOKEN}\"\nmode = \"plain\"\n{}",
            probe(""),
            probe("http_private_addresses = [\"127.0.0.1\", \"::1\"]\n")
        ),
    ));
    let wechat = account(APPID, TOKEN, None, Mode::Plain);
    let quote = format!("http http://localhost:{port}/quote?symbol=A");
    let refused = reply_text(server.send("t", &wechat, &text("o", &quote, 300)).await);
    assert_eq!(refused, "http error: Denied", "logs: {}", server.logs());
    // The name is on the list: the refusal is the address check's (the fake does not count
    // `/quote` requests; the log, read from the child as it comes, says why).
    let why = "is a loopback address, not granted to this plugin";
    let logs = server.logs_with(why).await;
    assert!(logs.contains(why), "{logs}");
    let granted = reply_text(server.send("u", &wechat, &text("o", &quote, 301)).await);
    assert_eq!(granted, r#"http 200 {"price":65,"symbol":"A"}"#);
    let metrics = server.metrics().await;
    for (tenant, kind) in [("t", "denied"), ("u", "sent")] {
        let line = format!(
            r#"wxhost_plugin_http_requests_total{{tenant="{tenant}",plugin="capability-probe",kind="{kind}"}} 1"#
        );
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_service_send_outside_the_users_window_or_count_is_refused_before_wechat() {
    let fake = FakeWechat::start(APPID, SECRET).await.expect("fake");
    // A 2 s window and 2 sends per interaction stand in for WeChat's 48 hours and 20.
    let server = Server::start(&config(
        "",
        &fake,
        "customer_service_window_secs = 2\ncustomer_service_limit = 2\n\
         [[tenants.plugins]]\nname = \"capability-probe\"\ncapabilities = [\"wechat-api\"]\n\
         [[tenants.plugins]]\nname = \"echo\"\n",
    ));
    let wechat = account(APPID, TOKEN, None, Mode::Plain);
    let say = async |from: &str, words: &str, id: u64| {
        reply_text(server.send("t", &wechat, &text(from, words, id)).await)
    };
    // o_b interacts; two sends reach them, the third is refused by the count.
    assert_eq!(say("o_b", "hello", 1).await, "echo: hello");
    assert_eq!(say("o_a", "api-to o_b one", 2).await, "api ok");
    assert_eq!(say("o_a", "api-to o_b two", 3).await, "api ok");
    let refused = say("o_a", "api-to o_b three", 4).await;
    assert!(refused.contains("code: 45047"), "{refused}");
    assert_eq!(
        fake.calls(CUSTOM),
        2,
        "the refused send never reached WeChat"
    );
    // Their next message starts the count again; once the window has passed, sends are
    // refused as WeChat would refuse them (45015), without a call.
    assert_eq!(say("o_b", "again", 5).await, "echo: again");
    assert_eq!(say("o_a", "api-to o_b four", 6).await, "api ok");
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let refused = say("o_a", "api-to o_b five", 7).await;
    assert!(
        refused.contains("code: 45015") && refused.contains("outside the customer-service window"),
        "{refused}"
    );
    assert_eq!(fake.calls(CUSTOM), 3);
    // A user wxhost has never seen is left to WeChat; a WeChat refusal closes their window.
    fake.inject(CUSTOM, 45015, 1);
    assert!(
        say("o_a", "api-to o_never hi", 8)
            .await
            .contains("code: 45015")
    );
    assert_eq!(say("o_a", "api hi", 9).await, "api ok", "o_a just wrote");
    assert_eq!(fake.calls(CUSTOM), 5);
    let metrics = server.metrics().await;
    for line in [
        r#"wxhost_wechat_api_calls_total{tenant="t",api="cgi-bin/message/custom/send",outcome="over_user_limit"} 1"#,
        r#"wxhost_wechat_api_calls_total{tenant="t",api="cgi-bin/message/custom/send",outcome="outside_window"} 1"#,
        r#"wxhost_wechat_api_calls_total{tenant="t",api="cgi-bin/message/custom/send",outcome="errcode_45015"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_errors_are_counted_and_wxhost_quota_clear_resets_them_ten_times_a_month() {
    let fake = FakeWechat::start(APPID, SECRET).await.expect("fake");
    fake.set_quota(CUSTOM, 1);
    let server = Server::start(&config(
        "",
        &fake,
        "[[tenants.plugins]]\nname = \"capability-probe\"\ncapabilities = [\"wechat-api\"]\n",
    ));
    let wechat = account(APPID, TOKEN, None, Mode::Plain);
    let say = async |words: &str, id: u64| {
        reply_text(server.send("t", &wechat, &text("o_q", words, id)).await)
    };
    assert_eq!(say("api one", 1).await, "api ok");
    let refused = say("api two", 2).await;
    assert!(refused.contains("code: 45009"), "{refused}");
    let clear = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_wxhost"))
            .args(["quota", "clear", "--tenant", "t", "--config"])
            .arg(server.dir.path().join("wxhost.toml"))
            .output()
            .map(|o| {
                let text = String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr);
                (o.status.success(), text)
            })
            .expect("wxhost runs")
    };
    let (ok, out) = clear();
    assert!(ok && out.contains("quotas cleared (9 more"), "{out}");
    assert_eq!(say("api three", 3).await, "api ok");
    let metrics = server.metrics().await;
    for line in [
        r#"wxhost_wechat_api_calls_total{tenant="t",api="cgi-bin/message/custom/send",outcome="ok"} 2"#,
        r#"wxhost_wechat_api_calls_total{tenant="t",api="cgi-bin/message/custom/send",outcome="errcode_45009"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    let logs = server.logs_with("daily quota").await;
    assert!(logs.contains("daily quota"), "the hint is logged: {logs}");
    // Ten clears in all; the eleventh is refused here, without asking WeChat.
    for _ in 0..9 {
        assert!(clear().0);
    }
    let (ok, out) = clear();
    assert!(
        !ok && out.contains("cleared 10 times in the last 31 days"),
        "{out}"
    );
    assert_eq!(fake.quota_clears(), 10);
    assert_eq!(fake.calls("cgi-bin/clear_quota"), 10);
}
