//! What a plugin call may see and use: its tenant's settings, kv store, limits and grants
//! (`CallContext`, with `ApiGrant` and `HttpGrant`), what the calls of one push share
//! (`PushScope`: the early-reply slot, whether kv was written), and `Caller`, the identity
//! every import of an instance acts for.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Instant;

use tokio::sync::oneshot;

use super::allow_list::HostPattern;
use super::limits::{Limits, TokenBucket};
use crate::http_client::AddressPolicy;
use crate::storage::{KvStore, Namespace};
use crate::telemetry::{LogDrops, Metrics};
use crate::wechat::Reply;
use crate::wechat_api::AccountApi;

/// What a call of a plugin for one tenant may see: its settings and its kv namespace.
#[derive(Clone)]
pub struct CallContext {
    /// The tenant id (also in the message envelope).
    pub tenant: String,
    /// The plugin's settings for this tenant.
    pub settings: Arc<serde_json::Map<String, serde_json::Value>>,
    /// The settings as one JSON object, serialised once.
    pub settings_json: Arc<str>,
    /// Where the plugin's kv data lives.
    pub kv: Arc<dyn KvStore>,
    /// This call's limits.
    pub limits: Limits,
    /// The `wechat-api` capability, when granted.
    pub api: Option<ApiGrant>,
    /// The `media` capability, when granted: the tenant's API.
    pub media: Option<AccountApi>,
    /// The `http` capability, when granted.
    pub http: Option<HttpGrant>,
    /// The log lines the chain entry may still write: its clones share it, so every call and
    /// every instance of the entry draw on one budget.
    pub log: Arc<LogBudget>,
    /// Which context this is: clones share it, every change of grants makes a new one.
    identity: u64,
}

/// The `wechat-api` capability as granted to one plugin in one tenant.
#[derive(Debug, Clone)]
pub struct ApiGrant {
    /// The tenant's API.
    pub api: AccountApi,
    /// The paths raw calls may use.
    pub paths: Arc<[String]>,
}

/// The `http` capability as granted to one plugin in one tenant.
#[derive(Debug, Clone)]
pub struct HttpGrant {
    /// The outbound client; it connects only to addresses `addresses` allows (built for it by
    /// `http_client::PluginClients`).
    pub client: reqwest::Client,
    /// The hosts the plugin may name.
    pub hosts: Arc<[HostPattern]>,
    /// The addresses its requests may connect to (public ones, and the non-public ones
    /// granted): checked by `client` after DNS, and on IP-literal URLs before sending.
    pub addresses: AddressPolicy,
    /// Where requests are counted.
    pub metrics: Arc<Metrics>,
}

/// A new [`CallContext`] identity.
fn next_identity() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl std::fmt::Debug for CallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("tenant", &self.tenant)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl CallContext {
    /// A context with `settings` (a JSON object) over `kv`.
    pub fn new(
        tenant: impl Into<String>,
        settings: serde_json::Map<String, serde_json::Value>,
        kv: Arc<dyn KvStore>,
        limits: Limits,
    ) -> Self {
        let settings_json = serde_json::Value::Object(settings.clone()).to_string();
        CallContext {
            tenant: tenant.into(),
            settings: Arc::new(settings),
            settings_json: settings_json.into(),
            kv,
            limits,
            api: None,
            media: None,
            http: None,
            log: Arc::new(LogBudget::new(&limits, LogDrops::default())),
            identity: next_identity(),
        }
    }

    /// Counts the log lines the entry drops in `drops` (its series of
    /// `wxhost_plugin_log_lines_dropped`), with a budget of its own from now on.
    pub fn with_log_drops(mut self, drops: LogDrops) -> Self {
        self.log = Arc::new(LogBudget::new(&self.limits, drops));
        self.identity = next_identity();
        self
    }

    /// Grants `wechat-api`.
    pub fn with_api(mut self, grant: ApiGrant) -> Self {
        self.api = Some(grant);
        self.identity = next_identity();
        self
    }

    /// Grants `media`.
    pub fn with_media(mut self, api: AccountApi) -> Self {
        self.media = Some(api);
        self.identity = next_identity();
        self
    }

    /// Grants `http`.
    pub fn with_http(mut self, grant: HttpGrant) -> Self {
        self.http = Some(grant);
        self.identity = next_identity();
        self
    }

    /// Whether `self` and `other` are (clones of) the same context with the same limits: only
    /// then may an instance made for one serve the other.
    pub fn same_as(&self, other: &CallContext) -> bool {
        self.identity == other.identity && self.limits == other.limits
    }
}

/// The log lines a chain entry may write across its calls: `log_lines_per_sec` with bursts of
/// `log_lines_burst`, shared by `log` lines and captured output lines; and the counts of the
/// lines it dropped, past a call's `log_lines` or past the rate.
#[derive(Debug)]
pub struct LogBudget {
    bucket: TokenBucket,
    drops: LogDrops,
    /// When the last note of dropped output was logged, in milliseconds since `created`
    /// (`u64::MAX`: never).
    noted_at: AtomicU64,
    created: Instant,
}

/// How often at most an entry's dropped output is noted in the log.
const NOTE_EVERY_MS: u64 = 1_000;

impl LogBudget {
    /// A full budget for `limits`, counting drops in `drops`.
    pub fn new(limits: &Limits, drops: LogDrops) -> Self {
        LogBudget {
            bucket: TokenBucket::new(limits.log_lines_per_sec, limits.log_lines_burst),
            drops,
            noted_at: AtomicU64::new(u64::MAX),
            created: Instant::now(),
        }
    }

    /// Whether one more line may be written now; one that may not is counted (`rate`).
    pub fn admit(&self) -> bool {
        let admitted = self.bucket.take();
        if !admitted {
            self.drops.rate(1);
        }
        admitted
    }

    /// Counts `n` lines dropped past a call's `log_lines`.
    pub fn dropped_past_cap(&self, n: u64) {
        self.drops.per_call_cap(n);
    }

    /// Lines dropped so far: past the per-call cap, and past the rate.
    pub fn dropped(&self) -> (u64, u64) {
        self.drops.counts()
    }

    /// Whether a note of dropped output may be logged now (once a second at most, so that a
    /// flooding plugin does not flood the log with notes instead).
    pub fn note_due(&self) -> bool {
        let now = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let last = self.noted_at.load(Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= NOTE_EVERY_MS;
        due && self
            .noted_at
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

/// What the calls of one push share: the early-reply slot, and whether any of them wrote kv
/// (a push that did is answered only once its writes are durable).
#[derive(Debug, Clone, Default)]
pub struct PushScope {
    /// Where an early reply goes.
    pub early: EarlyReply,
    /// Until when a call may wait for a slot (the push's passive deadline); `None`: as long as
    /// the call's own deadline.
    pub slot_deadline: Option<Instant>,
    flags: Arc<ScopeFlags>,
}

/// What the calls of a push report to the pipeline while they run.
#[derive(Debug, Default)]
struct ScopeFlags {
    kv_written: AtomicBool,
    waiting_for_slot: AtomicBool,
    shed: AtomicBool,
}

impl PushScope {
    /// A scope whose calls wait for a slot until `slot_deadline` at most, and whose early reply
    /// arrives on the returned receiver.
    pub fn new(slot_deadline: Instant) -> (Self, oneshot::Receiver<Reply>) {
        let (early, receiver) = EarlyReply::channel();
        let scope = PushScope {
            early,
            slot_deadline: Some(slot_deadline),
            flags: Arc::default(),
        };
        (scope, receiver)
    }

    /// Whether a call of this push is waiting for a slot now.
    pub fn waiting_for_slot(&self) -> bool {
        self.flags.waiting_for_slot.load(Ordering::Acquire)
    }

    /// Whether a call of this push got no slot (its tenant's queue was full, or it waited past
    /// the deadline).
    pub fn was_shed(&self) -> bool {
        self.flags.shed.load(Ordering::Acquire)
    }

    pub(super) fn set_waiting_for_slot(&self, waiting: bool) {
        self.flags
            .waiting_for_slot
            .store(waiting, Ordering::Release);
    }

    pub(super) fn mark_shed(&self) {
        self.flags.shed.store(true, Ordering::Release);
    }

    /// Whether a call of this push has written kv (set, delete or increment) so far.
    pub fn wrote_kv(&self) -> bool {
        self.flags.kv_written.load(Ordering::Acquire)
    }

    /// Records that a call of this push wrote kv.
    pub(super) fn mark_kv_written(&self) {
        self.flags.kv_written.store(true, Ordering::Release);
    }
}

/// The early answer of one push, shared by the calls of its chain: the first plugin to send
/// one answers WeChat.
#[derive(Debug, Clone, Default)]
pub struct EarlyReply(Arc<Mutex<Option<oneshot::Sender<Reply>>>>);

impl EarlyReply {
    /// A slot whose reply arrives on the returned receiver.
    pub fn channel() -> (Self, oneshot::Receiver<Reply>) {
        let (sender, receiver) = oneshot::channel();
        (EarlyReply(Arc::new(Mutex::new(Some(sender)))), receiver)
    }

    /// Hands `reply` over as the passive answer.
    pub(super) fn send(&self, reply: Reply) -> Result<(), String> {
        let sender = match self.0.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let Some(sender) = sender else {
            return Err("this message was already answered".into());
        };
        sender.send(reply).map_err(|_| {
            "WeChat has been answered already (the passive budget ran out); return the reply \
             instead and it is sent as a customer-service message"
                .to_owned()
        })
    }
}

/// Who an instance's imports act for, fixed for the instance's life: the plugin, the context it
/// was made for, and that plugin's kv namespace in the tenant.
#[derive(Debug)]
pub struct Caller {
    /// The plugin's name.
    pub plugin: Arc<str>,
    /// The context the instance serves.
    pub ctx: CallContext,
    /// The plugin's kv namespace in the tenant.
    pub namespace: Namespace,
}

impl Caller {
    /// The caller `plugin` in `ctx`.
    pub fn new(plugin: Arc<str>, ctx: CallContext) -> Arc<Self> {
        Arc::new(Caller {
            namespace: Namespace::new(ctx.tenant.clone(), plugin.to_string()),
            plugin,
            ctx,
        })
    }

    /// The tenant id.
    pub fn tenant(&self) -> &str {
        &self.ctx.tenant
    }

    /// The call's limits.
    pub fn limits(&self) -> &Limits {
        &self.ctx.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryKv;

    #[test]
    fn the_clones_of_a_context_share_one_log_budget() {
        let limits = Limits {
            log_lines_per_sec: 1,
            log_lines_burst: 3,
            ..Limits::default()
        };
        let ctx = CallContext::new(
            "t",
            Default::default(),
            Arc::new(MemoryKv::default()),
            limits,
        );
        let clone = ctx.clone();
        assert!(ctx.log.admit() && clone.log.admit() && ctx.log.admit());
        assert!(!clone.log.admit(), "the burst is spent, by both");
        assert_eq!(ctx.log.dropped(), (0, 1));
        let other = CallContext::new(
            "t",
            Default::default(),
            Arc::new(MemoryKv::default()),
            limits,
        );
        assert!(other.log.admit(), "another entry has a budget of its own");
        let counted = ctx.with_log_drops(LogDrops::default());
        assert!(counted.log.admit(), "and so does one counted elsewhere");
        assert!(!counted.same_as(&clone));
    }

    #[test]
    fn dropped_output_is_noted_once_a_second_at_most() {
        let mut budget = LogBudget::new(&Limits::default(), LogDrops::default());
        budget.created = Instant::now()
            .checked_sub(std::time::Duration::from_secs(10))
            .expect("the monotonic clock is past 10 s");
        assert!(budget.note_due());
        assert!(!budget.note_due(), "noted just now");
        let noted = budget.noted_at.load(Ordering::Relaxed);
        budget
            .noted_at
            .store(noted - NOTE_EVERY_MS + 50, Ordering::Relaxed);
        assert!(!budget.note_due(), "noted 950 ms ago");
        budget
            .noted_at
            .store(noted - NOTE_EVERY_MS, Ordering::Relaxed);
        assert!(budget.note_due(), "a second ago");
    }
}
