//! The write overlay of [`RedbKv`](super::RedbKv): every write accepted and not yet committed,
//! read before the database.
//!
//! Each write takes a sequence number, drawn under the lock of the map it goes into. The
//! committer reads the next number (its batch's `target`) before it copies the overlay, so
//! every write numbered below `target` is in the copy (or already durable) and, once the copy
//! is committed, writes below `target` are durable. After the commit an entry leaves the
//! overlay only if no later write replaced it meanwhile (same sequence number), so a reader
//! finds a key in the overlay or, committed, in the database: never in neither.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{Entry, Fact, Result};

/// Shards of the kv overlay: writers of different keys rarely share a lock.
const SHARDS: usize = 32;

/// What a key holds in the overlay: a value, or `None` for a deletion.
pub(super) type Pending = Option<Entry>;

#[derive(Debug)]
struct Slot {
    pending: Pending,
    seq: u64,
}

type Shard = HashMap<Vec<u8>, Slot>;

/// Writes not yet committed: kv entries (sharded by key), facts and marks.
#[derive(Debug)]
pub(super) struct Overlay {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    facts: Mutex<HashMap<[u8; 16], (Fact, u64)>>,
    marks: Mutex<HashMap<String, (i64, u64)>>,
    /// The sequence number of the next write (starts at 1).
    next_seq: AtomicU64,
}

/// A copy of the overlay for one commit.
#[derive(Debug, Default)]
pub(super) struct Batch {
    /// Every write numbered below this is in the batch or already durable.
    pub target: u64,
    /// `(key, pending, seq)` by shard.
    pub kv: Vec<Vec<(Vec<u8>, Pending, u64)>>,
    pub facts: Vec<(Fact, u64)>,
    pub marks: Vec<(String, i64, u64)>,
}

impl Batch {
    /// How many writes the batch holds.
    pub fn len(&self) -> usize {
        self.kv.iter().map(Vec::len).sum::<usize>() + self.facts.len() + self.marks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Locks `mutex`; a panic while it was held leaves a map whose every entry is whole (each
/// critical section changes one entry in one call), so poisoning is ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Overlay {
    pub fn new() -> Self {
        Overlay {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            facts: Mutex::default(),
            marks: Mutex::default(),
            next_seq: AtomicU64::new(1),
        }
    }

    /// The number the next write will take: every write accepted so far is numbered below it.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.load(Ordering::SeqCst)
    }

    /// A sequence number for a write; called with the lock of the map it goes into held.
    fn take_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::SeqCst)
    }

    fn shard_index(&self, key: &[u8]) -> usize {
        // The modulo keeps the value below SHARDS, which fits a usize.
        (self.hasher.hash_one(key) % SHARDS as u64) as usize
    }

    /// What the overlay holds for `key`: `None` when it holds nothing (read the database).
    pub fn get(&self, key: &[u8]) -> Option<Pending> {
        lock(&self.shards[self.shard_index(key)])
            .get(key)
            .map(|slot| slot.pending.clone())
    }

    /// Records a write of `key` (the store writes through [`Overlay::update`], which sees what
    /// it replaces).
    #[cfg(test)]
    pub fn set(&self, key: Vec<u8>, pending: Pending) {
        let mut shard = lock(&self.shards[self.shard_index(&key)]);
        let seq = self.take_seq();
        shard.insert(key, Slot { pending, seq });
    }

    /// Reads and maybe writes `key` atomically with respect to every other write of it: `f`
    /// gets the key and what the overlay holds for it (`None`: nothing, read the database,
    /// which no commit can change under `f` for this key) and returns its output and the write
    /// to record, if any.
    pub fn update<T>(
        &self,
        key: Vec<u8>,
        f: impl FnOnce(&[u8], Option<&Pending>) -> Result<(T, Option<Pending>)>,
    ) -> Result<T> {
        let mut shard = lock(&self.shards[self.shard_index(&key)]);
        let (out, write) = f(&key, shard.get(&key).map(|slot| &slot.pending))?;
        if let Some(pending) = write {
            let seq = self.take_seq();
            shard.insert(key, Slot { pending, seq });
        }
        Ok(out)
    }

    /// Records facts (of two with the same key, the one that lives longer stays).
    pub fn put_facts(&self, facts: &[Fact]) {
        if facts.is_empty() {
            return;
        }
        let mut map = lock(&self.facts);
        for fact in facts {
            if map
                .get(&fact.key)
                .is_some_and(|(kept, _)| kept.until > fact.until)
            {
                continue;
            }
            let seq = self.take_seq();
            map.insert(fact.key, (*fact, seq));
        }
    }

    /// The facts not yet committed, by key.
    pub fn facts(&self) -> HashMap<[u8; 16], Fact> {
        lock(&self.facts)
            .iter()
            .map(|(key, (fact, _))| (*key, *fact))
            .collect()
    }

    pub fn set_mark(&self, name: &str, value: i64) {
        let mut marks = lock(&self.marks);
        let seq = self.take_seq();
        marks.insert(name.to_owned(), (value, seq));
    }

    pub fn mark(&self, name: &str) -> Option<i64> {
        lock(&self.marks).get(name).map(|(value, _)| *value)
    }

    /// How many writes wait for a commit.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum::<usize>()
            + lock(&self.facts).len()
            + lock(&self.marks).len()
    }

    /// A copy of every pending write, for a commit. `target` is read first (see the module
    /// documentation).
    pub fn snapshot(&self) -> Batch {
        let target = self.next_seq();
        let kv = self
            .shards
            .iter()
            .map(|shard| {
                lock(shard)
                    .iter()
                    .map(|(key, slot)| (key.clone(), slot.pending.clone(), slot.seq))
                    .collect()
            })
            .collect();
        let facts = lock(&self.facts).values().copied().collect();
        let marks = lock(&self.marks)
            .iter()
            .map(|(name, (value, seq))| (name.clone(), *value, *seq))
            .collect();
        Batch {
            target,
            kv,
            facts,
            marks,
        }
    }

    /// Drops the writes of a committed `batch` that no later write replaced.
    pub fn retire(&self, batch: &Batch) {
        for (shard, entries) in self.shards.iter().zip(&batch.kv) {
            if entries.is_empty() {
                continue;
            }
            let mut shard = lock(shard);
            for (key, _, seq) in entries {
                if shard.get(key).is_some_and(|slot| slot.seq == *seq) {
                    shard.remove(key);
                }
            }
        }
        if !batch.facts.is_empty() {
            let mut facts = lock(&self.facts);
            for (fact, seq) in &batch.facts {
                if facts.get(&fact.key).is_some_and(|(_, s)| s == seq) {
                    facts.remove(&fact.key);
                }
            }
        }
        if !batch.marks.is_empty() {
            let mut marks = lock(&self.marks);
            for (name, _, seq) in &batch.marks {
                if marks.get(name).is_some_and(|(_, s)| s == seq) {
                    marks.remove(name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(value: &[u8]) -> Pending {
        Some(Entry {
            expires_at_ms: 0,
            value: value.to_vec(),
        })
    }

    #[test]
    fn a_write_replaced_during_its_commit_stays() {
        let overlay = Overlay::new();
        overlay.set(b"a".to_vec(), entry(b"1"));
        overlay.set(b"b".to_vec(), entry(b"1"));
        overlay.put_facts(&[Fact {
            key: [1; 16],
            value: [1; 16],
            until: 5,
        }]);
        overlay.set_mark("m", 1);
        let batch = overlay.snapshot();
        assert_eq!(batch.len(), 4);
        assert_eq!(batch.target, 5, "four writes numbered 1..=4");
        // Written while the batch commits.
        overlay.set(b"a".to_vec(), None);
        overlay.set_mark("m", 2);
        overlay.retire(&batch);
        assert_eq!(overlay.get(b"a"), Some(None), "the later deletion stays");
        assert_eq!(overlay.get(b"b"), None, "committed and not replaced: gone");
        assert!(overlay.facts().is_empty());
        assert_eq!(overlay.mark("m"), Some(2));
        assert_eq!(overlay.len(), 2);
        let next = overlay.snapshot();
        assert_eq!(next.len(), 2);
        overlay.retire(&next);
        assert_eq!(overlay.len(), 0);
        assert!(overlay.snapshot().is_empty());
    }

    #[test]
    fn update_sees_the_overlay_and_records_its_write() {
        let overlay = Overlay::new();
        let seen = overlay
            .update(b"k".to_vec(), |_, pending| {
                Ok((pending.cloned(), Some(entry(b"x"))))
            })
            .expect("update");
        assert_eq!(seen, None);
        let seen = overlay
            .update(b"k".to_vec(), |_, pending| Ok((pending.cloned(), None)))
            .expect("update");
        assert_eq!(seen, Some(entry(b"x")));
        assert_eq!(overlay.next_seq(), 2, "a read-only update takes no number");
    }
}
