//! Write [wxhost](https://github.com/wxhost/wxhost) plugins: WeChat Official Account bot logic
//! that runs sandboxed in WebAssembly.
//!
//! A plugin is a type implementing [`Plugin`], exported with [`export!`], built with
//! `cargo build --release --target wasm32-wasip2`. Drop the `.wasm` into the host's plugins
//! folder; it is loaded (and reloaded on change) without a restart. `wxhost new-plugin NAME`
//! creates a crate that builds out of the box.
//!
//! Each message is handled under a fuel budget, a deadline and a memory cap. The host may run
//! several messages of the same tenant one after another in the same instance (a fresh one
//! after a trap, a limit, a config change or every `calls_per_instance` calls), so statics
//! are a cache at best: keep state in [`kv`]. The plugin reads its per-tenant settings with
//! [`config`] and writes log lines with [`log`]. With capabilities the tenant grants, it calls
//! the WeChat API ([`wechat`]), uploads and downloads media material ([`media`], and replies
//! with pictures, voice and video made from bytes) and calls outside services ([`http`]);
//! [`reply_early`] answers WeChat
//! at once while the plugin keeps working.
//!
//! # Messages and replies
//!
//! [`Message`] and [`Reply`] mirror the host's own model (a guest cannot depend on the host)
//! and are checked against it by the host's tests: every message and event type reaches a
//! plugin field for field as the host parsed it, both sides serialise to the same JSON (content
//! tagged by `type`, events by `event`, replies by `type`, snake case), and
//! [`Reply::validate`] applies the host's rules (text ≤ [`MAX_TEXT_BYTES`] bytes, 1 to
//! [`MAX_ARTICLES`] articles, required media ids, each field within its cap ([`field_limit`]),
//! the whole reply within [`MAX_REPLY_BYTES`], no character XML cannot carry) and refuses
//! exactly the replies the host would. [`Content`] and [`Event`] are `#[non_exhaustive]`: the
//! host may model more types in a minor version, so a `match` on them needs a `_` arm.
//! [`testing::TestHost::handle`] runs a plugin natively and checks its reply the same way.
//!
//! # Example
//!
//! ```
//! use wxhost_sdk::{Message, Outcome, Plugin, Reply};
//!
//! /// Counts the messages of each user and answers with the count.
//! struct Counter;
//!
//! impl Plugin for Counter {
//!     fn handle(msg: &Message) -> wxhost_sdk::Result<Outcome> {
//!         let Some(text) = msg.text() else {
//!             return Ok(Outcome::Pass); // not a text message: let the next plugin try
//!         };
//!         let greeting: String = wxhost_sdk::config::get("greeting")?.unwrap_or_else(|| "hi".into());
//!         let seen = wxhost_sdk::kv::increment(&format!("seen:{}", msg.from_user()), 1)?;
//!         wxhost_sdk::log::info(&format!("message {seen} from this user"));
//!         Ok(Reply::text(format!("{greeting}! #{seen}: {text}")).into())
//!     }
//! }
//!
//! wxhost_sdk::export!(Counter);
//!
//! // Natively, the same code runs against a test host with fake kv and config, which checks
//! // each reply as the host does (`Reply::validate`):
//! let host = wxhost_sdk::testing::TestHost::new().setting("greeting", "你好");
//! let msg = wxhost_sdk::testing::text_message("o_user", "ping");
//! assert_eq!(host.handle::<Counter>(&msg).unwrap(), Reply::text("你好! #1: ping").into());
//! assert_eq!(host.handle::<Counter>(&msg).unwrap(), Reply::text("你好! #2: ping").into());
//! assert_eq!(host.kv_get("seen:o_user"), Some(b"2".to_vec()));
//! ```
#![deny(missing_docs)]

pub mod config;
mod error;
pub mod http;
pub mod kv;
pub mod log;
pub mod media;
mod message;
mod reply;
mod runtime;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod wechat;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod bindings;

pub use error::{Error, Result};
pub use message::{
    Content, Envelope, Event, Field, Fields, Message, SubscribeMsgItem, SubscribeMsgSentItem,
};
pub use reply::{
    Article, MAX_ARTICLES, MAX_DESCRIPTION_BYTES, MAX_KF_ACCOUNT_BYTES, MAX_MEDIA_ID_BYTES,
    MAX_REPLY_BYTES, MAX_TEXT_BYTES, MAX_TITLE_BYTES, MAX_URL_BYTES, Outcome, Reply, ReplyError,
    field_limit,
};

/// A plugin: handles one message and says what to do with it.
pub trait Plugin {
    /// Handles `msg`: answer with a reply ([`Outcome::Reply`]), stop the chain without one
    /// ([`Outcome::Handled`]), or let the next plugin try ([`Outcome::Pass`]). An error is
    /// logged by the host, which goes on with the next plugin.
    fn handle(msg: &Message) -> Result<Outcome>;
}

/// Answers WeChat with `reply` now and keeps working: for work that takes longer than WeChat
/// waits (about 5 s). A [`Reply`] the plugin returns afterwards is sent as a customer-service
/// message (the tenant needs an app secret). Fails when the message was already answered or
/// the reply is invalid.
pub fn reply_early(reply: Reply) -> Result<()> {
    runtime::host::early_reply(reply).map_err(Error::msg)
}

/// Exports a [`Plugin`] type as the component's `handle` function.
///
/// ```
/// struct Echo;
/// impl wxhost_sdk::Plugin for Echo {
///     fn handle(msg: &wxhost_sdk::Message) -> wxhost_sdk::Result<wxhost_sdk::Outcome> {
///         Ok(match msg.text() {
///             Some(text) => wxhost_sdk::Reply::text(format!("echo: {text}")).into(),
///             None => wxhost_sdk::Outcome::Pass,
///         })
///     }
/// }
/// wxhost_sdk::export!(Echo);
/// ```
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __WxhostExport;
            impl $crate::bindings::Guest for __WxhostExport {
                fn handle(
                    msg: $crate::bindings::Message,
                ) -> ::core::result::Result<$crate::bindings::Outcome, ::std::string::String>
                {
                    $crate::bindings::handle::<$plugin>(msg)
                }
            }
    $crate::bindings::__export_plugin!(__WxhostExport with_types_in $crate::bindings);
        };
    };
}
