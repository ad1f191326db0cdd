//! Plugin key-value data behind the [`KvStore`] trait: keys namespaced by tenant and plugin,
//! optional TTLs, an embedded durable store ([`RedbKv`]) and an in-memory one ([`MemoryKv`]).
//! Both also keep compact expiring [`Fact`]s ([`FactStore`]) for deduplication.
//!
//! Size caps and per-call caps are the caller's job (the plugin host enforces them before a
//! guest's request reaches a store). What a namespace holds over time is the store's: each
//! store counts the live keys and bytes of every namespace ([`KvStore::usage`]) and checks a
//! write against the caller's [`Quota`] atomically with the write
//! ([`KvStore::set_within`], [`KvStore::increment_within`]).

pub mod lock;
mod memory;
mod overlay;
mod redb_store;
mod redis_store;
mod usage;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use memory::MemoryKv;
pub use redb_store::RedbKv;
#[cfg(test)]
pub(crate) use redis_store::test_store;
pub use redis_store::{RedisKv, RedisSettings, RedisStats};

/// Which store holds plugin kv and the host's shared keys, for `/healthz`.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The embedded database (one host).
    Embedded,
    /// A Redis server shared by several hosts.
    Redis(Box<RedisKv>),
}

impl Backend {
    /// `embedded` or `redis`.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Redis(_) => "redis",
        }
    }

    /// Whether the store answers now (the embedded one always does).
    pub async fn reachable(&self) -> Result<()> {
        match self {
            Backend::Embedded => Ok(()),
            Backend::Redis(redis) => redis.ping().await,
        }
    }
}

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
    Arc::new(crate::clock::unix_now_ms)
}

/// What [`KvStore::sync`] returns: resolves once the writes before it are durable.
pub type SyncFuture = Pin<Box<dyn Future<Output = Result<()>> + Send + 'static>>;

/// What the [`KvStore`] operations return (boxed, so that stores can be shared as `dyn`).
pub type KvFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// A key-value store for plugin data. Implementations are shared by every tenant and plugin;
/// the [`Namespace`] keeps them apart. Operations are futures: an embedded store answers in
/// the first poll, a networked one ([`RedisKv`]) waits for its server, never past its timeout.
pub trait KvStore: Send + Sync + std::fmt::Debug + 'static {
    /// The value of `key`, unless absent or expired.
    fn get<'a>(&'a self, ns: &'a Namespace, key: &'a str) -> KvFuture<'a, Option<Vec<u8>>>;
    /// Stores `value`, expiring after `ttl` when given (replacing any earlier TTL), without a
    /// quota (the host's own data).
    fn set<'a>(
        &'a self,
        ns: &'a Namespace,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> KvFuture<'a, ()> {
        self.set_within(ns, key, value, ttl, Quota::UNLIMITED)
    }
    /// [`KvStore::set`] unless the namespace would hold more than `quota` allows
    /// ([`Error::QuotaExceeded`], nothing written); the check and the write are one step, so
    /// concurrent writers of a namespace cannot together pass its quota.
    fn set_within<'a>(
        &'a self,
        ns: &'a Namespace,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
        quota: Quota,
    ) -> KvFuture<'a, ()>;
    /// Removes `key`; returns whether it existed (and had not expired). Frees its quota.
    fn delete<'a>(&'a self, ns: &'a Namespace, key: &'a str) -> KvFuture<'a, bool>;
    /// Adds `delta` to the decimal counter at `key` (absent counts as 0), keeping its TTL,
    /// without a quota.
    fn increment<'a>(&'a self, ns: &'a Namespace, key: &'a str, delta: i64) -> KvFuture<'a, i64> {
        self.increment_within(ns, key, delta, Quota::UNLIMITED)
    }
    /// [`KvStore::increment`] within `quota`, as [`KvStore::set_within`].
    fn increment_within<'a>(
        &'a self,
        ns: &'a Namespace,
        key: &'a str,
        delta: i64,
        quota: Quota,
    ) -> KvFuture<'a, i64>;
    /// Replaces what `key` holds with `new` (a value and its TTL; `None` deletes) if it holds
    /// exactly `expected` now (`None`: absent or expired), in one step with respect to every
    /// other write of the key, on every host sharing the store; returns whether it did. The
    /// host's own locks and compare-and-delete (access tokens); no quota.
    fn compare_and_swap<'a>(
        &'a self,
        ns: &'a Namespace,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Option<(&'a [u8], Option<Duration>)>,
    ) -> KvFuture<'a, bool>;
    /// What `ns` holds now (live entries only), as quotas count it.
    fn usage<'a>(&'a self, ns: &'a Namespace) -> KvFuture<'a, KvUsage>;
    /// Resolves once every write accepted before the call (kv writes, and the facts and marks
    /// of the same store) is durable; at once when none is pending. Concurrent callers share
    /// one commit. An error means the writes are not durable yet: they are kept and retried,
    /// not dropped.
    fn sync(&self) -> SyncFuture;
    /// Makes every write so far durable, blocking the calling thread (for shutdown and tests).
    fn flush(&self) -> Result<()>;
    /// Drops expired entries (and expired facts); returns how many. Blocks the calling thread.
    fn purge_expired(&self) -> Result<usize>;
    /// What the store has done since it was opened, for metrics (a store that keeps nothing on
    /// disk reports zeros).
    fn stats(&self) -> StorageStats {
        StorageStats::default()
    }
}

/// Stores `value` as JSON at `key`, as [`KvStore::set`] does (the host's own records: access
/// tokens, kept late replies, users' customer-service windows); a value that cannot be encoded
/// is an [`Error::Backend`].
pub async fn set_json<T: serde::Serialize + ?Sized>(
    kv: &dyn KvStore,
    ns: &Namespace,
    key: &str,
    value: &T,
    ttl: Option<Duration>,
) -> Result<()> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| Error::Backend(format!("cannot encode the value: {e}")))?;
    kv.set(ns, key, &bytes, ttl).await
}

/// A store whose every operation completes in the calling thread without waiting on I/O (the
/// embedded stores: writes go to memory and are committed by a thread of their own). It is a
/// [`KvStore`] whose futures are ready at once.
pub(crate) trait InProcessKv: Send + Sync + std::fmt::Debug + 'static {
    fn get_now(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>>;
    fn set_within_now(
        &self,
        ns: &Namespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        quota: Quota,
    ) -> Result<()>;
    fn delete_now(&self, ns: &Namespace, key: &str) -> Result<bool>;
    fn increment_within_now(
        &self,
        ns: &Namespace,
        key: &str,
        delta: i64,
        quota: Quota,
    ) -> Result<i64>;
    fn compare_and_swap_now(
        &self,
        ns: &Namespace,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<(&[u8], Option<Duration>)>,
    ) -> Result<bool>;
    fn usage_now(&self, ns: &Namespace) -> Result<KvUsage>;
    fn sync(&self) -> SyncFuture;
    fn flush(&self) -> Result<()>;
    fn purge_expired(&self) -> Result<usize>;
    fn stats(&self) -> StorageStats {
        StorageStats::default()
    }
}

impl<S: InProcessKv> KvStore for S {
    fn get<'a>(&'a self, ns: &'a Namespace, key: &'a str) -> KvFuture<'a, Option<Vec<u8>>> {
        Box::pin(std::future::ready(self.get_now(ns, key)))
    }
    fn set_within<'a>(
        &'a self,
        ns: &'a Namespace,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
        quota: Quota,
    ) -> KvFuture<'a, ()> {
        Box::pin(std::future::ready(
            self.set_within_now(ns, key, value, ttl, quota),
        ))
    }
    fn delete<'a>(&'a self, ns: &'a Namespace, key: &'a str) -> KvFuture<'a, bool> {
        Box::pin(std::future::ready(self.delete_now(ns, key)))
    }
    fn increment_within<'a>(
        &'a self,
        ns: &'a Namespace,
        key: &'a str,
        delta: i64,
        quota: Quota,
    ) -> KvFuture<'a, i64> {
        Box::pin(std::future::ready(
            self.increment_within_now(ns, key, delta, quota),
        ))
    }
    fn compare_and_swap<'a>(
        &'a self,
        ns: &'a Namespace,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Option<(&'a [u8], Option<Duration>)>,
    ) -> KvFuture<'a, bool> {
        Box::pin(std::future::ready(
            self.compare_and_swap_now(ns, key, expected, new),
        ))
    }
    fn usage<'a>(&'a self, ns: &'a Namespace) -> KvFuture<'a, KvUsage> {
        Box::pin(std::future::ready(self.usage_now(ns)))
    }
    fn sync(&self) -> SyncFuture {
        InProcessKv::sync(self)
    }
    fn flush(&self) -> Result<()> {
        InProcessKv::flush(self)
    }
    fn purge_expired(&self) -> Result<usize> {
        InProcessKv::purge_expired(self)
    }
    fn stats(&self) -> StorageStats {
        InProcessKv::stats(self)
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

    /// What a compare-and-swap at `now` writes over `current`: `None` unless `current` holds
    /// exactly `expected` (an expired entry holds nothing), else the new entry (`None` deletes).
    fn swapped(
        current: Option<&Entry>,
        expected: Option<&[u8]>,
        new: Option<(&[u8], Option<Duration>)>,
        now_ms: u64,
    ) -> Option<Option<Entry>> {
        let live = current.filter(|e| e.is_live(now_ms));
        (live.map(|e| e.value.as_slice()) == expected)
            .then(|| new.map(|(value, ttl)| Entry::new(value, ttl, now_ms)))
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

    /// The kv contract's tests for one backend, in the module that invokes it: `$open` makes a
    /// fresh store from a clock, returned with whatever must outlive it (a directory, a server).
    macro_rules! kv_contract_tests {
        ($open:expr) => {
            #[tokio::test]
            async fn meets_the_kv_contract() {
                let (clock, now) = $crate::storage::contract::manual_clock();
                let (store, _keep) = ($open)(clock).await;
                $crate::storage::contract::run(&store, &now).await;
            }

            #[tokio::test]
            async fn meets_the_quota_contract() {
                let (clock, now) = $crate::storage::contract::manual_clock();
                let (store, _keep) = ($open)(clock).await;
                $crate::storage::contract::quotas(&store, &now).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn quotas_hold_under_concurrent_writers() {
                let (store, _keep) = ($open)($crate::storage::system_clock()).await;
                $crate::storage::contract::concurrent_quota(std::sync::Arc::new(store)).await;
            }

            #[tokio::test]
            async fn meets_the_sync_contract() {
                let (store, _keep) = ($open)($crate::storage::system_clock()).await;
                $crate::storage::contract::sync(&store).await;
            }
        };
    }
    pub(crate) use kv_contract_tests;

    /// A clock the test moves by hand.
    pub fn manual_clock() -> (Clock, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(1_700_000_000_000));
        let read = Arc::clone(&now);
        (Arc::new(move || read.load(Ordering::SeqCst)), now)
    }

    pub async fn run(store: &dyn KvStore, now: &AtomicU64) {
        let a = Namespace::new("tenant-a", "game");
        let b = Namespace::new("tenant-b", "game");
        let other_plugin = Namespace::new("tenant-a", "other");

        // get / set / isolation
        assert_eq!(store.get(&a, "k").await, Ok(None));
        store.set(&a, "k", b"v1", None).await.expect("set");
        assert_eq!(store.get(&a, "k").await, Ok(Some(b"v1".to_vec())));
        assert_eq!(store.get(&b, "k").await, Ok(None), "tenants are isolated");
        assert_eq!(
            store.get(&other_plugin, "k").await,
            Ok(None),
            "plugins are isolated"
        );
        store
            .set(&a, "", b"", None)
            .await
            .expect("empty key and value");
        assert_eq!(store.get(&a, "").await, Ok(Some(Vec::new())));

        // delete
        assert_eq!(store.delete(&a, "k").await, Ok(true));
        assert_eq!(store.delete(&a, "k").await, Ok(false));
        assert_eq!(store.get(&a, "k").await, Ok(None));

        // TTL
        store
            .set(&a, "t", b"x", Some(Duration::from_secs(10)))
            .await
            .expect("set ttl");
        now.fetch_add(9_999, Ordering::SeqCst);
        assert_eq!(store.get(&a, "t").await, Ok(Some(b"x".to_vec())));
        now.fetch_add(1, Ordering::SeqCst);
        assert_eq!(store.get(&a, "t").await, Ok(None), "expired at its TTL");
        assert_eq!(
            store.delete(&a, "t").await,
            Ok(false),
            "expired keys do not exist"
        );
        store
            .set(&a, "t", b"y", Some(Duration::from_secs(1)))
            .await
            .expect("set ttl");
        store
            .set(&a, "t", b"z", None)
            .await
            .expect("set without ttl clears it");
        now.fetch_add(5_000, Ordering::SeqCst);
        assert_eq!(store.get(&a, "t").await, Ok(Some(b"z".to_vec())));

        // increment
        assert_eq!(store.increment(&a, "n", 5).await, Ok(5));
        assert_eq!(store.increment(&a, "n", -7).await, Ok(-2));
        assert_eq!(store.get(&a, "n").await, Ok(Some(b"-2".to_vec())));
        store
            .set(&a, "n", b"40", Some(Duration::from_secs(2)))
            .await
            .expect("set");
        assert_eq!(store.increment(&a, "n", 2).await, Ok(42));
        now.fetch_add(2_000, Ordering::SeqCst);
        assert_eq!(
            store.get(&a, "n").await,
            Ok(None),
            "increment keeps the TTL"
        );
        assert_eq!(
            store.increment(&a, "n", 1).await,
            Ok(1),
            "expired counter restarts at 0"
        );
        store.set(&a, "s", b"abc", None).await.expect("set");
        assert_eq!(store.increment(&a, "s", 1).await, Err(Error::NotANumber));
        store
            .set(&a, "max", i64::MAX.to_string().as_bytes(), None)
            .await
            .expect("set");
        assert_eq!(store.increment(&a, "max", 1).await, Err(Error::Overflow));

        for (text, after) in [(" 007 ", 8), ("+5", 6), ("-0", 1)] {
            store
                .set(&a, "c", text.as_bytes(), None)
                .await
                .expect("set");
            assert_eq!(store.increment(&a, "c", 1).await, Ok(after), "{text:?}");
        }
        store
            .set(&a, "c", b"99999999999999999999", None)
            .await
            .expect("set");
        assert_eq!(store.increment(&a, "c", 1).await, Err(Error::NotANumber));
        store.set(&a, "c", b"1.5", None).await.expect("set");
        assert_eq!(store.increment(&a, "c", 1).await, Err(Error::NotANumber));
        store
            .set(&a, "min", i64::MIN.to_string().as_bytes(), None)
            .await
            .expect("set");
        assert_eq!(store.increment(&a, "min", -1).await, Err(Error::Overflow));
        assert_eq!(
            store.get(&a, "min").await,
            Ok(Some(i64::MIN.to_string().into_bytes())),
            "a refused increment leaves the value"
        );

        // compare and swap: absent → value (a lock), value → other, value → absent.
        let ttl = Some(Duration::from_secs(5));
        assert_eq!(
            store
                .compare_and_swap(&a, "lock", None, Some((b"me", ttl)))
                .await,
            Ok(true)
        );
        assert_eq!(
            store
                .compare_and_swap(&a, "lock", None, Some((b"you", ttl)))
                .await,
            Ok(false),
            "held"
        );
        assert_eq!(
            store.compare_and_swap(&a, "lock", Some(b"you"), None).await,
            Ok(false),
            "not yours to release"
        );
        assert_eq!(store.get(&a, "lock").await, Ok(Some(b"me".to_vec())));
        now.fetch_add(5_000, Ordering::SeqCst);
        assert_eq!(
            store
                .compare_and_swap(&a, "lock", None, Some((b"you", None)))
                .await,
            Ok(true),
            "an expired value counts as absent"
        );
        assert_eq!(
            store
                .compare_and_swap(&a, "lock", Some(b"you"), Some((b"them", None)))
                .await,
            Ok(true)
        );
        assert_eq!(
            store
                .compare_and_swap(&a, "lock", Some(b"them"), None)
                .await,
            Ok(true)
        );
        assert_eq!(store.get(&a, "lock").await, Ok(None));
        assert_eq!(
            store.compare_and_swap(&b, "lock", Some(b""), None).await,
            Ok(false)
        );
        store.flush().expect("flush");
    }

    /// What `purge_expired` must do in a store that purges (the embedded ones: a shared store
    /// lets its server expire entries).
    pub async fn purges(store: &dyn KvStore, now: &AtomicU64) {
        let b = Namespace::new("tenant-b", "game");
        for (key, secs) in [("gone1", 1), ("gone2", 1), ("stays", 100)] {
            store
                .set(&b, key, b"x", Some(Duration::from_secs(secs)))
                .await
                .expect("set");
        }
        now.fetch_add(1_000, Ordering::SeqCst);
        assert_eq!(store.purge_expired(), Ok(2));
        assert_eq!(store.get(&b, "stays").await, Ok(Some(b"x".to_vec())));
        store.flush().expect("flush");
    }

    /// What quotas must do: count live keys and key + value bytes per namespace, refuse a
    /// write that would pass either limit (writing nothing), charge an overwrite the difference
    /// only, and free what deletes, shrinking overwrites and expiry (before any purge) release.
    pub async fn quotas(store: &dyn KvStore, now: &AtomicU64) {
        let ns = Namespace::new("tenant-q", "game");
        let other = Namespace::new("tenant-q", "other");
        let quota = Quota {
            max_keys: 3,
            max_bytes: 100,
        };
        let held = |ns: &Namespace| {
            let ns = ns.clone();
            async move { store.usage(&ns).await.expect("usage") }
        };
        let usage = |keys, bytes| KvUsage { keys, bytes };
        let refused_keys = |held| {
            Err(Error::QuotaExceeded {
                limit: QuotaLimit::Keys,
                held,
                adds: 1,
                max: 3,
            })
        };
        assert_eq!(held(&ns).await, KvUsage::default());

        store
            .set_within(&ns, "k1", b"aaaa", None, quota)
            .await
            .expect("2 + 4 bytes");
        assert_eq!(store.increment_within(&ns, "n", 5, quota).await, Ok(5));
        store
            .set_within(&ns, "k2", b"xx", Some(Duration::from_secs(10)), quota)
            .await
            .expect("with a TTL");
        assert_eq!(held(&ns).await, usage(3, 6 + 2 + 4));
        assert_eq!(
            store.set_within(&ns, "k3", b"", None, quota).await,
            refused_keys(3)
        );
        assert_eq!(
            store
                .set_within(&ns, "k3", b"", None, quota)
                .await
                .map_err(|e| e.to_string()),
            Err("namespace holds 3 keys, at most 3".to_owned())
        );
        assert_eq!(
            store.increment_within(&ns, "m", 1, quota).await.map(|_| ()),
            refused_keys(3)
        );
        assert_eq!(
            store.get(&ns, "k3").await,
            Ok(None),
            "a refused write writes nothing"
        );
        assert_eq!(store.get(&ns, "m").await, Ok(None));
        assert_eq!(held(&ns).await, usage(3, 12));
        assert_eq!(
            held(&other).await,
            KvUsage::default(),
            "each namespace has its own"
        );
        store
            .set_within(&other, "k3", b"", None, quota)
            .await
            .expect("another plugin's namespace");

        // Overwrites are charged the difference.
        store
            .set_within(&ns, "k1", b"bbbb", None, quota)
            .await
            .expect("an overwrite at the key limit");
        store
            .set_within(&ns, "k1", &[b'c'; 90], None, quota)
            .await
            .expect("12 - 6 + 92 = 98 bytes");
        assert_eq!(held(&ns).await, usage(3, 98));
        assert_eq!(
            store.set_within(&ns, "k1", &[b'd'; 95], None, quota).await,
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
                .await
                .map_err(|e| e.to_string()),
            Err("namespace holds 98 bytes, at most 100; the write adds 5".to_owned())
        );
        assert_eq!(store.get(&ns, "k1").await, Ok(Some(vec![b'c'; 90])));
        assert_eq!(store.increment_within(&ns, "n", 5, quota).await, Ok(10));
        assert_eq!(store.increment_within(&ns, "n", 90, quota).await, Ok(100));
        assert_eq!(held(&ns).await, usage(3, 100), "exactly the quota");
        assert!(matches!(
            store.increment_within(&ns, "n", 900, quota).await,
            Err(Error::QuotaExceeded {
                limit: QuotaLimit::Bytes,
                held: 100,
                adds: 1,
                max: 100
            })
        ));
        assert_eq!(store.get(&ns, "n").await, Ok(Some(b"100".to_vec())));

        // A shrinking overwrite passes over a quota lowered below what is held, and frees.
        let lowered = Quota {
            max_keys: 1,
            max_bytes: 10,
        };
        store
            .set_within(&ns, "k1", b"e", None, lowered)
            .await
            .expect("shrinks");
        assert_eq!(held(&ns).await, usage(3, 3 + 4 + 4));
        assert_eq!(store.increment_within(&ns, "n", -100, lowered).await, Ok(0));
        assert_eq!(held(&ns).await, usage(3, 3 + 2 + 4));

        // Deleting frees.
        assert_eq!(store.delete(&ns, "k2").await, Ok(true));
        assert_eq!(held(&ns).await, usage(2, 5));
        store
            .set_within(&ns, "k3", b"z", Some(Duration::from_secs(1)), quota)
            .await
            .expect("room for a key");
        assert_eq!(
            store.set_within(&ns, "k4", b"", None, quota).await,
            refused_keys(3)
        );

        // Expiry frees at once, purged or not, and the purge does not free it again.
        now.fetch_add(999, Ordering::SeqCst);
        assert_eq!(held(&ns).await, usage(3, 5 + 3));
        now.fetch_add(1, Ordering::SeqCst);
        assert_eq!(held(&ns).await, usage(2, 5), "k3 expired");
        store
            .set_within(&ns, "k4", b"", None, quota)
            .await
            .expect("k3 no longer counts");
        assert_eq!(
            store.set_within(&ns, "k5", b"", None, quota).await,
            refused_keys(3)
        );
        store.purge_expired().expect("purge");
        assert_eq!(held(&ns).await, usage(3, 7));
        assert_eq!(
            store.set_within(&ns, "k3", b"", None, quota).await,
            refused_keys(3)
        );
        let ttl = Some(Duration::from_secs(5));
        store
            .set_within(&ns, "k4", b"", ttl, quota)
            .await
            .expect("a TTL");
        now.fetch_add(5_000, Ordering::SeqCst);
        store
            .set_within(&ns, "k4", b"back", None, quota)
            .await
            .expect("an expired key written again");
        assert_eq!(held(&ns).await, usage(3, 5 + 6));
        now.fetch_add(5_000, Ordering::SeqCst);
        assert_eq!(
            held(&ns).await,
            usage(3, 11),
            "k4's old expiry is gone with it"
        );
        store
            .set_within(&ns, "k5", b"", Some(Duration::ZERO), quota)
            .await
            .expect("expired at once: counts nothing");
        assert_eq!(held(&ns).await, usage(3, 11));

        // Writes without a quota (the host's) are counted too.
        store.set(&ns, "host", b"h", None).await.expect("no quota");
        assert_eq!(held(&ns).await, usage(4, 16));
        for key in ["k1", "n", "k4", "host"] {
            assert_eq!(store.delete(&ns, key).await, Ok(true), "{key}");
        }
        assert_eq!(held(&ns).await, KvUsage::default());
        store.flush().expect("flush");
    }

    /// Writers racing for the last keys and bytes of one namespace: exactly the quota's worth
    /// succeed, and the store then holds exactly that.
    /// Run on a multi-threaded runtime: writers race on one namespace from several tasks.
    pub async fn concurrent_quota(store: Arc<dyn KvStore>) {
        const WRITERS: usize = 8;
        const EACH: usize = 20;
        let race = |ns: &Namespace, quota: Quota, value: &[u8]| {
            let mut writers = tokio::task::JoinSet::new();
            let start = Arc::new(tokio::sync::Barrier::new(WRITERS));
            for t in 0..WRITERS {
                let (store, ns, value, start) = (
                    Arc::clone(&store),
                    ns.clone(),
                    value.to_vec(),
                    Arc::clone(&start),
                );
                writers.spawn(async move {
                    start.wait().await;
                    let mut results = Vec::new();
                    for i in 0..EACH {
                        let key = format!("t{t}k{i:02}");
                        // Half the writers count visits, half set values.
                        results.push(if t % 2 == 0 && value.len() == 1 {
                            store
                                .increment_within(&ns, &key, 1, quota)
                                .await
                                .map(|_| ())
                        } else {
                            store.set_within(&ns, &key, &value, None, quota).await
                        });
                    }
                    results
                });
            }
            async move {
                let mut all: Vec<Result<()>> = Vec::new();
                while let Some(done) = writers.join_next().await {
                    all.extend(done.expect("writer"));
                }
                all
            }
        };
        let stored = async |ns: &Namespace| {
            let mut count = 0;
            for t in 0..WRITERS {
                for i in 0..EACH {
                    if store
                        .get(ns, &format!("t{t}k{i:02}"))
                        .await
                        .expect("get")
                        .is_some()
                    {
                        count += 1;
                    }
                }
            }
            count
        };

        let keys = Namespace::new("tenant-race", "keys");
        let quota = Quota {
            max_keys: 50,
            max_bytes: u64::MAX,
        };
        let results = race(&keys, quota, b"1").await;
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
        assert_eq!(stored(&keys).await, 50);
        assert_eq!(store.usage(&keys).await.expect("usage").keys, 50);

        // Every entry holds a 5-byte key and a 15-byte value: 20 bytes.
        let bytes = Namespace::new("tenant-race", "bytes");
        let quota = Quota {
            max_keys: u64::MAX,
            max_bytes: 30 * 20,
        };
        let results = race(&bytes, quota, &[b'v'; 15]).await;
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            30,
            "exactly the byte quota's worth succeed"
        );
        assert_eq!(stored(&bytes).await, 30);
        assert_eq!(
            store.usage(&bytes).await,
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
        store.set(&ns, "a", b"1", None).await.expect("set");
        assert_eq!(store.increment(&ns, "n", 3).await, Ok(3));
        store.sync().await.expect("sync");
        assert_eq!(store.get(&ns, "a").await, Ok(Some(b"1".to_vec())));
        assert_eq!(
            ready_now(store.sync()),
            Some(Ok(())),
            "all durable: ready at once"
        );
        // Concurrent syncs all resolve.
        store.set(&ns, "b", b"2", None).await.expect("set");
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
