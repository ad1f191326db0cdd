//! [`Gate`]: what a push passes before its chain runs, in one call: its signed query is bound to
//! its body (a captured query with another body is refused), and its dedup key is registered
//! (a retry waits for or replays the first answer, a replay is not run). One call because a
//! shared backend answers both in one round trip; [`LocalGate`] is the single node's, in
//! memory with persisted facts, and the fallback of a shared one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::shared::Lease;
use super::signatures::{Binding, MemorySignatureLog};
use super::{Answer, Begin, MemoryDedup, Pending};

/// What a push brings to the gate.
#[derive(Debug, Clone, Copy)]
pub struct Admit<'a> {
    /// The tenant the push is for.
    pub tenant: &'a str,
    /// The tenant and the signed query parameters (what a captured query repeats).
    pub signed: &'a str,
    /// The request body the query came with.
    pub body: &'a [u8],
    /// How long the replay window still accepts the push (zero: no window, nothing bound).
    pub window_left: Duration,
    /// Its dedup key ([`super::key`]), `None` when the message carries nothing to key on.
    pub key: Option<&'a str>,
    /// The longest its answer can take to be decided and recorded: a shared entry is leased
    /// for this long (the pipeline's `answer_lease`).
    pub lease: Duration,
}

/// The answer a retry waits for: `None` if the push's runner gave up without one.
pub type AnswerFuture = Pin<Box<dyn Future<Output = Option<Arc<Answer>>> + Send>>;

/// What [`Gate::admit`] decided.
pub enum Admission {
    /// The signed query came with another body before: a forgery riding on a captured
    /// signature, refused.
    Conflict,
    /// The same signed push again, after its answer is no longer kept (or, with no dedup
    /// key, at all): a replay, answered without a reply and not run.
    Replay,
    /// First sight: run the chain, then [`Claim::finish`] it with the answer (no claim when
    /// the message has no dedup key).
    Run(Option<Claim>),
    /// Another request (on any node) is running it: wait for its answer.
    InFlight(AnswerFuture),
    /// Answered within the retry TTL: answer the same.
    Done(Answer),
    /// Answered within the retry TTL, its answer not kept (before a restart, or dropped to
    /// stay within the table's bounds): answered without a reply, not run.
    Seen,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Admission::Conflict => f.write_str("Conflict"),
            Admission::Replay => f.write_str("Replay"),
            Admission::Run(claim) => f.debug_tuple("Run").field(claim).finish(),
            Admission::InFlight(_) => f.write_str("InFlight"),
            Admission::Done(answer) => f.debug_tuple("Done").field(answer).finish(),
            Admission::Seen => f.write_str("Seen"),
        }
    }
}

/// What [`Gate::admit`] returns (boxed: a shared gate waits on the network).
pub type AdmitFuture<'a> = Pin<Box<dyn Future<Output = Admission> + Send + 'a>>;

/// The bindings and dedup entries pushes pass through.
pub trait Gate: Send + Sync + std::fmt::Debug + 'static {
    /// Binds the push's signed query to its body and registers its key, or says why it is not
    /// to run.
    fn admit<'a>(&'a self, push: Admit<'a>) -> AdmitFuture<'a>;
    /// Drops what has expired from what this node holds.
    fn purge(&self);
}

/// The right (and duty) to answer a push admitted to run, owned by whoever drives its chain
/// to its end; dropped unfinished (the chain panicked), the push is forgotten so that a retry
/// runs it again.
#[derive(Debug)]
pub enum Claim {
    /// An entry in this node's table.
    Local(Pending),
    /// A lease on an entry in the shared store.
    Shared(Lease),
}

impl Claim {
    /// Queues the fact that the push was answered with the node's durable store, so that a
    /// commit made before the answer leaves covers it (a shared entry is the store's already).
    pub fn persist(&mut self) {
        match self {
            Claim::Local(pending) => pending.persist(),
            Claim::Shared(_) => {}
        }
    }

    /// Records the answer for retries on every node and wakes those waiting.
    pub async fn finish(self, answer: &Answer) {
        match self {
            Claim::Local(pending) => pending.finish(answer),
            Claim::Shared(lease) => lease.finish(answer).await,
        }
    }
}

/// The single node's gate: its signature log and its dedup table.
#[derive(Debug)]
pub struct LocalGate {
    signatures: MemorySignatureLog,
    dedup: MemoryDedup,
}

impl LocalGate {
    /// A gate over `signatures` and `dedup`.
    pub fn new(signatures: MemorySignatureLog, dedup: MemoryDedup) -> Self {
        LocalGate { signatures, dedup }
    }

    /// [`Gate::admit`], at once.
    pub fn admit_now(&self, push: Admit<'_>) -> Admission {
        let binding = if push.window_left.is_zero() {
            // No window (or its last instant): nothing to remember the query for.
            Binding::New
        } else {
            self.signatures
                .bind(push.signed, push.body, push.window_left)
        };
        if binding == Binding::Conflict {
            return Admission::Conflict;
        }
        let Some(key) = push.key else {
            // A message with nothing to key on is told from its replays by its signed query.
            return if matches!(binding, Binding::Same { .. }) {
                Admission::Replay
            } else {
                Admission::Run(None)
            };
        };
        match self.dedup.begin(key) {
            // The same signed push accepted before, its answer no longer kept (past the retry
            // TTL, or before a restart): a replay. (Bound moments ago, it is a duplicate racing
            // the first to register here: the first to do so runs it.)
            Begin::New(_) if binding.is_replay(self.dedup.retry_ttl()) => Admission::Replay,
            Begin::New(pending) => Admission::Run(Some(Claim::Local(pending))),
            Begin::InFlight(receiver) => Admission::InFlight(Box::pin(super::wait(receiver))),
            Begin::Done(answer) => Admission::Done(answer),
            Begin::Seen => Admission::Seen,
        }
    }

    /// Drops expired bindings and entries.
    pub fn purge_now(&self) {
        self.dedup.purge();
        self.signatures.purge();
    }
}

impl Gate for LocalGate {
    fn admit<'a>(&'a self, push: Admit<'a>) -> AdmitFuture<'a> {
        Box::pin(std::future::ready(self.admit_now(push)))
    }

    fn purge(&self) {
        self.purge_now();
    }
}

/// The behaviour every [`Gate`] must have, run against each implementation by its tests.
/// Each test takes two gates that share their state (one gate twice, or two nodes on one
/// shared store); `make(ttl)` makes such a pair, empty, keeping answers for `ttl`.
#[cfg(test)]
pub(crate) mod contract {
    use super::*;
    use crate::wechat::Reply;

    const WINDOW: Duration = Duration::from_secs(300);
    const LEASE: Duration = Duration::from_secs(10);

    /// A push of message `key` with its own signed query.
    pub(crate) fn push(key: &str) -> Admit<'_> {
        Admit {
            tenant: "t",
            signed: key,
            body: b"<xml/>",
            window_left: WINDOW,
            key: Some(key),
            lease: LEASE,
        }
    }

    /// The signed query `signed` with `body`, and no dedup key.
    fn unkeyed<'a>(signed: &'a str, body: &'a [u8], window_left: Duration) -> Admit<'a> {
        Admit {
            tenant: "t",
            signed,
            body,
            window_left,
            key: None,
            lease: LEASE,
        }
    }

    /// `push` admitted to run: its claim.
    pub(crate) async fn run(gate: &dyn Gate, push: Admit<'_>) -> Claim {
        match gate.admit(push).await {
            Admission::Run(Some(claim)) => claim,
            other => panic!("{:?} should run, got {other:?}", push.key),
        }
    }

    async fn done(gate: &dyn Gate, push: Admit<'_>) -> Answer {
        match gate.admit(push).await {
            Admission::Done(answer) => answer,
            other => panic!("{:?} should be done, got {other:?}", push.key),
        }
    }

    pub(crate) async fn a_retry_waits_for_the_first_answer_then_gets_it_again(
        a: &dyn Gate,
        b: &dyn Gate,
    ) {
        let claim = run(a, push("k")).await;
        let Admission::InFlight(first_wait) = b.admit(push("k")).await else {
            panic!("second waits")
        };
        let Admission::InFlight(second_wait) = a.admit(push("k")).await else {
            panic!("third waits")
        };
        let waiters = tokio::spawn(async move { (first_wait.await, second_wait.await) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        claim.finish(&Some(Reply::text("first"))).await;
        // Woken at once, not left to look again later (a shared gate's waiters look every
        // second in case a notification was lost).
        let answers = tokio::time::timeout(Duration::from_millis(500), waiters)
            .await
            .expect("the waiters are woken")
            .expect("join");
        let first = Some(Arc::new(Some(Reply::text("first"))));
        assert_eq!(answers, (first.clone(), first));
        assert_eq!(done(b, push("k")).await, Some(Reply::text("first")));
        assert_eq!(done(a, push("k")).await, Some(Reply::text("first")));
    }

    pub(crate) async fn every_kind_of_answer_is_replayed_as_given(a: &dyn Gate, b: &dyn Gate) {
        let answers = [
            None,
            Some(Reply::text("你好 😀")),
            Some(Reply::Image {
                media_id: "m1".into(),
            }),
            Some(Reply::TransferCustomerService { kf_account: None }),
        ];
        for (n, answer) in answers.iter().enumerate() {
            let key = n.to_string();
            run(a, push(&key)).await.finish(answer).await;
            assert_eq!(&done(b, push(&key)).await, answer);
        }
    }

    pub(crate) async fn an_abandoned_message_runs_again_and_waiters_are_released(
        a: &dyn Gate,
        b: &dyn Gate,
    ) {
        let claim = run(a, push("k")).await;
        let Admission::InFlight(wait) = b.admit(push("k")).await else {
            panic!("in flight")
        };
        drop(claim);
        let released = tokio::time::timeout(Duration::from_millis(500), wait).await;
        assert_eq!(released.expect("released"), None);
        // The claim may go by a message of its own: give it time to arrive.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match b.admit(push("k")).await {
                Admission::Run(Some(_)) => break,
                Admission::InFlight(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                other => panic!("an abandoned message runs again, got {other:?}"),
            }
        }
    }

    /// The gates keep answers for 40 ms.
    pub(crate) async fn a_message_answered_again_after_expiry_keeps_its_new_answer(
        a: &dyn Gate,
        b: &dyn Gate,
    ) {
        // Its own signed query each time: a retry, not a replay of the same signed push.
        let first = Admit {
            signed: "first",
            ..push("k")
        };
        run(a, first)
            .await
            .finish(&Some(Reply::text("first")))
            .await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        let second = Admit {
            signed: "second",
            ..push("k")
        };
        run(b, second)
            .await
            .finish(&Some(Reply::text("second")))
            .await;
        a.purge();
        let third = Admit {
            signed: "third",
            ..push("k")
        };
        assert_eq!(done(a, third).await, Some(Reply::text("second")));
    }

    /// The gates keep answers for 1.5 s.
    pub(crate) async fn many_messages_are_told_apart_and_all_expire(a: &dyn Gate, b: &dyn Gate) {
        let keys: Vec<String> = (0..1_000).map(|id| format!("t\u{0}m\u{0}{id}")).collect();
        for (id, key) in keys.iter().enumerate() {
            run(a, push(key))
                .await
                .finish(&Some(Reply::text(id.to_string())))
                .await;
        }
        for (id, key) in keys.iter().enumerate().step_by(37) {
            let signed = format!("a retry of {key}");
            let retry = Admit {
                signed: &signed,
                ..push(key)
            };
            assert_eq!(done(b, retry).await, Some(Reply::text(id.to_string())));
        }
        tokio::time::sleep(Duration::from_millis(1_600)).await;
        b.purge();
        for key in keys.iter().step_by(37) {
            let signed = format!("a retry of {key} after the ttl");
            let retry = Admit {
                signed: &signed,
                ..push(key)
            };
            run(b, retry).await;
        }
    }

    pub(crate) async fn a_query_is_bound_to_its_first_body(a: &dyn Gate, b: &dyn Gate) {
        let query = "t\0sig\0ts\0nonce";
        assert!(matches!(
            a.admit(unkeyed(query, b"<xml>a</xml>", WINDOW)).await,
            Admission::Run(None)
        ));
        assert!(matches!(
            b.admit(unkeyed(query, b"<xml>b</xml>", WINDOW)).await,
            Admission::Conflict
        ));
        assert!(
            matches!(
                b.admit(unkeyed(query, b"<xml>a</xml>", WINDOW)).await,
                Admission::Replay
            ),
            "the same push again, with nothing to key on, is a replay; a refused body does not \
             replace the first"
        );
        let keyed = Admit {
            key: Some("k"),
            ..unkeyed(query, b"<xml>b</xml>", WINDOW)
        };
        assert!(
            matches!(a.admit(keyed).await, Admission::Conflict),
            "refused before its key is registered"
        );
        run(b, push("k")).await;
        assert!(matches!(
            a.admit(unkeyed("u\0sig\0ts\0nonce", b"<xml>b</xml>", WINDOW))
                .await,
            Admission::Run(None)
        ));
    }

    pub(crate) async fn a_binding_ends_with_its_window(a: &dyn Gate, b: &dyn Gate) {
        let window = Duration::from_millis(50);
        assert!(matches!(
            a.admit(unkeyed("q", b"a", window)).await,
            Admission::Run(None)
        ));
        assert!(matches!(
            b.admit(unkeyed("q", b"b", window)).await,
            Admission::Conflict
        ));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(matches!(
            b.admit(unkeyed("q", b"b", window)).await,
            Admission::Run(None)
        ));
        for body in [b"a", b"b"] {
            assert!(
                matches!(
                    a.admit(unkeyed("r", body, Duration::ZERO)).await,
                    Admission::Run(None)
                ),
                "no window, nothing bound"
            );
        }
    }

    /// The gates keep answers for 100 ms.
    pub(crate) async fn the_same_signed_push_after_its_answer_is_gone_is_a_replay(
        a: &dyn Gate,
        b: &dyn Gate,
    ) {
        run(a, push("k")).await.finish(&None).await;
        assert_eq!(done(b, push("k")).await, None, "a retry within the ttl");
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            matches!(b.admit(push("k")).await, Admission::Replay),
            "the same signed push past the retry ttl, inside its window"
        );
        let duplicate = push("d");
        let claim = run(a, duplicate).await;
        assert!(
            matches!(b.admit(duplicate).await, Admission::InFlight(_)),
            "a duplicate racing the first waits for it"
        );
        drop(claim);
    }

    /// Runs the whole contract on the gates `$make(ttl_ms)` returns, as `$name`.
    macro_rules! gate_contract_tests {
        ($name:ident, $make:expr) => {
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                use $crate::dedup::gate::contract;

                async fn with(
                    ttl_ms: u64,
                    test: impl AsyncFnOnce(&dyn crate::dedup::Gate, &dyn crate::dedup::Gate),
                ) {
                    // The gates, and whatever they need for as long as they live.
                    let made = $make(ttl_ms);
                    test(&*made.0, &*made.1).await;
                }

                #[tokio::test]
                async fn a_retry_waits_for_the_first_answer_then_gets_it_again() {
                    with(
                        60_000,
                        contract::a_retry_waits_for_the_first_answer_then_gets_it_again,
                    )
                    .await;
                }

                #[tokio::test]
                async fn every_kind_of_answer_is_replayed_as_given() {
                    with(60_000, contract::every_kind_of_answer_is_replayed_as_given).await;
                }

                #[tokio::test]
                async fn an_abandoned_message_runs_again_and_waiters_are_released() {
                    with(
                        60_000,
                        contract::an_abandoned_message_runs_again_and_waiters_are_released,
                    )
                    .await;
                }

                #[tokio::test]
                async fn a_message_answered_again_after_expiry_keeps_its_new_answer() {
                    with(
                        40,
                        contract::a_message_answered_again_after_expiry_keeps_its_new_answer,
                    )
                    .await;
                }

                #[tokio::test]
                async fn many_messages_are_told_apart_and_all_expire() {
                    with(1_500, contract::many_messages_are_told_apart_and_all_expire).await;
                }

                #[tokio::test]
                async fn a_query_is_bound_to_its_first_body() {
                    with(60_000, contract::a_query_is_bound_to_its_first_body).await;
                }

                #[tokio::test]
                async fn a_binding_ends_with_its_window() {
                    with(60_000, contract::a_binding_ends_with_its_window).await;
                }

                #[tokio::test]
                async fn the_same_signed_push_after_its_answer_is_gone_is_a_replay() {
                    with(
                        100,
                        contract::the_same_signed_push_after_its_answer_is_gone_is_a_replay,
                    )
                    .await;
                }
            }
        };
    }
    pub(crate) use gate_contract_tests;
}

#[cfg(test)]
mod tests {
    use super::contract::gate_contract_tests;
    use super::*;
    use crate::storage::{FactStore, MemoryKv};

    fn memory(ttl_ms: u64) -> Arc<LocalGate> {
        Arc::new(LocalGate::new(
            MemorySignatureLog::new(),
            MemoryDedup::new(Duration::from_millis(ttl_ms)),
        ))
    }

    fn persistent(ttl_ms: u64) -> Arc<LocalGate> {
        let facts: Arc<dyn FactStore> = Arc::new(MemoryKv::default());
        Arc::new(LocalGate::new(
            MemorySignatureLog::persistent(Arc::clone(&facts)).expect("log"),
            MemoryDedup::persistent(Duration::from_millis(ttl_ms), facts).expect("table"),
        ))
    }

    /// One node's gate, twice.
    fn twice(gate: Arc<LocalGate>) -> (Arc<LocalGate>, Arc<LocalGate>) {
        (Arc::clone(&gate), gate)
    }

    gate_contract_tests!(memory_gate, |ttl| twice(memory(ttl)));
    gate_contract_tests!(persistent_gate, |ttl| twice(persistent(ttl)));
}
