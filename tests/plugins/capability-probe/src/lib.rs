//! Tries the granted capabilities on command and answers with what happened, so tests see
//! the error values a plugin gets:
//!   `api TEXT`        sends TEXT as a customer-service message to the sender
//!   `api-to USER TEXT` sends TEXT as a customer-service message to USER
//!   `template ID`     sends template ID to the sender
//!   `raw PATH`        GETs the WeChat API path PATH
//!   `http URL`        GETs URL
//!   `early TEXT`      answers TEXT early, then returns `late TEXT`
//!   `picture N`       answers with a PNG of N KiB made from N (the same N, the same bytes)
//!   `media KIND`      uploads a file of KIND (`image`, `voice`, `bmp`, `video`), downloads
//!                     it, and says whether the bytes came back
//!   `permanent-video` uploads a permanent video and downloads what WeChat says of it

use wxhost_sdk::{Message, Outcome, Plugin, Reply, http, media, wechat};

/// `kib` KiB in the format `kind` names, filled from `seed`.
fn file(kind: &str, kib: usize, seed: u8) -> Vec<u8> {
    let mut bytes = match kind {
        "voice" => b"#!AMR\n".to_vec(),
        "bmp" => b"BM".to_vec(),
        "video" => b"\0\0\0\x20ftypisom".to_vec(),
        _ => b"\x89PNG\r\n\x1a\n".to_vec(),
    };
    bytes.extend((0..kib * 1024).map(|i| seed.wrapping_add(i as u8)));
    bytes
}

/// The plugin.
pub struct CapabilityProbe;

impl Plugin for CapabilityProbe {
    fn handle(msg: &Message) -> wxhost_sdk::Result<Outcome> {
        let Some(text) = msg.text() else {
            return Ok(Outcome::Pass);
        };
        let (command, arg) = text.split_once(' ').unwrap_or((text, ""));
        let answer = match command {
            "api" => match wechat::send_text(arg) {
                Ok(()) => "api ok".to_owned(),
                Err(e) => format!("api error: {e:?}"),
            },
            "api-to" => {
                let (user, text) = arg.split_once(' ').unwrap_or((arg, ""));
                let message = wechat::CustomMessage::Text(text.to_owned());
                match wechat::send_custom(Some(user), &message) {
                    Ok(()) => "api ok".to_owned(),
                    Err(e) => format!("api error: {e:?}"),
                }
            }
            "template" => {
                let message = wechat::TemplateMessage {
                    template_id: arg.to_owned(),
                    data: vec![("thing1".into(), "probe".into(), None)],
                    ..Default::default()
                };
                match wechat::send_template(&message) {
                    Ok(msgid) => format!("template ok {msgid}"),
                    Err(e) => format!("template error: {e:?}"),
                }
            }
            "raw" => match wechat::call(wechat::Method::Get, arg, &[], None) {
                Ok(json) => format!("raw ok {json}"),
                Err(e) => format!("raw error: {e:?}"),
            },
            "http" => match http::get(arg) {
                Ok(answer) => format!("http {} {}", answer.status, answer.text()),
                Err(e) => format!("http error: {e:?}"),
            },
            "early" => {
                wxhost_sdk::reply_early(Reply::text(arg))?;
                format!("late {arg}")
            }
            "picture" => {
                let kib: usize = arg.parse().unwrap_or(1);
                match media::image_reply(&file("image", kib, kib as u8)) {
                    Ok(reply) => return Ok(reply.into()),
                    Err(e) => format!("media error: {e:?}"),
                }
            }
            "media" => {
                let kind = match arg {
                    "voice" => media::Kind::Voice,
                    "video" => media::Kind::Video,
                    _ => media::Kind::Image,
                };
                let bytes = file(arg, 3, 7);
                match media::upload(kind, &bytes).and_then(|id| media::download(&id)) {
                    Ok(got) if got.bytes == bytes => format!("media ok {}", got.bytes.len()),
                    Ok(got) => format!(
                        "media other {} {}",
                        got.content_type,
                        String::from_utf8_lossy(&got.bytes)
                    ),
                    Err(e) => format!("media error: {e:?}"),
                }
            }
            "permanent-video" => {
                let info = media::VideoInfo {
                    title: "probe".into(),
                    introduction: "a test video".into(),
                };
                let uploaded =
                    media::upload_permanent(media::Kind::Video, &file("video", 2, 1), Some(&info));
                match uploaded.and_then(|m| media::download_permanent(&m.media_id)) {
                    Ok(got) => format!(
                        "media {} {}",
                        got.content_type,
                        String::from_utf8_lossy(&got.bytes)
                    ),
                    Err(e) => format!("media error: {e:?}"),
                }
            }
            _ => return Ok(Outcome::Pass),
        };
        Ok(Reply::text(answer).into())
    }
}

wxhost_sdk::export!(CapabilityProbe);
