//! Durable plugin kv writes: per iteration, N concurrent writers (tokio tasks on two workers, as
//! plugin calls run) each increment their own counter and await `sync`, as a push that wrote kv
//! does before it is answered. `grouped` is the store as the server uses it: every sync shares
//! the commit in progress or the next one. `one_commit_per_write` makes the same writes durable
//! one at a time (a lock around increment + sync): one commit, one fsync, per write.
//!
//! `cargo bench -p wxhost-tests --bench kv_sync`

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::sync::Mutex;
use wxhost::storage::{KvStore, Namespace, RedbKv};

/// One iteration: `writers` tasks, each one increment and one sync.
async fn round(store: &Arc<RedbKv>, writers: u64, one_at_a_time: Option<&Arc<Mutex<()>>>) {
    let tasks: Vec<_> = (0..writers)
        .map(|i| {
            let store = Arc::clone(store);
            let turn = one_at_a_time.cloned();
            tokio::spawn(async move {
                let _turn = match &turn {
                    Some(lock) => Some(lock.lock().await),
                    None => None,
                };
                let ns = Namespace::new("bench", "visit-counter");
                store
                    .increment(&ns, &format!("user{i}"), 1)
                    .expect("increment");
                store.sync().await.expect("sync");
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer");
    }
}

fn durable_writes(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(RedbKv::open(&dir.path().join("kv.redb")).expect("open"));
    let lock = Arc::new(Mutex::new(()));
    let mut group = c.benchmark_group("kv_sync");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    for writers in [1u64, 8, 64] {
        group.throughput(Throughput::Elements(writers));
        group.bench_with_input(BenchmarkId::new("grouped", writers), &writers, |b, &n| {
            b.to_async(&runtime).iter(|| round(&store, n, None));
        });
        group.bench_with_input(
            BenchmarkId::new("one_commit_per_write", writers),
            &writers,
            |b, &n| {
                b.to_async(&runtime).iter(|| round(&store, n, Some(&lock)));
            },
        );
    }
    group.finish();
    let stats = store.stats();
    println!(
        "commits: {}, writes committed: {}, mean commit: {:.0} µs",
        stats.commits,
        stats.committed_writes,
        stats.commit_micros as f64 / stats.commits.max(1) as f64
    );
}

criterion_group!(benches, durable_writes);
criterion_main!(benches);
