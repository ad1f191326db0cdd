//! The configuration file (`wxhost.toml`): raw serde structs (unknown keys refused) validated
//! into a ready [`Config`]. Every error names its key, with the tenant when it has one.
//!
//! Secrets (`token`, `encoding_aes_key`, `app_secret`) may be written as `"env:NAME"` to read
//! them from the environment variable `NAME` instead of the file.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod menu;

pub use menu::{ConditionalMenu, MatchRule, MenuButton, MenuConfig};

use crate::http_client::{AddressRange, address::non_public};
use crate::plugin::{HostPattern, Limits, RuntimeLimits, valid_name};
use crate::secret::Secret;
use crate::wechat::{self, AesKey, Mode};
use crate::wechat_api::{Credentials, DEFAULT_BASE_URL, ServiceWindow, TokenEndpoint, check_path};

/// The capabilities a tenant can grant a plugin (beyond log, config and kv, which every plugin
/// has): `wechat-api` (customer-service and template messages, raw calls to `api_paths`) and
/// `http` (outbound requests to `http_hosts`, reaching non-public addresses only in
/// `http_private_addresses`).
pub const CAPABILITIES: &[&str] = &["wechat-api", "media", "http"];

/// WeChat's own limit is 5 s; the passive budget must leave room to send the answer.
const MAX_PASSIVE_BUDGET_MS: u64 = 4_900;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default = "default_plugins_dir")]
    plugins_dir: PathBuf,
    #[serde(default = "default_data_dir")]
    data_dir: PathBuf,
    cache_dir: Option<PathBuf>,
    #[serde(default = "default_skew")]
    timestamp_skew_secs: u64,
    #[serde(default = "default_passive_budget")]
    passive_budget_ms: u64,
    #[serde(default = "default_async_budget")]
    async_budget_ms: u64,
    #[serde(default = "default_dedup_ttl")]
    dedup_ttl_secs: u64,
    #[serde(default = "default_api_timeout")]
    api_timeout_ms: u64,
    #[serde(default)]
    limits: LimitOverrides,
    #[serde(default)]
    runtime: RuntimeLimits,
    #[serde(default)]
    http: HttpConfig,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    tenants: Vec<RawTenant>,
}

/// `[storage]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default = "default_redis_prefix")]
    prefix: String,
    #[serde(default = "default_redis_connect_timeout")]
    connect_timeout_ms: u64,
    #[serde(default = "default_redis_command_timeout")]
    command_timeout_ms: u64,
}

fn default_redis_prefix() -> String {
    "wxhost:".into()
}
fn default_redis_connect_timeout() -> u64 {
    1_000
}
fn default_redis_command_timeout() -> u64 {
    250
}

/// Where plugin kv and the host's shared state live (`[storage]`; a change needs a restart).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum StorageConfig {
    /// The embedded database in `data_dir` (the default): one host.
    #[default]
    Embedded,
    /// A Redis server shared by several hosts.
    Redis(RedisConfig),
}

/// `[storage] backend = "redis"`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    /// `redis://…` (may be `env:NAME`: it may hold a password).
    pub url: Secret,
    /// Put before every key.
    pub prefix: String,
    /// Longest wait for a connection.
    pub connect_timeout_ms: u64,
    /// Longest wait for a command's answer.
    pub command_timeout_ms: u64,
}

fn storage(
    p: &mut Problems,
    raw: RawStorage,
    passive_budget_ms: u64,
    env: &dyn Fn(&str) -> Option<String>,
) -> StorageConfig {
    match raw.backend.as_deref() {
        None | Some("embedded") => {
            if raw.url.is_some() {
                p.add("storage.url", "only the redis backend has a url");
            }
            StorageConfig::Embedded
        }
        Some("redis") => {
            let url = match raw.url {
                Some(url) => secret(p, "storage.url", url, env),
                None => {
                    p.add(
                        "storage.url",
                        "required with backend = \"redis\" (redis://host:port)",
                    );
                    None
                }
            };
            if let Some(url) = &url
                && let Err(e) = redis::Client::open(url.expose())
            {
                p.add("storage.url", format!("not a redis url: {e}"));
            }
            if raw.prefix.contains(['{', '}']) {
                p.add(
                    "storage.prefix",
                    "may not contain braces (namespaces are hash tags)",
                );
            }
            if !(10..=60_000).contains(&raw.connect_timeout_ms) {
                p.add("storage.connect_timeout_ms", "must be 10..=60000");
            }
            if raw.command_timeout_ms < 1 || raw.command_timeout_ms >= passive_budget_ms {
                p.add(
                    "storage.command_timeout_ms",
                    format!(
                        "must be 1..{passive_budget_ms} (below passive_budget_ms, so a push is answered in time while redis is slow)"
                    ),
                );
            }
            match url {
                Some(url) => StorageConfig::Redis(RedisConfig {
                    url,
                    prefix: raw.prefix,
                    connect_timeout_ms: raw.connect_timeout_ms,
                    command_timeout_ms: raw.command_timeout_ms,
                }),
                None => StorageConfig::Embedded,
            }
        }
        Some(other) => {
            p.add(
                "storage.backend",
                format!("{other:?} is not a backend: \"embedded\" or \"redis\""),
            );
            StorageConfig::Embedded
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_plugins_dir() -> PathBuf {
    "plugins".into()
}
fn default_data_dir() -> PathBuf {
    "data".into()
}
fn default_skew() -> u64 {
    300
}
fn default_passive_budget() -> u64 {
    4_500
}
fn default_async_budget() -> u64 {
    30_000
}
fn default_dedup_ttl() -> u64 {
    60
}
fn default_api_timeout() -> u64 {
    5_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    id: String,
    appid: String,
    token: String,
    encoding_aes_key: Option<String>,
    #[serde(default = "default_mode")]
    mode: Mode,
    app_secret: Option<String>,
    api_base_url: Option<String>,
    #[serde(default)]
    token_endpoint: TokenEndpoint,
    original_id: Option<String>,
    #[serde(default = "default_weight")]
    weight: u32,
    #[serde(default)]
    late_reply: LateReplyMode,
    #[serde(default = "default_late_fallback")]
    late_reply_fallback: LateReplyMode,
    #[serde(default = "default_late_note")]
    late_reply_note: String,
    #[serde(default = "default_late_keep")]
    late_reply_keep_secs: u64,
    menu: Option<MenuConfig>,
    #[serde(default = "default_service_window")]
    customer_service_window_secs: u64,
    #[serde(default = "default_service_limit")]
    customer_service_limit: u32,
    #[serde(default)]
    plugins: Vec<RawChainEntry>,
}

fn default_service_window() -> u64 {
    ServiceWindow::default().window.as_secs()
}
fn default_service_limit() -> u32 {
    ServiceWindow::default().limit
}

fn default_late_fallback() -> LateReplyMode {
    LateReplyMode::NextMessage
}
fn default_late_note() -> String {
    "(the answer to your previous message)\n".to_owned()
}
fn default_late_keep() -> u64 {
    86_400
}

/// The longest a late reply may wait for the user's next message (`late_reply_keep_secs`).
const MAX_LATE_KEEP_SECS: u64 = 30 * 86_400;

/// Where a reply that misses the passive budget goes (a tenant's `late_reply`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LateReplyMode {
    /// Sent as a customer-service message (verified accounts; WeChat's 48-hour window).
    #[default]
    CustomerService,
    /// Not sent at all: the push is held unanswered while the chain runs, WeChat retries, a
    /// retry joins the running chain and gets its reply; the last attempt is answered in time
    /// with whatever there is. About 14 s for a chain instead of 5, with no API at all.
    HoldForRetry,
    /// Kept for the user and delivered as the passive answer to their next message.
    NextMessage,
    /// Dropped (counted).
    Drop,
}

impl LateReplyMode {
    /// The name in the config file.
    pub fn name(self) -> &'static str {
        match self {
            LateReplyMode::CustomerService => "customer_service",
            LateReplyMode::HoldForRetry => "hold_for_retry",
            LateReplyMode::NextMessage => "next_message",
            LateReplyMode::Drop => "drop",
        }
    }
}

/// A tenant's handling of late replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateReplyPolicy {
    /// The mode.
    pub mode: LateReplyMode,
    /// What `customer_service` turns into once WeChat answers 48001 (the account may not use
    /// the customer-service API): never `customer_service`.
    pub fallback: LateReplyMode,
    /// With `next_message`: put before a kept text reply.
    pub note: String,
    /// With `next_message`: how long a kept reply waits for the user's next message.
    pub keep: Duration,
}

impl LateReplyPolicy {
    /// How long after a push arrives its answer is decided when the tenant's late replies go
    /// by `mode`: the passive budget, or with `hold_for_retry` the passive budget of WeChat's
    /// last attempt, which it sends when the ones before have each timed out.
    pub fn decision_budget(mode: LateReplyMode, passive_budget: Duration) -> Duration {
        match mode {
            LateReplyMode::HoldForRetry => {
                passive_budget + wechat::ATTEMPT_TIMEOUT * (wechat::ATTEMPTS - 1)
            }
            _ => passive_budget,
        }
    }
}

fn default_weight() -> u32 {
    1
}

fn default_mode() -> Mode {
    Mode::Safe
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChainEntry {
    name: String,
    #[serde(default)]
    settings: toml::Table,
    #[serde(default, rename = "match")]
    match_rules: MatchRules,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    api_paths: Vec<String>,
    #[serde(default)]
    http_hosts: Vec<String>,
    #[serde(default)]
    http_private_addresses: Vec<String>,
    #[serde(default)]
    limits: LimitOverrides,
}

/// Which messages reach a plugin. Every condition given must hold; an empty rule set matches
/// everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchRules {
    /// `MsgType`s (`text`, `image`, `event`, …), compared without case.
    #[serde(default)]
    pub msg_types: Vec<String>,
    /// Event names (`subscribe`, `CLICK`, …), compared without case; only events match.
    #[serde(default)]
    pub events: Vec<String>,
    /// Text messages whose trimmed content equals one of these.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Text messages the regex matches (with `keywords`: either one).
    pub regex: Option<String>,
}

/// The HTTP listener (`[http]`; a change needs a restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// A request head must have arrived this long after its first byte (or after the
    /// connection opened, for its first request); else the connection is closed.
    pub header_read_timeout_ms: u64,
    /// A request body must have arrived this long after its head; else 408 and the
    /// connection is closed.
    pub body_timeout_ms: u64,
    /// A kept-alive connection with no new request for this long is closed.
    pub idle_timeout_ms: u64,
    /// Connections open at once; more are closed as soon as accepted. Lowered at start to
    /// what the file descriptor limit allows (less a reserve for files and outbound calls).
    pub max_connections: usize,
    /// On shutdown, requests in flight get this long to finish before their connections are
    /// closed (idle and half-sent connections are closed at once).
    pub shutdown_grace_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_read_timeout_ms: 5_000,
            body_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 10_000,
            shutdown_grace_ms: 5_000,
        }
    }
}

fn check_http(p: &mut Problems, http: &HttpConfig) {
    for (key, value, range) in [
        (
            "http.header_read_timeout_ms",
            http.header_read_timeout_ms,
            100..=300_000,
        ),
        ("http.body_timeout_ms", http.body_timeout_ms, 100..=300_000),
        (
            "http.idle_timeout_ms",
            http.idle_timeout_ms,
            100..=3_600_000,
        ),
        (
            "http.shutdown_grace_ms",
            http.shutdown_grace_ms,
            0..=600_000,
        ),
    ] {
        if !range.contains(&value) {
            p.add(key, format!("must be {}..={}", range.start(), range.end()));
        }
    }
    if !(1..=1_000_000).contains(&http.max_connections) {
        p.add("http.max_connections", "must be 1..=1000000");
    }
}

/// Plugin limits given in the file: each field overrides the level above it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitOverrides {
    fuel: Option<u64>,
    deadline_ms: Option<u64>,
    memory_bytes: Option<u64>,
    table_elements: Option<u32>,
    log_lines: Option<u32>,
    log_line_bytes: Option<u32>,
    log_lines_per_sec: Option<u32>,
    log_lines_burst: Option<u32>,
    output_bytes: Option<u32>,
    kv_key_bytes: Option<u32>,
    kv_value_bytes: Option<u32>,
    kv_writes: Option<u32>,
    kv_max_keys: Option<u64>,
    kv_max_bytes: Option<u64>,
    api_calls: Option<u32>,
    http_requests: Option<u32>,
    http_timeout_ms: Option<u64>,
    http_response_bytes: Option<u64>,
    calls_per_instance: Option<u32>,
}

impl LimitOverrides {
    fn apply(&self, base: Limits) -> Limits {
        Limits {
            fuel: self.fuel.unwrap_or(base.fuel),
            deadline_ms: self.deadline_ms.unwrap_or(base.deadline_ms),
            memory_bytes: self.memory_bytes.unwrap_or(base.memory_bytes),
            table_elements: self.table_elements.unwrap_or(base.table_elements),
            log_lines: self.log_lines.unwrap_or(base.log_lines),
            log_line_bytes: self.log_line_bytes.unwrap_or(base.log_line_bytes),
            log_lines_per_sec: self.log_lines_per_sec.unwrap_or(base.log_lines_per_sec),
            log_lines_burst: self.log_lines_burst.unwrap_or(base.log_lines_burst),
            output_bytes: self.output_bytes.unwrap_or(base.output_bytes),
            kv_key_bytes: self.kv_key_bytes.unwrap_or(base.kv_key_bytes),
            kv_value_bytes: self.kv_value_bytes.unwrap_or(base.kv_value_bytes),
            kv_writes: self.kv_writes.unwrap_or(base.kv_writes),
            kv_max_keys: self.kv_max_keys.unwrap_or(base.kv_max_keys),
            kv_max_bytes: self.kv_max_bytes.unwrap_or(base.kv_max_bytes),
            api_calls: self.api_calls.unwrap_or(base.api_calls),
            http_requests: self.http_requests.unwrap_or(base.http_requests),
            http_timeout_ms: self.http_timeout_ms.unwrap_or(base.http_timeout_ms),
            http_response_bytes: self.http_response_bytes.unwrap_or(base.http_response_bytes),
            calls_per_instance: self.calls_per_instance.unwrap_or(base.calls_per_instance),
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// The plugins folder (hot-reloaded).
    pub plugins_dir: PathBuf,
    /// Where durable data (plugin kv) lives.
    pub data_dir: PathBuf,
    /// Where compiled plugins are cached.
    pub cache_dir: PathBuf,
    /// Replay window for push timestamps; 0 disables it.
    pub timestamp_skew_secs: u64,
    /// Time the whole plugin chain has for a passive reply.
    pub passive_budget_ms: u64,
    /// Time a plugin may go on after the passive budget, for a late reply.
    pub async_budget_ms: u64,
    /// How long a handled message is remembered to answer WeChat's retries.
    pub dedup_ttl_secs: u64,
    /// Timeout of one WeChat API request.
    pub api_timeout_ms: u64,
    /// Default plugin limits.
    pub limits: Limits,
    /// Sizes of the plugin runtime (a change needs a restart).
    pub runtime: RuntimeLimits,
    /// The HTTP listener's timers and connection cap (a change needs a restart).
    pub http: HttpConfig,
    /// Where plugin kv and access tokens live (a change needs a restart).
    pub storage: StorageConfig,
    /// The tenants, in file order.
    pub tenants: Vec<TenantConfig>,
}

/// One official account.
#[derive(Debug, Clone)]
pub struct TenantConfig {
    /// The id, also the URL path segment (`/wx/{id}`).
    pub id: String,
    /// The account's appid.
    pub appid: String,
    /// The token shared with WeChat.
    pub token: Secret,
    /// The EncodingAESKey (required in compatible and safe mode).
    pub encoding_aes_key: Option<Secret>,
    /// The message mode.
    pub mode: Mode,
    /// The app secret, for the WeChat API.
    pub app_secret: Option<Secret>,
    /// The WeChat API base URL (tests, proxies).
    pub api_base_url: Option<String>,
    /// Where access tokens come from.
    pub token_endpoint: TokenEndpoint,
    /// When set, pushes must be addressed to it.
    pub original_id: Option<String>,
    /// Its share of the call slots against other tenants with calls (1–1000, default 1).
    pub weight: u32,
    /// Where replies that miss the passive budget go.
    pub late_reply: LateReplyPolicy,
    /// The menus WeChat shows the account's users, kept as configured (`None`: left alone).
    pub menu: Option<MenuConfig>,
    /// WeChat's rules for customer-service sends, checked before a send.
    pub service_window: ServiceWindow,
    /// The plugin chain, in order.
    pub plugins: Vec<ChainEntryConfig>,
}

impl TenantConfig {
    /// What the WeChat API client needs to act as this account.
    pub fn credentials(&self) -> Credentials {
        Credentials {
            tenant: self.id.clone(),
            appid: self.appid.clone(),
            secret: self.app_secret.clone(),
            base_url: self
                .api_base_url
                .clone()
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()),
            token_endpoint: self.token_endpoint,
        }
    }
}

/// One plugin in a tenant's chain.
#[derive(Debug, Clone)]
pub struct ChainEntryConfig {
    /// The plugin name (the file stem in the plugins folder).
    pub name: String,
    /// Its settings, as a JSON object.
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Which messages reach it.
    pub match_rules: MatchRules,
    /// Capabilities granted, with their allow-lists.
    pub grants: Grants,
    /// Its limits (defaults with overrides applied).
    pub limits: Limits,
}

/// Every problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `(key, problem)`: the key is a path such as `tenants[demo].encoding_aes_key`.
    pub problems: Vec<(String, String)>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self
            .problems
            .iter()
            .map(|(key, problem)| format!("{key}: {problem}"))
            .collect();
        write!(f, "invalid configuration: {}", lines.join("; "))
    }
}

impl std::error::Error for ConfigError {}

/// Collects problems while validating.
struct Problems(Vec<(String, String)>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, problem: impl Into<String>) {
        self.0.push((key.into(), problem.into()));
    }
}

impl Config {
    /// Reads and validates the file at `path`; relative directories are resolved against the
    /// file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![(path.display().to_string(), format!("cannot read: {e}"))],
        })?;
        let base = std::path::absolute(path.parent().unwrap_or(Path::new(".")))
            .unwrap_or_else(|_| PathBuf::from("."));
        Config::parse(&text, &base, &|name| std::env::var(name).ok())
    }

    /// Validates configuration `text`, resolving relative paths against `base` and `env:`
    /// secrets with `env`.
    pub fn parse(
        text: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
            problems: vec![(
                e.span()
                    .map(|s| format!("line {}", line_of(text, s.start)))
                    .unwrap_or_else(|| "file".into()),
                e.message().to_owned(),
            )],
        })?;
        let mut p = Problems(Vec::new());

        let listen = raw.listen.parse().unwrap_or_else(|_| {
            p.add(
                "listen",
                format!("{:?} is not an address like 127.0.0.1:8080", raw.listen),
            );
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        if raw.passive_budget_ms == 0 || raw.passive_budget_ms > MAX_PASSIVE_BUDGET_MS {
            p.add(
                "passive_budget_ms",
                format!("must be 1..={MAX_PASSIVE_BUDGET_MS} (WeChat waits 5 s)"),
            );
        }
        if raw.async_budget_ms < raw.passive_budget_ms {
            p.add("async_budget_ms", "must be at least passive_budget_ms");
        }
        if raw.dedup_ttl_secs < 15 {
            p.add(
                "dedup_ttl_secs",
                "must be at least 15 (WeChat retries for about 15 s)",
            );
        }
        if !(100..=60_000).contains(&raw.api_timeout_ms) {
            p.add("api_timeout_ms", "must be 100..=60000");
        }
        if raw.runtime.max_concurrent_calls == 0 {
            p.add("runtime.max_concurrent_calls", "must be greater than 0");
        }
        let limits = raw.limits.apply(Limits::default());
        check_limits(&mut p, "limits", &limits, &raw.runtime);
        check_http(&mut p, &raw.http);
        let storage = storage(&mut p, raw.storage, raw.passive_budget_ms, env);

        let raw_budgets = Budgets {
            passive: Duration::from_millis(raw.passive_budget_ms),
            asynchronous: Duration::from_millis(raw.async_budget_ms),
            dedup_ttl: Duration::from_secs(raw.dedup_ttl_secs),
        };
        let mut ids = HashSet::new();
        let tenants: Vec<TenantConfig> = raw
            .tenants
            .into_iter()
            .enumerate()
            .filter_map(|(index, t)| {
                let key = if t.id.is_empty() {
                    format!("tenants[{index}]")
                } else {
                    format!("tenants[{}]", t.id)
                };
                if !ids.insert(t.id.clone()) {
                    p.add(format!("{key}.id"), "duplicate tenant id");
                }
                tenant(&mut p, &key, t, &limits, &raw.runtime, env)
            })
            .collect();

        check_hold_for_retry(&mut p, &raw_budgets, &tenants);

        if !p.0.is_empty() {
            return Err(ConfigError { problems: p.0 });
        }
        let resolve = |dir: PathBuf| {
            if dir.is_absolute() {
                dir
            } else {
                base.join(dir)
            }
        };
        let data_dir = resolve(raw.data_dir);
        Ok(Config {
            listen,
            plugins_dir: resolve(raw.plugins_dir),
            cache_dir: raw
                .cache_dir
                .map_or_else(|| data_dir.join("cache"), resolve),
            data_dir,
            timestamp_skew_secs: raw.timestamp_skew_secs,
            passive_budget_ms: raw.passive_budget_ms,
            async_budget_ms: raw.async_budget_ms,
            dedup_ttl_secs: raw.dedup_ttl_secs,
            api_timeout_ms: raw.api_timeout_ms,
            limits,
            runtime: raw.runtime,
            http: raw.http,
            storage,
            tenants,
        })
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn check_limits(p: &mut Problems, key: &str, limits: &Limits, runtime: &RuntimeLimits) {
    if let Err(problem) = limits.validate() {
        p.add(key, problem);
    }
    if limits.memory_bytes > runtime.max_memory_bytes {
        p.add(
            format!("{key}.memory_bytes"),
            format!(
                "exceeds runtime.max_memory_bytes ({})",
                runtime.max_memory_bytes
            ),
        );
    }
}

/// The host-wide budgets a tenant's late-reply mode must fit in.
struct Budgets {
    passive: Duration,
    asynchronous: Duration,
    dedup_ttl: Duration,
}

/// A tenant that holds pushes for WeChat's retries (by its mode or its fallback) needs its
/// chain to run that long (the async budget) and its answer kept that long for the retries
/// (the dedup TTL).
fn check_hold_for_retry(p: &mut Problems, budgets: &Budgets, tenants: &[TenantConfig]) {
    let hold = LateReplyPolicy::decision_budget(LateReplyMode::HoldForRetry, budgets.passive);
    for t in tenants {
        let late = &t.late_reply;
        let key = if late.mode == LateReplyMode::HoldForRetry {
            "late_reply"
        } else if late.mode == LateReplyMode::CustomerService
            && late.fallback == LateReplyMode::HoldForRetry
        {
            "late_reply_fallback"
        } else {
            continue;
        };
        for (what, budget) in [
            ("async_budget_ms", budgets.asynchronous),
            ("dedup_ttl_secs", budgets.dedup_ttl),
        ] {
            if budget < hold {
                p.add(
                    format!("tenants[{}].{key}", t.id),
                    format!(
                        "hold_for_retry decides a push's answer {} ms after it arrives \
                         (passive_budget_ms and two more of WeChat's attempts); {what} must be \
                         at least that",
                        hold.as_millis()
                    ),
                );
            }
        }
    }
}

/// A secret value, or the environment variable it names with `env:NAME`.
fn secret(
    p: &mut Problems,
    key: &str,
    value: String,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Secret> {
    match value.strip_prefix("env:") {
        Some(name) => match env(name) {
            Some(v) if !v.is_empty() => Some(Secret::new(v)),
            _ => {
                p.add(key, format!("environment variable {name} is not set"));
                None
            }
        },
        None => Some(Secret::new(value)),
    }
}

fn tenant(
    p: &mut Problems,
    key: &str,
    t: RawTenant,
    defaults: &Limits,
    runtime: &RuntimeLimits,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<TenantConfig> {
    let before = p.0.len();
    if !valid_name(&t.id) {
        p.add(
            format!("{key}.id"),
            "use 1 to 64 of A-Z a-z 0-9 - _ (it is a URL path segment)",
        );
    }
    if t.appid.trim().is_empty() {
        p.add(format!("{key}.appid"), "must not be empty");
    }
    let token = secret(p, &format!("{key}.token"), t.token, env);
    if let Some(token) = &token {
        let len = token.expose().len();
        if !(3..=32).contains(&len) || !token.expose().bytes().all(|b| b.is_ascii_alphanumeric()) {
            p.add(
                format!("{key}.token"),
                "must be 3 to 32 letters or digits (WeChat's rule)",
            );
        }
    }
    let encoding_aes_key = t
        .encoding_aes_key
        .and_then(|k| secret(p, &format!("{key}.encoding_aes_key"), k, env));
    match &encoding_aes_key {
        Some(k) => {
            if let Err(e) = AesKey::from_encoding_aes_key(k.expose()) {
                p.add(format!("{key}.encoding_aes_key"), e.to_string());
            }
        }
        None if t.mode != Mode::Plain => {
            p.add(
                format!("{key}.encoding_aes_key"),
                "required in compatible and safe mode",
            );
        }
        None => {}
    }
    let app_secret = t
        .app_secret
        .and_then(|s| secret(p, &format!("{key}.app_secret"), s, env));
    if let Some(url) = &t.api_base_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        p.add(
            format!("{key}.api_base_url"),
            "must start with http:// or https://",
        );
    }
    if t.original_id
        .as_deref()
        .is_some_and(|id| id.trim().is_empty())
    {
        p.add(format!("{key}.original_id"), "must not be empty when given");
    }
    if !(1..=1000).contains(&t.weight) {
        p.add(format!("{key}.weight"), "must be between 1 and 1000");
    }
    if t.late_reply_fallback == LateReplyMode::CustomerService {
        p.add(
            format!("{key}.late_reply_fallback"),
            "must be hold_for_retry, next_message or drop (it replaces customer_service)",
        );
    }
    if !(1..=MAX_LATE_KEEP_SECS).contains(&t.late_reply_keep_secs) {
        p.add(
            format!("{key}.late_reply_keep_secs"),
            format!("must be 1..={MAX_LATE_KEEP_SECS}"),
        );
    }
    if let Some(menu) = &t.menu {
        menu::check(p, &format!("{key}.menu"), menu);
        if app_secret.is_none() {
            p.add(
                format!("{key}.menu"),
                "needs app_secret (menus are set through the WeChat API)",
            );
        }
    }
    if !(1..=30 * 86_400).contains(&t.customer_service_window_secs) {
        p.add(
            format!("{key}.customer_service_window_secs"),
            "must be 1..=2592000 (WeChat's is 172800, 48 hours)",
        );
    }
    if !(1..=1000).contains(&t.customer_service_limit) {
        p.add(
            format!("{key}.customer_service_limit"),
            "must be 1..=1000 (WeChat's is 20)",
        );
    }
    if t.late_reply_note.len() > 256 {
        p.add(
            format!("{key}.late_reply_note"),
            "must be at most 256 bytes",
        );
    }

    let mut plugins = Vec::with_capacity(t.plugins.len());
    for (index, entry) in t.plugins.into_iter().enumerate() {
        let key = format!("{key}.plugins[{index}]");
        if !valid_name(&entry.name) {
            p.add(
                format!("{key}.name"),
                format!("{:?} is not a plugin name (A-Z a-z 0-9 - _)", entry.name),
            );
        }
        if let Some(regex) = &entry.match_rules.regex
            && let Err(e) = regex::Regex::new(regex)
        {
            p.add(format!("{key}.match.regex"), e.to_string());
        }
        let grants = grants(p, &key, &entry);
        let limits = entry.limits.apply(*defaults);
        check_limits(p, &format!("{key}.limits"), &limits, runtime);
        let settings = match serde_json::to_value(&entry.settings) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => {
                p.add(format!("{key}.settings"), "cannot be represented as JSON");
                serde_json::Map::new()
            }
        };
        plugins.push(ChainEntryConfig {
            name: entry.name,
            settings,
            match_rules: entry.match_rules,
            grants,
            limits,
        });
    }

    if p.0.len() > before {
        return None;
    }
    Some(TenantConfig {
        id: t.id,
        appid: t.appid,
        token: token?,
        encoding_aes_key,
        mode: t.mode,
        app_secret,
        api_base_url: t.api_base_url,
        token_endpoint: t.token_endpoint,
        original_id: t.original_id,
        weight: t.weight,
        late_reply: LateReplyPolicy {
            mode: t.late_reply,
            fallback: t.late_reply_fallback,
            note: t.late_reply_note,
            keep: Duration::from_secs(t.late_reply_keep_secs),
        },
        menu: t.menu,
        service_window: ServiceWindow {
            window: Duration::from_secs(t.customer_service_window_secs),
            limit: t.customer_service_limit,
        },
        plugins,
    })
}

/// What a plugin may do beyond log, config and kv. Everything is denied unless granted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// `wechat-api`: send customer-service and template messages; raw calls to these paths.
    pub wechat_api: Option<Vec<String>>,
    /// `media`: upload and download the account's media material.
    pub media: bool,
    /// `http`: outbound requests to these hosts.
    pub http: Option<Vec<HostPattern>>,
    /// With `http`: the addresses outside the public internet (loopback, private, link-local,
    /// …) those requests may connect to, whether a URL names them or a name resolves to them;
    /// every other non-public address is refused. Ports are `http_hosts`' business.
    pub http_private_addresses: Vec<AddressRange>,
}

fn grants(p: &mut Problems, key: &str, entry: &RawChainEntry) -> Grants {
    let mut grants = Grants::default();
    for capability in &entry.capabilities {
        match capability.as_str() {
            "wechat-api" => grants.wechat_api = Some(Vec::new()),
            "media" => grants.media = true,
            "http" => grants.http = Some(Vec::new()),
            _ => p.add(
                format!("{key}.capabilities"),
                format!(
                    "unknown capability {capability:?} (known: {})",
                    CAPABILITIES.join(", ")
                ),
            ),
        }
    }
    match &mut grants.wechat_api {
        Some(paths) => {
            for path in &entry.api_paths {
                match check_path(path) {
                    Ok(path) => paths.push(path.to_owned()),
                    Err(e) => p.add(format!("{key}.api_paths"), e.to_string()),
                }
            }
        }
        None if !entry.api_paths.is_empty() => p.add(
            format!("{key}.api_paths"),
            "needs the `wechat-api` capability in `capabilities`",
        ),
        None => {}
    }
    match &mut grants.http {
        Some(hosts) => {
            if entry.http_hosts.is_empty() {
                p.add(
                    format!("{key}.http_hosts"),
                    "`http` is granted but no host is allowed: list the hosts the plugin may call",
                );
            }
            for host in &entry.http_hosts {
                match host.parse::<HostPattern>() {
                    Ok(pattern) => hosts.push(pattern),
                    Err(e) => p.add(format!("{key}.http_hosts"), e),
                }
            }
        }
        None if !entry.http_hosts.is_empty() => p.add(
            format!("{key}.http_hosts"),
            "needs the `http` capability in `capabilities`",
        ),
        None => {}
    }
    let private_key = format!("{key}.http_private_addresses");
    if grants.http.is_none() && !entry.http_private_addresses.is_empty() {
        p.add(
            private_key.clone(),
            "needs the `http` capability in `capabilities`",
        );
    }
    for range in &entry.http_private_addresses {
        match range.parse::<AddressRange>() {
            Ok(range) => grants.http_private_addresses.push(range),
            Err(e) => p.add(private_key.clone(), e),
        }
    }
    // An address in `http_hosts` outside the public internet is reached only when granted.
    for pattern in grants.http.iter().flatten() {
        let Some(ip) = pattern.ip() else { continue };
        let Some(kind) = non_public(ip) else { continue };
        if !grants.http_private_addresses.iter().any(|r| r.contains(ip)) {
            p.add(
                format!("{key}.http_hosts"),
                format!(
                    "{pattern} is a {kind} address: it is reached only if \
                     `http_private_addresses` lists it (e.g. [\"{ip}\"])"
                ),
            );
        }
    }
    grants
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    fn problems_by_key(e: &ConfigError) -> BTreeMap<&str, &str> {
        e.problems
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/srv/wxhost"), &|name| {
            (name == "DEMO_TOKEN").then(|| "fromenv".to_owned())
        })
    }

    #[test]
    fn storage_is_embedded_by_default_and_redis_is_checked() {
        let tenant =
            "[[tenants]]\nid = \"demo\"\nappid = \"wx1\"\ntoken = \"tok\"\nmode = \"plain\"\n";
        assert_eq!(
            parse(tenant).expect("valid").storage,
            StorageConfig::Embedded
        );
        let redis = parse(&format!(
            "[storage]\nbackend = \"redis\"\nurl = \"env:DEMO_TOKEN\"\n{tenant}"
        ));
        let e = redis.expect_err("fromenv is no url");
        assert!(
            problems_by_key(&e)["storage.url"].contains("not a redis url"),
            "{e}"
        );
        let config = parse(&format!(
            "[storage]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379/2\"\n{tenant}"
        ))
        .expect("valid");
        let StorageConfig::Redis(redis) = config.storage else {
            panic!("redis")
        };
        assert_eq!(
            (
                redis.prefix.as_str(),
                redis.connect_timeout_ms,
                redis.command_timeout_ms
            ),
            ("wxhost:", 1_000, 250)
        );
        let e = parse(&format!(
            "passive_budget_ms = 200\n[storage]\nbackend = \"redis\"\nprefix = \"{{x}}\"\n\
             command_timeout_ms = 200\n{tenant}"
        ))
        .expect_err("invalid");
        let problems = problems_by_key(&e);
        assert!(problems["storage.url"].contains("required"), "{e}");
        assert!(problems["storage.prefix"].contains("braces"), "{e}");
        assert!(
            problems["storage.command_timeout_ms"].contains("below passive_budget_ms"),
            "{e}"
        );
        let e = parse(&format!("[storage]\nbackend = \"etcd\"\n{tenant}")).expect_err("invalid");
        assert!(
            problems_by_key(&e)["storage.backend"].contains("not a backend"),
            "{e}"
        );
    }

    #[test]
    fn a_minimal_file_gets_the_documented_defaults() {
        let config = parse(&format!(
            "[[tenants]]\nid = \"demo\"\nappid = \"wx1\"\ntoken = \"tok\"\nencoding_aes_key = \"{KEY}\"\n"
        ))
        .expect("valid");
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.plugins_dir, Path::new("/srv/wxhost/plugins"));
        assert_eq!(config.cache_dir, Path::new("/srv/wxhost/data/cache"));
        assert_eq!(
            (
                config.timestamp_skew_secs,
                config.passive_budget_ms,
                config.async_budget_ms,
                config.dedup_ttl_secs
            ),
            (300, 4_500, 30_000, 60)
        );
        assert_eq!(config.tenants[0].mode, Mode::Safe);
        assert_eq!(config.limits, Limits::default());
    }

    #[test]
    fn the_http_table_has_defaults_and_checked_ranges() {
        let tenant = "[[tenants]]\nid = \"a\"\nappid = \"wx\"\ntoken = \"tok\"\nmode = \"plain\"\n";
        let config = parse(tenant).expect("valid");
        assert_eq!(config.http, HttpConfig::default());
        assert_eq!(
            (
                config.http.header_read_timeout_ms,
                config.http.body_timeout_ms,
                config.http.idle_timeout_ms,
                config.http.max_connections,
                config.http.shutdown_grace_ms
            ),
            (5_000, 10_000, 60_000, 10_000, 5_000)
        );
        let config = parse(&format!(
            "[http]\nidle_timeout_ms = 1500\nmax_connections = 7\n{tenant}"
        ))
        .expect("valid");
        assert_eq!(
            (config.http.idle_timeout_ms, config.http.max_connections),
            (1_500, 7)
        );
        assert_eq!(config.http.header_read_timeout_ms, 5_000);
        let err = parse(&format!(
            "[http]\nheader_read_timeout_ms = 0\nbody_timeout_ms = 99\nidle_timeout_ms = 0\n\
             max_connections = 0\nshutdown_grace_ms = 600001\n{tenant}"
        ))
        .expect_err("out of range");
        let problems = problems_by_key(&err);
        for key in [
            "http.header_read_timeout_ms",
            "http.body_timeout_ms",
            "http.idle_timeout_ms",
            "http.max_connections",
            "http.shutdown_grace_ms",
        ] {
            assert!(
                problems.contains_key(key),
                "no problem for {key}: {problems:?}"
            );
        }
        let err = parse(&format!("[http]\nread_timeout_ms = 1\n{tenant}")).expect_err("unknown");
        assert!(err.problems[0].1.contains("read_timeout_ms"), "{err}");
    }

    #[test]
    fn late_replies_go_by_the_tenants_mode_and_hold_for_retry_must_fit_the_budgets() {
        let tenant = |head: &str, late: &str| {
            parse(&format!(
                "{head}\n[[tenants]]\nid = \"t\"\nappid = \"wx1\"\ntoken = \"tok\"\nmode = \"plain\"\n{late}"
            ))
        };
        let t = &tenant("", "").expect("valid").tenants[0];
        assert_eq!(t.late_reply.mode, LateReplyMode::CustomerService);
        assert_eq!(t.late_reply.fallback, LateReplyMode::NextMessage);
        assert_eq!(t.late_reply.keep, Duration::from_secs(86_400));
        let config = tenant(
            "",
            "late_reply = \"hold_for_retry\"\nlate_reply_note = \"\"\nlate_reply_keep_secs = 60",
        )
        .expect("valid: 14.5 s fits the default budgets");
        let late = &config.tenants[0].late_reply;
        assert_eq!(
            (late.mode, late.note.as_str()),
            (LateReplyMode::HoldForRetry, "")
        );
        assert_eq!(
            LateReplyPolicy::decision_budget(late.mode, Duration::from_millis(4_500)),
            Duration::from_millis(14_500)
        );
        assert_eq!(
            LateReplyPolicy::decision_budget(
                LateReplyMode::NextMessage,
                Duration::from_millis(4_500)
            ),
            Duration::from_millis(4_500)
        );

        let err = tenant("async_budget_ms = 10000", "late_reply = \"hold_for_retry\"")
            .expect_err("the chain would be stopped before the last attempt");
        let problems = problems_by_key(&err);
        assert!(
            problems["tenants[t].late_reply"].contains("async_budget_ms"),
            "{problems:?}"
        );
        let err = tenant(
            "async_budget_ms = 10000",
            "late_reply_fallback = \"hold_for_retry\"",
        )
        .expect_err("a fallback to hold_for_retry must fit too");
        assert!(problems_by_key(&err).contains_key("tenants[t].late_reply_fallback"));
        for (late, key) in [
            (
                "late_reply_fallback = \"customer_service\"",
                "late_reply_fallback",
            ),
            ("late_reply_keep_secs = 0", "late_reply_keep_secs"),
        ] {
            let err = tenant("", late).expect_err(late);
            assert!(
                problems_by_key(&err).contains_key(format!("tenants[t].{key}").as_str()),
                "{err}"
            );
        }
        let err = tenant("", "late_reply = \"later\"").expect_err("unknown mode");
        assert!(err.problems[0].1.contains("hold_for_retry"), "{err}");
    }

    #[test]
    fn a_menu_is_checked_against_wechats_rules_with_each_problems_key() {
        let tenant = |secret: &str, menu: &str| {
            parse(&format!(
                "[[tenants]]\nid = \"t\"\nappid = \"wx1\"\ntoken = \"tok\"\nmode = \"plain\"\n{secret}\n{menu}"
            ))
        };
        let secret = "app_secret = \"s\"";
        let good = "[[tenants.menu.button]]\ntype = \"click\"\nname = \"歌曲\"\nkey = \"K\"\n";
        let menu = tenant(secret, good).expect("valid").tenants[0].menu.clone();
        assert_eq!(menu.expect("menu").button[0].key.as_deref(), Some("K"));
        assert!(tenant(secret, "").expect("valid").tenants[0].menu.is_none());
        assert!(
            problems_by_key(&tenant("", good).expect_err("no secret"))
                .contains_key("tenants[t].menu")
        );
        let bad = r#"
[[tenants.menu.button]]
type = "click"
name = "今日最好听的歌曲"
[[tenants.menu.button]]
name = "group"
type = "view"
[[tenants.menu.button.sub_button]]
type = "view"
name = "v"
url = "ftp://x"
key = "K"
[[tenants.menu.button.sub_button]]
type = "teleport"
name = "t"
[[tenants.menu.button]]
type = "miniprogram"
name = "m"
url = "https://x"
[[tenants.menu.button]]
type = "location_select"
name = "four"
key = "L"
[[tenants.menu.conditional]]
matchrule = { sex = "3", city = "深圳" }
[[tenants.menu.conditional.button]]
name = ""
type = "media_id"
media_id = "M"
"#;
        let problems = problems_by_key(&tenant(secret, bad).expect_err("bad menu"))
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<BTreeMap<_, _>>();
        for (key, problem) in [
            ("tenants[t].menu.button", "1 to 3 buttons"),
            (
                "tenants[t].menu.button[0].name",
                "24 bytes; WeChat allows 16",
            ),
            ("tenants[t].menu.button[0].key", "required by type click"),
            ("tenants[t].menu.button[1]", "only a name"),
            (
                "tenants[t].menu.button[1].sub_button[0].url",
                "http:// or https://",
            ),
            (
                "tenants[t].menu.button[1].sub_button[0].key",
                "not used by type view",
            ),
            (
                "tenants[t].menu.button[1].sub_button[1].type",
                "unknown button type",
            ),
            (
                "tenants[t].menu.button[2].appid",
                "required by type miniprogram",
            ),
            (
                "tenants[t].menu.button[2].pagepath",
                "required by type miniprogram",
            ),
            (
                "tenants[t].menu.conditional[0].button[0].name",
                "must not be empty",
            ),
            (
                "tenants[t].menu.conditional[0].matchrule.sex",
                "one of 1, 2",
            ),
            (
                "tenants[t].menu.conditional[0].matchrule.city",
                "needs province",
            ),
        ] {
            let found = problems
                .get(key)
                .unwrap_or_else(|| panic!("no problem for {key}: {problems:?}"));
            assert!(found.contains(problem), "{key}: {found}");
        }
        let err = tenant(
            secret,
            "[[tenants.menu.button]]\nname = \"x\"\ntype = \"click\"\nkeys = \"K\"\n",
        )
        .expect_err("unknown field");
        assert!(err.problems[0].1.contains("keys"), "{err}");
    }

    #[test]
    fn secrets_come_from_the_environment_and_never_show_in_debug() {
        let config = parse(
            "[[tenants]]\nid = \"demo\"\nappid = \"wx1\"\ntoken = \"env:DEMO_TOKEN\"\nmode = \"plain\"\n",
        )
        .expect("valid");
        assert_eq!(config.tenants[0].token.expose(), "fromenv");
        assert!(!format!("{config:?}").contains("fromenv"));
        let err = parse("[[tenants]]\nid = \"demo\"\nappid = \"wx1\"\ntoken = \"env:MISSING\"\nmode = \"plain\"\n")
            .expect_err("missing env");
        assert_eq!(
            problems_by_key(&err).get("tenants[demo].token"),
            Some(&"environment variable MISSING is not set")
        );
    }

    #[test]
    fn capabilities_come_with_their_allow_lists() {
        let tenant = |plugins: &str| {
            parse(&format!(
                "[[tenants]]\nid = \"t\"\nappid = \"wx1\"\ntoken = \"tok\"\nmode = \"plain\"\n\
                 token_endpoint = \"classic\"\n[[tenants.plugins]]\nname = \"p\"\n{plugins}"
            ))
        };
        let config = tenant(
            "capabilities = [\"wechat-api\", \"media\", \"http\"]\napi_paths = [\"/cgi-bin/user/info\"]\n\
             http_hosts = [\"api.example.com\", \"*.example.org:8443\"]\n",
        )
        .expect("valid");
        let t = &config.tenants[0];
        assert_eq!(t.token_endpoint, TokenEndpoint::Classic);
        let grants = &t.plugins[0].grants;
        assert_eq!(
            grants.wechat_api,
            Some(vec!["cgi-bin/user/info".to_owned()])
        );
        assert!(grants.media);
        let hosts = grants.http.as_ref().expect("http granted");
        assert!(hosts[1].allows("a.example.org", 8443, 443));
        assert_eq!(
            tenant("").expect("valid").tenants[0].plugins[0].grants,
            Grants::default()
        );

        for (plugins, key) in [
            ("api_paths = [\"cgi-bin/x\"]\n", "api_paths"),
            ("http_hosts = [\"a.com\"]\n", "http_hosts"),
            ("capabilities = [\"http\"]\n", "http_hosts"),
            (
                "capabilities = [\"http\"]\nhttp_hosts = [\"https://a.com\"]\n",
                "http_hosts",
            ),
            (
                "capabilities = [\"wechat-api\"]\napi_paths = [\"../x\"]\n",
                "api_paths",
            ),
            (
                "http_private_addresses = [\"127.0.0.1\"]\n",
                "http_private_addresses",
            ),
            (
                "capabilities = [\"http\"]\nhttp_hosts = [\"a.com\"]\n\
                 http_private_addresses = [\"10.0.0.1/8\"]\n",
                "http_private_addresses",
            ),
        ] {
            let err = tenant(plugins).expect_err(plugins);
            let problems = problems_by_key(&err);
            let key = format!("tenants[t].plugins[0].{key}");
            assert!(
                problems.contains_key(key.as_str()),
                "{plugins}: {problems:?}"
            );
        }
    }

    #[test]
    fn non_public_addresses_in_http_hosts_need_an_explicit_grant() {
        let tenant = |plugins: &str| {
            parse(&format!(
                "[[tenants]]\nid = \"t\"\nappid = \"wx1\"\ntoken = \"tok\"\nmode = \"plain\"\n\
                 [[tenants.plugins]]\nname = \"p\"\ncapabilities = [\"http\"]\n{plugins}"
            ))
        };
        let err = tenant("http_hosts = [\"127.0.0.1:8080\", \"[fe80::1]:80\", \"8.8.8.8\"]\n")
            .expect_err("loopback and link-local without a grant");
        assert_eq!(
            problems_by_key(&err).get("tenants[t].plugins[0].http_hosts"),
            Some(
                &"[fe80::1]:80 is a link-local address: it is reached only if \
                   `http_private_addresses` lists it (e.g. [\"fe80::1\"])"
            ),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("127.0.0.1:8080 is a loopback address"),
            "{err}"
        );
        let config = tenant(
            "http_hosts = [\"127.0.0.1:8080\", \"internal.example\"]\n\
             http_private_addresses = [\"127.0.0.1\", \"10.0.0.0/8\"]\n",
        )
        .expect("granted");
        let grants = &config.tenants[0].plugins[0].grants;
        assert_eq!(
            grants
                .http_private_addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["127.0.0.1", "10.0.0.0/8"]
        );
    }

    #[test]
    fn errors_name_the_key_and_the_tenant() {
        let err = parse(&format!(
            r#"
passive_budget_ms = 6000
[[tenants]]
id = "shop"
appid = "wx1"
token = "t"
encoding_aes_key = "short"
[[tenants.plugins]]
name = "echo"
capabilities = ["teleport"]
match = {{ regex = "(" }}
limits = {{ memory_bytes = 1099511627776 }}
[[tenants]]
id = "shop"
appid = "wx2"
token = "token2"
encoding_aes_key = "{KEY}"
"#
        ))
        .expect_err("invalid");
        let problems = problems_by_key(&err);
        for key in [
            "passive_budget_ms",
            "tenants[shop].token",
            "tenants[shop].encoding_aes_key",
            "tenants[shop].plugins[0].capabilities",
            "tenants[shop].plugins[0].match.regex",
            "tenants[shop].plugins[0].limits.memory_bytes",
            "tenants[shop].id",
        ] {
            assert!(
                problems.contains_key(key),
                "no problem for {key}: {problems:?}"
            );
        }
        assert!(err.to_string().starts_with("invalid configuration: "));
    }

    #[test]
    fn unknown_keys_and_syntax_errors_are_refused_with_their_line() {
        let err = parse("listen = \"127.0.0.1:1\"\nlisten_port = 3\n").expect_err("unknown key");
        assert_eq!(err.problems[0].0, "line 2");
        assert!(err.problems[0].1.contains("listen_port"), "{err}");
        let err = parse("[[tenants]\n").expect_err("syntax");
        assert_eq!(err.problems[0].0, "line 1");
    }

    #[test]
    fn safe_mode_needs_a_key_and_plugin_limits_override_defaults() {
        let err = parse("[[tenants]]\nid = \"a\"\nappid = \"wx\"\ntoken = \"tok\"\n")
            .expect_err("no key");
        assert!(problems_by_key(&err).contains_key("tenants[a].encoding_aes_key"));
        let config = parse(
            "[limits]\ndeadline_ms = 300\n[[tenants]]\nid = \"a\"\nappid = \"wx\"\ntoken = \"tok\"\nmode = \"plain\"\n\
             [[tenants.plugins]]\nname = \"echo\"\nlimits = { fuel = 5 }\nsettings = { greeting = \"hi\", n = 3 }\n",
        )
        .expect("valid");
        let entry = &config.tenants[0].plugins[0];
        assert_eq!((entry.limits.fuel, entry.limits.deadline_ms), (5, 300));
        assert_eq!(entry.settings.get("n"), Some(&serde_json::json!(3)));
    }

    #[test]
    fn the_log_rate_is_configured_per_host_and_plugin() {
        let tenant = "[[tenants]]\nid = \"a\"\nappid = \"wx\"\ntoken = \"tok\"\nmode = \"plain\"\n";
        let config = parse(&format!(
            "[limits]\nlog_lines_per_sec = 10\n{tenant}\
             [[tenants.plugins]]\nname = \"echo\"\nlimits = {{ log_lines_burst = 5 }}\n"
        ))
        .expect("valid");
        let limits = config.tenants[0].plugins[0].limits;
        assert_eq!((limits.log_lines_per_sec, limits.log_lines_burst), (10, 5));
        let err = parse(&format!(
            "{tenant}[[tenants.plugins]]\nname = \"echo\"\nlimits = {{ log_lines_per_sec = 0 }}\n"
        ))
        .expect_err("zero");
        let problems = problems_by_key(&err);
        let problem = problems.get("tenants[a].plugins[0].limits").copied();
        assert!(
            problem.is_some_and(|p| p.contains("log_lines_per_sec")),
            "{problems:?}"
        );
    }

    #[test]
    fn kv_quotas_are_configured_per_host_and_plugin() {
        let tenant = "[[tenants]]\nid = \"a\"\nappid = \"wx\"\ntoken = \"tok\"\nmode = \"plain\"\n";
        let config = parse(&format!(
            "[limits]\nkv_max_keys = 500\n{tenant}\
             [[tenants.plugins]]\nname = \"echo\"\nlimits = {{ kv_max_bytes = 1048576 }}\n\
             [[tenants.plugins]]\nname = \"welcome\"\n"
        ))
        .expect("valid");
        assert_eq!(
            (config.limits.kv_max_keys, config.limits.kv_max_bytes),
            (500, 16 << 20)
        );
        let plugins = &config.tenants[0].plugins;
        assert_eq!(
            (
                plugins[0].limits.kv_max_keys,
                plugins[0].limits.kv_max_bytes
            ),
            (500, 1 << 20)
        );
        assert_eq!(plugins[1].limits.kv_quota(), config.limits.kv_quota());
        let err = parse(&format!(
            "[limits]\nkv_max_keys = 0\n{tenant}[[tenants.plugins]]\nname = \"echo\"\n\
             limits = {{ kv_max_keys = 10, kv_max_bytes = 1000 }}\n"
        ))
        .expect_err("too small");
        let problems = problems_by_key(&err);
        assert_eq!(
            problems.get("limits").copied(),
            Some("`kv_max_keys` must be greater than 0"),
            "{err}"
        );
        let problem = problems.get("tenants[a].plugins[0].limits").copied();
        assert!(
            problem.is_some_and(|p| p.contains("`kv_max_bytes` must be at least")),
            "{err}"
        );
    }

    #[test]
    fn instance_reuse_is_configured_per_plugin_and_host() {
        let tenant = "[[tenants]]\nid = \"a\"\nappid = \"wx\"\ntoken = \"tok\"\nmode = \"plain\"\n";
        let config = parse(&format!(
            "[runtime]\nmax_idle_instances = 3\n{tenant}\
             [[tenants.plugins]]\nname = \"echo\"\nlimits = {{ calls_per_instance = 1 }}\n\
             [[tenants.plugins]]\nname = \"welcome\"\n"
        ))
        .expect("valid");
        assert_eq!(config.runtime.max_idle_instances, 3);
        let plugins = &config.tenants[0].plugins;
        assert_eq!(plugins[0].limits.calls_per_instance, 1);
        assert_eq!(plugins[1].limits.calls_per_instance, 1000);
        let err = parse(&format!(
            "{tenant}[[tenants.plugins]]\nname = \"echo\"\nlimits = {{ calls_per_instance = 0 }}\n"
        ))
        .expect_err("zero");
        let problems = problems_by_key(&err);
        let problem = problems.get("tenants[a].plugins[0].limits").copied();
        assert_eq!(
            problem,
            Some("`calls_per_instance` must be greater than 0"),
            "{err}"
        );
    }
}
