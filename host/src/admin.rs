//! The operator's commands acting as a tenant on the WeChat API, each with a client of its
//! own (its access token fetched for the command): `wxhost menu show|apply|delete` and
//! `wxhost quota clear` (WeChat's `clear_quota`, at most 10 a month: this host refuses an
//! eleventh within 31 days before asking, by a record in the data folder).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;

use crate::clock::unix_now;
use crate::config::{Config, TenantConfig};
use crate::menu;
use crate::storage::MemoryKv;
use crate::telemetry::Metrics;
use crate::wechat_api::{AccountApi, ApiClient, ApiRequest, Idempotency, Method, TokenEndpoint};

/// `tenant` of `config`, and the WeChat API as it.
fn account<'a>(config: &'a Config, tenant: &str) -> anyhow::Result<(&'a TenantConfig, AccountApi)> {
    let t = config
        .tenants
        .iter()
        .find(|t| t.id == tenant)
        .with_context(|| format!("no tenant {tenant:?} in the config"))?;
    anyhow::ensure!(
        t.app_secret.is_some(),
        "tenant {tenant} has no app_secret: this goes through the WeChat API"
    );
    if t.token_endpoint == TokenEndpoint::Classic {
        tracing::warn!(
            "tenant {tenant} fetches classic access tokens: this command's fetch invalidates the \
             running server's token (it fetches a new one when WeChat refuses it)"
        );
    }
    let client = Arc::new(ApiClient::new(
        Arc::new(MemoryKv::default()),
        Arc::new(Metrics::default()),
        Duration::from_millis(config.api_timeout_ms),
    )?);
    Ok((t, client.account(t.credentials())))
}

/// What `wxhost menu` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuAction {
    /// Print WeChat's menus and whether they are the configured ones.
    Show,
    /// Set the configured menus (even if WeChat reports them already).
    Apply,
    /// Delete every menu.
    Delete,
}

impl std::str::FromStr for MenuAction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "show" => Ok(MenuAction::Show),
            "apply" => Ok(MenuAction::Apply),
            "delete" => Ok(MenuAction::Delete),
            other => Err(format!(
                "unknown menu action {other:?}: show, apply or delete"
            )),
        }
    }
}

/// `wxhost menu ACTION --tenant ID`; returns what to print.
pub async fn menu(config: &Config, tenant: &str, action: MenuAction) -> anyhow::Result<String> {
    let (t, api) = account(config, tenant)?;
    Ok(match action {
        MenuAction::Show => {
            let current = menu::show(&api).await?;
            let verdict = match (&t.menu, &current) {
                (None, _) => "the config manages no menu for this tenant",
                (Some(menu), Some(current)) if menu::same(current, menu) => "as configured",
                (Some(_), _) => "differs from the config (`wxhost menu apply` sets it)",
            };
            let shown = match &current {
                Some(menus) => serde_json::to_string_pretty(menus)?,
                None => "no menu".to_owned(),
            };
            format!("{shown}\n{tenant}: {verdict}\n")
        }
        MenuAction::Apply => {
            let menu = t
                .menu
                .as_ref()
                .with_context(|| format!("tenant {tenant} has no [tenants.menu] to apply"))?;
            let current = menu::show(&api).await?;
            menu::apply(&api, menu, current.as_ref()).await?;
            format!("{tenant}: menu set as configured\n")
        }
        MenuAction::Delete => {
            menu::delete(&api).await?;
            format!("{tenant}: every menu deleted\n")
        }
    })
}

/// How many `clear_quota` calls WeChat allows an account a month.
pub const QUOTA_CLEARS: usize = 10;
/// The window this host counts them in: longer than any month, so it never allows more.
const QUOTA_CLEAR_WINDOW_SECS: i64 = 31 * 86_400;

/// `wxhost quota clear --tenant ID`: resets the account's daily API quotas (`clear_quota`)
/// unless it was done 10 times in the last 31 days (counted in `quota-clears.json` in the data
/// folder; WeChat's own refusal, 48006, is reported too); returns what to print.
pub async fn clear_quota(config: &Config, tenant: &str) -> anyhow::Result<String> {
    let (t, api) = account(config, tenant)?;
    let record = config.data_dir.join("quota-clears.json");
    let mut clears = read_clears(&record)?;
    let now = unix_now();
    let recent: Vec<i64> = clears
        .get(&t.appid)
        .into_iter()
        .flatten()
        .copied()
        .filter(|at| now - at < QUOTA_CLEAR_WINDOW_SECS)
        .collect();
    if recent.len() >= QUOTA_CLEARS {
        let next = recent.iter().min().copied().unwrap_or(now) + QUOTA_CLEAR_WINDOW_SECS;
        anyhow::bail!(
            "{tenant}: the quota was cleared {} times in the last 31 days; WeChat allows \
             {QUOTA_CLEARS} a month (the next one from Unix time {next})",
            recent.len()
        );
    }
    let body = json!({ "appid": t.appid });
    api.call(ApiRequest {
        method: Method::Post,
        path: "cgi-bin/clear_quota",
        query: &[],
        body: Some(&body),
        idempotency: Idempotency::NotIdempotent,
    })
    .await
    .with_context(|| format!("{tenant}: clear_quota"))?;
    let mut kept = recent;
    kept.push(now);
    let left = QUOTA_CLEARS - kept.len();
    clears.insert(t.appid.clone(), kept);
    write_clears(&record, &clears)?;
    Ok(format!(
        "{tenant}: daily API quotas cleared ({left} more within 31 days)\n"
    ))
}

fn read_clears(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<i64>>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a record of quota clears", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_clears(path: &Path, clears: &BTreeMap<String, Vec<i64>>) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(clears)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
