//! Answers every message with the message as the SDK received it, serialised as JSON: every
//! typed field, the envelope and the raw fields, for a test to compare with what the host
//! parsed. The JSON goes in kv under [`KEY`] (a value holds 64 KiB; every reply field is
//! capped, and a message's fields can be longer than any), and the reply is the text [`KEY`].

use wxhost_sdk::{Message, Outcome, Plugin, Reply};

/// The kv key of the message, and the text of the reply.
pub const KEY: &str = "message-mirror";

/// The plugin.
pub struct MessageMirror;

impl Plugin for MessageMirror {
    fn handle(msg: &Message) -> wxhost_sdk::Result<Outcome> {
        wxhost_sdk::kv::set_json(KEY, msg, None)?;
        Ok(Reply::text(KEY).into())
    }
}

wxhost_sdk::export!(MessageMirror);

#[cfg(test)]
mod tests {
    use super::*;
    use wxhost_sdk::testing::{TestHost, text_message};

    #[test]
    fn answers_with_the_message_as_json_in_kv() {
        let msg = text_message("o_user", "a long text: ".repeat(400).as_str());
        let host = TestHost::new();
        let outcome = host.handle::<MessageMirror>(&msg);
        assert_eq!(outcome, Ok(Outcome::Reply(Reply::text(KEY))));
        let json = host.kv_get(KEY).expect("the message is in kv");
        let back: Message = serde_json::from_slice(&json).expect("the message");
        assert_eq!(back, msg);
    }
}
