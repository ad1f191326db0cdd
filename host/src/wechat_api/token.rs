//! The access token of one account: cached in memory and in storage (so restarts and other
//! hosts reuse it), refreshed ahead of expiry by one caller while the others wait for it, and
//! dropped on rejection only if it is still the token that was rejected.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::storage::lock::{self, StoreLock};
use crate::storage::{self, KvStore, Namespace};

/// Seconds before expiry at which a token is refreshed.
const REFRESH_AHEAD_SECS: i64 = 300;
/// A fresh token is kept at least this long, even when WeChat says it expires soon (the
/// stable-token endpoint hands out the same token until it expires).
const MIN_KEEP_SECS: i64 = 60;
/// A token is never used this close to its expiry.
const SAFETY_SECS: i64 = 10;

/// An access token and when to replace it. Its `Debug` output hides the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedToken {
    /// The token.
    pub token: Arc<str>,
    /// When WeChat says it expires (Unix seconds).
    pub expires_at: i64,
    /// When to fetch a new one (Unix seconds).
    pub refresh_at: i64,
}

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("refresh_at", &self.refresh_at)
            .finish()
    }
}

impl CachedToken {
    /// A token fetched at `now` that WeChat says lasts `expires_in` seconds.
    pub fn fetched(token: String, expires_in: i64, now: i64) -> Self {
        let expires_at = now.saturating_add(expires_in.max(0));
        let refresh_at = (expires_at - REFRESH_AHEAD_SECS)
            .max(now + MIN_KEEP_SECS)
            .min(expires_at - SAFETY_SECS);
        CachedToken {
            token: token.into(),
            expires_at,
            refresh_at,
        }
    }

    /// Whether it is still good to use at `now`.
    pub fn fresh(&self, now: i64) -> bool {
        now < self.refresh_at
    }
}

/// How long the fetch lock is held at most: a host that dies holding it delays the others by
/// this much, no more.
const FETCH_LOCK_TTL: Duration = Duration::from_secs(15);
/// How often a caller waiting for another host's fetch looks for its token.
const FETCH_LOCK_POLL: Duration = Duration::from_millis(100);

/// The token of one account (appid) of one tenant.
#[derive(Debug)]
pub struct TokenSlot {
    current: Mutex<Option<CachedToken>>,
    kv: Arc<dyn KvStore>,
    namespace: Namespace,
    key: String,
    lock_key: String,
}

/// The token in storage, with the bytes it was read as (what compare-and-delete compares).
struct Stored {
    token: CachedToken,
    bytes: Vec<u8>,
}

impl TokenSlot {
    /// The slot of `appid` in `tenant`, stored in `kv` under the tenant's host namespace.
    /// The storage key holds the appid, never the secret.
    pub fn new(kv: Arc<dyn KvStore>, tenant: &str, appid: &str) -> Self {
        TokenSlot {
            current: Mutex::new(None),
            kv,
            namespace: Namespace::host(tenant),
            key: format!("access_token/{appid}"),
            lock_key: format!("access_token_lock/{appid}"),
        }
    }

    /// A fresh token: the cached one, the stored one, or one from `fetch`. Callers of this
    /// host wait for each other; hosts sharing the store take a lock in it first and look for a
    /// stored token again once they hold it, so one fetch serves every host (each fetch of the
    /// classic token invalidates the one before it).
    pub async fn get<F, Fut, E>(&self, now: impl Fn() -> i64, fetch: F) -> Result<Arc<str>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CachedToken, E>>,
    {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref().filter(|t| t.fresh(now())) {
            return Ok(Arc::clone(&token.token));
        }
        let lock = StoreLock::new(&*self.kv, &self.namespace, &self.lock_key, FETCH_LOCK_TTL);
        let look = || self.load_fresh(&now);
        let token = lock::once(&lock, FETCH_LOCK_POLL, look, || async {
            let token = fetch().await?;
            self.store(&token, now()).await;
            Ok(token)
        })
        .await?;
        Ok(Self::keep(&mut current, token))
    }

    fn keep(current: &mut Option<CachedToken>, token: CachedToken) -> Arc<str> {
        let shared = Arc::clone(&token.token);
        *current = Some(token);
        shared
    }

    /// Forgets `rejected` if it is still the current token (a token another caller, or
    /// another host, already replaced is left alone, so one rejection causes at most one
    /// refresh).
    pub async fn invalidate(&self, rejected: &str) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|t| &*t.token == rejected) {
            *current = None;
        }
        let Some(stored) = self.load().await else {
            return;
        };
        if &*stored.token.token != rejected {
            return;
        }
        let dropped = self
            .kv
            .compare_and_swap(&self.namespace, &self.key, Some(&stored.bytes), None)
            .await;
        if let Err(e) = dropped {
            tracing::warn!(
                tenant = self.namespace.tenant(),
                "cannot drop the stored access token: {e}"
            );
        }
    }

    async fn load_fresh(&self, now: &impl Fn() -> i64) -> Option<CachedToken> {
        self.load()
            .await
            .map(|stored| stored.token)
            .filter(|t| t.fresh(now()))
    }

    async fn load(&self) -> Option<Stored> {
        match self.kv.get(&self.namespace, &self.key).await {
            Ok(bytes) => bytes.and_then(|bytes| {
                let token = serde_json::from_slice(&bytes).ok()?;
                Some(Stored { token, bytes })
            }),
            Err(e) => {
                tracing::warn!(
                    tenant = self.namespace.tenant(),
                    "cannot read the stored access token: {e}"
                );
                None
            }
        }
    }

    async fn store(&self, token: &CachedToken, now: i64) {
        let ttl = Duration::from_secs(u64::try_from(token.expires_at - now).unwrap_or(0));
        let stored =
            storage::set_json(&*self.kv, &self.namespace, &self.key, token, Some(ttl)).await;
        if let Err(e) = stored {
            tracing::warn!(
                tenant = self.namespace.tenant(),
                "cannot store the access token: {e}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

    use super::*;
    use crate::storage::MemoryKv;

    fn slot(kv: &Arc<dyn KvStore>) -> TokenSlot {
        TokenSlot::new(Arc::clone(kv), "t", "wxappid")
    }

    #[test]
    fn refresh_is_ahead_of_expiry_but_not_too_eager() {
        let normal = CachedToken::fetched("a".into(), 7200, 1000);
        assert_eq!((normal.expires_at, normal.refresh_at), (8200, 7900));
        let short = CachedToken::fetched("a".into(), 200, 1000);
        assert_eq!(short.refresh_at, 1060);
        let tiny = CachedToken::fetched("a".into(), 30, 1000);
        assert_eq!(tiny.refresh_at, 1020);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryKv::default());
        let slot = Arc::new(slot(&kv));
        let fetches = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (slot, fetches) = (Arc::clone(&slot), Arc::clone(&fetches));
            tasks.push(tokio::spawn(async move {
                slot.get(
                    || 1000,
                    || async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, ()>(CachedToken::fetched("tok".into(), 7200, 1000))
                    },
                )
                .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.expect("joins").as_deref(), Ok("tok"));
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn expiry_storage_and_invalidation() {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryKv::default());
        let now = Arc::new(AtomicI64::new(1000));
        let clock = || now.load(Ordering::SeqCst);
        let first = slot(&kv);
        let fetch = |t: &'static str| {
            let at = clock();
            move || async move { Ok::<_, ()>(CachedToken::fetched(t.into(), 7200, at)) }
        };
        assert_eq!(first.get(clock, fetch("a")).await.as_deref(), Ok("a"));

        // A second slot (a restart, another host) finds the stored token.
        let second = slot(&kv);
        let never = || async { Err::<CachedToken, ()>(()) };
        assert_eq!(second.get(clock, never).await.as_deref(), Ok("a"));

        // Ahead of expiry a new token is fetched.
        now.store(7950, Ordering::SeqCst);
        assert_eq!(first.get(clock, fetch("b")).await.as_deref(), Ok("b"));

        // Rejecting an old token keeps the new one; rejecting the current one drops it.
        first.invalidate("a").await;
        assert_eq!(first.get(clock, never).await.as_deref(), Ok("b"));
        first.invalidate("b").await;
        assert_eq!(first.get(clock, fetch("c")).await.as_deref(), Ok("c"));
        assert!(!format!("{:?}", kv).contains("secret"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hosts_sharing_a_redis_store_fetch_once_and_drop_only_the_rejected_token() {
        let server = wxhost_test_redis::RedisServer::start();
        let hosts: Vec<Arc<TokenSlot>> = (0..3)
            .map(|_| {
                let kv: Arc<dyn KvStore> = Arc::new(storage::test_store(
                    &server.url(),
                    "wx:",
                    storage::system_clock(),
                ));
                Arc::new(slot(&kv))
            })
            .collect();
        let fetches = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for n in 0..30 {
            let (slot, fetches) = (Arc::clone(&hosts[n % 3]), Arc::clone(&fetches));
            tasks.push(tokio::spawn(async move {
                slot.get(
                    || 1000,
                    || async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        Ok::<_, ()>(CachedToken::fetched("shared".into(), 7200, 1000))
                    },
                )
                .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.expect("joins").as_deref(), Ok("shared"));
        }
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            1,
            "one fetch for three hosts"
        );

        // Host 1 replaces the rejected token; host 2, rejected with the old one later, leaves
        // the new one alone.
        let never = || async { Err::<CachedToken, ()>(()) };
        let renew = || async { Ok::<_, ()>(CachedToken::fetched("renewed".into(), 7200, 1000)) };
        hosts[1].invalidate("shared").await;
        assert_eq!(hosts[1].get(|| 1000, renew).await.as_deref(), Ok("renewed"));
        hosts[2].invalidate("shared").await;
        let fresh_host = slot(
            &(Arc::new(storage::test_store(
                &server.url(),
                "wx:",
                storage::system_clock(),
            )) as Arc<dyn KvStore>),
        );
        assert_eq!(
            fresh_host.get(|| 1000, never).await.as_deref(),
            Ok("renewed")
        );
    }
}
