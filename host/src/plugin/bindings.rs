//! The only `bindgen!` of the host: Rust types and traits generated from `wit/plugin.wit`.
//!
//! Exports are async so a call can yield at epoch ticks; imports are plain functions (they
//! only touch in-process state and the kv store).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    exports: { default: async },
});
