//! A tenant's menu (`[tenants.menu]`), written as WeChat's `menu/create` JSON is, line by line
//! (`[[tenants.menu.button]]`, `[[tenants.menu.button.sub_button]]`, conditional menus in
//! `[[tenants.menu.conditional]]` with their `matchrule`), and checked against WeChat's rules
//! with each problem's key path.

use serde::{Deserialize, Serialize};

use super::Problems;

/// The most top-level buttons a menu has.
pub const MAX_BUTTONS: usize = 3;
/// The most sub-buttons under a button.
pub const MAX_SUB_BUTTONS: usize = 5;
/// The longest top-level button name, in bytes (4 Chinese characters).
pub const MAX_NAME_BYTES: usize = 16;
/// The longest sub-button name, in bytes.
pub const MAX_SUB_NAME_BYTES: usize = 60;
/// The longest `key`, in bytes.
pub const MAX_KEY_BYTES: usize = 128;
/// The longest `url`, in bytes.
pub const MAX_URL_BYTES: usize = 1024;

/// A tenant's menus: the default one and the conditional ones.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MenuConfig {
    /// The default menu's buttons.
    pub button: Vec<MenuButton>,
    /// Menus shown instead to the users a rule matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditional: Vec<ConditionalMenu>,
}

/// A button: a leaf of a `type`, or a group of `sub_button`s.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MenuButton {
    /// `click`, `view`, `miniprogram`, `scancode_push`, … (none for a group).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The label.
    pub name: String,
    /// The event key (`click`, `scancode_*`, `pic_*`, `location_select`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The page (`view`; `miniprogram`: where old clients go).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The mini program's appid (`miniprogram`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    /// The mini program's page (`miniprogram`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagepath: Option<String>,
    /// A permanent material (`media_id`, `view_limited`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    /// A published article (`article_id`, `article_view_limited`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub article_id: Option<String>,
    /// The buttons of a group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub_button: Vec<MenuButton>,
}

/// A conditional menu: its buttons and whom it is for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionalMenu {
    /// Its buttons.
    pub button: Vec<MenuButton>,
    /// The users it is for.
    pub matchrule: MatchRule,
}

/// Whom a conditional menu is for: every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MatchRule {
    /// A user tag's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_id: Option<String>,
    /// `1` male, `2` female.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<String>,
    /// `1` iOS, `2` Android, `3` others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_platform_type: Option<String>,
    /// The user's country, in Chinese as WeChat names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Province (with `country`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub province: Option<String>,
    /// City (with `province`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// The client's language (`zh_CN`, `en`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// Which fields each button type needs (and so allows).
fn fields_of(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "click" | "scancode_push" | "scancode_waitmsg" | "pic_sysphoto" | "pic_photo_or_album"
        | "pic_weixin" | "location_select" => &["key"],
        "view" => &["url"],
        "miniprogram" => &["url", "appid", "pagepath"],
        "media_id" | "view_limited" => &["media_id"],
        "article_id" | "article_view_limited" => &["article_id"],
        _ => return None,
    })
}

/// Every button type WeChat has.
const TYPES: &str = "click, view, miniprogram, scancode_push, scancode_waitmsg, pic_sysphoto, \
                     pic_photo_or_album, pic_weixin, location_select, media_id, view_limited, \
                     article_id, article_view_limited";

/// Checks `menu` (at `key`, such as `tenants[shop].menu`) against WeChat's rules.
pub(super) fn check(p: &mut Problems, key: &str, menu: &MenuConfig) {
    check_buttons(p, &format!("{key}.button"), &menu.button);
    for (i, conditional) in menu.conditional.iter().enumerate() {
        let key = format!("{key}.conditional[{i}]");
        check_buttons(p, &format!("{key}.button"), &conditional.button);
        check_rule(p, &format!("{key}.matchrule"), &conditional.matchrule);
    }
}

fn check_buttons(p: &mut Problems, key: &str, buttons: &[MenuButton]) {
    if !(1..=MAX_BUTTONS).contains(&buttons.len()) {
        p.add(key, format!("a menu has 1 to {MAX_BUTTONS} buttons"));
    }
    for (i, button) in buttons.iter().enumerate() {
        let key = format!("{key}[{i}]");
        check_name(p, &key, &button.name, MAX_NAME_BYTES);
        if button.sub_button.is_empty() {
            check_leaf(p, &key, button);
            continue;
        }
        if button.sub_button.len() > MAX_SUB_BUTTONS {
            p.add(
                format!("{key}.sub_button"),
                format!("a button has at most {MAX_SUB_BUTTONS} sub-buttons"),
            );
        }
        let leaf_fields = [
            &button.kind,
            &button.key,
            &button.url,
            &button.appid,
            &button.pagepath,
            &button.media_id,
            &button.article_id,
        ];
        if leaf_fields.iter().any(|field| field.is_some()) {
            p.add(
                &key,
                "a button with sub_button has only a name (its sub-buttons do the rest)",
            );
        }
        for (j, sub) in button.sub_button.iter().enumerate() {
            let key = format!("{key}.sub_button[{j}]");
            check_name(p, &key, &sub.name, MAX_SUB_NAME_BYTES);
            if !sub.sub_button.is_empty() {
                p.add(
                    format!("{key}.sub_button"),
                    "menus have two levels: a sub-button has no sub_button",
                );
            }
            check_leaf(p, &key, sub);
        }
    }
}

fn check_name(p: &mut Problems, key: &str, name: &str, limit: usize) {
    if name.trim().is_empty() {
        p.add(format!("{key}.name"), "must not be empty");
    } else if name.len() > limit {
        p.add(
            format!("{key}.name"),
            format!(
                "{} bytes; WeChat allows {limit} (a Chinese character is 3)",
                name.len()
            ),
        );
    }
}

fn check_leaf(p: &mut Problems, key: &str, button: &MenuButton) {
    let Some(kind) = button.kind.as_deref() else {
        p.add(
            format!("{key}.type"),
            format!("required for a button without sub_button (one of {TYPES})"),
        );
        return;
    };
    let Some(needed) = fields_of(kind) else {
        p.add(
            format!("{key}.type"),
            format!("unknown button type {kind:?} (known: {TYPES})"),
        );
        return;
    };
    let fields = [
        ("key", &button.key),
        ("url", &button.url),
        ("appid", &button.appid),
        ("pagepath", &button.pagepath),
        ("media_id", &button.media_id),
        ("article_id", &button.article_id),
    ];
    for (name, value) in fields {
        match (needed.contains(&name), value.as_deref()) {
            (true, None | Some("")) => {
                p.add(format!("{key}.{name}"), format!("required by type {kind}"))
            }
            (false, Some(_)) => p.add(format!("{key}.{name}"), format!("not used by type {kind}")),
            _ => {}
        }
    }
    if let Some(k) = &button.key
        && k.len() > MAX_KEY_BYTES
    {
        p.add(
            format!("{key}.key"),
            format!("{} bytes; WeChat allows {MAX_KEY_BYTES}", k.len()),
        );
    }
    if let Some(url) = &button.url {
        if url.len() > MAX_URL_BYTES {
            p.add(
                format!("{key}.url"),
                format!("{} bytes; WeChat allows {MAX_URL_BYTES}", url.len()),
            );
        } else if !(url.starts_with("http://") || url.starts_with("https://")) {
            p.add(format!("{key}.url"), "must start with http:// or https://");
        }
    }
}

fn check_rule(p: &mut Problems, key: &str, rule: &MatchRule) {
    if *rule == MatchRule::default() {
        p.add(
            key,
            "needs at least one of tag_id, sex, client_platform_type, country, province, city, \
             language",
        );
    }
    let allowed = [
        ("sex", &rule.sex, &["1", "2"][..]),
        (
            "client_platform_type",
            &rule.client_platform_type,
            &["1", "2", "3"][..],
        ),
    ];
    for (name, value, values) in allowed {
        if let Some(value) = value
            && !values.contains(&value.as_str())
        {
            p.add(
                format!("{key}.{name}"),
                format!("must be one of {}", values.join(", ")),
            );
        }
    }
    if rule.province.is_some() && rule.country.is_none() {
        p.add(format!("{key}.province"), "needs country");
    }
    if rule.city.is_some() && rule.province.is_none() {
        p.add(format!("{key}.city"), "needs province");
    }
}
