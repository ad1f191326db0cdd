//! The seven passive reply types: validation, exact XML encoding, and parsing back.

use serde::{Deserialize, Serialize};

use super::error::{Error, Result};
use super::xml::{self, Element};

/// WeChat's limit on a text reply, in UTF-8 bytes.
pub const MAX_TEXT_BYTES: usize = 2048;
/// WeChat's limit on the articles of a news reply.
pub const MAX_ARTICLES: usize = 8;

// The caps below are this host's, not WeChat's: WeChat documents no limit for the other fields
// of a passive reply (it cuts what it shows), so each is set well above what WeChat displays or
// issues, and finite, so that what a plugin returns, what is encrypted and sent, and what the
// dedup table keeps for retries stays small. All are in UTF-8 bytes, like the text limit.

/// The longest title (of an article, a video or a music card): 256 bytes. WeChat's editor caps
/// an article title at 64 characters and a card shows two lines of it; 256 bytes hold 64
/// characters of any script (a character takes at most 4 bytes).
pub const MAX_TITLE_BYTES: usize = 256;
/// The longest description (of an article, a video or a music card): 1024 bytes. WeChat's
/// editor caps an article's digest at 120 characters (480 bytes at most) and a card shows a few
/// lines; 1024 bytes hold 256 characters of any script.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;
/// The longest URL (an article's `pic_url` and `url`, a music card's `music_url` and
/// `hq_music_url`): 2048 bytes. WeChat documents 1024 bytes for the links of a menu; links to
/// pictures and music on a CDN, with signed queries, run longer, and 2048 bytes is the length
/// browsers and servers all accept.
pub const MAX_URL_BYTES: usize = 2048;
/// The longest media id (`media_id`, `thumb_media_id`): 128 bytes. The ids WeChat issues are
/// ASCII, 64 characters for temporary media and 43 for permanent ones; 128 leaves twice the room.
pub const MAX_MEDIA_ID_BYTES: usize = 128;
/// The longest customer-service account (`kf_account`, `prefix@wechat_id`): 64 bytes. WeChat
/// caps the prefix at 10 characters and an account's WeChat id at 20.
pub const MAX_KF_ACCOUNT_BYTES: usize = 64;
/// The largest reply, as [`Reply::encoded_len`] measures it (its XML without the root and the
/// addressing the host writes): 16 KiB. Every text reply fits (2048 bytes of `]]>` encode to
/// about 10 KiB), and so does a news reply of 8 articles of ordinary length (a few hundred
/// bytes each); 8 articles with every field at its cap do not. Encrypted, the answer stays
/// under 22 KiB, and the dedup table keeps at most this much text per answer.
pub const MAX_REPLY_BYTES: usize = 16 * 1024;

/// The cap of a reply field, by its name in the model (the names errors use).
pub fn field_limit(field: &str) -> usize {
    match field {
        "content" => MAX_TEXT_BYTES,
        "title" => MAX_TITLE_BYTES,
        "description" => MAX_DESCRIPTION_BYTES,
        "pic_url" | "url" | "music_url" | "hq_music_url" => MAX_URL_BYTES,
        "media_id" | "thumb_media_id" => MAX_MEDIA_ID_BYTES,
        "kf_account" => MAX_KF_ACCOUNT_BYTES,
        _ => MAX_REPLY_BYTES,
    }
}

/// A passive reply: the body of the HTTP answer to a push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reply {
    /// A text message (at most 2048 bytes).
    Text {
        /// The text.
        content: String,
    },
    /// A picture, by media id.
    Image {
        /// Media id of an uploaded picture.
        media_id: String,
    },
    /// A voice message, by media id.
    Voice {
        /// Media id of an uploaded voice file.
        media_id: String,
    },
    /// A video, by media id.
    Video {
        /// Media id of an uploaded video.
        media_id: String,
        /// Title (may be empty).
        #[serde(default)]
        title: String,
        /// Description (may be empty).
        #[serde(default)]
        description: String,
    },
    /// A music card.
    Music {
        /// Title (may be empty).
        #[serde(default)]
        title: String,
        /// Description (may be empty).
        #[serde(default)]
        description: String,
        /// Music URL (may be empty).
        #[serde(default)]
        music_url: String,
        /// High-quality music URL, preferred on Wi-Fi (may be empty).
        #[serde(default)]
        hq_music_url: String,
        /// Media id of the thumbnail (required).
        thumb_media_id: String,
    },
    /// News: 1 to 8 articles, the first shown large.
    News {
        /// The articles.
        articles: Vec<Article>,
    },
    /// Hand the conversation to customer service, optionally to one agent.
    TransferCustomerService {
        /// The agent account (`name@account`), or any available agent.
        #[serde(default)]
        kf_account: Option<String>,
    },
}

/// One article of a news reply.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Article {
    /// Title.
    pub title: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Picture URL (large for the first article).
    #[serde(default)]
    pub pic_url: String,
    /// Link opened on tap.
    #[serde(default)]
    pub url: String,
}

/// A parsed reply with its addressing, as a client of the server (the simulator) sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplyMessage {
    /// The user the reply goes to.
    pub to_user: String,
    /// The account it comes from.
    pub from_user: String,
    /// Seconds since the Unix epoch.
    pub create_time: i64,
    /// The reply.
    pub reply: Reply,
}

impl Reply {
    /// A text reply.
    pub fn text(content: impl Into<String>) -> Self {
        Reply::Text {
            content: content.into(),
        }
    }

    /// The `MsgType` of the reply.
    pub fn msg_type(&self) -> &'static str {
        match self {
            Reply::Text { .. } => "text",
            Reply::Image { .. } => "image",
            Reply::Voice { .. } => "voice",
            Reply::Video { .. } => "video",
            Reply::Music { .. } => "music",
            Reply::News { .. } => "news",
            Reply::TransferCustomerService { .. } => "transfer_customer_service",
        }
    }

    /// Checks the reply can be sent: WeChat's limits (text length, article count, required
    /// media ids), the cap of each field ([`field_limit`]) and of the whole reply
    /// ([`MAX_REPLY_BYTES`]), and that XML can carry every character. The first rule broken is
    /// reported: the limits above first, then each field as it is written (its length, then its
    /// characters), then the whole reply's size.
    pub fn validate(&self) -> Result<()> {
        match self {
            Reply::Text { content } if content.len() > MAX_TEXT_BYTES => {
                return Err(Error::ReplyTextTooLong(content.len()));
            }
            Reply::Image { media_id }
            | Reply::Voice { media_id }
            | Reply::Video { media_id, .. }
                if media_id.is_empty() =>
            {
                return Err(Error::EmptyReplyField("media_id"));
            }
            Reply::Music { thumb_media_id, .. } if thumb_media_id.is_empty() => {
                return Err(Error::EmptyReplyField("thumb_media_id"));
            }
            Reply::News { articles } if articles.is_empty() || articles.len() > MAX_ARTICLES => {
                return Err(Error::ArticleCount(articles.len()));
            }
            _ => {}
        }
        self.each_text(|field, text| {
            let limit = field_limit(field);
            if text.len() > limit {
                return Err(Error::ReplyFieldTooLong {
                    field,
                    len: text.len(),
                    limit,
                });
            }
            if xml::is_xml_text(text) {
                Ok(())
            } else {
                Err(Error::InvalidReplyChar(field))
            }
        })?;
        let len = self.encoded_len();
        if len > MAX_REPLY_BYTES {
            return Err(Error::ReplyTooLarge {
                len,
                limit: MAX_REPLY_BYTES,
            });
        }
        Ok(())
    }

    /// The bytes of the reply's own XML as [`Reply::encode`] writes it: its `MsgType` and its
    /// body, without the `<xml>` root and the addressing the host writes (`ToUserName`,
    /// `FromUserName`, `CreateTime`). [`MAX_REPLY_BYTES`] caps it.
    ///
    /// ```
    /// # use wxhost::wechat::reply::Reply;
    /// // <MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content>
    /// assert_eq!(Reply::text("hi").encoded_len(), 68);
    /// ```
    pub fn encoded_len(&self) -> usize {
        let mut counter = XmlLen(0);
        // Counting never fails: only the writer refuses characters.
        let _ = self.write_body(&mut counter);
        counter.0
    }

    /// Calls `f` with each text of the reply and its field name, stopping at the first error.
    fn each_text(&self, mut f: impl FnMut(&'static str, &str) -> Result<()>) -> Result<()> {
        match self {
            Reply::Text { content } => f("content", content),
            Reply::Image { media_id } | Reply::Voice { media_id } => f("media_id", media_id),
            Reply::Video {
                media_id,
                title,
                description,
            } => {
                f("media_id", media_id)?;
                f("title", title)?;
                f("description", description)
            }
            Reply::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            } => {
                f("title", title)?;
                f("description", description)?;
                f("music_url", music_url)?;
                f("hq_music_url", hq_music_url)?;
                f("thumb_media_id", thumb_media_id)
            }
            Reply::News { articles } => articles.iter().try_for_each(|a| {
                f("title", &a.title)?;
                f("description", &a.description)?;
                f("pic_url", &a.pic_url)?;
                f("url", &a.url)
            }),
            Reply::TransferCustomerService { kf_account } => kf_account
                .as_deref()
                .map_or(Ok(()), |account| f("kf_account", account)),
        }
    }

    /// Encodes the reply to `to_user` from the account `from_user`, `create_time` in seconds.
    ///
    /// ```
    /// # use wxhost::wechat::reply::Reply;
    /// let xml = Reply::text("hi").encode("openid", "gh_account", 1700000000).unwrap();
    /// assert_eq!(xml, "<xml><ToUserName><![CDATA[openid]]></ToUserName>\
    ///     <FromUserName><![CDATA[gh_account]]></FromUserName><CreateTime>1700000000</CreateTime>\
    ///     <MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content></xml>");
    /// ```
    pub fn encode(&self, to_user: &str, from_user: &str, create_time: i64) -> Result<String> {
        self.validate()?;
        let mut w = XmlWriter(String::with_capacity(
            128 + to_user.len() + from_user.len() + self.encoded_len(),
        ));
        w.raw("<xml>");
        w.leaf("ToUserName", to_user)?;
        w.leaf("FromUserName", from_user)?;
        w.number("CreateTime", create_time);
        self.write_body(&mut w)?;
        w.raw("</xml>");
        Ok(w.0)
    }

    /// Writes the reply's `MsgType` and body to `w`.
    fn write_body(&self, w: &mut impl XmlSink) -> Result<()> {
        w.leaf("MsgType", self.msg_type())?;
        match self {
            Reply::Text { content } => w.leaf("Content", content)?,
            Reply::Image { media_id } => w.group("Image", [("MediaId", media_id)])?,
            Reply::Voice { media_id } => w.group("Voice", [("MediaId", media_id)])?,
            Reply::Video {
                media_id,
                title,
                description,
            } => w.group(
                "Video",
                [
                    ("MediaId", media_id),
                    ("Title", title),
                    ("Description", description),
                ],
            )?,
            Reply::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            } => w.group(
                "Music",
                [
                    ("Title", title),
                    ("Description", description),
                    ("MusicUrl", music_url),
                    ("HQMusicUrl", hq_music_url),
                    ("ThumbMediaId", thumb_media_id),
                ],
            )?,
            Reply::News { articles } => {
                w.number("ArticleCount", articles.len());
                w.raw("<Articles>");
                for a in articles {
                    w.group(
                        "item",
                        [
                            ("Title", &a.title),
                            ("Description", &a.description),
                            ("PicUrl", &a.pic_url),
                            ("Url", &a.url),
                        ],
                    )?;
                }
                w.raw("</Articles>");
            }
            Reply::TransferCustomerService { kf_account } => {
                if let Some(account) = kf_account {
                    w.group("TransInfo", [("KfAccount", account)])?;
                }
            }
        }
        Ok(())
    }

    /// Parses a plaintext reply, e.g. one the server sent, back into its model.
    pub fn parse(xml: &str) -> Result<ReplyMessage> {
        let f = xml::parse_document(xml)?;
        let text = |el: &Element, name| el.child_text(name).unwrap_or_default().to_owned();
        let inner = |name: &'static str| f.child(name).ok_or(Error::MissingField(name));
        let msg_type = f
            .child_text("MsgType")
            .ok_or(Error::MissingField("MsgType"))?;
        let reply = match msg_type {
            "text" => Reply::Text {
                content: text(&f, "Content"),
            },
            "image" => Reply::Image {
                media_id: text(inner("Image")?, "MediaId"),
            },
            "voice" => Reply::Voice {
                media_id: text(inner("Voice")?, "MediaId"),
            },
            "video" => {
                let v = inner("Video")?;
                Reply::Video {
                    media_id: text(v, "MediaId"),
                    title: text(v, "Title"),
                    description: text(v, "Description"),
                }
            }
            "music" => {
                let m = inner("Music")?;
                Reply::Music {
                    title: text(m, "Title"),
                    description: text(m, "Description"),
                    music_url: text(m, "MusicUrl"),
                    hq_music_url: text(m, "HQMusicUrl"),
                    thumb_media_id: text(m, "ThumbMediaId"),
                }
            }
            "news" => Reply::News {
                articles: inner("Articles")?
                    .children_named("item")
                    .map(|item| Article {
                        title: text(item, "Title"),
                        description: text(item, "Description"),
                        pic_url: text(item, "PicUrl"),
                        url: text(item, "Url"),
                    })
                    .collect(),
            },
            "transfer_customer_service" => Reply::TransferCustomerService {
                kf_account: f.text_at("TransInfo/KfAccount").map(str::to_owned),
            },
            other => return Err(Error::invalid_field("MsgType", other)),
        };
        let create_time = f.child_text("CreateTime").unwrap_or_default();
        Ok(ReplyMessage {
            to_user: text(&f, "ToUserName"),
            from_user: text(&f, "FromUserName"),
            create_time: create_time
                .trim()
                .parse()
                .map_err(|_| Error::invalid_field("CreateTime", create_time))?,
            reply,
        })
    }
}

/// Where a reply's XML goes: [`XmlWriter`] writes it, [`XmlLen`] only counts its bytes, so the
/// size [`Reply::validate`] caps is the size [`Reply::encode`] writes.
trait XmlSink {
    /// Markup, as is.
    fn raw(&mut self, markup: &str);
    /// `<name>` + `text` in CDATA + `</name>`.
    fn leaf(&mut self, name: &str, text: &str) -> Result<()>;
    /// `<name>` + `value` + `</name>`.
    fn number(&mut self, name: &str, value: impl std::fmt::Display);

    /// `<name>`, each leaf, `</name>`.
    fn group<'a>(
        &mut self,
        name: &str,
        leaves: impl IntoIterator<Item = (&'a str, &'a String)>,
    ) -> Result<()> {
        self.raw("<");
        self.raw(name);
        self.raw(">");
        for (leaf, text) in leaves {
            self.leaf(leaf, text)?;
        }
        self.raw("</");
        self.raw(name);
        self.raw(">");
        Ok(())
    }
}

/// Writes a reply's XML as WeChat expects it: every text in CDATA, numbers bare. A text holding
/// a character XML 1.0 cannot carry is refused: WeChat would reject the whole reply.
struct XmlWriter(String);

impl XmlSink for XmlWriter {
    fn raw(&mut self, markup: &str) {
        self.0.push_str(markup);
    }

    fn leaf(&mut self, name: &str, text: &str) -> Result<()> {
        if !xml::is_xml_text(text) {
            return Err(Error::InvalidReplyChar(field_name(name)));
        }
        self.0.push('<');
        self.0.push_str(name);
        self.0.push('>');
        xml::push_cdata(&mut self.0, text);
        self.0.push_str("</");
        self.0.push_str(name);
        self.0.push('>');
        Ok(())
    }

    fn number(&mut self, name: &str, value: impl std::fmt::Display) {
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = write!(self.0, "<{name}>{value}</{name}>");
    }
}

/// Counts the bytes [`XmlWriter`] would write.
struct XmlLen(usize);

impl std::fmt::Write for XmlLen {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

impl XmlSink for XmlLen {
    fn raw(&mut self, markup: &str) {
        self.0 += markup.len();
    }

    fn leaf(&mut self, name: &str, text: &str) -> Result<()> {
        // `<name><![CDATA[` … `]]></name>`, and each `]]>` split in two sections, 12 bytes more
        // (`]]]]><![CDATA[>`, as `xml::push_cdata` writes it).
        self.0 += 2 * name.len() + 5 + "<![CDATA[]]>".len() + text.len();
        self.0 += 12 * text.matches("]]>").count();
        Ok(())
    }

    fn number(&mut self, name: &str, value: impl std::fmt::Display) {
        use std::fmt::Write as _;
        self.0 += 2 * name.len() + 5;
        // Counting cannot fail.
        let _ = write!(self, "{value}");
    }
}

/// Maps an element name to the model's field name for error messages.
fn field_name(element: &str) -> &'static str {
    match element {
        "ToUserName" => "to_user",
        "FromUserName" => "from_user",
        "Content" => "content",
        "MediaId" => "media_id",
        "Title" => "title",
        "Description" => "description",
        "MusicUrl" => "music_url",
        "HQMusicUrl" => "hq_music_url",
        "ThumbMediaId" => "thumb_media_id",
        "PicUrl" => "pic_url",
        "Url" => "url",
        "KfAccount" => "kf_account",
        _ => "reply",
    }
}
