//! The in-memory [`KvStore`]: for tests and single-node setups that need no persistence.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::{Clock, Entry, Error, KvStore, Namespace, Result, system_clock};

/// A [`KvStore`] in a mutex-protected map. Data is lost on restart.
pub struct MemoryKv {
    entries: Mutex<HashMap<Vec<u8>, Entry>>,
    clock: Clock,
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
            clock,
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, HashMap<Vec<u8>, Entry>>> {
        self.entries
            .lock()
            .map_err(|_| Error::Backend("memory store lock poisoned".into()))
    }

    /// The live entry at `key`, dropping it if expired.
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

impl KvStore for MemoryKv {
    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>> {
        let now = (self.clock)();
        let mut map = self.lock()?;
        Ok(Self::live(&mut map, &ns.storage_key(key), now).map(|e| e.value))
    }

    fn set(&self, ns: &Namespace, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        let entry = Entry::new(value, ttl, (self.clock)());
        self.lock()?.insert(ns.storage_key(key), entry);
        Ok(())
    }

    fn delete(&self, ns: &Namespace, key: &str) -> Result<bool> {
        let now = (self.clock)();
        let removed = self.lock()?.remove(&ns.storage_key(key));
        Ok(removed.is_some_and(|e| e.is_live(now)))
    }

    fn increment(&self, ns: &Namespace, key: &str, delta: i64) -> Result<i64> {
        let now = (self.clock)();
        let key = ns.storage_key(key);
        let mut map = self.lock()?;
        let (value, entry) = Entry::incremented(Self::live(&mut map, &key, now), delta)?;
        map.insert(key, entry);
        Ok(value)
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn purge_expired(&self) -> Result<usize> {
        let now = (self.clock)();
        let mut map = self.lock()?;
        let before = map.len();
        map.retain(|_, e| e.is_live(now));
        Ok(before - map.len())
    }
}

#[cfg(test)]
mod tests {
    use super::super::contract;
    use super::*;

    #[test]
    fn memory_store_meets_the_contract() {
        let (clock, now) = contract::manual_clock();
        contract::run(&MemoryKv::with_clock(clock), &now);
    }
}
