//! Work done once across every host sharing a store ([`once`]): a lock in the store, taken by
//! compare-and-swap under an owner value with an expiry (a host that dies holding it delays
//! the others by that much, no more), released only by its owner; the others wait for the
//! result to appear in the store instead of producing it again.

use std::time::Duration;

use super::{KvStore, Namespace, Result};

/// A lock at one key of the store.
#[derive(Debug)]
pub struct StoreLock<'a> {
    kv: &'a dyn KvStore,
    namespace: &'a Namespace,
    key: &'a str,
    ttl: Duration,
}

/// Proof of holding a [`StoreLock`], to hand back to [`StoreLock::release`].
#[derive(Debug)]
pub struct Held {
    owner: Vec<u8>,
}

impl<'a> StoreLock<'a> {
    /// The lock at `key` of `namespace`, held for at most `ttl`.
    pub fn new(kv: &'a dyn KvStore, namespace: &'a Namespace, key: &'a str, ttl: Duration) -> Self {
        StoreLock {
            kv,
            namespace,
            key,
            ttl,
        }
    }

    /// Takes the lock: `None` while someone else holds it.
    pub async fn try_take(&self) -> Result<Option<Held>> {
        let owner = format!("{:032x}", rand::random::<u128>()).into_bytes();
        let taken = self
            .kv
            .compare_and_swap(
                self.namespace,
                self.key,
                None,
                Some((&owner, Some(self.ttl))),
            )
            .await?;
        Ok(taken.then_some(Held { owner }))
    }

    /// Releases the lock if `held` still holds it (one that expired and was taken by another
    /// is left alone); a failure is logged, and the lock then lasts until it expires.
    pub async fn release(&self, held: Held) {
        let released = self
            .kv
            .compare_and_swap(self.namespace, self.key, Some(&held.owner), None)
            .await;
        if let Err(e) = released {
            tracing::warn!(
                tenant = self.namespace.tenant(),
                key = self.key,
                "cannot release a lock ({e}); it expires in {} s",
                self.ttl.as_secs()
            );
        }
    }
}

/// Produces a value once across every host sharing the store: `look` finds it where `produce`
/// stores it. Returns what `look` finds, at once or after waiting (polling every `poll`) while
/// another holds `lock`; otherwise, holding the lock and having looked once more, what
/// `produce` returns. When the store cannot be reached the lock is skipped (logged) and this
/// host produces on its own.
pub async fn once<T, E, Look, Found, Produce, Produced>(
    lock: &StoreLock<'_>,
    poll: Duration,
    look: Look,
    produce: Produce,
) -> std::result::Result<T, E>
where
    Look: Fn() -> Found,
    Found: Future<Output = Option<T>>,
    Produce: FnOnce() -> Produced,
    Produced: Future<Output = std::result::Result<T, E>>,
{
    if let Some(found) = look().await {
        return Ok(found);
    }
    let held = loop {
        match lock.try_take().await {
            Ok(Some(held)) => break Some(held),
            Ok(None) => {
                tokio::time::sleep(poll).await;
                if let Some(found) = look().await {
                    return Ok(found);
                }
            }
            Err(e) => {
                tracing::warn!(
                    tenant = lock.namespace.tenant(),
                    key = lock.key,
                    "cannot take a lock ({e}); going on without it, so another host may do \
                     the same work at the same time"
                );
                break None;
            }
        }
    };
    let result = match look().await {
        Some(found) => Ok(found),
        None => produce().await,
    };
    if let Some(held) = held {
        lock.release(held).await;
    }
    result
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::storage::MemoryKv;

    #[tokio::test]
    async fn a_lock_has_one_holder_until_released_or_expired() {
        let kv = MemoryKv::default();
        let ns = Namespace::host("t");
        let lock = StoreLock::new(&kv, &ns, "lock", Duration::from_millis(200));
        let held = lock.try_take().await.expect("store").expect("free");
        assert!(lock.try_take().await.expect("store").is_none(), "held");
        lock.release(held).await;
        let held = lock.try_take().await.expect("store").expect("released");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let other = lock.try_take().await.expect("store").expect("expired");
        // The first holder's late release leaves the new holder's lock alone.
        lock.release(held).await;
        assert!(lock.try_take().await.expect("store").is_none());
        lock.release(other).await;
    }

    #[tokio::test]
    async fn concurrent_callers_produce_once_and_the_others_find_the_result() {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryKv::default());
        let ns = Namespace::host("t");
        let produced = Arc::new(AtomicU32::new(0));
        let callers = (0..8).map(|_| {
            let (kv, ns, produced) = (Arc::clone(&kv), ns.clone(), Arc::clone(&produced));
            tokio::spawn(async move {
                let lock = StoreLock::new(&*kv, &ns, "lock", Duration::from_secs(5));
                let look = || async { kv.get(&ns, "value").await.ok().flatten() };
                once(&lock, Duration::from_millis(10), look, || async {
                    produced.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    kv.set(&ns, "value", b"v", None).await?;
                    Ok::<_, crate::storage::Error>(b"v".to_vec())
                })
                .await
            })
        });
        for caller in callers {
            assert_eq!(caller.await.expect("joins").expect("produced"), b"v");
        }
        assert_eq!(produced.load(Ordering::SeqCst), 1);
    }
}
