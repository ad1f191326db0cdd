//! `welcome`: greets new followers with a configurable text (naming the QR scene when they
//! came from a parametric QR code) and marks unfollows handled.
//!
//! Settings: `text` (default `欢迎关注！`) and `scene_text`, where `{scene}` is replaced
//! (default: `text` followed by `（来自 {scene}）`).

use wxhost_sdk::{Event, Message, Outcome, Plugin, Reply};

/// The welcome plugin.
pub struct Welcome;

impl Plugin for Welcome {
    fn handle(msg: &Message) -> wxhost_sdk::Result<Outcome> {
        match msg.event() {
            Some(Event::Subscribe { scene, .. }) => {
                let text: String =
                    wxhost_sdk::config::get("text")?.unwrap_or_else(|| "欢迎关注！".into());
                let reply = match scene {
                    Some(scene) => wxhost_sdk::config::get::<String>("scene_text")?
                        .unwrap_or_else(|| format!("{text}（来自 {{scene}}）"))
                        .replace("{scene}", scene),
                    None => text,
                };
                Ok(Reply::text(reply).into())
            }
            Some(Event::Unsubscribe) => Ok(Outcome::Handled),
            _ => Ok(Outcome::Pass),
        }
    }
}

wxhost_sdk::export!(Welcome);

#[cfg(test)]
mod tests {
    use super::*;
    use wxhost_sdk::testing::{TestHost, event_message, text_message};

    fn subscribe(scene: Option<&str>) -> Message {
        event_message(
            "o_user",
            Event::Subscribe {
                scene: scene.map(str::to_owned),
                ticket: None,
            },
        )
    }

    #[test]
    fn default_and_configured_welcome() {
        let _guard = TestHost::new().install();
        assert_eq!(
            Welcome::handle(&subscribe(None)),
            Ok(Reply::text("欢迎关注！").into())
        );
        assert_eq!(
            Welcome::handle(&subscribe(Some("poster"))),
            Ok(Reply::text("欢迎关注！（来自 poster）").into())
        );
        let _guard = TestHost::new()
            .setting("text", "Welcome!")
            .setting("scene_text", "Welcome from {scene}!")
            .install();
        assert_eq!(
            Welcome::handle(&subscribe(None)),
            Ok(Reply::text("Welcome!").into())
        );
        assert_eq!(
            Welcome::handle(&subscribe(Some("shop"))),
            Ok(Reply::text("Welcome from shop!").into())
        );
    }

    #[test]
    fn unsubscribe_is_handled_and_text_passes() {
        let _guard = TestHost::new().install();
        assert_eq!(
            Welcome::handle(&event_message("o", Event::Unsubscribe)),
            Ok(Outcome::Handled)
        );
        assert_eq!(Welcome::handle(&text_message("o", "hi")), Ok(Outcome::Pass));
    }
}
