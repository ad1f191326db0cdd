//! The host side of the imports that act beyond the call: `early-reply` (answer WeChat now,
//! keep working), `wechat-api` (granted per plugin; raw calls only to allow-listed paths) and
//! `media` (granted per plugin; sharing `wechat-api`'s quota of calls per call).

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::bindings::wxhost::plugin::{early_reply, media, types, wechat_api as wit};
use super::context::{ApiGrant, Caller, EarlyReply};
use super::convert;
use crate::wechat::Message;
use crate::wechat_api::media::{MediaFile, MediaKind, VideoInfo};
use crate::wechat_api::{
    AccountApi, ApiError, ApiRequest, CustomMessage, Idempotency, Method, TemplateMessage,
    check_path,
    messages::{MiniProgramLink, TemplateField},
};

/// `early-reply`: the call's slot for answering WeChat before the plugin returns.
#[derive(Debug)]
pub struct EarlyReplyImport {
    caller: Arc<Caller>,
    slot: EarlyReply,
}

impl EarlyReplyImport {
    /// The import for one call of `caller`, answering into `slot`.
    pub fn new(caller: &Arc<Caller>, slot: EarlyReply) -> Self {
        EarlyReplyImport {
            caller: Arc::clone(caller),
            slot,
        }
    }
}

impl early_reply::Host for EarlyReplyImport {
    fn send(&mut self, reply: types::Reply) -> Result<(), String> {
        let reply = convert::reply(reply);
        reply
            .validate()
            .map_err(|e| format!("invalid reply: {e}"))?;
        let result = self.slot.send(reply);
        if result.is_ok() {
            tracing::debug!(tenant = %self.caller.tenant(), plugin = %self.caller.plugin, "early reply sent");
        }
        result
    }
}

/// Runs `call` until `deadline` (the plugin call's).
async fn until<T>(
    deadline: Instant,
    call: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, wit::Error> {
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, call).await {
        Ok(result) => result.map_err(api_error),
        Err(_) => Err(api_error(ApiError::Timeout)),
    }
}

fn api_error(e: ApiError) -> wit::Error {
    match e {
        ApiError::WeChat { code, message } => {
            wit::Error::Wechat(wit::WechatError { code, message })
        }
        ApiError::Invalid(reason) => wit::Error::Invalid(reason),
        // WeChat's own code for what it would have answered, so a plugin handles both alike.
        refused @ (ApiError::OutsideWindow { .. } | ApiError::OverUserLimit { .. }) => {
            wit::Error::Wechat(wit::WechatError {
                code: refused.code().unwrap_or_default(),
                message: refused.to_string(),
            })
        }
        other => wit::Error::Unavailable(other.to_string()),
    }
}

/// `wechat-api` and `media`: the tenant's WeChat API and media material when granted, at most
/// `api_calls` calls of both per call, each within the call's deadline; sends go to the current
/// user unless the plugin names another.
#[derive(Debug)]
pub struct WechatApiImport {
    caller: Arc<Caller>,
    message: Arc<Message>,
    deadline: Instant,
    calls: u32,
}

impl WechatApiImport {
    /// The import for one call of `caller` on `message`, ending at `deadline`.
    pub fn new(caller: &Arc<Caller>, message: &Arc<Message>, deadline: Instant) -> Self {
        WechatApiImport {
            caller: Arc::clone(caller),
            message: Arc::clone(message),
            deadline,
            calls: 0,
        }
    }

    /// The granted API, after counting one call against the quota.
    fn api(&mut self) -> Result<ApiGrant, wit::Error> {
        let grant = self.caller.ctx.api.clone();
        self.count(grant, "wechat-api")
    }

    /// The API for the granted `media`, after counting one call against the quota.
    fn media(&mut self) -> Result<AccountApi, wit::Error> {
        let grant = self.caller.ctx.media.clone();
        self.count(grant, "media")
    }

    /// `grant` if there is one (the capability `name` is granted), after counting one call.
    fn count<T>(&mut self, grant: Option<T>, name: &str) -> Result<T, wit::Error> {
        let caller = &self.caller;
        let Some(grant) = grant else {
            return Err(wit::Error::Denied(format!(
                "the `{name}` capability is not granted to plugin {} in tenant {}",
                caller.plugin,
                caller.tenant()
            )));
        };
        let max = caller.limits().api_calls;
        if self.calls >= max {
            return Err(wit::Error::Unavailable(format!(
                "at most {max} WeChat API calls per call"
            )));
        }
        self.calls += 1;
        Ok(grant)
    }

    fn recipient(&self, to_user: Option<String>) -> String {
        to_user.unwrap_or_else(|| self.message.from_user.clone())
    }
}

impl wit::Host for WechatApiImport {
    async fn send_custom(
        &mut self,
        to_user: Option<String>,
        message: wit::CustomMessage,
    ) -> Result<(), wit::Error> {
        let grant = self.api()?;
        let to_user = self.recipient(to_user);
        let message = custom_message(message);
        until(
            self.deadline,
            grant.api.send_custom(&to_user, &message, None),
        )
        .await
    }

    async fn send_template(&mut self, message: wit::TemplateMessage) -> Result<u64, wit::Error> {
        let grant = self.api()?;
        let message = TemplateMessage {
            to_user: self.recipient(message.to_user),
            template_id: message.template_id,
            url: message.url,
            miniprogram: message.mini_program.map(|m| MiniProgramLink {
                appid: m.app_id,
                pagepath: m.page_path,
            }),
            data: message
                .data
                .into_iter()
                .map(|f| {
                    (
                        f.name,
                        TemplateField {
                            value: f.value,
                            color: f.color,
                        },
                    )
                })
                .collect(),
            client_msg_id: message.client_msg_id,
        };
        until(self.deadline, grant.api.send_template(&message)).await
    }

    async fn call(
        &mut self,
        method: wit::Method,
        path: String,
        query: Vec<(String, String)>,
        body: Option<String>,
    ) -> Result<String, wit::Error> {
        let grant = self.api()?;
        let path = check_path(&path).map_err(api_error)?;
        if !grant.paths.iter().any(|allowed| allowed == path) {
            return Err(wit::Error::Denied(format!(
                "API path {path} is not in plugin {}'s api_paths",
                self.caller.plugin
            )));
        }
        let body = body
            .map(|text| serde_json::from_str::<Value>(&text))
            .transpose()
            .map_err(|e| wit::Error::Invalid(format!("the body is not JSON: {e}")))?;
        let method = match method {
            wit::Method::Get => Method::Get,
            wit::Method::Post => Method::Post,
        };
        let request = ApiRequest {
            method,
            path,
            query: &query,
            body: body.as_ref(),
            idempotency: if method == Method::Get {
                Idempotency::Idempotent
            } else {
                Idempotency::NotIdempotent
            },
        };
        until(self.deadline, grant.api.call(request))
            .await
            .map(|answer| answer.to_string())
    }
}

impl media::Host for WechatApiImport {
    async fn upload(&mut self, kind: media::Kind, bytes: Vec<u8>) -> Result<String, wit::Error> {
        let api = self.media()?;
        until(self.deadline, api.upload_media(media_kind(kind), &bytes)).await
    }

    async fn upload_permanent(
        &mut self,
        kind: media::Kind,
        bytes: Vec<u8>,
        video: Option<media::VideoInfo>,
    ) -> Result<media::Material, wit::Error> {
        let api = self.media()?;
        let video = video.map(|v| VideoInfo {
            title: v.title,
            introduction: v.introduction,
        });
        let material = until(
            self.deadline,
            api.upload_material(media_kind(kind), &bytes, video.as_ref()),
        )
        .await?;
        Ok(media::Material {
            media_id: material.media_id,
            url: material.url,
        })
    }

    async fn download(&mut self, media_id: String) -> Result<media::File, wit::Error> {
        let api = self.media()?;
        until(self.deadline, api.download_media(&media_id))
            .await
            .map(file)
    }

    async fn download_permanent(&mut self, media_id: String) -> Result<media::File, wit::Error> {
        let api = self.media()?;
        until(self.deadline, api.download_material(&media_id))
            .await
            .map(file)
    }
}

fn media_kind(kind: media::Kind) -> MediaKind {
    match kind {
        media::Kind::Image => MediaKind::Image,
        media::Kind::Voice => MediaKind::Voice,
        media::Kind::Video => MediaKind::Video,
        media::Kind::Thumb => MediaKind::Thumb,
    }
}

fn file(file: MediaFile) -> media::File {
    media::File {
        content_type: file.content_type,
        bytes: file.bytes,
    }
}

fn custom_message(message: wit::CustomMessage) -> CustomMessage {
    match message {
        wit::CustomMessage::Text(text) => CustomMessage::Text(text),
        wit::CustomMessage::Image(media_id) => CustomMessage::Image(media_id),
        wit::CustomMessage::Voice(media_id) => CustomMessage::Voice(media_id),
        wit::CustomMessage::Video(v) => CustomMessage::Video {
            media_id: v.media_id,
            thumb_media_id: v.thumb_media_id,
            title: v.title,
            description: v.description,
        },
        wit::CustomMessage::Music(m) => CustomMessage::Music {
            title: m.title,
            description: m.description,
            music_url: m.music_url,
            hq_music_url: m.hq_music_url,
            thumb_media_id: m.thumb_media_id,
        },
        wit::CustomMessage::News(a) => CustomMessage::News {
            title: a.title,
            description: a.description,
            url: a.url,
            pic_url: a.pic_url,
        },
        wit::CustomMessage::MiniProgramPage(p) => CustomMessage::MiniProgramPage {
            title: p.title,
            app_id: p.app_id,
            page_path: p.page_path,
            thumb_media_id: p.thumb_media_id,
        },
    }
}
