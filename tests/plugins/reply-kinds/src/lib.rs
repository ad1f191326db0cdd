//! Answers with the reply type its text names (`text`, `image`, `voice`, `video`, `music`,
//! `news`, `transfer`, `transfer-to`), so tests can exercise every reply type; else passes.

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
            _ => return Ok(Outcome::Pass),
        };
        Ok(reply.into())
    }
}

wxhost_sdk::export!(ReplyKinds);
