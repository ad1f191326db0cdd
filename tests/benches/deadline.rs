//! Deadline and fuel enforcement: the infinite-loop plugin under a 200 ms deadline, measured
//! from the call to the returned timeout, while another task keeps calling `echo` and records
//! its latency; then the same plugin under a fuel budget, which stops deterministically.
//!
//! `cargo bench -p wxhost-tests --bench deadline`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wxhost::plugin::{CallContext, Error, Limits, Runtime, RuntimeLimits};
use wxhost::storage::MemoryKv;
use wxhost_tests::plugins;

const RUNS: usize = 20;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn main() {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    tokio.block_on(run());
}

async fn run() {
    let runtime = Arc::new(Runtime::new(RuntimeLimits::default(), None).expect("runtime"));
    let spin = runtime
        .load(
            "infinite-loop",
            &std::fs::read(plugins::INFINITE_LOOP).expect("built"),
        )
        .expect("loads");
    let echo = Arc::new(
        runtime
            .load("echo", &std::fs::read(plugins::ECHO).expect("built"))
            .expect("loads"),
    );
    let kv = Arc::new(MemoryKv::default());
    let deadline_ctx = CallContext::new(
        "bench",
        Default::default(),
        kv.clone(),
        Limits {
            deadline_ms: 200,
            fuel: u64::MAX / 2,
            ..Limits::default()
        },
    );
    let echo_ctx = CallContext::new("bench", Default::default(), kv.clone(), Limits::default());
    let msg = wxhost_tests::text_message("ping");

    // Background echo traffic for the whole deadline run.
    let running = Arc::new(AtomicBool::new(true));
    let traffic = {
        let (runtime, echo, ctx, msg, running) = (
            runtime.clone(),
            echo.clone(),
            echo_ctx.clone(),
            msg.clone(),
            running.clone(),
        );
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while running.load(Ordering::Relaxed) {
                let started = Instant::now();
                let report = runtime.call(&echo, &ctx, &msg).await;
                assert!(report.result.is_ok());
                latencies.push(started.elapsed());
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            latencies
        })
    };

    let mut stops = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        let report = runtime.call(&spin, &deadline_ctx, &msg).await;
        assert!(
            matches!(report.result, Err(Error::Timeout { .. })),
            "{:?}",
            report.result
        );
        stops.push(started.elapsed());
    }
    running.store(false, Ordering::Relaxed);
    let mut echo_latencies = traffic.await.expect("traffic task");
    stops.sort();
    echo_latencies.sort();
    println!("infinite-loop, 200 ms deadline, {RUNS} runs: stopped after");
    println!(
        "  min {:?}  median {:?}  max {:?}",
        stops[0],
        percentile(&stops, 0.5),
        stops[RUNS - 1]
    );
    println!(
        "echo meanwhile: {} calls, latency median {:?}  p99 {:?}  max {:?}",
        echo_latencies.len(),
        percentile(&echo_latencies, 0.5),
        percentile(&echo_latencies, 0.99),
        echo_latencies[echo_latencies.len() - 1]
    );

    let fuel_ctx = CallContext::new(
        "bench",
        Default::default(),
        kv,
        Limits {
            fuel: 100_000_000,
            deadline_ms: 60_000,
            ..Limits::default()
        },
    );
    let mut used = Vec::new();
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let report = runtime.call(&spin, &fuel_ctx, &msg).await;
        assert!(
            matches!(report.result, Err(Error::OutOfFuel { .. })),
            "{:?}",
            report.result
        );
        times.push(started.elapsed());
        used.push(report.fuel_used);
    }
    used.dedup();
    println!(
        "infinite-loop, fuel budget 100000000: out of fuel every time, fuel used {used:?}, after {:?}",
        times
    );
}
