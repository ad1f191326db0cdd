//! Menus kept as configured: a tenant's `[tenants.menu]` is compared with what WeChat reports
//! (`menu/get`) and set only when they differ (`menu/create`, then the conditional menus
//! replaced), so a restart with the same menu spends no quota; a failure is logged with
//! WeChat's errcode and leaves the old menu. Also `show` and `delete` (`wxhost menu`).

use serde_json::{Value, json};

use crate::config::MenuConfig;
use crate::tenant::Tenant;
use crate::wechat_api::{AccountApi, ApiError, ApiRequest, Idempotency, Method};

/// WeChat's errcode of `menu/get` for an account without a menu.
const NO_MENU: i64 = 46003;

/// What [`sync`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synced {
    /// WeChat's menus already were the configured ones.
    Unchanged,
    /// The configured menus were set.
    Applied,
}

/// The account's menus as WeChat reports them (`menu/get`); `None` when it has none.
pub async fn show(api: &AccountApi) -> Result<Option<Value>, ApiError> {
    match call(api, Method::Get, "cgi-bin/menu/get", None).await {
        Ok(menus) => Ok(Some(menus)),
        Err(ApiError::WeChat { code: NO_MENU, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Deletes every menu of the account (`menu/delete`, conditional ones too).
pub async fn delete(api: &AccountApi) -> Result<(), ApiError> {
    call(api, Method::Get, "cgi-bin/menu/delete", None)
        .await
        .map(drop)
}

/// Makes the account's menus `menu`: reads them back first and sets them only if they differ.
pub async fn sync(api: &AccountApi, menu: &MenuConfig) -> Result<Synced, ApiError> {
    let current = show(api).await?;
    if current.as_ref().is_some_and(|c| same(c, menu)) {
        return Ok(Synced::Unchanged);
    }
    apply(api, menu, current.as_ref()).await?;
    Ok(Synced::Applied)
}

/// Sets `menu` whatever WeChat has: the default menu, then the conditional ones of `current`
/// deleted and the configured ones added.
pub async fn apply(
    api: &AccountApi,
    menu: &MenuConfig,
    current: Option<&Value>,
) -> Result<(), ApiError> {
    let default = json!({ "button": menu.button });
    call(api, Method::Post, "cgi-bin/menu/create", Some(&default)).await?;
    let stale = current
        .and_then(|c| c.get("conditionalmenu"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("menuid").cloned());
    for menuid in stale {
        let body = json!({ "menuid": menuid });
        call(
            api,
            Method::Post,
            "cgi-bin/menu/delconditional",
            Some(&body),
        )
        .await?;
    }
    for conditional in &menu.conditional {
        let body = serde_json::to_value(conditional)
            .map_err(|e| ApiError::Invalid(format!("menu: {e}")))?;
        call(
            api,
            Method::Post,
            "cgi-bin/menu/addconditional",
            Some(&body),
        )
        .await?;
    }
    Ok(())
}

/// One menu API call (each may be repeated: setting a menu twice sets the same menu).
async fn call(
    api: &AccountApi,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, ApiError> {
    api.call(ApiRequest {
        method,
        path,
        query: &[],
        body,
        idempotency: Idempotency::Idempotent,
    })
    .await
}

/// Whether `current` (`menu/get`'s answer) shows exactly `menu`.
pub fn same(current: &Value, menu: &MenuConfig) -> bool {
    let default = current.pointer("/menu/button").cloned().map(normalize);
    let conditional: Vec<Value> = current
        .get("conditionalmenu")
        .and_then(Value::as_array)
        .map(|menus| {
            menus
                .iter()
                .map(|m| {
                    normalize(json!({
                        "button": m.get("button").cloned().unwrap_or(Value::Null),
                        "matchrule": m.get("matchrule").cloned().unwrap_or(Value::Null),
                    }))
                })
                .collect()
        })
        .unwrap_or_default();
    let want_default = serde_json::to_value(&menu.button).map(normalize).ok();
    let want_conditional: Option<Vec<Value>> = menu
        .conditional
        .iter()
        .map(|c| serde_json::to_value(c).map(normalize).ok())
        .collect();
    default == want_default && Some(conditional) == want_conditional
}

/// `value` without what WeChat adds or leaves empty when it reports a menu: empty
/// `sub_button` lists, empty strings and nulls (match rules report every field).
fn normalize(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| match v {
                    Value::Null => false,
                    Value::String(s) => !s.is_empty(),
                    Value::Array(a) => !a.is_empty(),
                    _ => true,
                })
                .map(|(k, v)| (k, normalize(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        other => other,
    }
}

/// Syncs `tenant`'s menu, if it has one, logging what happened (WeChat's errcode on failure).
pub async fn sync_logged(tenant: &Tenant) {
    let Some(menu) = &tenant.menu else { return };
    match sync(&tenant.api, menu).await {
        Ok(Synced::Unchanged) => {
            tracing::info!(tenant = %tenant.id, "menu already as configured; not set again");
        }
        Ok(Synced::Applied) => tracing::info!(tenant = %tenant.id, "menu set as configured"),
        Err(e) => tracing::error!(
            tenant = %tenant.id,
            "menu not set, WeChat keeps the one it has: {e}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MenuButton, MenuConfig};

    fn click(name: &str, key: &str) -> MenuButton {
        MenuButton {
            kind: Some("click".into()),
            name: name.into(),
            key: Some(key.into()),
            ..MenuButton::default()
        }
    }

    #[test]
    fn a_menu_wechat_reports_with_its_additions_is_the_same_menu() {
        let menu = MenuConfig {
            button: vec![
                click("今日歌曲", "V1001"),
                MenuButton {
                    name: "菜单".into(),
                    sub_button: vec![MenuButton {
                        kind: Some("view".into()),
                        name: "搜索".into(),
                        url: Some("https://www.soso.com/".into()),
                        ..MenuButton::default()
                    }],
                    ..MenuButton::default()
                },
            ],
            conditional: Vec::new(),
        };
        let reported = json!({"menu": {"button": [
            {"type": "click", "name": "今日歌曲", "key": "V1001", "sub_button": []},
            {"name": "菜单", "sub_button": [
                {"type": "view", "name": "搜索", "url": "https://www.soso.com/", "sub_button": []}
            ]}
        ], "menuid": 208396938}});
        assert!(same(&reported, &menu));
        let mut other = menu.clone();
        other.button[0].key = Some("V1002".into());
        assert!(!same(&reported, &other));
        let mut conditional = menu.clone();
        conditional
            .conditional
            .push(crate::config::ConditionalMenu {
                button: vec![click("男", "M")],
                matchrule: crate::config::MatchRule {
                    sex: Some("1".into()),
                    ..Default::default()
                },
            });
        assert!(!same(&reported, &conditional));
        let mut with_it = reported.clone();
        with_it["conditionalmenu"] = json!([{
            "button": [{"type": "click", "name": "男", "key": "M", "sub_button": []}],
            "matchrule": {"tag_id": "", "sex": "1", "country": "", "province": "", "city": "",
                          "client_platform_type": "", "language": ""},
            "menuid": 208396993
        }]);
        assert!(same(&with_it, &conditional));
        assert!(!same(&with_it, &menu));
    }
}
