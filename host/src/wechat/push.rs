//! One official account's side of the callback protocol: open a push (verify, decrypt, parse)
//! and answer it (encode, encrypt); and the same from WeChat's side for the simulator and tests.
//!
//! Whether a push is encrypted is decided from the account's configuration and the body, never
//! from query parameters alone: a safe-mode account refuses plaintext pushes whatever the query
//! says, and the plain `signature` is checked in every mode.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use rand::CryptoRng;
use serde::{Deserialize, Serialize};

use super::crypto::{AesKey, EnvelopeParams, MessageCipher};
use super::error::{Error, Result};
use super::message::Message;
use super::replay::TimestampWindow;
use super::reply::{Reply, ReplyMessage};
use super::signature;
use super::xml::{self, Element};

/// The message mode chosen for the account in the WeChat admin console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// 明文: plaintext pushes and replies.
    Plain,
    /// 兼容: pushes carry both plaintext fields and `Encrypt`; replies are encrypted.
    Compatible,
    /// 安全: pushes and replies are encrypted; plaintext is refused.
    Safe,
}

/// The query string of a callback (GET verification or POST push), every parameter optional
/// so that a missing one is reported by name instead of failing extraction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackQuery {
    /// `signature` over token, timestamp and nonce.
    pub signature: Option<String>,
    /// Seconds since the Unix epoch, as sent.
    pub timestamp: Option<String>,
    /// Random nonce.
    pub nonce: Option<String>,
    /// The string to echo on URL verification (GET only).
    pub echostr: Option<String>,
    /// The sender's openid (POST only).
    pub openid: Option<String>,
    /// `aes` in compatible and safe mode (informative only).
    pub encrypt_type: Option<String>,
    /// `msg_signature` over token, timestamp, nonce and `Encrypt`.
    pub msg_signature: Option<String>,
}

impl CallbackQuery {
    /// Parses a query string as it arrives (`signature=…&timestamp=…`, percent-encoded).
    /// Parameters the protocol does not read are ignored; one it reads given twice is refused,
    /// since which of the two was signed would be a guess.
    pub fn parse(query: &str) -> Result<Self> {
        let mut parsed = CallbackQuery::default();
        for pair in query.split('&') {
            // WeChat's parameters are plain ASCII: decode only a pair that needs it.
            let (key, value) = if pair.bytes().any(|b| matches!(b, b'%' | b'+')) {
                match form_urlencoded::parse(pair.as_bytes()).next() {
                    Some(decoded) => decoded,
                    None => continue,
                }
            } else {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (Cow::Borrowed(key), Cow::Borrowed(value))
            };
            let (slot, name) = match key.as_ref() {
                "signature" => (&mut parsed.signature, "signature"),
                "timestamp" => (&mut parsed.timestamp, "timestamp"),
                "nonce" => (&mut parsed.nonce, "nonce"),
                "echostr" => (&mut parsed.echostr, "echostr"),
                "openid" => (&mut parsed.openid, "openid"),
                "encrypt_type" => (&mut parsed.encrypt_type, "encrypt_type"),
                "msg_signature" => (&mut parsed.msg_signature, "msg_signature"),
                _ => continue,
            };
            if slot.is_some() {
                return Err(Error::RepeatedParameter(name));
            }
            *slot = Some(value.into_owned());
        }
        Ok(parsed)
    }

    /// The query string WeChat would send (`signature=…&timestamp=…`), values percent-encoded.
    pub fn to_query_string(&self) -> String {
        [
            ("signature", &self.signature),
            ("timestamp", &self.timestamp),
            ("nonce", &self.nonce),
            ("echostr", &self.echostr),
            ("openid", &self.openid),
            ("encrypt_type", &self.encrypt_type),
            ("msg_signature", &self.msg_signature),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", percent_encode(v))))
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A verified, decrypted and parsed push.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    /// The message (shared with the plugin chain, which may outlive the request).
    pub message: Arc<Message>,
    /// Whether it arrived encrypted, and so must be answered encrypted.
    pub encrypted: bool,
}

/// The token shared with WeChat. Its `Debug` output never shows it.
#[derive(Clone, PartialEq, Eq)]
struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The protocol identity of one official account.
#[derive(Debug, Clone)]
pub struct Account {
    appid: String,
    token: Token,
    /// Present whenever an EncodingAESKey is configured (always in compatible and safe mode).
    cipher: Option<MessageCipher>,
    mode: Mode,
    /// When set, pushes must be addressed to this original id (gh_…).
    original_id: Option<String>,
    window: TimestampWindow,
}

impl Account {
    /// An account; compatible and safe mode need the EncodingAESKey.
    pub fn new(
        appid: impl Into<String>,
        token: impl Into<String>,
        encoding_aes_key: Option<&str>,
        mode: Mode,
    ) -> Result<Self> {
        let appid = appid.into();
        let cipher = match encoding_aes_key {
            Some(key) => Some(MessageCipher::new(
                AesKey::from_encoding_aes_key(key)?,
                appid.clone(),
            )),
            None if mode == Mode::Plain => None,
            None => return Err(Error::NoAesKey),
        };
        Ok(Account {
            appid,
            token: Token(token.into()),
            cipher,
            mode,
            original_id: None,
            window: TimestampWindow::default(),
        })
    }

    /// Requires pushes to be addressed to `original_id`.
    pub fn with_original_id(mut self, original_id: impl Into<String>) -> Self {
        self.original_id = Some(original_id.into());
        self
    }

    /// Sets the replay window (default 300 s).
    pub fn with_timestamp_window(mut self, window: TimestampWindow) -> Self {
        self.window = window;
        self
    }

    /// The account's appid.
    pub fn appid(&self) -> &str {
        &self.appid
    }

    /// The replay window.
    pub fn timestamp_window(&self) -> TimestampWindow {
        self.window
    }

    /// The configured mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// URL verification (GET): returns the `echostr` to answer with when the signature is valid.
    pub fn verify_url<'q>(&self, query: &'q CallbackQuery, now: i64) -> Result<&'q str> {
        self.check_signature(query, now)?;
        query
            .echostr
            .as_deref()
            .ok_or(Error::MissingParameter("echostr"))
    }

    /// Opens a push (POST): checks the signature and the replay window, decrypts the body
    /// (required in compatible and safe mode, whose pushes WeChat always encrypts: a push
    /// without `Encrypt` there could be a captured one stripped of its ciphertext to skip
    /// `msg_signature`), checks the recipient, and parses the message.
    pub fn open(&self, query: &CallbackQuery, body: &[u8], now: i64) -> Result<Inbound> {
        if body.len() > xml::MAX_DOCUMENT_BYTES {
            return Err(Error::BodyTooLarge {
                len: body.len(),
                limit: xml::MAX_DOCUMENT_BYTES,
            });
        }
        let (timestamp, nonce) = self.check_signature(query, now)?;
        let body = std::str::from_utf8(body).map_err(|_| Error::InvalidUtf8("body"))?;
        let outer = xml::parse_document(body)?;
        let encrypt = outer.child_text("Encrypt").filter(|e| !e.is_empty());
        let inbound = match (encrypt, &self.cipher) {
            (Some(encrypt), Some(cipher)) => {
                let given = query
                    .msg_signature
                    .as_deref()
                    .ok_or(Error::MissingParameter("msg_signature"))?;
                signature::verify_msg_signature(&self.token.0, timestamp, nonce, encrypt, given)?;
                let message = Message::parse(&cipher.decrypt(encrypt)?)?;
                if let Some(outer_to) = outer.child_text("ToUserName")
                    && outer_to != message.to_user
                {
                    return Err(Error::WrongRecipient {
                        expected: outer_to.to_owned(),
                        found: message.to_user,
                    });
                }
                Inbound {
                    message: Arc::new(message),
                    encrypted: true,
                }
            }
            (Some(_), None) if outer.child("MsgType").is_none() => {
                return Err(Error::CiphertextRefused);
            }
            (None, _) if self.mode != Mode::Plain => return Err(Error::PlaintextRefused),
            _ => Inbound {
                message: Arc::new(Message::from_fields(outer)?),
                encrypted: false,
            },
        };
        if let Some(expected) = &self.original_id
            && *expected != inbound.message.to_user
        {
            return Err(Error::WrongRecipient {
                expected: expected.clone(),
                found: inbound.message.to_user.clone(),
            });
        }
        Ok(inbound)
    }

    /// The HTTP body answering `inbound`: the reply (encrypted when the push was), or `success`
    /// (plaintext) / an empty body (encrypted) when there is none.
    pub fn answer(
        &self,
        inbound: &Inbound,
        reply: Option<&Reply>,
        now: i64,
        rng: &mut impl CryptoRng,
    ) -> Result<String> {
        let Some(reply) = reply else {
            return Ok(no_reply(inbound.encrypted).to_owned());
        };
        let msg = &inbound.message;
        let xml = reply.encode(&msg.from_user, &msg.to_user, now)?;
        match (&self.cipher, inbound.encrypted) {
            (Some(cipher), true) => cipher.seal(&xml, &self.token.0, now, rng),
            _ => Ok(xml),
        }
    }

    /// Builds a push to this account exactly as WeChat would in the account's mode: the query
    /// (signature, and msg_signature when encrypted) and the body.
    pub fn simulate_push(
        &self,
        message: &Message,
        params: &EnvelopeParams,
    ) -> Result<(CallbackQuery, String)> {
        let timestamp = params.timestamp.to_string();
        let mut query = CallbackQuery {
            signature: Some(signature::signature(
                &self.token.0,
                &timestamp,
                &params.nonce,
            )),
            timestamp: Some(timestamp.clone()),
            nonce: Some(params.nonce.clone()),
            openid: Some(message.from_user.clone()),
            ..CallbackQuery::default()
        };
        let cipher = match (&self.cipher, self.mode) {
            (Some(cipher), Mode::Compatible | Mode::Safe) => cipher,
            _ => return Ok((query, message.to_xml())),
        };
        let encrypt = cipher.encrypt_with_random(&message.to_xml(), &params.random)?;
        query.encrypt_type = Some("aes".into());
        query.msg_signature = Some(signature::msg_signature(
            &self.token.0,
            &timestamp,
            &params.nonce,
            &encrypt,
        ));
        let mut body = match self.mode {
            Mode::Compatible => message.fields.clone(),
            _ => Element {
                name: "xml".into(),
                text: String::new(),
                children: vec![Element::leaf("ToUserName", message.to_user.as_str())],
            },
        };
        body.children.push(Element::leaf("Encrypt", encrypt));
        let mut out = String::new();
        body.write(&mut out, &["CreateTime", "MsgId"]);
        Ok((query, out))
    }

    /// Reads an answer as WeChat would: `None` for `success` or an empty body, otherwise the
    /// reply, after checking the envelope's signature and decrypting it when `encrypted`.
    pub fn read_answer(&self, body: &str, encrypted: bool) -> Result<Option<ReplyMessage>> {
        if body.is_empty() || body == "success" {
            return Ok(None);
        }
        if !encrypted {
            return Reply::parse(body).map(Some);
        }
        let cipher = self.cipher.as_ref().ok_or(Error::NoAesKey)?;
        let envelope = xml::parse_document(body)?;
        let field = |name: &'static str| envelope.child_text(name).ok_or(Error::MissingField(name));
        let encrypt = field("Encrypt")?;
        signature::verify_msg_signature(
            &self.token.0,
            field("TimeStamp")?,
            field("Nonce")?,
            encrypt,
            field("MsgSignature")?,
        )?;
        Reply::parse(&cipher.decrypt(encrypt)?).map(Some)
    }

    fn check_signature<'q>(
        &self,
        query: &'q CallbackQuery,
        now: i64,
    ) -> Result<(&'q str, &'q str)> {
        let param =
            |value: &'q Option<String>, name| value.as_deref().ok_or(Error::MissingParameter(name));
        let timestamp = param(&query.timestamp, "timestamp")?;
        let nonce = param(&query.nonce, "nonce")?;
        let given = param(&query.signature, "signature")?;
        signature::verify_signature(&self.token.0, timestamp, nonce, given)?;
        self.window.check(timestamp, now)?;
        Ok((timestamp, nonce))
    }
}

/// The body that tells WeChat there is no passive reply.
pub fn no_reply(encrypted: bool) -> &'static str {
    if encrypted { "" } else { "success" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_round_trips_through_its_string() {
        let query = CallbackQuery {
            signature: Some("ab12".into()),
            timestamp: Some("1700000000".into()),
            nonce: Some("n 1&2=3".into()),
            echostr: Some("中文+/=".into()),
            openid: Some("o_user".into()),
            encrypt_type: Some("aes".into()),
            msg_signature: Some("cd34".into()),
        };
        assert_eq!(
            CallbackQuery::parse(&query.to_query_string()),
            Ok(query.clone())
        );
    }

    #[test]
    fn query_decodes_percent_and_plus_and_ignores_unknown_parameters() {
        let query =
            CallbackQuery::parse("nonce=a%20b+c&utm_source=x&timestamp=1&empty").expect("parses");
        assert_eq!(query.nonce.as_deref(), Some("a b c"));
        assert_eq!(query.timestamp.as_deref(), Some("1"));
        assert_eq!(query.signature, None);
        assert_eq!(CallbackQuery::parse(""), Ok(CallbackQuery::default()));
    }

    #[test]
    fn query_refuses_a_repeated_parameter() {
        assert_eq!(
            CallbackQuery::parse("signature=a&nonce=n&signature=b"),
            Err(Error::RepeatedParameter("signature"))
        );
    }
}
