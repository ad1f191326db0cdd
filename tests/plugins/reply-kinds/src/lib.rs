//! Answers with the reply type its text names (`text`, `image`, `voice`, `video`, `music`,
//! `news`, `transfer`, `transfer-to`), so tests can exercise every reply type; and with replies
//! past the host's caps on command (`huge-news`: eight articles of 2000-byte links, over the
//! whole reply's 16 KiB; `long-title-news`: a 1000-byte title; `huge-music`: a 4096-byte
//! music link; `huge-music-cdata`: links of `]]>` runs, each field within its cap, the whole
//! reply over it). Else passes.

use wxhost_sdk::{Article, Message, Outcome, Plugin, Reply};

/// The plugin.
pub struct ReplyKinds;

impl Plugin for ReplyKinds {
    fn handle(msg: &Message) -> wxhost_sdk::Result<Outcome> {
        let reply = match msg.text().map(str::trim) {
            Some("text") => Reply::text("a text ]]> <&>"),
            Some("image") => Reply::image("IMAGE_MEDIA"),
            Some("voice") => Reply::voice("VOICE_MEDIA"),
            Some("video") => Reply::video("VIDEO_MEDIA", "A video", "About it"),
            Some("music") => Reply::music("A song", "https://m.example/song.mp3", "THUMB_MEDIA"),
            Some("news") => Reply::news([
                Article::new("First", "https://example.com/1").pic_url("https://example.com/1.jpg"),
                Article::new("Second", "https://example.com/2").description("more"),
            ]),
            Some("transfer") => Reply::transfer_customer_service(),
            Some("transfer-to") => Reply::transfer_to("agent1@account"),
            Some("huge-news") => {
                Reply::news((0..8).map(|i| Article::new(format!("Article {i}"), long_url(2000))))
            }
            Some("long-title-news") => {
                Reply::news([Article::new("t".repeat(1000), "https://example.com/1")])
            }
            Some("huge-music") => Reply::music("A song", long_url(4096), "THUMB_MEDIA"),
            Some("huge-music-cdata") => Reply::Music {
                title: "A song".into(),
                description: String::new(),
                music_url: "]]>".repeat(682),
                hq_music_url: "]]>".repeat(682),
                thumb_media_id: "THUMB_MEDIA".into(),
            },
            _ => return Ok(Outcome::Pass),
        };
        Ok(reply.into())
    }
}

/// A link of `len` bytes.
fn long_url(len: usize) -> String {
    let mut url = String::from("https://example.com/?q=");
    url.extend(std::iter::repeat_n('x', len - url.len()));
    url
}

wxhost_sdk::export!(ReplyKinds);
