//! The WeChat API as the current tenant's account (the host holds the secret and the access
//! token). Needs the `wechat-api` capability in the tenant config; [`call`] also needs the path
//! in the plugin's `api_paths`.
//!
//! ```no_run
//! use wxhost_sdk::wechat::{self, CustomMessage};
//! // To the sender of the message being handled:
//! wechat::send_custom(None, &CustomMessage::Text("your order shipped".into()))?;
//! # Ok::<(), wxhost_sdk::wechat::ApiError>(())
//! ```

use crate::reply::Article;
use crate::runtime::host;

/// Why an API call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// Not granted: the capability, or this API path.
    Denied(String),
    /// WeChat refused the call (45015: the user has not written within 48 hours; …).
    WeChat {
        /// `errcode`.
        code: i64,
        /// `errmsg`.
        message: String,
    },
    /// The request is malformed.
    Invalid(String),
    /// WeChat is unreachable or timed out, the tenant has no app secret, or this call used up
    /// its API quota.
    Unavailable(String),
}

impl ApiError {
    /// Whether a customer-service send failed because the user is outside WeChat's 48-hour
    /// window (45015; the host refuses such a send itself when it knows, without calling
    /// WeChat): a template message can still reach them.
    ///
    /// ```
    /// use wxhost_sdk::wechat::ApiError;
    /// let e = ApiError::WeChat { code: 45015, message: "outside the window".into() };
    /// assert!(e.is_outside_window() && !e.is_over_user_limit());
    /// ```
    pub fn is_outside_window(&self) -> bool {
        matches!(self, ApiError::WeChat { code: 45015, .. })
    }

    /// Whether a customer-service send failed because the user's last message allows no more
    /// (45047, refused by the host too when it knows): wait for the user to write again.
    pub fn is_over_user_limit(&self) -> bool {
        matches!(self, ApiError::WeChat { code: 45047, .. })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Denied(why) => write!(f, "WeChat API denied: {why}"),
            ApiError::WeChat { code, message } => write!(f, "WeChat API error {code}: {message}"),
            ApiError::Invalid(why) => write!(f, "invalid WeChat API request: {why}"),
            ApiError::Unavailable(why) => write!(f, "WeChat API unavailable: {why}"),
        }
    }
}

impl std::error::Error for ApiError {}

/// A customer-service message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs, reason = "field names say what they hold")]
pub enum CustomMessage {
    /// Text.
    Text(String),
    /// A picture, by media id.
    Image { media_id: String },
    /// A voice message, by media id.
    Voice { media_id: String },
    /// A video, by media id.
    Video {
        media_id: String,
        thumb_media_id: String,
        title: String,
        description: String,
    },
    /// A music card.
    Music {
        title: String,
        description: String,
        music_url: String,
        hq_music_url: String,
        thumb_media_id: String,
    },
    /// A link card.
    News(Article),
    /// A mini-program card.
    MiniProgramPage {
        title: String,
        app_id: String,
        page_path: String,
        thumb_media_id: String,
    },
}

/// A template message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateMessage {
    /// The recipient; `None` for the sender of the message being handled.
    pub to_user: Option<String>,
    /// The template id.
    pub template_id: String,
    /// The page opened on tap.
    pub url: Option<String>,
    /// The mini-program page opened on tap: `(appid, pagepath)`.
    pub mini_program: Option<(String, String)>,
    /// The fields: `(name, value, colour)`.
    pub data: Vec<(String, String, Option<String>)>,
    /// Makes WeChat drop a repeated send with the same id.
    pub client_msg_id: Option<String>,
}

/// An HTTP method of the WeChat API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST with a JSON body.
    Post,
}

/// Sends a customer-service message to `to_user` (`None`: the sender of the message being
/// handled). The host never repeats it when the outcome is unknown.
pub fn send_custom(to_user: Option<&str>, message: &CustomMessage) -> Result<(), ApiError> {
    host::send_custom(to_user, message)
}

/// Sends a customer-service text to the sender of the message being handled.
pub fn send_text(text: impl Into<String>) -> Result<(), ApiError> {
    send_custom(None, &CustomMessage::Text(text.into()))
}

/// Sends a template message; returns WeChat's `msgid`.
pub fn send_template(message: &TemplateMessage) -> Result<u64, ApiError> {
    host::send_template(message)
}

/// Calls an API path on the plugin's `api_paths` list (`cgi-bin/user/info`) with `query` and
/// an optional JSON `body`; returns WeChat's JSON answer.
pub fn call(
    method: Method,
    path: &str,
    query: &[(&str, &str)],
    body: Option<&serde_json::Value>,
) -> Result<serde_json::Value, ApiError> {
    let query: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let answer = host::api_call(method, path, &query, body.map(|b| b.to_string()))?;
    serde_json::from_str(&answer).map_err(|e| ApiError::Invalid(format!("answer is not JSON: {e}")))
}
