//! Paths of the example plugins (`plugins/`) and the misbehaving test plugins
//! (`tests/plugins/`), built for wasm32-wasip2 by this crate's build script.

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
