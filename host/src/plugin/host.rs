//! The state of one plugin instance (its `Store` data): what lives as long as the instance
//! (WASI, the resource table, captured output, who it acts for) and, in one `PerCall`
//! rebuilt at every call, each import's per-call state and caps; and the linking of every
//! import to its own state, wasi:http with the functions that store a guest's bytes in the host
//! wrapped so those bytes count toward its memory limit.

use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{ResourceLimiter, StoreContextMut};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::{
    self as wasi_http, Host as _, HostFields as _, HostOutgoingRequest as _,
};
use wasmtime_wasi_http::p2::body::{HostFutureTrailers, HostIncomingBody, HostOutgoingBody};
use wasmtime_wasi_http::p2::types::{
    HostFutureIncomingResponse, HostIncomingRequest, HostIncomingResponse, HostOutgoingRequest,
    HostOutgoingResponse, HostResponseOutparam,
};
use wasmtime_wasi_http::{FieldMap, RequestOptions, WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::wxhost::plugin::{
    config, early_reply, kv, log, media, raw_fields, types, wechat_api,
};
use super::capabilities::{EarlyReplyImport, WechatApiImport};
use super::capture::Capture;
use super::context::{CallContext, Caller, PushScope};
use super::imports::{ConfigImport, KvImport, LogImport, RawFieldsImport};
use super::limits::Limits;
use super::outbound::OutboundHttp;
use super::slots::Slot;
use crate::wechat::Message;

/// Entries an instance's resource table may hold at once (WASI streams and pollables, wasi:http
/// fields, requests, bodies, responses, …): a plugin making its `http_requests` needs a few
/// dozen; a guest asking for more traps ("resource table has no free keys").
pub const MAX_TABLE_ENTRIES: usize = 256;
/// An instance that ends a call holding more table entries than this, or any wasi:http
/// resource, is not kept warm: what it holds would stay in the host between calls.
pub const WARM_TABLE_ENTRIES: usize = 16;
/// Bytes a plugin without the `http` grant may make the host hold through wasi:http in a
/// call: enough to build a request and be told it is denied, nothing more.
pub const UNGRANTED_HTTP_BYTES: usize = 16 * 1024;
/// The most bytes of one `fields` resource (wasmtime-wasi-http's own measure).
const FIELD_SIZE_LIMIT: usize = 64 * 1024;
/// Bytes counted for each header besides its name and value (the header map's entry, its
/// `HeaderValue`).
const HEADER_OVERHEAD: usize = 64;

/// Caps memories and tables, and the bytes a guest makes the host hold for it through wasi:http
/// (counted with its linear memory against `memory_bytes`); records refused growth so a memory
/// limit is reported as such, not as a generic trap, and the largest memory granted so a
/// bloated instance is not kept warm.
#[derive(Debug)]
pub struct Limiter {
    memory_bytes: usize,
    table_elements: usize,
    /// Set when the guest asked for more memory or table than allowed.
    pub refused: bool,
    /// The instance's linear memories together, in bytes (carried from call to call).
    linear: usize,
    /// Bytes the guest's wasi:http calls stored in the host during this call (fields, request
    /// parts, body buffers), never credited back within the call: an instance that still holds
    /// wasi:http resources when the call ends is not kept, so the next call starts at zero.
    pub host_bytes: usize,
    /// The most `host_bytes` may reach: `memory_bytes` with the `http` grant (less linear
    /// memory), [`UNGRANTED_HTTP_BYTES`] without.
    host_cap: usize,
}

impl Limiter {
    fn new(limits: &Limits, http_granted: bool, linear: usize) -> Self {
        let memory_bytes = usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX);
        Limiter {
            memory_bytes,
            table_elements: limits.table_elements as usize,
            refused: false,
            linear,
            host_bytes: 0,
            host_cap: if http_granted {
                memory_bytes
            } else {
                UNGRANTED_HTTP_BYTES.min(memory_bytes)
            },
        }
    }

    /// Counts `bytes` more held in the host for the guest; false (and `refused`) when that
    /// would pass the cap or, with linear memory, `memory_bytes`.
    pub fn charge(&mut self, bytes: usize) -> bool {
        let total = self.host_bytes.saturating_add(bytes);
        let allowed =
            total <= self.host_cap && total.saturating_add(self.linear) <= self.memory_bytes;
        if allowed {
            self.host_bytes = total;
        }
        self.refused |= !allowed;
        allowed
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let linear = self.linear.saturating_sub(current).saturating_add(desired);
        let allowed = desired <= self.memory_bytes
            && linear.saturating_add(self.host_bytes) <= self.memory_bytes;
        self.refused |= !allowed;
        if allowed {
            self.linear = linear;
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
    /// The CPU turn a call running past an epoch tick holds until its next tick.
    pub cpu_turn: Arc<Mutex<Option<Slot>>>,
}

impl PerCall {
    /// The state of a call of `caller` on `message` as part of the push `scope`, ending at
    /// `deadline`, in an instance whose linear memories take `linear` bytes.
    fn new(
        caller: &Arc<Caller>,
        message: Arc<Message>,
        scope: &PushScope,
        deadline: Instant,
        linear: usize,
    ) -> Self {
        PerCall {
            deadline,
            limiter: Limiter::new(caller.limits(), caller.ctx.http.is_some(), linear),
            log: LogImport::new(caller),
            config: ConfigImport::new(caller),
            kv: KvImport::new(caller, scope),
            early: EarlyReplyImport::new(caller, scope.early.clone()),
            wechat_api: WechatApiImport::new(caller, &message, deadline),
            http: OutboundHttp::new(caller, deadline),
            raw_fields: RawFieldsImport::new(message),
            cpu_turn: Arc::default(),
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
    /// The instance's linear memories once instantiated (a JavaScript or Python runtime starts
    /// with tens of MiB), in bytes; `None` until then.
    instantiated_bytes: Option<usize>,
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
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(FIELD_SIZE_LIMIT);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_TABLE_ENTRIES);
        CallState {
            wasi,
            http,
            table,
            call: PerCall::new(&caller, message, scope, deadline, 0),
            caller,
            stdout,
            stderr,
            instantiated_bytes: None,
        }
    }

    /// Records the instance's memory as it is right after instantiation (once).
    pub fn mark_instantiated(&mut self) {
        self.instantiated_bytes
            .get_or_insert(self.call.limiter.linear);
    }

    /// How far the instance's linear memories grew past their size at instantiation, in bytes.
    pub fn memory_grown(&self) -> usize {
        let linear = self.call.limiter.linear;
        linear.saturating_sub(self.instantiated_bytes.unwrap_or(linear))
    }

    /// The tenant the instance serves.
    pub fn tenant(&self) -> &str {
        self.caller.tenant()
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
        let linear = self.call.limiter.linear;
        self.call = PerCall::new(&self.caller, message, scope, deadline, linear);
    }

    /// Lets go of what belonged to the finished call's push (its early-reply slot, its kv
    /// mark) before the instance is kept for the next one; only the last message stays.
    pub fn end_call(&mut self) {
        let message = Arc::clone(self.call.raw_fields.message());
        let deadline = self.call.deadline;
        let linear = self.call.limiter.linear;
        self.call = PerCall::new(
            &self.caller,
            message,
            &PushScope::default(),
            deadline,
            linear,
        );
    }

    /// Whether the instance holds what must not stay in the host between calls: any wasi:http
    /// resource, or more than [`WARM_TABLE_ENTRIES`] resources of any kind.
    pub fn holds_resources(&mut self) -> bool {
        let mut entries = 0;
        self.table.iter_mut().any(|entry| {
            entries += 1;
            entries > WARM_TABLE_ENTRIES || is_wasi_http(entry)
        })
    }

    /// The call's limits.
    pub fn limits(&self) -> &Limits {
        self.caller.limits()
    }
}

/// Whether a table entry is a wasi:http resource.
fn is_wasi_http(entry: &(dyn Any + Send)) -> bool {
    entry.is::<FieldMap>()
        || entry.is::<HostOutgoingRequest>()
        || entry.is::<HostOutgoingResponse>()
        || entry.is::<HostOutgoingBody>()
        || entry.is::<HostIncomingRequest>()
        || entry.is::<HostIncomingResponse>()
        || entry.is::<HostIncomingBody>()
        || entry.is::<HostFutureIncomingResponse>()
        || entry.is::<HostFutureTrailers>()
        || entry.is::<HostResponseOutparam>()
        || entry.is::<RequestOptions>()
}

/// The wasi:http types interface as wasmtime-wasi-http defines it.
const WASI_HTTP_TYPES: &str = "wasi:http/types@0.2.12";

/// The wasi:http functions that store bytes a guest passes in the host, wrapped here: each
/// first charges them to the call's [`Limiter`] (trapping as a memory limit when over it),
/// then runs wasmtime-wasi-http's own implementation. (The list the tests check against
/// wasmtime-wasi-http's names.)
#[cfg(test)]
const METERED_HTTP_FUNCTIONS: &[&str] = &[
    "[static]fields.from-list",
    "[method]fields.set",
    "[method]fields.append",
    "[method]fields.clone",
    "[method]outgoing-request.set-method",
    "[method]outgoing-request.set-path-with-query",
    "[method]outgoing-request.set-scheme",
    "[method]outgoing-request.set-authority",
    "[method]outgoing-request.body",
    "[method]outgoing-response.body",
];

/// Links wasi:http (`outgoing-handler` and `types`), with the functions of
/// [`METERED_HTTP_FUNCTIONS`] counting what they store toward the plugin's memory limit. Every
/// other way into the host's memory is bounded per resource (bodies read from the network by
/// `http_response_bytes`, at most `http_requests` of them per call) and by the table's
/// [`MAX_TABLE_ENTRIES`].
pub fn link_http(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    linker.allow_shadowing(true);
    let mut types = linker.instance(WASI_HTTP_TYPES)?;
    types.func_wrap(
        "[static]fields.from-list",
        |mut store: StoreContextMut<'_, CallState>, (entries,): (Vec<(String, Vec<u8>)>,)| {
            let bytes = entries
                .iter()
                .map(|(name, value)| header_bytes(name, value))
                .sum();
            let state = charge(&mut store, bytes)?;
            let mut http = state.http();
            let result = http.from_list(entries);
            Ok((header_result(&mut http, result)?,))
        },
    )?;
    types.func_wrap(
        "[method]fields.set",
        |mut store: StoreContextMut<'_, CallState>,
         (fields, name, values): (Resource<FieldMap>, String, Vec<Vec<u8>>)| {
            let bytes = values.iter().map(|value| header_bytes(&name, value)).sum();
            let state = charge(&mut store, bytes)?;
            let mut http = state.http();
            let result = http.set(fields, name, values);
            Ok((header_result(&mut http, result)?,))
        },
    )?;
    types.func_wrap(
        "[method]fields.append",
        |mut store: StoreContextMut<'_, CallState>,
         (fields, name, value): (Resource<FieldMap>, String, Vec<u8>)| {
            let state = charge(&mut store, header_bytes(&name, &value))?;
            let mut http = state.http();
            let result = http.append(fields, name, value);
            Ok((header_result(&mut http, result)?,))
        },
    )?;
    types.func_wrap(
        "[method]fields.clone",
        |mut store: StoreContextMut<'_, CallState>, (fields,): (Resource<FieldMap>,)| {
            // A clone shares the map until either side changes; then it is copied whole.
            let bytes = store
                .data()
                .table
                .get(&fields)?
                .iter()
                .map(|(name, value)| header_bytes(name.as_str(), value.as_bytes()))
                .sum();
            let state = charge(&mut store, bytes)?;
            Ok((state.http().clone(fields)?,))
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.set-method",
        |mut store: StoreContextMut<'_, CallState>,
         (request, method): (Resource<HostOutgoingRequest>, wasi_http::Method)| {
            let bytes = match &method {
                wasi_http::Method::Other(name) => name.len(),
                _ => 0,
            };
            let state = charge(&mut store, bytes)?;
            Ok((state.http().set_method(request, method)?,))
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.set-path-with-query",
        |mut store: StoreContextMut<'_, CallState>,
         (request, path): (Resource<HostOutgoingRequest>, Option<String>)| {
            let state = charge(&mut store, path.as_ref().map_or(0, String::len))?;
            Ok((state.http().set_path_with_query(request, path)?,))
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.set-scheme",
        |mut store: StoreContextMut<'_, CallState>,
         (request, scheme): (Resource<HostOutgoingRequest>, Option<wasi_http::Scheme>)| {
            let bytes = match &scheme {
                Some(wasi_http::Scheme::Other(name)) => name.len(),
                _ => 0,
            };
            let state = charge(&mut store, bytes)?;
            Ok((state.http().set_scheme(request, scheme)?,))
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.set-authority",
        |mut store: StoreContextMut<'_, CallState>,
         (request, authority): (Resource<HostOutgoingRequest>, Option<String>)| {
            let state = charge(&mut store, authority.as_ref().map_or(0, String::len))?;
            Ok((state.http().set_authority(request, authority)?,))
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.body",
        |mut store: StoreContextMut<'_, CallState>,
         (request,): (Resource<HostOutgoingRequest>,)| {
            let bytes = store.data().call.http.body_buffer_bytes();
            let state = charge(&mut store, bytes)?;
            Ok((wasi_http::HostOutgoingRequest::body(
                &mut state.http(),
                request,
            )?,))
        },
    )?;
    types.func_wrap(
        "[method]outgoing-response.body",
        |mut store: StoreContextMut<'_, CallState>,
         (response,): (Resource<HostOutgoingResponse>,)| {
            let bytes = store.data().call.http.body_buffer_bytes();
            let state = charge(&mut store, bytes)?;
            Ok((wasi_http::HostOutgoingResponse::body(
                &mut state.http(),
                response,
            )?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The bytes one header stores.
fn header_bytes(name: &str, value: &[u8]) -> usize {
    name.len() + value.len() + HEADER_OVERHEAD
}

/// Charges `bytes` to the call, or traps as over the memory limit.
fn charge<'a>(
    store: &'a mut StoreContextMut<'_, CallState>,
    bytes: usize,
) -> wasmtime::Result<&'a mut CallState> {
    let state = store.data_mut();
    if state.call.limiter.charge(bytes) {
        Ok(state)
    } else {
        Err(wasmtime::format_err!(
            "wasi:http resources would pass the plugin's memory limit ({} bytes held)",
            state.call.limiter.host_bytes
        ))
    }
}

/// A wasi:http header result as the guest sees it (a trap stays a trap).
fn header_result<T>(
    http: &mut WasiHttpCtxView<'_>,
    result: Result<T, wasmtime_wasi_http::p2::HeaderError>,
) -> wasmtime::Result<Result<T, wasi_http::HeaderError>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(e) => Ok(Err(http.convert_header_error(e)?)),
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
    media::add_to_linker::<_, HasSelf<WechatApiImport>>(linker, |state| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metered_functions_are_wasi_http_functions() {
        let engine = wasmtime::Engine::default();
        let mut stock: Linker<CallState> = Linker::new(&engine);
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut stock).expect("links");
        let mut types = stock.instance(WASI_HTTP_TYPES).expect("the interface");
        for name in METERED_HTTP_FUNCTIONS {
            // Without shadowing, defining a name again fails: it is one wasmtime-wasi-http
            // defines, so wrapping it replaces the real function.
            let again = types.func_wrap(name, |_: StoreContextMut<'_, CallState>, (): ()| Ok(()));
            assert!(again.is_err(), "{name} is not a {WASI_HTTP_TYPES} function");
        }
        let fresh = types.func_wrap(
            "[method]fields.no-such",
            |_: StoreContextMut<'_, CallState>, (): ()| Ok(()),
        );
        assert!(fresh.is_ok(), "a name it does not define can be defined");
        let mut linker: Linker<CallState> = Linker::new(&engine);
        link_http(&mut linker).expect("the metered functions replace the stock ones");
    }
}
