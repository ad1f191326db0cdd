//! What a plugin answers: a passive reply, or handled, or pass; and the host's rules for a
//! reply, checked before it leaves.

use std::fmt;

use serde::{Deserialize, Serialize};

/// WeChat's limit on a text reply, in UTF-8 bytes.
pub const MAX_TEXT_BYTES: usize = 2048;
/// WeChat's limit on the articles of a news reply.
pub const MAX_ARTICLES: usize = 8;

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
    /// requires present, and no character XML cannot carry in any field. The first rule broken
    /// is reported, in the host's order (limits first, then each field as it is written).
    ///
    /// ```
    /// use wxhost_sdk::{Reply, ReplyError};
    /// assert_eq!(Reply::text("hi").validate(), Ok(()));
    /// assert_eq!(Reply::text("é".repeat(1025)).validate(), Err(ReplyError::TextTooLong(2050)));
    /// assert_eq!(Reply::news([]).validate(), Err(ReplyError::ArticleCount(0)));
    /// assert_eq!(Reply::image("").validate(), Err(ReplyError::EmptyField("media_id")));
    /// assert_eq!(Reply::text("a\u{7}").validate(), Err(ReplyError::InvalidChar("content")));
    /// ```
    pub fn validate(&self) -> Result<(), ReplyError> {
        match self {
            Reply::Text(content) => {
                if content.len() > MAX_TEXT_BYTES {
                    return Err(ReplyError::TextTooLong(content.len()));
                }
                xml_text("content", content)
            }
            Reply::Image { media_id } | Reply::Voice { media_id } => {
                required("media_id", media_id)?;
                xml_text("media_id", media_id)
            }
            Reply::Video {
                media_id,
                title,
                description,
            } => {
                required("media_id", media_id)?;
                xml_text("media_id", media_id)?;
                xml_text("title", title)?;
                xml_text("description", description)
            }
            Reply::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            } => {
                required("thumb_media_id", thumb_media_id)?;
                xml_text("title", title)?;
                xml_text("description", description)?;
                xml_text("music_url", music_url)?;
                xml_text("hq_music_url", hq_music_url)?;
                xml_text("thumb_media_id", thumb_media_id)
            }
            Reply::News(articles) => {
                if articles.is_empty() || articles.len() > MAX_ARTICLES {
                    return Err(ReplyError::ArticleCount(articles.len()));
                }
                articles.iter().try_for_each(|a| {
                    xml_text("title", &a.title)?;
                    xml_text("description", &a.description)?;
                    xml_text("pic_url", &a.pic_url)?;
                    xml_text("url", &a.url)
                })
            }
            Reply::TransferCustomerService { kf_account } => match kf_account {
                Some(account) => xml_text("kf_account", account),
                None => Ok(()),
            },
        }
    }
}

fn required(field: &'static str, value: &str) -> Result<(), ReplyError> {
    if value.is_empty() {
        Err(ReplyError::EmptyField(field))
    } else {
        Ok(())
    }
}

fn xml_text(field: &'static str, text: &str) -> Result<(), ReplyError> {
    let xml_char = |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
    if text.chars().all(xml_char) {
        Ok(())
    } else {
        Err(ReplyError::InvalidChar(field))
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
