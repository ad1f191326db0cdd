//! The only `bindgen!` of the host: Rust types and traits generated from `wit/plugin.wit`.
//!
//! Exports are async so a call can yield at epoch ticks. The WeChat API and media imports are async
//! (they wait on the network), and so is kv (a shared store is a network service); the others
//! are plain functions (in-process state).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: {
        "wxhost:plugin/wechat-api.send-custom": async,
        "wxhost:plugin/wechat-api.send-template": async,
        "wxhost:plugin/wechat-api.call": async,
        "wxhost:plugin/media.upload": async,
        "wxhost:plugin/media.upload-permanent": async,
        "wxhost:plugin/media.download": async,
        "wxhost:plugin/media.download-permanent": async,
        "wxhost:plugin/kv.get": async,
        "wxhost:plugin/kv.set": async,
        "wxhost:plugin/kv.delete": async,
        "wxhost:plugin/kv.increment": async,
    },
    exports: { default: async },
});
