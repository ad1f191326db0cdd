//! The HTTP side of the WeChat API: one shared client, and per account the calls with their
//! access token, retried once after a token rejection and, for idempotent calls only, once
//! after a timeout or "system busy".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::messages::{CustomMessage, TemplateMessage};
use super::token::{CachedToken, TokenSlot};
use super::window::{self, Interaction, Refusal, ServiceWindow};
use super::{ApiError, Credentials, TokenEndpoint};
use crate::clock::unix_now;
use crate::storage::{KvStore, Namespace};
use crate::telemetry::Metrics;

/// The largest answer read from WeChat.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// An HTTP method the WeChat API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET, query only.
    Get,
    /// POST with a JSON body.
    Post,
}

/// Whether repeating a call is harmless. A non-idempotent call (a send) is never repeated
/// after a timeout or "system busy", since the first attempt may have been delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Safe to repeat (reads, token fetches).
    Idempotent,
    /// Must not be repeated when its outcome is unknown (sends).
    NotIdempotent,
}

/// One WeChat API request, without its access token.
#[derive(Debug, Clone, Copy)]
pub struct ApiRequest<'a> {
    /// GET or POST.
    pub method: Method,
    /// The path under the base URL, such as `cgi-bin/user/info`.
    pub path: &'a str,
    /// Query parameters (never `access_token`: the client adds it).
    pub query: &'a [(String, String)],
    /// The JSON body of a POST.
    pub body: Option<&'a Value>,
    /// Whether the call may be repeated.
    pub idempotency: Idempotency,
}

/// The HTTP client and token slots shared by every tenant; slots outlive config reloads.
#[derive(Debug)]
pub struct ApiClient {
    http: reqwest::Client,
    kv: Arc<dyn KvStore>,
    metrics: Arc<Metrics>,
    slots: Mutex<HashMap<(String, String), Arc<TokenSlot>>>,
}

impl ApiClient {
    /// A client whose requests time out after `timeout`, caching tokens in `kv`.
    pub fn new(
        kv: Arc<dyn KvStore>,
        metrics: Arc<Metrics>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        Ok(ApiClient {
            http: crate::http_client::builder()
                .timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(3)))
                .build()?,
            kv,
            metrics,
            slots: Mutex::new(HashMap::new()),
        })
    }

    /// The API of the account `credentials` describe.
    pub fn account(self: &Arc<Self>, credentials: Credentials) -> AccountApi {
        let key = (credentials.tenant.clone(), credentials.appid.clone());
        let slot = {
            let mut slots = match self.slots.lock() {
                Ok(slots) => slots,
                Err(poisoned) => poisoned.into_inner(),
            };
            let slot = slots.entry(key).or_insert_with(|| {
                Arc::new(TokenSlot::new(
                    Arc::clone(&self.kv),
                    &credentials.tenant,
                    &credentials.appid,
                ))
            });
            Arc::clone(slot)
        };
        AccountApi {
            client: Arc::clone(self),
            credentials: Arc::new(credentials),
            slot,
            window: ServiceWindow::default(),
        }
    }
}

/// The WeChat API as one account.
#[derive(Debug, Clone)]
pub struct AccountApi {
    client: Arc<ApiClient>,
    credentials: Arc<Credentials>,
    slot: Arc<TokenSlot>,
    window: ServiceWindow,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: i64,
}

impl AccountApi {
    /// The tenant this API acts for.
    pub fn tenant(&self) -> &str {
        &self.credentials.tenant
    }

    /// Whether the account has an app secret, without which every call fails.
    pub fn has_secret(&self) -> bool {
        self.credentials.secret.is_some()
    }

    /// A valid access token (cached, stored, or fetched once for all concurrent callers).
    pub async fn access_token(&self) -> Result<Arc<str>, ApiError> {
        self.slot.get(unix_now, || self.fetch_token()).await
    }

    async fn fetch_token(&self) -> Result<CachedToken, ApiError> {
        let creds = &self.credentials;
        let secret = creds
            .secret
            .as_ref()
            .ok_or_else(|| ApiError::NoSecret(creds.tenant.clone()))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = match creds.token_endpoint {
                TokenEndpoint::Stable => self
                    .client
                    .http
                    .post(self.url("cgi-bin/stable_token"))
                    .json(&json!({
                        "grant_type": "client_credential",
                        "appid": creds.appid,
                        "secret": secret.expose(),
                        "force_refresh": false,
                    })),
                TokenEndpoint::Classic => self.client.http.get(self.url("cgi-bin/token")).query(&[
                    ("grant_type", "client_credential"),
                    ("appid", &creds.appid),
                    ("secret", secret.expose()),
                ]),
            };
            let answer = read_answer(request).await;
            self.client.metrics.token_fetch(
                &creds.tenant,
                answer
                    .as_ref()
                    .map_or_else(ApiError::kind, |_| "ok".into())
                    .as_str(),
            );
            match answer {
                Ok(value) => {
                    let answer: TokenAnswer = serde_json::from_value(value)
                        .map_err(|e| ApiError::Decode(format!("token answer: {e}")))?;
                    tracing::info!(tenant = %creds.tenant, expires_in = answer.expires_in, "access token fetched");
                    return Ok(CachedToken::fetched(
                        answer.access_token,
                        answer.expires_in,
                        unix_now(),
                    ));
                }
                Err(e) if e.is_outcome_unknown() && attempt == 1 => {
                    tracing::warn!(tenant = %creds.tenant, "token fetch failed ({e}); retrying once");
                }
                Err(e) => {
                    tracing::error!(tenant = %creds.tenant, "cannot fetch an access token: {e}");
                    return Err(e);
                }
            }
        }
    }

    /// Calls the API. A rejected token is replaced and the call repeated once; an idempotent
    /// call is also repeated once after a timeout or "system busy". Returns WeChat's JSON.
    pub async fn call(&self, request: ApiRequest<'_>) -> Result<Value, ApiError> {
        let path = check_path(request.path)?;
        if request.query.iter().any(|(k, _)| k == "access_token") {
            return Err(ApiError::Invalid(
                "`access_token` is added by the host, not the caller".into(),
            ));
        }
        self.exchange(path, request.idempotency, |token| {
            let builder = self.request(request.method, path, &token, request.query);
            let builder = match request.body {
                Some(body) => builder.json(body),
                None => builder,
            };
            read_answer(builder)
        })
        .await
    }

    /// Runs one exchange with WeChat at `path`: `send` makes the request with the token it is
    /// given and reads the answer. A rejected token is replaced and the exchange repeated
    /// once; an idempotent one is also repeated once after a timeout or "system busy". Every
    /// attempt is counted in the metrics by path and outcome.
    pub(super) async fn exchange<T, F, Fut>(
        &self,
        path: &str,
        idempotency: Idempotency,
        send: F,
    ) -> Result<T, ApiError>
    where
        F: Fn(Arc<str>) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let mut token = self.access_token().await?;
        let (mut refreshed, mut repeated) = (false, false);
        loop {
            let result = send(Arc::clone(&token)).await;
            self.client.metrics.api_call(
                &self.credentials.tenant,
                path,
                result
                    .as_ref()
                    .map_or_else(ApiError::kind, |_| "ok".into())
                    .as_str(),
            );
            match result {
                Ok(value) => return Ok(value),
                Err(e) if e.is_token_rejected() && !refreshed => {
                    tracing::warn!(tenant = %self.credentials.tenant, path, "{e}; refreshing the token and retrying once");
                    self.slot.invalidate(&token).await;
                    token = self.access_token().await?;
                    refreshed = true;
                }
                Err(e)
                    if e.is_outcome_unknown()
                        && idempotency == Idempotency::Idempotent
                        && !repeated =>
                {
                    tracing::warn!(tenant = %self.credentials.tenant, path, "{e}; retrying once");
                    repeated = true;
                }
                Err(e) => {
                    tracing::warn!(tenant = %self.credentials.tenant, path, "WeChat API call failed: {e}");
                    return Err(e);
                }
            }
        }
    }

    /// A request to `path` with `token` and `query`, its body still to add.
    pub(super) fn request(
        &self,
        method: Method,
        path: &str,
        token: &str,
        query: &[(String, String)],
    ) -> reqwest::RequestBuilder {
        let url = self.url(path);
        match method {
            Method::Get => self.client.http.get(url),
            Method::Post => self.client.http.post(url),
        }
        .query(&[("access_token", token)])
        .query(query)
    }

    /// The store the host's records of this account live in, and their namespace.
    pub(super) fn store(&self) -> (&dyn KvStore, Namespace) {
        (
            &*self.client.kv,
            Namespace::host(self.credentials.tenant.as_str()),
        )
    }

    /// The account's appid.
    pub(super) fn appid(&self) -> &str {
        &self.credentials.appid
    }

    /// Where the account's calls are counted.
    pub(super) fn metrics(&self) -> &Metrics {
        &self.client.metrics
    }

    /// This account with WeChat's customer-service `window` (the 48-hour rule and the count
    /// per interaction).
    pub fn with_window(mut self, window: ServiceWindow) -> Self {
        self.window = window;
        self
    }

    /// Records that `user` interacted with the account now (a message, a follow, a scan, a
    /// menu click): their customer-service window opens again, with its full count.
    pub async fn record_interaction(&self, user: &str) {
        let record = Interaction {
            at: unix_now(),
            sent: 0,
            closed: false,
        };
        let (kv, ns) = self.store();
        window::store(kv, &ns, user, record).await;
    }

    /// Sends a customer-service message to `to_user` (never repeated on an unknown outcome).
    /// A send WeChat would refuse by the user's window is refused before the call
    /// ([`ApiError::OutsideWindow`], [`ApiError::OverUserLimit`]).
    pub async fn send_custom(
        &self,
        to_user: &str,
        message: &CustomMessage,
        kf_account: Option<&str>,
    ) -> Result<(), ApiError> {
        let body = message.body(to_user, kf_account)?;
        let (kv, ns) = self.store();
        let record = window::load(kv, &ns, to_user).await;
        if let Err(refusal) = self.window.admits(record, unix_now()) {
            let tenant = &self.credentials.tenant;
            let error = match refusal {
                Refusal::Closed { at } => ApiError::OutsideWindow {
                    last_interaction: at,
                },
                Refusal::UsedUp { limit } => ApiError::OverUserLimit { limit },
            };
            self.client
                .metrics
                .api_call(tenant, "cgi-bin/message/custom/send", &error.kind());
            tracing::info!(tenant = %tenant, "customer-service message not sent: {error}");
            return Err(error);
        }
        let result = self
            .call(ApiRequest {
                method: Method::Post,
                path: "cgi-bin/message/custom/send",
                query: &[],
                body: Some(&body),
                idempotency: Idempotency::NotIdempotent,
            })
            .await
            .map(drop);
        if let Some(mut record) = record {
            match result.as_ref().map_err(ApiError::code) {
                Ok(()) => record.sent += 1,
                Err(Some(window::OUTSIDE_WINDOW)) => record.closed = true,
                Err(Some(window::OVER_LIMIT)) => record.sent = self.window.limit,
                Err(_) => return result,
            }
            window::store(kv, &ns, to_user, record).await;
        }
        result
    }

    /// Sends a template message; returns WeChat's `msgid`.
    pub async fn send_template(&self, message: &TemplateMessage) -> Result<u64, ApiError> {
        let body = message.body()?;
        let answer = self
            .call(ApiRequest {
                method: Method::Post,
                path: "cgi-bin/message/template/send",
                query: &[],
                body: Some(&body),
                idempotency: Idempotency::NotIdempotent,
            })
            .await?;
        answer
            .get("msgid")
            .and_then(Value::as_u64)
            .ok_or_else(|| ApiError::Decode("template answer has no msgid".into()))
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.credentials.base_url.trim_end_matches('/'))
    }
}

/// Checks an API path (`cgi-bin/user/info`, a leading `/` allowed) and returns it without the
/// leading `/`: plain segments of letters, digits, `_`, `-` and `.`, no `.` or `..`.
pub fn check_path(path: &str) -> Result<&str, ApiError> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let valid = !path.is_empty()
        && path.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        });
    if valid {
        Ok(path)
    } else {
        Err(ApiError::Invalid(format!("not an API path: {path:?}")))
    }
}

/// Sends `request` and reads its answer whole, up to `max` bytes: the answer's
/// `Content-Type` and body. Errors never include the URL (it carries the token or the secret).
pub(super) async fn read_body(
    request: reqwest::RequestBuilder,
    max: usize,
) -> Result<(String, Vec<u8>), ApiError> {
    let mut response = request.send().await.map_err(transport)?;
    if !response.status().is_success() {
        return Err(ApiError::Status(response.status().as_u16()));
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > max {
            return Err(ApiError::Decode(format!("answer larger than {max} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((content_type, body))
}

/// Sends `request` and reads WeChat's JSON answer ([`json_answer`]).
pub(super) async fn read_answer(request: reqwest::RequestBuilder) -> Result<Value, ApiError> {
    json_answer(&read_body(request, MAX_ANSWER_BYTES).await?.1)
}

/// WeChat's JSON answer; a non-zero `errcode` is an error.
pub(super) fn json_answer(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::Decode(format!("not JSON: {e}")))?;
    match value.get("errcode").and_then(Value::as_i64) {
        Some(code) if code != 0 => Err(ApiError::WeChat {
            code,
            message: value
                .get("errmsg")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        }),
        _ => Ok(value),
    }
}

fn transport(e: reqwest::Error) -> ApiError {
    if e.is_timeout() {
        return ApiError::Timeout;
    }
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    ApiError::Transport(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        assert_eq!(check_path("/cgi-bin/user/info"), Ok("cgi-bin/user/info"));
        assert_eq!(check_path("wxa/getwxacode"), Ok("wxa/getwxacode"));
        for bad in [
            "",
            "/",
            "cgi-bin//x",
            "cgi-bin/../x",
            "a/./b",
            "a?b=1",
            "http://x",
            "a b",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }
}
