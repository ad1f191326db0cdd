//! Where capability calls go: the host's WIT imports in a wasm build, the installed
//! [`TestHost`](crate::testing::TestHost) in a native build (unit tests).
//!
//! Both sides provide the same functions: `raw_fields`, `log`, `config_get`, `config_all`,
//! `kv_get`, `kv_set`, `kv_delete`, `kv_increment`, `early_reply`, `send_custom`,
//! `send_template`, `api_call`, `media_upload`, `media_upload_permanent`, `media_download`,
//! `http_send`.

#[cfg(target_arch = "wasm32")]
pub(crate) use crate::bindings::imports as host;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) use crate::testing::host;
