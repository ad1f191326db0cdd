//! Durable plugin kv writes: per iteration, N concurrent writers (tokio tasks on two workers, as
//! plugin calls run) each increment their own counter and await `sync`, as a push that wrote kv
//! does before it is answered. `grouped` is the store as the server uses it: every sync shares
//! the commit in progress or the next one. `one_commit_per_write` makes the same writes durable
//! one at a time (a lock around increment + sync): one commit, one fsync, per write.
//!
//! `kv_set` is the cost of one `set` as a plugin's call pays it (no sync): `new_key` writes a
//! key the store has never held, `overwrite` cycles through 100,000 committed keys (each set
//! reads what it replaces, from the overlay or the database), in a store of 100,000 entries.
//!
//! `cargo bench -p wxhost-tests --bench kv_sync`

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::FutureExt as _;
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
                    .await
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

/// Committed entries the `kv_set` store starts with.
const PRESET: u64 = 100_000;

fn sets(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbKv::open(&dir.path().join("kv.redb")).expect("open");
    let ns = Namespace::new("bench", "sets");
    let value = [7u8; 64];
    for i in 0..PRESET {
        store
            .set(&ns, &format!("key{i}"), &value, None)
            .now_or_never()
            .expect("ready at once")
            .expect("preset");
    }
    store.flush().expect("flush");
    let mut group = c.benchmark_group("kv_set");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1));
    let mut n = 0u64;
    group.bench_function("new_key", |b| {
        b.iter(|| {
            n += 1;
            store
                .set(&ns, &format!("new{n}"), &value, None)
                .now_or_never()
                .expect("ready at once")
                .expect("set");
        });
    });
    let mut i = 0u64;
    group.bench_function("overwrite", |b| {
        b.iter(|| {
            i = (i + 1) % PRESET;
            store
                .set(&ns, &format!("key{i}"), &value, None)
                .now_or_never()
                .expect("ready at once")
                .expect("set");
        });
    });
    group.finish();
}

criterion_group!(benches, durable_writes, sets);
criterion_main!(benches);
