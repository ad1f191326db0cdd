//! The embedded durable [`KvStore`] and [`FactStore`]: one redb file under the data directory,
//! written by one committer thread (group commit).
//!
//! A write never waits on the disk or on redb's write lock: it goes into the in-memory
//! [`Overlay`], which reads (and the read half of `set`/`increment`/`delete`) consult before the
//! database. The committer takes everything pending, writes it in one transaction with
//! [`Durability::Immediate`] (one fsync for everything that arrived meanwhile), then retires
//! what it wrote. It commits when someone waits ([`KvStore::sync`], [`KvStore::flush`]) and
//! at least every second on its own, so writes nobody waits for (late replies, tokens) are
//! durable within a second. Reads of the database share one read snapshot of the kv table
//! between commits (opening a read transaction and the table costs more than the lookup); each
//! commit replaces it before its writes leave the overlay, so a reader never finds a key in
//! neither.
//!
//! When a commit fails, every waiting `sync` gets the error, writes are refused (plugins see
//! `kv::Error::Unavailable`) and the pending batch is **kept**: reads still see it, and the
//! committer retries it (reopening the database, which redb requires after an I/O error) after
//! 50 ms, doubling up to a second, and at once when someone syncs (at most every 50 ms). The
//! first commit that succeeds makes the whole batch durable and accepts writes again. Nothing
//! accepted is dropped unless the process ends while the store cannot commit.
//!
//! Expiry: kv entries with a TTL are indexed by their expiry, so forgetting expired ones deletes
//! a range of the index (and the entries it names) in small non-durable transactions between
//! commits, never a scan of the table. Facts are packed one row per commit, and a row goes
//! once all of its facts have expired (its header says when, without reading them).
//!
//! Quotas: what each namespace holds is counted in memory ([`Usage`]), from one pass over the
//! table at open, then by every write under the overlay lock of its key (a `set` reads what it
//! replaces, from the overlay or the database, to charge the difference). An expired entry
//! stops counting at its expiry; the purge that deletes it later does not touch the counts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{
    Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition,
    WriteTransaction,
};

use super::overlay::{Batch, Overlay, keep_longest};
use super::usage::{Stored, Usage};
use super::{
    Clock, Entry, Error, Fact, FactStore, InProcessKv, KvUsage, Namespace, Quota, Result,
    StorageStats, SyncFuture, new_secret, system_clock,
};

/// Plugin kv: `tenant NUL plugin NUL key` → `expiry ‖ value`.
const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("plugin_kv");
/// (expiry ms, kv key) for every kv entry with a TTL.
const KV_EXPIRY: TableDefinition<(u64, &[u8]), ()> = TableDefinition::new("plugin_kv_expiry");
/// Fact key → until.
/// Facts, packed: one row per commit that put any, keyed by a sequence number, its value the
/// row's latest `until` then each fact (key, value, until) in 40 bytes. A push's facts cost a
/// share of one row written once per commit instead of two index entries each (those took a
/// fifth of the server's CPU under load), and forgetting them deletes whole rows.
const FACT_BATCHES: TableDefinition<u64, &[u8]> = TableDefinition::new("fact_batches");
/// Bytes of one packed fact.
const PACKED_FACT: usize = 40;
/// Marks kept with the facts.
const MARKS: TableDefinition<&str, i64> = TableDefinition::new("marks");
/// The store's own settings.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// The fact secret (32 bytes).
const SECRET: &str = "fact_secret";
/// Present once `KV_EXPIRY` indexes every kv entry (a database written before the index gets
/// it built once, at open).
const KV_EXPIRY_BUILT: &str = "plugin_kv_expiry_built";

/// How often the committer commits on its own, and forgets expired entries.
const COMMIT_EVERY: Duration = Duration::from_secs(1);
/// The first wait before retrying a failed commit; it doubles up to `RETRY_MAX`.
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(1);
/// Expired kv entries, and expired fact rows, deleted per purge transaction.
const PURGE_CHUNK: usize = 1024;

/// The kv table as a read transaction sees it.
type KvTable = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// Opens the database (again, after a failure).
type Opener = Box<dyn Fn() -> std::result::Result<Database, redb::DatabaseError> + Send + Sync>;

/// A [`KvStore`](super::KvStore) and [`FactStore`] in a redb database file.
pub struct RedbKv {
    shared: Arc<Shared>,
    committer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RedbKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbKv").finish_non_exhaustive()
    }
}

/// What the handle and the committer share.
struct Shared {
    overlay: Overlay,
    /// What each namespace holds, overlay included.
    usage: Usage,
    /// `None` while it is reopened after a failure.
    db: RwLock<Option<Arc<Database>>>,
    /// The kv table as of the last commit, shared by readers (a read transaction and the
    /// table cost more to open than the lookup), tagged with the `generation` it was opened in.
    snapshot: RwLock<Option<(u64, Arc<KvTable>)>>,
    /// Moves on after every commit and purge that changed the table, before the overlay
    /// retires what it wrote, and on a reopen: a snapshot of an older generation is not used
    /// (a reader that misses a key in the overlay sees the generation of its commit or a later
    /// one).
    generation: AtomicU64,
    opener: Opener,
    clock: Clock,
    secret: [u8; 32],
    commit_every: Duration,
    /// Every write numbered below this is durable (changed with `control` held).
    durable: AtomicU64,
    /// The last commit failed (and none succeeded since): writes are refused.
    failing: AtomicBool,
    failure: Mutex<Option<String>>,
    control: Mutex<Control>,
    wake: Condvar,
    stats: Counters,
}

/// Who waits for the committer, and whether it should stop.
#[derive(Default)]
struct Control {
    waiters: Vec<Waiter>,
    purges: Vec<Box<dyn FnOnce(Result<usize>) + Send>>,
    stop: bool,
    /// The committer is gone: nothing more will be committed.
    stopped: bool,
}

/// Someone waiting until every write numbered below `want` is durable.
struct Waiter {
    want: u64,
    done: Box<dyn FnOnce(Result<()>) + Send>,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    committed_writes: AtomicU64,
    commit_micros: AtomicU64,
    failed_commits: AtomicU64,
    refused_writes: AtomicU64,
    purged: AtomicU64,
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

fn stopped() -> Error {
    Error::Backend("the storage committer has stopped".into())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section below leaves its data whole; a panic elsewhere does not matter.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Seconds since the epoch from the clock's milliseconds.
fn now_secs(now_ms: u64) -> i64 {
    i64::try_from(now_ms / 1000).unwrap_or(i64::MAX)
}

/// The expiry in a stored kv value (0 = never, or unreadable).
fn stored_expiry(bytes: &[u8]) -> u64 {
    bytes
        .first_chunk::<8>()
        .map_or(0, |header| u64::from_be_bytes(*header))
}

impl RedbKv {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        RedbKv::open_with_clock(path, system_clock())
    }

    /// [`RedbKv::open`] reading time from `clock`.
    pub fn open_with_clock(path: &Path, clock: Clock) -> Result<Self> {
        RedbKv::open_with(path, clock, COMMIT_EVERY)
    }

    /// [`RedbKv::open_with_clock`], committing on its own every `commit_every`.
    fn open_with(path: &Path, clock: Clock, commit_every: Duration) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(backend)?;
        }
        let path = path.to_path_buf();
        RedbKv::start(
            Box::new(move || Database::create(&path)),
            clock,
            commit_every,
        )
    }

    /// Opens the database with `opener` and starts the committer.
    fn start(opener: Opener, clock: Clock, commit_every: Duration) -> Result<Self> {
        let db = opener().map_err(backend)?;
        let secret = prepare(&db)?;
        let usage = Usage::new();
        count_usage(&db, &usage, clock())?;
        let shared = Arc::new(Shared {
            overlay: Overlay::new(),
            usage,
            db: RwLock::new(Some(Arc::new(db))),
            snapshot: RwLock::new(None),
            generation: AtomicU64::new(0),
            opener,
            clock,
            secret,
            commit_every,
            durable: AtomicU64::new(1),
            failing: AtomicBool::new(false),
            failure: Mutex::new(None),
            control: Mutex::default(),
            wake: Condvar::new(),
            stats: Counters::default(),
        });
        let committer = std::thread::Builder::new()
            .name("wxhost-kv-commit".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || shared.run_committer()
            })
            .map_err(backend)?;
        Ok(RedbKv {
            shared,
            committer: Some(committer),
        })
    }
}

impl Drop for RedbKv {
    /// Commits what is pending and stops the committer.
    fn drop(&mut self) {
        lock(&self.shared.control).stop = true;
        self.shared.wake.notify_all();
        if let Some(committer) = self.committer.take()
            && committer.join().is_err()
        {
            tracing::error!("the plugin storage committer panicked");
        }
    }
}

/// Creates the tables, the fact secret and the expiry index if missing; returns the secret.
fn prepare(db: &Database) -> Result<[u8; 32]> {
    let txn = db.begin_write().map_err(backend)?;
    let secret = {
        let kv = txn.open_table(KV).map_err(backend)?;
        let mut expiry = txn.open_table(KV_EXPIRY).map_err(backend)?;
        txn.open_table(FACT_BATCHES).map_err(backend)?;
        txn.open_table(MARKS).map_err(backend)?;
        let mut meta = txn.open_table(META).map_err(backend)?;
        if meta.get(KV_EXPIRY_BUILT).map_err(backend)?.is_none() {
            for row in kv.iter().map_err(backend)? {
                let (key, value) = row.map_err(backend)?;
                let at = stored_expiry(value.value());
                if at != 0 {
                    expiry.insert((at, key.value()), ()).map_err(backend)?;
                }
            }
            meta.insert(KV_EXPIRY_BUILT, [1u8].as_slice())
                .map_err(backend)?;
        }
        let stored = meta
            .get(SECRET)
            .map_err(backend)?
            .and_then(|v| <[u8; 32]>::try_from(v.value()).ok());
        match stored {
            Some(secret) => secret,
            None => {
                let secret = new_secret();
                meta.insert(SECRET, secret.as_slice()).map_err(backend)?;
                secret
            }
        }
    };
    txn.commit().map_err(backend)?;
    Ok(secret)
}

/// Counts what every namespace holds (one pass over the kv table, reading each value's
/// header and length, not copying it).
fn count_usage(db: &Database, usage: &Usage, now_ms: u64) -> Result<()> {
    let txn = db.begin_read().map_err(backend)?;
    let kv = txn.open_table(KV).map_err(backend)?;
    for row in kv.iter().map_err(backend)? {
        let (key, value) = row.map_err(backend)?;
        usage.load(key.value(), stored(value.value())?, now_ms);
    }
    Ok(())
}

/// What a stored kv value counts for (its expiry and the length of its bytes).
fn stored(bytes: &[u8]) -> Result<Stored> {
    let (expiry, value) = bytes
        .split_first_chunk::<8>()
        .ok_or_else(|| Error::Backend("stored entry shorter than its header".into()))?;
    Ok(Stored {
        expires_at_ms: u64::from_be_bytes(*expiry),
        value_len: value.len(),
    })
}

impl Shared {
    fn database(&self) -> Result<Arc<Database>> {
        self.db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| Error::Backend("storage is being reopened after a failed commit".into()))
    }

    /// The kv table with every commit whose generation has begun: the shared snapshot when it
    /// is current, else a fresh one (kept for the next readers unless a commit ended
    /// meanwhile).
    fn kv_table(&self) -> Result<Arc<KvTable>> {
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some((at, table)) = &*self.snapshot.read().unwrap_or_else(PoisonError::into_inner)
            && *at == generation
        {
            return Ok(Arc::clone(table));
        }
        let db = self.database()?;
        let txn = db.begin_read().map_err(backend)?;
        let table = Arc::new(txn.open_table(KV).map_err(backend)?);
        let mut slot = self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if self.generation.load(Ordering::SeqCst) == generation {
            *slot = Some((generation, Arc::clone(&table)));
        }
        Ok(table)
    }

    /// The table changed (or the database is reopened): readers open a new snapshot.
    fn new_generation(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        // Dropped now, not by the next reader: it pins the pages it reads (and the database).
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The committed entry at `key`, live or not.
    fn read(&self, key: &[u8]) -> Result<Option<Entry>> {
        let table = self.kv_table()?;
        match table.get(key).map_err(backend)? {
            Some(guard) => Entry::decode(guard.value()).map(Some),
            None => Ok(None),
        }
    }

    /// What the committed entry at `key` counts for, live or not (its value is not copied).
    fn read_stored(&self, key: &[u8]) -> Result<Option<Stored>> {
        let table = self.kv_table()?;
        match table.get(key).map_err(backend)? {
            Some(guard) => stored(guard.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Refuses writes while the store cannot commit.
    fn writable(&self) -> Result<()> {
        if !self.failing.load(Ordering::Acquire) {
            return Ok(());
        }
        self.stats.refused_writes.fetch_add(1, Ordering::Relaxed);
        let reason = lock(&self.failure).clone().unwrap_or_default();
        Err(Error::Backend(format!("storage cannot commit: {reason}")))
    }

    /// Calls `done` once every write accepted so far is durable (or the commit meant to make
    /// them durable failed); returns the answer instead when it is known now.
    fn when_durable(&self, done: impl FnOnce(Result<()>) + Send + 'static) -> Option<Result<()>> {
        let want = self.overlay.next_seq();
        if self.durable.load(Ordering::SeqCst) >= want {
            return Some(Ok(()));
        }
        let mut control = lock(&self.control);
        if self.durable.load(Ordering::SeqCst) >= want {
            return Some(Ok(()));
        }
        if control.stopped {
            return Some(Err(stopped()));
        }
        control.waiters.push(Waiter {
            want,
            done: Box::new(done),
        });
        drop(control);
        self.wake.notify_one();
        None
    }

    /// The committer's loop, until the store is dropped.
    fn run_committer(&self) {
        let _stopped = StopGuard(self);
        let mut next_periodic = Instant::now() + self.commit_every;
        let mut last_attempt: Option<Instant> = None;
        let mut backoff = RETRY_MIN;
        let mut purge_backlog = false;
        // What the purge chunks since the oldest unanswered `purge_expired` forgot.
        let mut purged_for_callers = 0;
        loop {
            let (stop, purge_asked) =
                self.wait_for_work(next_periodic, last_attempt, purge_backlog);
            let started = Instant::now();
            let periodic = started >= next_periodic;
            last_attempt = Some(started);
            match self.commit() {
                Ok(target) => {
                    backoff = RETRY_MIN;
                    self.recovered();
                    self.resolve(target);
                    if periodic {
                        next_periodic = started + self.commit_every;
                    }
                    // One chunk per round, so syncs wait for one chunk at most; a backlog
                    // (or a caller) brings the next round at once.
                    if periodic || purge_backlog || purge_asked {
                        match self.purge_chunk() {
                            Ok((purged, more)) => {
                                purge_backlog = more;
                                if purge_asked {
                                    purged_for_callers += purged;
                                    if !more {
                                        self.resolve_purges(purged_for_callers);
                                        purged_for_callers = 0;
                                    }
                                }
                            }
                            Err(e) => {
                                purge_backlog = false;
                                purged_for_callers = 0;
                                self.fail(&format!("purge failed: {e}"));
                            }
                        }
                    }
                }
                Err(e) => {
                    purge_backlog = false;
                    purged_for_callers = 0;
                    self.fail(&format!("commit failed: {e}"));
                    next_periodic = started + backoff;
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
            if stop {
                return;
            }
        }
    }

    /// Waits until a commit is due: someone waits (no sooner than `RETRY_MIN` after a failed
    /// attempt), expired entries are left to purge, the periodic commit is due, or the store
    /// stops. Returns whether it stops and whether a purge was asked for.
    fn wait_for_work(
        &self,
        next_periodic: Instant,
        last_attempt: Option<Instant>,
        purge_backlog: bool,
    ) -> (bool, bool) {
        let mut control = lock(&self.control);
        loop {
            let now = Instant::now();
            let failing = self.failing.load(Ordering::Acquire);
            let wanted = !control.waiters.is_empty()
                || !control.purges.is_empty()
                || (purge_backlog && !failing);
            let earliest = match last_attempt {
                Some(at) if failing => at + RETRY_MIN,
                _ => now,
            };
            if control.stop || now >= next_periodic || (wanted && now >= earliest) {
                return (control.stop, !control.purges.is_empty());
            }
            let until = if wanted {
                earliest.min(next_periodic)
            } else {
                next_periodic
            };
            control = self
                .wake
                .wait_timeout(control, until - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Commits everything pending in one durable transaction; returns the batch's target.
    fn commit(&self) -> Result<u64> {
        let batch = self.overlay.snapshot();
        let failing = self.failing.load(Ordering::Acquire);
        if batch.is_empty() && !failing {
            return Ok(batch.target);
        }
        let started = Instant::now();
        let db = if failing {
            self.reopen()?
        } else {
            self.database()?
        };
        let mut txn = db.begin_write().map_err(backend)?;
        txn.set_durability(Durability::Immediate).map_err(backend)?;
        apply(&txn, &batch)?;
        txn.commit().map_err(backend)?;
        self.new_generation();
        self.overlay.retire(&batch);
        let stats = &self.stats;
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats
            .committed_writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats.commit_micros.fetch_add(
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        Ok(batch.target)
    }

    /// Drops the database handle and opens the file again (redb refuses every operation after
    /// an I/O error until then). Fails while a reader still holds the old handle.
    fn reopen(&self) -> Result<Arc<Database>> {
        let slot = || self.db.write().unwrap_or_else(PoisonError::into_inner);
        // Readers get an error while the file is opened (a repair may take a while).
        *slot() = None;
        self.new_generation();
        let db = Arc::new((self.opener)().map_err(backend)?);
        *slot() = Some(Arc::clone(&db));
        Ok(db)
    }

    /// Every write numbered below `target` is durable: wakes those who waited for them.
    fn resolve(&self, target: u64) {
        let ready: Vec<Waiter> = {
            let mut control = lock(&self.control);
            self.durable.fetch_max(target, Ordering::SeqCst);
            let (ready, rest) = std::mem::take(&mut control.waiters)
                .into_iter()
                .partition(|w| w.want <= target);
            control.waiters = rest;
            ready
        };
        for waiter in ready {
            (waiter.done)(Ok(()));
        }
    }

    fn resolve_purges(&self, purged: usize) {
        let purges = std::mem::take(&mut lock(&self.control).purges);
        for done in purges {
            done(Ok(purged));
        }
    }

    /// A commit (or purge) failed: refuse writes, and fail everyone waiting.
    fn fail(&self, reason: &str) {
        self.stats.failed_commits.fetch_add(1, Ordering::Relaxed);
        *lock(&self.failure) = Some(reason.to_owned());
        if !self.failing.swap(true, Ordering::AcqRel) {
            tracing::error!(
                pending = self.overlay.len(),
                "plugin storage cannot commit: {reason}; writes are refused until a commit \
                 succeeds, and the pending ones are kept and retried"
            );
        }
        let (waiters, purges) = {
            let mut control = lock(&self.control);
            (
                std::mem::take(&mut control.waiters),
                std::mem::take(&mut control.purges),
            )
        };
        let error = || Error::Backend(reason.to_owned());
        for waiter in waiters {
            (waiter.done)(Err(error()));
        }
        for done in purges {
            done(Err(error()));
        }
    }

    /// A commit succeeded: accept writes again if they were refused.
    fn recovered(&self) {
        if self.failing.swap(false, Ordering::AcqRel) {
            *lock(&self.failure) = None;
            tracing::info!("plugin storage commits again; writes are accepted");
        }
    }

    /// Forgets at most `PURGE_CHUNK` expired kv entries and as many facts; returns how many
    /// and whether more are left.
    fn purge_chunk(&self) -> Result<(usize, bool)> {
        let now = (self.clock)();
        let db = self.database()?;
        let mut txn = db.begin_write().map_err(backend)?;
        // Losing a purge in a crash only means purging again.
        txn.set_durability(Durability::None).map_err(backend)?;
        let (kv, kv_more) = purge_kv(&txn, now, PURGE_CHUNK)?;
        let (facts, facts_more) = purge_facts(&txn, now_secs(now), PURGE_CHUNK)?;
        txn.commit().map_err(backend)?;
        if kv > 0 {
            self.new_generation();
        }
        let purged = kv + facts;
        self.stats
            .purged
            .fetch_add(purged as u64, Ordering::Relaxed);
        Ok((purged, kv_more || facts_more))
    }
}

/// Marks the committer stopped when it returns (or panics): writes are refused from then on,
/// and whoever still waits fails.
struct StopGuard<'a>(&'a Shared);

impl Drop for StopGuard<'_> {
    fn drop(&mut self) {
        let shared = self.0;
        *lock(&shared.failure) = Some(stopped().to_string());
        shared.failing.store(true, Ordering::Release);
        let (waiters, purges) = {
            let mut control = lock(&shared.control);
            control.stopped = true;
            (
                std::mem::take(&mut control.waiters),
                std::mem::take(&mut control.purges),
            )
        };
        for waiter in waiters {
            (waiter.done)(Err(stopped()));
        }
        for done in purges {
            done(Err(stopped()));
        }
        let lost = shared.overlay.len();
        if lost > 0 {
            tracing::error!(
                lost,
                "plugin storage stopped with writes it could not commit; they are lost"
            );
        }
    }
}

/// Writes `batch` in `txn`, keeping the expiry indexes exact.
fn apply(txn: &WriteTransaction, batch: &Batch) -> Result<()> {
    if batch.kv.iter().any(|shard| !shard.is_empty()) {
        let mut kv = txn.open_table(KV).map_err(backend)?;
        let mut expiry = txn.open_table(KV_EXPIRY).map_err(backend)?;
        for (key, pending, _) in batch.kv.iter().flatten() {
            let key = key.as_slice();
            let old = match pending {
                Some(entry) => kv.insert(key, entry.encode().as_slice()),
                None => kv.remove(key),
            }
            .map_err(backend)?
            .map(|guard| stored_expiry(guard.value()));
            if let Some(at) = old.filter(|&at| at != 0) {
                expiry.remove((at, key)).map_err(backend)?;
            }
            if let Some(entry) = pending
                && entry.expires_at_ms != 0
            {
                expiry
                    .insert((entry.expires_at_ms, key), ())
                    .map_err(backend)?;
            }
        }
    }
    if !batch.facts.is_empty() {
        let mut batches = txn.open_table(FACT_BATCHES).map_err(backend)?;
        let next = batches
            .last()
            .map_err(backend)?
            .map_or(0, |(key, _)| key.value().saturating_add(1));
        let latest = batch.facts.iter().map(|(f, _)| f.until).max().unwrap_or(0);
        let mut packed = Vec::with_capacity(8 + batch.facts.len() * PACKED_FACT);
        packed.extend_from_slice(&latest.to_be_bytes());
        for (fact, _) in &batch.facts {
            packed.extend_from_slice(&fact.key);
            packed.extend_from_slice(&fact.value);
            packed.extend_from_slice(&fact.until.to_be_bytes());
        }
        batches.insert(next, packed.as_slice()).map_err(backend)?;
    }
    if !batch.marks.is_empty() {
        let mut marks = txn.open_table(MARKS).map_err(backend)?;
        for (name, value, _) in &batch.marks {
            marks.insert(name.as_str(), *value).map_err(backend)?;
        }
    }
    Ok(())
}

/// Deletes at most `limit` kv entries whose expiry is `now` or earlier: a range of the expiry
/// index, and one delete each; returns how many and whether the limit was reached.
fn purge_kv(txn: &WriteTransaction, now: u64, limit: usize) -> Result<(usize, bool)> {
    let mut kv = txn.open_table(KV).map_err(backend)?;
    let mut expiry = txn.open_table(KV_EXPIRY).map_err(backend)?;
    let expired = expiry
        .extract_from_if(..(now.saturating_add(1), &[][..]), |_, _| true)
        .map_err(backend)?
        .take(limit)
        .map(|row| {
            row.map(|(k, _)| {
                let (at, key) = k.value();
                (at, key.to_vec())
            })
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(backend)?;
    let mut purged = 0;
    for (at, key) in &expired {
        let current = kv
            .get(key.as_slice())
            .map_err(backend)?
            .map(|guard| stored_expiry(guard.value()));
        if current == Some(*at) {
            kv.remove(key.as_slice()).map_err(backend)?;
            purged += 1;
        }
    }
    Ok((purged, expired.len() == limit))
}

/// Forgets at most `limit` fact rows all of whose facts have expired by `now` (a row's first 8
/// bytes are its latest `until`); returns how many facts they held and whether the limit was
/// reached.
fn purge_facts(txn: &WriteTransaction, now: i64, limit: usize) -> Result<(usize, bool)> {
    let mut batches = txn.open_table(FACT_BATCHES).map_err(backend)?;
    let mut expired = Vec::new();
    let mut facts = 0;
    for row in batches.iter().map_err(backend)? {
        let (key, value) = row.map_err(backend)?;
        let bytes = value.value();
        if batch_latest(bytes) <= now {
            expired.push(key.value());
            facts += bytes.len().saturating_sub(8) / PACKED_FACT;
            if expired.len() == limit {
                break;
            }
        }
    }
    for key in &expired {
        batches.remove(key).map_err(backend)?;
    }
    Ok((facts, expired.len() == limit))
}

/// The latest `until` of a packed fact row.
fn batch_latest(bytes: &[u8]) -> i64 {
    bytes
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(i64::MIN, i64::from_be_bytes)
}

/// The facts of a packed row.
fn unpack_facts(bytes: &[u8]) -> impl Iterator<Item = Fact> + '_ {
    bytes
        .get(8..)
        .unwrap_or_default()
        .chunks_exact(PACKED_FACT)
        .map(|f| {
            let mut key = [0; 16];
            let mut value = [0; 16];
            let mut until = [0; 8];
            key.copy_from_slice(&f[..16]);
            value.copy_from_slice(&f[16..32]);
            until.copy_from_slice(&f[32..]);
            Fact {
                key,
                value,
                until: i64::from_be_bytes(until),
            }
        })
}

impl InProcessKv for RedbKv {
    fn get_now(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>> {
        let shared = &self.shared;
        let now = (shared.clock)();
        let key = ns.storage_key(key);
        let entry = match shared.overlay.get(&key) {
            Some(pending) => pending,
            None => shared.read(&key)?,
        };
        Ok(entry.filter(|e| e.is_live(now)).map(|e| e.value))
    }

    fn set_within_now(
        &self,
        ns: &Namespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        quota: Quota,
    ) -> Result<()> {
        let shared = &self.shared;
        shared.writable()?;
        let now = (shared.clock)();
        let entry = Entry::new(value, ttl, now);
        shared.overlay.update(ns.storage_key(key), |key, pending| {
            let old = match pending {
                Some(pending) => pending.as_ref().map(Stored::of),
                None => shared.read_stored(key)?,
            };
            shared
                .usage
                .replace(key, old, Some(Stored::of(&entry)), now, quota)?;
            Ok(((), Some(Some(entry))))
        })
    }

    fn delete_now(&self, ns: &Namespace, key: &str) -> Result<bool> {
        let shared = &self.shared;
        shared.writable()?;
        let now = (shared.clock)();
        shared.overlay.update(ns.storage_key(key), |key, pending| {
            let old = match pending {
                Some(Some(entry)) => Stored::of(entry),
                Some(None) => return Ok((false, None)),
                None => match shared.read_stored(key)? {
                    Some(old) => old,
                    None => return Ok((false, None)),
                },
            };
            shared
                .usage
                .replace(key, Some(old), None, now, Quota::UNLIMITED)?;
            Ok((old.is_live(now), Some(None)))
        })
    }

    fn increment_within_now(
        &self,
        ns: &Namespace,
        key: &str,
        delta: i64,
        quota: Quota,
    ) -> Result<i64> {
        let shared = &self.shared;
        shared.writable()?;
        let now = (shared.clock)();
        shared.overlay.update(ns.storage_key(key), |key, pending| {
            let current = match pending {
                Some(pending) => pending.clone(),
                None => shared.read(key)?,
            };
            let old = current.as_ref().map(Stored::of);
            let (value, entry) = Entry::incremented(current.filter(|e| e.is_live(now)), delta)?;
            shared
                .usage
                .replace(key, old, Some(Stored::of(&entry)), now, quota)?;
            Ok((value, Some(Some(entry))))
        })
    }

    fn compare_and_swap_now(
        &self,
        ns: &Namespace,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<(&[u8], Option<Duration>)>,
    ) -> Result<bool> {
        let shared = &self.shared;
        shared.writable()?;
        let now = (shared.clock)();
        shared.overlay.update(ns.storage_key(key), |key, pending| {
            let current = match pending {
                Some(pending) => pending.clone(),
                None => shared.read(key)?,
            };
            let old = current.as_ref().map(Stored::of);
            let Some(entry) = Entry::swapped(current.as_ref(), expected, new, now) else {
                return Ok((false, None));
            };
            shared.usage.replace(
                key,
                old,
                entry.as_ref().map(Stored::of),
                now,
                Quota::UNLIMITED,
            )?;
            Ok((true, Some(entry)))
        })
    }

    fn usage_now(&self, ns: &Namespace) -> Result<KvUsage> {
        let shared = &self.shared;
        Ok(shared.usage.held(&ns.storage_prefix(), (shared.clock)()))
    }

    fn sync(&self) -> SyncFuture {
        let (tx, rx) = tokio::sync::oneshot::channel();
        match self.shared.when_durable(move |result| {
            let _ = tx.send(result);
        }) {
            Some(now) => Box::pin(std::future::ready(now)),
            None => Box::pin(async move { rx.await.unwrap_or_else(|_| Err(stopped())) }),
        }
    }

    fn flush(&self) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        match self.shared.when_durable(move |result| {
            let _ = tx.send(result);
        }) {
            Some(now) => now,
            None => rx.recv().unwrap_or_else(|_| Err(stopped())),
        }
    }

    /// Commits what is pending, then forgets every expired entry and fact (the committer also
    /// does this on its own every second, so the count leaves out what it already forgot).
    fn purge_expired(&self) -> Result<usize> {
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let mut control = lock(&self.shared.control);
            if control.stopped {
                return Err(stopped());
            }
            control.purges.push(Box::new(move |result| {
                let _ = tx.send(result);
            }));
        }
        self.shared.wake.notify_one();
        rx.recv().unwrap_or_else(|_| Err(stopped()))
    }

    fn stats(&self) -> StorageStats {
        let shared = &self.shared;
        let stats = &shared.stats;
        StorageStats {
            commits: stats.commits.load(Ordering::Relaxed),
            committed_writes: stats.committed_writes.load(Ordering::Relaxed),
            commit_micros: stats.commit_micros.load(Ordering::Relaxed),
            failed_commits: stats.failed_commits.load(Ordering::Relaxed),
            refused_writes: stats.refused_writes.load(Ordering::Relaxed),
            purged: stats.purged.load(Ordering::Relaxed),
            pending: shared.overlay.len() as u64,
            failing: lock(&shared.failure).clone(),
        }
    }
}

impl FactStore for RedbKv {
    fn put(&self, facts: &[Fact]) -> Result<()> {
        self.shared.writable()?;
        self.shared.overlay.put_facts(facts);
        Ok(())
    }

    fn live(&self, now: i64) -> Result<Vec<Fact>> {
        let shared = &self.shared;
        // The overlay first: what leaves it meanwhile is committed before the read below.
        let pending = shared.overlay.facts();
        let db = shared.database()?;
        let txn = db.begin_read().map_err(backend)?;
        let batches = txn.open_table(FACT_BATCHES).map_err(backend)?;
        let mut longest: HashMap<[u8; 16], Fact> = HashMap::new();
        for row in batches.iter().map_err(backend)? {
            let (_, value) = row.map_err(backend)?;
            let bytes = value.value();
            if batch_latest(bytes) > now {
                for fact in unpack_facts(bytes) {
                    keep_longest(&mut longest, fact);
                }
            }
        }
        for fact in pending.into_values() {
            keep_longest(&mut longest, fact);
        }
        Ok(longest.into_values().filter(|f| f.until > now).collect())
    }

    fn secret(&self) -> Result<[u8; 32]> {
        Ok(self.shared.secret)
    }

    fn set_mark(&self, name: &str, value: i64) -> Result<()> {
        self.shared.writable()?;
        self.shared.overlay.set_mark(name, value);
        Ok(())
    }

    fn mark(&self, name: &str) -> Result<Option<i64>> {
        let shared = &self.shared;
        if let Some(value) = shared.overlay.mark(name) {
            return Ok(Some(value));
        }
        let db = shared.database()?;
        let txn = db.begin_read().map_err(backend)?;
        let marks = txn.open_table(MARKS).map_err(backend)?;
        Ok(marks.get(name).map_err(backend)?.map(|g| g.value()))
    }
}

#[cfg(test)]
mod tests;
