//! Media material as WeChat serves it: `cgi-bin/media/upload` and `media/get` (temporary),
//! `cgi-bin/material/add_material` and `material/get_material` (permanent). Uploads are parsed
//! as the `multipart/form-data` they are and checked as WeChat checks them: a known `type`,
//! the file in field `media`, its extension among the formats of that type, its size within
//! that type's limit, a video's `description` for permanent material.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Body;
use axum::extract::{Multipart, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Shared, call, error, lock};

/// One piece of material.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    kind: String,
    content_type: String,
    extension: String,
    pub(crate) bytes: Vec<u8>,
    permanent: bool,
    description: Option<Value>,
}

/// The extensions WeChat takes for `kind` (temporary or permanent), and the size limit with
/// the error code for a file over it.
fn rules(kind: &str, permanent: bool) -> Option<(&'static [&'static str], usize, i64)> {
    const MIB: usize = 1024 * 1024;
    Some(match (kind, permanent) {
        ("image", false) => (&["png", "jpeg", "jpg", "gif"], 10 * MIB, 40009),
        ("image", true) => (&["bmp", "png", "jpeg", "jpg", "gif"], 10 * MIB, 40009),
        ("voice", false) => (&["amr", "mp3"], 2 * MIB, 40010),
        ("voice", true) => (&["mp3", "wma", "wav", "amr"], 2 * MIB, 40010),
        ("video", _) => (&["mp4"], 10 * MIB, 40011),
        ("thumb", _) => (&["jpg", "jpeg"], 64 * 1024, 40012),
        _ => return None,
    })
}

/// Reads and checks an upload; stores it and returns its media id, or WeChat's error.
async fn receive(
    inner: &Shared,
    path: &str,
    query: &HashMap<String, String>,
    mut form: Multipart,
    permanent: bool,
) -> Result<(String, String), Json<Value>> {
    call(inner, path, query)?;
    let delay = lock(inner).media_delay;
    tokio::time::sleep(delay).await;
    let kind = query.get("type").cloned().unwrap_or_default();
    let Some((extensions, max, too_large)) = rules(&kind, permanent) else {
        return Err(error(40004, "invalid media type"));
    };
    let (mut file, mut description) = (None, None);
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(error(41005, &format!("media data missing: {e}"))),
        };
        match field.name() {
            Some("media") => {
                let filename = field.file_name().unwrap_or_default().to_owned();
                let content_type = field.content_type().unwrap_or_default().to_owned();
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| error(41005, &format!("media data missing: {e}")))?;
                file = Some((filename, content_type, bytes.to_vec()));
            }
            Some("description") => {
                let text = field.text().await.unwrap_or_default();
                description = serde_json::from_str::<Value>(&text).ok();
            }
            _ => {}
        }
    }
    let Some((filename, content_type, bytes)) = file else {
        return Err(error(41005, "media data missing"));
    };
    let extension = filename
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    if !extensions.contains(&extension.as_str()) {
        return Err(error(40005, "invalid file type"));
    }
    if bytes.is_empty() || bytes.len() > max {
        return Err(error(too_large, &format!("invalid {kind} size")));
    }
    if permanent && kind == "video" {
        let described = description.as_ref().is_some_and(|d| {
            d.get("title").and_then(Value::as_str).is_some()
                && d.get("introduction").and_then(Value::as_str).is_some()
        });
        if !described {
            return Err(error(
                41005,
                "media data missing: a video needs its description",
            ));
        }
    }
    let mut inner = lock(inner);
    inner.next_media += 1;
    let media_id = format!(
        "MEDIA-{}-{}",
        if permanent { "P" } else { "T" },
        inner.next_media
    );
    inner.media.insert(
        media_id.clone(),
        Stored {
            kind: kind.clone(),
            content_type,
            extension,
            bytes,
            permanent,
            description,
        },
    );
    Ok((media_id, kind))
}

pub(crate) async fn upload(
    State(inner): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    form: Multipart,
) -> Json<Value> {
    match receive(&inner, "cgi-bin/media/upload", &query, form, false).await {
        Ok((media_id, kind)) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let id_field = if kind == "thumb" {
                "thumb_media_id"
            } else {
                "media_id"
            };
            Json(json!({ "type": kind, id_field: media_id, "created_at": now }))
        }
        Err(answer) => answer,
    }
}

pub(crate) async fn add_material(
    State(inner): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    form: Multipart,
) -> Json<Value> {
    match receive(&inner, "cgi-bin/material/add_material", &query, form, true).await {
        Ok((media_id, kind)) if kind == "image" => Json(json!({
            "media_id": media_id,
            "url": format!("http://mmbiz.qpic.test/{media_id}"),
        })),
        Ok((media_id, _)) => Json(json!({ "media_id": media_id })),
        Err(answer) => answer,
    }
}

/// Material `media_id` of the lifetime asked for, as WeChat answers a download of it.
fn serve(inner: &Shared, media_id: &str, permanent: bool) -> Response {
    let found = lock(inner)
        .media
        .get(media_id)
        .filter(|m| m.permanent == permanent)
        .cloned();
    let Some(stored) = found else {
        return error(40007, "invalid media_id").into_response();
    };
    if stored.kind == "video" {
        let url = format!("http://mmbiz.video.test/{media_id}.mp4");
        return if permanent {
            let describe = |field| {
                stored
                    .description
                    .as_ref()
                    .and_then(|d| d.get(field).cloned())
                    .unwrap_or_default()
            };
            Json(json!({
                "title": describe("title"),
                "description": describe("introduction"),
                "down_url": url,
            }))
        } else {
            Json(json!({ "video_url": url }))
        }
        .into_response();
    }
    Response::builder()
        .header(header::CONTENT_TYPE, stored.content_type)
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{media_id}.{}\"", stored.extension),
        )
        .body(Body::from(stored.bytes))
        .unwrap_or_else(|_| error(-1, "system error").into_response())
}

pub(crate) async fn get(
    State(inner): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(answer) = call(&inner, "cgi-bin/media/get", &query) {
        return answer.into_response();
    }
    let media_id = query.get("media_id").cloned().unwrap_or_default();
    serve(&inner, &media_id, false)
}

pub(crate) async fn get_material(
    State(inner): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    if let Err(answer) = call(&inner, "cgi-bin/material/get_material", &query) {
        return answer.into_response();
    }
    let media_id = body
        .get("media_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    serve(&inner, media_id, true)
}
