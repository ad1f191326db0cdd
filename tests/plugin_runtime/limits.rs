//! The misbehaving plugins, each stopped by its limit with a distinct error naming it, while
//! other plugins keep answering.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use wxhost::plugin::{Error, Limits, RuntimeLimits};
use wxhost::storage::{KvStore, KvUsage, MemoryKv, Namespace, RedbKv};
use wxhost::wechat;
use wxhost_tests::plugins;

use super::{context, default_context, load, reply_text, runtime, runtime_with, text};

fn limits(f: impl FnOnce(&mut Limits)) -> Limits {
    let mut l = Limits::default();
    f(&mut l);
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_is_stopped_at_its_deadline_while_others_answer() {
    // Precise stop latency is measured by the `deadline` benchmark; this checks behaviour.
    let rt = Arc::new(runtime());
    let spin = Arc::new(load(&rt, "infinite-loop", plugins::INFINITE_LOOP));
    let echo = load(&rt, "echo", plugins::ECHO);
    let ctx = context(
        "demo",
        json!({}),
        Arc::new(MemoryKv::default()),
        limits(|l| {
            l.deadline_ms = 2_000;
            l.fuel = u64::MAX / 2;
        }),
    );
    let spinning = {
        let (rt, spin, ctx) = (Arc::clone(&rt), Arc::clone(&spin), ctx.clone());
        tokio::spawn(async move { rt.call(&spin, &ctx, &text("o", "spin")).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // While it spins, echo keeps answering: every call returns before the spinner is stopped.
    for i in 0..10 {
        let report = rt
            .call(&echo, &default_context(), &text("o", &i.to_string()))
            .await;
        assert_eq!(reply_text(report.result), format!("echo: {i}"));
    }
    assert!(
        !spinning.is_finished(),
        "echo waited for the spinning plugin"
    );
    let report = spinning.await.expect("task");
    match report.result {
        Err(Error::Timeout {
            plugin,
            deadline_ms: 2_000,
        }) => assert_eq!(plugin, "infinite-loop"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(report.elapsed >= Duration::from_millis(2_000));
    assert!(
        report.elapsed < Duration::from_secs(4),
        "stopped late: {:?}",
        report.elapsed
    );
}

#[tokio::test]
async fn infinite_loop_with_a_fuel_budget_stops_deterministically() {
    let rt = runtime();
    let spin = load(&rt, "infinite-loop", plugins::INFINITE_LOOP);
    let ctx = context(
        "demo",
        json!({}),
        Arc::new(MemoryKv::default()),
        limits(|l| {
            l.fuel = 5_000_000;
            l.deadline_ms = 30_000;
        }),
    );
    let first = rt.call(&spin, &ctx, &text("o", "x")).await;
    let second = rt.call(&spin, &ctx, &text("o", "x")).await;
    for report in [&first, &second] {
        assert!(
            matches!(&report.result, Err(Error::OutOfFuel { plugin, fuel: 5_000_000 }) if plugin == "infinite-loop"),
            "{:?}",
            report.result
        );
    }
    assert_eq!(first.fuel_used, 5_000_000);
    assert_eq!(first.fuel_used, second.fuel_used);
}

#[tokio::test]
async fn memory_bomb_hits_the_memory_limit() {
    let rt = runtime();
    let bomb = load(&rt, "memory-bomb", plugins::MEMORY_BOMB);
    let ctx = context(
        "demo",
        json!({}),
        Arc::new(MemoryKv::default()),
        limits(|l| l.memory_bytes = 16 * 1024 * 1024),
    );
    let err = rt
        .call(&bomb, &ctx, &text("o", "x"))
        .await
        .result
        .expect_err("bomb stopped");
    assert!(
        matches!(&err, Error::MemoryLimit { plugin, limit_bytes } if plugin == "memory-bomb" && *limit_bytes == 16 << 20),
        "{err:?}"
    );
}

#[tokio::test]
async fn deep_recursion_traps() {
    // Rust's shadow stack lives in linear memory and overflows before wasm's own stack does,
    // so the trap is an out-of-bounds access (or a stack overflow for other toolchains).
    let rt = runtime();
    let plugin = load(&rt, "deep-recursion", plugins::DEEP_RECURSION);
    let err = rt
        .call(&plugin, &default_context(), &text("o", "x"))
        .await
        .result
        .expect_err("overflow");
    match err {
        Error::Trap { plugin, message } => {
            assert_eq!(plugin, "deep-recursion");
            assert!(
                message.contains("out of bounds memory access")
                    || message.contains("stack overflow"),
                "{message}"
            );
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[tokio::test]
async fn a_guest_panic_message_is_captured() {
    let rt = runtime();
    let plugin = load(&rt, "panic", plugins::PANIC);
    let err = rt
        .call(&plugin, &default_context(), &text("o", "boom"))
        .await
        .result
        .expect_err("panic");
    match err {
        Error::Trap { plugin, message } => {
            assert_eq!(plugin, "panic");
            assert!(message.contains("plugin exploded: boom"), "{message}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[tokio::test]
async fn a_huge_reply_is_refused_as_invalid() {
    let rt = runtime();
    let plugin = load(&rt, "huge-reply", plugins::HUGE_REPLY);
    let err = rt
        .call(&plugin, &default_context(), &text("o", "x"))
        .await
        .result
        .expect_err("too big");
    assert!(
        matches!(err, Error::InvalidReply { ref plugin, source: wechat::Error::ReplyTextTooLong(n) } if plugin == "huge-reply" && n == 4 << 20),
        "{err:?}"
    );
}

#[tokio::test]
async fn oversized_news_and_music_replies_are_the_plugins_error() {
    use wechat::reply::{MAX_REPLY_BYTES, MAX_TITLE_BYTES, MAX_URL_BYTES};
    let rt = runtime();
    let plugin = load(&rt, "reply-kinds", plugins::REPLY_KINDS);
    let ctx = default_context();
    let call = async |command: &str| rt.call(&plugin, &ctx, &text("o", command)).await;
    for command in ["news", "music"] {
        assert!(
            call(command).await.result.is_ok(),
            "an ordinary {command} is sent"
        );
    }
    for (command, expected) in [
        (
            "huge-news",
            "reply of 17206 bytes encoded exceeds the 16384-byte limit",
        ),
        (
            "long-title-news",
            "reply field `title` of 1000 bytes exceeds the 256-byte limit",
        ),
        (
            "huge-music",
            "reply field `music_url` of 4096 bytes exceeds the 2048-byte limit",
        ),
        (
            "huge-music-cdata",
            "reply of 20705 bytes encoded exceeds the 16384-byte limit",
        ),
    ] {
        let err = call(command).await.result.expect_err(command);
        assert_eq!(err.kind(), "invalid_reply", "{command}: {err:?}");
        assert_eq!(
            err.to_string(),
            format!("plugin `reply-kinds` returned an invalid reply: {expected}"),
            "{command}"
        );
        let Error::InvalidReply { plugin, source } = err else {
            unreachable!("kind is invalid_reply")
        };
        assert_eq!(plugin, "reply-kinds");
        assert_eq!(source.code(), -40011);
        match source {
            wechat::Error::ReplyTooLarge { len, limit } => {
                assert!(len > limit && limit == MAX_REPLY_BYTES, "{command}")
            }
            wechat::Error::ReplyFieldTooLong { limit, .. } => {
                assert!(
                    limit == MAX_TITLE_BYTES || limit == MAX_URL_BYTES,
                    "{command}"
                )
            }
            other => panic!("{command}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_kv_flood_is_stopped_by_the_write_quota() {
    let rt = runtime();
    let plugin = load(&rt, "kv-flood", plugins::KV_FLOOD);
    let ctx = context(
        "demo",
        json!({}),
        Arc::new(MemoryKv::default()),
        limits(|l| l.kv_writes = 25),
    );
    let answer = reply_text(rt.call(&plugin, &ctx, &text("o", "x")).await.result);
    assert_eq!(
        answer,
        "wrote 25 keys, then: kv quota exceeded: at most 25 kv writes per call"
    );
}

/// The namespace quota holds over many calls: the per-call cap (`kv_writes`, set above the
/// quota) never stops the flood, the quota does, as an error value the plugin reads; deletes
/// and overwrites work at the limit, and another plugin's namespace has its own quota.
#[tokio::test]
async fn a_kv_flood_across_calls_is_stopped_by_the_namespace_quota() {
    let rt = runtime();
    let plugin = load(&rt, "kv-flood", plugins::KV_FLOOD);
    let neighbour = load(&rt, "kv-neighbour", plugins::KV_FLOOD);
    let dir = tempfile::tempdir().expect("tempdir");
    let redb = RedbKv::open(&dir.path().join("kv.redb")).expect("open");
    let stores: [(&str, Arc<dyn KvStore>); 2] = [
        ("memory", Arc::new(MemoryKv::default())),
        ("redb", Arc::new(redb)),
    ];
    let full = "kv quota exceeded: namespace holds 25 keys, at most 25";
    for (store, kv) in stores {
        let ctx = context(
            "demo",
            json!({}),
            Arc::clone(&kv),
            limits(|l| {
                l.kv_max_keys = 25;
                l.kv_writes = 100;
            }),
        );
        let call = async |plugin, command: &str| {
            reply_text(rt.call(plugin, &ctx, &text("o", command)).await.result)
        };
        assert_eq!(call(&plugin, "a 10").await, "wrote 10 keys", "{store}");
        assert_eq!(call(&plugin, "b 10").await, "wrote 10 keys", "{store}");
        assert_eq!(
            call(&plugin, "c 10").await,
            format!("wrote 5 keys, then: {full}"),
            "{store}: the third call reaches the quota"
        );
        assert_eq!(
            call(&plugin, "d").await,
            format!("wrote 0 keys, then: {full}"),
            "{store}: and the next finds it full"
        );
        assert_eq!(
            call(&plugin, "b 10").await,
            "wrote 10 keys",
            "{store}: overwrites add no key"
        );
        assert_eq!(call(&plugin, "free a").await, "freed 10 keys", "{store}");
        assert_eq!(
            call(&plugin, "d").await,
            format!("wrote 10 keys, then: {full}"),
            "{store}: deleting freed ten"
        );
        assert_eq!(
            call(&neighbour, "a 10").await,
            "wrote 10 keys",
            "{store}: another plugin's namespace"
        );
        assert_eq!(
            kv.usage(&Namespace::new("demo", "kv-flood")).await,
            Ok(KvUsage {
                keys: 25,
                bytes: 25 * (3 + 1024)
            }),
            "{store}"
        );
        kv.flush().expect("flush");
    }
}

#[tokio::test]
async fn a_kv_flood_is_stopped_by_the_byte_quota() {
    let rt = runtime();
    let plugin = load(&rt, "kv-flood", plugins::KV_FLOOD);
    let ctx = context(
        "demo",
        json!({}),
        Arc::new(MemoryKv::default()),
        limits(|l| {
            l.kv_max_bytes = 10 * (3 + 1024) + 500;
            l.kv_writes = 100;
        }),
    );
    let answer = reply_text(rt.call(&plugin, &ctx, &text("o", "a")).await.result);
    assert_eq!(
        answer,
        "wrote 10 keys, then: kv quota exceeded: namespace holds 10270 bytes, at most 10770; \
         the write adds 1028"
    );
}

/// Instances of one plugin flooding its namespace at once: together they write exactly the
/// quota's worth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_floods_share_one_quota() {
    let rt = Arc::new(runtime());
    let plugin = Arc::new(load(&rt, "kv-flood", plugins::KV_FLOOD));
    let dir = tempfile::tempdir().expect("tempdir");
    let kv: Arc<dyn KvStore> = Arc::new(RedbKv::open(&dir.path().join("kv.redb")).expect("open"));
    let ctx = context(
        "demo",
        json!({}),
        Arc::clone(&kv),
        limits(|l| {
            l.kv_max_keys = 60;
            l.kv_writes = 1_000;
        }),
    );
    let calls: Vec<_> = (0..4)
        .map(|i| {
            let (rt, plugin, ctx) = (Arc::clone(&rt), Arc::clone(&plugin), ctx.clone());
            tokio::spawn(async move { rt.call(&plugin, &ctx, &text("o", &format!("p{i}"))).await })
        })
        .collect();
    let mut written = 0;
    for call in calls {
        let answer = reply_text(call.await.expect("task").result);
        let (n, why) = answer
            .strip_prefix("wrote ")
            .and_then(|rest| rest.split_once(" keys, then: "))
            .unwrap_or_else(|| panic!("{answer}"));
        assert_eq!(
            why, "kv quota exceeded: namespace holds 60 keys, at most 60",
            "{answer}"
        );
        written += n.parse::<u64>().expect("a count");
    }
    assert_eq!(written, 60);
    assert_eq!(
        kv.usage(&Namespace::new("demo", "kv-flood"))
            .await
            .map(|u| u.keys),
        Ok(60)
    );
}

#[tokio::test]
async fn the_sandbox_grants_nothing_and_output_is_capped() {
    let rt = runtime();
    let plugin = load(&rt, "sandbox-probe", plugins::SANDBOX_PROBE);
    let answer = reply_text(
        rt.call(&plugin, &default_context(), &text("o", "x"))
            .await
            .result,
    );
    assert!(answer.contains("files=Err("), "{answer}");
    assert!(answer.contains("passwd=Err("), "{answer}");
    assert!(answer.contains("env=0"), "{answer}");
    assert!(answer.contains("tcp=Err("), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_larger_than_the_pool_waits_instead_of_failing() {
    let rt = Arc::new(runtime_with(RuntimeLimits {
        max_concurrent_calls: 2,
        ..RuntimeLimits::default()
    }));
    let echo = Arc::new(load(&rt, "echo", plugins::ECHO));
    let calls: Vec<_> = (0..12)
        .map(|i| {
            let (rt, echo) = (Arc::clone(&rt), Arc::clone(&echo));
            tokio::spawn(async move {
                rt.call(&echo, &default_context(), &text("o", &i.to_string()))
                    .await
            })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(
            reply_text(call.await.expect("task").result),
            format!("echo: {i}")
        );
    }
}
