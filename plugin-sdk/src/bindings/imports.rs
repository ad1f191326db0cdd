//! The wasm side of the capabilities (see `runtime`): one shim per capability function, each
//! calling the host's import (the conversions are in `convert`); HTTP goes through
//! `wasi:http/outgoing-handler` (the `wasip2` crate).

use super::convert;
use super::wxhost::plugin::{
    config, early_reply, kv as wkv, log as wlog, media as wmedia, raw_fields as wfields,
    wechat_api as wapi,
};
use crate::log::Level;
use crate::wechat::{ApiError, CustomMessage, Method, TemplateMessage};
use crate::{http, kv, media};

/// The raw fields of call `call`'s message: fetched while that call runs, none after.
pub fn raw_fields(call: u64) -> Vec<crate::Field> {
    if super::is_current_call(call) {
        convert::fields(wfields::get())
    } else {
        Vec::new()
    }
}

pub fn early_reply(reply: crate::Reply) -> Result<(), String> {
    early_reply::send(&convert::reply(reply))
}

pub fn send_custom(to_user: Option<&str>, message: &CustomMessage) -> Result<(), ApiError> {
    wapi::send_custom(to_user, &convert::custom_message(message)).map_err(convert::api_error)
}

pub fn send_template(message: &TemplateMessage) -> Result<u64, ApiError> {
    wapi::send_template(&convert::template_message(message)).map_err(convert::api_error)
}

pub fn api_call(
    method: Method,
    path: &str,
    query: &[(String, String)],
    body: Option<String>,
) -> Result<String, ApiError> {
    wapi::call(convert::method(method), path, query, body.as_deref()).map_err(convert::api_error)
}

pub fn media_upload(kind: media::Kind, bytes: &[u8]) -> Result<String, ApiError> {
    wmedia::upload(convert::media_kind(kind), bytes).map_err(convert::api_error)
}

pub fn media_upload_permanent(
    kind: media::Kind,
    bytes: &[u8],
    video: Option<&media::VideoInfo>,
) -> Result<media::Material, ApiError> {
    let video = video.map(|v| wmedia::VideoInfo {
        title: v.title.clone(),
        introduction: v.introduction.clone(),
    });
    let material = wmedia::upload_permanent(convert::media_kind(kind), bytes, video.as_ref())
        .map_err(convert::api_error)?;
    Ok(media::Material {
        media_id: material.media_id,
        url: material.url,
    })
}

pub fn media_download(media_id: &str, permanent: bool) -> Result<media::File, ApiError> {
    let file = if permanent {
        wmedia::download_permanent(media_id)
    } else {
        wmedia::download(media_id)
    }
    .map_err(convert::api_error)?;
    Ok(media::File {
        content_type: file.content_type,
        bytes: file.bytes,
    })
}

/// One request through `wasi:http/outgoing-handler`: the body is written after `handle`
/// (the host reads it while it sends) and always finished, the response read whole.
pub fn http_send(request: &http::Request) -> Result<http::Response, http::Error> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{
        ErrorCode, Fields, Method as M, OutgoingBody, OutgoingRequest, Scheme,
    };
    use wasip2::io::streams::StreamError;

    let failed = |what: &str| http::Error::Failed(what.to_owned());
    let (https, authority, path) = http::split_url(&request.url)?;
    let headers: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    let fields = Fields::from_list(&headers).map_err(|e| failed(&format!("header: {e:?}")))?;
    let outgoing = OutgoingRequest::new(fields);
    let method = match request.method.to_ascii_uppercase().as_str() {
        "GET" => M::Get,
        "POST" => M::Post,
        "PUT" => M::Put,
        "DELETE" => M::Delete,
        "PATCH" => M::Patch,
        "HEAD" => M::Head,
        "OPTIONS" => M::Options,
        other => M::Other(other.to_owned()),
    };
    let scheme = if https { Scheme::Https } else { Scheme::Http };
    outgoing
        .set_method(&method)
        .map_err(|()| failed("method"))?;
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| failed("scheme"))?;
    outgoing
        .set_authority(Some(authority))
        .map_err(|()| http::Error::InvalidUrl(request.url.clone()))?;
    outgoing
        .set_path_with_query(Some(&path))
        .map_err(|()| http::Error::InvalidUrl(request.url.clone()))?;
    let body = outgoing.body().map_err(|()| failed("request body"))?;
    let code = |e: ErrorCode| match e {
        ErrorCode::HttpRequestDenied => http::Error::Denied,
        other => http::Error::Failed(format!("{other:?}")),
    };
    let pending = outgoing_handler::handle(outgoing, None).map_err(code)?;
    {
        let stream = body.write().map_err(|()| failed("request body"))?;
        for chunk in request.body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| failed(&format!("writing the body: {e:?}")))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(code)?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or_else(|| failed("no response"))?
        .map_err(|()| failed("response taken twice"))?
        .map_err(code)?;
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let incoming = response.consume().map_err(|()| failed("response body"))?;
    let mut body = Vec::new();
    {
        let stream = incoming.stream().map_err(|()| failed("response body"))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(failed(&format!(
                        "reading the body: {}",
                        e.to_debug_string()
                    )));
                }
            }
        }
    }
    Ok(http::Response {
        status,
        headers,
        body,
    })
}

pub fn log(level: Level, message: &str) {
    wlog::log(convert::level(level), message);
}

pub fn config_get(key: &str) -> Option<String> {
    config::get(key)
}

pub fn config_all() -> String {
    config::get_all()
}

pub fn kv_get(key: &str) -> Result<Option<Vec<u8>>, kv::Error> {
    wkv::get(key).map_err(convert::kv_error)
}

pub fn kv_set(key: &str, value: &[u8], ttl: Option<u32>) -> Result<(), kv::Error> {
    wkv::set(key, value, ttl).map_err(convert::kv_error)
}

pub fn kv_delete(key: &str) -> Result<bool, kv::Error> {
    wkv::delete(key).map_err(convert::kv_error)
}

pub fn kv_increment(key: &str, delta: i64) -> Result<i64, kv::Error> {
    wkv::increment(key, delta).map_err(convert::kv_error)
}
