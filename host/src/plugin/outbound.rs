//! Outbound HTTP of plugins (`wasi:http/outgoing-handler`): allowed only with the `http`
//! capability, only to hosts on the plugin's allow-list and to addresses its `AddressPolicy`
//! allows (an IP literal is checked here, a name's addresses by the grant's client after DNS;
//! redirects are answered to the plugin, never followed), a limited number of times per call,
//! each request under a timeout (never past the call's deadline) and a response-size cap.
//! Requests go out through the grant's client (rustls, connection pooling). Also the size of
//! the request-body buffers a plugin can make the host hold (small without the grant).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::context::{Caller, HttpGrant};
use crate::http_client::{self, Refused};

/// The largest request body a plugin may send.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// The largest write into an outgoing body's stream, with the `http` grant and without it;
/// a body buffers at most [`BODY_BUFFER_CHUNKS`] + 1 such writes.
const BODY_CHUNK_BYTES: usize = 64 * 1024;
const UNGRANTED_BODY_CHUNK_BYTES: usize = 1024;
/// Writes an outgoing body buffers before the host reads them (wasmtime-wasi-http adds one).
const BODY_BUFFER_CHUNKS: usize = 1;

type Response = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
);

/// The per-call side of outbound HTTP: the `WasiHttpHooks` of one plugin call.
#[derive(Debug)]
pub struct OutboundHttp {
    caller: Arc<Caller>,
    requests_left: u32,
    deadline: Instant,
}

impl OutboundHttp {
    /// The hooks of one call of `caller` ending at `deadline`.
    pub fn new(caller: &Arc<Caller>, deadline: Instant) -> Self {
        OutboundHttp {
            caller: Arc::clone(caller),
            requests_left: caller.limits().http_requests,
            deadline,
        }
    }

    /// The most bytes one outgoing body (request or response) can hold in the host.
    pub fn body_buffer_bytes(&self) -> usize {
        (BODY_BUFFER_CHUNKS + 1) * self.chunk_bytes()
    }

    fn chunk_bytes(&self) -> usize {
        if self.caller.ctx.http.is_some() {
            BODY_CHUNK_BYTES
        } else {
            UNGRANTED_BODY_CHUNK_BYTES
        }
    }

    /// The grant and URL to send `request` under, or why it may not go out.
    fn admit(
        &mut self,
        request: &http::Request<WasiBody>,
    ) -> Result<(HttpGrant, reqwest::Url), String> {
        let Some(grant) = &self.caller.ctx.http else {
            return Err("the `http` capability is not granted".into());
        };
        let uri = request.uri();
        let Some(host) = uri.host() else {
            return Err("the request has no host".into());
        };
        let default_port = if uri.scheme() == Some(&http::uri::Scheme::HTTP) {
            80
        } else {
            443
        };
        let port = uri.port_u16().unwrap_or(default_port);
        if !grant
            .hosts
            .iter()
            .any(|p| p.allows(host, port, default_port))
        {
            return Err(format!("{host}:{port} is not on the plugin's http_hosts"));
        }
        // The URL as the client will read it: a host such as `0x7f.1` is an IPv4 address to it.
        let url = reqwest::Url::parse(&uri.to_string())
            .map_err(|e| format!("the URL does not parse: {e}"))?;
        let literal = url
            .host_str()
            .and_then(|h| h.trim_start_matches('[').trim_end_matches(']').parse().ok());
        if let Some(ip) = literal {
            // The client connects to an IP literal without asking its resolver: check it here.
            grant
                .addresses
                .check(ip)
                .map_err(|refused| refused.to_string())?;
        }
        if self.requests_left == 0 {
            return Err("this call used up its http_requests".into());
        }
        self.requests_left -= 1;
        Ok((grant.clone(), url))
    }
}

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Result<Response, HttpError>> + Send> {
        let caller = Arc::clone(&self.caller);
        let (grant, url) = match self.admit(&request) {
            Ok(admitted) => admitted,
            Err(reason) => {
                let (tenant, plugin) = (caller.tenant(), &*caller.plugin);
                tracing::warn!(tenant, plugin, uri = %redacted(request.uri()), "outbound HTTP denied: {reason}");
                if let Some(grant) = &caller.ctx.http {
                    grant.metrics.http_request(tenant, plugin, "denied");
                }
                return Box::new(async { Err(HttpError::HttpRequestDenied) });
            }
        };
        let guest_timeout = options
            .and_then(|o| o.first_byte_timeout.or(o.connect_timeout))
            .unwrap_or(caller.limits().http_timeout());
        let timeout = caller
            .limits()
            .http_timeout()
            .min(guest_timeout)
            .min(self.deadline.saturating_duration_since(Instant::now()));
        let max = caller.limits().http_response_bytes;
        let uri = redacted(request.uri());
        Box::new(async move {
            let result =
                match tokio::time::timeout(timeout, send(&grant.client, url, request, max)).await {
                    Ok(result) => result,
                    Err(_) => Err(HttpError::HttpResponseTimeout.into()),
                };
            let (tenant, plugin) = (caller.tenant(), &*caller.plugin);
            let kind = match &result {
                Ok(_) => "sent".to_owned(),
                Err(Failure {
                    refused: Some(refused),
                    ..
                }) => {
                    tracing::warn!(tenant, plugin, uri = %uri, "outbound HTTP denied: {refused}");
                    "denied".to_owned()
                }
                Err(Failure { code, .. }) => {
                    tracing::info!(tenant, plugin, "outbound HTTP failed: {code}");
                    format!("{code:?}")
                        .split('(')
                        .next()
                        .unwrap_or("error")
                        .to_owned()
                }
            };
            grant.metrics.http_request(tenant, plugin, &kind);
            result.map_err(|failure| failure.code)
        })
    }

    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        BODY_BUFFER_CHUNKS
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        self.chunk_bytes()
    }
}

/// Why a request failed: the code the plugin gets, and the address refusal behind it if a
/// name resolved only to addresses the grant does not allow.
#[derive(Debug)]
struct Failure {
    code: HttpError,
    refused: Option<Refused>,
}

impl From<HttpError> for Failure {
    fn from(code: HttpError) -> Self {
        Failure {
            code,
            refused: None,
        }
    }
}

/// Sends `request` to `url` with `client`; reads at most `max` bytes of the answer.
async fn send(
    client: &reqwest::Client,
    url: reqwest::Url,
    request: http::Request<WasiBody>,
    max: u64,
) -> Result<Response, Failure> {
    let (parts, body) = request.into_parts();
    let body = http_body_util::Limited::new(body, MAX_REQUEST_BYTES)
        .collect()
        .await
        .map_err(|_| HttpError::HttpRequestBodySize(Some(MAX_REQUEST_BYTES as u64)))?
        .to_bytes();
    let mut response = client
        .request(parts.method, url)
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(request_error)?;
    if response.content_length().is_some_and(|len| len > max) {
        return Err(HttpError::HttpResponseBodySize(response.content_length()).into());
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(request_error)? {
        if (bytes.len() + chunk.len()) as u64 > max {
            return Err(HttpError::HttpResponseBodySize(Some(max)).into());
        }
        bytes.extend_from_slice(&chunk);
    }
    let mut answer = http::Response::builder().status(response.status());
    if let Some(headers) = answer.headers_mut() {
        headers.extend(
            response
                .headers()
                .iter()
                .map(|(name, value)| (name.clone(), value.clone())),
        );
        // The body is whole now: hop-by-hop framing headers no longer describe it.
        headers.remove(http::header::TRANSFER_ENCODING);
    }
    let body = Full::new(Bytes::from(bytes))
        .map_err(|never| match never {})
        .boxed_unsync();
    let answer = answer
        .body(body)
        .map_err(|e| HttpError::InternalError(Some(e.to_string())))?;
    Ok((answer, Box::new(async { Ok(()) })))
}

fn request_error(e: reqwest::Error) -> Failure {
    if let Some(refused) = http_client::refusal(&e) {
        return Failure {
            code: HttpError::HttpRequestDenied,
            refused: Some(refused.clone()),
        };
    }
    let code = if e.is_timeout() {
        HttpError::HttpResponseTimeout
    } else if e.is_connect() {
        HttpError::ConnectionRefused
    } else {
        HttpError::InternalError(Some(e.without_url().to_string()))
    };
    code.into()
}

/// The URI without its query (which may carry credentials) for logs.
fn redacted(uri: &http::Uri) -> String {
    format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("?"),
        uri.authority().map_or("", |a| a.as_str()),
        uri.path()
    )
}
