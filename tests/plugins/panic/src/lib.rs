//! Panics with a message the host must capture from stderr.

use wxhost_sdk::{Message, Outcome, Plugin};

/// The plugin.
pub struct Panic;

impl Plugin for Panic {
    fn handle(msg: &Message) -> wxhost_sdk::Result<Outcome> {
        panic!("plugin exploded: {}", msg.text().unwrap_or("(no text)"));
    }
}

wxhost_sdk::export!(Panic);
