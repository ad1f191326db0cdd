//! The WeChat API client: access tokens per account, customer-service and template messages,
//! media material, and a generic call for any API path.

mod client;
mod error;
pub mod media;
pub mod messages;
mod token;
mod window;

use serde::Deserialize;

pub use client::{AccountApi, ApiClient, ApiRequest, Idempotency, Method, check_path};
pub use error::{ApiError, hint};
pub use messages::{CustomMessage, TemplateMessage};
pub use token::CachedToken;
pub use window::ServiceWindow;

use crate::secret::Secret;

/// WeChat's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.weixin.qq.com";

/// Which endpoint issues access tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpoint {
    /// `cgi-bin/stable_token`: the same token for every caller until it expires, so several
    /// hosts (or other tools on the same account) do not invalidate each other's tokens.
    #[default]
    Stable,
    /// `cgi-bin/token`: each fetch invalidates the previous token after five minutes.
    Classic,
}

/// What calling the API as one account takes.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The tenant id (for logs, metrics and the token's storage namespace).
    pub tenant: String,
    /// The account's appid.
    pub appid: String,
    /// The app secret; without it every call fails with [`ApiError::NoSecret`].
    pub secret: Option<Secret>,
    /// The API base URL ([`DEFAULT_BASE_URL`] unless configured).
    pub base_url: String,
    /// Where tokens come from.
    pub token_endpoint: TokenEndpoint,
}
