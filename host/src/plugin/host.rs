//! The state of one plugin instance (its `Store` data): what lives as long as the instance
//! (WASI, the resource table, captured output, who it acts for) and, in one `PerCall`
//! rebuilt at every call, each import's per-call state and caps; and the linking of every
//! import to its own state.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::ResourceLimiter;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::wxhost::plugin::{
    config, early_reply, kv, log, raw_fields, types, wechat_api,
};
use super::capabilities::{EarlyReplyImport, WechatApiImport};
use super::capture::Capture;
use super::context::{CallContext, Caller, PushScope};
use super::imports::{ConfigImport, KvImport, LogImport, RawFieldsImport};
use super::limits::Limits;
use super::outbound::OutboundHttp;
use crate::wechat::Message;

/// Caps memories and tables; records refused growth so a memory limit is reported as such, not
/// as a generic trap, and the largest memory granted so a bloated instance is not kept warm.
#[derive(Debug)]
pub struct Limiter {
    memory_bytes: usize,
    table_elements: usize,
    /// Set when the guest asked for more memory or table than allowed.
    pub refused: bool,
    /// The largest size any linear memory of the instance was allowed to grow to in this call,
    /// in bytes (memories never shrink, so an instance over a bound is over it in the call that
    /// grew it).
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

/// Everything that belongs to one call and starts over at the next: built whole by
/// [`PerCall::new`] and replaced in one assignment, so nothing of one message reaches the next.
#[derive(Debug)]
pub struct PerCall {
    /// When the call must end.
    pub deadline: Instant,
    /// Memory and table caps, and what the guest asked for in this call.
    pub limiter: Limiter,
    raw_fields: RawFieldsImport,
    /// `log` (and its count of dropped lines).
    pub log: LogImport,
    config: ConfigImport,
    kv: KvImport,
    early: EarlyReplyImport,
    wechat_api: WechatApiImport,
    http: OutboundHttp,
}

impl PerCall {
    /// The state of a call of `caller` on `message` as part of the push `scope`, ending at
    /// `deadline`.
    fn new(
        caller: &Arc<Caller>,
        message: Arc<Message>,
        scope: &PushScope,
        deadline: Instant,
    ) -> Self {
        PerCall {
            deadline,
            limiter: Limiter::new(caller.limits()),
            log: LogImport::new(caller),
            config: ConfigImport::new(caller),
            kv: KvImport::new(caller, scope),
            early: EarlyReplyImport::new(caller, scope.early.clone()),
            wechat_api: WechatApiImport::new(caller, &message, deadline),
            http: OutboundHttp::new(caller, deadline),
            raw_fields: RawFieldsImport::new(message),
        }
    }
}

/// The data of one instance's `Store`.
pub struct CallState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    caller: Arc<Caller>,
    /// The guest's stdout.
    pub stdout: Capture,
    /// The guest's stderr (where Rust panics print).
    pub stderr: Capture,
    /// The current call (a kept instance holds its last one until the next call).
    pub call: PerCall,
}

impl CallState {
    /// Fresh state for calling `plugin` in `ctx` on `message` as part of the push `scope`,
    /// ending at `deadline`: WASI with nothing granted (no files, no environment, no sockets),
    /// output captured, HTTP and the WeChat API only as granted.
    pub fn new(
        plugin: Arc<str>,
        ctx: CallContext,
        message: Arc<Message>,
        scope: &PushScope,
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
        let caller = Caller::new(plugin, ctx);
        CallState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            call: PerCall::new(&caller, message, scope, deadline),
            caller,
            stdout,
            stderr,
        }
    }

    /// Whether a kept instance with this state may serve a call in `ctx`: only in (a clone of)
    /// the context it was made for, so never for another tenant, other settings, grants or
    /// limits.
    pub fn serves(&self, ctx: &CallContext) -> bool {
        self.caller.ctx.same_as(ctx)
    }

    /// Prepares a kept instance for its next call on `message` in the push `scope`, ending at
    /// `deadline`: the per-call state starts over whole; WASI state and the guest's resources
    /// stay with the instance.
    pub fn begin_call(&mut self, message: Arc<Message>, scope: &PushScope, deadline: Instant) {
        self.call = PerCall::new(&self.caller, message, scope, deadline);
    }

    /// Lets go of what belonged to the finished call's push (its early-reply slot, its kv
    /// mark) before the instance is kept for the next one; only the last message stays.
    pub fn end_call(&mut self) {
        let message = Arc::clone(self.call.raw_fields.message());
        let deadline = self.call.deadline;
        self.call = PerCall::new(&self.caller, message, &PushScope::default(), deadline);
    }

    /// The call's limits.
    pub fn limits(&self) -> &Limits {
        self.caller.limits()
    }
}

/// Links the plugin world's imports, each to its own state in [`CallState::call`] (WASI and
/// wasi:http are linked by the runtime).
pub fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    types::add_to_linker::<_, HasSelf<CallState>>(linker, |state| state)?;
    raw_fields::add_to_linker::<_, HasSelf<RawFieldsImport>>(linker, |state| {
        &mut state.call.raw_fields
    })?;
    log::add_to_linker::<_, HasSelf<LogImport>>(linker, |state| &mut state.call.log)?;
    config::add_to_linker::<_, HasSelf<ConfigImport>>(linker, |state| &mut state.call.config)?;
    kv::add_to_linker::<_, HasSelf<KvImport>>(linker, |state| &mut state.call.kv)?;
    early_reply::add_to_linker::<_, HasSelf<EarlyReplyImport>>(linker, |state| {
        &mut state.call.early
    })?;
    wechat_api::add_to_linker::<_, HasSelf<WechatApiImport>>(linker, |state| {
        &mut state.call.wechat_api
    })?;
    Ok(())
}

impl types::Host for CallState {}

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
            hooks: &mut self.call.http,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}
