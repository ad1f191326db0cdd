//! Several nodes behind a load balancer, on one real `redis-server`: plugin kv is shared, and
//! when Redis goes away (also under load) every push is still answered within the passive
//! budget, `/healthz` says so, and everything works again once Redis is back, without a restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wxhost::wechat::{Mode, Reply};
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
    let body = node
        .http
        .get(node.url("/healthz"))
        .send()
        .await
        .expect("healthz")
        .text()
        .await
        .expect("body");
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
