//! Menus kept as configured, against the fake WeChat: set once at start, not again on a restart
//! with the same menu, replaced (conditional menus too) on a config change, a bad menu refused
//! naming its key, a failure WeChat reports logged with its errcode, and `wxhost menu
//! show|apply|delete`.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wxhost_fake_wechat::FakeWechat;

use crate::harness::Server;

const APPID: &str = "wxmenus";
const SECRET: &str = "app-secret-for-tests-0001";
const CREATE: &str = "cgi-bin/menu/create";
const GET: &str = "cgi-bin/menu/get";

/// A tenant `m` whose menu is `menu` (TOML tables under `[tenants.menu]`).
fn config(fake: &FakeWechat, menu: &str) -> String {
    format!(
        "[[tenants]]\nid = \"m\"\nappid = \"{APPID}\"\ntoken = \"tokenmenus\"\nmode = \"plain\"\n\
         app_secret = \"{SECRET}\"\napi_base_url = \"{}\"\n{menu}\n\
         [[tenants.plugins]]\nname = \"echo\"\n",
        fake.base_url()
    )
}

/// A menu from WeChat's documentation, line by line: a click button, and a group with a link
/// and a mini program; one conditional menu for Android users.
const MENU: &str = r#"
[[tenants.menu.button]]
type = "click"
name = "今日歌曲"
key = "V1001_TODAY_MUSIC"

[[tenants.menu.button]]
name = "菜单"

[[tenants.menu.button.sub_button]]
type = "view"
name = "搜索"
url = "https://www.soso.com/"

[[tenants.menu.button.sub_button]]
type = "miniprogram"
name = "wxa"
url = "https://mp.weixin.qq.com"
appid = "wx286b93c14bbf93aa"
pagepath = "pages/lunar/index"

[[tenants.menu.conditional]]
matchrule = { client_platform_type = "2" }

[[tenants.menu.conditional.button]]
type = "scancode_push"
name = "扫一扫"
key = "SCAN"
"#;

/// Waits until `check` holds (or 10 s pass); whether it did.
async fn eventually(check: impl Fn() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    while !check() {
        if Instant::now() > until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Runs `wxhost menu ACTION --tenant m` on the server's config: (success, stdout + stderr).
fn menu_command(server: &Server, action: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wxhost"))
        .args(["menu", action, "--tenant", "m", "--config"])
        .arg(server.dir.path().join("wxhost.toml"))
        .output()
        .expect("wxhost runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_menu_is_set_once_replaced_on_change_and_a_bad_one_refused() {
    let fake = FakeWechat::start(APPID, SECRET).await.expect("fake");
    let mut server = Server::start(&config(&fake, MENU));
    assert!(
        eventually(|| fake.calls("cgi-bin/menu/addconditional") == 1).await,
        "{}",
        server.logs()
    );
    assert_eq!(fake.calls(CREATE), 1);
    assert_eq!(
        fake.menu(),
        Some(json!([
            {"type": "click", "name": "今日歌曲", "key": "V1001_TODAY_MUSIC"},
            {"name": "菜单", "sub_button": [
                {"type": "view", "name": "搜索", "url": "https://www.soso.com/"},
                {"type": "miniprogram", "name": "wxa", "url": "https://mp.weixin.qq.com",
                 "appid": "wx286b93c14bbf93aa", "pagepath": "pages/lunar/index"}
            ]}
        ]))
    );
    assert_eq!(
        fake.conditional_menus(),
        vec![json!({
            "button": [{"type": "scancode_push", "name": "扫一扫", "key": "SCAN"}],
            "matchrule": {"client_platform_type": "2"}
        })]
    );

    // A restart with the same menu reads it back and spends no create.
    server.restart("TERM");
    assert!(
        eventually(|| fake.calls(GET) == 2).await,
        "{}",
        server.logs()
    );
    assert!(eventually(|| server.logs().contains("menu already as configured")).await);
    assert_eq!(fake.calls(CREATE), 1, "{}", server.logs());

    // A change replaces the menu and the conditional one.
    let changed = MENU
        .replace("V1001_TODAY_MUSIC", "V1002")
        .replace("\"2\"", "\"1\"");
    server.rewrite_config(&config(&fake, &changed));
    assert!(
        eventually(|| fake.calls("cgi-bin/menu/addconditional") == 2).await,
        "{}",
        server.logs()
    );
    assert_eq!(fake.calls(CREATE), 2);
    assert_eq!(fake.calls("cgi-bin/menu/delconditional"), 1);
    assert_eq!(fake.menu().expect("menu")[0]["key"], "V1002");
    let rules: Vec<Value> = fake
        .conditional_menus()
        .iter()
        .map(|m| m["matchrule"].clone())
        .collect();
    assert_eq!(rules, vec![json!({"client_platform_type": "1"})]);

    // A bad menu is refused naming its key; the running menu stays.
    let bad = changed.replace("name = \"今日歌曲\"", "name = \"今日最好听的歌曲\"");
    server.rewrite_config(&config(&fake, &bad));
    let refusal = "tenants[m].menu.button[0].name: 24 bytes; WeChat allows 16";
    assert!(
        eventually(|| server.logs().contains(refusal)).await,
        "{}",
        server.logs()
    );
    // A menu WeChat refuses is logged with its errcode and leaves the old one.
    fake.inject(CREATE, 40017, 1);
    let other = changed.replace("V1002", "V1003");
    server.rewrite_config(&config(&fake, &other));
    assert!(
        eventually(|| server
            .logs()
            .contains("menu not set, WeChat keeps the one it has"))
        .await,
        "{}",
        server.logs()
    );
    let logs = server.logs_with("40017").await;
    assert!(logs.contains("40017"), "{logs}");
    assert_eq!(fake.calls(CREATE), 3);
    assert_eq!(fake.menu().expect("menu")[0]["key"], "V1002");
    let (exit, _) = server.terminate();
    assert!(exit.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wxhost_menu_shows_applies_and_deletes() {
    let fake = FakeWechat::start(APPID, SECRET).await.expect("fake");
    let server = Server::start(&config(&fake, MENU));
    assert!(eventually(|| fake.calls("cgi-bin/menu/addconditional") == 1).await);

    let (ok, shown) = menu_command(&server, "show");
    assert!(ok, "{shown}");
    assert!(
        shown.contains("m: as configured") && shown.contains("V1001_TODAY_MUSIC"),
        "{shown}"
    );
    let (ok, out) = menu_command(&server, "delete");
    assert!(ok && out.contains("every menu deleted"), "{out}");
    assert_eq!((fake.menu(), fake.conditional_menus().len()), (None, 0));
    let (ok, shown) = menu_command(&server, "show");
    assert!(
        ok && shown.contains("no menu") && shown.contains("differs"),
        "{shown}"
    );
    let (ok, out) = menu_command(&server, "apply");
    assert!(ok && out.contains("menu set as configured"), "{out}");
    assert_eq!(fake.menu().expect("menu")[0]["key"], "V1001_TODAY_MUSIC");
    assert_eq!(fake.conditional_menus().len(), 1);
    let (ok, out) = Command::new(env!("CARGO_BIN_EXE_wxhost"))
        .args(["menu", "show", "--tenant", "nobody", "--config"])
        .arg(server.dir.path().join("wxhost.toml"))
        .output()
        .map(|o| {
            (
                o.status.success(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .expect("wxhost runs");
    assert!(!ok && out.contains("no tenant \"nobody\""), "{out}");
}
