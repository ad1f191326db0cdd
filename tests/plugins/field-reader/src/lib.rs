//! Answers every message with its raw fields, one `path=value` per line, read through the SDK
//! (so from the host on demand); `first PATH` answers only that field's value, or `none`.

use wxhost_sdk::{Message, Outcome, Plugin, Reply};

/// The plugin.
pub struct FieldReader;

impl Plugin for FieldReader {
    fn handle(msg: &Message) -> wxhost_sdk::Result<Outcome> {
        let text = match msg.text().and_then(|t| t.strip_prefix("first ")) {
            Some(path) => msg.field(path).unwrap_or("none").to_owned(),
            None => msg
                .fields
                .iter()
                .map(|f| format!("{}={}", f.path, f.value))
                .collect::<Vec<_>>()
                .join("\n"),
        };
        Ok(Reply::text(text).into())
    }
}

wxhost_sdk::export!(FieldReader);
