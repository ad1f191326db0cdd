//! The account's media material: pictures, voice and video uploaded from bytes, to reply with
//! or send, and downloaded. Needs the `media` capability in the tenant config; every upload or
//! download counts as one WeChat API call of the call's quota (`api_calls`).
//!
//! The host checks WeChat's limits before uploading (the format is read from the bytes), and
//! remembers the media id of temporary uploads by their content: the same bytes answered twice
//! are uploaded once, by any host sharing the store, until shortly before WeChat drops them
//! (after 3 days). An upload that outlasts WeChat's 5 seconds makes the reply a late one, sent
//! as the tenant's `late_reply` says.
//!
//! ```no_run
//! use wxhost_sdk::{Message, Outcome, Plugin, media};
//!
//! struct Chart;
//!
//! impl Plugin for Chart {
//!     fn handle(_msg: &Message) -> wxhost_sdk::Result<Outcome> {
//!         let png: Vec<u8> = draw_chart();
//!         Ok(media::image_reply(&png)?.into())
//!     }
//! }
//! # fn draw_chart() -> Vec<u8> { Vec::new() }
//! ```

use crate::reply::Reply;
use crate::runtime::host;
pub use crate::wechat::ApiError;

/// What kind of material WeChat stores, and what it takes of each (refused by the host as
/// [`ApiError::Invalid`] before any upload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// PNG, JPEG or GIF (permanent material: also BMP), at most 10 MiB.
    Image,
    /// AMR or MP3 (permanent material: also WAV and WMA), at most 2 MiB and 60 seconds.
    Voice,
    /// MP4, at most 10 MiB.
    Video,
    /// A JPEG thumbnail (of video and music messages), at most 64 KiB.
    Thumb,
}

/// The title and introduction of a permanent video.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// WeChat's `Content-Type` (`image/jpeg`, …; `application/json` for a video's URL).
    pub content_type: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Uploads `bytes` as temporary material (kept by WeChat for 3 days); returns its media id,
/// the same one for the same bytes without another upload.
pub fn upload(kind: Kind, bytes: &[u8]) -> Result<String, ApiError> {
    host::media_upload(kind, bytes)
}

/// Uploads `bytes` as permanent material (counted against the account's quota; never
/// repeated by the host when the outcome is unknown). A video needs `video`.
pub fn upload_permanent(
    kind: Kind,
    bytes: &[u8],
    video: Option<&VideoInfo>,
) -> Result<Material, ApiError> {
    host::media_upload_permanent(kind, bytes, video)
}

/// Downloads temporary material. For a video WeChat answers JSON with its URL
/// (`{"video_url": …}`), returned as an `application/json` file.
pub fn download(media_id: &str) -> Result<File, ApiError> {
    host::media_download(media_id, false)
}

/// Downloads permanent material. For a video WeChat answers JSON (`title`, `description`,
/// `down_url`), returned as an `application/json` file.
pub fn download_permanent(media_id: &str) -> Result<File, ApiError> {
    host::media_download(media_id, true)
}

/// A picture reply showing the image `bytes` (uploaded as temporary material, once).
pub fn image_reply(bytes: &[u8]) -> Result<Reply, ApiError> {
    upload(Kind::Image, bytes).map(Reply::image)
}

/// A voice reply playing `bytes` (AMR or MP3, uploaded as temporary material, once).
pub fn voice_reply(bytes: &[u8]) -> Result<Reply, ApiError> {
    upload(Kind::Voice, bytes).map(Reply::voice)
}

/// A video reply playing the MP4 `bytes` (uploaded as temporary material, once).
pub fn video_reply(
    bytes: &[u8],
    title: impl Into<String>,
    description: impl Into<String>,
) -> Result<Reply, ApiError> {
    upload(Kind::Video, bytes).map(|id| Reply::video(id, title, description))
}
