//! [`RedisGate`]: the gate on the Redis server several nodes share, so that a retry or a replay
//! is recognised on whichever node it lands, and a captured query carries another body on none.
//!
//! A push is admitted by one script (one round trip), which binds its signed query and
//! registers its key atomically, and answered by one more (its [`Lease`] finishing). Keys, all
//! of a tenant in one hash slot:
//!
//! - `P dd:{tenant}:s:QUERY` (the query's SHA-256, 16 bytes in hex): the body's digest and the
//!   time it was bound, kept for the rest of the push's window;
//! - `P dd:{tenant}:m:KEY` (the dedup key's digest): `R token` while the push runs on the node
//!   holding the lease `token` (`W token` once a retry waits for it), for at most the lease;
//!   then `D answer` (the answer as JSON) for the retry TTL.
//!
//! A node finishing an entry a retry waits on publishes the answer on `P dd:done`; each node
//! keeps one subscription to it and wakes its own waiters, which also look at the entry again
//! every [`RECHECK`] in case a message was lost (a subscription being re-established). The node
//! answering a retry encrypts the stored answer itself.
//!
//! **The lease** is the longest a push can run before its answer is decided (its tenant's
//! decision budget and the grace for making its kv writes durable, plus a margin), given with
//! each push ([`Admit::lease`]). If its node dies
//! meanwhile, retries wait until the lease ends, and a retry after that runs the chain again:
//! the one case in which a push runs twice while Redis answers.
//!
//! **While Redis does not answer** (within its command timeout), each node admits pushes on
//! its own ([`LocalGate`], persisted like a single node's), counted in
//! `wxhost_redis_local_fallbacks_total` and logged when it starts and ends: meanwhile a retry
//! landing on another node than its first attempt runs again, and a captured query can carry
//! another body to another node. A lease whose answer cannot be recorded leaves its entry
//! running until the lease ends, after which a retry runs again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::StreamExt as _;
use redis::{Script, Value};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::gate::{Admission, Admit, AdmitFuture, AnswerFuture, Claim, Gate, LocalGate};
use super::{Answer, millis};
use crate::clock::unix_now_ms;
use crate::storage::{self, RedisKv};
use crate::telemetry::Metrics;

/// How often a waiting retry looks at its entry again, in case a notification was lost.
pub const RECHECK: Duration = Duration::from_secs(1);

/// Binds the signed query (`KEYS[1]`), then registers the dedup key (`KEYS[2]`, absent when the
/// push has none). `ARGV`: the body's digest, now (ms), the window left (ms, 0: nothing to
/// bind), the retry TTL (ms), the lease (ms), the lease's token.
static ADMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local digest, now, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local age = nil
if window > 0 then
  local bound = redis.call('GET', KEYS[1])
  if bound then
    if string.sub(bound, 1, 16) ~= digest then return {'conflict'} end
    age = now - tonumber(string.sub(bound, 17))
  else
    redis.call('SET', KEYS[1], digest .. ARGV[2], 'PX', window)
  end
end
if #KEYS < 2 then
  if age then return {'replay'} end
  return {'run'}
end
local entry = redis.call('GET', KEYS[2])
if entry then
  local state = string.sub(entry, 1, 1)
  if state == 'D' then return {'done', string.sub(entry, 2)} end
  if state == 'R' then redis.call('SET', KEYS[2], 'W' .. string.sub(entry, 2), 'KEEPTTL') end
  return {'running'}
end
if age and age >= tonumber(ARGV[4]) then return {'replay'} end
redis.call('SET', KEYS[2], 'R' .. ARGV[6], 'PX', ARGV[5])
return {'new'}
",
    )
});

/// Records the answer of the entry `KEYS[1]` leased with token `ARGV[1]`: `ARGV[2]` the
/// answer, `ARGV[3]` the retry TTL (ms), and publishes it on `ARGV[4]` (prefixed by the key's
/// digest `ARGV[5]`) if a retry waits. An entry whose lease ended unclaimed takes the answer
/// too; one another node has leased since is left to it.
static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local entry = redis.call('GET', KEYS[1])
local state = entry and string.sub(entry, 1, 1)
local ours = (state == 'R' or state == 'W') and string.sub(entry, 2) == ARGV[1]
if not ours and entry then return 0 end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], 'D' .. ARGV[2], 'PX', ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
if state == 'W' then redis.call('PUBLISH', ARGV[4], ARGV[5] .. 'D' .. ARGV[2]) end
return 1
",
    )
});

/// Forgets the entry `KEYS[1]` leased with token `ARGV[1]` (its chain gave up), and tells the
/// retries waiting for it (`ARGV[4]`, `ARGV[5]` as for [`FINISH`]).
static ABANDON: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local entry = redis.call('GET', KEYS[1])
local state = entry and string.sub(entry, 1, 1)
if not ((state == 'R' or state == 'W') and string.sub(entry, 2) == ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
if state == 'W' then redis.call('PUBLISH', ARGV[4], ARGV[5] .. 'X') end
return 1
",
    )
});

/// The first 16 bytes of SHA-256.
fn digest(data: &[u8]) -> [u8; 16] {
    let full = Sha256::digest(data);
    let mut out = [0; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// The gate in Redis, with a node-local fallback for outages.
#[derive(Debug)]
pub struct RedisGate {
    shared: Arc<Shared>,
    local: LocalGate,
    /// Whether the last admission fell back (to log the start and the end of an outage once).
    degraded: AtomicBool,
    /// Stops the subscription (when the gate goes).
    listening: CancellationToken,
}

impl Drop for RedisGate {
    fn drop(&mut self) {
        self.listening.cancel();
    }
}

/// The senders that wake a node's retries waiting for an entry, by the entry's digest.
type Waiters = HashMap<[u8; 16], watch::Sender<Option<Arc<Answer>>>>;

/// What the gate, its leases and its waiters share.
#[derive(Debug)]
struct Shared {
    redis: RedisKv,
    metrics: Arc<Metrics>,
    retry_ttl: Duration,
    /// `P dd:done`.
    channel: Vec<u8>,
    /// This node's waiting retries, by their entry's digest.
    waiters: Mutex<Waiters>,
}

impl RedisGate {
    /// A gate in `redis` keeping answers for `retry_ttl`, falling back to `local` while Redis does not answer. It subscribes to the notifications
    /// of finished entries at once (and again whenever the subscription is lost).
    pub fn new(
        redis: RedisKv,
        local: LocalGate,
        metrics: Arc<Metrics>,
        retry_ttl: Duration,
    ) -> Self {
        let shared = Arc::new(Shared {
            channel: redis.key(&[b"dd:done"]),
            redis,
            metrics,
            retry_ttl,
            waiters: Mutex::default(),
        });
        let stop = CancellationToken::new();
        tokio::spawn(listen(Arc::clone(&shared), stop.clone()));
        RedisGate {
            shared,
            local,
            degraded: AtomicBool::new(false),
            listening: stop,
        }
    }

    async fn admit_shared(&self, push: Admit<'_>) -> storage::Result<Admission> {
        let shared = &self.shared;
        let tag = |kind: &[u8], digest: [u8; 16]| {
            shared.redis.key(&[
                b"dd:{",
                push.tenant.as_bytes(),
                b"}:",
                kind,
                hex::encode(digest).as_bytes(),
            ])
        };
        let binding = tag(b"s:", digest(push.signed.as_bytes()));
        let entry = push.key.map(|key| {
            let key_digest = digest(key.as_bytes());
            (tag(b"m:", key_digest), key_digest)
        });
        let token = hex::encode(rand::random::<[u8; 16]>());
        let mut keys = vec![binding.as_slice()];
        if let Some((key, _)) = &entry {
            keys.push(key);
        }
        let body = digest(push.body);
        let numbers = [
            unix_now_ms(),
            millis(push.window_left),
            millis(shared.retry_ttl),
            millis(push.lease).max(1),
        ]
        .map(|n| n.to_string());
        let args: [&[u8]; 6] = [
            &body,
            numbers[0].as_bytes(),
            numbers[1].as_bytes(),
            numbers[2].as_bytes(),
            numbers[3].as_bytes(),
            token.as_bytes(),
        ];
        let answer: Vec<Value> = shared.redis.run_script(&ADMIT, &keys, &args).await?;
        let state = match answer.first() {
            Some(Value::BulkString(state)) => state.as_slice(),
            other => return Err(unexpected(other)),
        };
        Ok(match (state, entry) {
            (b"conflict", _) => Admission::Conflict,
            (b"replay", _) => Admission::Replay,
            (b"run", _) => Admission::Run(None),
            (b"new", Some((key, digest))) => Admission::Run(Some(Claim::Shared(Lease {
                shared: Arc::clone(shared),
                key,
                digest,
                token,
                lease: push.lease,
                finished: false,
            }))),
            (b"done", Some(_)) => match answer.get(1) {
                Some(Value::BulkString(stored)) => match serde_json::from_slice(stored) {
                    Ok(answer) => Admission::Done(answer),
                    Err(e) => {
                        tracing::error!(
                            "a stored answer does not decode ({e}); answering without a reply"
                        );
                        Admission::Seen
                    }
                },
                other => return Err(unexpected(other)),
            },
            (b"running", Some((key, digest))) => Admission::InFlight(shared.wait(key, digest)),
            _ => return Err(unexpected(answer.first())),
        })
    }
}

fn unexpected(value: Option<&Value>) -> storage::Error {
    storage::Error::Backend(format!("redis: unexpected answer {value:?}"))
}

impl Gate for RedisGate {
    fn admit<'a>(&'a self, push: Admit<'a>) -> AdmitFuture<'a> {
        Box::pin(async move {
            match self.admit_shared(push).await {
                Ok(admission) => {
                    if self.degraded.swap(false, Ordering::Relaxed) {
                        tracing::info!(
                            "redis answers again: dedup and signatures are shared again"
                        );
                    }
                    admission
                }
                Err(e) => {
                    if !self.degraded.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "redis does not answer ({e}): admitting pushes on this node alone \
                             until it does; meanwhile a retry landing on another node runs \
                             again, and a captured query may carry another body to another node"
                        );
                    }
                    self.shared.metrics.redis_fallback();
                    self.local.admit_now(push)
                }
            }
        })
    }

    /// Redis forgets by itself; this purges the fallback.
    fn purge(&self) {
        self.local.purge_now();
    }
}

/// A node's lease on a shared dedup entry: the right to run its push and record the answer.
pub struct Lease {
    shared: Arc<Shared>,
    key: Vec<u8>,
    digest: [u8; 16],
    token: String,
    lease: Duration,
    finished: bool,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("key", &String::from_utf8_lossy(&self.key))
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// Records `answer` for the retry TTL and wakes the retries waiting on any node.
    pub(super) async fn finish(mut self, answer: &Answer) {
        self.finished = true;
        let encoded = match serde_json::to_vec(answer) {
            Ok(encoded) => encoded,
            Err(e) => {
                tracing::error!("cannot encode the answer for retries: {e}");
                return;
            }
        };
        let ttl = millis(self.shared.retry_ttl).to_string();
        let args: [&[u8]; 5] = [
            self.token.as_bytes(),
            &encoded,
            ttl.as_bytes(),
            &self.shared.channel,
            &self.digest,
        ];
        if let Err(e) = self
            .shared
            .redis
            .run_script::<i64>(&FINISH, &[&self.key], &args)
            .await
        {
            tracing::warn!(
                "cannot record the answer in redis ({e}): a retry after the lease ({} ms) runs \
                 the push again",
                self.lease.as_millis()
            );
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // The chain gave up: forget the entry so a retry runs it again (without a runtime to
        // send that, the lease ends by itself).
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (shared, key, token, digest) = (
            Arc::clone(&self.shared),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.token),
            self.digest,
        );
        runtime.spawn(async move {
            let args: [&[u8]; 5] = [token.as_bytes(), b"", b"", &shared.channel, &digest];
            if let Err(e) = shared
                .redis
                .run_script::<i64>(&ABANDON, &[&key], &args)
                .await
            {
                tracing::warn!("cannot release an abandoned dedup entry ({e}); its lease ends it");
            }
        });
    }
}

/// What a waiting retry finds when it looks at its entry.
enum Peek {
    Running,
    Done(Answer),
    Gone,
}

impl Shared {
    fn waiters(&self) -> MutexGuard<'_, Waiters> {
        // A panic while holding the lock leaves nothing half-written that matters here.
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for the answer of the entry `key` running on some node: woken by its
    /// notification, or finding it answered (or gone) when it looks again.
    fn wait(self: &Arc<Self>, key: Vec<u8>, digest: [u8; 16]) -> AnswerFuture {
        let shared = Arc::clone(self);
        Box::pin(async move {
            let mut waiting = Waiting::register(&shared, digest);
            loop {
                // Looked at after registering: an answer notified before is not missed.
                match shared.peek(&key).await {
                    Ok(Peek::Done(answer)) => return Some(Arc::new(answer)),
                    Ok(Peek::Gone) => return None,
                    Ok(Peek::Running) | Err(_) => {}
                }
                if let Ok(answer) = tokio::time::timeout(RECHECK, waiting.notified()).await {
                    return answer;
                }
            }
        })
    }

    async fn peek(&self, key: &[u8]) -> storage::Result<Peek> {
        let mut command = redis::cmd("GET");
        command.arg(key);
        let entry: Option<Vec<u8>> = self.redis.query(command).await?;
        Ok(match entry.as_deref().and_then(<[u8]>::split_first) {
            None => Peek::Gone,
            Some((b'D', answer)) => match serde_json::from_slice(answer) {
                Ok(answer) => Peek::Done(answer),
                Err(_) => Peek::Gone,
            },
            Some(_) => Peek::Running,
        })
    }

    /// Delivers a notification (`digest ‖ D answer`, or `digest ‖ X`: abandoned) to this
    /// node's waiters for that entry.
    fn deliver(&self, message: &[u8]) {
        let Some((digest, outcome)) = message.split_first_chunk::<16>() else {
            return;
        };
        let Some(waiters) = self.waiters().remove(digest) else {
            return;
        };
        if let Some((b'D', answer)) = outcome.split_first()
            && let Ok(answer) = serde_json::from_slice::<Answer>(answer)
        {
            waiters.send_replace(Some(Arc::new(answer)));
        }
        // Dropped without an answer (abandoned): the waiters are released with none.
    }
}

/// One waiting retry's place among the node's waiters, removed with it.
struct Waiting {
    shared: Arc<Shared>,
    digest: [u8; 16],
    receiver: Option<watch::Receiver<Option<Arc<Answer>>>>,
}

impl Waiting {
    fn register(shared: &Arc<Shared>, digest: [u8; 16]) -> Self {
        let receiver = shared
            .waiters()
            .entry(digest)
            .or_insert_with(|| watch::channel(None).0)
            .subscribe();
        Waiting {
            shared: Arc::clone(shared),
            digest,
            receiver: Some(receiver),
        }
    }

    /// The notified answer; `None` once the entry was abandoned.
    async fn notified(&mut self) -> Option<Arc<Answer>> {
        let receiver = self.receiver.as_mut()?;
        match receiver.wait_for(Option::is_some).await {
            Ok(answer) => answer.clone(),
            Err(_) => None,
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        drop(self.receiver.take());
        let mut waiters = self.shared.waiters();
        if waiters
            .get(&self.digest)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            waiters.remove(&self.digest);
        }
    }
}

/// Keeps this node subscribed to finished entries until `stop`, re-subscribing (after a pause
/// growing to 2 s) whenever the subscription is lost.
async fn listen(shared: Arc<Shared>, stop: CancellationToken) {
    let mut pause = Duration::from_millis(50);
    loop {
        let subscribed = tokio::select! {
            subscribed = shared.redis.subscribe(&shared.channel) => subscribed,
            () = stop.cancelled() => return,
        };
        match subscribed {
            Ok(mut messages) => {
                pause = Duration::from_millis(50);
                loop {
                    tokio::select! {
                        message = messages.next() => match message {
                            Some(message) => shared.deliver(message.get_payload_bytes()),
                            None => break,
                        },
                        () = stop.cancelled() => return,
                    }
                }
                tracing::debug!("dedup notifications lost their subscription; subscribing again");
            }
            Err(e) => tracing::debug!("cannot subscribe to dedup notifications: {e}"),
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = stop.cancelled() => return,
        }
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use wxhost_test_redis::RedisServer;

    use super::super::gate::contract::{self, gate_contract_tests};
    use super::super::{MemoryDedup, MemorySignatureLog};
    use super::*;
    use crate::storage::{system_clock, test_store};
    use crate::wechat::Reply;

    /// A node's gate on `server`, under `prefix`.
    fn node(server: &RedisServer, prefix: &str, ttl: Duration) -> RedisGate {
        node_with(server, prefix, ttl, Arc::new(Metrics::default()))
    }

    fn node_with(
        server: &RedisServer,
        prefix: &str,
        ttl: Duration,
        metrics: Arc<Metrics>,
    ) -> RedisGate {
        RedisGate::new(
            test_store(&server.url(), prefix, system_clock()),
            LocalGate::new(MemorySignatureLog::new(), MemoryDedup::new(ttl)),
            metrics,
            ttl,
        )
    }

    /// Two nodes on a server of their own.
    fn two_nodes(ttl_ms: u64) -> (Arc<RedisGate>, Arc<RedisGate>, RedisServer) {
        let server = RedisServer::start();
        let ttl = Duration::from_millis(ttl_ms);
        let prefix = "gate-test:";
        (
            Arc::new(node(&server, prefix, ttl)),
            Arc::new(node(&server, prefix, ttl)),
            server,
        )
    }

    gate_contract_tests!(redis_gate, two_nodes);

    #[tokio::test]
    async fn a_retry_waiting_on_a_node_whose_notification_is_lost_finds_the_answer_itself() {
        let server = RedisServer::start();
        let ttl = Duration::from_secs(60);
        let (a, b) = (node(&server, "n:", ttl), node(&server, "n:", ttl));
        let claim = contract::run(&a, contract::push("k")).await;
        let Admission::InFlight(wait) = b.admit(contract::push("k")).await else {
            panic!("waits")
        };
        let waiter = tokio::spawn(wait);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Node b loses its notifications.
        b.listening.cancel();
        claim.finish(&Some(Reply::text("first"))).await;
        let answer = tokio::time::timeout(RECHECK * 3, waiter)
            .await
            .expect("found within a recheck")
            .expect("join");
        assert_eq!(answer.as_deref(), Some(&Some(Reply::text("first"))));
    }

    #[tokio::test]
    async fn a_lease_whose_node_is_gone_ends_and_then_the_push_runs_again() {
        let server = RedisServer::start();
        let ttl = Duration::from_secs(60);
        let node = |prefix| {
            RedisGate::new(
                test_store(&server.url(), prefix, system_clock()),
                LocalGate::new(MemorySignatureLog::new(), MemoryDedup::new(ttl)),
                Arc::new(Metrics::default()),
                ttl,
            )
        };
        let (a, b) = (node("l:"), node("l:"));
        let short_lease = |signed| Admit {
            signed,
            lease: Duration::from_millis(300),
            ..contract::push("k")
        };
        let claim = contract::run(&a, short_lease("k")).await;
        // The node dies: its claim is neither finished nor released.
        std::mem::forget(claim);
        let retry = || short_lease("a retry");
        let Admission::InFlight(wait) = b.admit(retry()).await else {
            panic!("within the lease a retry waits")
        };
        let waited = tokio::time::timeout(Duration::from_secs(3), wait).await;
        assert_eq!(waited.expect("released when the lease ends"), None);
        contract::run(&b, retry()).await;
    }

    #[tokio::test]
    async fn an_outage_admits_locally_and_recovers_by_itself() {
        let mut server = RedisServer::start();
        let metrics = Arc::new(Metrics::default());
        let gate = node_with(&server, "o:", Duration::from_secs(60), Arc::clone(&metrics));
        server.kill();
        let claim = contract::run(&gate, contract::push("k")).await;
        assert!(matches!(claim, Claim::Local(_)), "{claim:?}");
        claim.finish(&Some(Reply::text("local"))).await;
        match gate.admit(contract::push("k")).await {
            Admission::Done(answer) => assert_eq!(answer, Some(Reply::text("local"))),
            other => panic!("the local table answers the retry: {other:?}"),
        }
        assert!(
            metrics
                .encode()
                .contains("wxhost_redis_local_fallbacks_total 2")
        );
        server.restart();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let key = format!("r{}", unix_now_ms());
            if let Admission::Run(Some(Claim::Shared(lease))) =
                gate.admit(contract::push(&key)).await
            {
                lease.finish(&None).await;
                assert!(!gate.degraded.load(Ordering::Relaxed));
                break;
            }
            assert!(std::time::Instant::now() < deadline, "not back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn a_push_costs_two_round_trips() {
        let server = RedisServer::start();
        let gate = node(&server, "rt:", Duration::from_secs(60));
        let before = gate
            .shared
            .redis
            .redis_stats()
            .commands
            .load(Ordering::Relaxed);
        for id in 0..10 {
            let key = format!("m{id}");
            let claim = contract::run(&gate, contract::push(&key)).await;
            claim.finish(&Some(Reply::text("hi"))).await;
        }
        let after = gate
            .shared
            .redis
            .redis_stats()
            .commands
            .load(Ordering::Relaxed);
        assert_eq!(after - before, 20, "one to admit, one to finish");
    }
}
