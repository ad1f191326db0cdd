//! Per-message plugin cost: `handle` of the `echo` plugin on a typical text message in a fresh
//! instance and in a warm one, next to the same logic as a native Rust function, and the same
//! for `echo-js` and `echo-py`, the JavaScript and Python ports (componentize-js: SpiderMonkey
//! in the component; componentize-py: CPython).
//!
//! `cargo bench -p wxhost-tests --bench plugin_call`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use wxhost::plugin::{
    CallContext, Limits, Outcome, PushScope, Runtime, RuntimeLimits, WarmInstances,
};
use wxhost::storage::MemoryKv;
use wxhost::wechat::{Content, Message, Reply};
use wxhost_tests::plugins;

/// What the echo plugin does, natively.
fn native_echo(msg: &Message) -> Outcome {
    match &msg.content {
        Content::Text { content, .. } => {
            let reply = Reply::text(format!("echo: {content}"));
            match reply.validate() {
                Ok(()) => Outcome::Reply(reply),
                Err(_) => Outcome::Pass,
            }
        }
        _ => Outcome::Pass,
    }
}

fn per_message(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let runtime = Runtime::new(RuntimeLimits::default(), None).expect("plugin runtime");
    let echo = runtime
        .load("echo", &std::fs::read(plugins::ECHO).expect("echo built"))
        .expect("echo loads");
    let ctx = CallContext::new(
        "bench",
        Default::default(),
        Arc::new(MemoryKv::default()),
        Limits::default(),
    );
    let msg = Arc::new(wxhost_tests::text_message(
        "你好，请问今天营业到几点？Do you open late today?",
    ));

    let echo_js = runtime
        .load(
            "echo-js",
            &std::fs::read(plugins::ECHO_JS).expect("echo-js built"),
        )
        .expect("echo-js loads");

    let echo_py = runtime
        .load(
            "echo-py",
            &std::fs::read(plugins::ECHO_PY).expect("echo-py built"),
        )
        .expect("echo-py loads");

    let mut group = c.benchmark_group("per_message");
    group.bench_function("native_echo", |b| b.iter(|| native_echo(black_box(&msg))));
    group.bench_function("wasm_echo_fresh_instance", |b| {
        b.to_async(&tokio).iter(|| async {
            let report = runtime.call(&echo, &ctx, black_box(&msg)).await;
            assert!(report.result.is_ok());
            report
        })
    });
    let warm = WarmInstances::default();
    group.bench_function("wasm_echo_warm_instance", |b| {
        b.to_async(&tokio).iter(|| async {
            let report = runtime
                .call_with(
                    &echo,
                    &ctx,
                    Some(&warm),
                    black_box(&msg),
                    &PushScope::default(),
                )
                .await;
            assert!(report.result.is_ok());
            report
        })
    });
    group.bench_function("js_echo_fresh_instance", |b| {
        b.to_async(&tokio).iter(|| async {
            let report = runtime.call(&echo_js, &ctx, black_box(&msg)).await;
            assert!(report.result.is_ok());
            report
        })
    });
    let warm_js = WarmInstances::default();
    group.bench_function("js_echo_warm_instance", |b| {
        b.to_async(&tokio).iter(|| async {
            let report = runtime
                .call_with(
                    &echo_js,
                    &ctx,
                    Some(&warm_js),
                    black_box(&msg),
                    &PushScope::default(),
                )
                .await;
            assert!(report.result.is_ok());
            report
        })
    });
    group.bench_function("py_echo_fresh_instance", |b| {
        b.to_async(&tokio).iter(|| async {
            let report = runtime.call(&echo_py, &ctx, black_box(&msg)).await;
            assert!(report.result.is_ok());
            report
        })
    });
    let warm_py = WarmInstances::default();
    group.bench_function("py_echo_warm_instance", |b| {
        b.to_async(&tokio).iter(|| async {
            let report = runtime
                .call_with(
                    &echo_py,
                    &ctx,
                    Some(&warm_py),
                    black_box(&msg),
                    &PushScope::default(),
                )
                .await;
            assert!(report.result.is_ok());
            report
        })
    });
    group.finish();
}

criterion_group!(benches, per_message);
criterion_main!(benches);
