//! Plugin key-value data behind the [`KvStore`] trait: keys namespaced by tenant and plugin,
//! optional TTLs, an embedded durable store ([`RedbKv`]) and an in-memory one ([`MemoryKv`]).
//! Both also keep compact expiring [`Fact`]s ([`FactStore`]) for deduplication.
//!
//! Size caps and per-call caps are the caller's job (the plugin host enforces them before a
//! guest's request reaches a store). What a namespace holds over time is the store's: each
//! store counts the live keys and bytes of every namespace ([`KvStore::usage`]) and checks a
//! write against the caller's [`Quota`] atomically with the write
//! ([`KvStore::set_within`], [`KvStore::increment_within`]).

mod memory;
mod overlay;
mod redb_store;
mod usage;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use memory::MemoryKv;
pub use redb_store::RedbKv;

/// Whose data a key belongs to: one plugin within one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace {
    tenant: String,
    plugin: String,
}

impl Namespace {
    /// The namespace of `plugin` in `tenant`. Neither may contain a NUL byte (config validation
    /// guarantees it; the separator makes namespaces disjoint).
    pub fn new(tenant: impl Into<String>, plugin: impl Into<String>) -> Self {
        Namespace {
            tenant: tenant.into(),
            plugin: plugin.into(),
        }
    }

    /// The host's own data for `tenant` (its access token, …): no plugin can reach it, since
    /// plugin names are never empty.
    pub fn host(tenant: impl Into<String>) -> Self {
        Namespace::new(tenant, "")
    }

    /// The tenant id.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The plugin name.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// The prefix of its keys as stored: `tenant NUL plugin NUL`.
    fn storage_prefix(&self) -> Vec<u8> {
        self.storage_key("")
    }

    /// The key as stored: `tenant NUL plugin NUL key`.
    fn storage_key(&self, key: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.tenant.len() + self.plugin.len() + key.len() + 2);
        out.extend_from_slice(self.tenant.as_bytes());
        out.push(0);
        out.extend_from_slice(self.plugin.as_bytes());
        out.push(0);
        out.extend_from_slice(key.as_bytes());
        out
    }
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `increment` found a value that is not a decimal i64.
    #[error("value is not a decimal integer")]
    NotANumber,
    /// `increment` would overflow an i64.
    #[error("counter would overflow")]
    Overflow,
    /// The write would take its namespace past its [`Quota`]: past `max` keys (`adds` is 1)
    /// or `max` bytes (`adds` is what the write would add to the `held` bytes).
    #[error("{}", quota_message(*limit, *held, *adds, *max))]
    QuotaExceeded {
        /// Which limit.
        limit: QuotaLimit,
        /// What the namespace holds now (keys or bytes).
        held: u64,
        /// What the write would add.
        adds: u64,
        /// The limit.
        max: u64,
    },
    /// The backend failed (I/O, corruption).
    #[error("storage backend failed: {0}")]
    Backend(String),
}

fn quota_message(limit: QuotaLimit, held: u64, adds: u64, max: u64) -> String {
    match limit {
        QuotaLimit::Keys => format!("namespace holds {held} keys, at most {max}"),
        QuotaLimit::Bytes => {
            format!("namespace holds {held} bytes, at most {max}; the write adds {adds}")
        }
    }
}

/// Which limit of a [`Quota`] a write would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaLimit {
    /// `max_keys`.
    Keys,
    /// `max_bytes`.
    Bytes,
}

/// How much one namespace may hold: live keys, and the bytes of their keys and values (the
/// key as the plugin names it, without the namespace). An expired entry stops counting at its
/// expiry, whether or not it has been purged yet.
///
/// A write is refused when it would add a key past `max_keys` or grow the bytes past
/// `max_bytes`; an overwrite is charged the difference only, and one that keeps or lowers what
/// is held passes even when the namespace is over a quota lowered since. Deletions are never
/// refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Live keys the namespace may hold.
    pub max_keys: u64,
    /// Bytes of their keys and values it may hold.
    pub max_bytes: u64,
}

impl Quota {
    /// No limit (the host's own namespaces).
    pub const UNLIMITED: Quota = Quota {
        max_keys: u64::MAX,
        max_bytes: u64::MAX,
    };
}

/// What a namespace holds: live keys, and the bytes of their keys and values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvUsage {
    /// Live keys.
    pub keys: u64,
    /// Bytes of their keys (without the namespace) and values.
    pub bytes: u64,
}

/// Result alias of storage operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Milliseconds since the Unix epoch; injectable so TTL tests need not sleep.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    })
}

/// What [`KvStore::sync`] returns: resolves once the writes before it are durable.
pub type SyncFuture = Pin<Box<dyn Future<Output = Result<()>> + Send + 'static>>;

/// A key-value store for plugin data. Implementations are shared by every tenant and plugin;
/// the [`Namespace`] keeps them apart.
pub trait KvStore: Send + Sync + std::fmt::Debug + 'static {
    /// The value of `key`, unless absent or expired.
    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>>;
    /// Stores `value`, expiring after `ttl` when given (replacing any earlier TTL), without a
    /// quota (the host's own data).
    fn set(&self, ns: &Namespace, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        self.set_within(ns, key, value, ttl, Quota::UNLIMITED)
    }
    /// [`KvStore::set`] unless the namespace would hold more than `quota` allows
    /// ([`Error::QuotaExceeded`], nothing written); the check and the write are one step, so
    /// concurrent writers of a namespace cannot together pass its quota.
    fn set_within(
        &self,
        ns: &Namespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        quota: Quota,
    ) -> Result<()>;
    /// Removes `key`; returns whether it existed (and had not expired). Frees its quota.
    fn delete(&self, ns: &Namespace, key: &str) -> Result<bool>;
    /// Adds `delta` to the decimal counter at `key` (absent counts as 0), keeping its TTL,
    /// without a quota.
    fn increment(&self, ns: &Namespace, key: &str, delta: i64) -> Result<i64> {
        self.increment_within(ns, key, delta, Quota::UNLIMITED)
    }
    /// [`KvStore::increment`] within `quota`, as [`KvStore::set_within`].
    fn increment_within(&self, ns: &Namespace, key: &str, delta: i64, quota: Quota) -> Result<i64>;
    /// What `ns` holds now (live entries only), as quotas count it.
    fn usage(&self, ns: &Namespace) -> Result<KvUsage>;
    /// Resolves once every write accepted before the call (kv writes, and the facts and marks
    /// of the same store) is durable; at once when none is pending. Concurrent callers share
    /// one commit. An error means the writes are not durable yet: they are kept and retried,
    /// not dropped.
    fn sync(&self) -> SyncFuture;
    /// Makes every write so far durable, blocking the calling thread (for shutdown and tests).
    fn flush(&self) -> Result<()>;
    /// Drops expired entries (and expired facts); returns how many.
    fn purge_expired(&self) -> Result<usize>;
    /// What the store has done since it was opened, for metrics (a store that keeps nothing on
    /// disk reports zeros).
    fn stats(&self) -> StorageStats {
        StorageStats::default()
    }
}

/// Counters of a store since it was opened, and its state now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// Durable commits that succeeded.
    pub commits: u64,
    /// Writes (kv entries, facts, marks) they made durable; a key written twice before a
    /// commit counts once.
    pub committed_writes: u64,
    /// Time spent in those commits, fsync included, in microseconds.
    pub commit_micros: u64,
    /// Commits (or purges) that failed.
    pub failed_commits: u64,
    /// Writes refused because the store could not commit.
    pub refused_writes: u64,
    /// Expired kv entries and facts forgotten.
    pub purged: u64,
    /// Writes accepted and not yet durable.
    pub pending: u64,
    /// Why the store cannot commit, while it cannot (writes are refused meanwhile).
    pub failing: Option<String>,
}

/// A compact fact: a 16-byte key, a 16-byte value, and when it may be forgotten (seconds since the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fact {
    /// What the fact is about (e.g. a keyed hash of a dedup key).
    pub key: [u8; 16],
    /// What is known about it.
    pub value: [u8; 16],
    /// Seconds since the Unix epoch after which the fact may be forgotten: it is live while
    /// `until > now`.
    pub until: i64,
}

/// Compact facts that expire, kept with the plugin kv data and committed with it (so
/// [`KvStore::sync`] on the same store covers them). Of several puts of one key, the one that
/// lives longest is the fact (a fact is never forgotten earlier than any put asked); facts are
/// forgotten in the groups they were committed in, once all of a group has expired.
pub trait FactStore: Send + Sync + std::fmt::Debug + 'static {
    /// Queues facts to be written with the next commit (never waits on the disk).
    fn put(&self, facts: &[Fact]) -> Result<()>;
    /// Every fact whose `until` is after `now` (read at start-up; may be millions).
    fn live(&self, now: i64) -> Result<Vec<Fact>>;
    /// A random 32-byte secret created with the database and kept in it (keys facts with a keyed hash that survives restarts).
    fn secret(&self) -> Result<[u8; 32]>;
    /// A small named i64 kept with the facts (e.g. the dedup horizon), written with the next commit.
    fn set_mark(&self, name: &str, value: i64) -> Result<()>;
    /// The mark last set under `name`.
    fn mark(&self, name: &str) -> Result<Option<i64>>;
}

/// A fresh random secret for a new fact store.
fn new_secret() -> [u8; 32] {
    let mut secret = [0; 32];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut secret);
    secret
}

/// A stored value: expiry (ms since the epoch, 0 = never) and the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    expires_at_ms: u64,
    value: Vec<u8>,
}

impl Entry {
    fn new(value: &[u8], ttl: Option<Duration>, now_ms: u64) -> Self {
        let expires_at_ms = ttl.map_or(0, |ttl| {
            now_ms
                .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
                .max(1)
        });
        Entry {
            expires_at_ms,
            value: value.to_vec(),
        }
    }

    fn is_live(&self, now_ms: u64) -> bool {
        self.expires_at_ms == 0 || self.expires_at_ms > now_ms
    }

    /// `expiry (u64 BE) ‖ value`.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.value.len());
        out.extend_from_slice(&self.expires_at_ms.to_be_bytes());
        out.extend_from_slice(&self.value);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let (expiry, value) = bytes
            .split_first_chunk::<8>()
            .ok_or_else(|| Error::Backend("stored entry shorter than its header".into()))?;
        Ok(Entry {
            expires_at_ms: u64::from_be_bytes(*expiry),
            value: value.to_vec(),
        })
    }

    /// The counter after adding `delta`, as the new entry (same expiry).
    fn incremented(current: Option<Entry>, delta: i64) -> Result<(i64, Entry)> {
        let (expires_at_ms, old) = match current {
            None => (0, 0),
            Some(entry) => {
                let text = std::str::from_utf8(&entry.value).map_err(|_| Error::NotANumber)?;
                (
                    entry.expires_at_ms,
                    text.trim().parse::<i64>().map_err(|_| Error::NotANumber)?,
                )
            }
        };
        let new = old.checked_add(delta).ok_or(Error::Overflow)?;
        Ok((
            new,
            Entry {
                expires_at_ms,
                value: new.to_string().into_bytes(),
            },
        ))
    }
}

#[cfg(test)]
pub(crate) mod contract {
    //! The behaviour every [`KvStore`] must have, run against each implementation.

    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// A clock the test moves by hand.
    pub fn manual_clock() -> (Clock, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(1_700_000_000_000));
        let read = Arc::clone(&now);
        (Arc::new(move || read.load(Ordering::SeqCst)), now)
    }

    pub fn run(store: &dyn KvStore, now: &AtomicU64) {
        let a = Namespace::new("tenant-a", "game");
        let b = Namespace::new("tenant-b", "game");
        let other_plugin = Namespace::new("tenant-a", "other");

        // get / set / isolation
        assert_eq!(store.get(&a, "k"), Ok(None));
        store.set(&a, "k", b"v1", None).expect("set");
        assert_eq!(store.get(&a, "k"), Ok(Some(b"v1".to_vec())));
        assert_eq!(store.get(&b, "k"), Ok(None), "tenants are isolated");
        assert_eq!(
            store.get(&other_plugin, "k"),
            Ok(None),
            "plugins are isolated"
        );
        store.set(&a, "", b"", None).expect("empty key and value");
        assert_eq!(store.get(&a, ""), Ok(Some(Vec::new())));

        // delete
        assert_eq!(store.delete(&a, "k"), Ok(true));
        assert_eq!(store.delete(&a, "k"), Ok(false));
        assert_eq!(store.get(&a, "k"), Ok(None));

        // TTL
        store
            .set(&a, "t", b"x", Some(Duration::from_secs(10)))
            .expect("set ttl");
        now.fetch_add(9_999, Ordering::SeqCst);
        assert_eq!(store.get(&a, "t"), Ok(Some(b"x".to_vec())));
        now.fetch_add(1, Ordering::SeqCst);
        assert_eq!(store.get(&a, "t"), Ok(None), "expired at its TTL");
        assert_eq!(
            store.delete(&a, "t"),
            Ok(false),
            "expired keys do not exist"
        );
        store
            .set(&a, "t", b"y", Some(Duration::from_secs(1)))
            .expect("set ttl");
        store
            .set(&a, "t", b"z", None)
            .expect("set without ttl clears it");
        now.fetch_add(5_000, Ordering::SeqCst);
        assert_eq!(store.get(&a, "t"), Ok(Some(b"z".to_vec())));

        // increment
        assert_eq!(store.increment(&a, "n", 5), Ok(5));
        assert_eq!(store.increment(&a, "n", -7), Ok(-2));
        assert_eq!(store.get(&a, "n"), Ok(Some(b"-2".to_vec())));
        store
            .set(&a, "n", b"40", Some(Duration::from_secs(2)))
            .expect("set");
        assert_eq!(store.increment(&a, "n", 2), Ok(42));
        now.fetch_add(2_000, Ordering::SeqCst);
        assert_eq!(store.get(&a, "n"), Ok(None), "increment keeps the TTL");
        assert_eq!(
            store.increment(&a, "n", 1),
            Ok(1),
            "expired counter restarts at 0"
        );
        store.set(&a, "s", b"abc", None).expect("set");
        assert_eq!(store.increment(&a, "s", 1), Err(Error::NotANumber));
        store
            .set(&a, "max", i64::MAX.to_string().as_bytes(), None)
            .expect("set");
        assert_eq!(store.increment(&a, "max", 1), Err(Error::Overflow));

        // purge
        store
            .set(&b, "gone1", b"x", Some(Duration::from_secs(1)))
            .expect("set");
        store
            .set(&b, "gone2", b"x", Some(Duration::from_secs(1)))
            .expect("set");
        store
            .set(&b, "stays", b"x", Some(Duration::from_secs(100)))
            .expect("set");
        now.fetch_add(1_000, Ordering::SeqCst);
        assert_eq!(store.purge_expired(), Ok(2));
        assert_eq!(store.get(&b, "stays"), Ok(Some(b"x".to_vec())));
        store.flush().expect("flush");
    }

    /// What quotas must do: count live keys and key + value bytes per namespace, refuse a
    /// write that would pass either limit (writing nothing), charge an overwrite the difference
    /// only, and free what deletes, shrinking overwrites and expiry (before any purge) release.
    pub fn quotas(store: &dyn KvStore, now: &AtomicU64) {
        let ns = Namespace::new("tenant-q", "game");
        let other = Namespace::new("tenant-q", "other");
        let quota = Quota {
            max_keys: 3,
            max_bytes: 100,
        };
        let held = |ns: &Namespace| store.usage(ns).expect("usage");
        let usage = |keys, bytes| KvUsage { keys, bytes };
        let refused_keys = |held| {
            Err(Error::QuotaExceeded {
                limit: QuotaLimit::Keys,
                held,
                adds: 1,
                max: 3,
            })
        };
        assert_eq!(held(&ns), KvUsage::default());

        store
            .set_within(&ns, "k1", b"aaaa", None, quota)
            .expect("2 + 4 bytes");
        assert_eq!(store.increment_within(&ns, "n", 5, quota), Ok(5));
        store
            .set_within(&ns, "k2", b"xx", Some(Duration::from_secs(10)), quota)
            .expect("with a TTL");
        assert_eq!(held(&ns), usage(3, 6 + 2 + 4));
        assert_eq!(
            store.set_within(&ns, "k3", b"", None, quota),
            refused_keys(3)
        );
        assert_eq!(
            store
                .set_within(&ns, "k3", b"", None, quota)
                .map_err(|e| e.to_string()),
            Err("namespace holds 3 keys, at most 3".to_owned())
        );
        assert_eq!(
            store.increment_within(&ns, "m", 1, quota).map(|_| ()),
            refused_keys(3)
        );
        assert_eq!(
            store.get(&ns, "k3"),
            Ok(None),
            "a refused write writes nothing"
        );
        assert_eq!(store.get(&ns, "m"), Ok(None));
        assert_eq!(held(&ns), usage(3, 12));
        assert_eq!(
            held(&other),
            KvUsage::default(),
            "each namespace has its own"
        );
        store
            .set_within(&other, "k3", b"", None, quota)
            .expect("another plugin's namespace");

        // Overwrites are charged the difference.
        store
            .set_within(&ns, "k1", b"bbbb", None, quota)
            .expect("an overwrite at the key limit");
        store
            .set_within(&ns, "k1", &[b'c'; 90], None, quota)
            .expect("12 - 6 + 92 = 98 bytes");
        assert_eq!(held(&ns), usage(3, 98));
        assert_eq!(
            store.set_within(&ns, "k1", &[b'd'; 95], None, quota),
            Err(Error::QuotaExceeded {
                limit: QuotaLimit::Bytes,
                held: 98,
                adds: 5,
                max: 100
            })
        );
        assert_eq!(
            store
                .set_within(&ns, "k1", &[b'd'; 95], None, quota)
                .map_err(|e| e.to_string()),
            Err("namespace holds 98 bytes, at most 100; the write adds 5".to_owned())
        );
        assert_eq!(store.get(&ns, "k1"), Ok(Some(vec![b'c'; 90])));
        assert_eq!(store.increment_within(&ns, "n", 5, quota), Ok(10));
        assert_eq!(store.increment_within(&ns, "n", 90, quota), Ok(100));
        assert_eq!(held(&ns), usage(3, 100), "exactly the quota");
        assert!(matches!(
            store.increment_within(&ns, "n", 900, quota),
            Err(Error::QuotaExceeded {
                limit: QuotaLimit::Bytes,
                held: 100,
                adds: 1,
                max: 100
            })
        ));
        assert_eq!(store.get(&ns, "n"), Ok(Some(b"100".to_vec())));

        // A shrinking overwrite passes over a quota lowered below what is held, and frees.
        let lowered = Quota {
            max_keys: 1,
            max_bytes: 10,
        };
        store
            .set_within(&ns, "k1", b"e", None, lowered)
            .expect("shrinks");
        assert_eq!(held(&ns), usage(3, 3 + 4 + 4));
        assert_eq!(store.increment_within(&ns, "n", -100, lowered), Ok(0));
        assert_eq!(held(&ns), usage(3, 3 + 2 + 4));

        // Deleting frees.
        assert_eq!(store.delete(&ns, "k2"), Ok(true));
        assert_eq!(held(&ns), usage(2, 5));
        store
            .set_within(&ns, "k3", b"z", Some(Duration::from_secs(1)), quota)
            .expect("room for a key");
        assert_eq!(
            store.set_within(&ns, "k4", b"", None, quota),
            refused_keys(3)
        );

        // Expiry frees at once, purged or not, and the purge does not free it again.
        now.fetch_add(999, Ordering::SeqCst);
        assert_eq!(held(&ns), usage(3, 5 + 3));
        now.fetch_add(1, Ordering::SeqCst);
        assert_eq!(held(&ns), usage(2, 5), "k3 expired");
        store
            .set_within(&ns, "k4", b"", None, quota)
            .expect("k3 no longer counts");
        assert_eq!(
            store.set_within(&ns, "k5", b"", None, quota),
            refused_keys(3)
        );
        store.purge_expired().expect("purge");
        assert_eq!(held(&ns), usage(3, 7));
        assert_eq!(
            store.set_within(&ns, "k3", b"", None, quota),
            refused_keys(3)
        );
        let ttl = Some(Duration::from_secs(5));
        store.set_within(&ns, "k4", b"", ttl, quota).expect("a TTL");
        now.fetch_add(5_000, Ordering::SeqCst);
        store
            .set_within(&ns, "k4", b"back", None, quota)
            .expect("an expired key written again");
        assert_eq!(held(&ns), usage(3, 5 + 6));
        now.fetch_add(5_000, Ordering::SeqCst);
        assert_eq!(held(&ns), usage(3, 11), "k4's old expiry is gone with it");
        store
            .set_within(&ns, "k5", b"", Some(Duration::ZERO), quota)
            .expect("expired at once: counts nothing");
        assert_eq!(held(&ns), usage(3, 11));

        // Writes without a quota (the host's) are counted too.
        store.set(&ns, "host", b"h", None).expect("no quota");
        assert_eq!(held(&ns), usage(4, 16));
        for key in ["k1", "n", "k4", "host"] {
            assert_eq!(store.delete(&ns, key), Ok(true), "{key}");
        }
        assert_eq!(held(&ns), KvUsage::default());
        store.flush().expect("flush");
    }

    /// Writers racing for the last keys and bytes of one namespace: exactly the quota's worth
    /// succeed, and the store then holds exactly that.
    pub fn concurrent_quota(store: &dyn KvStore) {
        const THREADS: usize = 8;
        const EACH: usize = 20;
        let race = |ns: &Namespace, quota: Quota, value: &[u8]| -> Vec<Result<()>> {
            let barrier = std::sync::Barrier::new(THREADS);
            std::thread::scope(|scope| {
                let threads: Vec<_> = (0..THREADS)
                    .map(|t| {
                        let barrier = &barrier;
                        scope.spawn(move || {
                            barrier.wait();
                            (0..EACH)
                                .map(|i| {
                                    let key = format!("t{t}k{i:02}");
                                    // Half the writers count visits, half set values.
                                    if t % 2 == 0 && value.len() == 1 {
                                        store.increment_within(ns, &key, 1, quota).map(|_| ())
                                    } else {
                                        store.set_within(ns, &key, value, None, quota)
                                    }
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                threads
                    .into_iter()
                    .flat_map(|t| t.join().expect("writer"))
                    .collect()
            })
        };
        let stored = |ns: &Namespace| {
            (0..THREADS)
                .flat_map(|t| (0..EACH).map(move |i| format!("t{t}k{i:02}")))
                .filter(|key| store.get(ns, key).expect("get").is_some())
                .count()
        };

        let keys = Namespace::new("tenant-race", "keys");
        let quota = Quota {
            max_keys: 50,
            max_bytes: u64::MAX,
        };
        let results = race(&keys, quota, b"1");
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 50, "exactly the key quota's worth succeed");
        for refused in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(
                matches!(
                    refused,
                    Error::QuotaExceeded {
                        limit: QuotaLimit::Keys,
                        held: 50,
                        max: 50,
                        ..
                    }
                ),
                "{refused:?}"
            );
        }
        assert_eq!(stored(&keys), 50);
        assert_eq!(store.usage(&keys).expect("usage").keys, 50);

        // Every entry holds a 5-byte key and a 15-byte value: 20 bytes.
        let bytes = Namespace::new("tenant-race", "bytes");
        let quota = Quota {
            max_keys: u64::MAX,
            max_bytes: 30 * 20,
        };
        let results = race(&bytes, quota, &[b'v'; 15]);
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            30,
            "exactly the byte quota's worth succeed"
        );
        assert_eq!(stored(&bytes), 30);
        assert_eq!(
            store.usage(&bytes),
            Ok(KvUsage {
                keys: 30,
                bytes: 600
            })
        );
        store.flush().expect("flush");
    }

    /// The output of `future` if it is ready on its first poll.
    pub fn ready_now(mut future: SyncFuture) -> Option<Result<()>> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => Some(out),
            std::task::Poll::Pending => None,
        }
    }

    /// What [`KvStore::sync`] must do: resolve once the writes before it are durable, at once
    /// when nothing is pending.
    pub async fn sync(store: &dyn KvStore) {
        let ns = Namespace::new("tenant-a", "sync");
        assert_eq!(
            ready_now(store.sync()),
            Some(Ok(())),
            "nothing pending: ready at once"
        );
        store.set(&ns, "a", b"1", None).expect("set");
        assert_eq!(store.increment(&ns, "n", 3), Ok(3));
        store.sync().await.expect("sync");
        assert_eq!(store.get(&ns, "a"), Ok(Some(b"1".to_vec())));
        assert_eq!(
            ready_now(store.sync()),
            Some(Ok(())),
            "all durable: ready at once"
        );
        // Concurrent syncs all resolve.
        store.set(&ns, "b", b"2", None).expect("set");
        let (x, y) = tokio::join!(store.sync(), store.sync());
        assert_eq!((x, y), (Ok(()), Ok(())));
        store.flush().expect("flush");
    }

    /// A fact keyed `n`, valued `v`, live until `until`.
    pub fn fact(n: u8, v: u8, until: i64) -> Fact {
        Fact {
            key: [n; 16],
            value: [v; 16],
            until,
        }
    }

    fn sorted(mut facts: Vec<Fact>) -> Vec<Fact> {
        facts.sort_by_key(|f| f.key);
        facts
    }

    /// The behaviour every [`FactStore`] must have; `kv` is the same store, whose
    /// `purge_expired` forgets expired facts. The store's clock reads `now` (ms).
    pub fn facts(store: &dyn FactStore, kv: &dyn KvStore, now: &AtomicU64) {
        let secs =
            |now: &AtomicU64| i64::try_from(now.load(Ordering::SeqCst) / 1000).expect("secs");
        let t = secs(now);
        assert_eq!(store.live(t), Ok(Vec::new()));
        let secret = store.secret().expect("secret");
        assert_ne!(secret, [0; 32], "the secret is random");
        assert_eq!(store.secret(), Ok(secret), "and stays the same");

        store
            .put(&[fact(1, 1, t + 10), fact(2, 2, t + 20), fact(3, 3, t)])
            .expect("put");
        assert_eq!(
            sorted(store.live(t).expect("live")),
            [fact(1, 1, t + 10), fact(2, 2, t + 20)],
            "live means until > now"
        );
        assert_eq!(store.live(t + 10).expect("live"), [fact(2, 2, t + 20)]);
        assert_eq!(store.live(t - 1).expect("live").len(), 3);

        // Of several puts of a key, the longest-lived is the fact: a later end moves it (with
        // the later value), an earlier end does not shorten it.
        store
            .put(&[fact(1, 9, t + 30), fact(2, 8, t + 20)])
            .expect("put again");
        let live = sorted(store.live(t).expect("live"));
        assert_eq!(live[0], fact(1, 9, t + 30));
        assert_eq!(live[1].until, t + 20);
        assert_eq!(live.len(), 2);
        store.put(&[fact(1, 7, t + 5)]).expect("put an earlier end");
        assert_eq!(store.live(t + 25).expect("live"), [fact(1, 9, t + 30)]);
        store.put(&[]).expect("an empty put");

        // Forgetting: nothing that lives goes; what has expired goes once its commit group has.
        now.fetch_add(40_000, Ordering::SeqCst);
        assert!(
            kv.purge_expired().expect("purge") >= 3,
            "every fact has expired by t+40"
        );
        assert_eq!(
            store.live(secs(now) - 100),
            Ok(Vec::new()),
            "purged facts are gone"
        );
        assert_eq!(store.live(secs(now)), Ok(Vec::new()));
        assert_eq!(kv.purge_expired(), Ok(0));

        // Marks.
        assert_eq!(store.mark("horizon"), Ok(None));
        store.set_mark("horizon", -5).expect("set mark");
        store.set_mark("other", i64::MAX).expect("set mark");
        assert_eq!(store.mark("horizon"), Ok(Some(-5)));
        store.set_mark("horizon", 42).expect("set mark again");
        assert_eq!(store.mark("horizon"), Ok(Some(42)));
        assert_eq!(store.mark("other"), Ok(Some(i64::MAX)));
        assert_eq!(store.mark(""), Ok(None));
    }
}
