//! Tests of [`RedbKv`]: the contracts, durability across a SIGKILL, group commit, failures
//! (through a backend that fails fsync on demand), and the overlay under concurrency.

use std::io::{BufRead as _, Write as _};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Barrier;

use redb::backends::FileBackend;
use redb::{BackendError, Builder, StorageBackend};

use super::super::{QuotaLimit, contract};
use super::*;

/// No periodic commit during a test unless it asks for one.
const NEVER: Duration = Duration::from_secs(3600);

fn open(path: &Path, clock: Clock) -> RedbKv {
    RedbKv::open_with(path, clock, NEVER).expect("open")
}

fn ns() -> Namespace {
    Namespace::new("t", "p")
}

/// Polls `cond` every 10 ms for up to 10 s.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A fresh store in a directory of its own, which lives as long as the store.
async fn fresh(clock: Clock) -> (RedbKv, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    (open(&dir.path().join("kv.redb"), clock), dir)
}

contract::kv_contract_tests!(fresh);

#[tokio::test]
async fn redb_store_purges() {
    let (clock, now) = contract::manual_clock();
    contract::purges(&fresh(clock).await.0, &now).await;
}

#[test]
fn redb_facts_meet_the_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (clock, now) = contract::manual_clock();
    let store = open(&dir.path().join("kv.redb"), clock);
    contract::facts(&store, &store, &now);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redb_quotas_hold_under_concurrent_writers_over_committed_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(&dir.path().join("kv.redb"), system_clock()));
    contract::concurrent_quota(Arc::clone(&store) as Arc<dyn super::super::KvStore>).await;
    let store = &*store;
    // Again over committed entries: each writer reads what it replaces from the database.
    let ns = Namespace::new("tenant-race", "keys");
    let quota = Quota {
        max_keys: 50,
        max_bytes: u64::MAX,
    };
    std::thread::scope(|scope| {
        for t in 0..4 {
            let store = &store;
            let ns = &ns;
            scope.spawn(move || {
                for i in 0..20 {
                    let _ = store.set_within_now(ns, &format!("new{t}-{i}"), b"", None, quota);
                    let _ = store.delete_now(ns, &format!("t{t}k{i:02}"));
                    if i % 5 == 0 {
                        store.flush().expect("flush");
                    }
                }
            });
        }
    });
    let usage = store.usage_now(&ns).expect("usage");
    let counted = {
        let mut n = 0;
        for t in 0..8 {
            for i in 0..20 {
                for key in [format!("t{t}k{i:02}"), format!("new{t}-{i}")] {
                    n += u64::from(store.get_now(&ns, &key).expect("get").is_some());
                }
            }
        }
        n
    };
    assert_eq!(usage.keys, counted, "the count is what the store holds");
    assert!(usage.keys <= 50);
}

/// The usage a fresh open counts from the table is the usage the store kept while it ran.
#[test]
fn quota_accounting_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kv.redb");
    let (clock, now) = contract::manual_clock();
    let quota = Quota {
        max_keys: 3,
        max_bytes: 1_000,
    };
    let a = Namespace::new("t", "a");
    let b = Namespace::new("t", "b");
    let ttl = |s| Some(Duration::from_secs(s));
    let before = {
        let store = open(&path, Arc::clone(&clock));
        store
            .set_within_now(&a, "kept", b"12345", None, quota)
            .expect("set");
        store
            .set_within_now(&a, "long", b"x", ttl(10), quota)
            .expect("set");
        assert_eq!(store.increment_within_now(&a, "n", 42, quota), Ok(42));
        store.flush().expect("flush");
        assert_eq!(
            store.delete_now(&a, "kept"),
            Ok(true),
            "committed, then deleted"
        );
        store
            .set_within_now(&a, "short", b"yy", ttl(1), quota)
            .expect("set");
        store
            .set_within_now(&b, "other", b"z", None, quota)
            .expect("set");
        store
            .set_within_now(
                &Namespace::host("t"),
                "token",
                b"secret",
                ttl(1),
                Quota::UNLIMITED,
            )
            .expect("set");
        // Pending when the store closes: the close commits it.
        assert_eq!(store.increment_within_now(&a, "n", 58, quota), Ok(100));
        assert_eq!(
            store.set_within_now(&a, "fourth", b"", None, quota),
            Err(Error::QuotaExceeded {
                limit: QuotaLimit::Keys,
                held: 3,
                adds: 1,
                max: 3
            })
        );
        (store.usage_now(&a), store.usage_now(&b))
    };
    assert_eq!(
        before,
        (
            Ok(KvUsage {
                keys: 3,
                bytes: 5 + 4 + 7
            }),
            Ok(KvUsage { keys: 1, bytes: 6 })
        )
    );
    let store = open(&path, Arc::clone(&clock));
    assert_eq!(
        (store.usage_now(&a), store.usage_now(&b)),
        before,
        "counted again at open"
    );
    assert_eq!(
        store.set_within_now(&a, "fourth", b"", None, quota),
        Err(Error::QuotaExceeded {
            limit: QuotaLimit::Keys,
            held: 3,
            adds: 1,
            max: 3
        })
    );
    drop(store);
    // Reopened after `short` expired (it is still in the table, not purged): it is not counted.
    now.fetch_add(1_000, Ordering::SeqCst);
    let store = open(&path, Arc::clone(&clock));
    assert_eq!(
        store.usage_now(&a),
        Ok(KvUsage {
            keys: 2,
            bytes: 5 + 4
        })
    );
    assert_eq!(
        store.usage_now(&Namespace::host("t")),
        Ok(KvUsage::default())
    );
    store
        .set_within_now(&a, "fourth", b"", None, quota)
        .expect("room");
    // `long` expires while the store is open: it was filed by its expiry at open.
    now.fetch_add(9_000, Ordering::SeqCst);
    assert_eq!(
        store.usage_now(&a),
        Ok(KvUsage {
            keys: 2,
            bytes: 4 + 6
        })
    );
    store
        .set_within_now(&a, "fifth", b"", None, quota)
        .expect("room");
}

#[test]
fn data_and_facts_survive_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested/kv.redb");
    let secret = {
        let store = RedbKv::open(&path).expect("open");
        store
            .set_within_now(&ns(), "k", b"kept", None, Quota::UNLIMITED)
            .expect("set");
        store
            .set_within_now(&ns(), "gone", b"x", None, Quota::UNLIMITED)
            .expect("set");
        store.flush().expect("flush");
        assert_eq!(store.delete_now(&ns(), "gone"), Ok(true));
        store
            .put(&[contract::fact(1, 2, i64::MAX)])
            .expect("put fact");
        store.set_mark("horizon", 7).expect("mark");
        store.flush().expect("flush");
        store.secret().expect("secret")
    };
    let store = RedbKv::open(&path).expect("reopen");
    assert_eq!(store.get_now(&ns(), "k"), Ok(Some(b"kept".to_vec())));
    assert_eq!(
        store.get_now(&ns(), "gone"),
        Ok(None),
        "the deletion was committed"
    );
    assert_eq!(store.live(0), Ok(vec![contract::fact(1, 2, i64::MAX)]));
    assert_eq!(store.mark("horizon"), Ok(Some(7)));
    assert_eq!(store.secret(), Ok(secret), "the secret is kept in the file");
}

/// Set in the child process `acknowledged_writes_survive_sigkill` starts: the database path.
const SIGKILL_CHILD: &str = "WXHOST_TEST_KV_SIGKILL_CHILD";

/// The child: counts visits as the counter plugin does, syncing after each and printing the
/// count once the sync returned, until it is killed.
fn sigkill_child(path: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = RedbKv::open(path).expect("open in the child");
    let mut out = std::io::stdout();
    runtime.block_on(async {
        for n in 1u8.. {
            let visits = store
                .increment_within_now(&ns(), "visits", 1, Quota::UNLIMITED)
                .expect("increment");
            store
                .put(&[contract::fact(n, n, i64::MAX)])
                .expect("put fact");
            store.set_mark("visits", visits).expect("mark");
            store.sync().await.expect("sync");
            // A closed pipe (the parent is gone) ends the child.
            writeln!(out, "acked {visits}").expect("parent reads");
            out.flush().expect("parent reads");
        }
    });
}

/// kill -9 right after `sync` returned loses nothing: the child process acknowledges each
/// increment once its sync resolved, is killed with SIGKILL after 20, and the database it
/// leaves has every acknowledged write (the write overlay and redb's non-durable commits
/// live in the process, so without the durable commit this fails). It cannot tell an fsync
/// from a write to the page cache: that would take pulling the power.
#[test]
fn acknowledged_writes_survive_sigkill() {
    if let Some(path) = std::env::var_os(SIGKILL_CHILD) {
        sigkill_child(Path::new(&path));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kv.redb");
    let module = module_path!();
    let test = format!(
        "{}::acknowledged_writes_survive_sigkill",
        module.split_once("::").map_or(module, |(_, rest)| rest)
    );
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(SIGKILL_CHILD, &path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(n) = line.strip_prefix("acked ") {
                let _ = tx.send(n.parse::<i64>().expect("a count"));
            }
        }
    });
    let mut acked = 0;
    while acked < 20 {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(n) => acked = n,
            Err(e) => {
                let _ = child.kill();
                panic!("the child stopped acknowledging after {acked}: {e}");
            }
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    let store = RedbKv::open(&path).expect("reopen after the kill");
    let visits: i64 = String::from_utf8(
        store
            .get_now(&ns(), "visits")
            .expect("get")
            .expect("the counter is there"),
    )
    .expect("utf-8")
    .parse()
    .expect("a number");
    assert!(
        visits >= acked,
        "{acked} increments were acknowledged, {visits} survived"
    );
    assert!(store.live(0).expect("facts").len() as i64 >= acked);
    assert!(store.mark("visits").expect("mark").unwrap_or(0) >= acked);
}

#[test]
fn concurrent_syncs_share_one_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(&dir.path().join("kv.redb"), system_clock()));
    const WRITERS: usize = 32;
    let barrier = Arc::new(Barrier::new(WRITERS));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let threads: Vec<_> = (0..WRITERS)
        .map(|i| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            let handle = runtime.handle().clone();
            std::thread::spawn(move || {
                store
                    .set_within_now(&ns(), &format!("k{i}"), b"v", None, Quota::UNLIMITED)
                    .expect("set");
                // Every write is in before anyone syncs: one commit covers them all.
                barrier.wait();
                handle.block_on(store.sync())
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().expect("writer"), Ok(()));
    }
    let stats = store.stats();
    assert_eq!(stats.commits, 1, "{WRITERS} syncs, one commit: {stats:?}");
    assert_eq!(stats.committed_writes, WRITERS as u64);
    assert_eq!(stats.pending, 0);
}

#[test]
fn writers_that_sync_in_a_loop_group_their_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(&dir.path().join("kv.redb"), system_clock()));
    const WRITERS: usize = 8;
    const ROUNDS: usize = 50;
    let threads: Vec<_> = (0..WRITERS)
        .map(|i| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    store
                        .set_within_now(
                            &ns(),
                            &format!("k{i}"),
                            round.to_string().as_bytes(),
                            None,
                            Quota::UNLIMITED,
                        )
                        .expect("set");
                    store.flush().expect("flush");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("writer");
    }
    let stats = store.stats();
    assert!(
        stats.commits < (WRITERS * ROUNDS) as u64,
        "{} syncs took {} commits",
        WRITERS * ROUNDS,
        stats.commits
    );
}

#[test]
fn increments_stay_atomic_while_commits_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kv.redb");
    const THREADS: usize = 4;
    const EACH: i64 = 500;
    let total = (THREADS as i64 * EACH).to_string().into_bytes();
    {
        let store = Arc::new(open(&path, system_clock()));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    let mut last = 0;
                    for i in 0..EACH {
                        let value = store
                            .increment_within_now(&ns(), "n", 1, Quota::UNLIMITED)
                            .expect("increment");
                        assert!(value > last, "a thread's increments only go up");
                        last = value;
                        // Commits (of the others' increments too) run between increments.
                        if i % 25 == 0 {
                            store.flush().expect("flush");
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("incrementer");
        }
        assert_eq!(store.get_now(&ns(), "n"), Ok(Some(total.clone())));
        assert!(store.stats().commits > 1, "commits ran meanwhile");
    }
    let store = open(&path, system_clock());
    assert_eq!(store.get_now(&ns(), "n"), Ok(Some(total)));
}

#[test]
fn reads_see_writes_before_and_after_their_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir.path().join("kv.redb"), system_clock());
    store
        .set_within_now(&ns(), "k", b"1", None, Quota::UNLIMITED)
        .expect("set");
    assert_eq!(
        store.get_now(&ns(), "k"),
        Ok(Some(b"1".to_vec())),
        "pending"
    );
    assert_eq!(store.stats().pending, 1);
    store.flush().expect("flush");
    assert_eq!(store.stats().pending, 0);
    assert_eq!(
        store.get_now(&ns(), "k"),
        Ok(Some(b"1".to_vec())),
        "committed"
    );
    assert_eq!(store.delete_now(&ns(), "k"), Ok(true), "a committed key");
    assert_eq!(store.get_now(&ns(), "k"), Ok(None), "deleted, pending");
    assert_eq!(
        store.delete_now(&ns(), "k"),
        Ok(false),
        "a pending deletion"
    );
    assert_eq!(
        store.increment_within_now(&ns(), "k", 2, Quota::UNLIMITED),
        Ok(2),
        "over a pending deletion"
    );
    store.flush().expect("flush");
    assert_eq!(
        store.increment_within_now(&ns(), "k", 2, Quota::UNLIMITED),
        Ok(4),
        "over a committed value"
    );
    assert_eq!(store.delete_now(&ns(), "never"), Ok(false));
    assert_eq!(store.stats().pending, 1, "deleting nothing writes nothing");
}

/// Readers share a snapshot of the table between commits; one that misses a key in the
/// overlay (its write retired by a commit) must never read an older snapshot: the values a
/// reader sees only go up, and never go missing, while every write is committed.
#[test]
fn readers_never_see_a_value_older_than_the_overlay_had() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir.path().join("kv.redb"), system_clock());
    const WRITES: u64 = 2_000;
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (store, done) = (&store, &done);
        let keys = ["a", "b", "c", "d"];
        for key in keys {
            store
                .set_within_now(&ns(), key, b"0", None, Quota::UNLIMITED)
                .expect("set");
        }
        for reader in 0..2 {
            scope.spawn(move || {
                let mut last = [0u64; 4];
                while !done.load(Ordering::SeqCst) {
                    for (i, key) in keys.iter().enumerate() {
                        let value = store.get_now(&ns(), key).expect("get");
                        let value: u64 = std::str::from_utf8(
                            &value.unwrap_or_else(|| panic!("reader {reader}: {key} went missing")),
                        )
                        .expect("utf-8")
                        .parse()
                        .expect("a number");
                        assert!(
                            value >= last[i],
                            "reader {reader}: {key} went back from {} to {value}",
                            last[i]
                        );
                        last[i] = value;
                    }
                }
            });
        }
        for n in 1..=WRITES {
            for key in keys {
                store
                    .set_within_now(&ns(), key, n.to_string().as_bytes(), None, Quota::UNLIMITED)
                    .expect("set");
            }
            store.flush().expect("flush");
        }
        done.store(true, Ordering::SeqCst);
    });
    assert!(store.stats().commits >= WRITES);
}

#[test]
fn writes_nobody_syncs_are_committed_within_the_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbKv::open_with(
        &dir.path().join("kv.redb"),
        system_clock(),
        Duration::from_millis(20),
    )
    .expect("open");
    store
        .set_within_now(&ns(), "late", b"reply", None, Quota::UNLIMITED)
        .expect("set");
    eventually("the periodic commit took the write", || {
        let stats = store.stats();
        stats.commits == 1 && stats.pending == 0
    });
}

#[test]
fn expired_entries_go_through_the_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (clock, now) = contract::manual_clock();
    let store = open(&dir.path().join("kv.redb"), clock);
    let ttl = |s| Some(Duration::from_secs(s));
    store
        .set_within_now(&ns(), "a", b"x", ttl(1), Quota::UNLIMITED)
        .expect("set");
    store
        .set_within_now(&ns(), "b", b"x", ttl(1), Quota::UNLIMITED)
        .expect("set");
    store.flush().expect("flush");
    // Moved later, and made permanent: their old index entries must not purge them.
    store
        .set_within_now(&ns(), "a", b"y", ttl(100), Quota::UNLIMITED)
        .expect("set");
    store
        .set_within_now(&ns(), "b", b"y", None, Quota::UNLIMITED)
        .expect("set");
    store
        .set_within_now(&ns(), "c", b"x", ttl(1), Quota::UNLIMITED)
        .expect("set");
    store.flush().expect("flush");
    now.fetch_add(1_000, Ordering::SeqCst);
    assert_eq!(store.purge_expired(), Ok(1), "only c");
    assert_eq!(store.get_now(&ns(), "a"), Ok(Some(b"y".to_vec())));
    assert_eq!(store.get_now(&ns(), "b"), Ok(Some(b"y".to_vec())));
    now.fetch_add(100_000, Ordering::SeqCst);
    assert_eq!(store.purge_expired(), Ok(1), "then a");
    assert_eq!(store.get_now(&ns(), "b"), Ok(Some(b"y".to_vec())));
    // Many at once: more than one purge transaction.
    let many = PURGE_CHUNK * 2 + 10;
    for i in 0..many {
        store
            .set_within_now(&ns(), &format!("m{i}"), b"x", ttl(1), Quota::UNLIMITED)
            .expect("set");
    }
    store
        .put(
            &(0..=255u8)
                .map(|n| contract::fact(n, 0, now_secs(now.load(Ordering::SeqCst))))
                .collect::<Vec<_>>(),
        )
        .expect("put facts");
    now.fetch_add(1_000, Ordering::SeqCst);
    assert_eq!(store.purge_expired(), Ok(many + 256));
    assert_eq!(store.get_now(&ns(), "b"), Ok(Some(b"y".to_vec())));
}

#[test]
fn a_database_from_before_the_expiry_index_gets_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kv.redb");
    let (clock, now) = contract::manual_clock();
    let start = now.load(Ordering::SeqCst);
    {
        // What the store wrote before: plugin_kv only.
        let db = Database::create(&path).expect("create");
        let txn = db.begin_write().expect("write");
        {
            let mut kv = txn.open_table(KV).expect("table");
            let expiring = Entry::new(b"x", Some(Duration::from_secs(1)), start).encode();
            let kept = Entry::new(b"y", None, start).encode();
            kv.insert(ns().storage_key("expiring").as_slice(), expiring.as_slice())
                .expect("insert");
            kv.insert(ns().storage_key("kept").as_slice(), kept.as_slice())
                .expect("insert");
        }
        txn.commit().expect("commit");
    }
    let store = open(&path, clock);
    assert_eq!(store.get_now(&ns(), "expiring"), Ok(Some(b"x".to_vec())));
    now.fetch_add(1_000, Ordering::SeqCst);
    assert_eq!(store.purge_expired(), Ok(1));
    assert_eq!(store.get_now(&ns(), "kept"), Ok(Some(b"y".to_vec())));
}

/// What the faulty backend is told to do, and what it saw.
#[derive(Debug, Default)]
struct Faults {
    fail_sync: AtomicBool,
    syncs: AtomicU64,
}

/// A file backend whose fsync fails while `fail_sync` is set.
#[derive(Debug)]
struct FaultyBackend {
    file: FileBackend,
    faults: Arc<Faults>,
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> std::io::Result<u64> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.faults.syncs.fetch_add(1, Ordering::SeqCst);
        if self.faults.fail_sync.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("injected fsync failure"));
        }
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.file.write(offset, data)
    }
    fn close(&self) -> std::io::Result<()> {
        self.file.close()
    }
    fn try_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> std::result::Result<bool, BackendError> {
        self.file.try_lock_range(start, end)
    }
    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> std::result::Result<bool, BackendError> {
        self.file.try_lock_shared_range(start, end)
    }
    fn lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> std::result::Result<(), BackendError> {
        self.file.lock_range(start, end)
    }
    fn lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> std::result::Result<(), BackendError> {
        self.file.lock_shared_range(start, end)
    }
    fn unlock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> std::result::Result<(), BackendError> {
        self.file.unlock_range(start, end)
    }
    fn query_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> std::result::Result<bool, BackendError> {
        self.file.query_lock_range(start, end)
    }
}

/// A store on `path` whose fsyncs `faults` controls (on every reopen too).
fn faulty(path: &Path, faults: &Arc<Faults>, commit_every: Duration) -> RedbKv {
    let (path, faults): (PathBuf, _) = (path.to_path_buf(), Arc::clone(faults));
    let opener: Opener = Box::new(move || {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        Builder::new().create_with_backend(FaultyBackend {
            file: FileBackend::new(file)?,
            faults: Arc::clone(&faults),
        })
    });
    RedbKv::start(opener, system_clock(), commit_every).expect("open")
}

#[tokio::test]
async fn a_failed_commit_is_reported_and_its_batch_kept_until_one_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kv.redb");
    let faults = Arc::new(Faults::default());
    {
        let store = faulty(&path, &faults, NEVER);
        store
            .set_within_now(&ns(), "before", b"1", None, Quota::UNLIMITED)
            .expect("set");
        store.sync().await.expect("a healthy commit");
        assert!(
            faults.syncs.load(Ordering::SeqCst) > 0,
            "the backend is used"
        );

        faults.fail_sync.store(true, Ordering::SeqCst);
        store
            .set_within_now(&ns(), "kept", b"2", None, Quota::UNLIMITED)
            .expect("set");
        assert_eq!(
            store.increment_within_now(&ns(), "n", 5, Quota::UNLIMITED),
            Ok(5)
        );
        let (a, b) = tokio::join!(store.sync(), store.sync());
        for result in [a, b] {
            match result {
                Err(Error::Backend(reason)) => {
                    assert!(reason.contains("injected fsync failure"), "{reason}");
                }
                other => panic!("a failed commit must fail its syncs: {other:?}"),
            }
        }
        assert!(matches!(
            store.set_within_now(&ns(), "refused", b"3", None, Quota::UNLIMITED),
            Err(Error::Backend(_))
        ));
        assert!(matches!(
            store.increment_within_now(&ns(), "n", 1, Quota::UNLIMITED),
            Err(Error::Backend(_))
        ));
        assert!(matches!(
            store.put(&[contract::fact(1, 1, 1)]),
            Err(Error::Backend(_))
        ));
        let stats = store.stats();
        assert!(stats.failed_commits >= 1, "{stats:?}");
        assert!(stats.refused_writes >= 3, "{stats:?}");
        assert!(stats.failing.is_some());
        assert_eq!(
            store.get_now(&ns(), "kept"),
            Ok(Some(b"2".to_vec())),
            "the kept batch is still read"
        );
        assert!(matches!(store.sync().await, Err(Error::Backend(_))));

        // The disk comes back: the committer retries on its own and writes are accepted.
        faults.fail_sync.store(false, Ordering::SeqCst);
        eventually("writes are accepted again", || {
            store
                .set_within_now(&ns(), "after", b"4", None, Quota::UNLIMITED)
                .is_ok()
        });
        store.sync().await.expect("a commit after recovery");
        assert_eq!(store.stats().failing, None);
        assert_eq!(store.get_now(&ns(), "kept"), Ok(Some(b"2".to_vec())));
    }
    let store = RedbKv::open(&path).expect("reopen");
    assert_eq!(store.get_now(&ns(), "before"), Ok(Some(b"1".to_vec())));
    assert_eq!(
        store.get_now(&ns(), "kept"),
        Ok(Some(b"2".to_vec())),
        "the batch of the failed commit was retried, not dropped"
    );
    assert_eq!(store.get_now(&ns(), "n"), Ok(Some(b"5".to_vec())));
    assert_eq!(store.get_now(&ns(), "refused"), Ok(None));
    assert_eq!(store.get_now(&ns(), "after"), Ok(Some(b"4".to_vec())));
}

#[test]
fn a_failed_flush_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let faults = Arc::new(Faults::default());
    let store = faulty(&dir.path().join("kv.redb"), &faults, NEVER);
    faults.fail_sync.store(true, Ordering::SeqCst);
    store
        .set_within_now(&ns(), "k", b"v", None, Quota::UNLIMITED)
        .expect("set");
    assert!(matches!(store.flush(), Err(Error::Backend(_))));
    faults.fail_sync.store(false, Ordering::SeqCst);
    // flush waits for the next attempt (at most RETRY_MIN after the failure) instead of
    // failing at once.
    store.flush().expect("flush after recovery");
    assert_eq!(store.stats().pending, 0);
}
