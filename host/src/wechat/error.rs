//! The one error type of the protocol core, each variant mapped to the official error code.

/// Why a push could not be verified, decrypted or parsed, or a reply could not be encoded.
///
/// Callers match on the variant; [`Error::code`] gives the code of WeChat's official sample
/// library (`WXBizMsgCrypt`), so logs line up with what WeChat's documentation calls the failure.
/// No variant carries a secret (token, key or app secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The `signature` or `msg_signature` does not match the token, timestamp and nonce.
    #[error("{which} mismatch")]
    SignatureMismatch {
        /// `"signature"` or `"msg_signature"`.
        which: &'static str,
    },
    /// A query parameter the protocol requires is absent.
    #[error("missing query parameter `{0}`")]
    MissingParameter(&'static str),
    /// A query parameter the protocol reads appears more than once.
    #[error("query parameter `{0}` appears more than once")]
    RepeatedParameter(&'static str),
    /// The `timestamp` parameter is not a number of seconds.
    #[error("timestamp {0:?} is not a number of seconds")]
    InvalidTimestamp(String),
    /// The timestamp lies outside the replay window.
    #[error("timestamp is {skew_secs} s away from now, outside the {window_secs} s window")]
    StaleTimestamp {
        /// Distance between the push's timestamp and now, in seconds.
        skew_secs: u64,
        /// The configured window.
        window_secs: u64,
    },
    /// The account is in compatible or safe mode (WeChat encrypts every push) but the push
    /// carries no `Encrypt`.
    #[error(
        "plaintext push refused: this account's pushes are encrypted (compatible or safe mode)"
    )]
    PlaintextRefused,
    /// An encrypted mode needs an EncodingAESKey and none is configured.
    #[error("the account has no EncodingAESKey")]
    NoAesKey,
    /// The push is encrypted but the account is in plain mode without an EncodingAESKey.
    #[error("encrypted push refused: this account is in plain mode and has no EncodingAESKey")]
    CiphertextRefused,
    /// The push is addressed to another official account.
    #[error("push addressed to {found:?}, not to this account ({expected:?})")]
    WrongRecipient {
        /// The original id (gh_…) this account expects.
        expected: String,
        /// The `ToUserName` of the push.
        found: String,
    },
    /// The EncodingAESKey is not 43 base64 characters.
    #[error("invalid EncodingAESKey: {0}")]
    InvalidAesKey(&'static str),
    /// The decrypted message ends with another account's appid.
    #[error("appid mismatch: expected {expected:?}, found {found:?}")]
    AppIdMismatch {
        /// This account's appid.
        expected: String,
        /// The appid found after the message (lossily decoded).
        found: String,
    },
    /// The message is too large to encrypt.
    #[error("message of {0} bytes is too large to encrypt")]
    EncryptFailed(usize),
    /// The ciphertext is empty or not a whole number of AES blocks.
    #[error("ciphertext of {0} bytes is not a non-empty multiple of 16")]
    CiphertextLength(usize),
    /// The PKCS#7 pad value is outside 1..=32.
    #[error("padding value {0} is outside 1..=32")]
    InvalidPadding(u8),
    /// Not every pad byte equals the pad value.
    #[error("padding bytes are not all equal to the pad value {0}")]
    InconsistentPadding(u8),
    /// The decrypted buffer is too short, or its length field points past its end.
    #[error("decrypted message needs {declared} bytes but only {available} are there")]
    LengthOutOfBounds {
        /// The message length the length field declares.
        declared: u64,
        /// The bytes actually available after the header.
        available: usize,
    },
    /// The `Encrypt` value is not valid base64.
    #[error("Encrypt is not valid base64: {0}")]
    Base64(String),
    /// The body or the decrypted message is not UTF-8.
    #[error("{0} is not valid UTF-8")]
    InvalidUtf8(&'static str),
    /// The body is larger than a push can be.
    #[error("body of {len} bytes exceeds the {limit}-byte limit")]
    BodyTooLarge {
        /// Size of the body.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The XML declares a DTD or uses an entity other than the five predefined ones.
    #[error("forbidden XML construct: {0}")]
    XmlForbidden(String),
    /// The XML is not well-formed, or not shaped like a WeChat message.
    #[error("malformed XML: {0}")]
    Xml(String),
    /// A field the message type requires is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field is present but its value is not valid.
    #[error("field `{field}` has invalid value {value:?}")]
    InvalidField {
        /// The element name.
        field: &'static str,
        /// The value found (truncated to 64 characters).
        value: String,
    },
    /// A text reply's content is longer than WeChat accepts.
    #[error("text reply of {0} bytes exceeds WeChat's 2048-byte limit")]
    ReplyTextTooLong(usize),
    /// A news reply has no articles or more than WeChat shows.
    #[error("news reply has {0} articles; WeChat accepts 1 to 8")]
    ArticleCount(usize),
    /// A reply field is empty where WeChat requires a value.
    #[error("reply field `{0}` must not be empty")]
    EmptyReplyField(&'static str),
    /// A reply field holds a character that XML 1.0 cannot carry.
    #[error("reply field `{0}` contains a character XML cannot carry (a control character)")]
    InvalidReplyChar(&'static str),
    /// A reply field is longer than this host sends (`wechat::reply::field_limit`).
    #[error("reply field `{field}` of {len} bytes exceeds the {limit}-byte limit")]
    ReplyFieldTooLong {
        /// The field's name in the reply model.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// Its cap.
        limit: usize,
    },
    /// The reply as a whole is larger than this host sends (`Reply::encoded_len` over
    /// `MAX_REPLY_BYTES`).
    #[error("reply of {len} bytes encoded exceeds the {limit}-byte limit")]
    ReplyTooLarge {
        /// Its encoded size (without the addressing).
        len: usize,
        /// The cap.
        limit: usize,
    },
}

impl Error {
    /// The code of WeChat's official sample library for this class of failure.
    ///
    /// | code | meaning |
    /// |---|---|
    /// | −40001 | signature validation (also a stale or malformed timestamp, a missing parameter, a refused plaintext push) |
    /// | −40002 | XML parse |
    /// | −40004 | illegal AES key |
    /// | −40005 | appid (or recipient) mismatch |
    /// | −40006 | encrypt |
    /// | −40007 | decrypt (length, padding) |
    /// | −40008 | illegal buffer (length field, UTF-8) |
    /// | −40010 | base64 decode |
    /// | −40011 | generating the reply XML |
    pub fn code(&self) -> i32 {
        match self {
            Error::SignatureMismatch { .. }
            | Error::MissingParameter(_)
            | Error::RepeatedParameter(_)
            | Error::InvalidTimestamp(_)
            | Error::StaleTimestamp { .. }
            | Error::PlaintextRefused => -40001,
            Error::Xml(_)
            | Error::XmlForbidden(_)
            | Error::BodyTooLarge { .. }
            | Error::MissingField(_)
            | Error::InvalidField { .. } => -40002,
            Error::InvalidAesKey(_) | Error::NoAesKey | Error::CiphertextRefused => -40004,
            Error::AppIdMismatch { .. } | Error::WrongRecipient { .. } => -40005,
            Error::EncryptFailed(_) => -40006,
            Error::CiphertextLength(_)
            | Error::InvalidPadding(_)
            | Error::InconsistentPadding(_) => -40007,
            Error::LengthOutOfBounds { .. } | Error::InvalidUtf8(_) => -40008,
            Error::Base64(_) => -40010,
            Error::ReplyTextTooLong(_)
            | Error::ArticleCount(_)
            | Error::EmptyReplyField(_)
            | Error::InvalidReplyChar(_)
            | Error::ReplyFieldTooLong { .. }
            | Error::ReplyTooLarge { .. } => -40011,
        }
    }

    /// True when the failure is the sender's fault (bad signature, malformed input), as opposed to
    /// a fault of this host's configuration or of a plugin's reply.
    pub fn is_bad_request(&self) -> bool {
        !matches!(
            self,
            Error::NoAesKey
                | Error::InvalidAesKey(_)
                | Error::EncryptFailed(_)
                | Error::ReplyTextTooLong(_)
                | Error::ArticleCount(_)
                | Error::EmptyReplyField(_)
                | Error::InvalidReplyChar(_)
                | Error::ReplyFieldTooLong { .. }
                | Error::ReplyTooLarge { .. }
        )
    }

    pub(crate) fn invalid_field(field: &'static str, value: &str) -> Self {
        Error::InvalidField {
            field,
            value: value.chars().take(64).collect(),
        }
    }
}

/// Result alias of the protocol core.
pub type Result<T, E = Error> = std::result::Result<T, E>;
