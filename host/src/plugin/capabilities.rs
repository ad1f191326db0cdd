//! The host side of the imports that act beyond the call: `early-reply` (answer WeChat now,
//! keep working) and `wechat-api` (granted per plugin; raw calls only to allow-listed paths).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;
use tokio::sync::oneshot;

use super::bindings::wxhost::plugin::{early_reply, types, wechat_api as wit};
use super::convert;
use super::host::CallState;
use crate::wechat::Reply;
use crate::wechat_api::{
    AccountApi, ApiError, ApiRequest, CustomMessage, Idempotency, Method, TemplateMessage,
    check_path,
    messages::{MiniProgramLink, TemplateField},
};

/// The `wechat-api` capability as granted to one plugin in one tenant.
#[derive(Debug, Clone)]
pub struct ApiGrant {
    /// The tenant's API.
    pub api: AccountApi,
    /// The paths raw calls may use.
    pub paths: Arc<[String]>,
}

/// The early answer of one push, shared by the calls of its chain: the first plugin to send
/// one answers WeChat.
#[derive(Debug, Clone, Default)]
pub struct EarlyReply(Arc<Mutex<Option<oneshot::Sender<Reply>>>>);

impl EarlyReply {
    /// A slot whose reply arrives on the returned receiver.
    pub fn channel() -> (Self, oneshot::Receiver<Reply>) {
        let (sender, receiver) = oneshot::channel();
        (EarlyReply(Arc::new(Mutex::new(Some(sender)))), receiver)
    }

    /// Hands `reply` over as the passive answer.
    fn send(&self, reply: Reply) -> Result<(), String> {
        let sender = match self.0.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let Some(sender) = sender else {
            return Err("this message was already answered".into());
        };
        sender.send(reply).map_err(|_| {
            "WeChat has been answered already (the passive budget ran out); return the reply \
             instead and it is sent as a customer-service message"
                .to_owned()
        })
    }
}

impl early_reply::Host for CallState {
    fn send(&mut self, reply: types::Reply) -> Result<(), String> {
        let reply = convert::reply(reply);
        reply
            .validate()
            .map_err(|e| format!("invalid reply: {e}"))?;
        let result = self.early.send(reply);
        if result.is_ok() {
            tracing::debug!(tenant = %self.ctx.tenant, plugin = %self.plugin, "early reply sent");
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
        other => wit::Error::Unavailable(other.to_string()),
    }
}

impl CallState {
    /// The granted API, after counting one call against the quota.
    fn api(&mut self) -> Result<ApiGrant, wit::Error> {
        let Some(grant) = self.ctx.api.clone() else {
            return Err(wit::Error::Denied(format!(
                "the `wechat-api` capability is not granted to plugin {} in tenant {}",
                self.plugin, self.ctx.tenant
            )));
        };
        if self.api_calls >= self.ctx.limits.api_calls {
            return Err(wit::Error::Unavailable(format!(
                "at most {} WeChat API calls per call",
                self.ctx.limits.api_calls
            )));
        }
        self.api_calls += 1;
        Ok(grant)
    }

    fn recipient(&self, to_user: Option<String>) -> String {
        to_user.unwrap_or_else(|| self.message.from_user.clone())
    }
}

impl wit::Host for CallState {
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
                self.plugin
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
