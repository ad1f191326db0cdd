//! The message a plugin handles: envelope, typed content, and every raw field.

use std::cell::OnceCell;

use serde::{Deserialize, Serialize};

use crate::runtime::host;

/// Who sent the message to which account, and when.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Envelope {
    /// The tenant (account) id in wxhost.
    pub tenant: String,
    /// The account's original id (`gh_…`).
    pub to_user: String,
    /// The sender's openid.
    pub from_user: String,
    /// Seconds since the Unix epoch.
    pub create_time: i64,
    /// The 64-bit message id; events have none.
    pub msg_id: Option<u64>,
}

/// One raw field of the push: its `/`-separated path and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// e.g. `Content`, `ScanCodeInfo/ScanType`.
    pub path: String,
    /// The text as received.
    pub value: String,
}

/// The raw fields of a message: a list of [`Field`]s (it derefs to `[Field]`).
///
/// A message from the host fetches them the first time they are read, so a plugin that never
/// reads them does not pay for copying them. They are fetched from the call that received the
/// message: a message kept past its call keeps the fields read during the call and has none
/// otherwise.
#[derive(Clone, Default)]
pub struct Fields {
    list: OnceCell<Vec<Field>>,
    /// The call whose message these are, for fields still to be fetched from the host.
    from_call: Option<u64>,
}

impl Fields {
    /// Fields still to be fetched from the host, for the message of call `call`.
    #[cfg_attr(
        not(target_arch = "wasm32"),
        allow(
            dead_code,
            reason = "only the wasm glue receives messages from the host"
        )
    )]
    pub(crate) fn from_host(call: u64) -> Self {
        Fields {
            list: OnceCell::new(),
            from_call: Some(call),
        }
    }

    /// Adds a field (fetching the others first, so none is lost).
    pub fn push(&mut self, field: Field) {
        self.force();
        if let Some(list) = self.list.get_mut() {
            list.push(field);
        }
    }

    fn force(&self) -> &Vec<Field> {
        self.list.get_or_init(|| match self.from_call {
            Some(call) => host::raw_fields(call),
            None => Vec::new(),
        })
    }
}

impl From<Vec<Field>> for Fields {
    fn from(list: Vec<Field>) -> Self {
        Fields {
            list: OnceCell::from(list),
            from_call: None,
        }
    }
}

impl std::ops::Deref for Fields {
    type Target = [Field];

    fn deref(&self) -> &[Field] {
        self.force()
    }
}

impl std::fmt::Debug for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Fields {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Fields {}

impl Serialize for Fields {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.force().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<Field>::deserialize(deserializer).map(Fields::from)
    }
}

/// A message from a user (or an event) pushed to the account.
///
/// Its JSON has the host's shape (`wechat::Message`): the envelope's fields at the top level
/// (`tenant`, which only plugins see, among them), `content` tagged by `type` and an event by
/// `event`, both in snake case. Only `fields` differs in form: the host keeps the element tree,
/// a plugin sees the leaves as a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Addressing and time.
    #[serde(flatten)]
    pub envelope: Envelope,
    /// What was sent.
    pub content: Content,
    /// Every leaf field as received, modelled or not (fetched when first read).
    pub fields: Fields,
}

/// The kind of message and its fields (the host may add kinds: match with a `_` arm).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
#[allow(
    missing_docs,
    reason = "field names say what they hold; see WeChat's message docs"
)]
pub enum Content {
    /// A text message.
    Text {
        content: String,
        biz_msg_menu_id: Option<String>,
    },
    /// A picture.
    Image { pic_url: String, media_id: String },
    /// A voice message, with speech-to-text when the account enabled it.
    Voice {
        media_id: String,
        format: String,
        recognition: Option<String>,
    },
    /// A video.
    Video {
        media_id: String,
        thumb_media_id: String,
    },
    /// A short video.
    ShortVideo {
        media_id: String,
        thumb_media_id: String,
    },
    /// A shared location.
    Location {
        latitude: f64,
        longitude: f64,
        scale: f64,
        label: String,
    },
    /// A shared link.
    Link {
        title: String,
        description: String,
        url: String,
    },
    /// A file.
    File {
        title: String,
        description: String,
        file_key: String,
        file_md5: String,
        file_total_len: Option<u64>,
    },
    /// A mini-program page card.
    MiniProgramPage {
        title: String,
        app_id: String,
        page_path: String,
        thumb_url: String,
        thumb_media_id: String,
    },
    /// An event.
    Event(Event),
    /// A message type the host does not model yet: read [`Message::fields`].
    Other { msg_type: String },
}

/// An event and its fields (the host may add events: match with a `_` arm).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
#[allow(
    missing_docs,
    reason = "field names say what they hold; see WeChat's event docs"
)]
pub enum Event {
    /// The user followed the account; `scene` is the QR code's scene without `qrscene_`.
    Subscribe {
        scene: Option<String>,
        ticket: Option<String>,
    },
    /// The user unfollowed.
    Unsubscribe,
    /// A follower scanned a parametric QR code.
    Scan {
        scene: String,
        ticket: Option<String>,
    },
    /// A periodic location report.
    Location {
        latitude: f64,
        longitude: f64,
        precision: f64,
    },
    /// A click on a menu button.
    Click { key: String },
    /// A tap on a menu link.
    View {
        url: String,
        menu_id: Option<String>,
    },
    /// `scancode_push` (`waits_for_reply` false) or `scancode_waitmsg` (true).
    ScanCode {
        waits_for_reply: bool,
        key: String,
        scan_type: String,
        scan_result: String,
    },
    /// Pictures sent from a menu button (`source` is the event name).
    Pictures {
        source: String,
        key: String,
        count: Option<u32>,
        md5s: Vec<String>,
    },
    /// A location picked from a menu button.
    LocationSelect {
        key: String,
        latitude: f64,
        longitude: f64,
        scale: f64,
        label: String,
        poi_name: Option<String>,
    },
    /// A menu entry opened a mini program.
    ViewMiniProgram {
        page_path: String,
        menu_id: Option<String>,
    },
    /// A template message was delivered or failed.
    TemplateSendJobFinish { msg_id: Option<u64>, status: String },
    /// A mass send finished.
    MassSendJobFinish {
        msg_id: Option<u64>,
        status: String,
        total_count: Option<u64>,
        filter_count: Option<u64>,
        sent_count: Option<u64>,
        error_count: Option<u64>,
    },
    /// The user answered a subscription-message prompt.
    SubscribeMsgPopup { items: Vec<SubscribeMsgItem> },
    /// The user changed subscription settings.
    SubscribeMsgChange { items: Vec<SubscribeMsgItem> },
    /// Subscription messages were sent.
    SubscribeMsgSent { items: Vec<SubscribeMsgSentItem> },
    /// An event the host does not model yet: read [`Message::fields`].
    Other { name: String, key: Option<String> },
}

/// One template in a subscription-message popup or change event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeMsgItem {
    /// The template id.
    pub template_id: String,
    /// `accept` or `reject`.
    pub status: String,
    /// Where the popup was shown (popup events only).
    pub popup_scene: Option<String>,
}

/// One message in a subscription-message sent event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeMsgSentItem {
    /// The template id.
    pub template_id: String,
    /// The message id.
    pub msg_id: String,
    /// `0` on success.
    pub error_code: String,
    /// e.g. `success`.
    pub error_status: String,
}

impl Message {
    /// The sender's openid.
    pub fn from_user(&self) -> &str {
        &self.envelope.from_user
    }

    /// The account's original id.
    pub fn to_user(&self) -> &str {
        &self.envelope.to_user
    }

    /// The tenant id.
    pub fn tenant(&self) -> &str {
        &self.envelope.tenant
    }

    /// The text, for text messages.
    pub fn text(&self) -> Option<&str> {
        match &self.content {
            Content::Text { content, .. } => Some(content),
            _ => None,
        }
    }

    /// The event, for events.
    pub fn event(&self) -> Option<&Event> {
        match &self.content {
            Content::Event(event) => Some(event),
            _ => None,
        }
    }

    /// The first raw field at `path`.
    pub fn field(&self, path: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.value.as_str())
    }

    /// The same message with a raw field added (for tests).
    pub fn with_field(mut self, path: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.push(Field {
            path: path.into(),
            value: value.into(),
        });
        self
    }
}
