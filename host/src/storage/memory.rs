//! The in-memory [`KvStore`] and [`FactStore`]: for tests and single-node setups that need no
//! persistence.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::usage::{Stored, Usage};
use super::{
    Clock, Entry, Error, Fact, FactStore, InProcessKv, KvUsage, Namespace, Quota, Result,
    SyncFuture, new_secret, system_clock,
};

/// A [`KvStore`](super::KvStore) and [`FactStore`] in mutex-protected maps. Data is lost on restart; every
/// write is as durable as it will ever be when it returns, so [`KvStore::sync`](super::KvStore::sync) is ready at
/// once. Quotas are checked and counted (`storage::usage`) under the lock of the entries.
pub struct MemoryKv {
    entries: Mutex<HashMap<Vec<u8>, Entry>>,
    usage: Usage,
    facts: Mutex<Facts>,
    secret: [u8; 32],
    clock: Clock,
}

/// The facts (key → value, until) and the marks.
#[derive(Default)]
struct Facts {
    facts: HashMap<[u8; 16], ([u8; 16], i64)>,
    marks: HashMap<String, i64>,
}

impl std::fmt::Debug for MemoryKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryKv").finish_non_exhaustive()
    }
}

impl Default for MemoryKv {
    fn default() -> Self {
        MemoryKv::with_clock(system_clock())
    }
}

impl MemoryKv {
    /// An empty store reading time from `clock`.
    pub fn with_clock(clock: Clock) -> Self {
        MemoryKv {
            entries: Mutex::new(HashMap::new()),
            usage: Usage::new(),
            facts: Mutex::default(),
            secret: new_secret(),
            clock,
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, HashMap<Vec<u8>, Entry>>> {
        self.entries
            .lock()
            .map_err(|_| Error::Backend("memory store lock poisoned".into()))
    }

    fn lock_facts(&self) -> Result<MutexGuard<'_, Facts>> {
        self.facts
            .lock()
            .map_err(|_| Error::Backend("memory fact store lock poisoned".into()))
    }

    /// The live entry at `key`, dropping it if expired (it no longer counts in the usage).
    fn live(map: &mut HashMap<Vec<u8>, Entry>, key: &[u8], now: u64) -> Option<Entry> {
        match map.get(key) {
            Some(entry) if entry.is_live(now) => Some(entry.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }
}

impl InProcessKv for MemoryKv {
    fn get_now(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>> {
        let now = (self.clock)();
        let mut map = self.lock()?;
        Ok(Self::live(&mut map, &ns.storage_key(key), now).map(|e| e.value))
    }

    fn set_within_now(
        &self,
        ns: &Namespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        quota: Quota,
    ) -> Result<()> {
        let now = (self.clock)();
        let entry = Entry::new(value, ttl, now);
        let key = ns.storage_key(key);
        let mut map = self.lock()?;
        let old = map.get(&key).map(Stored::of);
        self.usage
            .replace(&key, old, Some(Stored::of(&entry)), now, quota)?;
        map.insert(key, entry);
        Ok(())
    }

    fn delete_now(&self, ns: &Namespace, key: &str) -> Result<bool> {
        let now = (self.clock)();
        let key = ns.storage_key(key);
        let mut map = self.lock()?;
        let Some(removed) = map.remove(&key) else {
            return Ok(false);
        };
        self.usage.replace(
            &key,
            Some(Stored::of(&removed)),
            None,
            now,
            Quota::UNLIMITED,
        )?;
        Ok(removed.is_live(now))
    }

    fn increment_within_now(
        &self,
        ns: &Namespace,
        key: &str,
        delta: i64,
        quota: Quota,
    ) -> Result<i64> {
        let now = (self.clock)();
        let key = ns.storage_key(key);
        let mut map = self.lock()?;
        let old = map.get(&key).map(Stored::of);
        let current = map.get(&key).filter(|e| e.is_live(now)).cloned();
        let (value, entry) = Entry::incremented(current, delta)?;
        self.usage
            .replace(&key, old, Some(Stored::of(&entry)), now, quota)?;
        map.insert(key, entry);
        Ok(value)
    }

    fn compare_and_swap_now(
        &self,
        ns: &Namespace,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<(&[u8], Option<Duration>)>,
    ) -> Result<bool> {
        let now = (self.clock)();
        let key = ns.storage_key(key);
        let mut map = self.lock()?;
        let old = map.get(&key).map(Stored::of);
        let Some(entry) = Entry::swapped(map.get(&key), expected, new, now) else {
            return Ok(false);
        };
        self.usage.replace(
            &key,
            old,
            entry.as_ref().map(Stored::of),
            now,
            Quota::UNLIMITED,
        )?;
        match entry {
            Some(entry) => map.insert(key, entry),
            None => map.remove(&key),
        };
        Ok(true)
    }

    fn usage_now(&self, ns: &Namespace) -> Result<KvUsage> {
        Ok(self.usage.held(&ns.storage_prefix(), (self.clock)()))
    }

    fn sync(&self) -> SyncFuture {
        Box::pin(std::future::ready(Ok(())))
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn purge_expired(&self) -> Result<usize> {
        let now = (self.clock)();
        let purged = {
            let mut map = self.lock()?;
            let before = map.len();
            map.retain(|_, e| e.is_live(now));
            before - map.len()
        };
        let now_secs = i64::try_from(now / 1000).unwrap_or(i64::MAX);
        let mut facts = self.lock_facts()?;
        let before = facts.facts.len();
        facts.facts.retain(|_, (_, until)| *until > now_secs);
        Ok(purged + before - facts.facts.len())
    }
}

impl FactStore for MemoryKv {
    fn put(&self, facts: &[Fact]) -> Result<()> {
        let mut store = self.lock_facts()?;
        for fact in facts {
            match store.facts.get(&fact.key) {
                Some((_, until)) if *until > fact.until => {}
                _ => {
                    store.facts.insert(fact.key, (fact.value, fact.until));
                }
            }
        }
        Ok(())
    }

    fn live(&self, now: i64) -> Result<Vec<Fact>> {
        Ok(self
            .lock_facts()?
            .facts
            .iter()
            .filter(|(_, (_, until))| *until > now)
            .map(|(key, (value, until))| Fact {
                key: *key,
                value: *value,
                until: *until,
            })
            .collect())
    }

    fn secret(&self) -> Result<[u8; 32]> {
        Ok(self.secret)
    }

    fn set_mark(&self, name: &str, value: i64) -> Result<()> {
        self.lock_facts()?.marks.insert(name.to_owned(), value);
        Ok(())
    }

    fn mark(&self, name: &str) -> Result<Option<i64>> {
        Ok(self.lock_facts()?.marks.get(name).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::super::contract;
    use super::*;

    contract::kv_contract_tests!(async |clock| (MemoryKv::with_clock(clock), ()));

    #[tokio::test]
    async fn memory_store_purges() {
        let (clock, now) = contract::manual_clock();
        contract::purges(&MemoryKv::with_clock(clock), &now).await;
    }

    #[test]
    fn memory_facts_meet_the_contract() {
        let (clock, now) = contract::manual_clock();
        let store = MemoryKv::with_clock(clock);
        contract::facts(&store, &store, &now);
    }
}
