//! The push pipeline: tenant → verify, decrypt, parse → dedup → plugin chain under the passive
//! budget → encode (and encrypt). A chain still running when the budget ends is answered with
//! `success`/empty at once and may go on within the async budget; its reply is then handed to
//! late delivery. A plugin may also answer early (`early-reply`) and keep working; what it
//! returns afterwards is late too. A tenant with `late_reply = "hold_for_retry"` is answered
//! only when the chain ends or at the passive budget of WeChat's last attempt: the attempts
//! before it are held (WeChat gives up on them and retries, and the retry joins the chain
//! through dedup). With `next_message`, a reply kept for the user is the passive answer to
//! their next message.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::clock::unix_now;
use crate::config::{LateReplyMode, LateReplyPolicy};
use crate::dedup::{self, Admission, Admit, Answer, Claim, Gate, WindowFloor};
use crate::late_reply::{self, LateReplies};
use crate::plugin::{self, Outcome, PushScope, Registry};
use crate::storage::KvStore;
use crate::telemetry::{Metrics, PushOutcome};
use crate::tenant::{Tenant, TenantsHandle};
use crate::wechat::{self, CallbackQuery, Content, Event, Message, Reply, push::no_reply};

/// Why a callback request was refused.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// No tenant has this id.
    #[error("unknown tenant")]
    UnknownTenant,
    /// The request failed verification, decryption or parsing.
    #[error(transparent)]
    Rejected(#[from] wechat::Error),
    /// The push's signed query was accepted before with another body: a captured signature
    /// carrying a forged body.
    #[error("signature already used with another body")]
    SignatureReused,
    /// The push is stamped before the floor a widened replay window left.
    #[error("timestamp is older than what the replay window covered before it widened")]
    BeforeFloor,
    /// The push ran, but its kv writes could not be made durable: it is not acknowledged (a
    /// retry gets its answer once they are).
    #[error("storage unavailable: the push's writes are not durable yet")]
    StorageUnavailable,
}

impl PushError {
    /// How the refusal is answered and counted, the one table of both: the sender's faults
    /// ([`wechat::Error::is_bad_request`]) are 4xx, this host's are 500.
    pub fn refusal(&self) -> Refusal {
        use wechat::Error as E;
        let (status, outcome) = match self {
            PushError::UnknownTenant => (StatusCode::NOT_FOUND, "unknown_tenant"),
            PushError::StorageUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "storage_failed"),
            PushError::SignatureReused => (StatusCode::UNAUTHORIZED, "signature_reused"),
            PushError::BeforeFloor => (StatusCode::UNAUTHORIZED, "stale_timestamp"),
            PushError::Rejected(e) if !e.is_bad_request() => {
                (StatusCode::INTERNAL_SERVER_ERROR, "host_error")
            }
            PushError::Rejected(E::SignatureMismatch { .. }) => {
                (StatusCode::UNAUTHORIZED, "bad_signature")
            }
            PushError::Rejected(E::StaleTimestamp { .. }) => {
                (StatusCode::UNAUTHORIZED, "stale_timestamp")
            }
            PushError::Rejected(E::MissingParameter(_) | E::InvalidTimestamp(_)) => {
                (StatusCode::UNAUTHORIZED, "bad_request")
            }
            PushError::Rejected(E::BodyTooLarge { .. }) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "bad_request")
            }
            PushError::Rejected(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        };
        Refusal { status, outcome }
    }

    /// The official error code (0 for an unknown tenant).
    pub fn code(&self) -> i32 {
        match self {
            PushError::Rejected(e) => e.code(),
            // Refused as WeChat's sample refuses a bad signature or a stale timestamp.
            PushError::SignatureReused | PushError::BeforeFloor => -40001,
            PushError::UnknownTenant | PushError::StorageUnavailable => 0,
        }
    }
}

/// How a refused callback is answered and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: StatusCode,
    /// The `outcome` label of `wxhost_requests_total`.
    pub outcome: &'static str,
}

/// The HTTP body answering a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushAnswer {
    /// The body: reply XML, the encrypted envelope, `success` or empty.
    pub body: String,
    /// Whether the body is XML (else plain text).
    pub is_xml: bool,
}

/// What the chain decided.
#[derive(Debug)]
enum ChainResult {
    Reply { reply: Reply, plugin: String },
    Handled,
    Unanswered,
}

/// The pipeline and everything it needs.
pub struct Dispatcher {
    /// The tenants (swapped on config reload).
    pub tenants: Arc<TenantsHandle>,
    /// The loaded plugins.
    pub registry: Arc<Registry>,
    /// Signed queries bound to their bodies, and retry and replay deduplication.
    pub gate: Arc<dyn Gate>,
    /// The oldest timestamp accepted after the window widened.
    pub floor: Arc<WindowFloor>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Late reply delivery, and the replies kept for users' next messages.
    pub late: Arc<LateReplies>,
    /// The store of this host's dedup facts (and of plugin kv, when kv is embedded): a push
    /// that wrote kv is answered once this store's sync has made its writes and its dedup fact
    /// durable (a shared store has applied each write when it returns).
    pub durable: Arc<dyn KvStore>,
    /// Time the chain has for a passive reply.
    pub passive_budget: Duration,
    /// Time a chain may go on for a late reply.
    pub async_budget: Duration,
    /// Pushes whose chain outlives its first poll (waited for at shutdown).
    pub tasks: TaskTracker,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("passive_budget", &self.passive_budget)
            .field("async_budget", &self.async_budget)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// URL verification (GET) with the request's query string: the `echostr` to answer with.
    pub fn verify_url(&self, tenant_id: &str, query: &str) -> Result<String, PushError> {
        let tenant = self
            .tenants
            .load()
            .get(tenant_id)
            .ok_or(PushError::UnknownTenant)?;
        let query = CallbackQuery::parse(query)?;
        Ok(tenant.account.verify_url(&query, unix_now())?.to_owned())
    }

    /// Handles a push (POST) with the request's query string and body; returns the body to
    /// answer with.
    pub async fn handle_push(
        &self,
        tenant_id: &str,
        query: &str,
        body: &[u8],
    ) -> Result<PushAnswer, PushError> {
        let started = Instant::now();
        let tenant = self
            .tenants
            .load()
            .get(tenant_id)
            .ok_or(PushError::UnknownTenant)?;
        let query = CallbackQuery::parse(query)?;
        let now = unix_now();
        let inbound = tenant.account.open(&query, body, now)?;
        let late = self.late.mode(&tenant);
        let budget = LateReplyPolicy::decision_budget(late, self.passive_budget);
        let admission = self
            .admit(&tenant, &query, body, &inbound.message, now, budget)
            .await?;
        // The push's span starts once its message is known, with every field but the plugin
        // set at once: each later `record` costs a formatting pass in the log layer.
        let span = tracing::info_span!(
            "push",
            tenant = %tenant.id,
            msg_id = inbound.message.msg_id,
            msg_type = inbound.message.msg_type(),
            plugin = tracing::field::Empty,
        );
        let push = Push {
            tenant: &tenant,
            inbound: &inbound,
            started,
            late,
            budget,
        };
        self.respond(push, admission).instrument(span).await
    }

    /// Passes an opened push through the gate: its signed query is bound to its body for as
    /// long as the window accepts it (the same query with another body is refused, as is a
    /// push stamped before the floor a widened window left) and its dedup key registered,
    /// leased for as long as its answer may take (`budget`).
    async fn admit(
        &self,
        tenant: &Tenant,
        query: &CallbackQuery,
        body: &[u8],
        msg: &Message,
        now: i64,
        budget: Duration,
    ) -> Result<Admission, PushError> {
        let timestamp = query.timestamp.as_deref().unwrap_or_default();
        let window = tenant.account.timestamp_window();
        if window.secs() > 0 && !self.floor.admits(timestamp.parse().unwrap_or(i64::MIN)) {
            return Err(PushError::BeforeFloor);
        }
        let window_left = Duration::from_secs(window.remaining_secs(timestamp, now));
        // `msg_signature` covers the ciphertext: two encrypted pushes that happen to share a
        // timestamp and nonce stay apart. A plain push has only `signature`, which binds no body.
        let signed = format!(
            "{}\u{0}{}\u{0}{timestamp}\u{0}{}\u{0}{}",
            tenant.id,
            query.signature.as_deref().unwrap_or_default(),
            query.nonce.as_deref().unwrap_or_default(),
            query.msg_signature.as_deref().unwrap_or_default(),
        );
        let key = dedup::key(&tenant.id, msg);
        let push = Admit {
            tenant: &tenant.id,
            signed: &signed,
            body,
            window_left,
            key: key.as_deref(),
            lease: answer_lease(budget),
        };
        Ok(self.gate.admit(push).await)
    }

    /// Answers an admitted push: the chain under its budget (or what dedup decided instead),
    /// and the encoded (and encrypted) answer.
    async fn respond(&self, push: Push<'_>, admission: Admission) -> Result<PushAnswer, PushError> {
        let Push {
            tenant,
            inbound,
            started,
            budget,
            ..
        } = push;
        let (answer, outcome) = match admission {
            Admission::Run(claim) => self.answer(push, claim).await?,
            Admission::Conflict => return Err(PushError::SignatureReused),
            Admission::Replay => {
                self.metrics.dedup_hit(&tenant.id, "replay");
                (None, PushOutcome::ReplayIgnored)
            }
            Admission::Done(answer) => {
                self.metrics.dedup_hit(&tenant.id, "done");
                (answer, PushOutcome::RetryReplayed)
            }
            Admission::Seen => {
                self.metrics.dedup_hit(&tenant.id, "seen");
                (None, PushOutcome::ReplayIgnored)
            }
            Admission::InFlight(first_answer) => {
                self.metrics.dedup_hit(&tenant.id, "in_flight");
                // With `hold_for_retry`, held until the answer is decided (WeChat gives up on
                // this attempt meanwhile, unless it is the last).
                let deadline = tokio::time::Instant::from_std(started + budget);
                match tokio::time::timeout_at(deadline, first_answer).await {
                    Ok(Some(answer)) => (Arc::unwrap_or_clone(answer), PushOutcome::RetryWaited),
                    _ => (None, PushOutcome::RetryTimedOut),
                }
            }
        };
        tenant.metrics.push(outcome);
        tracing::debug!(
            outcome = outcome.label(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "push answered"
        );
        match tenant
            .account
            .answer(inbound, answer.as_ref(), unix_now(), &mut rand::rng())
        {
            Ok(body) => Ok(PushAnswer {
                is_xml: answer.is_some(),
                body,
            }),
            Err(e) => {
                tracing::error!("cannot encode the reply: {e}; answering without one");
                Ok(PushAnswer {
                    is_xml: false,
                    body: no_reply(inbound.encrypted).to_owned(),
                })
            }
        }
    }

    /// Runs the chain under the push's budget and decides the answer (with the reply kept
    /// for the user, under `next_message`), which `claim` (the push's dedup entry, when it has
    /// one) records for retries.
    ///
    /// The chain is polled once in place first: most chains finish there (a plugin that does
    /// not wait on I/O runs to its end in one poll), and then no task and no timer are needed.
    /// A chain that has to wait, or whose kv writes must be made durable before it is
    /// answered, is driven by a task of its own, tracked for shutdown: whatever the request
    /// does (a client may close its connection at any time), the chain runs to its end within
    /// the async budget, its answer is recorded for every retry, and a late reply is delivered.
    async fn answer(
        &self,
        push: Push<'_>,
        claim: Option<Claim>,
    ) -> Result<(Answer, PushOutcome), PushError> {
        let Push {
            tenant,
            started,
            budget,
            ..
        } = push;
        let msg = &push.inbound.message;
        // Before the chain, whose plugins may write to the user at once.
        if tenant.api.has_secret() && opens_service_window(msg) {
            tenant.api.record_interaction(&msg.from_user).await;
        }
        let kept = if push.late == LateReplyMode::NextMessage && carries_kept_reply(msg) {
            self.late.take(tenant, &msg.from_user).await
        } else {
            None
        };
        let (scope, early_answer) = PushScope::new(started + budget);
        // Polled here, the chain runs in the push's span already; it takes the span along
        // only when it moves to a task of its own.
        let mut chain: Chain = Box::pin(contained(run_chain(
            Arc::clone(&self.registry),
            Arc::clone(tenant),
            Arc::clone(msg),
            scope.clone(),
        )));
        let first_poll = std::future::poll_fn(|cx| Poll::Ready(chain.as_mut().poll(cx))).await;
        if let Poll::Ready(result) = first_poll {
            if !scope.wrote_kv() && early_answer.is_empty() {
                let decided = decide(result, &scope);
                let decided = with_kept(&self.late, tenant, &msg.from_user, kept, decided).await;
                if let Some(claim) = claim {
                    claim.finish(&decided.answer).await;
                }
                return Ok((decided.answer, decided.outcome));
            }
            chain = Box::pin(std::future::ready(result));
        }
        let (answered, answer) = oneshot::channel();
        let driver = Driver {
            tenant: Arc::clone(tenant),
            to_user: msg.from_user.clone(),
            durable: Arc::clone(&self.durable),
            late: Arc::clone(&self.late),
            metrics: Arc::clone(&self.metrics),
            decision_deadline: started + budget,
            held_after: (push.late == LateReplyMode::HoldForRetry)
                .then_some(started + self.passive_budget),
            async_deadline: started + self.async_budget,
        };
        let held = Held {
            scope,
            early_answer,
            kept,
        };
        self.tasks
            .spawn(driver.drive(chain, held, claim, answered).in_current_span());
        // Dropping this wait (the client went away) leaves the driver to finish the push.
        answer.await.unwrap_or(Ok((None, PushOutcome::ChainFailed)))
    }
}

/// An opened push and how its tenant's late replies go.
#[derive(Clone, Copy)]
struct Push<'a> {
    tenant: &'a Arc<Tenant>,
    inbound: &'a wechat::push::Inbound,
    started: Instant,
    /// The tenant's late-reply mode in effect.
    late: LateReplyMode,
    /// When after `started` its answer is decided ([`LateReplyPolicy::decision_budget`]).
    budget: Duration,
}

/// Whether `msg` may carry a reply kept for its sender: a message, or an event of a user's
/// own doing that WeChat shows a passive reply to.
fn carries_kept_reply(msg: &Message) -> bool {
    match &msg.content {
        Content::Event(event) => matches!(
            event,
            Event::Subscribe { .. } | Event::Scan { .. } | Event::Click { .. }
        ),
        _ => !msg.from_user.is_empty(),
    }
}

/// Whether `msg` opens its sender's customer-service window, as WeChat counts interactions: a
/// message, a follow, a QR code scan, or a click or scan-code menu button.
fn opens_service_window(msg: &Message) -> bool {
    match &msg.content {
        Content::Event(event) => matches!(
            event,
            Event::Subscribe { .. }
                | Event::Scan { .. }
                | Event::Click { .. }
                | Event::ScanCode { .. }
        ),
        _ => !msg.from_user.is_empty(),
    }
}

/// `decided` with the reply `kept` for `user` ([`late_reply::merge`]); what does not fit is
/// kept for their next message in turn.
async fn with_kept(
    late: &LateReplies,
    tenant: &Tenant,
    user: &str,
    kept: Option<Reply>,
    decided: Decided,
) -> Decided {
    let Some(kept) = kept else {
        return decided;
    };
    let (answer, rest) = late_reply::merge(kept, &tenant.late_reply.note, decided.answer);
    if let Some(rest) = rest {
        late.keep(tenant, user, rest).await;
    }
    Decided {
        answer: Some(answer),
        outcome: decided.outcome,
    }
}

/// A plugin chain as the pipeline runs it: `None` when it panicked.
type Chain = Pin<Box<dyn Future<Output = Option<ChainResult>> + Send>>;

/// `chain` with a panic contained as a task would contain it: `None` (logged) instead of
/// unwinding into the request.
fn contained(
    chain: impl Future<Output = ChainResult> + Send + 'static,
) -> impl Future<Output = Option<ChainResult>> + Send {
    let mut chain = Box::pin(chain);
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| chain.as_mut().poll(cx))) {
            Ok(Poll::Ready(result)) => Poll::Ready(Some(result)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => {
                tracing::error!("plugin chain failed: it panicked");
                Poll::Ready(None)
            }
        }
    })
}

/// The answer decided for a push and how it came about.
struct Decided {
    answer: Answer,
    outcome: PushOutcome,
}

/// The answer of a chain that ended within the passive budget without an early reply.
fn decide(result: Option<ChainResult>, scope: &PushScope) -> Decided {
    let (answer, outcome) = match result {
        _ if scope.was_shed() => (None, PushOutcome::Shed),
        Some(ChainResult::Reply { reply, plugin }) => {
            tracing::Span::current().record("plugin", plugin.as_str());
            (Some(reply), PushOutcome::Reply)
        }
        Some(ChainResult::Handled) => (None, PushOutcome::Handled),
        Some(ChainResult::Unanswered) => (None, PushOutcome::Unanswered),
        None => (None, PushOutcome::ChainFailed),
    };
    Decided { answer, outcome }
}

/// What a push's own task needs to finish it without its request.
struct Driver {
    tenant: Arc<Tenant>,
    to_user: String,
    durable: Arc<dyn KvStore>,
    late: Arc<LateReplies>,
    metrics: Arc<Metrics>,
    /// When the answer is decided if the chain has not ended.
    decision_deadline: Instant,
    /// With `hold_for_retry`: the passive budget of the first attempt, after which an answer
    /// reaches WeChat only through a retry.
    held_after: Option<Instant>,
    async_deadline: Instant,
}

/// What the push's calls share with its driver.
struct Held {
    scope: PushScope,
    early_answer: oneshot::Receiver<Reply>,
    /// The reply kept for the user (`next_message`), answered with this push.
    kept: Option<Reply>,
}

/// What is left of a chain once its push is answered.
enum Rest {
    /// Nothing: its result was the answer.
    Nothing,
    /// It returned after an early reply: what it returned goes late.
    Returned(Option<ChainResult>),
    /// It is still running (past the budget, or after an early reply).
    Running(Chain),
}

impl Driver {
    /// Decides the answer (the chain's result, an early reply, or none at the decision
    /// deadline), makes the push's kv writes durable, records the answer in `claim` and hands
    /// it to `answered`; then lets the rest of the chain finish within the async budget and
    /// delivers what it returns late.
    async fn drive(
        self,
        mut chain: Chain,
        held: Held,
        mut claim: Option<Claim>,
        answered: oneshot::Sender<Result<(Answer, PushOutcome), PushError>>,
    ) {
        let Held {
            scope,
            mut early_answer,
            kept,
        } = held;
        let decision_deadline = tokio::time::Instant::from_std(self.decision_deadline);
        let (decided, rest) = tokio::select! {
            biased;
            result = &mut chain => match early_answer.try_recv() {
                // A plugin answered early, then returned: the early reply is the passive
                // one and what it returned goes late.
                Ok(reply) => (
                    Decided { answer: Some(reply), outcome: PushOutcome::EarlyReply },
                    Rest::Returned(result),
                ),
                Err(_) => (decide(result, &scope), Rest::Nothing),
            },
            Ok(reply) = &mut early_answer => (
                Decided { answer: Some(reply), outcome: PushOutcome::EarlyReply },
                Rest::Running(chain),
            ),
            () = tokio::time::sleep_until(decision_deadline) => {
                // Still waiting for a call slot: the tenant's own queue is too long (its calls
                // give up at this deadline too).
                let outcome = if scope.waiting_for_slot() || scope.was_shed() {
                    tracing::warn!("no call slot within the passive budget; shed, answering without a reply");
                    PushOutcome::Shed
                } else if self.held_after.is_some() {
                    tracing::warn!("still running at the last attempt's budget; answering without a reply");
                    PushOutcome::BudgetExhausted
                } else {
                    tracing::warn!("passive budget exhausted; answering without a reply");
                    PushOutcome::BudgetExhausted
                };
                (Decided { answer: None, outcome }, Rest::Running(chain))
            }
        };
        if decided.answer.is_some() && self.held_after.is_some_and(|after| Instant::now() > after) {
            // Decided after the first attempt's budget: a retry carries it.
            self.metrics.late_reply(&self.tenant.id, "held");
        }
        let decided = with_kept(&self.late, &self.tenant, &self.to_user, kept, decided).await;
        let mut durable = Ok(());
        if scope.wrote_kv() {
            // The fact that the push was answered goes with its writes, in the same commit.
            if let Some(claim) = &mut claim {
                claim.persist();
            }
            // What the chain wrote so far is durable before its answer leaves (writes after
            // it, by a chain still running, are made durable by the store's own commits).
            let sync = self.durable.sync();
            let deadline = decision_deadline.max(tokio::time::Instant::now() + SYNC_GRACE);
            match tokio::time::timeout_at(deadline, sync).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(
                        "plugin kv writes could not be made durable: {e}; answering 503"
                    );
                    durable = Err(PushError::StorageUnavailable);
                }
                Err(_) => {
                    tracing::error!(
                        "plugin kv writes not durable within the budget; answering 503"
                    );
                    durable = Err(PushError::StorageUnavailable);
                }
            }
        }
        if let Some(claim) = claim {
            claim.finish(&decided.answer).await;
        }
        // The request may be gone; the push is answered for its retries all the same, and
        // counted here, since no request is left to count it.
        let (outcome, kept) = (decided.outcome, durable.is_ok());
        if answered
            .send(durable.map(|()| (decided.answer, outcome)))
            .is_err()
            && kept
        {
            tracing::debug!(
                outcome = outcome.label(),
                "push answered after its client went away"
            );
            self.tenant.metrics.push(outcome);
        }
        self.finish_late(rest).await;
    }

    /// Lets what is left of the chain finish within the async budget and sends a reply it
    /// returns late, within the same budget.
    async fn finish_late(self, rest: Rest) {
        let deadline = tokio::time::Instant::from_std(self.async_deadline);
        let result = match rest {
            Rest::Nothing => return,
            Rest::Returned(result) => result,
            Rest::Running(chain) => match tokio::time::timeout_at(deadline, chain).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!("plugin chain still running at the async budget; dropped");
                    self.metrics.late_reply(&self.tenant.id, "dropped");
                    return;
                }
            },
        };
        if let Some(ChainResult::Reply { reply, plugin }) = result {
            let delivery = self
                .late
                .deliver(&self.tenant, &self.to_user, &plugin, reply);
            if tokio::time::timeout_at(deadline, delivery).await.is_err() {
                tracing::warn!("late reply still sending at the async budget; dropped");
                self.metrics.late_reply(&self.tenant.id, "dropped");
            }
        }
    }
}

/// How long kv writes may take to become durable when the chain ends at (or past) its budget.
const SYNC_GRACE: Duration = Duration::from_millis(300);

/// The longest a push can take from its arrival until its answer is decided and recorded: the
/// passive budget, the grace for making its kv writes durable, and a margin for recording the
/// answer. A shared dedup entry is leased for this long.
pub fn answer_lease(passive_budget: Duration) -> Duration {
    passive_budget + SYNC_GRACE + Duration::from_secs(1)
}

/// Runs the plugins in tenant order, skipping those whose rules do not fit; the first reply or
/// `handled` wins; a failing plugin is logged and the chain goes on.
async fn run_chain(
    registry: Arc<Registry>,
    tenant: Arc<Tenant>,
    msg: Arc<Message>,
    scope: PushScope,
) -> ChainResult {
    for entry in &tenant.chain {
        if !entry.matches(&msg) {
            continue;
        }
        let Some(plugin) = registry.get(&entry.plugin) else {
            tracing::warn!(plugin = %entry.plugin, "plugin not loaded; skipped");
            continue;
        };
        let report = registry
            .runtime()
            .call_with(&plugin, &entry.context, Some(&entry.warm), &msg, &scope)
            .await;
        let error = report.result.as_ref().err().map(|e| e.kind());
        entry.metrics.call(report.elapsed, report.fuel_used, error);
        match report.result {
            Ok(Outcome::Reply(reply)) => {
                return ChainResult::Reply {
                    reply,
                    plugin: entry.plugin.clone(),
                };
            }
            Ok(Outcome::Handled) => return ChainResult::Handled,
            Ok(Outcome::Pass) => {}
            // No slot for this tenant now: the next plugin would get none either.
            Err(e @ plugin::Error::Shed { .. }) => {
                tracing::warn!(plugin = %entry.plugin, "{e}");
                return ChainResult::Unanswered;
            }
            Err(e) => tracing::warn!(plugin = %entry.plugin, "{e}; trying the next plugin"),
        }
    }
    ChainResult::Unanswered
}
