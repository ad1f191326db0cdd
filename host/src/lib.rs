//! wxhost hosts WeChat Official Account (公众号) bots for many accounts at once, with the bot
//! logic in sandboxed WebAssembly plugins.
//!
//! # Module map
//! - [`wechat`]: the callback protocol with no I/O: `signature`, `crypto` (AES-256-CBC with
//!   WeChat's 32-byte PKCS#7), `xml` (hardened reader), `message` (typed model of every message
//!   and event), `reply` (the seven passive replies), `replay` (timestamp window), and `push`
//!   (an account opening and answering a push, and building one as WeChat would).
//! - [`plugin`]: the sandboxed WebAssembly runtime (`Runtime`), the hot-reloaded plugins
//!   folder (`Registry`), limits, and the host side of the WIT imports (the only `bindgen!`).
//! - [`scaffold`]: `wxhost new-plugin`, a plugin crate that builds out of the box.
//! - [`storage`]: plugin key-value data behind the `KvStore` trait (redb file, or memory).
//! - [`demo`]: the end-to-end walk-through `wxhost demo` prints.
//!
//! See ARCHITECTURE.md for the invariants and where the server, plugins and API client go.

pub mod demo;
pub mod plugin;
pub mod scaffold;
pub mod storage;
pub mod wechat;
