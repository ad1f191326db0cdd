//! The HTTP surface: `GET|POST /wx/{tenant}` (WeChat callbacks), `/healthz`, `/metrics`.
//! Bad input always gets a 4xx with its reason (logged in the request's span), never a 5xx.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tracing::Instrument as _;

use crate::dispatch::{Dispatcher, PushError};
use crate::telemetry::Metrics;
use crate::wechat::Error as WechatError;

/// The largest push body accepted (WeChat's pushes are a few kilobytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The push pipeline.
    pub dispatcher: Arc<Dispatcher>,
    /// The metrics, for `/metrics`.
    pub metrics: Arc<Metrics>,
}

/// The server's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/wx/{tenant}", get(verify).post(push))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// A refused callback as an HTTP response.
#[derive(Debug)]
struct ApiError(PushError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            PushError::UnknownTenant => StatusCode::NOT_FOUND,
            PushError::Rejected(
                WechatError::SignatureMismatch { .. }
                | WechatError::MissingParameter(_)
                | WechatError::InvalidTimestamp(_)
                | WechatError::StaleTimestamp { .. },
            ) => StatusCode::UNAUTHORIZED,
            PushError::Rejected(WechatError::BodyTooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            PushError::Rejected(_) => StatusCode::BAD_REQUEST,
        };
        let code = match &self.0 {
            PushError::Rejected(e) => e.code(),
            PushError::UnknownTenant => 0,
        };
        tracing::warn!(
            status = status.as_u16(),
            code,
            "request refused: {}",
            self.0
        );
        (status, format!("{}\n", self.0)).into_response()
    }
}

fn refused_outcome(e: &PushError) -> &'static str {
    match e {
        PushError::UnknownTenant => "unknown_tenant",
        PushError::Rejected(WechatError::SignatureMismatch { .. }) => "bad_signature",
        PushError::Rejected(WechatError::StaleTimestamp { .. }) => "stale_timestamp",
        PushError::Rejected(_) => "bad_request",
    }
}

async fn verify(State(state): State<AppState>, Path(tenant): Path<String>, uri: Uri) -> Response {
    let span = tracing::info_span!("verify", tenant = %tenant);
    let _entered = span.enter();
    match state.dispatcher.verify_url(&tenant, query_string(&uri)) {
        Ok(echostr) => {
            state.metrics.request(&tenant, "url_verified");
            (
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                echostr,
            )
                .into_response()
        }
        Err(e) => {
            state
                .metrics
                .request(metric_tenant(&e, &tenant), refused_outcome(&e));
            ApiError(e).into_response()
        }
    }
}

async fn push(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let span = tracing::info_span!(
        "push",
        tenant = %tenant,
        msg_id = tracing::field::Empty,
        msg_type = tracing::field::Empty,
        plugin = tracing::field::Empty,
    );
    async move {
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
            Err(e) => {
                state
                    .metrics
                    .request(metric_tenant(&e, &tenant), refused_outcome(&e));
                ApiError(e).into_response()
            }
        }
    }
    .instrument(span)
    .await
}

/// The request's query string, empty when it has none.
fn query_string(uri: &Uri) -> &str {
    uri.query().unwrap_or_default()
}

/// Unknown tenant ids are attacker-chosen: they share one label instead of each making a series.
fn metric_tenant<'a>(e: &PushError, tenant: &'a str) -> &'a str {
    match e {
        PushError::UnknownTenant => "unknown",
        PushError::Rejected(_) => tenant,
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
