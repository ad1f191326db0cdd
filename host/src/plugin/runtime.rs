//! The plugin runtime: one Engine (pooling allocator, fuel, epoch ticker), components compiled
//! once, one `InstancePre` per plugin, and each call under fresh fuel, deadline and memory caps
//! in a fresh instance or one kept warm for the same chain entry, behind a semaphore sized to
//! the pool.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};
use wasmtime::{Store, Trap, UpdateDeadline};

use super::bindings::{Plugin as PluginBindings, PluginPre};
use super::cache::{CompileCache, Origin, wasm_hash};
use super::context::{CallContext, PushScope};
use super::convert;
use super::error::Error;
use super::host::{self, CallState};
use super::imports::{escape_log_line, truncate};
use super::limits::RuntimeLimits;
use super::slots::{FairSlots, NoSlot};
use crate::wechat;

/// What a plugin answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answer with this (validated) reply and stop the chain.
    Reply(wechat::Reply),
    /// Stop the chain without a passive reply.
    Handled,
    /// Let the next plugin try.
    Pass,
}

/// The result of one call, with what it cost.
#[derive(Debug)]
pub struct CallReport {
    /// The outcome, or why there is none.
    pub result: Result<Outcome, Error>,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Wall-clock time of the call, including waiting for a pool slot.
    pub elapsed: Duration,
}

/// A loaded plugin: its name, the hash of its wasm, and the pre-linked component.
pub struct Plugin {
    name: Arc<str>,
    hash: String,
    origin: Origin,
    pre: PluginPre<CallState>,
    /// Whether it imports `raw-fields` (and so is handed messages without their raw fields).
    lazy_fields: bool,
    /// Unique per load, so a reloaded plugin never runs in an instance of its predecessor.
    load_id: u64,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("hash", &self.hash)
            .field("origin", &self.origin)
            .field("lazy_fields", &self.lazy_fields)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// The plugin's name (the file stem of its `.wasm`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The hex SHA-256 of its wasm.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Whether it was compiled now or loaded from the compile cache.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// Whether it imports `raw-fields`, and so is handed messages without their raw fields
    /// (it asks for them when it reads them). Plugins built with the SDK since WIT 0.1.2 do.
    pub fn fetches_fields_on_demand(&self) -> bool {
        self.lazy_fields
    }
}

/// Instances kept between the calls of one chain entry (one tenant's use of one plugin, with
/// one config), so a call need not instantiate. An instance is kept only after a call that
/// ended normally (a reply, `pass`, `handled` or an error value), within the entry's
/// `calls_per_instance`, its memory grown by at most [`WARM_MEMORY_GROWTH`] since it was
/// instantiated, holding no wasi:http
/// resource and at most `host::WARM_TABLE_ENTRIES` resources, and while the runtime's
/// `max_idle_instances` allow; it is used again only by the same load of the same plugin in
/// the same [`CallContext`]. Dropping this drops the instances.
#[derive(Default)]
pub struct WarmInstances {
    idle: Mutex<Vec<Idle>>,
}

impl std::fmt::Debug for WarmInstances {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmInstances")
            .field("idle", &self.idle_count())
            .finish()
    }
}

impl WarmInstances {
    /// How many instances are waiting for a call.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map_or(0, |idle| idle.len())
    }

    /// An instance for `plugin` in `ctx`, if one is kept; instances of other loads or contexts
    /// are dropped.
    fn take(&self, plugin: &Plugin, ctx: &CallContext) -> Option<Warm> {
        let mut stale = Vec::new();
        let found = {
            let mut idle = self.idle.lock().ok()?;
            loop {
                match idle.pop() {
                    None => break None,
                    Some(Idle { warm, .. })
                        if warm.load_id == plugin.load_id && warm.store.data().serves(ctx) =>
                    {
                        break Some(warm);
                    }
                    Some(other) => stale.push(other),
                }
            }
        };
        drop(stale);
        found
    }

    /// Keeps `warm` for a later call, if `permits` allow another idle instance.
    fn keep(&self, warm: Warm, permits: &Arc<Semaphore>) {
        let Ok(permit) = Arc::clone(permits).try_acquire_owned() else {
            return;
        };
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(Idle {
                warm,
                _permit: permit,
            });
        }
    }
}

/// A kept instance and the permit it holds while idle.
struct Idle {
    warm: Warm,
    _permit: OwnedSemaphorePermit,
}

/// An instantiated plugin with its store.
struct Warm {
    load_id: u64,
    store: Store<CallState>,
    bindings: PluginBindings,
    calls: u32,
}

/// The shared engine, linker, compile cache, call slots and idle-instance permits.
pub struct Runtime {
    engine: Engine,
    linker: Linker<CallState>,
    cache: CompileCache,
    slots: FairSlots,
    /// Turns on the CPU for calls running past an epoch tick, one per core, shared fairly.
    cpu: FairSlots,
    idle: Arc<Semaphore>,
    limits: RuntimeLimits,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Grace on top of a call's deadline for the outer timeout, which only matters when a guest is
/// blocked in a host call (epochs cannot interrupt it there).
const OUTER_TIMEOUT_GRACE: Duration = Duration::from_millis(50);
/// Bytes of each linear memory reset with `memset` instead of `madvise` when a call ends, so
/// the next call on the slot does not page-fault them back in. Measured with the echo plugin
/// (64 KiB guest stack, 128 KiB memory): 0 → 26–33 µs per message, 128–256 KiB → 13–17 µs,
/// 2 MiB → 31 µs (the memset itself dominates). See README, Benchmarks.
const MEMORY_KEEP_RESIDENT: usize = 256 * 1024;
/// The same for tables: without it every call re-faults its table pages (+10–15 µs).
const TABLE_KEEP_RESIDENT: usize = 64 * 1024;
/// Bytes of a guest's error message or stderr kept in an error.
const MESSAGE_BYTES: usize = 1024;
/// An instance whose memory grew by more than this since it was instantiated is not kept warm:
/// it would hold that memory idle. (What it took to instantiate, which a JavaScript or Python
/// runtime needs whatever the call, does not count.)
pub const WARM_MEMORY_GROWTH: usize = 8 * 1024 * 1024;

/// The import (any 0.1.x version) by which a plugin asks for raw fields on demand.
const RAW_FIELDS_IMPORT: &str = "wxhost:plugin/raw-fields@";

/// A new [`Plugin::load_id`].
fn next_load_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Runtime {
    /// A runtime sized by `limits`, caching compiled plugins in `cache_dir` when given.
    /// Starts the epoch ticker thread (it stops when the runtime is dropped).
    pub fn new(limits: RuntimeLimits, cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let slots = limits.max_concurrent_calls.max(1);
        // Instances running a call plus instances kept idle between calls.
        let live = slots.saturating_add(limits.max_idle_instances);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(live)
            .total_core_instances(live.saturating_mul(8))
            .total_memories(live.saturating_mul(2))
            .total_tables(live.saturating_mul(8))
            .total_stacks(slots)
            .max_memory_size(usize::try_from(limits.max_memory_bytes)?)
            .max_memories_per_component(2)
            .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
            .table_keep_resident(TABLE_KEEP_RESIDENT);
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .cranelift_opt_level(OptLevel::Speed)
            .memory_init_cow(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(anyhow::Error::from)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        host::link_http(&mut linker).map_err(anyhow::Error::from)?;
        host::link(&mut linker).map_err(anyhow::Error::from)?;

        start_epoch_ticker(&engine, Duration::from_millis(limits.epoch_tick_ms.max(1)))?;
        Ok(Runtime {
            cache: CompileCache::new(cache_dir, &engine),
            engine,
            linker,
            slots: FairSlots::new(slots as usize, limits.max_queued_per_tenant as usize),
            cpu: FairSlots::with_headroom(
                std::thread::available_parallelism().map_or(2, usize::from),
                usize::MAX,
                0,
            ),
            idle: Arc::new(Semaphore::new(limits.max_idle_instances as usize)),
            limits,
        })
    }

    /// The runtime's sizes.
    pub fn limits(&self) -> &RuntimeLimits {
        &self.limits
    }

    /// The call slots, shared fairly between tenants.
    pub fn slots(&self) -> &FairSlots {
        &self.slots
    }

    /// Compiles (or loads from the cache) and pre-links `wasm` as plugin `name`. CPU-heavy on a
    /// cache miss: call it from a blocking thread.
    pub fn load(&self, name: &str, wasm: &[u8]) -> Result<Plugin, Error> {
        let load_error = |e: wasmtime::Error| Error::Load {
            plugin: name.to_owned(),
            reason: format!("{e:#}"),
        };
        let hash = wasm_hash(wasm);
        let (component, origin) = self
            .cache
            .load(&self.engine, wasm, &hash)
            .map_err(load_error)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(load_error)?;
        let pre = PluginPre::new(instance_pre).map_err(load_error)?;
        let lazy_fields = component
            .component_type()
            .imports(&self.engine)
            .any(|(import, _)| import.starts_with(RAW_FIELDS_IMPORT));
        Ok(Plugin {
            name: name.into(),
            hash,
            origin,
            pre,
            lazy_fields,
            load_id: next_load_id(),
        })
    }

    /// Calls `plugin`'s `handle` on `msg` in a fresh instance, within `ctx.limits`.
    pub async fn call(
        &self,
        plugin: &Plugin,
        ctx: &CallContext,
        msg: &wechat::Message,
    ) -> CallReport {
        let msg = Arc::new(msg.clone());
        self.call_with(plugin, ctx, None, &msg, &PushScope::default())
            .await
    }

    /// [`Runtime::call`] in an instance kept in `warm` when there is one (and keeping the
    /// instance there afterwards when it may be), as part of the push `scope` (which receives a
    /// reply the plugin sends before it returns, and learns whether it wrote kv).
    pub async fn call_with(
        &self,
        plugin: &Plugin,
        ctx: &CallContext,
        warm: Option<&WarmInstances>,
        msg: &Arc<wechat::Message>,
        scope: &PushScope,
    ) -> CallReport {
        let started = Instant::now();
        let limits = ctx.limits;
        let host_failure = |plugin: String, reason: String| CallReport {
            result: Err(Error::Host { plugin, reason }),
            fuel_used: 0,
            elapsed: started.elapsed(),
        };
        // A call waits for its slot in its tenant's queue; its deadline starts once it has one.
        let slot_deadline = scope
            .slot_deadline
            .unwrap_or_else(|| started + limits.deadline());
        scope.set_waiting_for_slot(true);
        let slot = self.slots.acquire(&ctx.tenant, slot_deadline).await;
        scope.set_waiting_for_slot(false);
        let _slot = match slot {
            Ok(slot) => slot,
            Err(no_slot) => {
                scope.mark_shed();
                let reason = match no_slot {
                    NoSlot::QueueFull => "its tenant's call queue is full",
                    NoSlot::Deadline => "no call slot came free within the passive budget",
                };
                return CallReport {
                    result: Err(Error::Shed {
                        plugin: plugin.name.to_string(),
                        reason,
                    }),
                    fuel_used: 0,
                    elapsed: started.elapsed(),
                };
            }
        };
        let deadline = Instant::now() + limits.deadline();
        let (mut store, bindings, calls) = match warm.and_then(|w| w.take(plugin, ctx)) {
            Some(Warm {
                mut store,
                bindings,
                calls,
                ..
            }) => {
                store
                    .data_mut()
                    .begin_call(Arc::clone(msg), scope, deadline);
                (store, Some(bindings), calls)
            }
            None => {
                let state = CallState::new(
                    plugin.name.clone(),
                    ctx.clone(),
                    Arc::clone(msg),
                    scope,
                    deadline,
                );
                (self.new_store(state), None, 0)
            }
        };
        if let Err(e) = store.set_fuel(limits.fuel) {
            return host_failure(plugin.name.to_string(), format!("{e:#}"));
        }
        store.set_epoch_deadline(1);

        let input = convert::message(&ctx.tenant, msg, !plugin.lazy_fields);
        let run = async {
            let bindings = match bindings {
                Some(bindings) => bindings,
                None => {
                    let bindings = plugin.pre.instantiate_async(&mut store).await?;
                    store.data_mut().mark_instantiated();
                    bindings
                }
            };
            let result = bindings.call_handle(&mut store, &input).await?;
            Ok::<_, wasmtime::Error>((bindings, result))
        };
        // The outer timeout is armed only when the call has to wait: a call that runs to its
        // end in one poll needs no timer (epochs bound the time the guest itself runs).
        let outer = {
            let mut run = std::pin::pin!(run);
            match std::future::poll_fn(|cx| Poll::Ready(run.as_mut().poll(cx))).await {
                Poll::Ready(done) => Ok(done),
                Poll::Pending => {
                    let outer_deadline =
                        tokio::time::Instant::from_std(deadline + OUTER_TIMEOUT_GRACE);
                    tokio::time::timeout_at(outer_deadline, run).await
                }
            }
        };
        let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let stderr = log_output(&plugin.name, ctx, store.data());

        let (result, bindings) = match outer {
            Err(_) => (
                Err(Error::Timeout {
                    plugin: plugin.name.to_string(),
                    deadline_ms: limits.deadline_ms,
                }),
                None,
            ),
            Ok(Err(e)) => (
                Err(classify(e, plugin.name.to_string(), store.data(), &stderr)),
                None,
            ),
            Ok(Ok((bindings, Err(message)))) => (
                Err(Error::Guest {
                    plugin: plugin.name.to_string(),
                    // Logged as part of the error: one line, whatever the plugin wrote.
                    message: escape_log_line(&truncate(&message, MESSAGE_BYTES)).into_owned(),
                }),
                Some(bindings),
            ),
            Ok(Ok((bindings, Ok(outcome)))) => (outcome_of(outcome, &plugin.name), Some(bindings)),
        };
        // Only an instance whose call ended normally is kept: after a trap, a timeout or a
        // refused allocation its state is not to be trusted. Nor is one holding resources
        // (wasi:http fields, bodies, responses, or many of any kind) that would stay in the
        // host while it idles.
        if let (Some(warm), Some(bindings)) = (warm, bindings) {
            let calls = calls.saturating_add(1);
            let state = store.data_mut();
            if calls < limits.calls_per_instance
                && !state.call.limiter.refused
                && state.memory_grown() <= WARM_MEMORY_GROWTH
                && !state.holds_resources()
            {
                state.end_call();
                warm.keep(
                    Warm {
                        load_id: plugin.load_id,
                        store,
                        bindings,
                        calls,
                    },
                    &self.idle,
                );
            }
        }
        CallReport {
            result,
            fuel_used,
            elapsed: started.elapsed(),
        }
    }

    /// A store for one instance: its memory and table caps, and the epoch callback that stops
    /// it at its call's deadline and otherwise yields to the scheduler at every tick.
    fn new_store(&self, state: CallState) -> Store<CallState> {
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.call.limiter);
        let cpu = self.cpu.clone();
        store.epoch_deadline_callback(move |store| {
            let state = store.data();
            if Instant::now() >= state.call.deadline {
                return Ok(UpdateDeadline::Interrupt);
            }
            // Still running at a tick, the call is CPU-heavy: it gives up its CPU turn, lets
            // other tasks run, and waits for its next turn, fairly between tenants. So one
            // tenant's spinning calls never fill the workers' queues in front of another's
            // pushes; a call that ends within its first tick never waits here.
            let turn = Arc::clone(&state.call.cpu_turn);
            let released = turn.lock().map(|mut held| held.take());
            drop(released);
            let (cpu, tenant, deadline) = (
                cpu.clone(),
                Arc::<str>::from(state.tenant()),
                state.call.deadline,
            );
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(async move {
                    // Past the deadline the next tick interrupts the call.
                    let granted = cpu.acquire(&tenant, deadline).await.ok();
                    if let Ok(mut held) = turn.lock() {
                        *held = granted;
                    }
                    // Resumed only after the worker has polled for I/O: the turn may have come
                    // straight from the call before (a wake-up tokio runs next, without looking
                    // at sockets), and a chain of such hand-overs would keep every other push
                    // waiting for tokio's periodic I/O check (61 polls, 300 ms of slices).
                    tokio::task::yield_now().await;
                }),
            ))
        });
        store
    }
}

fn outcome_of(
    outcome: super::bindings::wxhost::plugin::types::Outcome,
    plugin: &str,
) -> Result<Outcome, Error> {
    use super::bindings::wxhost::plugin::types::Outcome as Wit;
    match outcome {
        Wit::Reply(reply) => {
            let reply = convert::reply(reply);
            match reply.validate() {
                Ok(()) => Ok(Outcome::Reply(reply)),
                Err(source) => Err(Error::InvalidReply {
                    plugin: plugin.to_owned(),
                    source,
                }),
            }
        }
        Wit::Handled => Ok(Outcome::Handled),
        Wit::Pass => Ok(Outcome::Pass),
    }
}

/// Maps a wasmtime error to the plugin error kinds.
fn classify(e: wasmtime::Error, plugin: String, state: &CallState, stderr: &str) -> Error {
    let limits = state.limits();
    if state.call.limiter.refused {
        return Error::MemoryLimit {
            plugin,
            limit_bytes: limits.memory_bytes,
        };
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Error::Timeout {
            plugin,
            deadline_ms: limits.deadline_ms,
        },
        Some(Trap::OutOfFuel) => Error::OutOfFuel {
            plugin,
            fuel: limits.fuel,
        },
        Some(trap) => {
            let panic = stderr.trim();
            let message = if panic.is_empty() {
                trap.to_string()
            } else {
                let panic = truncate(panic, MESSAGE_BYTES);
                format!("{trap}; stderr: {}", escape_log_line(&panic))
            };
            Error::Trap { plugin, message }
        }
        None if e.is::<wasmtime::PoolConcurrencyLimitError>() => Error::Host {
            plugin,
            reason: "instance pool exhausted".into(),
        },
        None => Error::Trap {
            plugin,
            message: truncate(&format!("{e:#}"), MESSAGE_BYTES),
        },
    }
}

/// Logs what the guest printed, tagged with the plugin and tenant, each line escaped and within
/// the entry's log rate (`ctx.log`), and notes (once a second at most) what was dropped;
/// returns stderr for errors.
fn log_output(plugin: &str, ctx: &CallContext, state: &CallState) -> String {
    let tenant = ctx.tenant.as_str();
    let (stdout, dropped_out) = state.stdout.take();
    let (stderr, dropped_err) = state.stderr.take();
    let log = &state.call.log;
    let mut rate_dropped = log.rate_dropped;
    for (stream, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        for line in text.lines() {
            if !ctx.log.admit() {
                rate_dropped += 1;
                continue;
            }
            let line = escape_log_line(line);
            if stream == "stdout" {
                tracing::info!(plugin, tenant, stream, "{line}");
            } else {
                tracing::warn!(plugin, tenant, stream, "{line}");
            }
        }
    }
    let dropped = dropped_out + dropped_err > 0 || log.dropped > 0 || rate_dropped > 0;
    if dropped && ctx.log.note_due() {
        let (past_cap, past_rate) = ctx.log.dropped();
        tracing::warn!(
            plugin,
            tenant,
            dropped_stdout_bytes = dropped_out,
            dropped_stderr_bytes = dropped_err,
            dropped_log_lines = log.dropped,
            rate_limited_lines = rate_dropped,
            total_dropped_past_cap = past_cap,
            total_rate_limited = past_rate,
            "plugin output over its caps was dropped (noted once a second at most)"
        );
    }
    stderr
}

/// Advances the engine's epoch every `tick` on a thread that ends with the engine.
fn start_epoch_ticker(engine: &Engine, tick: Duration) -> anyhow::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wxhost-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })?;
    Ok(())
}
