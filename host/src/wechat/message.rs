//! The typed model of an inbound message or event, parsed from the push XML, raw fields kept.
//!
//! Every message and event type WeChat documents has a variant; unknown `MsgType` and `Event`
//! values become [`Content::Other`] and [`Event::Other`] instead of failing. The whole `<xml>`
//! element stays in [`Message::fields`], so a field this model does not name is still readable.
//! Common fields are required; a missing text field of a known type reads as empty, while a
//! numeric field that is present must parse.

use std::str::FromStr;

use serde::Serialize;

use super::error::{Error, Result};
use super::xml::{self, Element};

/// Elements written as bare numbers (not CDATA) when a message is encoded, as WeChat does.
const NUMERIC_FIELDS: &[&str] = &[
    "CreateTime",
    "MsgId",
    "MsgID",
    "Location_X",
    "Location_Y",
    "Scale",
    "Latitude",
    "Longitude",
    "Precision",
    "Count",
    "TotalCount",
    "FilterCount",
    "SentCount",
    "ErrorCount",
    "FileTotalLen",
    "PopupScene",
    "ErrorCode",
    "MsgDataId",
    "Idx",
];

/// One push from WeChat: who sent it to which account, when, and what.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// The official account's original id (`gh_…`).
    pub to_user: String,
    /// The sender's openid.
    pub from_user: String,
    /// Seconds since the Unix epoch.
    pub create_time: i64,
    /// The 64-bit message id; events have none.
    pub msg_id: Option<u64>,
    /// The article's data id when the message is a comment on an article.
    pub msg_data_id: Option<String>,
    /// The article's index within its news item, with `msg_data_id`.
    pub idx: Option<String>,
    /// What was sent.
    pub content: Content,
    /// The whole `<xml>` element, every field as received.
    pub fields: Element,
}

/// The kind of message and its type-specific fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Content {
    /// A text message.
    Text {
        /// The text (may hold newlines, emoji, `<`, `&`, `]]>`).
        content: String,
        /// Set when the text was a tap on a menu in a previous message.
        biz_msg_menu_id: Option<String>,
    },
    /// A picture.
    Image {
        /// URL of the picture.
        pic_url: String,
        /// Media id to fetch it through the API.
        media_id: String,
    },
    /// A voice message.
    Voice {
        /// Media id of the audio.
        media_id: String,
        /// Audio format, e.g. `amr`, `speex`.
        format: String,
        /// Speech-to-text result, when the account enabled recognition.
        recognition: Option<String>,
    },
    /// A video.
    Video {
        /// Media id of the video.
        media_id: String,
        /// Media id of its thumbnail.
        thumb_media_id: String,
    },
    /// A short video.
    ShortVideo {
        /// Media id of the video.
        media_id: String,
        /// Media id of its thumbnail.
        thumb_media_id: String,
    },
    /// A shared location.
    Location {
        /// Latitude (`Location_X`).
        latitude: f64,
        /// Longitude (`Location_Y`).
        longitude: f64,
        /// Map zoom level.
        scale: f64,
        /// Place description.
        label: String,
    },
    /// A shared link.
    Link {
        /// Link title.
        title: String,
        /// Link description.
        description: String,
        /// Link URL.
        url: String,
    },
    /// A file.
    File {
        /// File name.
        title: String,
        /// File description.
        description: String,
        /// Key to fetch the file.
        file_key: String,
        /// MD5 of the file.
        file_md5: String,
        /// Size in bytes.
        file_total_len: Option<u64>,
    },
    /// A shared mini-program page.
    MiniProgramPage {
        /// Card title.
        title: String,
        /// The mini program's appid.
        app_id: String,
        /// The page path.
        page_path: String,
        /// Thumbnail URL.
        thumb_url: String,
        /// Thumbnail media id.
        thumb_media_id: String,
    },
    /// An event (`MsgType` = `event`).
    Event(Event),
    /// A message type this model does not know yet; read its fields from [`Message::fields`].
    Other {
        /// The `MsgType` as received.
        msg_type: String,
    },
}

/// An event and its fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// The user followed the account, possibly by scanning a parametric QR code.
    Subscribe {
        /// The QR code's scene (the `EventKey` without its `qrscene_` prefix).
        scene: Option<String>,
        /// The QR code's ticket.
        ticket: Option<String>,
    },
    /// The user unfollowed.
    Unsubscribe,
    /// A follower scanned a parametric QR code (`SCAN`).
    Scan {
        /// The QR code's scene value.
        scene: String,
        /// The QR code's ticket.
        ticket: Option<String>,
    },
    /// Periodic location report (`LOCATION`).
    Location {
        /// Latitude.
        latitude: f64,
        /// Longitude.
        longitude: f64,
        /// Precision in metres.
        precision: f64,
    },
    /// A click on a menu button (`CLICK`).
    Click {
        /// The button's key.
        key: String,
    },
    /// A tap on a menu link (`VIEW`).
    View {
        /// The URL opened.
        url: String,
        /// The menu id, when the menu is personalised.
        menu_id: Option<String>,
    },
    /// A scan from a menu button: `scancode_push` or `scancode_waitmsg`.
    ScanCode {
        /// Which of the two.
        waits_for_reply: bool,
        /// The button's key.
        key: String,
        /// The code type, e.g. `qrcode`.
        scan_type: String,
        /// The decoded content.
        scan_result: String,
    },
    /// Pictures sent from a menu button: `pic_sysphoto`, `pic_photo_or_album`, `pic_weixin`.
    Pictures {
        /// The event name as received (which picker was used).
        source: String,
        /// The button's key.
        key: String,
        /// Number of pictures.
        count: Option<u32>,
        /// MD5 of each picture, one or many.
        md5s: Vec<String>,
    },
    /// A location picked from a menu button (`location_select`).
    LocationSelect {
        /// The button's key.
        key: String,
        /// Latitude.
        latitude: f64,
        /// Longitude.
        longitude: f64,
        /// Map zoom level.
        scale: f64,
        /// Place description.
        label: String,
        /// Point-of-interest name, when there is one.
        poi_name: Option<String>,
    },
    /// A tap on a menu entry that opens a mini program (`view_miniprogram`).
    ViewMiniProgram {
        /// The page path opened.
        page_path: String,
        /// The menu id.
        menu_id: Option<String>,
    },
    /// A template message was delivered or failed (`TEMPLATESENDJOBFINISH`).
    TemplateSendJobFinish {
        /// The template message id.
        msg_id: Option<u64>,
        /// `success`, `failed:user block`, `failed: system failed`.
        status: String,
    },
    /// A mass send finished (`MASSSENDJOBFINISH`).
    MassSendJobFinish {
        /// The mass message id.
        msg_id: Option<u64>,
        /// e.g. `send success`.
        status: String,
        /// Followers targeted.
        total_count: Option<u64>,
        /// Followers after filtering.
        filter_count: Option<u64>,
        /// Sent successfully.
        sent_count: Option<u64>,
        /// Failed.
        error_count: Option<u64>,
    },
    /// The user answered a subscription-message prompt (`subscribe_msg_popup_event`).
    SubscribeMsgPopup {
        /// One entry per template, one or many.
        items: Vec<SubscribeMsgItem>,
    },
    /// The user changed subscription settings (`subscribe_msg_change_event`).
    SubscribeMsgChange {
        /// One entry per template, one or many.
        items: Vec<SubscribeMsgItem>,
    },
    /// A subscription message was sent (`subscribe_msg_sent_event`).
    SubscribeMsgSent {
        /// One entry per message, one or many.
        items: Vec<SubscribeMsgSentItem>,
    },
    /// An event this model does not know yet; read its fields from [`Message::fields`].
    Other {
        /// The `Event` as received.
        name: String,
        /// Its `EventKey`, if any.
        key: Option<String>,
    },
}

/// One template in a subscription-message popup or change event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscribeMsgItem {
    /// The template id.
    pub template_id: String,
    /// `accept` or `reject`.
    pub status: String,
    /// Where the popup was shown (popup events only).
    pub popup_scene: Option<String>,
}

/// One message in a `subscribe_msg_sent_event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    /// Parses a plaintext push (the decrypted XML in encrypted modes).
    pub fn parse(xml: &str) -> Result<Message> {
        Message::from_fields(xml::parse_document(xml)?)
    }

    /// Builds the typed model from an already parsed `<xml>` element.
    pub fn from_fields(fields: Element) -> Result<Message> {
        let msg_type = required(&fields, "MsgType")?;
        let content = if msg_type.eq_ignore_ascii_case("event") {
            Content::Event(parse_event(&fields)?)
        } else {
            parse_content(&fields, msg_type)?
        };
        Ok(Message {
            to_user: required(&fields, "ToUserName")?.to_owned(),
            from_user: required(&fields, "FromUserName")?.to_owned(),
            create_time: number(&fields, "CreateTime")?,
            msg_id: optional_number(&fields, "MsgId")?,
            msg_data_id: optional(&fields, "MsgDataId"),
            idx: optional(&fields, "Idx"),
            content,
            fields,
        })
    }

    /// The `MsgType` as received.
    pub fn msg_type(&self) -> &str {
        self.fields.child_text("MsgType").unwrap_or_default()
    }

    /// The `Event` as received, for events.
    pub fn event_name(&self) -> Option<&str> {
        match self.content {
            Content::Event(_) => self.fields.child_text("Event"),
            _ => None,
        }
    }

    /// The raw text of any field, by `/`-separated path (`ScanCodeInfo/ScanResult`).
    pub fn field(&self, path: &str) -> Option<&str> {
        self.fields.text_at(path)
    }

    /// Encodes the message as WeChat sends it (used by the simulator and round-trip tests).
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(256);
        self.fields.write(&mut out, NUMERIC_FIELDS);
        out
    }
}

fn parse_content(f: &Element, msg_type: &str) -> Result<Content> {
    Ok(match msg_type.to_ascii_lowercase().as_str() {
        "text" => Content::Text {
            content: text(f, "Content"),
            biz_msg_menu_id: optional(f, "bizmsgmenuid"),
        },
        "image" => Content::Image {
            pic_url: text(f, "PicUrl"),
            media_id: text(f, "MediaId"),
        },
        "voice" => Content::Voice {
            media_id: text(f, "MediaId"),
            format: text(f, "Format"),
            recognition: optional(f, "Recognition"),
        },
        "video" => Content::Video {
            media_id: text(f, "MediaId"),
            thumb_media_id: text(f, "ThumbMediaId"),
        },
        "shortvideo" => Content::ShortVideo {
            media_id: text(f, "MediaId"),
            thumb_media_id: text(f, "ThumbMediaId"),
        },
        "location" => Content::Location {
            latitude: number(f, "Location_X")?,
            longitude: number(f, "Location_Y")?,
            scale: optional_number(f, "Scale")?.unwrap_or_default(),
            label: text(f, "Label"),
        },
        "link" => Content::Link {
            title: text(f, "Title"),
            description: text(f, "Description"),
            url: text(f, "Url"),
        },
        "file" => Content::File {
            title: text(f, "Title"),
            description: text(f, "Description"),
            file_key: text(f, "FileKey"),
            file_md5: text(f, "FileMd5"),
            file_total_len: optional_number(f, "FileTotalLen")?,
        },
        "miniprogrampage" => Content::MiniProgramPage {
            title: text(f, "Title"),
            app_id: text(f, "AppId"),
            page_path: text(f, "PagePath"),
            thumb_url: text(f, "ThumbUrl"),
            thumb_media_id: text(f, "ThumbMediaId"),
        },
        _ => Content::Other {
            msg_type: msg_type.to_owned(),
        },
    })
}

fn parse_event(f: &Element) -> Result<Event> {
    let name = required(f, "Event")?;
    let key = || text(f, "EventKey");
    Ok(match name.to_ascii_lowercase().as_str() {
        "subscribe" => Event::Subscribe {
            scene: optional(f, "EventKey")
                .map(|k| k.strip_prefix("qrscene_").map(str::to_owned).unwrap_or(k)),
            ticket: optional(f, "Ticket"),
        },
        "unsubscribe" => Event::Unsubscribe,
        "scan" => Event::Scan {
            scene: key(),
            ticket: optional(f, "Ticket"),
        },
        "location" => Event::Location {
            latitude: number(f, "Latitude")?,
            longitude: number(f, "Longitude")?,
            precision: optional_number(f, "Precision")?.unwrap_or_default(),
        },
        "click" => Event::Click { key: key() },
        "view" => Event::View {
            url: key(),
            menu_id: optional(f, "MenuId"),
        },
        lower @ ("scancode_push" | "scancode_waitmsg") => {
            let info = f.child("ScanCodeInfo").cloned().unwrap_or_default();
            Event::ScanCode {
                waits_for_reply: lower == "scancode_waitmsg",
                key: key(),
                scan_type: text(&info, "ScanType"),
                scan_result: text(&info, "ScanResult"),
            }
        }
        "pic_sysphoto" | "pic_photo_or_album" | "pic_weixin" => {
            let info = f.child("SendPicsInfo");
            Event::Pictures {
                source: name.to_owned(),
                key: key(),
                count: info
                    .map(|i| optional_number(i, "Count"))
                    .transpose()?
                    .flatten(),
                md5s: info
                    .and_then(|i| i.child("PicList"))
                    .map(|list| {
                        list.children_named("item")
                            .map(|item| text(item, "PicMd5Sum"))
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        }
        "location_select" => {
            let info = f.child("SendLocationInfo").cloned().unwrap_or_default();
            Event::LocationSelect {
                key: key(),
                latitude: number(&info, "Location_X")?,
                longitude: number(&info, "Location_Y")?,
                scale: optional_number(&info, "Scale")?.unwrap_or_default(),
                label: text(&info, "Label"),
                poi_name: optional(&info, "Poiname"),
            }
        }
        "view_miniprogram" => Event::ViewMiniProgram {
            page_path: key(),
            menu_id: optional(f, "MenuId"),
        },
        "templatesendjobfinish" => Event::TemplateSendJobFinish {
            msg_id: optional_number(f, "MsgID")?,
            status: text(f, "Status"),
        },
        "masssendjobfinish" => Event::MassSendJobFinish {
            msg_id: optional_number(f, "MsgID")?,
            status: text(f, "Status"),
            total_count: optional_number(f, "TotalCount")?,
            filter_count: optional_number(f, "FilterCount")?,
            sent_count: optional_number(f, "SentCount")?,
            error_count: optional_number(f, "ErrorCount")?,
        },
        "subscribe_msg_popup_event" => Event::SubscribeMsgPopup {
            items: subscribe_items(f, "SubscribeMsgPopupEvent"),
        },
        "subscribe_msg_change_event" => Event::SubscribeMsgChange {
            items: subscribe_items(f, "SubscribeMsgChangeEvent"),
        },
        "subscribe_msg_sent_event" => Event::SubscribeMsgSent {
            items: lists(f, "SubscribeMsgSentEvent")
                .map(|item| SubscribeMsgSentItem {
                    template_id: text(item, "TemplateId"),
                    msg_id: text(item, "MsgID"),
                    error_code: text(item, "ErrorCode"),
                    error_status: text(item, "ErrorStatus"),
                })
                .collect(),
        },
        _ => Event::Other {
            name: name.to_owned(),
            key: optional(f, "EventKey"),
        },
    })
}

/// The `List` entries of a subscription-message event: WeChat repeats `List` for each template.
fn lists<'a>(f: &'a Element, group: &str) -> impl Iterator<Item = &'a Element> + 'a {
    f.child(group)
        .into_iter()
        .flat_map(|g| g.children_named("List"))
}

fn subscribe_items(f: &Element, group: &str) -> Vec<SubscribeMsgItem> {
    lists(f, group)
        .map(|item| SubscribeMsgItem {
            template_id: text(item, "TemplateId"),
            status: text(item, "SubscribeStatusString"),
            popup_scene: optional(item, "PopupScene"),
        })
        .collect()
}

fn required<'a>(f: &'a Element, name: &'static str) -> Result<&'a str> {
    match f.child_text(name) {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(Error::MissingField(name)),
    }
}

fn text(f: &Element, name: &str) -> String {
    f.child_text(name).unwrap_or_default().to_owned()
}

fn optional(f: &Element, name: &str) -> Option<String> {
    f.child_text(name)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn number<T: FromStr>(f: &Element, name: &'static str) -> Result<T> {
    optional_number(f, name)?.ok_or(Error::MissingField(name))
}

fn optional_number<T: FromStr>(f: &Element, name: &'static str) -> Result<Option<T>> {
    match f.child_text(name).map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| Error::invalid_field(name, v)),
    }
}
