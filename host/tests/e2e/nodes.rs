//! Several nodes behind a load balancer, on one real `redis-server`: a push runs once whichever
//! nodes its retries and replays land on, and every answer is the first; a captured query
//! carries no other body to another node; the nodes fetch one access token between them;
//! plugin kv is shared; a node killed mid-chain leaves its push to a retry once its lease ends;
//! and when Redis goes away (also under load) every push is still answered within the passive
//! budget, `/healthz` says so, and everything works again once Redis is back, without a restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wxhost::wechat::{Mode, Reply};
use wxhost_fake_wechat::FakeWechat;
use wxhost_test_redis::RedisServer;

use crate::harness::{KEY_A, Server, account, push, text};

/// The passive budget of [`config`].
const PASSIVE_BUDGET: Duration = Duration::from_millis(1_500);
/// What a push may take at most: the budget and room for a loaded test machine (a kv call that
/// hung on Redis would take far longer; each is bounded by `command_timeout_ms`, 200 ms here).
const AT_MOST: Duration = Duration::from_millis(2_500);

/// A safe-mode tenant counting visits in kv, on the Redis at `url`.
fn config(url: &str) -> String {
    format!(
        "passive_budget_ms = {}\n[storage]\nbackend = \"redis\"\nurl = \"{url}\"\nprefix = \"e2e:\"\n\
         command_timeout_ms = 200\nconnect_timeout_ms = 200\n\
         [[tenants]]\nid = \"shop\"\nappid = \"wxshop\"\ntoken = \"tokenshop\"\nmode = \"safe\"\n\
         encoding_aes_key = \"{KEY_A}\"\n[[tenants.plugins]]\nname = \"visit-counter\"\n",
        PASSIVE_BUDGET.as_millis()
    )
}

fn shop() -> wxhost::wechat::Account {
    account("wxshop", "tokenshop", Some(KEY_A), Mode::Safe)
}

async fn visit(node: &Server, msg_id: u64) -> Option<Reply> {
    node.send("shop", &shop(), &text("o_user", "hello", msg_id))
        .await
        .map(|r| r.reply)
}

async fn health(node: &Server) -> serde_json::Value {
    let (_, body) = node.health().await;
    serde_json::from_str(&body).expect("json")
}

#[tokio::test]
async fn nodes_share_plugin_kv_and_ride_out_a_redis_outage() {
    let mut redis = RedisServer::start();
    let nodes = [
        Server::start(&config(&redis.url())),
        Server::start(&config(&redis.url())),
    ];
    // Alternate nodes, as a load balancer would: one count across both.
    for n in 1..=6u64 {
        let reply = visit(&nodes[(n % 2) as usize], 100 + n).await;
        assert_eq!(reply, Some(Reply::text(format!("visit #{n}"))));
    }
    let healthy = health(&nodes[0]).await;
    assert_eq!(
        (healthy["status"].as_str(), healthy["storage"].as_str()),
        (Some("ok"), Some("redis"))
    );

    redis.kill();
    for (n, node) in nodes.iter().enumerate() {
        let started = Instant::now();
        let reply = visit(node, 200 + n as u64).await;
        assert_eq!(
            reply, None,
            "the plugin's kv call fails: no reply, but an answer"
        );
        assert!(
            started.elapsed() < AT_MOST,
            "answered after {:?}",
            started.elapsed()
        );
        assert_eq!(health(node).await["status"].as_str(), Some("degraded"));
    }

    // Redis is back (empty: it kept nothing): both nodes use it again by themselves.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut msg_id = 300;
    loop {
        msg_id += 1;
        if visit(&nodes[0], msg_id).await == Some(Reply::text("visit #1")) {
            break;
        }
        assert!(Instant::now() < deadline, "node 0 did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        visit(&nodes[1], msg_id + 1).await,
        Some(Reply::text("visit #2"))
    );
    assert_eq!(health(&nodes[1]).await["status"].as_str(), Some("ok"));

    // The outage and the recovery are in the metrics (reported every second).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let metrics = nodes[0].metrics().await;
    let counter = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(counter("wxhost_redis_errors_total ") >= 1);
    assert!(counter("wxhost_redis_commands_total ") >= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopping_under_load_leaves_every_push_answered_within_the_budget() {
    let mut redis = RedisServer::start();
    let node = Arc::new(Server::start(&config(&redis.url())));
    assert_eq!(visit(&node, 1).await, Some(Reply::text("visit #1")));
    // Eight senders push as fast as they are answered; Redis dies under them and comes back.
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..8u64)
        .map(|s| {
            let (node, stop) = (Arc::clone(&node), Arc::clone(&stop));
            tokio::spawn(async move {
                let (mut replies, mut empty, mut slowest) = (0u32, 0u32, Duration::ZERO);
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let started = Instant::now();
                    // `send` panics unless the status is 200 and WeChat would accept the body.
                    match visit(&node, 1_000_000 * (s + 1) + n).await {
                        Some(_) => replies += 1,
                        None => empty += 1,
                    }
                    slowest = slowest.max(started.elapsed());
                }
                (replies, empty, slowest)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    redis.restart();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.store(true, Ordering::SeqCst);
    let (mut replies, mut empty) = (0, 0);
    for sender in senders {
        let (r, e, slowest) = sender.await.expect("a sender panicked: a push was refused");
        replies += r;
        empty += e;
        assert!(slowest < AT_MOST, "a push took {slowest:?}");
    }
    assert!(
        replies > 20 && empty > 20,
        "{replies} replies, {empty} without"
    );
    // After the outage the counter restarts (Redis kept nothing) and counts again.
    let after = visit(&node, 2).await;
    assert!(
        matches!(&after, Some(Reply::Text { content }) if content.starts_with("visit #")),
        "{after:?}"
    );
    assert!(!node.logs().contains("panicked"), "{}", node.logs());
    // The outage is counted: failed commands (reported every second), and pushes admitted by
    // the node alone meanwhile.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let metrics = node.metrics().await;
    assert!(
        count(&metrics, "wxhost_redis_errors_total") >= 1,
        "{metrics}"
    );
    assert!(
        count(&metrics, "wxhost_redis_local_fallbacks_total") >= 1,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_query_captured_on_one_node_carries_no_other_body_to_another() {
    let redis = RedisServer::start();
    let config = format!(
        "[storage]\nbackend = \"redis\"\nurl = \"{}\"\n[[tenants]]\nid = \"plain\"\n\
         appid = \"wxplain\"\ntoken = \"tokenplain\"\nmode = \"plain\"\n\
         [[tenants.plugins]]\nname = \"echo\"\n",
        redis.url()
    );
    let nodes = [Server::start(&config), Server::start(&config)];
    let plain = account("wxplain", "tokenplain", None, Mode::Plain);
    let (query, body) = push(&plain, &text("o_user", "mine", 9701));
    assert_eq!(nodes[0].post("plain", &query, body.clone()).await.0, 200);
    let (_, forged) = push(&plain, &text("o_victim", "not mine", 9702));
    let (status, reason) = nodes[1].post("plain", &query, forged).await;
    assert_eq!(
        (status, reason.trim()),
        (401, "signature already used with another body")
    );
    assert_eq!(
        nodes[1].post("plain", &query, body).await.0,
        200,
        "its own body is a retry on any node"
    );
}

/// A safe-mode tenant on the Redis at `url` whose chain is the counting plugin (`run #N`, N
/// from kv), taking `spin_ms`; `top` goes before the tables.
fn counter(url: &str, spin_ms: u64, top: &str) -> String {
    format!(
        "{top}\npassive_budget_ms = {}\n[storage]\nbackend = \"redis\"\nurl = \"{url}\"\n\
         prefix = \"e2e:\"\n\
         [[tenants]]\nid = \"shop\"\nappid = \"wxshop\"\ntoken = \"tokenshop\"\nmode = \"safe\"\n\
         encoding_aes_key = \"{KEY_A}\"\n[[tenants.plugins]]\nname = \"slow-counter\"\n\
         settings = {{ spin_ms = {spin_ms} }}\n",
        PASSIVE_BUDGET.as_millis()
    )
}

/// The reply in a safe-mode answer body (`None` for `success`/empty).
fn reply_of(body: &str) -> Option<Reply> {
    shop()
        .read_answer(body, true)
        .unwrap_or_else(|e| panic!("WeChat would not accept {body:?}: {e}"))
        .map(|r| r.reply)
}

/// The value of the counter `line` (name and labels) in `metrics`, 0 when absent.
fn count(metrics: &str, line: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_pushed_to_both_nodes_runs_once_and_every_answer_is_the_first() {
    let redis = RedisServer::start();
    let config = counter(&redis.url(), 400, "");
    let nodes = Arc::new([Server::start(&config), Server::start(&config)]);
    let (query, body) = push(&shop(), &text("o_user", "count me", 9801));
    // WeChat's first attempt and its retry, landing on different nodes at once; then both
    // again once answered.
    let at_once: Vec<_> = (0..2)
        .map(|n| {
            let (nodes, query, body) = (Arc::clone(&nodes), query.clone(), body.clone());
            tokio::spawn(async move { nodes[n].post("shop", &query, body).await })
        })
        .collect();
    let mut answers = Vec::new();
    for answer in at_once {
        answers.push(answer.await.expect("join"));
    }
    for node in nodes.iter() {
        answers.push(node.post("shop", &query, body.clone()).await);
    }
    for (status, answer) in &answers {
        assert_eq!(*status, 200, "{answer}");
        assert_eq!(reply_of(answer), Some(Reply::text("run #1")), "{answer}");
    }
    // Each answer is encrypted afresh by the node that gives it.
    assert_ne!(answers[0].1, answers[1].1);
    let next = nodes[1]
        .send("shop", &shop(), &text("o_user", "next", 9802))
        .await;
    assert_eq!(
        next.map(|r| r.reply),
        Some(Reply::text("run #2")),
        "the plugin ran once for the four attempts"
    );
    let (a, b) = (nodes[0].metrics().await, nodes[1].metrics().await);
    let retries = |outcome: &str| {
        let line = format!(r#"wxhost_requests_total{{tenant="shop",outcome="{outcome}"}}"#);
        count(&a, &line) + count(&b, &line)
    };
    assert_eq!(
        retries("reply"),
        2,
        "the first attempt and the next message"
    );
    assert_eq!(retries("retry_waited") + retries("retry_replayed"), 3);
    assert_eq!(
        retries("retry_waited"),
        1,
        "one retry came while the first ran"
    );
}

#[tokio::test]
async fn a_replay_on_another_node_is_not_run_for_the_whole_window() {
    let redis = RedisServer::start();
    // The shortest TTL the config takes, and a window a little longer.
    let config = counter(
        &redis.url(),
        0,
        "timestamp_skew_secs = 20\ndedup_ttl_secs = 15",
    );
    let nodes = [Server::start(&config), Server::start(&config)];
    let (query, body) = push(&shop(), &text("o_user", "count me", 9811));
    let (status, first) = nodes[0].post("shop", &query, body.clone()).await;
    assert_eq!(
        (status, reply_of(&first)),
        (200, Some(Reply::text("run #1")))
    );
    let (_, replayed) = nodes[1].post("shop", &query, body.clone()).await;
    assert_eq!(
        reply_of(&replayed),
        Some(Reply::text("run #1")),
        "within the retry ttl: the first answer"
    );
    tokio::time::sleep(Duration::from_secs(16)).await;
    let (status, late) = nodes[1].post("shop", &query, body).await;
    assert_eq!(status, 200, "{late}");
    assert_eq!(
        reply_of(&late),
        None,
        "past the retry ttl, inside the window: not run, no reply"
    );
    let next = nodes[0]
        .send("shop", &shop(), &text("o_user", "next", 9812))
        .await;
    assert_eq!(next.map(|r| r.reply), Some(Reply::text("run #2")));
    let metrics = nodes[1].metrics().await;
    assert_eq!(
        count(
            &metrics,
            r#"wxhost_requests_total{tenant="shop",outcome="replay_ignored"}"#
        ),
        1,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_chain_leaves_the_push_to_a_retry_once_its_lease_ends() {
    let redis = RedisServer::start();
    let config = counter(&redis.url(), 600, "");
    let mut nodes = [Server::start(&config), Server::start(&config)];
    for node in &nodes {
        // Both serve before the first push.
        node.serving().await;
    }
    let (query, body) = push(&shop(), &text("o_user", "count me", 9821));
    let first = {
        let (url, http) = (nodes[0].url("/wx/shop"), nodes[0].http.clone());
        let (query, body) = (query.clone(), body.clone());
        tokio::spawn(async move { http.post(url).query(&query).body(body).send().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    nodes[0].signal("KILL");
    assert!(
        first.await.expect("join").is_err(),
        "node A died before answering"
    );
    // WeChat's retries, 1 s apart here: within the lease (the passive budget + 1.3 s) a retry
    // waits and is answered without a reply in time; after it, a retry runs the chain.
    let started = Instant::now();
    let mut answers = Vec::new();
    loop {
        let sent = Instant::now();
        let (status, answer) = nodes[1].post("shop", &query, body.clone()).await;
        assert_eq!(status, 200, "{answer}");
        assert!(
            sent.elapsed() < AT_MOST,
            "answered after {:?}",
            sent.elapsed()
        );
        let reply = reply_of(&answer);
        answers.push(reply.clone());
        if reply.is_some() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never run again: {answers:?}; {}",
            nodes[1].logs()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Node A counted its run before it died: the retry is the second run, the one case in
    // which a push runs twice.
    assert_eq!(answers.last(), Some(&Some(Reply::text("run #2"))));
    assert!(
        answers.len() >= 2,
        "the first retry came within the lease: {answers:?}"
    );
    nodes[0].wait_exit(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_api_sends_across_both_nodes_fetch_one_access_token() {
    const APPID: &str = "wxcaps";
    const SECRET: &str = "secretcaps";
    let redis = RedisServer::start();
    let fake = FakeWechat::start(APPID, SECRET).await.expect("fake");
    let config = format!(
        "[storage]\nbackend = \"redis\"\nurl = \"{}\"\n\
         [[tenants]]\nid = \"t\"\nappid = \"{APPID}\"\ntoken = \"tokencaps\"\nmode = \"plain\"\n\
         app_secret = \"{SECRET}\"\napi_base_url = \"{}\"\n\
         [[tenants.plugins]]\nname = \"capability-probe\"\ncapabilities = [\"wechat-api\"]\n\
         api_paths = [\"cgi-bin/message/custom/send\"]\n",
        redis.url(),
        fake.base_url()
    );
    let nodes = Arc::new([Server::start(&config), Server::start(&config)]);
    for node in nodes.iter() {
        node.serving().await;
    }
    let wechat = account(APPID, "tokencaps", None, Mode::Plain);
    let sends: Vec<_> = (0..100u64)
        .map(|n| {
            let (nodes, wechat) = (Arc::clone(&nodes), wechat.clone());
            tokio::spawn(async move {
                let msg = text(&format!("o_{n}"), "api hello", 9900 + n);
                nodes[(n % 2) as usize].send("t", &wechat, &msg).await
            })
        })
        .collect();
    for send in sends {
        let answer = send.await.expect("join").map(|r| r.reply);
        assert_eq!(answer, Some(Reply::text("api ok")));
    }
    assert_eq!(fake.sent("cgi-bin/message/custom/send").len(), 100);
    assert_eq!(fake.token_fetches(), 1, "one fetch for both nodes");
}
