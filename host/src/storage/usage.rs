//! What each namespace holds, kept by a store beside its data so that a write is checked
//! against its [`Quota`] in the same critical section that makes it: the store calls
//! [`Usage::replace`] while it holds the lock of the key it writes, and `replace` takes the
//! namespace's lock, so two writers of one namespace (two instances of a plugin) are counted
//! one after the other and cannot both pass the last free key.
//!
//! An entry counts its key's bytes (the plugin's key, not the namespace prefix) and its value's
//! bytes while it is live. Entries with a TTL are also filed by their expiry, and stop counting
//! when the namespace is next looked at after it (the buckets up to that time are dropped from
//! the totals): no scan, and no need to wait for the purge that deletes them later (purges and
//! lazy removals of expired entries leave the accounting alone). Time only moves forward here:
//! each namespace keeps the latest time it was looked at (its horizon) and judges liveness by
//! it, so an entry is subtracted at most once even if the clock steps back.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{Entry, Error, KvUsage, Quota, QuotaLimit, Result};

/// Shards of the table: writers of different namespaces rarely share a lock.
const SHARDS: usize = 16;

/// What a stored entry counts for: its expiry (0 = never) and the length of its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stored {
    pub expires_at_ms: u64,
    pub value_len: usize,
}

impl Stored {
    pub fn of(entry: &Entry) -> Self {
        Stored {
            expires_at_ms: entry.expires_at_ms,
            value_len: entry.value.len(),
        }
    }

    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_at_ms == 0 || self.expires_at_ms > now_ms
    }
}

/// One namespace's totals.
#[derive(Debug, Default)]
struct Held {
    keys: u64,
    bytes: u64,
    /// The latest time (ms) the namespace was looked at: entries expired by then are out of the
    /// totals.
    horizon: u64,
    /// What the counted entries with a TTL hold, by expiry: (keys, bytes).
    expiring: BTreeMap<u64, (u64, u64)>,
}

impl Held {
    /// Moves the horizon to `now` (never back) and drops what expired by then.
    fn advance(&mut self, now_ms: u64) {
        self.horizon = self.horizon.max(now_ms);
        while let Some(entry) = self.expiring.first_entry() {
            if *entry.key() > self.horizon {
                break;
            }
            let (keys, bytes) = entry.remove();
            self.keys = self.keys.saturating_sub(keys);
            self.bytes = self.bytes.saturating_sub(bytes);
        }
    }

    fn add(&mut self, expires_at_ms: u64, bytes: u64) {
        self.keys += 1;
        self.bytes = self.bytes.saturating_add(bytes);
        if expires_at_ms != 0 {
            let bucket = self.expiring.entry(expires_at_ms).or_default();
            bucket.0 += 1;
            bucket.1 = bucket.1.saturating_add(bytes);
        }
    }

    fn remove(&mut self, expires_at_ms: u64, bytes: u64) {
        self.keys = self.keys.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(bytes);
        if expires_at_ms != 0
            && let Some(bucket) = self.expiring.get_mut(&expires_at_ms)
        {
            bucket.0 = bucket.0.saturating_sub(1);
            bucket.1 = bucket.1.saturating_sub(bytes);
            if bucket.0 == 0 {
                self.expiring.remove(&expires_at_ms);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.keys == 0 && self.bytes == 0 && self.expiring.is_empty()
    }
}

type Shard = HashMap<Box<[u8]>, Held>;

/// Per-namespace totals of live keys and bytes, keyed by the namespace's prefix of the storage
/// key (`tenant NUL plugin NUL`).
#[derive(Debug)]
pub(super) struct Usage {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

/// The namespace prefix of a storage key (through its second NUL) and the length of the rest.
fn split(storage_key: &[u8]) -> (&[u8], usize) {
    let mut nuls = storage_key
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == 0)
        .map(|(i, _)| i);
    let end = nuls.nth(1).map_or(storage_key.len(), |second| second + 1);
    (&storage_key[..end], storage_key.len() - end)
}

fn lock(mutex: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // Each critical section leaves the totals whole (a panic cannot interrupt one half-way
    // through anything but an allocation failure, which aborts).
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn charge(key_len: usize, value_len: usize) -> u64 {
    u64::try_from(key_len.saturating_add(value_len)).unwrap_or(u64::MAX)
}

impl Usage {
    pub fn new() -> Self {
        Usage {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, prefix: &[u8]) -> &Mutex<Shard> {
        // The modulo keeps the index below SHARDS, which fits a usize.
        &self.shards[(self.hasher.hash_one(prefix) % SHARDS as u64) as usize]
    }

    /// Counts an entry found when the store opens, at `now_ms` (an expired one is not counted).
    pub fn load(&self, storage_key: &[u8], stored: Stored, now_ms: u64) {
        if !stored.is_live(now_ms) {
            return;
        }
        let (prefix, key_len) = split(storage_key);
        let mut shard = lock(self.shard(prefix));
        let held = shard.entry(prefix.into()).or_default();
        held.advance(now_ms);
        held.add(stored.expires_at_ms, charge(key_len, stored.value_len));
    }

    /// Accounts for `new` (or a deletion, `None`) replacing `old` (what the store holds now,
    /// live or not, `None` when nothing) at `storage_key`, at `now_ms`, unless that takes the
    /// namespace past `quota`: a write that adds a key past `max_keys`, or grows the bytes past
    /// `max_bytes`, is refused and nothing changes. A write that holds the count or the bytes
    /// where they are, or lowers them, passes even over a quota lowered since.
    ///
    /// The caller holds the lock of `storage_key` from its read of `old` to its write of `new`.
    pub fn replace(
        &self,
        storage_key: &[u8],
        old: Option<Stored>,
        new: Option<Stored>,
        now_ms: u64,
        quota: Quota,
    ) -> Result<()> {
        let (prefix, key_len) = split(storage_key);
        let mut shard = lock(self.shard(prefix));
        let held = match shard.get_mut(prefix) {
            Some(held) => held,
            None if new.is_none() => return Ok(()),
            None => shard.entry(prefix.into()).or_default(),
        };
        held.advance(now_ms);
        let horizon = held.horizon;
        let old = old
            .filter(|s| s.is_live(horizon))
            .map(|s| (s.expires_at_ms, charge(key_len, s.value_len)));
        let new = new
            .filter(|s| s.is_live(horizon))
            .map(|s| (s.expires_at_ms, charge(key_len, s.value_len)));
        let (old_bytes, new_bytes) = (old.map_or(0, |o| o.1), new.map_or(0, |n| n.1));
        let refused = if old.is_none() && new.is_some() && held.keys >= quota.max_keys {
            Some(Error::QuotaExceeded {
                limit: QuotaLimit::Keys,
                held: held.keys,
                adds: 1,
                max: quota.max_keys,
            })
        } else if new_bytes > old_bytes
            && held.bytes.saturating_add(new_bytes - old_bytes) > quota.max_bytes
        {
            Some(Error::QuotaExceeded {
                limit: QuotaLimit::Bytes,
                held: held.bytes,
                adds: new_bytes - old_bytes,
                max: quota.max_bytes,
            })
        } else {
            None
        };
        if let Some(refused) = refused {
            if held.is_empty() {
                shard.remove(prefix);
            }
            return Err(refused);
        }
        if let Some((at, bytes)) = old {
            held.remove(at, bytes);
        }
        if let Some((at, bytes)) = new {
            held.add(at, bytes);
        }
        if held.is_empty() {
            shard.remove(prefix);
        }
        Ok(())
    }

    /// What the namespace of `prefix` (`tenant NUL plugin NUL`) holds at `now_ms`.
    pub fn held(&self, prefix: &[u8], now_ms: u64) -> KvUsage {
        let mut shard = lock(self.shard(prefix));
        match shard.get_mut(prefix) {
            Some(held) => {
                held.advance(now_ms);
                KvUsage {
                    keys: held.keys,
                    bytes: held.bytes,
                }
            }
            None => KvUsage::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(ttl_until: u64, len: usize) -> Option<Stored> {
        Some(Stored {
            expires_at_ms: ttl_until,
            value_len: len,
        })
    }

    const Q: Quota = Quota {
        max_keys: 2,
        max_bytes: 12,
    };

    #[test]
    fn the_prefix_ends_at_the_second_nul() {
        assert_eq!(split(b"t\0p\0key"), (&b"t\0p\0"[..], 3));
        assert_eq!(
            split(b"t\0p\0k\0y"),
            (&b"t\0p\0"[..], 3),
            "a NUL in the key"
        );
        assert_eq!(split(b"t\0\0"), (&b"t\0\0"[..], 0), "the host's namespace");
        assert_eq!(split(b"odd"), (&b"odd"[..], 0));
    }

    #[test]
    fn overwrites_count_the_difference_and_expiry_leaves_the_totals() {
        let usage = Usage::new();
        let held = |now| usage.held(b"t\0p\0", now);
        usage
            .replace(b"t\0p\0a", None, stored(0, 3), 0, Q)
            .expect("a: 1 + 3 bytes");
        assert_eq!(
            usage.replace(b"t\0p\0a", stored(0, 3), stored(0, 12), 0, Q),
            Err(Error::QuotaExceeded {
                limit: QuotaLimit::Bytes,
                held: 4,
                adds: 9,
                max: 12
            }),
            "an overwrite is charged the difference"
        );
        assert_eq!(
            held(0),
            KvUsage { keys: 1, bytes: 4 },
            "a refusal changes nothing"
        );
        usage
            .replace(b"t\0p\0a", stored(0, 3), stored(0, 10), 0, Q)
            .expect("11 bytes");
        usage
            .replace(b"t\0p\0b", None, stored(100, 0), 0, Q)
            .expect("b: 1 byte until 100, exactly the quota");
        assert_eq!(held(0), KvUsage { keys: 2, bytes: 12 });
        assert_eq!(
            usage.replace(b"t\0p\0c", None, stored(0, 0), 50, Q),
            Err(Error::QuotaExceeded {
                limit: QuotaLimit::Keys,
                held: 2,
                adds: 1,
                max: 2
            })
        );
        assert_eq!(held(99), KvUsage { keys: 2, bytes: 12 });
        assert_eq!(
            held(100),
            KvUsage { keys: 1, bytes: 11 },
            "b expired at 100"
        );
        usage
            .replace(b"t\0p\0c", None, stored(0, 0), 100, Q)
            .expect("room again");
        // b is still stored (not purged): deleting it does not subtract it twice.
        usage
            .replace(b"t\0p\0b", stored(100, 0), None, 100, Q)
            .expect("delete");
        assert_eq!(held(100), KvUsage { keys: 2, bytes: 12 });
        // A clock that steps back does not bring b back.
        assert_eq!(held(10), KvUsage { keys: 2, bytes: 12 });
        // Shrinking passes over a lowered quota; deleting everything forgets the namespace.
        let tight = Quota {
            max_keys: 1,
            max_bytes: 1,
        };
        usage
            .replace(b"t\0p\0a", stored(0, 10), stored(0, 2), 100, tight)
            .expect("shrinks");
        assert_eq!(held(100), KvUsage { keys: 2, bytes: 4 });
        usage
            .replace(b"t\0p\0a", stored(0, 2), None, 100, tight)
            .expect("delete");
        usage
            .replace(b"t\0p\0c", stored(0, 0), None, 100, tight)
            .expect("delete");
        assert_eq!(held(100), KvUsage::default());
        assert!(usage.shards.iter().all(|s| lock(s).is_empty()));
    }

    #[test]
    fn entries_loaded_at_open_count_unless_expired() {
        let usage = Usage::new();
        usage.load(
            b"t\0p\0a",
            Stored {
                expires_at_ms: 0,
                value_len: 4,
            },
            50,
        );
        usage.load(
            b"t\0p\0b",
            Stored {
                expires_at_ms: 50,
                value_len: 4,
            },
            50,
        );
        usage.load(
            b"t\0p\0c",
            Stored {
                expires_at_ms: 60,
                value_len: 4,
            },
            50,
        );
        usage.load(
            b"t\0q\0a",
            Stored {
                expires_at_ms: 0,
                value_len: 1,
            },
            50,
        );
        assert_eq!(usage.held(b"t\0p\0", 50), KvUsage { keys: 2, bytes: 10 });
        assert_eq!(usage.held(b"t\0p\0", 60), KvUsage { keys: 1, bytes: 5 });
        assert_eq!(usage.held(b"t\0q\0", 60), KvUsage { keys: 1, bytes: 2 });
    }
}
