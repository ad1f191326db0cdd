//! Logging setup and the Prometheus metrics the server exports on `/metrics`.
//!
//! Labels carry tenant ids, plugin names and outcome kinds only: never secrets, never content.

use std::io::IsTerminal as _;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Initialises `tracing` for the binary: `RUST_LOG` or `info`, to stderr, in colour only on a
/// terminal (a log file gets no escape codes, and every push's span is formatted without them).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantOutcome {
    tenant: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantCalls {
    tenant: String,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantPlugin {
    tenant: String,
    plugin: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiCall {
    tenant: String,
    api: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginError {
    tenant: String,
    plugin: String,
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StorageOp {
    op: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TimeoutKind {
    kind: &'static str,
}

/// Which HTTP timer closed a connection or cut a request (the `kind` of `wxhost_http_timeouts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpTimeout {
    /// A request head (or a new connection's first one) did not arrive in time.
    Header,
    /// A request body did not arrive in time (answered 408).
    Body,
    /// A kept-alive connection had no new request in time.
    Idle,
}

impl HttpTimeout {
    const ALL: [HttpTimeout; 3] = [HttpTimeout::Header, HttpTimeout::Body, HttpTimeout::Idle];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            HttpTimeout::Header => "header",
            HttpTimeout::Body => "body",
            HttpTimeout::Idle => "idle",
        }
    }
}

/// The HTTP listener's metrics, resolved once (see [`Metrics::http`]).
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    open: Gauge,
    refused: Counter,
    accept_errors: Counter,
    /// One counter per [`HttpTimeout`], indexed by its discriminant.
    timeouts: [Counter; HttpTimeout::ALL.len()],
}

impl HttpMetrics {
    /// A connection was accepted.
    pub fn opened(&self) {
        self.open.inc();
    }

    /// An accepted connection was closed.
    pub fn closed(&self) {
        self.open.dec();
    }

    /// A connection was closed at once because the cap was reached.
    pub fn refused(&self) {
        self.refused.inc();
    }

    /// An accept failed (for instance out of file descriptors).
    pub fn accept_error(&self) {
        self.accept_errors.inc();
    }

    /// A timer of `kind` fired.
    pub fn timed_out(&self, kind: HttpTimeout) {
        self.timeouts[kind as usize].inc();
    }
}

/// What plugin storage did since the last report, and its state now (see [`Metrics::storage`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StorageReport {
    /// Durable commits.
    pub commits: u64,
    /// Writes they made durable.
    pub committed_writes: u64,
    /// Time spent in them, fsync included.
    pub commit_seconds: f64,
    /// Commits (or purges) that failed.
    pub failed_commits: u64,
    /// Writes refused because the store could not commit.
    pub refused_writes: u64,
    /// Expired entries and facts forgotten.
    pub purged: u64,
    /// Writes accepted and not yet durable, now.
    pub pending: u64,
    /// Whether the store cannot commit now.
    pub failing: bool,
}

/// Adds one to the `(tenant, outcome)` series of `family`.
fn count(family: &Family<TenantOutcome, Counter>, tenant: &str, outcome: &str) {
    family
        .get_or_create(&TenantOutcome {
            tenant: tenant.to_owned(),
            outcome: outcome.to_owned(),
        })
        .inc();
}

fn latency_histogram() -> Histogram {
    // 100 µs … ~6.5 s
    Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
}

/// Every metric of the server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<TenantOutcome, Counter>,
    plugin_seconds: Family<TenantPlugin, Histogram>,
    plugin_fuel: Family<TenantPlugin, Counter>,
    plugin_errors: Family<PluginError, Counter>,
    dedup_hits: Family<TenantOutcome, Counter>,
    dedup_evictions: Family<Reason, Counter>,
    log_lines_dropped: Family<PluginDrop, Counter>,
    late_replies: Family<TenantOutcome, Counter>,
    late_reply_fallbacks: Family<TenantOutcome, Gauge>,
    token_fetches: Family<TenantOutcome, Counter>,
    media_uploads: Family<TenantOutcome, Counter>,
    api_calls: Family<ApiCall, Counter>,
    http_requests: Family<PluginError, Counter>,
    storage_commits: Counter,
    storage_committed_writes: Counter,
    storage_commit_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    storage_errors: Family<StorageOp, Counter>,
    storage_purged: Counter,
    storage_pending: Gauge,
    storage_failing: Gauge,
    redis_commands: Counter,
    redis_errors: Counter,
    redis_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    redis_fallbacks: Counter,
    call_slots: Family<TenantCalls, Gauge>,
    http: HttpMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<TenantOutcome, Counter>::default();
        registry.register(
            "wxhost_requests",
            "Callback requests by tenant and outcome",
            requests.clone(),
        );
        let plugin_seconds = Family::<TenantPlugin, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "wxhost_plugin_duration_seconds",
            "Plugin call latency, including waiting for a slot",
            plugin_seconds.clone(),
        );
        let plugin_fuel = Family::<TenantPlugin, Counter>::default();
        registry.register(
            "wxhost_plugin_fuel",
            "Fuel consumed by plugin calls",
            plugin_fuel.clone(),
        );
        let plugin_errors = Family::<PluginError, Counter>::default();
        registry.register(
            "wxhost_plugin_errors",
            "Plugin calls that failed, by kind (timeout, out_of_fuel, memory_limit, trap, …)",
            plugin_errors.clone(),
        );
        let dedup_hits = Family::<TenantOutcome, Counter>::default();
        registry.register(
            "wxhost_dedup_hits",
            "Retries answered from the dedup table (outcome: done or in_flight)",
            dedup_hits.clone(),
        );
        let dedup_evictions = Family::<Reason, Counter>::default();
        registry.register(
            "wxhost_dedup_evictions",
            "Dedup entries given up early to keep the table within its bounds (reason: \
             answer_bytes, an answer dropped and its retries answered without a reply, never \
             run again; entries, the oldest entry forgotten)",
            dedup_evictions.clone(),
        );
        let log_lines_dropped = Family::<PluginDrop, Counter>::default();
        registry.register(
            "wxhost_plugin_log_lines_dropped",
            "Plugin log lines not written (reason: per_call_cap, past the call's log_lines; \
             rate, past the chain entry's log_lines_per_sec)",
            log_lines_dropped.clone(),
        );
        let late_replies = Family::<TenantOutcome, Counter>::default();
        registry.register(
            "wxhost_late_replies",
            "Replies produced after the passive budget (outcome: sent, failed, dropped, kept for \
             the user's next message, delivered with it, held for WeChat's retries)",
            late_replies.clone(),
        );
        let late_reply_fallbacks = Family::<TenantOutcome, Gauge>::default();
        registry.register(
            "wxhost_late_reply_fallback",
            "1 for a tenant whose customer-service late replies WeChat refused (48001), with \
             the fallback they take on this node (outcome)",
            late_reply_fallbacks.clone(),
        );
        let token_fetches = Family::<TenantOutcome, Counter>::default();
        registry.register(
            "wxhost_access_token_fetches",
            "Access token fetches from WeChat (outcome: ok, or the error kind)",
            token_fetches.clone(),
        );
        let media_uploads = Family::<TenantOutcome, Counter>::default();
        registry.register(
            "wxhost_media_uploads",
            "Temporary media uploads plugins asked for (outcome: cached, the media id of the same \
             bytes reused; uploaded; or the error kind)",
            media_uploads.clone(),
        );
        let api_calls = Family::<ApiCall, Counter>::default();
        registry.register(
            "wxhost_wechat_api_calls",
            "WeChat API requests by path (outcome: ok, or the error kind such as errcode_45015)",
            api_calls.clone(),
        );
        let http_requests = Family::<PluginError, Counter>::default();
        registry.register(
            "wxhost_plugin_http_requests",
            "Outbound HTTP requests of plugins (kind: sent, denied, or the failure)",
            http_requests.clone(),
        );
        let storage_commits = Counter::default();
        registry.register(
            "wxhost_storage_commits",
            "Durable group commits of plugin storage (each one fsync for every write pending)",
            storage_commits.clone(),
        );
        let storage_committed_writes = Counter::default();
        registry.register(
            "wxhost_storage_committed_writes",
            "Writes (kv entries, facts, marks) made durable by those commits",
            storage_committed_writes.clone(),
        );
        let storage_commit_seconds = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "wxhost_storage_commit_seconds",
            "Time spent in durable commits, fsync included (divide by the commits for the mean)",
            storage_commit_seconds.clone(),
        );
        let storage_errors = Family::<StorageOp, Counter>::default();
        registry.register(
            "wxhost_storage_errors",
            "Plugin storage failures (op: commit, a commit or purge that failed; write, a write \
             refused while the store cannot commit)",
            storage_errors.clone(),
        );
        let storage_purged = Counter::default();
        registry.register(
            "wxhost_storage_purged",
            "Expired kv entries and facts forgotten",
            storage_purged.clone(),
        );
        let redis_commands = Counter::default();
        registry.register(
            "wxhost_redis_commands",
            "Commands sent to the shared Redis store (a script counts once)",
            redis_commands.clone(),
        );
        let redis_errors = Counter::default();
        registry.register(
            "wxhost_redis_errors",
            "Redis commands that failed or timed out",
            redis_errors.clone(),
        );
        let redis_seconds = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "wxhost_redis_command_seconds",
            "Time spent waiting for Redis answers (divide by wxhost_redis_commands_total for the mean)",
            redis_seconds.clone(),
        );
        let redis_fallbacks = Counter::default();
        registry.register(
            "wxhost_redis_local_fallbacks",
            "Pushes admitted on this node alone (signature binding and dedup) because Redis did not answer",
            redis_fallbacks.clone(),
        );
        let storage_pending = Gauge::default();
        registry.register(
            "wxhost_storage_pending_writes",
            "Writes accepted and not yet durable",
            storage_pending.clone(),
        );
        let storage_failing = Gauge::default();
        registry.register(
            "wxhost_storage_failing",
            "1 while plugin storage cannot commit (writes are refused and the pending ones retried)",
            storage_failing.clone(),
        );
        let call_slots = Family::<TenantCalls, Gauge>::default();
        registry.register(
            "wxhost_tenant_calls",
            "Plugin calls of each tenant holding a call slot (state=in_flight) and waiting in its queue (state=queued), sampled every second",
            call_slots.clone(),
        );
        let timeouts = Family::<TimeoutKind, Counter>::default();
        registry.register(
            "wxhost_http_timeouts",
            "HTTP timers that fired (kind: header, a request head late, the connection closed; \
             body, a request body late, answered 408; idle, a kept-alive connection closed)",
            timeouts.clone(),
        );
        let http = HttpMetrics {
            open: Gauge::default(),
            refused: Counter::default(),
            accept_errors: Counter::default(),
            timeouts: HttpTimeout::ALL.map(|kind| {
                timeouts
                    .get_or_create(&TimeoutKind { kind: kind.label() })
                    .clone()
            }),
        };
        registry.register(
            "wxhost_http_connections",
            "HTTP connections open",
            http.open.clone(),
        );
        registry.register(
            "wxhost_http_connections_refused",
            "Connections closed as soon as accepted because [http] max_connections were open",
            http.refused.clone(),
        );
        registry.register(
            "wxhost_http_accept_errors",
            "Failed accepts (such as EMFILE, out of file descriptors), each followed by a pause",
            http.accept_errors.clone(),
        );
        Metrics {
            registry,
            http,
            call_slots,
            storage_commits,
            storage_committed_writes,
            storage_commit_seconds,
            storage_errors,
            storage_purged,
            storage_pending,
            storage_failing,
            redis_commands,
            redis_errors,
            redis_seconds,
            redis_fallbacks,
            token_fetches,
            media_uploads,
            api_calls,
            http_requests,
            requests,
            plugin_seconds,
            plugin_fuel,
            plugin_errors,
            dedup_hits,
            dedup_evictions,
            log_lines_dropped,
            late_replies,
            late_reply_fallbacks,
        }
    }
}

/// One chain entry's plugin metrics (see [`Metrics::plugin`]).
#[derive(Debug, Clone)]
pub struct PluginMetrics {
    seconds: Histogram,
    fuel: Counter,
    errors: Family<PluginError, Counter>,
    labels: TenantPlugin,
}

impl PluginMetrics {
    /// Records one call: its latency, its fuel, and its error kind if it failed.
    pub fn call(&self, elapsed: Duration, fuel: u64, error: Option<&str>) {
        self.seconds.observe(elapsed.as_secs_f64());
        self.fuel.inc_by(fuel);
        if let Some(kind) = error {
            self.errors
                .get_or_create(&PluginError {
                    tenant: self.labels.tenant.clone(),
                    plugin: self.labels.plugin.clone(),
                    kind: kind.to_owned(),
                })
                .inc();
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginDrop {
    tenant: String,
    plugin: String,
    reason: &'static str,
}

/// The dedup table's eviction counters (see [`Metrics::dedup_evictions`]); a default one counts
/// without being exported.
#[derive(Debug, Clone, Default)]
pub struct DedupEvictions {
    answers: Counter,
    entries: Counter,
}

impl DedupEvictions {
    /// An answer was dropped before its TTL (the table's answer bytes were at their bound).
    pub fn answer_dropped(&self) {
        self.answers.inc();
    }

    /// An entry was forgotten before its TTL (the table's entries were at their bound).
    pub fn entry_evicted(&self) {
        self.entries.inc();
    }

    /// Answers dropped and entries forgotten so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.answers.get(), self.entries.get())
    }
}

/// One chain entry's counters of dropped log lines (see [`Metrics::log_drops`]); a default one
/// counts without being exported.
#[derive(Debug, Clone, Default)]
pub struct LogDrops {
    per_call_cap: Counter,
    rate: Counter,
}

impl LogDrops {
    /// Counts `n` lines dropped past the call's cap.
    pub fn per_call_cap(&self, n: u64) {
        self.per_call_cap.inc_by(n);
    }

    /// Counts `n` lines dropped past the entry's rate.
    pub fn rate(&self, n: u64) {
        self.rate.inc_by(n);
    }

    /// Lines dropped so far past the per-call cap and past the rate.
    pub fn counts(&self) -> (u64, u64) {
        (self.per_call_cap.get(), self.rate.get())
    }
}

/// How an opened push was answered: the `outcome` label of `wxhost_requests` (refusals count
/// with labels of their own through [`Metrics::request`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// A plugin replied.
    Reply,
    /// A plugin handled the message without a passive reply.
    Handled,
    /// No plugin replied or handled it.
    Unanswered,
    /// A plugin's early reply was the answer.
    EarlyReply,
    /// The passive budget ran out first.
    BudgetExhausted,
    /// The chain panicked.
    ChainFailed,
    /// A retry of an answered message got its first answer.
    RetryReplayed,
    /// A retry waited for the first attempt's answer.
    RetryWaited,
    /// A retry waited, and the first attempt did not answer within the budget.
    RetryTimedOut,
    /// A replay of a push answered before (past the retry TTL, inside its window): answered
    /// without a reply, nothing run.
    ReplayIgnored,
    /// Its tenant had no call slot for it within the passive budget (or its queue was full):
    /// answered without a reply, not run.
    Shed,
}

impl PushOutcome {
    /// Every outcome, in declaration order (the index of each is its discriminant).
    const ALL: [PushOutcome; 11] = [
        PushOutcome::Reply,
        PushOutcome::Handled,
        PushOutcome::Unanswered,
        PushOutcome::EarlyReply,
        PushOutcome::BudgetExhausted,
        PushOutcome::ChainFailed,
        PushOutcome::RetryReplayed,
        PushOutcome::RetryWaited,
        PushOutcome::RetryTimedOut,
        PushOutcome::ReplayIgnored,
        PushOutcome::Shed,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            PushOutcome::Reply => "reply",
            PushOutcome::Handled => "handled",
            PushOutcome::Unanswered => "unanswered",
            PushOutcome::EarlyReply => "early_reply",
            PushOutcome::BudgetExhausted => "budget_exhausted",
            PushOutcome::ChainFailed => "chain_failed",
            PushOutcome::RetryReplayed => "retry_replayed",
            PushOutcome::RetryWaited => "retry_waited",
            PushOutcome::RetryTimedOut => "retry_timed_out",
            PushOutcome::ReplayIgnored => "replay_ignored",
            PushOutcome::Shed => "shed",
        }
    }
}

/// A tenant's push counters (see [`Metrics::tenant`]).
#[derive(Debug, Clone)]
pub struct TenantMetrics {
    /// One counter per [`PushOutcome`], indexed by its discriminant.
    pushes: [Counter; PushOutcome::ALL.len()],
}

impl TenantMetrics {
    /// Counts a push answered as `outcome`.
    pub fn push(&self, outcome: PushOutcome) {
        self.pushes[outcome as usize].inc();
    }
}

impl Metrics {
    /// Counts a request of `tenant` that ended as `outcome`.
    pub fn request(&self, tenant: &str, outcome: &str) {
        count(&self.requests, tenant, outcome);
    }

    /// The push counters of `tenant`, resolved once so counting a push allocates and looks up
    /// nothing. Every outcome's series exists from then on, at 0 until it happens.
    pub fn tenant(&self, tenant: &str) -> TenantMetrics {
        TenantMetrics {
            pushes: PushOutcome::ALL.map(|outcome| {
                self.requests
                    .get_or_create(&TenantOutcome {
                        tenant: tenant.to_owned(),
                        outcome: outcome.label().to_owned(),
                    })
                    .clone()
            }),
        }
    }

    /// The metrics of `plugin` in `tenant`'s chain, resolved once so recording a call looks
    /// nothing up.
    pub fn plugin(&self, tenant: &str, plugin: &str) -> PluginMetrics {
        let labels = TenantPlugin {
            tenant: tenant.to_owned(),
            plugin: plugin.to_owned(),
        };
        PluginMetrics {
            seconds: self.plugin_seconds.get_or_create(&labels).clone(),
            fuel: self.plugin_fuel.get_or_create(&labels).clone(),
            errors: self.plugin_errors.clone(),
            labels,
        }
    }

    /// Sets `tenant`'s calls holding a slot and waiting for one.
    pub fn tenant_calls(&self, tenant: &str, in_flight: usize, queued: usize) {
        for (state, value) in [("in_flight", in_flight), ("queued", queued)] {
            self.call_slots
                .get_or_create(&TenantCalls {
                    tenant: tenant.to_owned(),
                    state,
                })
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
    }

    /// The HTTP listener's metrics.
    pub fn http(&self) -> HttpMetrics {
        self.http.clone()
    }

    /// Counts a retry answered from the dedup table.
    pub fn dedup_hit(&self, tenant: &str, state: &str) {
        count(&self.dedup_hits, tenant, state);
    }

    /// The dedup table's eviction counters (`wxhost_dedup_evictions{reason}`).
    pub fn dedup_evictions(&self) -> DedupEvictions {
        let get = |reason| {
            self.dedup_evictions
                .get_or_create(&Reason { reason })
                .clone()
        };
        DedupEvictions {
            answers: get("answer_bytes"),
            entries: get("entries"),
        }
    }

    /// The counters of log lines dropped for `plugin` in `tenant`'s chain
    /// (`wxhost_plugin_log_lines_dropped{tenant,plugin,reason}`), resolved once.
    pub fn log_drops(&self, tenant: &str, plugin: &str) -> LogDrops {
        let get = |reason| {
            self.log_lines_dropped
                .get_or_create(&PluginDrop {
                    tenant: tenant.to_owned(),
                    plugin: plugin.to_owned(),
                    reason,
                })
                .clone()
        };
        LogDrops {
            per_call_cap: get("per_call_cap"),
            rate: get("rate"),
        }
    }

    /// Counts a late reply and what became of it.
    pub fn late_reply(&self, tenant: &str, outcome: &str) {
        count(&self.late_replies, tenant, outcome);
    }

    /// Shows that `tenant`'s late replies now take `fallback`.
    pub fn late_reply_fallback(&self, tenant: &str, fallback: &str) {
        self.late_reply_fallbacks
            .get_or_create(&TenantOutcome {
                tenant: tenant.to_owned(),
                outcome: fallback.to_owned(),
            })
            .set(1);
    }

    /// Counts an access token fetch of `tenant`.
    pub fn token_fetch(&self, tenant: &str, outcome: &str) {
        count(&self.token_fetches, tenant, outcome);
    }

    /// Counts a temporary media upload a plugin of `tenant` asked for.
    pub fn media_upload(&self, tenant: &str, outcome: &str) {
        count(&self.media_uploads, tenant, outcome);
    }

    /// Counts a WeChat API request to `api` (a path) of `tenant`.
    pub fn api_call(&self, tenant: &str, api: &str, outcome: &str) {
        self.api_calls
            .get_or_create(&ApiCall {
                tenant: tenant.to_owned(),
                api: api.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts an outbound HTTP request of `plugin` in `tenant`.
    pub fn http_request(&self, tenant: &str, plugin: &str, kind: &str) {
        self.http_requests
            .get_or_create(&PluginError {
                tenant: tenant.to_owned(),
                plugin: plugin.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Records what plugin storage did since the last report.
    pub fn storage(&self, report: &StorageReport) {
        self.storage_commits.inc_by(report.commits);
        self.storage_committed_writes
            .inc_by(report.committed_writes);
        self.storage_commit_seconds.inc_by(report.commit_seconds);
        self.storage_purged.inc_by(report.purged);
        if report.failed_commits > 0 {
            self.storage_error("commit", report.failed_commits);
        }
        if report.refused_writes > 0 {
            self.storage_error("write", report.refused_writes);
        }
        self.storage_pending
            .set(i64::try_from(report.pending).unwrap_or(i64::MAX));
        self.storage_failing.set(i64::from(report.failing));
    }

    /// Adds what the Redis store did since the last report: commands, failed ones, and the
    /// time spent waiting for them.
    pub fn redis(&self, commands: u64, errors: u64, seconds: f64) {
        self.redis_commands.inc_by(commands);
        self.redis_errors.inc_by(errors);
        self.redis_seconds.inc_by(seconds);
    }

    /// Counts a push admitted on this node alone, Redis not answering.
    pub fn redis_fallback(&self) {
        self.redis_fallbacks.inc();
    }

    /// Counts `n` plugin storage failures of `op` (`storage` counts commits and refused
    /// writes; a caller that sees a failure of its own, such as a sync, names it).
    pub fn storage_error(&self, op: &str, n: u64) {
        self.storage_errors
            .get_or_create(&StorageOp { op: op.to_owned() })
            .inc_by(n);
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_counts_in_its_own_series() {
        for (index, outcome) in PushOutcome::ALL.into_iter().enumerate() {
            assert_eq!(outcome as usize, index, "ALL is in declaration order");
        }
        let metrics = Metrics::default();
        let tenant = metrics.tenant("shop");
        tenant.push(PushOutcome::Reply);
        tenant.push(PushOutcome::Reply);
        tenant.push(PushOutcome::RetryTimedOut);
        // Resolving the tenant again (a config reload) keeps counting in the same series.
        metrics.tenant("shop").push(PushOutcome::Reply);
        let text = metrics.encode();
        assert!(text.contains(r#"wxhost_requests_total{tenant="shop",outcome="reply"} 3"#));
        assert!(
            text.contains(r#"wxhost_requests_total{tenant="shop",outcome="retry_timed_out"} 1"#)
        );
        assert!(text.contains(r#"wxhost_requests_total{tenant="shop",outcome="handled"} 0"#));
    }

    #[test]
    fn http_metrics_count_in_their_series() {
        let metrics = Metrics::default();
        let http = metrics.http();
        http.opened();
        http.opened();
        http.closed();
        http.refused();
        http.accept_error();
        http.timed_out(HttpTimeout::Body);
        metrics.http().timed_out(HttpTimeout::Body);
        let text = metrics.encode();
        for line in [
            "wxhost_http_connections 1",
            "wxhost_http_connections_refused_total 1",
            "wxhost_http_accept_errors_total 1",
            r#"wxhost_http_timeouts_total{kind="body"} 2"#,
            r#"wxhost_http_timeouts_total{kind="header"} 0"#,
            r#"wxhost_http_timeouts_total{kind="idle"} 0"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }

    #[test]
    fn dedup_evictions_and_dropped_log_lines_count_in_their_series() {
        let metrics = Metrics::default();
        let evictions = metrics.dedup_evictions();
        evictions.answer_dropped();
        evictions.answer_dropped();
        metrics.dedup_evictions().entry_evicted();
        assert_eq!(evictions.counts(), (2, 1));
        let drops = metrics.log_drops("shop", "echo");
        drops.per_call_cap(3);
        metrics.log_drops("shop", "echo").rate(5);
        metrics.log_drops("shop", "other").rate(1);
        assert_eq!(drops.counts(), (3, 5));
        let text = metrics.encode();
        for line in [
            r#"wxhost_dedup_evictions_total{reason="answer_bytes"} 2"#,
            r#"wxhost_dedup_evictions_total{reason="entries"} 1"#,
            r#"wxhost_plugin_log_lines_dropped_total{tenant="shop",plugin="echo",reason="per_call_cap"} 3"#,
            r#"wxhost_plugin_log_lines_dropped_total{tenant="shop",plugin="echo",reason="rate"} 5"#,
            r#"wxhost_plugin_log_lines_dropped_total{tenant="shop",plugin="other",reason="rate"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        // A default handle counts on its own, exported nowhere.
        let alone = LogDrops::default();
        alone.rate(2);
        assert_eq!(alone.counts(), (0, 2));
    }

    #[test]
    fn storage_reports_add_up() {
        let metrics = Metrics::default();
        let report = StorageReport {
            commits: 2,
            committed_writes: 5,
            commit_seconds: 0.25,
            failed_commits: 1,
            refused_writes: 3,
            purged: 4,
            pending: 7,
            failing: true,
        };
        metrics.storage(&report);
        metrics.storage(&StorageReport {
            commits: 1,
            pending: 0,
            failing: false,
            ..StorageReport::default()
        });
        metrics.storage_error("flush", 1);
        let text = metrics.encode();
        for line in [
            "wxhost_storage_commits_total 3",
            "wxhost_storage_committed_writes_total 5",
            "wxhost_storage_commit_seconds_total 0.25",
            r#"wxhost_storage_errors_total{op="commit"} 1"#,
            r#"wxhost_storage_errors_total{op="write"} 3"#,
            r#"wxhost_storage_errors_total{op="flush"} 1"#,
            "wxhost_storage_purged_total 4",
            "wxhost_storage_pending_writes 0",
            "wxhost_storage_failing 0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
