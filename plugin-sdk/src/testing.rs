//! Unit-test plugins natively (no wasm): a [`TestHost`] with fake kv, settings, a log
//! recorder, canned HTTP responses and WeChat API answers, a record of what was sent, and
//! builders for messages.
//!
//! [`TestHost::handle`] runs a plugin as the host would: a reply that breaks WeChat's rules
//! ([`Reply::validate`]) is the plugin's error, here as in production; so is an early reply
//! ([`crate::reply_early`]).
//!
//! ```
//! use wxhost_sdk::testing::{TestHost, text_message};
//! use wxhost_sdk::{Message, Outcome, Plugin, Reply};
//!
//! struct Shout;
//! impl Plugin for Shout {
//!     fn handle(msg: &Message) -> wxhost_sdk::Result<Outcome> {
//!         let text = msg.text().unwrap_or_default().to_uppercase();
//!         wxhost_sdk::kv::set("last", &text, None)?;
//!         Ok(Reply::text(text).into())
//!     }
//! }
//!
//! let host = TestHost::new();
//! assert_eq!(host.handle::<Shout>(&text_message("o_user", "hi")), Ok(Reply::text("HI").into()));
//! assert_eq!(host.kv_get("last"), Some(b"HI".to_vec()));
//! // 2049 bytes: WeChat's limit is 2048, so the host would refuse it.
//! let long = text_message("o_user", &"a".repeat(2049));
//! assert!(host.handle::<Shout>(&long).is_err());
//!
//! let _guard = host.install(); // capability calls on this thread go to `host`
//! wxhost_sdk::kv::set("k", "v", None).unwrap();
//! assert_eq!(host.kv_get("k"), Some(b"v".to_vec()));
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde::Serialize;

use crate::http;
use crate::kv;
use crate::log::Level;
use crate::media;
use crate::message::{Content, Envelope, Event, Field, Fields, Message};
use crate::reply::{Outcome, Reply};
use crate::wechat::{ApiError, CustomMessage, TemplateMessage};

/// Limits the fake kv enforces, the same defaults as the host's.
const KEY_BYTES: usize = 256;
const VALUE_BYTES: usize = 64 * 1024;

#[derive(Debug, Default)]
struct State {
    settings: serde_json::Map<String, serde_json::Value>,
    kv: HashMap<String, (Vec<u8>, Option<u32>)>,
    logs: Vec<(Level, String)>,
    http: HashMap<String, http::Response>,
    api_answers: HashMap<String, String>,
    early: Vec<Reply>,
    custom: Vec<(Option<String>, CustomMessage)>,
    templates: Vec<TemplateMessage>,
    /// Material by media id: kind, bytes, permanent.
    media: Vec<(String, media::Kind, Vec<u8>, bool)>,
    uploads: usize,
}

/// A fake host: settings, an in-memory kv (TTLs recorded, not expired) and recorded logs.
/// Clones share the same state.
#[derive(Debug, Clone, Default)]
pub struct TestHost {
    state: Rc<RefCell<State>>,
}

thread_local! {
    static CURRENT: RefCell<Option<TestHost>> = const { RefCell::new(None) };
}

/// Uninstalls the test host when dropped (reinstalling the one it replaced, if any).
#[derive(Debug)]
#[must_use = "the test host is uninstalled when the guard is dropped"]
pub struct Installed(Option<TestHost>);

impl Drop for Installed {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

impl TestHost {
    /// A host with no settings, an empty kv and no logs.
    pub fn new() -> Self {
        TestHost::default()
    }

    /// With setting `key` = `value` (any serialisable value).
    ///
    /// # Panics
    /// If `value` cannot be represented as JSON.
    pub fn setting(self, key: &str, value: impl Serialize) -> Self {
        #[allow(
            clippy::expect_used,
            reason = "a test helper: a bad fixture should fail loudly"
        )]
        let value = serde_json::to_value(value).expect("setting serialises to JSON");
        self.state
            .borrow_mut()
            .settings
            .insert(key.to_owned(), value);
        self
    }

    /// Routes this thread's capability calls to this host until the guard is dropped.
    pub fn install(&self) -> Installed {
        Installed(CURRENT.with(|c| c.borrow_mut().replace(self.clone())))
    }

    /// Runs plugin `P` on `msg` with this host installed, and checks its reply as the host
    /// does: a reply that breaks WeChat's rules ([`Reply::validate`]) becomes the plugin's
    /// error (`invalid reply: …`), as it would in production.
    pub fn handle<P: crate::Plugin>(&self, msg: &Message) -> crate::Result<Outcome> {
        let _guard = self.install();
        let outcome = P::handle(msg)?;
        if let Outcome::Reply(reply) = &outcome {
            reply.validate().map_err(invalid)?;
        }
        Ok(outcome)
    }

    /// The bytes stored at `key`.
    pub fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        self.state.borrow().kv.get(key).map(|(v, _)| v.clone())
    }

    /// The TTL `key` was stored with, in seconds.
    pub fn kv_ttl(&self, key: &str) -> Option<u32> {
        self.state.borrow().kv.get(key).and_then(|(_, ttl)| *ttl)
    }

    /// Stores `value` at `key` directly (to set up a test).
    pub fn kv_put(&self, key: &str, value: impl AsRef<[u8]>) {
        self.state
            .borrow_mut()
            .kv
            .insert(key.to_owned(), (value.as_ref().to_vec(), None));
    }

    /// The log lines written so far.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.state.borrow().logs.clone()
    }

    /// Answers requests to `url` with `status` and `body` (other URLs are denied, as hosts off
    /// the allow-list are).
    pub fn http_response(self, url: &str, status: u16, body: impl Into<Vec<u8>>) -> Self {
        self.state.borrow_mut().http.insert(
            url.to_owned(),
            http::Response {
                status,
                headers: Vec::new(),
                body: body.into(),
            },
        );
        self
    }

    /// Answers raw WeChat API calls to `path` with `json` (other paths are denied).
    pub fn api_answer(self, path: &str, json: &str) -> Self {
        self.state
            .borrow_mut()
            .api_answers
            .insert(path.to_owned(), json.to_owned());
        self
    }

    /// Replies sent with [`crate::reply_early`].
    pub fn early_replies(&self) -> Vec<Reply> {
        self.state.borrow().early.clone()
    }

    /// Customer-service messages sent: (recipient, message).
    pub fn custom_messages(&self) -> Vec<(Option<String>, CustomMessage)> {
        self.state.borrow().custom.clone()
    }

    /// Template messages sent.
    pub fn templates(&self) -> Vec<TemplateMessage> {
        self.state.borrow().templates.clone()
    }

    /// With material `media_id` of `kind` holding `bytes`, for downloads (temporary and
    /// permanent alike).
    pub fn media(self, media_id: &str, kind: media::Kind, bytes: impl Into<Vec<u8>>) -> Self {
        self.state
            .borrow_mut()
            .media
            .push((media_id.to_owned(), kind, bytes.into(), false));
        self
    }

    /// How many uploads reached the fake WeChat: the same bytes of the same kind uploaded as
    /// temporary material again reuse their media id, as on the host.
    pub fn media_uploads(&self) -> usize {
        self.state.borrow().uploads
    }

    /// The bytes and kind of material `media_id`.
    pub fn media_bytes(&self, media_id: &str) -> Option<(media::Kind, Vec<u8>)> {
        let state = self.state.borrow();
        let found = state.media.iter().find(|(id, ..)| id == media_id);
        found.map(|(_, kind, bytes, _)| (*kind, bytes.clone()))
    }
}

/// A message from `from_user` with `content` (tenant `test`, account `gh_test`, time
/// 1700000000, message id 1 unless it is an event).
pub fn message(from_user: &str, content: Content) -> Message {
    let msg_id = (!matches!(content, Content::Event(_))).then_some(1);
    Message {
        envelope: Envelope {
            tenant: "test".into(),
            to_user: "gh_test".into(),
            from_user: from_user.into(),
            create_time: 1_700_000_000,
            msg_id,
        },
        content,
        fields: Fields::default(),
    }
}

/// A text message from `from_user`.
pub fn text_message(from_user: &str, text: &str) -> Message {
    message(
        from_user,
        Content::Text {
            content: text.into(),
            biz_msg_menu_id: None,
        },
    )
}

/// An event from `from_user`.
pub fn event_message(from_user: &str, event: Event) -> Message {
    message(from_user, Content::Event(event))
}

/// A reply the host would refuse, as the plugin's error.
fn invalid(e: crate::ReplyError) -> crate::Error {
    crate::Error::msg(format!("invalid reply: {e}"))
}

/// The native side of the capabilities (see `runtime`).
pub(crate) mod host {
    use super::*;

    fn with<T>(f: impl FnOnce(&mut State) -> T) -> Option<T> {
        CURRENT.with(|c| c.borrow().as_ref().map(|h| f(&mut h.state.borrow_mut())))
    }

    fn no_host() -> kv::Error {
        kv::Error::Unavailable("no TestHost installed on this thread".into())
    }

    fn check(key: &str, value: Option<&[u8]>) -> Result<(), kv::Error> {
        if key.len() > KEY_BYTES {
            return Err(kv::Error::KeyTooLong(KEY_BYTES as u32));
        }
        if value.is_some_and(|v| v.len() > VALUE_BYTES) {
            return Err(kv::Error::ValueTooLarge(VALUE_BYTES as u32));
        }
        Ok(())
    }

    /// Natively, messages are built with their fields: there is no call to fetch them from.
    pub fn raw_fields(_call: u64) -> Vec<Field> {
        Vec::new()
    }

    pub fn log(level: Level, message: &str) {
        if with(|s| s.logs.push((level, message.to_owned()))).is_none() {
            #[allow(clippy::print_stderr, reason = "no test host: show the line anyway")]
            {
                eprintln!("[{level:?}] {message}");
            }
        }
    }

    pub fn config_get(key: &str) -> Option<String> {
        with(|s| s.settings.get(key).map(|v| v.to_string())).flatten()
    }

    pub fn config_all() -> String {
        with(|s| serde_json::Value::Object(s.settings.clone()).to_string())
            .unwrap_or_else(|| "{}".into())
    }

    pub fn kv_get(key: &str) -> Result<Option<Vec<u8>>, kv::Error> {
        check(key, None)?;
        with(|s| s.kv.get(key).map(|(v, _)| v.clone())).ok_or_else(no_host)
    }

    pub fn kv_set(key: &str, value: &[u8], ttl: Option<u32>) -> Result<(), kv::Error> {
        check(key, Some(value))?;
        with(|s| {
            s.kv.insert(key.to_owned(), (value.to_vec(), ttl));
        })
        .ok_or_else(no_host)
    }

    pub fn kv_delete(key: &str) -> Result<bool, kv::Error> {
        check(key, None)?;
        with(|s| s.kv.remove(key).is_some()).ok_or_else(no_host)
    }

    pub fn early_reply(reply: Reply) -> Result<(), String> {
        reply.validate().map_err(|e| invalid(e).to_string())?;
        with(|s| {
            if s.early.is_empty() {
                s.early.push(reply);
                Ok(())
            } else {
                Err("this message was already answered".to_owned())
            }
        })
        .unwrap_or_else(|| Err("no TestHost installed on this thread".into()))
    }

    fn no_api() -> ApiError {
        ApiError::Unavailable("no TestHost installed on this thread".into())
    }

    pub fn send_custom(to_user: Option<&str>, message: &CustomMessage) -> Result<(), ApiError> {
        with(|s| s.custom.push((to_user.map(str::to_owned), message.clone()))).ok_or_else(no_api)
    }

    pub fn send_template(message: &TemplateMessage) -> Result<u64, ApiError> {
        with(|s| {
            s.templates.push(message.clone());
            s.templates.len() as u64
        })
        .ok_or_else(no_api)
    }

    pub fn api_call(
        _method: crate::wechat::Method,
        path: &str,
        _query: &[(String, String)],
        _body: Option<String>,
    ) -> Result<String, ApiError> {
        with(|s| s.api_answers.get(path).cloned())
            .ok_or_else(no_api)?
            .ok_or_else(|| ApiError::Denied(format!("no answer for {path} in the TestHost")))
    }

    /// Stores material (reusing the id of identical temporary material); no format checks.
    fn store_media(kind: media::Kind, bytes: &[u8], permanent: bool) -> Result<String, ApiError> {
        if bytes.is_empty() {
            return Err(ApiError::Invalid(format!("the {kind:?} is empty")));
        }
        with(|s| {
            let same = |(_, k, b, p): &&(String, media::Kind, Vec<u8>, bool)| {
                !permanent && !*p && *k == kind && b == bytes
            };
            if let Some((id, ..)) = s.media.iter().find(same) {
                return id.clone();
            }
            s.uploads += 1;
            let id = format!("media-{}", s.uploads);
            s.media.push((id.clone(), kind, bytes.to_vec(), permanent));
            id
        })
        .ok_or_else(no_api)
    }

    pub fn media_upload(kind: media::Kind, bytes: &[u8]) -> Result<String, ApiError> {
        store_media(kind, bytes, false)
    }

    pub fn media_upload_permanent(
        kind: media::Kind,
        bytes: &[u8],
        video: Option<&media::VideoInfo>,
    ) -> Result<media::Material, ApiError> {
        if (kind == media::Kind::Video) != video.is_some() {
            return Err(ApiError::Invalid(
                "a permanent video, and only a video, takes a title and introduction".into(),
            ));
        }
        let media_id = store_media(kind, bytes, true)?;
        let url = (kind == media::Kind::Image).then(|| format!("https://mmbiz.test/{media_id}"));
        Ok(media::Material { media_id, url })
    }

    pub fn media_download(media_id: &str, permanent: bool) -> Result<media::File, ApiError> {
        let found = with(|s| {
            let found = s.media.iter().find(|(id, ..)| id == media_id);
            found.map(|(_, kind, bytes, _)| (*kind, bytes.clone()))
        })
        .ok_or_else(no_api)?;
        let Some((kind, bytes)) = found else {
            return Err(ApiError::WeChat {
                code: 40007,
                message: "invalid media_id".into(),
            });
        };
        let content_type = match kind {
            media::Kind::Image | media::Kind::Thumb => "image/jpeg",
            media::Kind::Voice => "audio/amr",
            media::Kind::Video => {
                let field = if permanent { "down_url" } else { "video_url" };
                let json = serde_json::json!({ field: format!("https://mmbiz.test/{media_id}") });
                return Ok(media::File {
                    content_type: "application/json".into(),
                    bytes: json.to_string().into_bytes(),
                });
            }
        };
        Ok(media::File {
            content_type: content_type.into(),
            bytes,
        })
    }

    pub fn http_send(request: &http::Request) -> Result<http::Response, http::Error> {
        with(|s| s.http.get(&request.url).cloned())
            .ok_or_else(|| http::Error::Failed("no TestHost installed on this thread".into()))?
            .ok_or(http::Error::Denied)
    }

    pub fn kv_increment(key: &str, delta: i64) -> Result<i64, kv::Error> {
        check(key, None)?;
        with(|s| {
            let (old, ttl) = match s.kv.get(key) {
                None => (0, None),
                Some((bytes, ttl)) => {
                    let text = std::str::from_utf8(bytes).map_err(|_| kv::Error::NotANumber)?;
                    (
                        text.trim()
                            .parse::<i64>()
                            .map_err(|_| kv::Error::NotANumber)?,
                        *ttl,
                    )
                }
            };
            let new = old.checked_add(delta).ok_or(kv::Error::Overflow)?;
            s.kv.insert(key.to_owned(), (new.to_string().into_bytes(), ttl));
            Ok(new)
        })
        .ok_or_else(no_host)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Article, Plugin};

    /// Answers with the reply its text names, or replies early with it on `early …`.
    struct Replier;

    impl Plugin for Replier {
        fn handle(msg: &Message) -> crate::Result<Outcome> {
            let reply = match msg.text().unwrap_or_default() {
                "long" => Reply::text("x".repeat(crate::MAX_TEXT_BYTES + 1)),
                "control" => Reply::text("bell \u{7}"),
                "no news" => Reply::news([]),
                "early control" => {
                    crate::reply_early(Reply::text("\u{0}"))?;
                    return Ok(Outcome::Handled);
                }
                "early" => {
                    crate::reply_early(Reply::text("soon"))?;
                    return Ok(Outcome::Handled);
                }
                _ => Reply::news([Article::new("t", "https://example.com")]),
            };
            Ok(reply.into())
        }
    }

    #[test]
    fn handle_refuses_the_replies_the_host_refuses() {
        let host = TestHost::new();
        let run = |text| host.handle::<Replier>(&text_message("o", text));
        assert!(matches!(run("news"), Ok(Outcome::Reply(Reply::News(_)))));
        assert_eq!(
            run("long").map_err(|e| e.to_string()),
            Err("invalid reply: text reply of 2049 bytes exceeds WeChat's 2048-byte limit".into())
        );
        assert_eq!(
            run("control").map_err(|e| e.to_string()),
            Err(
                "invalid reply: reply field `content` contains a character XML cannot carry \
                 (a control character)"
                    .into()
            )
        );
        assert!(run("no news").is_err());
        assert!(run("early control").is_err());
        assert!(host.early_replies().is_empty());
        assert_eq!(run("early"), Ok(Outcome::Handled));
        assert_eq!(host.early_replies(), vec![Reply::text("soon")]);
    }

    /// Answers `picture` with a picture made from bytes, `download ID` with the bytes' length.
    struct Pictures;

    impl Plugin for Pictures {
        fn handle(msg: &Message) -> crate::Result<Outcome> {
            let text = msg.text().unwrap_or_default();
            if let Some(id) = text.strip_prefix("download ") {
                let file = media::download(id)?;
                return Ok(
                    Reply::text(format!("{} {}", file.content_type, file.bytes.len())).into(),
                );
            }
            Ok(media::image_reply(b"\x89PNG fake")?.into())
        }
    }

    #[test]
    fn media_replies_upload_identical_bytes_once_and_downloads_return_them() {
        let host = TestHost::new().media("m_video", media::Kind::Video, b"mp4".to_vec());
        let first = host.handle::<Pictures>(&text_message("o", "picture"));
        let again = host.handle::<Pictures>(&text_message("o", "picture"));
        assert_eq!(first, Ok(Reply::image("media-1").into()));
        assert_eq!(again, first);
        assert_eq!(host.media_uploads(), 1);
        assert_eq!(
            host.media_bytes("media-1"),
            Some((media::Kind::Image, b"\x89PNG fake".to_vec()))
        );
        let download =
            |id: &str| host.handle::<Pictures>(&text_message("o", &format!("download {id}")));
        assert_eq!(download("media-1"), Ok(Reply::text("image/jpeg 9").into()));
        assert_eq!(
            download("m_video"),
            Ok(Reply::text("application/json 42").into())
        );
        assert!(download("nope").is_err());
    }

    #[test]
    fn handle_puts_back_the_host_installed_before() {
        let outer = TestHost::new();
        let _guard = outer.install();
        let inner = TestHost::new();
        let _ = inner.handle::<Replier>(&text_message("o", "early"));
        assert_eq!(inner.early_replies().len(), 1);
        crate::reply_early(Reply::text("outer")).expect("the outer host is installed again");
        assert_eq!(outer.early_replies(), vec![Reply::text("outer")]);
    }
}
