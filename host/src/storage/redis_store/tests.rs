//! Tests of [`RedisKv`] against a real `redis-server`: the kv contract, two hosts sharing one
//! server, and an outage.

use std::time::{Duration, Instant};

use wxhost_test_redis::RedisServer;

use super::super::{Clock, Namespace, Quota, contract, system_clock};
use super::*;

fn store_on(server: &RedisServer, prefix: &str) -> RedisKv {
    test_store(&server.url(), prefix, system_clock())
}

/// A store on a fresh server, which lives as long as the store.
async fn fresh(clock: Clock) -> (RedisKv, RedisServer) {
    let server = RedisServer::start();
    let store = test_store(&server.url(), "test:", clock);
    (store, server)
}

contract::kv_contract_tests!(fresh);

#[tokio::test]
async fn two_hosts_share_entries_and_quotas() {
    let server = RedisServer::start();
    let (a, b) = (store_on(&server, "app:"), store_on(&server, "app:"));
    let ns = Namespace::new("t", "game");
    a.set(&ns, "k", b"v", None).await.expect("set");
    assert_eq!(b.get(&ns, "k").await, Ok(Some(b"v".to_vec())));
    let quota = Quota {
        max_keys: 2,
        max_bytes: 1_000,
    };
    b.set_within(&ns, "k2", b"v", None, quota)
        .await
        .expect("second key");
    assert!(matches!(
        a.set_within(&ns, "k3", b"v", None, quota).await,
        Err(Error::QuotaExceeded {
            limit: QuotaLimit::Keys,
            held: 2,
            ..
        })
    ));
    assert_eq!(a.increment(&ns, "n", 1).await, Ok(1));
    assert_eq!(b.increment(&ns, "n", 1).await, Ok(2));

    // Another prefix is another deployment.
    let other = store_on(&server, "other:");
    assert_eq!(other.get(&ns, "k").await, Ok(None));
}

#[tokio::test]
async fn an_outage_fails_within_the_timeout_and_recovery_needs_nothing() {
    let mut server = RedisServer::start();
    let store = store_on(&server, "app:");
    let ns = Namespace::new("t", "game");
    store.set(&ns, "k", b"v", None).await.expect("set");
    assert_eq!(store.ping().await, Ok(()));

    server.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let failed = store.get(&ns, "k").await;
        assert!(matches!(failed, Err(Error::Backend(_))), "{failed:?}");
        assert!(
            started.elapsed() < Duration::from_millis(1_500),
            "failed after {:?}",
            started.elapsed()
        );
        assert!(store.increment(&ns, "n", 1).await.is_err());
    }
    assert!(store.ping().await.is_err());
    assert!(store.redis_stats().errors.load(Ordering::Relaxed) >= 6);

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.set(&ns, "k", b"again", None).await {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "not back: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.get(&ns, "k").await, Ok(Some(b"again".to_vec())));
}

#[tokio::test]
async fn a_stalled_server_fails_within_the_timeout() {
    let server = RedisServer::start();
    let store = store_on(&server, "app:");
    let ns = Namespace::new("t", "game");
    store.set(&ns, "k", b"v", None).await.expect("set");
    // DEBUG SLEEP stalls the server for everyone, as an overloaded one would.
    let staller = store_on(&server, "x:");
    let mut connection = staller.connection.clone();
    let stall = tokio::spawn(async move {
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(3)
            .query_async::<()>(&mut connection)
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let failed = store.get(&ns, "k").await;
    assert!(matches!(failed, Err(Error::Backend(_))), "{failed:?}");
    assert!(started.elapsed() < Duration::from_millis(1_000));
    let _ = stall.await;
}

#[tokio::test]
async fn a_namespace_keeps_no_keys_longer_than_its_entries() {
    let server = RedisServer::start();
    let store = store_on(&server, "gc:");
    let ns = Namespace::new("t", "game");
    let sizes = [store.base(&ns).as_slice(), b"s"].concat();
    let ttl_of = async |key: &[u8]| -> i64 {
        let mut connection = store.connection.clone();
        redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut connection)
            .await
            .expect("pttl")
    };
    store
        .set(&ns, "short", b"x", Some(Duration::from_secs(1)))
        .await
        .expect("set");
    let keep = ttl_of(&sizes).await;
    let most = i64::try_from((Duration::from_secs(1) + EXPIRY_GRACE).as_millis()).expect("ms");
    assert!(keep > 0 && keep <= most, "{keep}");
    store.set(&ns, "forever", b"x", None).await.expect("set");
    assert_eq!(ttl_of(&sizes).await, -1, "kept while an entry has no TTL");
    assert_eq!(store.delete(&ns, "forever").await, Ok(true));
    assert!(ttl_of(&sizes).await > 0, "expiring again");
    assert_eq!(store.delete(&ns, "short").await, Ok(true));
    assert_eq!(ttl_of(&sizes).await, -2, "gone with the last entry");
}
