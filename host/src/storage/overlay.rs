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
    /// In the order they were put (that of their sequence numbers): the committed ones leave
    /// from the front. A key put twice is there twice, and both are committed; readers keep
    /// the one that lives longer, as they do for facts committed twice.
    facts: Mutex<Vec<(Fact, u64)>>,
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

/// Keeps in `facts` the fact of each key that lives longest (ties: the later).
pub(super) fn keep_longest(facts: &mut HashMap<[u8; 16], Fact>, fact: Fact) {
    match facts.get(&fact.key) {
        Some(kept) if kept.until > fact.until => {}
        _ => {
            facts.insert(fact.key, fact);
        }
    }
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

    /// Records facts: an append (every push puts one or two, so this is on the push path).
    pub fn put_facts(&self, facts: &[Fact]) {
        if facts.is_empty() {
            return;
        }
        let mut pending = lock(&self.facts);
        for fact in facts {
            let seq = self.take_seq();
            pending.push((*fact, seq));
        }
    }

    /// The facts not yet committed, by key (of two with the same key, the one that lives
    /// longer).
    pub fn facts(&self) -> HashMap<[u8; 16], Fact> {
        let mut by_key: HashMap<[u8; 16], Fact> = HashMap::new();
        for (fact, _) in lock(&self.facts).iter() {
            keep_longest(&mut by_key, *fact);
        }
        by_key
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
        let facts = lock(&self.facts).clone();
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
        if let Some(&(_, last)) = batch.facts.last() {
            // The batch copied a prefix of the facts, and only this removes any.
            let mut facts = lock(&self.facts);
            let committed = facts.partition_point(|&(_, seq)| seq <= last);
            facts.drain(..committed);
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
    fn facts_put_during_a_commit_stay_and_a_key_reads_as_its_longest_fact() {
        let overlay = Overlay::new();
        let fact = |key: u8, until| Fact {
            key: [key; 16],
            value: [0; 16],
            until,
        };
        overlay.put_facts(&[fact(1, 10), fact(2, 5)]);
        let batch = overlay.snapshot();
        assert_eq!(batch.facts.len(), 2);
        // Put while the batch commits: the same key again, living longer and then shorter.
        overlay.put_facts(&[fact(2, 20), fact(2, 7), fact(3, 5)]);
        overlay.retire(&batch);
        let left = overlay.facts();
        assert_eq!(
            left.len(),
            2,
            "the committed facts left, the later ones stayed"
        );
        assert_eq!(left[&[2; 16]].until, 20, "a key reads as its longest fact");
        assert_eq!(left[&[3; 16]].until, 5);
        let next = overlay.snapshot();
        assert_eq!(next.facts.len(), 3, "each fact put is committed");
        overlay.retire(&next);
        assert!(overlay.facts().is_empty());
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
