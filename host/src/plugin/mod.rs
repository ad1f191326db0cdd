//! Sandboxed WebAssembly plugins: the runtime (one engine, fresh instance per call under fuel,
//! deadline and memory caps), the hot-reloaded plugins folder, and the host side of the WIT
//! imports (log, config, kv for all; early-reply; wechat-api and outbound HTTP as granted).

mod allow_list;
mod bindings;
mod cache;
mod capabilities;
mod capture;
mod context;
mod convert;
mod error;
mod host;
mod imports;
mod limits;
mod outbound;
mod registry;
mod runtime;
mod slots;

pub use allow_list::HostPattern;
pub use cache::{Origin, wasm_hash};
pub use context::{ApiGrant, CallContext, EarlyReply, HttpGrant, PushScope};
pub use error::Error;
pub use limits::{Limits, RuntimeLimits};
pub use registry::{Registry, ScanReport, valid_name};
pub use runtime::{CallReport, Outcome, Plugin, Runtime, WARM_MEMORY_GROWTH, WarmInstances};
pub use slots::{FairSlots, NoSlot, SlotUse};
