//! What a guest makes the host hold through wasi:http is capped and counted: fields, request
//! parts and body buffers count toward the plugin's memory limit (16 KiB in all without the
//! `http` grant), the resource table has a cap, an instance that ends a call holding wasi:http
//! resources is not kept warm, and the host's resident memory stays bounded over many calls of
//! `http-hoard`, which makes the host hold them.

use std::sync::Arc;

use serde_json::json;
use wxhost::http_client::{AddressPolicy, PluginClients};
use wxhost::plugin::{
    CallContext, Error, HttpGrant, Limits, Plugin, PushScope, Runtime, WarmInstances,
};
use wxhost::storage::MemoryKv;
use wxhost::telemetry::Metrics;
use wxhost_tests::plugins;

use super::{context, load, runtime, text};

const MEMORY_BYTES: u64 = 8 * 1024 * 1024;

fn limits() -> Limits {
    Limits {
        memory_bytes: MEMORY_BYTES,
        ..Limits::default()
    }
}

fn ungranted() -> CallContext {
    context("demo", json!({}), Arc::new(MemoryKv::default()), limits())
}

fn granted() -> CallContext {
    let addresses = AddressPolicy::default();
    ungranted().with_http(HttpGrant {
        client: PluginClients::new()
            .expect("clients")
            .client(&addresses)
            .expect("client"),
        hosts: Vec::new().into(),
        addresses,
        metrics: Arc::new(Metrics::default()),
    })
}

fn hoard(rt: &Runtime) -> Plugin {
    load(rt, "http-hoard", plugins::HTTP_HOARD)
}

/// Runs `command` in `ctx` (kept warm in `warm` when given): the answer, or the error.
async fn run(
    rt: &Runtime,
    plugin: &Plugin,
    ctx: &CallContext,
    warm: Option<&WarmInstances>,
    command: &str,
) -> Result<String, Error> {
    let msg = Arc::new(text("o", command));
    let report = rt
        .call_with(plugin, ctx, warm, &msg, &PushScope::default())
        .await;
    report.result.map(|outcome| super::reply_text(Ok(outcome)))
}

fn assert_memory_limit(result: Result<String, Error>, what: &str) {
    match result {
        Err(Error::MemoryLimit {
            plugin,
            limit_bytes,
        }) => {
            assert_eq!(
                (plugin.as_str(), limit_bytes),
                ("http-hoard", MEMORY_BYTES),
                "{what}"
            );
        }
        other => panic!("{what}: expected the memory limit, got {other:?}"),
    }
}

#[tokio::test]
async fn without_the_http_grant_wasi_http_may_hold_almost_nothing() {
    let rt = runtime();
    let plugin = hoard(&rt);
    let ctx = ungranted();
    // A few small resources fit (the SDK can build a request and be told it is denied) ...
    assert_eq!(
        run(&rt, &plugin, &ctx, None, "fields 4 1000")
            .await
            .expect("fits"),
        "call #1: held 4"
    );
    // ... anything bigger is stopped as a memory limit, dropped or kept.
    for command in [
        "fields 1 20000",
        "hoard 1000",
        "churn 1000",
        "authority 1 20000",
        "clone 20 1000",
        "bodies 10",
    ] {
        assert_memory_limit(run(&rt, &plugin, &ctx, None, command).await, command);
    }
}

#[tokio::test]
async fn with_the_grant_wasi_http_counts_toward_the_memory_limit() {
    let rt = runtime();
    let plugin = hoard(&rt);
    let ctx = granted();
    assert_eq!(
        run(&rt, &plugin, &ctx, None, "fields 20 60000")
            .await
            .expect("1.2 MB fits in 8 MiB"),
        "call #1: held 20"
    );
    assert_eq!(
        run(&rt, &plugin, &ctx, None, "bodies 8")
            .await
            .expect("8 bodies fit"),
        "call #1: held 8"
    );
    for command in [
        "fields 200 60000",
        "hoard 60000",
        "churn 60000",
        "authority 200 60000",
        "clone 200 60000",
        "bodies 100",
    ] {
        assert_memory_limit(run(&rt, &plugin, &ctx, None, command).await, command);
    }
}

#[tokio::test]
async fn the_resource_table_is_capped_with_and_without_the_grant() {
    let rt = runtime();
    let plugin = hoard(&rt);
    for ctx in [ungranted(), granted()] {
        assert_eq!(
            run(&rt, &plugin, &ctx, None, "empty 100")
                .await
                .expect("100 entries fit"),
            "call #1: held 100"
        );
        match run(&rt, &plugin, &ctx, None, "empty 100000").await {
            Err(Error::Trap { plugin, message }) => {
                assert_eq!(plugin, "http-hoard");
                assert!(
                    message.contains("resource table has no free keys"),
                    "{message}"
                );
            }
            other => panic!("expected a trap on the full table, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_instance_holding_wasi_http_resources_is_not_kept_warm() {
    let rt = runtime();
    let plugin = hoard(&rt);
    for ctx in [ungranted(), granted()] {
        let warm = WarmInstances::default();
        let mut answers = Vec::new();
        for command in [
            "nothing",
            "nothing",
            "fields 2 100",
            "nothing",
            "empty 1",
            "nothing",
            "nothing",
        ] {
            answers.push(
                run(&rt, &plugin, &ctx, Some(&warm), command)
                    .await
                    .expect("answers"),
            );
        }
        // Kept while it holds nothing; dropped after a call that ends holding resources.
        assert_eq!(
            answers,
            [
                "call #1: held 0",
                "call #2: held 0",
                "call #3: held 2",
                "call #1: held 0",
                "call #2: held 1",
                "call #1: held 0",
                "call #2: held 0",
            ]
        );
        assert_eq!(warm.idle_count(), 1);
    }
}

/// The process's resident memory, in KiB (`VmRSS` in /proc/self/status).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test]
async fn host_memory_stays_bounded_over_many_hoarding_calls() {
    let rt = runtime();
    let plugin = hoard(&rt);
    let (granted, ungranted) = (granted(), ungranted());
    let warm = [WarmInstances::default(), WarmInstances::default()];
    // Each round: a granted call hoards until stopped (up to the 8 MiB memory limit), one
    // keeps 1.2 MB of fields in an instance that would be kept warm, and the same without the
    // grant (stopped at 16 KiB).
    let round = async |_| {
        assert!(
            run(&rt, &plugin, &granted, None, "hoard 60000")
                .await
                .is_err()
        );
        run(&rt, &plugin, &granted, Some(&warm[0]), "fields 20 60000")
            .await
            .expect("fits");
        assert!(
            run(&rt, &plugin, &ungranted, Some(&warm[1]), "hoard 1000")
                .await
                .is_err()
        );
        run(&rt, &plugin, &ungranted, Some(&warm[1]), "fields 2 1000")
            .await
            .expect("fits");
    };
    // Warm-up: the allocator settles (measured: one 8 MB step within the first 50 rounds,
    // flat for the next 750).
    for i in 0..50 {
        round(i).await;
    }
    let before = rss_kib();
    for i in 0..200 {
        round(i).await;
    }
    let after = rss_kib();
    let grown = after.saturating_sub(before);
    println!("VmRSS {before} KiB after 50 rounds, {after} KiB after 250 (+{grown} KiB)");
    // Unbounded, the kept instances alone would hold 200 × 1.2 MB more; bounded, the growth is
    // less than one hoarding call's 8 MiB.
    assert!(
        grown < 8 * 1024,
        "RSS grew by {grown} KiB: {before} → {after}"
    );
    assert_eq!((warm[0].idle_count(), warm[1].idle_count()), (0, 0));
}
