//! The embedded durable [`KvStore`]: one redb file under the data directory.
//!
//! Writes commit without fsync ([`redb::Durability::None`]) so a message never waits on the
//! disk; [`KvStore::flush`] commits durably, and the server calls it every second and at
//! shutdown. A crash of the machine can lose at most the writes since the last flush.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::{
    Clock, Entry, Error, Fact, FactStore, KvStore, Namespace, Result, SyncFuture, new_secret,
    system_clock,
};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("plugin_kv");
/// Fact key → until.
const FACTS: TableDefinition<[u8; 16], i64> = TableDefinition::new("facts");
/// (until, fact key) → value: live facts are one range, expired ones another.
const FACTS_BY_UNTIL: TableDefinition<(i64, [u8; 16]), [u8; 16]> =
    TableDefinition::new("facts_by_until");
/// Marks kept with the facts.
const MARKS: TableDefinition<&str, i64> = TableDefinition::new("marks");
/// The store's own settings: the fact secret.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const SECRET: &str = "fact_secret";

/// A [`KvStore`] in a redb database file.
pub struct RedbKv {
    db: Arc<Database>,
    secret: [u8; 32],
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
        txn.open_table(FACTS).map_err(backend)?;
        txn.open_table(FACTS_BY_UNTIL).map_err(backend)?;
        txn.open_table(MARKS).map_err(backend)?;
        let secret = {
            let mut meta = txn.open_table(META).map_err(backend)?;
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
        Ok(RedbKv {
            db: Arc::new(db),
            secret,
            clock,
        })
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

    fn sync(&self) -> SyncFuture {
        let db = Arc::clone(&self.db);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || durable_commit(&db))
                .await
                .map_err(backend)?
        })
    }

    fn flush(&self) -> Result<()> {
        durable_commit(&self.db)
    }

    fn purge_expired(&self) -> Result<usize> {
        let now = (self.clock)();
        let mut txn = self.db.begin_write().map_err(backend)?;
        txn.set_durability(Durability::None).map_err(backend)?;
        let facts = purge_facts(&txn, now_secs(now), usize::MAX)?;
        txn.commit().map_err(backend)?;
        Ok(facts
            + self.write(|t| {
                let mut purged = 0;
                t.retain(|_, v| {
                    let live = Entry::decode(v).map_or(true, |e| e.is_live(now));
                    purged += usize::from(!live);
                    live
                })
                .map_err(backend)?;
                Ok(purged)
            })?)
    }
}

/// Seconds since the epoch from the clock's milliseconds.
fn now_secs(now_ms: u64) -> i64 {
    i64::try_from(now_ms / 1000).unwrap_or(i64::MAX)
}

/// Forgets at most `limit` facts whose `until` is `now` or earlier: a range of the expiry
/// index, and one delete each in the key table; returns how many.
fn purge_facts(txn: &redb::WriteTransaction, now: i64, limit: usize) -> Result<usize> {
    let mut by_key = txn.open_table(FACTS).map_err(backend)?;
    let mut by_until = txn.open_table(FACTS_BY_UNTIL).map_err(backend)?;
    let expired = by_until
        .extract_from_if(..(now.saturating_add(1), [0u8; 16]), |_, _| true)
        .map_err(backend)?
        .take(limit)
        .map(|row| row.map(|(k, _)| k.value()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(backend)?;
    for (until, key) in &expired {
        let current = by_key.get(key).map_err(backend)?.map(|g| g.value());
        if current == Some(*until) {
            by_key.remove(key).map_err(backend)?;
        }
    }
    Ok(expired.len())
}

/// An empty durable commit: every earlier commit becomes durable with it.
fn durable_commit(db: &Database) -> Result<()> {
    let mut txn = db.begin_write().map_err(backend)?;
    txn.set_durability(Durability::Immediate).map_err(backend)?;
    txn.commit().map_err(backend)
}

impl FactStore for RedbKv {
    fn put(&self, facts: &[Fact]) -> Result<()> {
        let mut txn = self.db.begin_write().map_err(backend)?;
        txn.set_durability(Durability::None).map_err(backend)?;
        {
            let mut by_key = txn.open_table(FACTS).map_err(backend)?;
            let mut by_until = txn.open_table(FACTS_BY_UNTIL).map_err(backend)?;
            for fact in facts {
                let old = by_key
                    .insert(fact.key, fact.until)
                    .map_err(backend)?
                    .map(|g| g.value());
                if let Some(old) = old {
                    by_until.remove((old, fact.key)).map_err(backend)?;
                }
                by_until
                    .insert((fact.until, fact.key), fact.value)
                    .map_err(backend)?;
            }
        }
        txn.commit().map_err(backend)
    }

    fn live(&self, now: i64) -> Result<Vec<Fact>> {
        let txn = self.db.begin_read().map_err(backend)?;
        let by_until = txn.open_table(FACTS_BY_UNTIL).map_err(backend)?;
        let mut out = Vec::new();
        for row in by_until
            .range((now.saturating_add(1), [0u8; 16])..)
            .map_err(backend)?
        {
            let (k, v) = row.map_err(backend)?;
            let (until, key) = k.value();
            if until > now {
                out.push(Fact {
                    key,
                    value: v.value(),
                    until,
                });
            }
        }
        Ok(out)
    }

    fn secret(&self) -> Result<[u8; 32]> {
        Ok(self.secret)
    }

    fn set_mark(&self, name: &str, value: i64) -> Result<()> {
        let mut txn = self.db.begin_write().map_err(backend)?;
        txn.set_durability(Durability::None).map_err(backend)?;
        txn.open_table(MARKS)
            .map_err(backend)?
            .insert(name, value)
            .map_err(backend)?;
        txn.commit().map_err(backend)
    }

    fn mark(&self, name: &str) -> Result<Option<i64>> {
        let txn = self.db.begin_read().map_err(backend)?;
        let marks = txn.open_table(MARKS).map_err(backend)?;
        Ok(marks.get(name).map_err(backend)?.map(|g| g.value()))
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
    fn redb_facts_meet_the_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (clock, now) = contract::manual_clock();
        let store = RedbKv::open_with_clock(&dir.path().join("kv.redb"), clock).expect("open");
        contract::facts(&store, &store, &now);
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
