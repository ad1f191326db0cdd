//! Signed queries bound to their bodies. WeChat's `signature` covers the token, timestamp and
//! nonce only, not the body, so one captured query string would let anyone post any body for
//! as long as its timestamp is inside the window. Each accepted query is therefore remembered
//! with a digest of its body until its window ends: the same query with the same body is a
//! retry (dedup decides what it gets), the same query with another body is refused.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{KeyHasher, Millis, SHARDS, TimeBase, hash_key, millis, tagged_hash};
use crate::clock::unix_now;
use crate::storage::{self, Fact, FactStore};

/// The first byte of a signature fact's key (facts of other kinds share the store).
const FACT_TAG: u8 = b's';

/// What [`MemorySignatureLog::bind`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// The query was not seen in its window: it is bound to this body now.
    New,
    /// The query was seen with this very body, `age` ago (`None`: before this process
    /// started): a retry or a replay of the same push.
    Same {
        /// How long ago it was bound.
        age: Option<Duration>,
    },
    /// The query was seen with another body: a forgery riding on a captured signature.
    Conflict,
}

impl Binding {
    /// Whether a push bound so is a replay of one answered before whose answer, kept for
    /// `retry_ttl`, is gone.
    pub fn is_replay(self, retry_ttl: Duration) -> bool {
        match self {
            Binding::Same { age: None } => true,
            Binding::Same { age: Some(age) } => age >= retry_ttl,
            Binding::New | Binding::Conflict => false,
        }
    }
}

/// A bound query: its body's hash, when it was bound (`None`: before this process started),
/// and the end of its window.
#[derive(Debug, Clone, Copy)]
struct Bound {
    body: u128,
    at: Option<Millis>,
    until: Millis,
}

/// One shard: the bound queries by hash, and the ends of their windows in about the order they
/// come (they differ only by the pushes' timestamps).
#[derive(Debug, Default)]
struct Shard {
    bound: HashMap<u128, Bound, BuildHasherDefault<KeyHasher>>,
    expiry: VecDeque<(Millis, u128)>,
}

impl Shard {
    fn expire(&mut self, now: Millis, max: usize) {
        for _ in 0..max {
            match self.expiry.front() {
                Some(&(due, query)) if due <= now => {
                    self.expiry.pop_front();
                    if matches!(self.bound.get(&query), Some(b) if b.until == due) {
                        self.bound.remove(&query);
                    }
                }
                _ => break,
            }
        }
    }
}

/// The single-node signature log, about 80 bytes per query in its window; with a
/// [`FactStore`] its bindings persist, so a restart does not free a captured query.
#[derive(Debug)]
pub struct MemorySignatureLog {
    shards: [Mutex<Shard>; SHARDS],
    hash_key: [u8; 16],
    time: TimeBase,
    facts: Option<Arc<dyn FactStore>>,
}

/// Expired bindings dropped by each `bind` on the way.
const PURGE_PER_BIND: usize = 4;

impl Default for MemorySignatureLog {
    fn default() -> Self {
        MemorySignatureLog::with(rand::random(), None)
    }
}

impl MemorySignatureLog {
    /// An empty log in memory only.
    pub fn new() -> Self {
        MemorySignatureLog::default()
    }

    /// A log whose bindings persist in `facts`; those still inside their windows are loaded.
    pub fn persistent(facts: Arc<dyn FactStore>) -> storage::Result<Self> {
        let log = MemorySignatureLog::with(hash_key(&*facts)?, Some(Arc::clone(&facts)));
        let mut loaded = 0;
        for fact in facts.live(unix_now())? {
            if fact.key[0] != FACT_TAG {
                continue;
            }
            let (query, body) = (
                u128::from_be_bytes(fact.key),
                u128::from_be_bytes(fact.value),
            );
            let until = log.time.at_unix_secs(fact.until);
            let mut shard = log.shard(query);
            shard.bound.insert(
                query,
                Bound {
                    body,
                    at: None,
                    until,
                },
            );
            shard.expiry.push_back((until, query));
            loaded += 1;
        }
        for shard in &log.shards {
            lock(shard)
                .expiry
                .make_contiguous()
                .sort_unstable_by_key(|&(due, _)| due);
        }
        tracing::info!(loaded, "signature bindings loaded");
        Ok(log)
    }

    fn with(hash_key: [u8; 16], facts: Option<Arc<dyn FactStore>>) -> Self {
        MemorySignatureLog {
            shards: std::array::from_fn(|_| Mutex::default()),
            hash_key,
            time: TimeBase::new(),
            facts,
        }
    }

    fn shard(&self, query: u128) -> MutexGuard<'_, Shard> {
        lock(&self.shards[(query >> 64) as usize % SHARDS])
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding a shard lock leaves nothing half-written that matters here.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemorySignatureLog {
    /// Drops bindings past their windows; returns how many remain.
    pub fn purge(&self) -> usize {
        let now = self.time.now();
        self.shards
            .iter()
            .map(|shard| {
                let mut shard = lock(shard);
                shard.expire(now, usize::MAX);
                shard.bound.len()
            })
            .sum()
    }
}

impl MemorySignatureLog {
    /// Binds `query` (the tenant and the signed parameters) to `body` for `window_left`, or
    /// reports how it was bound before.
    pub fn bind(&self, query: &str, body: &[u8], window_left: Duration) -> Binding {
        let query = tagged_hash(&self.hash_key, FACT_TAG, query.as_bytes());
        let body = tagged_hash(&self.hash_key, 0, body);
        let now = self.time.now();
        let mut shard = self.shard(query);
        shard.expire(now, PURGE_PER_BIND);
        match shard.bound.get(&query) {
            Some(bound) if bound.until > now => {
                return if bound.body == body {
                    Binding::Same {
                        age: bound
                            .at
                            .map(|at| Duration::from_millis(now.saturating_sub(at))),
                    }
                } else {
                    Binding::Conflict
                };
            }
            _ => {}
        }
        let until = now.saturating_add(millis(window_left));
        shard.bound.insert(
            query,
            Bound {
                body,
                at: Some(now),
                until,
            },
        );
        shard.expiry.push_back((until, query));
        drop(shard);
        if let Some(facts) = &self.facts {
            let fact = Fact {
                key: query.to_be_bytes(),
                value: body.to_be_bytes(),
                until: self.time.unix_secs(until),
            };
            if let Err(e) = facts.put(&[fact]) {
                tracing::error!(
                    "cannot persist a signature binding: {e}; after a restart this query could carry another body inside its window"
                );
            }
        }
        Binding::New
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryKv;

    #[test]
    fn a_same_binding_is_a_replay_once_the_answer_is_gone() {
        let ttl = Duration::from_secs(60);
        let same = |age| Binding::Same { age };
        assert!(
            same(None).is_replay(ttl),
            "bound before this process started"
        );
        assert!(same(Some(Duration::from_secs(61))).is_replay(ttl));
        assert!(
            !same(Some(Duration::from_millis(1))).is_replay(ttl),
            "a duplicate racing the first request is not a replay"
        );
        assert!(!Binding::New.is_replay(ttl));
    }

    #[test]
    fn purging_drops_what_left_its_window() {
        let log = MemorySignatureLog::new();
        let window = Duration::from_millis(20);
        assert_eq!(log.bind("q", b"a", window), Binding::New);
        assert_eq!(log.purge(), 1);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(log.purge(), 0);
    }

    #[test]
    fn a_persistent_log_survives_a_restart() {
        let facts: Arc<dyn FactStore> = Arc::new(MemoryKv::default());
        let log = MemorySignatureLog::persistent(Arc::clone(&facts)).expect("log");
        let window = Duration::from_secs(300);
        assert_eq!(
            log.bind("t\0sig\0ts\0nonce", b"<xml>a</xml>", window),
            Binding::New
        );
        drop(log);
        let restarted = MemorySignatureLog::persistent(facts).expect("log");
        assert_eq!(
            restarted.bind("t\0sig\0ts\0nonce", b"<xml>b</xml>", window),
            Binding::Conflict
        );
        assert_eq!(
            restarted.bind("t\0sig\0ts\0nonce", b"<xml>a</xml>", window),
            Binding::Same { age: None },
            "a binding from before the restart has no age"
        );
    }
}
