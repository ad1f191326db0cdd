//! The embedded durable [`KvStore`]: one redb file under the data directory.
//!
//! Writes commit without fsync ([`redb::Durability::None`]) so a message never waits on the
//! disk; [`KvStore::flush`] commits durably, and the server calls it every second and at
//! shutdown. A crash of the machine can lose at most the writes since the last flush.

use std::path::Path;
use std::time::Duration;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Clock, Entry, Error, KvStore, Namespace, Result, system_clock};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("plugin_kv");

/// A [`KvStore`] in a redb database file.
pub struct RedbKv {
    db: Database,
    clock: Clock,
}

impl std::fmt::Debug for RedbKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbKv").finish_non_exhaustive()
    }
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

impl RedbKv {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        RedbKv::open_with_clock(path, system_clock())
    }

    /// [`RedbKv::open`] reading time from `clock`.
    pub fn open_with_clock(path: &Path, clock: Clock) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(backend)?;
        }
        let db = Database::create(path).map_err(backend)?;
        let txn = db.begin_write().map_err(backend)?;
        txn.open_table(TABLE).map_err(backend)?;
        txn.commit().map_err(backend)?;
        Ok(RedbKv { db, clock })
    }

    /// Runs `f` in a write transaction committed without fsync.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut redb::Table<'_, &[u8], &[u8]>) -> Result<T>,
    ) -> Result<T> {
        let mut txn = self.db.begin_write().map_err(backend)?;
        txn.set_durability(Durability::None).map_err(backend)?;
        let out = {
            let mut table = txn.open_table(TABLE).map_err(backend)?;
            f(&mut table)?
        };
        txn.commit().map_err(backend)?;
        Ok(out)
    }

    fn read_entry(
        table: &impl ReadableTable<&'static [u8], &'static [u8]>,
        key: &[u8],
    ) -> Result<Option<Entry>> {
        match table.get(key).map_err(backend)? {
            Some(guard) => Entry::decode(guard.value()).map(Some),
            None => Ok(None),
        }
    }
}

impl KvStore for RedbKv {
    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>> {
        let now = (self.clock)();
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(TABLE).map_err(backend)?;
        Ok(Self::read_entry(&table, &ns.storage_key(key))?
            .filter(|e| e.is_live(now))
            .map(|e| e.value))
    }

    fn set(&self, ns: &Namespace, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        let entry = Entry::new(value, ttl, (self.clock)());
        let key = ns.storage_key(key);
        self.write(|t| {
            t.insert(key.as_slice(), entry.encode().as_slice())
                .map_err(backend)?;
            Ok(())
        })
    }

    fn delete(&self, ns: &Namespace, key: &str) -> Result<bool> {
        let now = (self.clock)();
        let key = ns.storage_key(key);
        self.write(|t| {
            let removed = t.remove(key.as_slice()).map_err(backend)?;
            match removed {
                Some(guard) => Ok(Entry::decode(guard.value())?.is_live(now)),
                None => Ok(false),
            }
        })
    }

    fn increment(&self, ns: &Namespace, key: &str, delta: i64) -> Result<i64> {
        let now = (self.clock)();
        let key = ns.storage_key(key);
        self.write(|t| {
            let current = Self::read_entry(t, &key)?.filter(|e| e.is_live(now));
            let (value, entry) = Entry::incremented(current, delta)?;
            t.insert(key.as_slice(), entry.encode().as_slice())
                .map_err(backend)?;
            Ok(value)
        })
    }

    fn flush(&self) -> Result<()> {
        let mut txn = self.db.begin_write().map_err(backend)?;
        txn.set_durability(Durability::Immediate).map_err(backend)?;
        txn.commit().map_err(backend)
    }

    fn purge_expired(&self) -> Result<usize> {
        let now = (self.clock)();
        self.write(|t| {
            let mut purged = 0;
            t.retain(|_, v| {
                let live = Entry::decode(v).map_or(true, |e| e.is_live(now));
                purged += usize::from(!live);
                live
            })
            .map_err(backend)?;
            Ok(purged)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::contract;
    use super::*;

    #[test]
    fn redb_store_meets_the_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (clock, now) = contract::manual_clock();
        let store = RedbKv::open_with_clock(&dir.path().join("kv.redb"), clock).expect("open");
        contract::run(&store, &now);
    }

    #[test]
    fn data_survives_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/kv.redb");
        let ns = Namespace::new("t", "p");
        {
            let store = RedbKv::open(&path).expect("open");
            store.set(&ns, "k", b"kept", None).expect("set");
            store.flush().expect("flush");
        }
        let store = RedbKv::open(&path).expect("reopen");
        assert_eq!(store.get(&ns, "k"), Ok(Some(b"kept".to_vec())));
    }
}
