//! Late replies: what becomes of a reply a chain returns after its push was answered, by the
//! tenant's `late_reply` mode: a customer-service message, kept (in the store, per user,
//! expiring) for the passive answer to the user's next message, or dropped. A tenant whose
//! customer-service sends WeChat refuses with 48001 (an account without that API) switches to
//! its fallback on this node, logged once and shown in the metrics. `hold_for_retry` is the
//! pipeline's (`dispatch`): it holds the push for WeChat's retries instead.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::config::LateReplyMode;
use crate::storage::{self, KvStore, Namespace};
use crate::telemetry::Metrics;
use crate::tenant::Tenant;
use crate::wechat::Reply;
use crate::wechat::reply::MAX_TEXT_BYTES;
use crate::wechat_api::{ApiError, CustomMessage};

/// WeChat's errcode for an API the account may not use (unverified accounts and personal
/// subscription accounts, for the customer-service API).
const NOT_AUTHORISED: i64 = 48001;

/// Delivers late replies and keeps those waiting for the user's next message.
#[derive(Debug)]
pub struct LateReplies {
    kv: Arc<dyn KvStore>,
    metrics: Arc<Metrics>,
    /// Tenants whose `customer_service` was refused with 48001 on this node: they use their
    /// fallback until the host restarts.
    fallen_back: Mutex<HashSet<String>>,
    /// Whether any tenant has (so that a push of the others takes no lock).
    any_fallen_back: AtomicBool,
}

impl LateReplies {
    /// Late replies kept in `kv` (the host's namespace of each tenant), counted in `metrics`.
    pub fn new(kv: Arc<dyn KvStore>, metrics: Arc<Metrics>) -> Self {
        LateReplies {
            kv,
            metrics,
            fallen_back: Mutex::default(),
            any_fallen_back: AtomicBool::new(false),
        }
    }

    /// The mode in effect for `tenant`: its `late_reply`, or its fallback once WeChat refused
    /// its customer-service sends.
    pub fn mode(&self, tenant: &Tenant) -> LateReplyMode {
        let late = &tenant.late_reply;
        if late.mode == LateReplyMode::CustomerService
            && self.any_fallen_back.load(Ordering::Acquire)
            && self
                .fallen_back
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&tenant.id)
        {
            late.fallback
        } else {
            late.mode
        }
    }

    /// Delivers `reply`, which `plugin` returned for `to_user` after the push was answered, as
    /// the tenant's mode says.
    pub async fn deliver(&self, tenant: &Tenant, to_user: &str, plugin: &str, reply: Reply) {
        let mut mode = self.mode(tenant);
        if mode == LateReplyMode::CustomerService {
            match self.send_custom(tenant, to_user, plugin, reply).await {
                None => return,
                Some(refused) => {
                    self.fall_back(tenant);
                    mode = tenant.late_reply.fallback;
                    return self.keep_or_drop(mode, tenant, to_user, refused).await;
                }
            }
        }
        self.keep_or_drop(mode, tenant, to_user, reply).await;
    }

    /// Keeps `reply` for the user's next message with `next_message`; drops it otherwise.
    async fn keep_or_drop(
        &self,
        mode: LateReplyMode,
        tenant: &Tenant,
        to_user: &str,
        reply: Reply,
    ) {
        if mode == LateReplyMode::NextMessage {
            self.keep(tenant, to_user, reply).await;
        } else {
            tracing::info!(
                tenant = %tenant.id,
                mode = mode.name(),
                "late reply dropped, as the tenant's late_reply says"
            );
            self.metrics.late_reply(&tenant.id, "dropped");
        }
    }

    /// Sends `reply` as a customer-service message; returns it if WeChat refused the API to
    /// this account (48001), so that the fallback takes it.
    async fn send_custom(
        &self,
        tenant: &Tenant,
        to_user: &str,
        plugin: &str,
        reply: Reply,
    ) -> Option<Reply> {
        let id = tenant.id.as_str();
        let reply_type = reply.msg_type();
        let dropped = |why: &str| {
            tracing::warn!(tenant = id, plugin, reply_type, "late reply dropped: {why}");
            self.metrics.late_reply(id, "dropped");
        };
        let Some(message) = CustomMessage::from_reply(reply.clone()) else {
            dropped("it has no customer-service form");
            return None;
        };
        if !tenant.api.has_secret() {
            dropped("the tenant has no app_secret for the customer-service API");
            return None;
        }
        match tenant.api.send_custom(to_user, &message, None).await {
            Ok(()) => {
                tracing::info!(
                    tenant = id,
                    plugin,
                    reply_type,
                    "late reply sent as a customer-service message"
                );
                self.metrics.late_reply(id, "sent");
                None
            }
            Err(ApiError::WeChat { code, .. }) if code == NOT_AUTHORISED => {
                self.metrics.late_reply(id, "failed");
                Some(reply)
            }
            Err(e) => {
                tracing::warn!(tenant = id, plugin, reply_type, "late reply not sent: {e}");
                self.metrics.late_reply(id, "failed");
                None
            }
        }
    }

    /// Switches `tenant` to its fallback on this node (logged the first time).
    fn fall_back(&self, tenant: &Tenant) {
        let new = self
            .fallen_back
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(tenant.id.clone());
        self.any_fallen_back.store(true, Ordering::Release);
        if new {
            let fallback = tenant.late_reply.fallback.name();
            tracing::warn!(
                tenant = %tenant.id,
                fallback,
                "WeChat refuses this account the customer-service API (48001: unverified, or \
                 a personal subscription account): its late replies go by late_reply_fallback \
                 = \"{fallback}\" from now on, until the host restarts"
            );
            self.metrics.late_reply_fallback(&tenant.id, fallback);
        }
    }

    /// Keeps `reply` for `to_user`'s next message (a newer one replaces it).
    pub async fn keep(&self, tenant: &Tenant, to_user: &str, reply: Reply) {
        let ns = Namespace::host(tenant.id.as_str());
        let ttl = Some(tenant.late_reply.keep);
        match storage::set_json(&*self.kv, &ns, &key(to_user), &reply, ttl).await {
            Ok(()) => {
                tracing::info!(tenant = %tenant.id, "late reply kept for the user's next message");
                self.metrics.late_reply(&tenant.id, "kept");
            }
            Err(e) => {
                tracing::warn!(tenant = %tenant.id, "late reply not kept: {e}");
                self.metrics.late_reply(&tenant.id, "failed");
            }
        }
    }

    /// Takes the reply kept for `user`, if any (on any node, once: whoever deletes it has it).
    pub async fn take(&self, tenant: &Tenant, user: &str) -> Option<Reply> {
        let ns = Namespace::host(tenant.id.as_str());
        let key = key(user);
        let stored = match self.kv.get(&ns, &key).await {
            Ok(stored) => stored?,
            Err(e) => {
                tracing::warn!(tenant = %tenant.id, "cannot read a kept late reply: {e}");
                return None;
            }
        };
        match self.kv.delete(&ns, &key).await {
            Ok(true) => {}
            Ok(false) => return None, // taken meanwhile (another node, or expired)
            Err(e) => {
                tracing::warn!(tenant = %tenant.id, "cannot take a kept late reply: {e}");
                return None;
            }
        }
        match serde_json::from_slice::<Reply>(&stored) {
            Ok(reply) => {
                self.metrics.late_reply(&tenant.id, "delivered");
                Some(reply)
            }
            Err(e) => {
                tracing::error!(tenant = %tenant.id, "a kept late reply does not decode ({e}); dropped");
                None
            }
        }
    }
}

/// The store key of the reply kept for `user`.
fn key(user: &str) -> String {
    format!("late:{user}")
}

/// The passive answer when `kept` (a late reply for the user's earlier message) meets `answer`
/// (the chain's for the new one): `kept` first, `note` before it when it is text, and a text
/// `answer` after it in the same message when both fit; else `kept` alone, and `answer` is
/// returned to be kept in turn.
pub fn merge(kept: Reply, note: &str, answer: Option<Reply>) -> (Reply, Option<Reply>) {
    let Reply::Text { content: earlier } = kept else {
        return (kept, answer);
    };
    let noted = if note.len() + earlier.len() <= MAX_TEXT_BYTES {
        format!("{note}{earlier}")
    } else {
        earlier
    };
    match answer {
        Some(Reply::Text { content: now }) if noted.len() + 2 + now.len() <= MAX_TEXT_BYTES => {
            (Reply::text(format!("{noted}\n\n{now}")), None)
        }
        other => (Reply::text(noted), other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_text_carries_the_note_and_the_new_text_when_both_fit() {
        let (now, rest) = merge(Reply::text("42"), "earlier: ", Some(Reply::text("hi")));
        assert_eq!((now, rest), (Reply::text("earlier: 42\n\nhi"), None));
        let (now, rest) = merge(Reply::text("42"), "earlier: ", None);
        assert_eq!((now, rest), (Reply::text("earlier: 42"), None));
    }

    #[test]
    fn what_does_not_fit_in_one_message_waits_for_the_next() {
        let long = "字".repeat(682);
        let (now, rest) = merge(Reply::text("42"), "", Some(Reply::text(long.clone())));
        assert_eq!((now, rest), (Reply::text("42"), Some(Reply::text(long))));
        let image = Reply::Image {
            media_id: "m".into(),
        };
        let (now, rest) = merge(image.clone(), "note", Some(Reply::text("hi")));
        assert_eq!((now, rest), (image.clone(), Some(Reply::text("hi"))));
        let (now, rest) = merge(Reply::text("42"), "", Some(image.clone()));
        assert_eq!((now, rest), (Reply::text("42"), Some(image)));
        // A note that would push the kept text over WeChat's limit is left out.
        let full = "a".repeat(MAX_TEXT_BYTES);
        let (now, _) = merge(Reply::text(full.clone()), "note", None);
        assert_eq!(now, Reply::text(full));
    }
}
