//! The message a plugin handles: envelope, typed content, and every raw field.

use serde::{Deserialize, Serialize};

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

/// A message from a user (or an event) pushed to the account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Addressing and time.
    pub envelope: Envelope,
    /// What was sent.
    pub content: Content,
    /// Every leaf field as received, modelled or not.
    pub fields: Vec<Field>,
}

/// The kind of message and its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// An event and its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
