//! Dedup state on the Redis store several hosts share: [`RedisSignatureLog`] binds each signed
//! query to its body for every host at once, so a captured query carries another body on no
//! host. One command a push (`SET … NX PX … GET`): the first host to bind a query stores the
//! body's digest and the time; every later bind reads them back.
//!
//! While Redis does not answer (within its command timeout), each host binds on its own
//! ([`MemorySignatureLog`], persisted like a single host's), counted in
//! `wxhost_redis_local_fallbacks_total` and logged when it starts and ends: meanwhile a
//! captured query can carry another body to another host, or one bound before the outage.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::millis;
use super::signatures::{BindFuture, Binding, MemorySignatureLog, SignatureLog};
use crate::clock::unix_now_ms;
use crate::storage::RedisKv;
use crate::telemetry::Metrics;

/// A signature log in Redis, with a node-local fallback for outages.
#[derive(Debug)]
pub struct RedisSignatureLog {
    redis: RedisKv,
    fallback: MemorySignatureLog,
    metrics: Arc<Metrics>,
    /// Whether the last bind fell back (to log the start and the end of an outage once).
    degraded: AtomicBool,
}

/// The first 16 bytes of SHA-256.
fn digest(data: &[u8]) -> [u8; 16] {
    let full = Sha256::digest(data);
    let mut out = [0; 16];
    out.copy_from_slice(&full[..16]);
    out
}

impl RedisSignatureLog {
    /// A log in `redis`, falling back to `fallback` while Redis does not answer.
    pub fn new(redis: RedisKv, fallback: MemorySignatureLog, metrics: Arc<Metrics>) -> Self {
        RedisSignatureLog {
            redis,
            fallback,
            metrics,
            degraded: AtomicBool::new(false),
        }
    }

    async fn bind_shared(
        &self,
        query: &str,
        body: &[u8],
        window_left: Duration,
    ) -> crate::storage::Result<Binding> {
        let key = self
            .redis
            .key(&[b"sig:", hex::encode(digest(query.as_bytes())).as_bytes()]);
        let body = digest(body);
        let now = unix_now_ms();
        let mut value = body.to_vec();
        value.extend_from_slice(&now.to_be_bytes());
        let window_ms = millis(window_left);
        let mut command = redis::cmd("SET");
        command
            .arg(key)
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(window_ms)
            .arg("GET");
        let before: Option<Vec<u8>> = self.redis.query(command).await?;
        let Some(before) = before else {
            return Ok(Binding::New);
        };
        Ok(match before.split_first_chunk::<16>() {
            Some((bound, at)) if *bound == body => {
                let at = at.try_into().map_or(now, u64::from_be_bytes);
                Binding::Same {
                    age: Some(Duration::from_millis(now.saturating_sub(at))),
                }
            }
            _ => Binding::Conflict,
        })
    }
}

impl SignatureLog for RedisSignatureLog {
    fn bind<'a>(&'a self, query: &'a str, body: &'a [u8], window_left: Duration) -> BindFuture<'a> {
        Box::pin(async move {
            if window_left.is_zero() {
                // No window (or its last instant): nothing to remember it for.
                return Binding::New;
            }
            match self.bind_shared(query, body, window_left).await {
                Ok(binding) => {
                    if self.degraded.swap(false, Ordering::Relaxed) {
                        tracing::info!("redis answers again: signature bindings are shared again");
                    }
                    binding
                }
                Err(e) => {
                    if !self.degraded.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "redis does not answer ({e}): binding signed queries on this node \
                             alone until it does; meanwhile a captured query may carry another \
                             body to another node"
                        );
                    }
                    self.metrics.redis_fallback();
                    self.fallback.bind_now(query, body, window_left)
                }
            }
        })
    }

    /// Redis forgets bindings by itself; this purges the fallback.
    fn purge(&self) -> usize {
        self.fallback.purge()
    }
}

#[cfg(test)]
mod tests {
    use wxhost_test_redis::RedisServer;

    use super::super::signatures::contract;
    use super::*;
    use crate::storage::{system_clock, test_store};

    fn log_on(server: &RedisServer) -> RedisSignatureLog {
        RedisSignatureLog::new(
            test_store(&server.url(), "sig-test:", system_clock()),
            MemorySignatureLog::new(),
            Arc::new(Metrics::default()),
        )
    }

    #[tokio::test]
    async fn redis_log_keeps_the_contract() {
        let server = RedisServer::start();
        contract::a_query_is_bound_to_its_first_body(&log_on(&server)).await;
        contract::a_binding_ends_with_its_window(&log_on(&server)).await;
    }

    #[tokio::test]
    async fn hosts_sharing_redis_see_each_others_bindings() {
        let server = RedisServer::start();
        let (a, b) = (log_on(&server), log_on(&server));
        let window = Duration::from_secs(300);
        assert_eq!(
            a.bind("t\0sig", b"<xml>a</xml>", window).await,
            Binding::New
        );
        assert_eq!(
            b.bind("t\0sig", b"<xml>forged</xml>", window).await,
            Binding::Conflict,
            "another host refuses the captured query with another body"
        );
        assert!(matches!(
            b.bind("t\0sig", b"<xml>a</xml>", window).await,
            Binding::Same { age: Some(age) } if age < Duration::from_secs(1)
        ));
    }

    #[tokio::test]
    async fn an_outage_binds_locally_and_recovers_by_itself() {
        let mut server = RedisServer::start();
        let metrics = Arc::new(Metrics::default());
        let log = RedisSignatureLog::new(
            test_store(&server.url(), "sig-test:", system_clock()),
            MemorySignatureLog::new(),
            Arc::clone(&metrics),
        );
        let window = Duration::from_secs(300);
        server.kill();
        assert_eq!(log.bind("q", b"a", window).await, Binding::New);
        assert_eq!(
            log.bind("q", b"b", window).await,
            Binding::Conflict,
            "the local fallback still refuses on this node"
        );
        assert!(
            metrics
                .encode()
                .contains("wxhost_redis_local_fallbacks_total 2")
        );
        server.restart();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            // The restarted server is empty: the first bind after it answers is new there.
            let fresh = format!("r{}", unix_now_ms());
            if log.bind(&fresh, b"a", window).await == Binding::New
                && log.bind(&fresh, b"b", window).await == Binding::Conflict
                && !log.degraded.load(Ordering::Relaxed)
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "not back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
