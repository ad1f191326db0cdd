//! Answers a 4 MiB text, far past WeChat's 2048-byte limit.

use wxhost_sdk::{Message, Outcome, Plugin, Reply};

/// The plugin.
pub struct HugeReply;

impl Plugin for HugeReply {
    fn handle(_msg: &Message) -> wxhost_sdk::Result<Outcome> {
        Ok(Reply::text("x".repeat(4 << 20)).into())
    }
}

wxhost_sdk::export!(HugeReply);
