//! The HTTP surface: `GET|POST /wx/{tenant}` (WeChat callbacks), `/healthz`, `/metrics`.
//! Bad input always gets a 4xx with its reason (logged with the tenant id), never a 5xx;
//! `PushError::refusal` is the one table of statuses and outcome labels. [`listener`] serves the
//! router with its timers and connection cap.

pub mod listener;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::dispatch::{Dispatcher, PushError, Refusal};
use crate::storage::Backend;
use crate::telemetry::Metrics;

/// The largest push body accepted (WeChat's pushes are a few kilobytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The push pipeline.
    pub dispatcher: Arc<Dispatcher>,
    /// The metrics, for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Where kv lives, for `/healthz`.
    pub storage: Backend,
}

/// The server's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/wx/{tenant}", get(verify).post(push))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// A refused callback as an HTTP response.
#[derive(Debug)]
struct ApiError<'a> {
    /// The tenant id from the URL (attacker-chosen when unknown).
    tenant: &'a str,
    error: PushError,
}

impl IntoResponse for ApiError<'_> {
    fn into_response(self) -> Response {
        let Refusal { status, .. } = self.error.refusal();
        let code = self.error.code();
        if status.is_server_error() {
            tracing::error!(
                tenant = self.tenant,
                status = status.as_u16(),
                code,
                "request failed: {}",
                self.error
            );
        } else {
            tracing::warn!(
                tenant = self.tenant,
                status = status.as_u16(),
                code,
                "request refused: {}",
                self.error
            );
        }
        (status, format!("{}\n", self.error)).into_response()
    }
}

/// Counts a refused callback and answers it.
fn refuse(metrics: &Metrics, tenant: &str, error: PushError) -> Response {
    metrics.request(metric_tenant(&error, tenant), error.refusal().outcome);
    ApiError { tenant, error }.into_response()
}

async fn verify(State(state): State<AppState>, Path(tenant): Path<String>, uri: Uri) -> Response {
    match state.dispatcher.verify_url(&tenant, query_string(&uri)) {
        Ok(echostr) => {
            state.metrics.request(&tenant, "url_verified");
            (
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                echostr,
            )
                .into_response()
        }
        Err(e) => refuse(&state.metrics, &tenant, e),
    }
}

async fn push(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    uri: Uri,
    body: Bytes,
) -> Response {
    // The push's span (tenant, msg id, type, plugin) starts in the dispatcher once the message
    // is known; a refusal before that names the tenant in its own log line.
    let answer = state
        .dispatcher
        .handle_push(&tenant, query_string(&uri), &body)
        .await;
    match answer {
        Ok(answer) => {
            let content_type = if answer.is_xml {
                "application/xml; charset=utf-8"
            } else {
                "text/plain; charset=utf-8"
            };
            ([(header::CONTENT_TYPE, content_type)], answer.body).into_response()
        }
        Err(e) => refuse(&state.metrics, &tenant, e),
    }
}

/// The request's query string, empty when it has none.
fn query_string(uri: &Uri) -> &str {
    uri.query().unwrap_or_default()
}

/// Unknown tenant ids are attacker-chosen: they share one label instead of each making a series.
fn metric_tenant<'a>(e: &PushError, tenant: &'a str) -> &'a str {
    match e {
        PushError::UnknownTenant => "unknown",
        _ => tenant,
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// `GET /healthz`: 200 while the host serves, with the storage backend and whether it answers
/// (`degraded` while a shared store does not: pushes are still answered, kv calls fail).
async fn healthz(State(state): State<AppState>) -> Response {
    let backend = state.storage.name();
    let body = match state.storage.reachable().await {
        Ok(()) => serde_json::json!({"status": "ok", "storage": backend, "reachable": true}),
        Err(e) => serde_json::json!({
            "status": "degraded",
            "storage": backend,
            "reachable": false,
            "error": e.to_string(),
        }),
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
