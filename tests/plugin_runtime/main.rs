//! The plugin runtime against real compiled plugins: the examples, the limits enforced on the
//! misbehaving ones (wasi:http resources included), the addresses outbound HTTP may reach, the
//! compile cache, and the hot-reloaded plugins folder.

mod addresses;
mod examples;
mod fields;
mod folder;
mod limits;
mod logs;
mod message_mirror;
mod resources;
mod scaffold;
mod warm;

use std::sync::Arc;

use serde_json::{Map, Value, json};
use wxhost::plugin::{CallContext, Limits, Outcome, Plugin, Runtime, RuntimeLimits};
use wxhost::storage::{KvStore, MemoryKv};
use wxhost::wechat::{Message, Reply};

/// A runtime sharing one compile cache across the tests of this binary.
pub fn runtime() -> Runtime {
    runtime_with(RuntimeLimits::default())
}

pub fn runtime_with(limits: RuntimeLimits) -> Runtime {
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache");
    Runtime::new(limits, Some(cache)).expect("runtime starts")
}

pub fn load(runtime: &Runtime, name: &str, path: &str) -> Plugin {
    let wasm = std::fs::read(path).expect("plugin built");
    runtime.load(name, &wasm).expect("plugin loads")
}

pub fn context(tenant: &str, settings: Value, kv: Arc<dyn KvStore>, limits: Limits) -> CallContext {
    let settings: Map<String, Value> = match settings {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    CallContext::new(tenant, settings, kv, limits)
}

pub fn default_context() -> CallContext {
    context(
        "demo",
        json!({}),
        Arc::new(MemoryKv::default()),
        Limits::default(),
    )
}

pub fn event(name: &str, extra: &str) -> Message {
    Message::parse(&format!(
        "<xml><ToUserName>gh_x</ToUserName><FromUserName>o_user</FromUserName>\
         <CreateTime>1700000000</CreateTime><MsgType>event</MsgType><Event>{name}</Event>{extra}</xml>"
    ))
    .expect("event parses")
}

pub fn text(from: &str, content: &str) -> Message {
    Message::parse(&format!(
        "<xml><ToUserName>gh_x</ToUserName><FromUserName>{from}</FromUserName>\
         <CreateTime>1700000000</CreateTime><MsgType>text</MsgType>\
         <Content>{}</Content><MsgId>42</MsgId></xml>",
        wxhost_tests::cdata(content)
    ))
    .expect("text parses")
}

/// The text of a reply outcome, panicking with the outcome otherwise.
pub fn reply_text(outcome: Result<Outcome, wxhost::plugin::Error>) -> String {
    match outcome {
        Ok(Outcome::Reply(Reply::Text { content })) => content,
        other => panic!("expected a text reply, got {other:?}"),
    }
}
