//! Sandboxed WebAssembly plugins: the runtime (one engine, fresh instance per call under fuel,
//! deadline and memory caps), the hot-reloaded plugins folder, and the host side of the WIT
//! imports.

mod bindings;
mod cache;
mod capture;
mod convert;
mod error;
mod host;
mod limits;
mod registry;
mod runtime;

pub use cache::{Origin, wasm_hash};
pub use error::Error;
pub use host::CallContext;
pub use limits::{Limits, RuntimeLimits};
pub use registry::{Registry, ScanReport, valid_name};
pub use runtime::{CallReport, Outcome, Plugin, Runtime};
