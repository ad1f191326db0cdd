//! What a plugin answers: a passive reply, or handled, or pass; and the host's rules for a
//! reply, checked before it leaves.

use std::fmt;

use serde::{Deserialize, Serialize};

/// WeChat's limit on a text reply, in UTF-8 bytes.
pub const MAX_TEXT_BYTES: usize = 2048;
/// WeChat's limit on the articles of a news reply.
pub const MAX_ARTICLES: usize = 8;

// The host's caps on the other fields (its `wechat::reply`, where each is justified), the same
// numbers: WeChat documents none, and the host keeps replies small.

/// The longest title (of an article, a video or a music card), in UTF-8 bytes: 64 characters
/// of any script fit (WeChat's editor allows 64).
pub const MAX_TITLE_BYTES: usize = 256;
/// The longest description (of an article, a video or a music card), in UTF-8 bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;
/// The longest URL (`pic_url`, `url`, `music_url`, `hq_music_url`), in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// The longest media id (`media_id`, `thumb_media_id`), in bytes (WeChat's are 43 or 64).
pub const MAX_MEDIA_ID_BYTES: usize = 128;
/// The longest customer-service account (`kf_account`), in bytes.
pub const MAX_KF_ACCOUNT_BYTES: usize = 64;
/// The largest reply, as [`Reply::encoded_len`] measures it: 16 KiB. Any text reply fits, and
/// a news reply of 8 articles of ordinary length.
pub const MAX_REPLY_BYTES: usize = 16 * 1024;

/// The cap of a reply field, by its name (the names [`ReplyError`] uses).
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

/// A passive reply to the user. The host checks WeChat's rules ([`Reply::validate`]) and
/// treats a reply that breaks them as the plugin's error.
///
/// Its JSON has the host's shape (`wechat::Reply`): tagged by `type` in snake case, the texts
/// named (`{"type":"text","content":"hi"}`, `{"type":"news","articles":[…]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "ReplyShape", from = "ReplyShape")]
#[allow(missing_docs, reason = "field names say what they hold")]
pub enum Reply {
    /// A text message.
    Text(String),
    /// A picture, by media id.
    Image { media_id: String },
    /// A voice message, by media id.
    Voice { media_id: String },
    /// A video, by media id.
    Video {
        media_id: String,
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
    /// News: 1 to 8 articles, the first shown large.
    News(Vec<Article>),
    /// Hand the conversation to customer service, optionally to one agent account.
    TransferCustomerService { kf_account: Option<String> },
}

/// A rule of WeChat's that a reply breaks. The messages are the host's, word for word.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplyError {
    /// A text reply longer than [`MAX_TEXT_BYTES`] (its length in bytes).
    TextTooLong(usize),
    /// A news reply with no articles or more than [`MAX_ARTICLES`] (how many).
    ArticleCount(usize),
    /// A field WeChat requires is empty (its name).
    EmptyField(&'static str),
    /// A field holds a character XML 1.0 cannot carry: an ASCII control other than tab,
    /// newline and return, or U+FFFE/U+FFFF (the field's name).
    InvalidChar(&'static str),
    /// A field is longer than its cap ([`field_limit`]).
    FieldTooLong {
        /// The field's name.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// Its cap.
        limit: usize,
    },
    /// The whole reply is larger than [`MAX_REPLY_BYTES`] ([`Reply::encoded_len`]).
    TooLarge {
        /// Its encoded size.
        len: usize,
        /// The cap.
        limit: usize,
    },
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::TextTooLong(n) => {
                write!(
                    f,
                    "text reply of {n} bytes exceeds WeChat's 2048-byte limit"
                )
            }
            ReplyError::ArticleCount(n) => {
                write!(f, "news reply has {n} articles; WeChat accepts 1 to 8")
            }
            ReplyError::EmptyField(field) => write!(f, "reply field `{field}` must not be empty"),
            ReplyError::InvalidChar(field) => write!(
                f,
                "reply field `{field}` contains a character XML cannot carry (a control character)"
            ),
            ReplyError::FieldTooLong { field, len, limit } => write!(
                f,
                "reply field `{field}` of {len} bytes exceeds the {limit}-byte limit"
            ),
            ReplyError::TooLarge { len, limit } => {
                write!(
                    f,
                    "reply of {len} bytes encoded exceeds the {limit}-byte limit"
                )
            }
        }
    }
}

impl std::error::Error for ReplyError {}

impl Reply {
    /// A text reply.
    pub fn text(text: impl Into<String>) -> Self {
        Reply::Text(text.into())
    }

    /// A picture reply.
    pub fn image(media_id: impl Into<String>) -> Self {
        Reply::Image {
            media_id: media_id.into(),
        }
    }

    /// A voice reply.
    pub fn voice(media_id: impl Into<String>) -> Self {
        Reply::Voice {
            media_id: media_id.into(),
        }
    }

    /// A video reply.
    pub fn video(
        media_id: impl Into<String>,
        title: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Reply::Video {
            media_id: media_id.into(),
            title: title.into(),
            description: description.into(),
        }
    }

    /// A music reply with its thumbnail; set the URLs with struct update syntax if needed.
    pub fn music(
        title: impl Into<String>,
        music_url: impl Into<String>,
        thumb_media_id: impl Into<String>,
    ) -> Self {
        let music_url = music_url.into();
        Reply::Music {
            title: title.into(),
            description: String::new(),
            hq_music_url: music_url.clone(),
            music_url,
            thumb_media_id: thumb_media_id.into(),
        }
    }

    /// A news reply.
    pub fn news(articles: impl IntoIterator<Item = Article>) -> Self {
        Reply::News(articles.into_iter().collect())
    }

    /// Transfer to any customer-service agent.
    pub fn transfer_customer_service() -> Self {
        Reply::TransferCustomerService { kf_account: None }
    }

    /// Transfer to one customer-service agent (`name@account`).
    pub fn transfer_to(kf_account: impl Into<String>) -> Self {
        Reply::TransferCustomerService {
            kf_account: Some(kf_account.into()),
        }
    }

    /// Checks the reply against WeChat's rules as the host does before sending it: a text of
    /// at most [`MAX_TEXT_BYTES`] bytes, 1 to [`MAX_ARTICLES`] articles, the media ids WeChat
    /// requires present, each field within its cap ([`field_limit`]) and without a character
    /// XML cannot carry, and the whole reply within [`MAX_REPLY_BYTES`]. The first rule broken
    /// is reported, in the host's order (the limits first, then each field as it is written:
    /// its length, then its characters; then the whole reply's size).
    ///
    /// ```
    /// use wxhost_sdk::{Article, Reply, ReplyError};
    /// assert_eq!(Reply::text("hi").validate(), Ok(()));
    /// assert_eq!(Reply::text("é".repeat(1025)).validate(), Err(ReplyError::TextTooLong(2050)));
    /// assert_eq!(Reply::news([]).validate(), Err(ReplyError::ArticleCount(0)));
    /// assert_eq!(Reply::image("").validate(), Err(ReplyError::EmptyField("media_id")));
    /// assert_eq!(Reply::text("a\u{7}").validate(), Err(ReplyError::InvalidChar("content")));
    /// assert_eq!(
    ///     Reply::news([Article::new("t".repeat(300), "https://example.com")]).validate(),
    ///     Err(ReplyError::FieldTooLong { field: "title", len: 300, limit: 256 })
    /// );
    /// let long = Article::new("t", "https://example.com/".repeat(100));
    /// assert!(matches!(
    ///     Reply::news(vec![long; 8]).validate(),
    ///     Err(ReplyError::TooLarge { limit: 16384, .. })
    /// ));
    /// ```
    pub fn validate(&self) -> Result<(), ReplyError> {
        match self {
            Reply::Text(content) => {
                if content.len() > MAX_TEXT_BYTES {
                    return Err(ReplyError::TextTooLong(content.len()));
                }
                field("content", content)?;
            }
            Reply::Image { media_id } | Reply::Voice { media_id } => {
                required("media_id", media_id)?;
                field("media_id", media_id)?;
            }
            Reply::Video {
                media_id,
                title,
                description,
            } => {
                required("media_id", media_id)?;
                field("media_id", media_id)?;
                field("title", title)?;
                field("description", description)?;
            }
            Reply::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            } => {
                required("thumb_media_id", thumb_media_id)?;
                field("title", title)?;
                field("description", description)?;
                field("music_url", music_url)?;
                field("hq_music_url", hq_music_url)?;
                field("thumb_media_id", thumb_media_id)?;
            }
            Reply::News(articles) => {
                if articles.is_empty() || articles.len() > MAX_ARTICLES {
                    return Err(ReplyError::ArticleCount(articles.len()));
                }
                articles.iter().try_for_each(|a| {
                    field("title", &a.title)?;
                    field("description", &a.description)?;
                    field("pic_url", &a.pic_url)?;
                    field("url", &a.url)
                })?;
            }
            Reply::TransferCustomerService { kf_account } => {
                if let Some(account) = kf_account {
                    field("kf_account", account)?;
                }
            }
        }
        let len = self.encoded_len();
        if len > MAX_REPLY_BYTES {
            return Err(ReplyError::TooLarge {
                len,
                limit: MAX_REPLY_BYTES,
            });
        }
        Ok(())
    }

    /// The bytes of the reply's own XML as the host encodes it: its `MsgType` and its body,
    /// without the `<xml>` root and the addressing the host writes (`ToUserName`,
    /// `FromUserName`, `CreateTime`). [`MAX_REPLY_BYTES`] caps it.
    ///
    /// ```
    /// use wxhost_sdk::Reply;
    /// // <MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content>
    /// assert_eq!(Reply::text("hi").encoded_len(), 68);
    /// ```
    pub fn encoded_len(&self) -> usize {
        let group = |name: &str, leaves: &[(&str, &str)]| {
            element(name, 0) + leaves.iter().map(|&(l, t)| leaf(l, t)).sum::<usize>()
        };
        let msg_type = match self {
            Reply::Text(_) => "text",
            Reply::Image { .. } => "image",
            Reply::Voice { .. } => "voice",
            Reply::Video { .. } => "video",
            Reply::Music { .. } => "music",
            Reply::News(_) => "news",
            Reply::TransferCustomerService { .. } => "transfer_customer_service",
        };
        let body = match self {
            Reply::Text(content) => leaf("Content", content),
            Reply::Image { media_id } => group("Image", &[("MediaId", media_id)]),
            Reply::Voice { media_id } => group("Voice", &[("MediaId", media_id)]),
            Reply::Video {
                media_id,
                title,
                description,
            } => group(
                "Video",
                &[
                    ("MediaId", media_id),
                    ("Title", title),
                    ("Description", description),
                ],
            ),
            Reply::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            } => group(
                "Music",
                &[
                    ("Title", title),
                    ("Description", description),
                    ("MusicUrl", music_url),
                    ("HQMusicUrl", hq_music_url),
                    ("ThumbMediaId", thumb_media_id),
                ],
            ),
            Reply::News(articles) => {
                element("ArticleCount", articles.len().to_string().len())
                    + element("Articles", 0)
                    + articles
                        .iter()
                        .map(|a| {
                            group(
                                "item",
                                &[
                                    ("Title", &a.title),
                                    ("Description", &a.description),
                                    ("PicUrl", &a.pic_url),
                                    ("Url", &a.url),
                                ],
                            )
                        })
                        .sum::<usize>()
            }
            Reply::TransferCustomerService { kf_account } => kf_account
                .as_deref()
                .map_or(0, |account| group("TransInfo", &[("KfAccount", account)])),
        };
        leaf("MsgType", msg_type) + body
    }
}

/// Bytes of `<name>` + `inner` bytes + `</name>`.
fn element(name: &str, inner: usize) -> usize {
    2 * name.len() + 5 + inner
}

/// Bytes of `<name><![CDATA[text]]></name>` as the host writes it: each `]]>` in the text
/// splits it in two CDATA sections (`]]]]><![CDATA[>`, 12 bytes more).
fn leaf(name: &str, text: &str) -> usize {
    element(
        name,
        "<![CDATA[]]>".len() + text.len() + 12 * text.matches("]]>").count(),
    )
}

fn required(field: &'static str, value: &str) -> Result<(), ReplyError> {
    if value.is_empty() {
        Err(ReplyError::EmptyField(field))
    } else {
        Ok(())
    }
}

/// Checks a field's length against its cap, then its characters.
fn field(name: &'static str, text: &str) -> Result<(), ReplyError> {
    let limit = field_limit(name);
    if text.len() > limit {
        return Err(ReplyError::FieldTooLong {
            field: name,
            len: text.len(),
            limit,
        });
    }
    let xml_char = |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
    if text.chars().all(xml_char) {
        Ok(())
    } else {
        Err(ReplyError::InvalidChar(name))
    }
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
    /// Picture URL.
    #[serde(default)]
    pub pic_url: String,
    /// Link opened on tap.
    #[serde(default)]
    pub url: String,
}

impl Article {
    /// An article with a title and a link.
    pub fn new(title: impl Into<String>, url: impl Into<String>) -> Self {
        Article {
            title: title.into(),
            url: url.into(),
            ..Article::default()
        }
    }

    /// With a description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// With a picture.
    pub fn pic_url(mut self, pic_url: impl Into<String>) -> Self {
        self.pic_url = pic_url.into();
        self
    }
}

/// What the plugin decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Answer with this reply and stop the chain.
    Reply(Reply),
    /// Stop the chain without a passive reply.
    Handled,
    /// Not for this plugin: let the next one try.
    Pass,
}

impl From<Reply> for Outcome {
    fn from(reply: Reply) -> Self {
        Outcome::Reply(reply)
    }
}

/// [`Reply`] as JSON: the host's `wechat::Reply` field for field (tag, names, defaults).
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ReplyShape {
    Text {
        content: String,
    },
    Image {
        media_id: String,
    },
    Voice {
        media_id: String,
    },
    Video {
        media_id: String,
        #[serde(default)]
        title: String,
        #[serde(default)]
        description: String,
    },
    Music {
        #[serde(default)]
        title: String,
        #[serde(default)]
        description: String,
        #[serde(default)]
        music_url: String,
        #[serde(default)]
        hq_music_url: String,
        thumb_media_id: String,
    },
    News {
        articles: Vec<Article>,
    },
    TransferCustomerService {
        #[serde(default)]
        kf_account: Option<String>,
    },
}

impl From<Reply> for ReplyShape {
    fn from(reply: Reply) -> Self {
        match reply {
            Reply::Text(content) => ReplyShape::Text { content },
            Reply::Image { media_id } => ReplyShape::Image { media_id },
            Reply::Voice { media_id } => ReplyShape::Voice { media_id },
            Reply::Video {
                media_id,
                title,
                description,
            } => ReplyShape::Video {
                media_id,
                title,
                description,
            },
            Reply::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            } => ReplyShape::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            },
            Reply::News(articles) => ReplyShape::News { articles },
            Reply::TransferCustomerService { kf_account } => {
                ReplyShape::TransferCustomerService { kf_account }
            }
        }
    }
}

impl From<ReplyShape> for Reply {
    fn from(shape: ReplyShape) -> Self {
        match shape {
            ReplyShape::Text { content } => Reply::Text(content),
            ReplyShape::Image { media_id } => Reply::Image { media_id },
            ReplyShape::Voice { media_id } => Reply::Voice { media_id },
            ReplyShape::Video {
                media_id,
                title,
                description,
            } => Reply::Video {
                media_id,
                title,
                description,
            },
            ReplyShape::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            } => Reply::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            },
            ReplyShape::News { articles } => Reply::News(articles),
            ReplyShape::TransferCustomerService { kf_account } => {
                Reply::TransferCustomerService { kf_account }
            }
        }
    }
}
