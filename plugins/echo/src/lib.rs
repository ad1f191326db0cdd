//! `echo`: answers a text message with `echo: <content>`; passes on everything else.

use wxhost_sdk::{Message, Outcome, Plugin, Reply};

/// The echo plugin.
pub struct Echo;

impl Plugin for Echo {
    fn handle(msg: &Message) -> wxhost_sdk::Result<Outcome> {
        Ok(match msg.text() {
            Some(text) => Reply::text(format!("echo: {text}")).into(),
            None => Outcome::Pass,
        })
    }
}

wxhost_sdk::export!(Echo);

#[cfg(test)]
mod tests {
    use super::*;
    use wxhost_sdk::testing::{event_message, text_message};

    #[test]
    fn echoes_text() {
        let out = Echo::handle(&text_message("o_user", "你好 ]]>")).expect("handled");
        assert_eq!(out, Reply::text("echo: 你好 ]]>").into());
    }

    #[test]
    fn passes_on_events() {
        let msg = event_message("o_user", wxhost_sdk::Event::Unsubscribe);
        assert_eq!(Echo::handle(&msg), Ok(Outcome::Pass));
    }
}
