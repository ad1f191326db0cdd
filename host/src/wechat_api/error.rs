//! Why a WeChat API call failed: WeChat's own `errcode`/`errmsg`, or a failure before WeChat
//! answered. Never carries a secret or an access token.

/// A failed WeChat API call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// WeChat answered with a non-zero `errcode`.
    #[error("WeChat API error {code}: {message}{}", hint(*code).map(|h| format!(" ({h})")).unwrap_or_default())]
    WeChat {
        /// WeChat's `errcode`.
        code: i64,
        /// WeChat's `errmsg`.
        message: String,
    },
    /// The tenant has no `app_secret`, so it cannot get an access token.
    #[error("tenant {0} has no app_secret configured; the WeChat API is unavailable")]
    NoSecret(String),
    /// No answer within the client's timeout.
    #[error("WeChat API request timed out")]
    Timeout,
    /// The request could not be sent or its answer not read.
    #[error("WeChat API unreachable: {0}")]
    Transport(String),
    /// WeChat answered with an HTTP status other than 200.
    #[error("WeChat API answered HTTP {0}")]
    Status(u16),
    /// The answer was not the JSON expected.
    #[error("WeChat API answer is not valid: {0}")]
    Decode(String),
    /// The request was refused before sending (bad path, bad message).
    #[error("invalid WeChat API request: {0}")]
    Invalid(String),
    /// A customer-service send refused before the call: the user's last interaction is older
    /// than WeChat's 48-hour window (or WeChat refused a send since, with 45015).
    #[error(
        "the user is outside the customer-service window (last interaction at {last_interaction}, \
         Unix seconds): WeChat would answer 45015; a template message can still reach them"
    )]
    OutsideWindow {
        /// When the user last interacted, in seconds since the Unix epoch.
        last_interaction: i64,
    },
    /// A customer-service send refused before the call: the user's last interaction allows
    /// no more sends.
    #[error(
        "the user's last interaction allows {limit} customer-service messages and they are sent: \
         WeChat would answer 45047; the count starts again when the user writes"
    )]
    OverUserLimit {
        /// The sends one interaction allows.
        limit: u32,
    },
}

/// `errcode` values meaning the access token is invalid or expired.
pub const TOKEN_ERRORS: [i64; 3] = [40001, 40014, 42001];
/// `errcode` meaning WeChat is busy; the request may or may not have taken effect.
pub const SYSTEM_BUSY: i64 = -1;

impl ApiError {
    /// WeChat's `errcode`, when WeChat answered with one (or would have, for a send refused
    /// by the user's window).
    pub fn code(&self) -> Option<i64> {
        match self {
            ApiError::WeChat { code, .. } => Some(*code),
            ApiError::OutsideWindow { .. } => Some(super::window::OUTSIDE_WINDOW),
            ApiError::OverUserLimit { .. } => Some(super::window::OVER_LIMIT),
            _ => None,
        }
    }

    /// Whether the access token used was rejected (40001, 40014, 42001).
    pub fn is_token_rejected(&self) -> bool {
        self.code().is_some_and(|c| TOKEN_ERRORS.contains(&c))
    }

    /// Whether the outcome is unknown: a timeout or WeChat's "system busy" (−1). Only an
    /// idempotent request may be retried after one of these.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, ApiError::Timeout) || self.code() == Some(SYSTEM_BUSY)
    }

    /// A short stable name for metrics and logs (`errcode_45015`, `timeout`, …).
    pub fn kind(&self) -> String {
        match self {
            ApiError::WeChat { code, .. } => format!("errcode_{code}"),
            ApiError::NoSecret(_) => "no_secret".into(),
            ApiError::Timeout => "timeout".into(),
            ApiError::Transport(_) => "transport".into(),
            ApiError::Status(_) => "http_status".into(),
            ApiError::Decode(_) => "decode".into(),
            ApiError::Invalid(_) => "invalid".into(),
            ApiError::OutsideWindow { .. } => "outside_window".into(),
            ApiError::OverUserLimit { .. } => "over_user_limit".into(),
        }
    }
}

/// What a common `errcode` means and what to do about it.
pub fn hint(code: i64) -> Option<&'static str> {
    Some(match code {
        -1 => "WeChat is busy; retry later",
        40001 => "the access token is invalid, or app_secret is wrong",
        40013 => "the appid is invalid",
        40014 => "the access token is malformed",
        40003 => "the openid is not a follower of this account",
        40037 => "the template_id is invalid",
        40125 => "the app_secret is wrong",
        40164 => {
            "this server's IP address is not on the account's API IP whitelist \
                  (mp.weixin.qq.com → Settings and Development → Basic Configuration)"
        }
        42001 => "the access token expired",
        43004 => "the user does not follow this account",
        45009 => "the daily quota of this API is used up; it resets at midnight Beijing time",
        45015 => {
            "the user has not messaged the account within 48 hours, so customer-service \
                  messages cannot reach them"
        }
        45047 => "too many customer-service messages without a reply from the user",
        47001 => "the request body is malformed",
        48001 => {
            "the account is not authorised for this API (unverified, or the permission \
                  is missing)"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_codes_are_explained_in_the_message() {
        let quota = ApiError::WeChat {
            code: 45009,
            message: "reach max api daily quota limit".into(),
        };
        assert!(quota.to_string().contains("daily quota"), "{quota}");
        let window = ApiError::WeChat {
            code: 45015,
            message: "response out of time limit".into(),
        };
        assert!(window.to_string().contains("48 hours"), "{window}");
        for code in [40164, 48001] {
            assert!(hint(code).is_some());
        }
        let unknown = ApiError::WeChat {
            code: 99999,
            message: "x".into(),
        };
        assert_eq!(unknown.to_string(), "WeChat API error 99999: x");
    }

    #[test]
    fn classification() {
        let api = |code| ApiError::WeChat {
            code,
            message: String::new(),
        };
        assert!(api(40001).is_token_rejected() && api(42001).is_token_rejected());
        assert!(!api(45009).is_token_rejected());
        assert!(api(-1).is_outcome_unknown() && ApiError::Timeout.is_outcome_unknown());
        assert!(!api(45009).is_outcome_unknown());
        assert_eq!(api(45015).kind(), "errcode_45015");
    }
}
