//! Answers every message with the message as the SDK received it, serialised as JSON: every
//! typed field, the envelope and the raw fields, for a test to compare with what the host
//! parsed. The JSON goes in the description of a one-article news reply, which has no length
//! limit (a text reply is capped at 2048 bytes, and a message's fields can be longer).

use wxhost_sdk::{Article, Message, Outcome, Plugin, Reply};

/// The title of the one article; its description is the message.
pub const TITLE: &str = "message-mirror";

/// The plugin.
pub struct MessageMirror;

impl Plugin for MessageMirror {
    fn handle(msg: &Message) -> wxhost_sdk::Result<Outcome> {
        let json = serde_json::to_string(msg)?;
        Ok(Reply::news([Article::new(TITLE, "").description(json)]).into())
    }
}

wxhost_sdk::export!(MessageMirror);

#[cfg(test)]
mod tests {
    use super::*;
    use wxhost_sdk::testing::{TestHost, text_message};

    #[test]
    fn answers_with_the_message_as_json() {
        let msg = text_message("o_user", "a long text: ".repeat(400).as_str());
        let outcome = TestHost::new().handle::<MessageMirror>(&msg);
        let Ok(Outcome::Reply(Reply::News(articles))) = outcome else {
            panic!("expected a news reply, got {outcome:?}");
        };
        let [article] = articles.as_slice() else {
            panic!("expected one article, got {articles:?}");
        };
        assert_eq!(article.title, TITLE);
        let back: Message = serde_json::from_str(&article.description).expect("the message");
        assert_eq!(back, msg);
    }
}
