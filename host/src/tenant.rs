//! Tenants ready to serve: each account's protocol identity and its plugin chain with match
//! rules compiled and call contexts prepared, swapped as a whole when the config changes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use regex::Regex;

use crate::config::{
    ChainEntryConfig, Config, LateReplyPolicy, MatchRules, MenuConfig, TenantConfig,
};
use crate::http_client::{AddressPolicy, PluginClients};
use crate::plugin::{ApiGrant, CallContext, HttpGrant, WarmInstances};
use crate::secret::Secret;
use crate::storage::KvStore;
use crate::telemetry::{Metrics, PluginMetrics, TenantMetrics};
use crate::wechat::{self, Account, Content, Message, TimestampWindow};
use crate::wechat_api::{AccountApi, ApiClient};

/// What tenants are built on: shared by every tenant and kept across config reloads.
#[derive(Debug, Clone)]
pub struct Services {
    /// Plugin data (and the host's own, such as access tokens).
    pub kv: Arc<dyn KvStore>,
    /// The WeChat API client.
    pub api: Arc<ApiClient>,
    /// The clients of plugins' outbound HTTP (each grant gets one for its address policy).
    pub http: PluginClients,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// One plugin of a tenant's chain, ready to call.
#[derive(Debug)]
pub struct ChainEntry {
    /// The plugin name.
    pub plugin: String,
    /// What the plugin sees: settings, kv namespace, limits.
    pub context: CallContext,
    /// Instances of the plugin kept between this entry's calls (dropped with the entry when
    /// the config changes).
    pub warm: WarmInstances,
    /// The plugin's metrics in this tenant.
    pub metrics: PluginMetrics,
    matcher: Matcher,
}

impl ChainEntry {
    /// Whether `msg` should reach this plugin.
    pub fn matches(&self, msg: &Message) -> bool {
        self.matcher.matches(msg)
    }
}

/// Compiled [`MatchRules`].
#[derive(Debug)]
struct Matcher {
    msg_types: Vec<String>,
    events: Vec<String>,
    keywords: Vec<String>,
    regex: Option<Regex>,
}

impl Matcher {
    fn new(rules: &MatchRules) -> Result<Self, regex::Error> {
        Ok(Matcher {
            msg_types: rules
                .msg_types
                .iter()
                .map(|t| t.to_ascii_lowercase())
                .collect(),
            events: rules
                .events
                .iter()
                .map(|e| e.to_ascii_lowercase())
                .collect(),
            keywords: rules.keywords.clone(),
            regex: rules.regex.as_deref().map(Regex::new).transpose()?,
        })
    }

    fn matches(&self, msg: &Message) -> bool {
        if !self.msg_types.is_empty()
            && !self
                .msg_types
                .contains(&msg.msg_type().to_ascii_lowercase())
        {
            return false;
        }
        if !self.events.is_empty() {
            match msg.event_name() {
                Some(name) if self.events.contains(&name.to_ascii_lowercase()) => {}
                _ => return false,
            }
        }
        if self.keywords.is_empty() && self.regex.is_none() {
            return true;
        }
        let Content::Text { content, .. } = &msg.content else {
            return false;
        };
        self.keywords.iter().any(|k| k == content.trim())
            || self.regex.as_ref().is_some_and(|re| re.is_match(content))
    }
}

/// One official account, ready to serve.
#[derive(Debug)]
pub struct Tenant {
    /// The id (URL path segment).
    pub id: String,
    /// The protocol identity: verifies, decrypts, encrypts.
    pub account: Account,
    /// The plugin chain, in order.
    pub chain: Vec<ChainEntry>,
    /// The WeChat API as this account (fails with `NoSecret` without an app secret).
    pub api: AccountApi,
    /// Where its replies that miss the passive budget go.
    pub late_reply: LateReplyPolicy,
    /// Its menus as configured (`None`: not managed by wxhost).
    pub menu: Option<MenuConfig>,
    /// Its push counters.
    pub metrics: TenantMetrics,
}

impl Tenant {
    fn build(
        config: &TenantConfig,
        window: TimestampWindow,
        services: &Services,
    ) -> anyhow::Result<Self> {
        let key = config.encoding_aes_key.as_ref().map(Secret::expose);
        let mut account = Account::new(&config.appid, config.token.expose(), key, config.mode)
            .map_err(|e: wechat::Error| anyhow::anyhow!("tenant {}: {e}", config.id))?
            .with_timestamp_window(window);
        if let Some(original_id) = &config.original_id {
            account = account.with_original_id(original_id);
        }
        let api = services
            .api
            .account(config.credentials())
            .with_window(config.service_window);
        let chain = config
            .plugins
            .iter()
            .map(|entry: &ChainEntryConfig| {
                let mut context = CallContext::new(
                    config.id.clone(),
                    entry.settings.clone(),
                    Arc::clone(&services.kv),
                    entry.limits,
                )
                .with_log_drops(services.metrics.log_drops(&config.id, &entry.name));
                if let Some(paths) = &entry.grants.wechat_api {
                    context = context.with_api(ApiGrant {
                        api: api.clone(),
                        paths: paths.clone().into(),
                    });
                }
                if entry.grants.media {
                    context = context.with_media(api.clone());
                }
                if let Some(hosts) = &entry.grants.http {
                    let addresses = AddressPolicy::new(entry.grants.http_private_addresses.clone());
                    context = context.with_http(HttpGrant {
                        client: services.http.client(&addresses).map_err(|e| {
                            anyhow::anyhow!(
                                "tenant {}: plugin {}: outbound HTTP client: {e}",
                                config.id,
                                entry.name
                            )
                        })?,
                        hosts: hosts.clone().into(),
                        addresses,
                        metrics: Arc::clone(&services.metrics),
                    });
                }
                Ok(ChainEntry {
                    plugin: entry.name.clone(),
                    context,
                    warm: WarmInstances::default(),
                    metrics: services.metrics.plugin(&config.id, &entry.name),
                    matcher: Matcher::new(&entry.match_rules)?,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Tenant {
            id: config.id.clone(),
            account,
            chain,
            api,
            late_reply: config.late_reply.clone(),
            menu: config.menu.clone(),
            metrics: services.metrics.tenant(&config.id),
        })
    }
}

/// The tenants by id.
#[derive(Debug, Default)]
pub struct Tenants {
    by_id: HashMap<String, Arc<Tenant>>,
}

impl Tenants {
    /// Builds every tenant of `config` on `services`.
    pub fn from_config(config: &Config, services: &Services) -> anyhow::Result<Self> {
        let window = TimestampWindow::new(config.timestamp_skew_secs);
        let by_id = config
            .tenants
            .iter()
            .map(|t| Ok((t.id.clone(), Arc::new(Tenant::build(t, window, services)?))))
            .collect::<anyhow::Result<_>>()?;
        Ok(Tenants { by_id })
    }

    /// The tenant `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Tenant>> {
        self.by_id.get(id).cloned()
    }

    /// The tenant ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<_> = self.by_id.keys().cloned().collect();
        ids.sort();
        ids
    }
}

/// The current tenants, replaced as a whole on reload (requests in flight keep theirs).
#[derive(Debug, Default)]
pub struct TenantsHandle {
    current: RwLock<Arc<Tenants>>,
}

impl TenantsHandle {
    /// A handle serving `tenants`.
    pub fn new(tenants: Tenants) -> Self {
        TenantsHandle {
            current: RwLock::new(Arc::new(tenants)),
        }
    }

    /// The tenants now.
    pub fn load(&self) -> Arc<Tenants> {
        match self.current.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Serves `tenants` from now on.
    pub fn store(&self, tenants: Tenants) {
        let tenants = Arc::new(tenants);
        match self.current.write() {
            Ok(mut current) => *current = tenants,
            Err(poisoned) => *poisoned.into_inner() = tenants,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(xml_rest: &str) -> Message {
        Message::parse(&format!(
            "<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime>{xml_rest}</xml>"
        ))
        .expect("parses")
    }

    fn matcher(rules: MatchRules) -> Matcher {
        Matcher::new(&rules).expect("valid rules")
    }

    #[test]
    fn empty_rules_match_everything() {
        let m = matcher(MatchRules::default());
        assert!(m.matches(&msg("<MsgType>text</MsgType><Content>x</Content>")));
        assert!(m.matches(&msg("<MsgType>event</MsgType><Event>subscribe</Event>")));
    }

    #[test]
    fn message_types_events_keywords_and_regex() {
        let text = msg("<MsgType>text</MsgType><Content> help </Content>");
        let image = msg("<MsgType>image</MsgType><PicUrl>u</PicUrl><MediaId>m</MediaId>");
        let subscribe = msg("<MsgType>event</MsgType><Event>subscribe</Event>");
        let click = msg("<MsgType>event</MsgType><Event>CLICK</Event><EventKey>k</EventKey>");

        let by_type = matcher(MatchRules {
            msg_types: vec!["IMAGE".into()],
            ..Default::default()
        });
        assert!(by_type.matches(&image) && !by_type.matches(&text));

        let by_event = matcher(MatchRules {
            events: vec!["click".into()],
            ..Default::default()
        });
        assert!(
            by_event.matches(&click) && !by_event.matches(&subscribe) && !by_event.matches(&text)
        );

        let by_text = matcher(MatchRules {
            keywords: vec!["help".into()],
            regex: Some("^价格".into()),
            ..Default::default()
        });
        assert!(by_text.matches(&text));
        assert!(by_text.matches(&msg("<MsgType>text</MsgType><Content>价格表</Content>")));
        assert!(!by_text.matches(&msg("<MsgType>text</MsgType><Content>helpme</Content>")));
        assert!(!by_text.matches(&image));
    }
}
