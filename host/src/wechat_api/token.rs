//! The access token of one account: cached in memory and in storage (so restarts and other
//! hosts reuse it), refreshed ahead of expiry by one caller while the others wait for it, and
//! dropped on rejection only if it is still the token that was rejected.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::storage::{KvStore, Namespace};

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

/// The token of one account (appid) of one tenant.
#[derive(Debug)]
pub struct TokenSlot {
    current: Mutex<Option<CachedToken>>,
    kv: Arc<dyn KvStore>,
    namespace: Namespace,
    key: String,
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
        }
    }

    /// A fresh token: the cached one, the stored one, or one from `fetch` (called by one
    /// caller at a time; the others wait and then use its result).
    pub async fn get<F, Fut, E>(&self, now: impl Fn() -> i64, fetch: F) -> Result<Arc<str>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CachedToken, E>>,
    {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref().filter(|t| t.fresh(now())) {
            return Ok(Arc::clone(&token.token));
        }
        if let Some(stored) = self.load().filter(|t| t.fresh(now())) {
            let token = Arc::clone(&stored.token);
            *current = Some(stored);
            return Ok(token);
        }
        let fetched = fetch().await?;
        self.store(&fetched, now());
        let token = Arc::clone(&fetched.token);
        *current = Some(fetched);
        Ok(token)
    }

    /// Forgets `rejected` if it is still the current token (a token another caller already
    /// replaced is left alone, so one rejection causes at most one refresh).
    pub async fn invalidate(&self, rejected: &str) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|t| &*t.token == rejected) {
            *current = None;
        }
        if self.load().is_some_and(|t| &*t.token == rejected)
            && let Err(e) = self.kv.delete(&self.namespace, &self.key)
        {
            tracing::warn!(
                tenant = self.namespace.tenant(),
                "cannot drop the stored access token: {e}"
            );
        }
    }

    fn load(&self) -> Option<CachedToken> {
        match self.kv.get(&self.namespace, &self.key) {
            Ok(bytes) => bytes.and_then(|b| serde_json::from_slice(&b).ok()),
            Err(e) => {
                tracing::warn!(
                    tenant = self.namespace.tenant(),
                    "cannot read the stored access token: {e}"
                );
                None
            }
        }
    }

    fn store(&self, token: &CachedToken, now: i64) {
        let ttl =
            std::time::Duration::from_secs(u64::try_from(token.expires_at - now).unwrap_or(0));
        let stored = serde_json::to_vec(token)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                self.kv
                    .set(&self.namespace, &self.key, &bytes, Some(ttl))
                    .map_err(|e| e.to_string())
            });
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
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
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
}
