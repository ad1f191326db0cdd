//! The bodies of customer-service and template messages, and how a passive [`Reply`] becomes
//! a customer-service message when it comes too late to be passive.

use serde::Serialize;
use serde_json::{Value, json};

use super::ApiError;
use crate::wechat::Reply;

/// A customer-service message (`message/custom/send`), without its recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomMessage {
    /// Text (WeChat caps it at 2048 bytes).
    Text(String),
    /// A picture, by media id.
    Image(String),
    /// A voice message, by media id.
    Voice(String),
    /// A video, by media id.
    Video {
        /// Media id of the video.
        media_id: String,
        /// Media id of its thumbnail (may be empty).
        thumb_media_id: String,
        /// Title (may be empty).
        title: String,
        /// Description (may be empty).
        description: String,
    },
    /// A music card.
    Music {
        /// Title (may be empty).
        title: String,
        /// Description (may be empty).
        description: String,
        /// Music URL.
        music_url: String,
        /// High-quality music URL.
        hq_music_url: String,
        /// Media id of the thumbnail.
        thumb_media_id: String,
    },
    /// A link card (WeChat accepts one article).
    News {
        /// Title.
        title: String,
        /// Description.
        description: String,
        /// Link opened on tap.
        url: String,
        /// Picture URL.
        pic_url: String,
    },
    /// A mini-program card.
    MiniProgramPage {
        /// Title.
        title: String,
        /// The mini program's appid.
        app_id: String,
        /// The page path.
        page_path: String,
        /// Media id of the card's picture.
        thumb_media_id: String,
    },
}

impl CustomMessage {
    /// The customer-service message carrying `reply`; `None` for a transfer to customer
    /// service, which has no customer-service form. A news reply keeps its first article
    /// (the customer-service API accepts only one).
    pub fn from_reply(reply: Reply) -> Option<Self> {
        Some(match reply {
            Reply::Text { content } => CustomMessage::Text(content),
            Reply::Image { media_id } => CustomMessage::Image(media_id),
            Reply::Voice { media_id } => CustomMessage::Voice(media_id),
            Reply::Video {
                media_id,
                title,
                description,
            } => CustomMessage::Video {
                media_id,
                thumb_media_id: String::new(),
                title,
                description,
            },
            Reply::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            } => CustomMessage::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            },
            Reply::News { articles } => {
                let first = articles.into_iter().next()?;
                CustomMessage::News {
                    title: first.title,
                    description: first.description,
                    url: first.url,
                    pic_url: first.pic_url,
                }
            }
            Reply::TransferCustomerService { .. } => return None,
        })
    }

    /// The `msgtype` of the message.
    pub fn msg_type(&self) -> &'static str {
        match self {
            CustomMessage::Text(_) => "text",
            CustomMessage::Image(_) => "image",
            CustomMessage::Voice(_) => "voice",
            CustomMessage::Video { .. } => "video",
            CustomMessage::Music { .. } => "music",
            CustomMessage::News { .. } => "news",
            CustomMessage::MiniProgramPage { .. } => "miniprogrampage",
        }
    }

    /// The request body sending this message to `to_user`, optionally as the customer-service
    /// agent `kf_account`.
    pub fn body(&self, to_user: &str, kf_account: Option<&str>) -> Result<Value, ApiError> {
        if to_user.is_empty() {
            return Err(ApiError::Invalid("the recipient openid is empty".into()));
        }
        let content = match self {
            CustomMessage::Text(content) => {
                if content.is_empty() {
                    return Err(ApiError::Invalid("the text is empty".into()));
                }
                json!({ "content": content })
            }
            CustomMessage::Image(media_id) | CustomMessage::Voice(media_id) => {
                json!({ "media_id": non_empty("media_id", media_id)? })
            }
            CustomMessage::Video {
                media_id,
                thumb_media_id,
                title,
                description,
            } => json!({
                "media_id": non_empty("media_id", media_id)?,
                "thumb_media_id": thumb_media_id,
                "title": title,
                "description": description,
            }),
            CustomMessage::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            } => json!({
                "title": title,
                "description": description,
                "musicurl": music_url,
                "hqmusicurl": hq_music_url,
                "thumb_media_id": thumb_media_id,
            }),
            CustomMessage::News {
                title,
                description,
                url,
                pic_url,
            } => json!({ "articles": [{
                "title": non_empty("title", title)?,
                "description": description,
                "url": url,
                "picurl": pic_url,
            }]}),
            CustomMessage::MiniProgramPage {
                title,
                app_id,
                page_path,
                thumb_media_id,
            } => json!({
                "title": title,
                "appid": non_empty("appid", app_id)?,
                "pagepath": non_empty("pagepath", page_path)?,
                "thumb_media_id": thumb_media_id,
            }),
        };
        let msg_type = self.msg_type();
        let mut body = json!({ "touser": to_user, "msgtype": msg_type });
        body[msg_type] = content;
        if let Some(account) = kf_account {
            body["customservice"] = json!({ "kf_account": account });
        }
        Ok(body)
    }
}

fn non_empty<'a>(field: &str, value: &'a str) -> Result<&'a str, ApiError> {
    if value.is_empty() {
        Err(ApiError::Invalid(format!("`{field}` is empty")))
    } else {
        Ok(value)
    }
}

/// A template message (`message/template/send`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateMessage {
    /// The recipient's openid.
    #[serde(rename = "touser")]
    pub to_user: String,
    /// The template id.
    pub template_id: String,
    /// The page opened on tap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The mini-program page opened on tap (preferred over `url` when set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub miniprogram: Option<MiniProgramLink>,
    /// The template's fields by name.
    pub data: std::collections::BTreeMap<String, TemplateField>,
    /// A caller-chosen id that makes WeChat drop duplicates of the same send.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
}

/// A mini-program page a template message links to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MiniProgramLink {
    /// The mini program's appid.
    pub appid: String,
    /// The page path.
    pub pagepath: String,
}

/// One field of a template message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateField {
    /// The text.
    pub value: String,
    /// A colour such as `#173177` (deprecated by WeChat, still accepted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

impl TemplateMessage {
    /// The request body, after checking the required fields.
    pub fn body(&self) -> Result<Value, ApiError> {
        non_empty("touser", &self.to_user)?;
        non_empty("template_id", &self.template_id)?;
        serde_json::to_value(self).map_err(|e| ApiError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wechat::reply::Article;

    #[test]
    fn bodies_match_the_documented_shapes() {
        let text = CustomMessage::Text("hi".into()).body("o1", None);
        assert_eq!(
            text,
            Ok(json!({"touser":"o1","msgtype":"text","text":{"content":"hi"}}))
        );
        let music = CustomMessage::Music {
            title: "t".into(),
            description: "d".into(),
            music_url: "m".into(),
            hq_music_url: "h".into(),
            thumb_media_id: "th".into(),
        }
        .body("o1", Some("kf@x"));
        assert_eq!(
            music,
            Ok(json!({"touser":"o1","msgtype":"music","music":{
                "title":"t","description":"d","musicurl":"m","hqmusicurl":"h","thumb_media_id":"th"},
                "customservice":{"kf_account":"kf@x"}}))
        );
        let page = CustomMessage::MiniProgramPage {
            title: "t".into(),
            app_id: "wxa".into(),
            page_path: "pages/i".into(),
            thumb_media_id: "th".into(),
        };
        assert_eq!(
            page.body("o1", None)
                .map(|b| b["miniprogrampage"]["pagepath"].clone()),
            Ok(json!("pages/i"))
        );
    }

    #[test]
    fn empty_required_fields_are_refused() {
        assert!(CustomMessage::Text(String::new()).body("o", None).is_err());
        assert!(CustomMessage::Text("x".into()).body("", None).is_err());
        assert!(CustomMessage::Image(String::new()).body("o", None).is_err());
        let template = TemplateMessage {
            to_user: "o".into(),
            template_id: String::new(),
            url: None,
            miniprogram: None,
            data: Default::default(),
            client_msg_id: None,
        };
        assert!(template.body().is_err());
    }

    #[test]
    fn replies_become_custom_messages() {
        assert_eq!(
            CustomMessage::from_reply(Reply::Text {
                content: "x".into()
            }),
            Some(CustomMessage::Text("x".into()))
        );
        let article = |t: &str| Article {
            title: t.into(),
            description: String::new(),
            pic_url: String::new(),
            url: "u".into(),
        };
        let news = CustomMessage::from_reply(Reply::News {
            articles: vec![article("first"), article("second")],
        });
        assert!(matches!(news, Some(CustomMessage::News { title, .. }) if title == "first"));
        assert_eq!(
            CustomMessage::from_reply(Reply::TransferCustomerService { kf_account: None }),
            None
        );
    }

    #[test]
    fn template_body_omits_unset_fields() {
        let mut data = std::collections::BTreeMap::new();
        data.insert(
            "thing1".to_owned(),
            TemplateField {
                value: "v".into(),
                color: None,
            },
        );
        let template = TemplateMessage {
            to_user: "o".into(),
            template_id: "tpl".into(),
            url: Some("https://e.x".into()),
            miniprogram: None,
            data,
            client_msg_id: None,
        };
        assert_eq!(
            template.body(),
            Ok(json!({"touser":"o","template_id":"tpl","url":"https://e.x",
                      "data":{"thing1":{"value":"v"}}}))
        );
    }
}
