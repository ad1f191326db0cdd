//! What a plugin answers: a passive reply, or handled, or pass.

use serde::{Deserialize, Serialize};

/// A passive reply to the user. The host checks WeChat's limits (text ≤ 2048 bytes, 1–8
/// articles, media ids present) and treats a reply that breaks them as the plugin's error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// One article of a news reply.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
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
