//! wxhost hosts WeChat Official Account (公众号) bots for many accounts at once, with the bot
//! logic in sandboxed WebAssembly plugins.
//!
//! # Module map
//! - [`clock`], [`secret`]: leaves every layer may use: the wall clock, and a value whose `Debug`
//!   output is redacted.
//! - [`wechat`]: the callback protocol with no I/O: `signature`, `crypto` (AES-256-CBC with
//!   WeChat's 32-byte PKCS#7), `xml` (hardened reader), `message` (typed model of every message
//!   and event), `reply` (the seven passive replies), `replay` (timestamp window), and `push`
//!   (an account opening and answering a push, and building one as WeChat would).
//! - [`wechat_api`]: the WeChat API client: access tokens (single-flight, stored), customer-service
//!   and template messages, generic calls, typed errors, and late replies sent as
//!   customer-service messages.
//! - [`http_client`]: outbound HTTPS (rustls over ring).
//! - [`config`]: `wxhost.toml`, raw serde structs validated into a ready `Config`.
//! - [`tenant`]: each account's protocol identity and plugin chain (match rules compiled),
//!   swapped as a whole on config reload.
//! - [`dispatch`]: the pipeline verify → decrypt → parse → dedup → plugin chain under the
//!   passive budget → encode, and the hand-off of late replies.
//! - [`dedup`]: single-flight table of messages in flight and answered, so retries replay the
//!   first answer; signed queries bound to their bodies for the window, so replays run nothing.
//! - [`plugin`]: the sandboxed WebAssembly runtime (`Runtime`), the hot-reloaded plugins
//!   folder (`Registry`), limits, and the host side of the WIT imports (the only `bindgen!`).
//! - [`storage`]: plugin key-value data behind the `KvStore` trait, and compact expiring facts
//!   behind `FactStore` (redb file with a write overlay and a group-committing thread, or memory).
//! - [`http`]: the axum router (callbacks, health, metrics; errors become 4xx responses) and the
//!   listener that serves it (header, body and idle timers, a connection cap, a shutdown with a
//!   deadline).
//! - [`server`]: `wxhost serve`: builds the app, watches config and plugins, shuts down cleanly.
//! - [`simulator`]: `wxhost send`: a push built exactly as WeChat would, and the answer read back.
//! - [`telemetry`]: logging setup and Prometheus metrics.
//! - [`scaffold`]: `wxhost new-plugin`, a plugin crate that builds out of the box.
//! - [`demo`]: the walk-through `wxhost demo` prints.
//!
//! See ARCHITECTURE.md for the invariants and boundaries.

pub mod admin;
pub mod clock;
pub mod config;
pub mod dedup;
pub mod demo;
pub mod dispatch;
pub mod http;
pub mod http_client;
pub mod late_reply;
pub mod menu;
pub mod plugin;
pub mod scaffold;
pub mod secret;
pub mod server;
pub mod simulator;
pub mod storage;
pub mod telemetry;
pub mod tenant;
pub mod wechat;
pub mod wechat_api;
