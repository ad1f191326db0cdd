//! Instances kept warm between the calls of one chain entry: reused in order, never across
//! contexts or plugin loads, replaced after `calls_per_instance`, dropped after a trap or a
//! bloated memory, and bounded by `max_idle_instances`.

use std::sync::Arc;

use serde_json::json;
use wxhost::plugin::{
    CallContext, Limits, Plugin, PushScope, Runtime, RuntimeLimits, WarmInstances,
};
use wxhost::storage::MemoryKv;

use super::{context, default_context, load, reply_text, runtime, runtime_with, text};

fn instance_state(rt: &Runtime) -> Plugin {
    load(rt, "instance-state", wxhost_test_plugins::INSTANCE_STATE)
}

/// Calls `plugin` on `content` in `warm`; the reply text or the error.
async fn call(
    rt: &Runtime,
    plugin: &Plugin,
    ctx: &CallContext,
    warm: &WarmInstances,
    content: &str,
) -> Result<String, String> {
    let report = rt
        .call_with(
            plugin,
            ctx,
            Some(warm),
            &Arc::new(text("o", content)),
            &PushScope::default(),
        )
        .await;
    match report.result {
        Ok(_) => Ok(reply_text(report.result)),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test]
async fn an_instance_serves_its_entry_until_calls_per_instance() {
    let rt = runtime();
    let plugin = instance_state(&rt);
    let limits = Limits {
        calls_per_instance: 3,
        ..Limits::default()
    };
    let ctx = context("demo", json!({}), Arc::new(MemoryKv::default()), limits);
    let warm = WarmInstances::default();
    let mut answers = Vec::new();
    for _ in 0..7 {
        answers.push(
            call(&rt, &plugin, &ctx, &warm, "hi")
                .await
                .expect("answers"),
        );
    }
    let calls: Vec<&str> = answers
        .iter()
        .map(|a| a.trim_start_matches("instance call #"))
        .collect();
    assert_eq!(calls, ["1", "2", "3", "1", "2", "3", "1"]);
    assert_eq!(warm.idle_count(), 1);
}

#[tokio::test]
async fn without_a_warm_pool_or_with_one_call_per_instance_every_call_is_fresh() {
    let rt = runtime();
    let plugin = instance_state(&rt);
    let ctx = default_context();
    for _ in 0..3 {
        let report = rt.call(&plugin, &ctx, &text("o", "hi")).await;
        assert_eq!(reply_text(report.result), "instance call #1");
    }
    let once = context(
        "demo",
        json!({}),
        Arc::new(MemoryKv::default()),
        Limits {
            calls_per_instance: 1,
            ..Limits::default()
        },
    );
    let warm = WarmInstances::default();
    for _ in 0..3 {
        assert_eq!(
            call(&rt, &plugin, &once, &warm, "hi").await.as_deref(),
            Ok("instance call #1")
        );
    }
    assert_eq!(warm.idle_count(), 0);
}

#[tokio::test]
async fn a_trap_drops_the_instance_but_an_error_value_keeps_it() {
    let rt = runtime();
    let plugin = instance_state(&rt);
    let ctx = default_context();
    let warm = WarmInstances::default();
    assert_eq!(
        call(&rt, &plugin, &ctx, &warm, "hi").await.as_deref(),
        Ok("instance call #1")
    );
    let failed = call(&rt, &plugin, &ctx, &warm, "fail")
        .await
        .expect_err("an error value");
    assert!(
        failed.contains("asked to fail in instance call #2"),
        "{failed}"
    );
    assert_eq!(
        call(&rt, &plugin, &ctx, &warm, "hi").await.as_deref(),
        Ok("instance call #3")
    );
    let trapped = call(&rt, &plugin, &ctx, &warm, "panic")
        .await
        .expect_err("a trap");
    assert!(
        trapped.contains("asked to panic in instance call #4"),
        "{trapped}"
    );
    assert_eq!(warm.idle_count(), 0, "the trapped instance is gone");
    assert_eq!(
        call(&rt, &plugin, &ctx, &warm, "hi").await.as_deref(),
        Ok("instance call #1")
    );
}

#[tokio::test]
async fn an_instance_whose_memory_grew_past_the_warm_cap_since_instantiation_is_not_kept() {
    let rt = runtime();
    let plugin = instance_state(&rt);
    let ctx = default_context();
    let warm = WarmInstances::default();
    let over = wxhost::plugin::WARM_MEMORY_GROWTH / (1024 * 1024) + 1;
    assert_eq!(
        call(&rt, &plugin, &ctx, &warm, "grow 1").await.as_deref(),
        Ok("instance call #1")
    );
    assert_eq!(
        call(&rt, &plugin, &ctx, &warm, "hi").await.as_deref(),
        Ok("instance call #2")
    );
    let grown = call(&rt, &plugin, &ctx, &warm, &format!("grow {over}")).await;
    assert_eq!(grown.as_deref(), Ok("instance call #3"));
    assert_eq!(warm.idle_count(), 0);
    assert_eq!(
        call(&rt, &plugin, &ctx, &warm, "hi").await.as_deref(),
        Ok("instance call #1")
    );
}

#[tokio::test]
async fn instances_never_cross_contexts_or_plugin_loads() {
    let rt = runtime();
    let plugin = instance_state(&rt);
    let (tenant_a, tenant_b) = (default_context(), default_context());
    let warm = WarmInstances::default();
    assert_eq!(
        call(&rt, &plugin, &tenant_a, &warm, "hi").await.as_deref(),
        Ok("instance call #1")
    );
    assert_eq!(
        call(&rt, &plugin, &tenant_b, &warm, "hi").await.as_deref(),
        Ok("instance call #1"),
        "another context (another tenant, or a changed config) never gets a kept instance"
    );
    let mut changed = tenant_b.clone();
    changed.limits.fuel = 1_000_000_000;
    assert_eq!(
        call(&rt, &plugin, &changed, &warm, "hi").await.as_deref(),
        Ok("instance call #1"),
        "nor does the same context with other limits"
    );
    let reloaded = instance_state(&rt);
    assert_eq!(
        call(&rt, &plugin, &changed, &warm, "hi").await.as_deref(),
        Ok("instance call #2")
    );
    assert_eq!(
        call(&rt, &reloaded, &changed, &warm, "hi").await.as_deref(),
        Ok("instance call #1"),
        "a reloaded plugin starts in a fresh instance"
    );
}

#[tokio::test]
async fn max_idle_instances_bounds_the_instances_kept() {
    let rt = runtime_with(RuntimeLimits {
        max_idle_instances: 1,
        ..RuntimeLimits::default()
    });
    let plugin = instance_state(&rt);
    let (ctx_a, ctx_b) = (default_context(), default_context());
    let (warm_a, warm_b) = (WarmInstances::default(), WarmInstances::default());
    for expected in ["instance call #1", "instance call #2", "instance call #3"] {
        assert_eq!(
            call(&rt, &plugin, &ctx_a, &warm_a, "hi").await.as_deref(),
            Ok(expected)
        );
        assert_eq!(
            call(&rt, &plugin, &ctx_b, &warm_b, "hi").await.as_deref(),
            Ok("instance call #1"),
            "the one idle place is taken by the first entry"
        );
    }
    assert_eq!((warm_a.idle_count(), warm_b.idle_count()), (1, 0));
    drop(warm_a);
    assert_eq!(
        call(&rt, &plugin, &ctx_b, &warm_b, "hi").await.as_deref(),
        Ok("instance call #1")
    );
    assert_eq!(
        call(&rt, &plugin, &ctx_b, &warm_b, "hi").await.as_deref(),
        Ok("instance call #2")
    );
}

#[tokio::test]
async fn javascript_and_python_instances_are_kept_warm_their_runtime_s_memory_not_counted() {
    // SpiderMonkey and CPython start with far more than the growth an instance may keep idle:
    // only what a call grows counts.
    let rt = runtime();
    for (name, path) in [
        ("echo-js", wxhost_test_plugins::ECHO_JS),
        ("echo-py", wxhost_test_plugins::ECHO_PY),
    ] {
        kept_warm(&rt, &load(&rt, name, path)).await;
    }
}

async fn kept_warm(rt: &Runtime, plugin: &Plugin) {
    let ctx = default_context();
    let warm = WarmInstances::default();
    for n in 0..3 {
        assert_eq!(
            call(rt, plugin, &ctx, &warm, &format!("hi {n}"))
                .await
                .as_deref(),
            Ok(format!("echo: hi {n}").as_str())
        );
        assert_eq!(warm.idle_count(), 1, "kept after call {n}");
    }
}
