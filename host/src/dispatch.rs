//! The push pipeline: tenant → verify, decrypt, parse → dedup → plugin chain under the passive
//! budget → encode (and encrypt). A chain still running when the budget ends is answered with
//! `success`/empty at once and may go on within the async budget; its reply is then handed to
//! late delivery. A plugin may also answer early (`early-reply`) and keep working; what it
//! returns afterwards is late too.

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
use crate::dedup::{self, Answer, Begin, DedupStore};
use crate::plugin::{EarlyReply, Outcome, Registry};
use crate::telemetry::{Metrics, PushOutcome};
use crate::tenant::{Tenant, TenantsHandle};
use crate::wechat::{self, CallbackQuery, Message, Reply, push::no_reply};
use crate::wechat_api::LateReplies;

/// Why a callback request was refused.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// No tenant has this id.
    #[error("unknown tenant")]
    UnknownTenant,
    /// The request failed verification, decryption or parsing.
    #[error(transparent)]
    Rejected(#[from] wechat::Error),
}

impl PushError {
    /// How the refusal is answered and counted, the one table of both: the sender's faults
    /// ([`wechat::Error::is_bad_request`]) are 4xx, this host's are 500.
    pub fn refusal(&self) -> Refusal {
        use wechat::Error as E;
        let (status, outcome) = match self {
            PushError::UnknownTenant => (StatusCode::NOT_FOUND, "unknown_tenant"),
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
            PushError::UnknownTenant => 0,
            PushError::Rejected(e) => e.code(),
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
    /// Retry deduplication.
    pub dedup: Arc<dyn DedupStore>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Late reply delivery.
    pub late: Arc<dyn LateReplies>,
    /// Time the chain has for a passive reply.
    pub passive_budget: Duration,
    /// Time a chain may go on for a late reply.
    pub async_budget: Duration,
    /// Chains still running past the passive budget (waited for at shutdown).
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
        let inbound = tenant.account.open(&query, body, unix_now())?;
        // The push's span starts once its message is known, with every field but the plugin
        // set at once: each later `record` costs a formatting pass in the log layer.
        let span = tracing::info_span!(
            "push",
            tenant = %tenant.id,
            msg_id = inbound.message.msg_id,
            msg_type = inbound.message.msg_type(),
            plugin = tracing::field::Empty,
        );
        Ok(self
            .respond(&tenant, &inbound, started)
            .instrument(span)
            .await)
    }

    /// Answers an opened push: dedup, the chain under the passive budget, and the encoded
    /// (and encrypted) answer.
    async fn respond(
        &self,
        tenant: &Arc<Tenant>,
        inbound: &wechat::push::Inbound,
        started: Instant,
    ) -> PushAnswer {
        let msg = &inbound.message;
        let (answer, outcome) = match dedup::key(&tenant.id, msg) {
            None => self.answer(tenant, msg, started).await,
            Some(key) => match self.dedup.begin(&key) {
                Begin::New(pending) => {
                    let (answer, outcome) = self.answer(tenant, msg, started).await;
                    pending.finish(&answer);
                    (answer, outcome)
                }
                Begin::Done(answer) => {
                    self.metrics.dedup_hit(&tenant.id, "done");
                    (answer, PushOutcome::RetryReplayed)
                }
                Begin::InFlight(receiver) => {
                    self.metrics.dedup_hit(&tenant.id, "in_flight");
                    let deadline = tokio::time::Instant::from_std(started + self.passive_budget);
                    match tokio::time::timeout_at(deadline, dedup::wait(receiver)).await {
                        Ok(Some(answer)) => {
                            (Arc::unwrap_or_clone(answer), PushOutcome::RetryWaited)
                        }
                        _ => (None, PushOutcome::RetryTimedOut),
                    }
                }
            },
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
            Ok(body) => PushAnswer {
                is_xml: answer.is_some(),
                body,
            },
            Err(e) => {
                tracing::error!("cannot encode the reply: {e}; answering without one");
                PushAnswer {
                    is_xml: false,
                    body: no_reply(inbound.encrypted).to_owned(),
                }
            }
        }
    }

    /// Runs the chain under the passive budget; returns the answer and the outcome label.
    ///
    /// The chain is polled once in place first: most chains finish there (a plugin that does
    /// not wait on I/O runs to its end in one poll), and then no task and no timer are needed.
    /// Only a chain that has to wait becomes a task of its own, raced against the budget, so
    /// that it can go on after the answer has been sent.
    async fn answer(
        &self,
        tenant: &Arc<Tenant>,
        msg: &Arc<Message>,
        started: Instant,
    ) -> (Answer, PushOutcome) {
        let (early, mut early_answer) = EarlyReply::channel();
        // Polled here, the chain runs in the push's span already; it takes the span along
        // only when it becomes a task of its own.
        let mut chain: Pin<Box<dyn Future<Output = ChainResult> + Send>> = Box::pin(run_chain(
            Arc::clone(&self.registry),
            Arc::clone(tenant),
            Arc::clone(msg),
            early,
        ));
        // A panic in the chain is contained as it is in a task of its own: the push is answered
        // without a reply.
        let first_poll = std::future::poll_fn(|cx| {
            Poll::Ready(std::panic::catch_unwind(AssertUnwindSafe(|| {
                chain.as_mut().poll(cx)
            })))
        })
        .await;
        match first_poll {
            Ok(Poll::Ready(result)) => {
                return self.finished(tenant, msg, result, &mut early_answer, started);
            }
            Ok(Poll::Pending) => {}
            Err(_) => {
                tracing::error!("plugin chain failed: it panicked");
                return (None, PushOutcome::ChainFailed);
            }
        }
        let mut chain = tokio::spawn(chain.in_current_span());
        let deadline = tokio::time::Instant::from_std(started + self.passive_budget);
        tokio::select! {
            biased;
            finished = &mut chain => match finished {
                Ok(result) => self.finished(tenant, msg, result, &mut early_answer, started),
                Err(join) => {
                    tracing::error!("plugin chain failed: {join}");
                    (None, PushOutcome::ChainFailed)
                }
            },
            Ok(reply) = &mut early_answer => {
                self.continue_late(Arc::clone(tenant), msg.from_user.clone(), chain, started);
                (Some(reply), PushOutcome::EarlyReply)
            }
            () = tokio::time::sleep_until(deadline) => {
                tracing::warn!(
                    budget_ms = self.passive_budget.as_millis() as u64,
                    "passive budget exhausted; answering without a reply"
                );
                self.continue_late(Arc::clone(tenant), msg.from_user.clone(), chain, started);
                (None, PushOutcome::BudgetExhausted)
            }
        }
    }

    /// The answer of a chain that finished within the passive budget.
    fn finished(
        &self,
        tenant: &Arc<Tenant>,
        msg: &Message,
        result: ChainResult,
        early_answer: &mut oneshot::Receiver<Reply>,
        started: Instant,
    ) -> (Answer, PushOutcome) {
        // A plugin answered early, then returned: the early reply is the passive one and what
        // it returned goes late.
        if let Ok(reply) = early_answer.try_recv() {
            let finished = tokio::spawn(std::future::ready(result));
            self.continue_late(Arc::clone(tenant), msg.from_user.clone(), finished, started);
            return (Some(reply), PushOutcome::EarlyReply);
        }
        match result {
            ChainResult::Reply { reply, plugin } => {
                tracing::Span::current().record("plugin", plugin.as_str());
                (Some(reply), PushOutcome::Reply)
            }
            ChainResult::Handled => (None, PushOutcome::Handled),
            ChainResult::Unanswered => (None, PushOutcome::Unanswered),
        }
    }

    /// Lets a chain that missed the passive budget (or answered early) finish within the async
    /// budget; a reply it then returns goes to late delivery, within the same budget.
    fn continue_late(
        &self,
        tenant: Arc<Tenant>,
        to_user: String,
        mut chain: tokio::task::JoinHandle<ChainResult>,
        started: Instant,
    ) {
        let late = Arc::clone(&self.late);
        let metrics = Arc::clone(&self.metrics);
        let deadline = tokio::time::Instant::from_std(started + self.async_budget);
        self.tasks.spawn(
            async move {
                match tokio::time::timeout_at(deadline, &mut chain).await {
                    Ok(Ok(ChainResult::Reply { reply, plugin })) => {
                        let delivery = late.deliver(&tenant.api, &to_user, &plugin, reply);
                        if tokio::time::timeout_at(deadline, delivery).await.is_err() {
                            tracing::warn!("late reply still sending at the async budget; dropped");
                            metrics.late_reply(&tenant.id, "dropped");
                        }
                    }
                    Ok(Ok(ChainResult::Handled | ChainResult::Unanswered)) | Ok(Err(_)) => {}
                    Err(_) => {
                        chain.abort();
                        tracing::warn!("plugin chain still running at the async budget; dropped");
                        metrics.late_reply(&tenant.id, "dropped");
                    }
                }
            }
            .in_current_span(),
        );
    }
}

/// Runs the plugins in tenant order, skipping those whose rules do not fit; the first reply or
/// `handled` wins; a failing plugin is logged and the chain goes on.
async fn run_chain(
    registry: Arc<Registry>,
    tenant: Arc<Tenant>,
    msg: Arc<Message>,
    early: EarlyReply,
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
            .call_with(
                &plugin,
                &entry.context,
                Some(&entry.warm),
                &msg,
                early.clone(),
            )
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
            Err(e) => tracing::warn!(plugin = %entry.plugin, "{e}; trying the next plugin"),
        }
    }
    ChainResult::Unanswered
}
