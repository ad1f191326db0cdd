//! The only `bindgen!` of the host: Rust types and traits generated from `wit/plugin.wit`.
//!
//! Exports are async so a call can yield at epoch ticks. The WeChat API imports are async
//! (they wait on the network); the others are plain functions (in-process state and kv).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: {
        "wxhost:plugin/wechat-api.send-custom": async,
        "wxhost:plugin/wechat-api.send-template": async,
        "wxhost:plugin/wechat-api.call": async,
    },
    exports: { default: async },
});
