//! Media material: WeChat's formats and size limits, checked before an upload with the format
//! read from the bytes; multipart uploads of temporary and permanent material; downloads; and
//! the media ids of temporary uploads kept by content hash in the store, so identical bytes
//! are uploaded once by every host sharing it until shortly before WeChat drops them.

use std::fmt;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::client::{json_answer, read_answer, read_body};
use super::{AccountApi, ApiError, Idempotency, Method};
use crate::clock::unix_now;
use crate::storage::lock::{self, StoreLock};
use crate::wechat::reply::MAX_MEDIA_ID_BYTES;

/// How long WeChat keeps temporary material.
pub const TEMPORARY_LIFETIME_SECS: i64 = 3 * 24 * 3600;
/// A cached media id is no longer used this long before WeChat drops its material.
const EXPIRY_MARGIN_SECS: i64 = 3600;
/// The largest file read back from WeChat (its largest material is 10 MiB).
const MAX_DOWNLOAD_BYTES: usize = 10 * 1024 * 1024 + 64 * 1024;
/// How long one host may hold the upload lock of some bytes.
const UPLOAD_LOCK_TTL: Duration = Duration::from_secs(30);
/// How often a caller waiting for another host's upload of the same bytes looks for its id.
const UPLOAD_LOCK_POLL: Duration = Duration::from_millis(100);

const MIB: usize = 1024 * 1024;

/// What kind of material WeChat stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// A picture.
    Image,
    /// A voice message.
    Voice,
    /// A video.
    Video,
    /// A thumbnail (of video and music messages).
    Thumb,
}

impl MediaKind {
    /// WeChat's `type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Voice => "voice",
            MediaKind::Video => "video",
            MediaKind::Thumb => "thumb",
        }
    }

    /// The largest file WeChat takes of this kind.
    pub fn max_bytes(self) -> usize {
        match self {
            MediaKind::Image | MediaKind::Video => 10 * MIB,
            MediaKind::Voice => 2 * MIB,
            MediaKind::Thumb => 64 * 1024,
        }
    }

    /// The formats WeChat takes of this kind, for temporary or permanent material.
    fn formats(self, lifetime: Lifetime) -> &'static [Format] {
        use Format::*;
        match (self, lifetime) {
            (MediaKind::Image, Lifetime::Temporary) => &[Png, Jpeg, Gif],
            (MediaKind::Image, Lifetime::Permanent) => &[Png, Jpeg, Gif, Bmp],
            (MediaKind::Voice, Lifetime::Temporary) => &[Amr, Mp3],
            (MediaKind::Voice, Lifetime::Permanent) => &[Amr, Mp3, Wav, Wma],
            (MediaKind::Video, _) => &[Mp4],
            (MediaKind::Thumb, _) => &[Jpeg],
        }
    }
}

/// Temporary material (kept by WeChat for 3 days) or permanent material (kept until deleted,
/// counted against the account's quota).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// `cgi-bin/media/upload`.
    Temporary,
    /// `cgi-bin/material/add_material`.
    Permanent,
}

/// A file format WeChat takes, recognised by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// GIF.
    Gif,
    /// BMP.
    Bmp,
    /// AMR (narrow- or wide-band).
    Amr,
    /// MP3.
    Mp3,
    /// WAV.
    Wav,
    /// WMA (an ASF container).
    Wma,
    /// MP4 (an ISO base media file).
    Mp4,
}

impl Format {
    /// The format `bytes` begin like, if one WeChat takes.
    pub fn sniff(bytes: &[u8]) -> Option<Format> {
        const ASF: [u8; 16] = [
            0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11, 0xA6, 0xD9, 0x00, 0xAA, 0x00, 0x62,
            0xCE, 0x6C,
        ];
        let format = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Format::Png
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Format::Jpeg
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Format::Gif
        } else if bytes.starts_with(b"BM") && bytes.len() >= 26 {
            Format::Bmp
        } else if bytes.starts_with(b"#!AMR\n") || bytes.starts_with(b"#!AMR-WB\n") {
            Format::Amr
        } else if bytes.starts_with(b"ID3")
            || (bytes.len() >= 2 && bytes[0] == 0xFF && bytes[1] & 0xE0 == 0xE0)
        {
            Format::Mp3
        } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WAVE" {
            Format::Wav
        } else if bytes.starts_with(&ASF) {
            Format::Wma
        } else if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
            Format::Mp4
        } else {
            return None;
        };
        Some(format)
    }

    /// The file name extension WeChat judges the format by.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Jpeg => "jpg",
            Format::Gif => "gif",
            Format::Bmp => "bmp",
            Format::Amr => "amr",
            Format::Mp3 => "mp3",
            Format::Wav => "wav",
            Format::Wma => "wma",
            Format::Mp4 => "mp4",
        }
    }

    /// Its MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Jpeg => "image/jpeg",
            Format::Gif => "image/gif",
            Format::Bmp => "image/bmp",
            Format::Amr => "audio/amr",
            Format::Mp3 => "audio/mpeg",
            Format::Wav => "audio/wav",
            Format::Wma => "audio/x-ms-wma",
            Format::Mp4 => "video/mp4",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.extension().to_ascii_uppercase())
    }
}

/// Checks `bytes` against what WeChat takes as `kind` material of `lifetime`, as WeChat
/// documents it; returns their format. Voice length (at most 60 s) is left to WeChat.
pub fn check(kind: MediaKind, lifetime: Lifetime, bytes: &[u8]) -> Result<Format, ApiError> {
    let kind_name = kind.as_str();
    if bytes.is_empty() {
        return Err(ApiError::Invalid(format!("the {kind_name} is empty")));
    }
    let max = kind.max_bytes();
    if bytes.len() > max {
        return Err(ApiError::Invalid(format!(
            "the {kind_name} is {} bytes; WeChat takes at most {max}",
            bytes.len()
        )));
    }
    let allowed = kind.formats(lifetime);
    let names = allowed
        .iter()
        .map(Format::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let material = match lifetime {
        Lifetime::Temporary => "temporary",
        Lifetime::Permanent => "permanent",
    };
    match Format::sniff(bytes) {
        Some(format) if allowed.contains(&format) => Ok(format),
        Some(format) => Err(ApiError::Invalid(format!(
            "the {kind_name} is {format}; {material} {kind_name} material must be {names}"
        ))),
        None => Err(ApiError::Invalid(format!(
            "the {kind_name} is in no format WeChat takes; {material} {kind_name} material must \
             be {names}"
        ))),
    }
}

/// The title and introduction of a permanent video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoInfo {
    /// Its title.
    pub title: String,
    /// Its introduction.
    pub introduction: String,
}

/// Permanent material as WeChat stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Material {
    /// Its media id.
    pub media_id: String,
    /// Where WeChat serves it (images only).
    pub url: Option<String>,
}

/// A file as WeChat answered it.
#[derive(Clone, PartialEq, Eq)]
pub struct MediaFile {
    /// Its `Content-Type`.
    pub content_type: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for MediaFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaFile")
            .field("content_type", &self.content_type)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// A `multipart/form-data` body: the file as field `media`, then any text fields.
struct Multipart {
    content_type: String,
    body: bytes::Bytes,
}

impl Multipart {
    fn new(format: Format, file: &[u8], fields: &[(&str, String)]) -> Self {
        // A boundary that occurs in none of the parts (a random one practically never does).
        let boundary = loop {
            let boundary = format!("wxhost-{:032x}", rand::random::<u128>());
            let occurs = |part: &[u8]| memchr::memmem::find(part, boundary.as_bytes()).is_some();
            if !occurs(file) && !fields.iter().any(|(_, v)| occurs(v.as_bytes())) {
                break boundary;
            }
        };
        let mut body = Vec::with_capacity(file.len() + 512);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"media\"; \
                 filename=\"media.{}\"\r\nContent-Type: {}\r\n\r\n",
                format.extension(),
                format.mime()
            )
            .as_bytes(),
        );
        body.extend_from_slice(file);
        for (name, value) in fields {
            body.extend_from_slice(
                format!(
                    "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(value.as_bytes());
        }
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        Multipart {
            content_type: format!("multipart/form-data; boundary={boundary}"),
            body: body.into(),
        }
    }
}

/// The content hash of `bytes` as `kind`, as cache keys hold it.
fn content_key(kind: MediaKind, bytes: &[u8]) -> String {
    format!("{}/{}", kind.as_str(), hex::encode(Sha256::digest(bytes)))
}

impl AccountApi {
    /// Uploads `bytes` as temporary `kind` material and returns its media id; bytes this
    /// account uploaded before (on any host sharing the store) get their cached id, until an
    /// hour before WeChat drops them, and hosts uploading the same bytes at once upload once.
    pub async fn upload_media(&self, kind: MediaKind, bytes: &[u8]) -> Result<String, ApiError> {
        let found = self.cached_upload(kind, bytes).await;
        let outcome = match &found {
            Ok((_, true)) => "uploaded".into(),
            Ok((_, false)) => "cached".into(),
            Err(e) => e.kind(),
        };
        self.metrics().media_upload(self.tenant(), &outcome);
        found.map(|(media_id, _)| media_id)
    }

    /// [`AccountApi::upload_media`]: the media id, and whether this call uploaded it.
    async fn cached_upload(
        &self,
        kind: MediaKind,
        bytes: &[u8],
    ) -> Result<(String, bool), ApiError> {
        let format = check(kind, Lifetime::Temporary, bytes)?;
        let (kv, ns) = self.store();
        let content = content_key(kind, bytes);
        let key = format!("media/{}/{content}", self.appid());
        let lock_key = format!("media_lock/{}/{content}", self.appid());
        let lock = StoreLock::new(kv, &ns, &lock_key, UPLOAD_LOCK_TTL);
        let look = || async {
            match kv.get(&ns, &key).await {
                Ok(id) => id
                    .and_then(|id| String::from_utf8(id).ok())
                    .map(|id| (id, false)),
                Err(e) => {
                    tracing::warn!(tenant = %self.tenant(), "cannot read the media id cache: {e}");
                    None
                }
            }
        };
        lock::once(&lock, UPLOAD_LOCK_POLL, look, || async {
            let form = Multipart::new(format, bytes, &[]);
            let query = [("type".to_owned(), kind.as_str().to_owned())];
            // Repeated once after an unknown outcome: a second copy of temporary material
            // costs nothing.
            let path = "cgi-bin/media/upload";
            let answer = self
                .upload(&form, path, &query, Idempotency::Idempotent)
                .await?;
            let id_field = if kind == MediaKind::Thumb {
                "thumb_media_id"
            } else {
                "media_id"
            };
            let media_id = answer_str(&answer, id_field)?;
            let created_at = answer
                .get("created_at")
                .and_then(Value::as_i64)
                .unwrap_or_else(unix_now);
            let keep = created_at + TEMPORARY_LIFETIME_SECS - EXPIRY_MARGIN_SECS - unix_now();
            if let Ok(keep @ 1..) = u64::try_from(keep) {
                let cached = kv
                    .set(
                        &ns,
                        &key,
                        media_id.as_bytes(),
                        Some(Duration::from_secs(keep)),
                    )
                    .await;
                if let Err(e) = cached {
                    tracing::warn!(tenant = %self.tenant(), "cannot cache a media id: {e}");
                }
            }
            Ok((media_id, true))
        })
        .await
    }

    /// Uploads `bytes` as permanent `kind` material (a video needs `video`); never repeated
    /// when the outcome is unknown.
    pub async fn upload_material(
        &self,
        kind: MediaKind,
        bytes: &[u8],
        video: Option<&VideoInfo>,
    ) -> Result<Material, ApiError> {
        let format = check(kind, Lifetime::Permanent, bytes)?;
        let fields = match (kind, video) {
            (MediaKind::Video, Some(info)) => vec![(
                "description",
                json!({"title": info.title, "introduction": info.introduction}).to_string(),
            )],
            (MediaKind::Video, None) => {
                return Err(ApiError::Invalid(
                    "a permanent video needs its title and introduction".into(),
                ));
            }
            (_, Some(_)) => {
                return Err(ApiError::Invalid(format!(
                    "only a video takes a title and introduction, not a {}",
                    kind.as_str()
                )));
            }
            (_, None) => Vec::new(),
        };
        let form = Multipart::new(format, bytes, &fields);
        let query = [("type".to_owned(), kind.as_str().to_owned())];
        let answer = self
            .upload(
                &form,
                "cgi-bin/material/add_material",
                &query,
                Idempotency::NotIdempotent,
            )
            .await?;
        Ok(Material {
            media_id: answer_str(&answer, "media_id")?,
            url: answer.get("url").and_then(Value::as_str).map(str::to_owned),
        })
    }

    /// Posts `form` to `path`; returns WeChat's JSON answer.
    async fn upload(
        &self,
        form: &Multipart,
        path: &str,
        query: &[(String, String)],
        idempotency: Idempotency,
    ) -> Result<Value, ApiError> {
        self.exchange(path, idempotency, |token| {
            let request = self
                .request(Method::Post, path, &token, query)
                .header(reqwest::header::CONTENT_TYPE, form.content_type.clone())
                .body(form.body.clone());
            read_answer(request)
        })
        .await
    }

    /// Downloads temporary material (`cgi-bin/media/get`).
    pub async fn download_media(&self, media_id: &str) -> Result<MediaFile, ApiError> {
        check_media_id(media_id)?;
        let path = "cgi-bin/media/get";
        let query = [("media_id".to_owned(), media_id.to_owned())];
        self.exchange(path, Idempotency::Idempotent, |token| {
            file_answer(self.request(Method::Get, path, &token, &query))
        })
        .await
    }

    /// Downloads permanent material (`cgi-bin/material/get_material`).
    pub async fn download_material(&self, media_id: &str) -> Result<MediaFile, ApiError> {
        check_media_id(media_id)?;
        let path = "cgi-bin/material/get_material";
        let body = json!({ "media_id": media_id });
        self.exchange(path, Idempotency::Idempotent, |token| {
            file_answer(self.request(Method::Post, path, &token, &[]).json(&body))
        })
        .await
    }
}

/// A media id is 1 to [`MAX_MEDIA_ID_BYTES`] bytes (as in a reply).
fn check_media_id(media_id: &str) -> Result<(), ApiError> {
    if media_id.is_empty() || media_id.len() > MAX_MEDIA_ID_BYTES {
        return Err(ApiError::Invalid(format!(
            "not a media id: {} bytes (1 to {MAX_MEDIA_ID_BYTES})",
            media_id.len()
        )));
    }
    Ok(())
}

fn answer_str(answer: &Value, field: &str) -> Result<String, ApiError> {
    answer
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ApiError::Decode(format!("the answer has no {field}")))
}

/// A file WeChat answers, or its JSON: an error when it carries a non-zero `errcode`, else the
/// file (a video's URL, …) as `application/json`.
async fn file_answer(request: reqwest::RequestBuilder) -> Result<MediaFile, ApiError> {
    let (content_type, bytes) = read_body(request, MAX_DOWNLOAD_BYTES).await?;
    let textual = content_type.is_empty()
        || content_type.contains("json")
        || content_type.starts_with("text/");
    if textual && bytes.trim_ascii_start().starts_with(b"{") {
        json_answer(&bytes)?;
        return Ok(MediaFile {
            content_type: "application/json".into(),
            bytes,
        });
    }
    Ok(MediaFile {
        content_type,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png() -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend_from_slice(&[0; 32]);
        png
    }

    #[test]
    fn formats_are_read_from_the_bytes() {
        let mp4 = [&[0, 0, 0, 0x20][..], b"ftypisom", &[0; 8]].concat();
        let wav = [&b"RIFF"[..], &[0; 4], b"WAVEfmt "].concat();
        for (bytes, format) in [
            (png(), Some(Format::Png)),
            (vec![0xFF, 0xD8, 0xFF, 0xE0], Some(Format::Jpeg)),
            (b"GIF89a....".to_vec(), Some(Format::Gif)),
            (b"#!AMR\n....".to_vec(), Some(Format::Amr)),
            (b"ID3\x04....".to_vec(), Some(Format::Mp3)),
            (vec![0xFF, 0xFB, 0x90, 0x00], Some(Format::Mp3)),
            (wav, Some(Format::Wav)),
            (mp4, Some(Format::Mp4)),
            (b"<svg></svg>".to_vec(), None),
            (b"BM".to_vec(), None),
        ] {
            assert_eq!(Format::sniff(&bytes), format, "{bytes:?}");
        }
    }

    #[test]
    fn wechats_size_and_format_limits_are_checked_before_an_upload() {
        assert_eq!(
            check(MediaKind::Image, Lifetime::Temporary, &png()),
            Ok(Format::Png)
        );
        let bmp = [&b"BM"[..], &[0; 40]].concat();
        assert_eq!(
            check(MediaKind::Image, Lifetime::Permanent, &bmp),
            Ok(Format::Bmp)
        );
        let refusal = |kind, lifetime, bytes: &[u8]| match check(kind, lifetime, bytes) {
            Err(ApiError::Invalid(why)) => why,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refusal(MediaKind::Image, Lifetime::Temporary, &bmp),
            "the image is BMP; temporary image material must be PNG, JPG, GIF"
        );
        assert_eq!(
            refusal(MediaKind::Thumb, Lifetime::Temporary, &png()),
            "the thumb is PNG; temporary thumb material must be JPG"
        );
        let mut big = vec![0xFF, 0xD8, 0xFF];
        big.resize(64 * 1024 + 1, 0);
        assert_eq!(
            refusal(MediaKind::Thumb, Lifetime::Permanent, &big),
            "the thumb is 65537 bytes; WeChat takes at most 65536"
        );
        big.truncate(64 * 1024);
        assert_eq!(
            check(MediaKind::Thumb, Lifetime::Permanent, &big),
            Ok(Format::Jpeg)
        );
        assert_eq!(
            refusal(MediaKind::Voice, Lifetime::Temporary, b"plain text"),
            "the voice is in no format WeChat takes; temporary voice material must be AMR, MP3"
        );
        assert_eq!(
            refusal(MediaKind::Video, Lifetime::Temporary, &[]),
            "the video is empty"
        );
    }

    #[test]
    fn a_multipart_body_carries_the_file_and_its_fields_between_boundaries() {
        let form = Multipart::new(Format::Png, &png(), &[("description", "{}".to_owned())]);
        let boundary = form
            .content_type
            .strip_prefix("multipart/form-data; boundary=")
            .expect("boundary");
        let body = &form.body[..];
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"media\"; \
             filename=\"media.png\"\r\nContent-Type: image/png\r\n\r\n"
        );
        assert!(body.starts_with(head.as_bytes()));
        let tail = format!(
            "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\n{{}}\r\n--{boundary}--\r\n"
        );
        assert!(body.ends_with(tail.as_bytes()));
        assert_eq!(body.len(), head.len() + png().len() + tail.len());
    }
}
