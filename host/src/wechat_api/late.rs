//! Late replies: a reply produced after the passive budget is sent to the user as a
//! customer-service message, within the async budget.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{AccountApi, CustomMessage};
use crate::telemetry::Metrics;
use crate::wechat::Reply;

/// Where replies produced after the passive budget go.
pub trait LateReplies: Send + Sync + 'static {
    /// Delivers `reply` from `plugin` to `to_user` of the account behind `api`.
    fn deliver<'a>(
        &'a self,
        api: &'a AccountApi,
        to_user: &'a str,
        plugin: &'a str,
        reply: Reply,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// Sends late replies with the customer-service API, counting each as `sent`, `failed` or
/// `dropped` (no API access, or a reply with no customer-service form).
#[derive(Debug)]
pub struct ApiLateReplies {
    /// Where the counts go.
    pub metrics: Arc<Metrics>,
}

impl LateReplies for ApiLateReplies {
    fn deliver<'a>(
        &'a self,
        api: &'a AccountApi,
        to_user: &'a str,
        plugin: &'a str,
        reply: Reply,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let tenant = api.tenant();
            let reply_type = reply.msg_type();
            let Some(message) = CustomMessage::from_reply(reply) else {
                tracing::warn!(
                    tenant,
                    plugin,
                    reply_type,
                    "late reply has no customer-service form; dropped"
                );
                self.metrics.late_reply(tenant, "dropped");
                return;
            };
            if !api.has_secret() {
                tracing::warn!(
                    tenant,
                    plugin,
                    reply_type,
                    "late reply dropped: the tenant has no app_secret for the customer-service API"
                );
                self.metrics.late_reply(tenant, "dropped");
                return;
            }
            match api.send_custom(to_user, &message, None).await {
                Ok(()) => {
                    tracing::info!(
                        tenant,
                        plugin,
                        reply_type,
                        "late reply sent as a customer-service message"
                    );
                    self.metrics.late_reply(tenant, "sent");
                }
                Err(e) => {
                    tracing::warn!(tenant, plugin, reply_type, "late reply not sent: {e}");
                    self.metrics.late_reply(tenant, "failed");
                }
            }
        })
    }
}
