//! A fake WeChat API on 127.0.0.1 for tests: `cgi-bin/token`, `cgi-bin/stable_token`,
//! `cgi-bin/message/custom/send` and `cgi-bin/message/template/send`, checking credentials,
//! tokens and bodies as WeChat does and answering with WeChat's error codes. Tests can inject
//! errors, delay answers, revoke tokens, and read what was called and sent.
//!
//! Quotas: a daily quota per API path ([`FakeWechat::set_quota`]; 45009 beyond it) and
//! `cgi-bin/clear_quota`, which resets them, ten times a month at most (48006 after).
//!
//! Menus: `cgi-bin/menu/create`, `get`, `delete`, `addconditional` and `delconditional`, with
//! WeChat's limits on buttons and its error codes, reporting menus as WeChat does (every
//! button with a `sub_button` list, every match rule field).
//!
//! Media: temporary and permanent uploads (multipart, checked as WeChat checks them) and
//! downloads (see `media`).
//!
//! It also serves `GET /quote?symbol=…`, a stand-in for a third-party HTTP service that plugins
//! call with outbound HTTP.

mod media;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// What the fake was asked to do, and what it answers.
#[derive(Debug, Default)]
struct Inner {
    /// appid → secret.
    accounts: HashMap<String, String>,
    /// token → (appid, expiry).
    tokens: HashMap<String, (String, Instant)>,
    /// appid → its current stable token.
    stable: HashMap<String, String>,
    issued: u64,
    token_lifetime_secs: i64,
    token_delay: Duration,
    send_delay: Duration,
    /// path → errcodes to answer the next calls with, in order.
    injected: HashMap<String, VecDeque<i64>>,
    /// path → calls received (including failed ones).
    calls: HashMap<String, u32>,
    /// Bodies of messages accepted, by path.
    sent: Vec<(String, Value)>,
    next_msgid: u64,
    /// The default menu's buttons, if set.
    menu: Option<Value>,
    /// The conditional menus: (menuid, buttons, match rule).
    conditional: Vec<(u64, Value, Value)>,
    /// path → its daily quota.
    quotas: HashMap<String, u32>,
    /// path → successful-or-refused calls counted against the quota since the last clear.
    used: HashMap<String, u32>,
    /// `clear_quota` calls accepted.
    clears: u32,
    /// Material by media id.
    media: HashMap<String, media::Stored>,
    next_media: u64,
    media_delay: Duration,
}

/// A running fake; it stops when dropped with the runtime that started it.
#[derive(Debug, Clone)]
pub struct FakeWechat {
    /// Where it listens.
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(inner: &Shared) -> MutexGuard<'_, Inner> {
    match inner.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl FakeWechat {
    /// Starts on an ephemeral loopback port, knowing the account `appid` with `secret`.
    pub async fn start(appid: &str, secret: &str) -> std::io::Result<FakeWechat> {
        let inner: Shared = Arc::new(Mutex::new(Inner {
            token_lifetime_secs: 7200,
            next_msgid: 1000,
            ..Inner::default()
        }));
        lock(&inner)
            .accounts
            .insert(appid.to_owned(), secret.to_owned());
        let app = axum::Router::new()
            .route("/cgi-bin/token", get(classic_token))
            .route("/cgi-bin/stable_token", post(stable_token))
            .route("/cgi-bin/message/custom/send", post(custom_send))
            .route("/cgi-bin/message/template/send", post(template_send))
            .route("/cgi-bin/menu/create", post(menu_create))
            .route("/cgi-bin/menu/get", get(menu_get))
            .route("/cgi-bin/menu/delete", get(menu_delete))
            .route("/cgi-bin/menu/addconditional", post(menu_add_conditional))
            .route("/cgi-bin/menu/delconditional", post(menu_del_conditional))
            .route("/cgi-bin/clear_quota", post(clear_quota))
            .route("/cgi-bin/media/upload", post(media::upload))
            .route("/cgi-bin/media/get", get(media::get))
            .route("/cgi-bin/material/add_material", post(media::add_material))
            .route("/cgi-bin/material/get_material", post(media::get_material))
            .route("/quote", get(quote))
            // Above WeChat's largest material (10 MiB), so that its own checks answer.
            .layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(FakeWechat { addr, inner })
    }

    /// The base URL to configure as `api_base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers the next `times` calls to `path` (`cgi-bin/message/custom/send`) with `errcode`.
    pub fn inject(&self, path: &str, errcode: i64, times: usize) {
        lock(&self.inner)
            .injected
            .entry(path.trim_start_matches('/').to_owned())
            .or_default()
            .extend(std::iter::repeat_n(errcode, times));
    }

    /// Token fetches take this long (to make callers overlap).
    pub fn set_token_delay(&self, delay: Duration) {
        lock(&self.inner).token_delay = delay;
    }

    /// Message sends take this long (to make a client time out).
    pub fn set_send_delay(&self, delay: Duration) {
        lock(&self.inner).send_delay = delay;
    }

    /// Tokens issued from now on last this long.
    pub fn set_token_lifetime(&self, secs: i64) {
        lock(&self.inner).token_lifetime_secs = secs;
    }

    /// Invalidates every token issued so far (as a token fetched elsewhere would).
    pub fn revoke_tokens(&self) {
        let mut inner = lock(&self.inner);
        inner.tokens.clear();
        inner.stable.clear();
    }

    /// Calls received on `path`, successful or not.
    pub fn calls(&self, path: &str) -> u32 {
        lock(&self.inner)
            .calls
            .get(path.trim_start_matches('/'))
            .copied()
            .unwrap_or(0)
    }

    /// Token fetches on either endpoint.
    pub fn token_fetches(&self) -> u32 {
        self.calls("cgi-bin/token") + self.calls("cgi-bin/stable_token")
    }

    /// Gives `path` a daily quota of `calls`: calls beyond it get 45009 until `clear_quota`.
    pub fn set_quota(&self, path: &str, calls: u32) {
        lock(&self.inner)
            .quotas
            .insert(path.trim_start_matches('/').to_owned(), calls);
    }

    /// The `clear_quota` calls accepted so far.
    pub fn quota_clears(&self) -> u32 {
        lock(&self.inner).clears
    }

    /// The default menu's buttons as created, if any.
    pub fn menu(&self) -> Option<Value> {
        lock(&self.inner).menu.clone()
    }

    /// The conditional menus as added: `{"button": …, "matchrule": …}`.
    pub fn conditional_menus(&self) -> Vec<Value> {
        lock(&self.inner)
            .conditional
            .iter()
            .map(|(_, button, rule)| json!({ "button": button, "matchrule": rule }))
            .collect()
    }

    /// Delays each media upload by `delay` before answering.
    pub fn set_media_delay(&self, delay: Duration) {
        lock(&self.inner).media_delay = delay;
    }

    /// The bytes of material `media_id`, as uploaded.
    pub fn media_bytes(&self, media_id: &str) -> Option<Vec<u8>> {
        lock(&self.inner)
            .media
            .get(media_id)
            .map(|m| m.bytes.clone())
    }

    /// Message bodies accepted on `path`, in order.
    pub fn sent(&self, path: &str) -> Vec<Value> {
        let path = path.trim_start_matches('/');
        lock(&self.inner)
            .sent
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, body)| body.clone())
            .collect()
    }
}

fn error(code: i64, message: &str) -> Json<Value> {
    Json(json!({ "errcode": code, "errmsg": message }))
}

/// Counts the call and pops an injected error for it.
fn begin(inner: &Shared, path: &str) -> Option<i64> {
    let mut inner = lock(inner);
    *inner.calls.entry(path.to_owned()).or_default() += 1;
    if let Some(code) = inner.injected.get_mut(path).and_then(VecDeque::pop_front) {
        return Some(code);
    }
    let quota = inner.quotas.get(path).copied()?;
    let used = inner.used.entry(path.to_owned()).or_default();
    *used += 1;
    (*used > quota).then_some(45009)
}

fn issue(inner: &mut Inner, appid: &str) -> (String, i64) {
    inner.issued += 1;
    let token = format!("TOKEN-{appid}-{}", inner.issued);
    let lifetime = inner.token_lifetime_secs;
    let expiry = Instant::now() + Duration::from_secs(u64::try_from(lifetime).unwrap_or(0));
    inner
        .tokens
        .insert(token.clone(), (appid.to_owned(), expiry));
    (token, lifetime)
}

fn check_credentials(inner: &Inner, appid: &str, secret: &str) -> Result<(), Json<Value>> {
    match inner.accounts.get(appid) {
        None => Err(error(40013, "invalid appid")),
        Some(expected) if expected != secret => Err(error(40125, "invalid appsecret")),
        Some(_) => Ok(()),
    }
}

async fn classic_token(
    State(inner): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Json<Value> {
    if let Some(code) = begin(&inner, "cgi-bin/token") {
        return error(code, "injected");
    }
    let delay = lock(&inner).token_delay;
    tokio::time::sleep(delay).await;
    let field = |name: &str| query.get(name).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "client_credential" {
        return error(40002, "invalid grant_type");
    }
    let mut inner = lock(&inner);
    if let Err(answer) = check_credentials(&inner, field("appid"), field("secret")) {
        return answer;
    }
    let (token, expires_in) = issue(&mut inner, field("appid"));
    Json(json!({ "access_token": token, "expires_in": expires_in }))
}

async fn stable_token(State(inner): State<Shared>, Json(body): Json<Value>) -> Json<Value> {
    if let Some(code) = begin(&inner, "cgi-bin/stable_token") {
        return error(code, "injected");
    }
    let delay = lock(&inner).token_delay;
    tokio::time::sleep(delay).await;
    let field = |name: &str| body.get(name).and_then(Value::as_str).unwrap_or_default();
    if field("grant_type") != "client_credential" {
        return error(40002, "invalid grant_type");
    }
    let appid = field("appid");
    let mut inner = lock(&inner);
    if let Err(answer) = check_credentials(&inner, appid, field("secret")) {
        return answer;
    }
    let force = body.get("force_refresh").and_then(Value::as_bool) == Some(true);
    let current = inner
        .stable
        .get(appid)
        .and_then(|t| inner.tokens.get(t).map(|(_, expiry)| (t.clone(), *expiry)))
        .filter(|(_, expiry)| *expiry > Instant::now());
    let (token, expires_in) = match current {
        Some((token, expiry)) if !force => (
            token,
            i64::try_from(expiry.saturating_duration_since(Instant::now()).as_secs()).unwrap_or(0),
        ),
        _ => {
            let (token, lifetime) = issue(&mut inner, appid);
            inner.stable.insert(appid.to_owned(), token.clone());
            (token, lifetime)
        }
    };
    Json(json!({ "access_token": token, "expires_in": expires_in }))
}

/// Checks the `access_token` query parameter as WeChat does.
fn check_token(inner: &Shared, query: &HashMap<String, String>) -> Result<(), Json<Value>> {
    let Some(token) = query.get("access_token") else {
        return Err(error(41001, "access_token missing"));
    };
    match lock(inner).tokens.get(token) {
        None => Err(error(
            40001,
            "invalid credential, access_token is invalid or not latest",
        )),
        Some((_, expiry)) if *expiry <= Instant::now() => Err(error(42001, "access_token expired")),
        Some(_) => Ok(()),
    }
}

async fn send(
    inner: &Shared,
    path: &str,
    query: &HashMap<String, String>,
    body: &Value,
) -> Result<(), Json<Value>> {
    call(inner, path, query)?;
    let delay = lock(inner).send_delay;
    tokio::time::sleep(delay).await;
    if body
        .get("touser")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(error(40003, "invalid openid"));
    }
    Ok(())
}

async fn custom_send(
    State(inner): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let path = "cgi-bin/message/custom/send";
    if let Err(answer) = send(&inner, path, &query, &body).await {
        return answer;
    }
    let Some(msg_type) = body.get("msgtype").and_then(Value::as_str) else {
        return error(47001, "data format error: msgtype");
    };
    if body.get(msg_type).is_none_or(|v| !v.is_object()) {
        return error(47001, "data format error: content");
    }
    lock(&inner).sent.push((path.to_owned(), body));
    error(0, "ok")
}

async fn template_send(
    State(inner): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let path = "cgi-bin/message/template/send";
    if let Err(answer) = send(&inner, path, &query, &body).await {
        return answer;
    }
    if body
        .get("template_id")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return error(40037, "invalid template_id");
    }
    let mut inner = lock(&inner);
    inner.next_msgid += 1;
    let msgid = inner.next_msgid;
    inner.sent.push((path.to_owned(), body));
    Json(json!({ "errcode": 0, "errmsg": "ok", "msgid": msgid }))
}

async fn quote(Query(query): Query<HashMap<String, String>>) -> Json<Value> {
    let symbol = query.get("symbol").cloned().unwrap_or_default();
    let price = symbol.bytes().map(u64::from).sum::<u64>() % 1000;
    Json(json!({ "symbol": symbol, "price": price }))
}

/// Counts a call to `path` and checks its token: the injected or token error, if any.
fn call(inner: &Shared, path: &str, query: &HashMap<String, String>) -> Result<(), Json<Value>> {
    if let Some(code) = begin(inner, path) {
        return Err(error(code, "injected"));
    }
    check_token(inner, query)
}

/// WeChat's checks of a menu's buttons: 1 to 3, names of at most 16 bytes (60 for a
/// sub-button), 1 to 5 sub-buttons, a known type with its fields.
fn check_buttons(buttons: Option<&Value>) -> Result<(), Json<Value>> {
    let Some(buttons) = buttons.and_then(Value::as_array) else {
        return Err(error(40016, "invalid button size"));
    };
    if !(1..=3).contains(&buttons.len()) {
        return Err(error(40016, "invalid button size"));
    }
    for button in buttons {
        let name = button.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() || name.len() > 16 {
            return Err(error(40018, "invalid button name size"));
        }
        match button.get("sub_button").and_then(Value::as_array) {
            Some(subs) if !subs.is_empty() => {
                if subs.len() > 5 {
                    return Err(error(40023, "invalid sub button size"));
                }
                for sub in subs {
                    let name = sub.get("name").and_then(Value::as_str).unwrap_or("");
                    if name.is_empty() || name.len() > 60 {
                        return Err(error(40021, "invalid sub button name size"));
                    }
                    check_leaf(sub)?;
                }
            }
            _ => check_leaf(button)?,
        }
    }
    Ok(())
}

fn check_leaf(button: &Value) -> Result<(), Json<Value>> {
    let field = |name: &str| {
        button
            .get(name)
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
    };
    let kind = button.get("type").and_then(Value::as_str).unwrap_or("");
    let fine = match kind {
        "click" | "scancode_push" | "scancode_waitmsg" | "pic_sysphoto" | "pic_photo_or_album"
        | "pic_weixin" | "location_select" => field("key"),
        "view" => field("url"),
        "miniprogram" => field("url") && field("appid") && field("pagepath"),
        "media_id" | "view_limited" => field("media_id"),
        "article_id" | "article_view_limited" => field("article_id"),
        _ => return Err(error(40017, "invalid button type")),
    };
    if fine {
        Ok(())
    } else {
        Err(error(40019, "invalid button key size"))
    }
}

/// Buttons as WeChat reports them: each with a `sub_button` list, empty for a leaf.
fn reported(buttons: &Value) -> Value {
    let mut buttons = buttons.clone();
    for button in buttons.as_array_mut().into_iter().flatten() {
        let subs = button
            .get_mut("sub_button")
            .map(Value::take)
            .unwrap_or_else(|| json!([]));
        button["sub_button"] = reported(&subs);
    }
    buttons
}

async fn menu_create(
    State(inner): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    if let Err(answer) = call(&inner, "cgi-bin/menu/create", &query) {
        return answer;
    }
    if let Err(answer) = check_buttons(body.get("button")) {
        return answer;
    }
    lock(&inner).menu = body.get("button").cloned();
    error(0, "ok")
}

async fn menu_get(
    State(inner): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Json<Value> {
    if let Err(answer) = call(&inner, "cgi-bin/menu/get", &query) {
        return answer;
    }
    let inner = lock(&inner);
    let Some(menu) = &inner.menu else {
        return error(46003, "menu no exist");
    };
    let fields = [
        "tag_id",
        "sex",
        "country",
        "province",
        "city",
        "client_platform_type",
        "language",
    ];
    let conditional: Vec<Value> = inner
        .conditional
        .iter()
        .map(|(id, button, rule)| {
            let rule: serde_json::Map<String, Value> = fields
                .iter()
                .map(|f| {
                    (
                        (*f).to_owned(),
                        rule.get(*f).cloned().unwrap_or_else(|| json!("")),
                    )
                })
                .collect();
            json!({ "button": reported(button), "matchrule": rule, "menuid": id })
        })
        .collect();
    let mut answer = json!({ "menu": { "button": reported(menu), "menuid": 100 } });
    if !conditional.is_empty() {
        answer["conditionalmenu"] = Value::Array(conditional);
    }
    Json(answer)
}

async fn menu_delete(
    State(inner): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Json<Value> {
    if let Err(answer) = call(&inner, "cgi-bin/menu/delete", &query) {
        return answer;
    }
    let mut inner = lock(&inner);
    inner.menu = None;
    inner.conditional.clear();
    error(0, "ok")
}

async fn menu_add_conditional(
    State(inner): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    if let Err(answer) = call(&inner, "cgi-bin/menu/addconditional", &query) {
        return answer;
    }
    if let Err(answer) = check_buttons(body.get("button")) {
        return answer;
    }
    let rule = body.get("matchrule").cloned().unwrap_or(Value::Null);
    if rule.as_object().is_none_or(|r| r.is_empty()) {
        return error(65304, "match rule empty");
    }
    let mut inner = lock(&inner);
    if inner.menu.is_none() {
        return error(65303, "there is no selfmenu, please create selfmenu first");
    }
    inner.next_msgid += 1;
    let id = inner.next_msgid;
    let button = body.get("button").cloned().unwrap_or(Value::Null);
    inner.conditional.push((id, button, rule));
    Json(json!({ "menuid": id.to_string() }))
}

async fn menu_del_conditional(
    State(inner): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    if let Err(answer) = call(&inner, "cgi-bin/menu/delconditional", &query) {
        return answer;
    }
    let id = match body.get("menuid") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    let mut inner = lock(&inner);
    let before = inner.conditional.len();
    inner
        .conditional
        .retain(|(menuid, _, _)| Some(*menuid) != id);
    if inner.conditional.len() == before {
        return error(65301, "no such conditional menu");
    }
    error(0, "ok")
}

async fn clear_quota(
    State(inner): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    if let Err(answer) = call(&inner, "cgi-bin/clear_quota", &query) {
        return answer;
    }
    let mut inner = lock(&inner);
    let known = body
        .get("appid")
        .and_then(Value::as_str)
        .is_some_and(|appid| inner.accounts.contains_key(appid));
    if !known {
        return error(40013, "invalid appid");
    }
    if inner.clears >= 10 {
        return error(48006, "forbid to clear quota because of reaching the limit");
    }
    inner.clears += 1;
    inner.used.clear();
    error(0, "ok")
}
