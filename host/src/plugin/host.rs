//! The state of one plugin call (its `Store` data) and the host side of the WIT imports
//! every plugin has: `log`, `config` and `kv`, each enforcing the call's caps. The granted
//! imports live in `capabilities` and `outbound`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::wxhost::plugin::{config, kv, log, raw_fields, types};
use super::capabilities::{ApiGrant, EarlyReply};
use super::capture::Capture;
use super::convert;
use super::limits::Limits;
use super::outbound::{HttpGrant, OutboundHttp};
use crate::storage::{self, KvStore, Namespace};
use crate::wechat::Message;

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
    /// The `http` capability, when granted.
    pub http: Option<HttpGrant>,
    /// Which context this is: clones share it, every change of grants makes a new one.
    identity: u64,
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
            http: None,
            identity: next_identity(),
        }
    }

    /// Grants `wechat-api`.
    pub fn with_api(mut self, grant: ApiGrant) -> Self {
        self.api = Some(grant);
        self.identity = next_identity();
        self
    }

    /// Grants `http`.
    pub fn with_http(mut self, grant: HttpGrant) -> Self {
        self.http = Some(grant);
        self.identity = next_identity();
        self
    }
}

/// Caps memories and tables; records refused growth so a memory limit is reported as such, not
/// as a generic trap, and the largest memory granted so a bloated instance is not kept warm.
#[derive(Debug)]
pub struct Limiter {
    memory_bytes: usize,
    table_elements: usize,
    /// Set when the guest asked for more memory or table than allowed.
    pub refused: bool,
    /// The largest size any linear memory of the instance was allowed to reach, in bytes.
    pub memory_peak: usize,
}

impl Limiter {
    fn new(limits: &Limits) -> Self {
        Limiter {
            memory_bytes: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
            table_elements: limits.table_elements as usize,
            refused: false,
            memory_peak: 0,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.memory_bytes;
        self.refused |= !allowed;
        if allowed {
            self.memory_peak = self.memory_peak.max(desired);
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.table_elements;
        self.refused |= !allowed;
        Ok(allowed)
    }

    fn instances(&self) -> usize {
        16
    }

    fn tables(&self) -> usize {
        16
    }

    fn memories(&self) -> usize {
        4
    }
}

/// The data of one call's `Store`.
pub struct CallState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    outbound: OutboundHttp,
    table: ResourceTable,
    /// Memory and table caps.
    pub limiter: Limiter,
    pub(super) plugin: Arc<str>,
    pub(super) ctx: CallContext,
    /// The message being handled (a kept instance holds its last one until the next call).
    pub(super) message: Arc<Message>,
    pub(super) early: EarlyReply,
    pub(super) api_calls: u32,
    pub(super) deadline: Instant,
    namespace: Namespace,
    log_lines: u32,
    /// Log lines dropped past the cap.
    pub dropped_log_lines: u32,
    kv_writes: u32,
    /// The guest's stdout.
    pub stdout: Capture,
    /// The guest's stderr (where Rust panics print).
    pub stderr: Capture,
}

impl CallState {
    /// Fresh state for calling `plugin` in `ctx` on `message`, ending at `deadline`: WASI with
    /// nothing granted (no files, no environment, no sockets), output captured, HTTP and the
    /// WeChat API only as granted.
    pub fn new(
        plugin: Arc<str>,
        ctx: CallContext,
        message: Arc<Message>,
        early: EarlyReply,
        deadline: Instant,
    ) -> Self {
        let limits = ctx.limits;
        let stdout = Capture::new(limits.output_bytes as usize);
        let stderr = Capture::new(limits.output_bytes as usize);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .max_random_size(64 * 1024)
            .build();
        let outbound = OutboundHttp::new(
            ctx.http.clone(),
            &ctx.tenant,
            Arc::clone(&plugin),
            &limits,
            deadline,
        );
        CallState {
            wasi,
            http: WasiHttpCtx::new(),
            outbound,
            table: ResourceTable::new(),
            limiter: Limiter::new(&limits),
            namespace: Namespace::new(ctx.tenant.clone(), plugin.to_string()),
            plugin,
            ctx,
            message,
            early,
            api_calls: 0,
            deadline,
            log_lines: 0,
            dropped_log_lines: 0,
            kv_writes: 0,
            stdout,
            stderr,
        }
    }

    /// Whether a kept instance with this state may serve a call in `ctx`: only in (a clone of)
    /// the context it was made for, so never for another tenant, other settings, grants or
    /// limits.
    pub fn serves(&self, ctx: &CallContext) -> bool {
        self.ctx.identity == ctx.identity && self.ctx.limits == ctx.limits
    }

    /// Prepares a kept instance for its next call on `message`, ending at `deadline`: the
    /// per-call counts, caps and early-reply slot start over; WASI state and the guest's
    /// resources stay with the instance.
    pub fn begin_call(&mut self, message: Arc<Message>, early: EarlyReply, deadline: Instant) {
        self.message = message;
        self.early = early;
        self.deadline = deadline;
        self.api_calls = 0;
        self.log_lines = 0;
        self.dropped_log_lines = 0;
        self.kv_writes = 0;
        self.limiter.refused = false;
        self.outbound.begin_call(&self.ctx.limits, deadline);
    }

    /// Lets go of what belonged to the finished call (its early-reply slot) before the
    /// instance is kept for the next one.
    pub fn end_call(&mut self) {
        self.early = EarlyReply::default();
    }

    /// The call's limits.
    pub fn limits(&self) -> &Limits {
        &self.ctx.limits
    }

    fn count_write(&mut self) -> Result<(), kv::Error> {
        if self.kv_writes >= self.ctx.limits.kv_writes {
            return Err(kv::Error::QuotaExceeded(format!(
                "at most {} kv writes per call",
                self.ctx.limits.kv_writes
            )));
        }
        self.kv_writes += 1;
        Ok(())
    }

    fn check_key(&self, key: &str) -> Result<(), kv::Error> {
        let max = self.ctx.limits.kv_key_bytes;
        if key.len() > max as usize {
            return Err(kv::Error::KeyTooLong(max));
        }
        Ok(())
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.outbound,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

impl types::Host for CallState {}

impl raw_fields::Host for CallState {
    fn get(&mut self) -> Vec<types::Field> {
        convert::fields(&self.message)
    }
}

impl log::Host for CallState {
    fn log(&mut self, level: log::Level, message: String) {
        if self.log_lines >= self.ctx.limits.log_lines {
            self.dropped_log_lines += 1;
            return;
        }
        self.log_lines += 1;
        let message = truncate(&message, self.ctx.limits.log_line_bytes as usize);
        let (tenant, plugin) = (&self.ctx.tenant, &*self.plugin);
        match level {
            log::Level::Trace => tracing::trace!(tenant, plugin, "{message}"),
            log::Level::Debug => tracing::debug!(tenant, plugin, "{message}"),
            log::Level::Info => tracing::info!(tenant, plugin, "{message}"),
            log::Level::Warn => tracing::warn!(tenant, plugin, "{message}"),
            log::Level::Error => tracing::error!(tenant, plugin, "{message}"),
        }
    }
}

impl config::Host for CallState {
    fn get(&mut self, key: String) -> Option<String> {
        self.ctx.settings.get(&key).map(|v| v.to_string())
    }

    fn get_all(&mut self) -> String {
        self.ctx.settings_json.to_string()
    }
}

fn kv_error(e: storage::Error) -> kv::Error {
    match e {
        storage::Error::NotANumber => kv::Error::NotANumber,
        storage::Error::Overflow => kv::Error::Overflow,
        storage::Error::Backend(reason) => kv::Error::Unavailable(reason),
    }
}

impl kv::Host for CallState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, kv::Error> {
        self.check_key(&key)?;
        self.ctx.kv.get(&self.namespace, &key).map_err(kv_error)
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_secs: Option<u32>) -> Result<(), kv::Error> {
        self.check_key(&key)?;
        let max = self.ctx.limits.kv_value_bytes;
        if value.len() > max as usize {
            return Err(kv::Error::ValueTooLarge(max));
        }
        self.count_write()?;
        let ttl = ttl_secs.map(|s| Duration::from_secs(u64::from(s)));
        self.ctx
            .kv
            .set(&self.namespace, &key, &value, ttl)
            .map_err(kv_error)
    }

    fn delete(&mut self, key: String) -> Result<bool, kv::Error> {
        self.check_key(&key)?;
        self.count_write()?;
        self.ctx.kv.delete(&self.namespace, &key).map_err(kv_error)
    }

    fn increment(&mut self, key: String, delta: i64) -> Result<i64, kv::Error> {
        self.check_key(&key)?;
        self.count_write()?;
        self.ctx
            .kv
            .increment(&self.namespace, &key, delta)
            .map_err(kv_error)
    }
}

/// At most `max` bytes of `s`, cut at a character boundary, marked when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
