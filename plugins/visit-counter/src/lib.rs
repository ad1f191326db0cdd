//! `visit-counter`: counts each user's text messages in kv and answers `visit #N`. A push that
//! writes kv is answered only once the write is durable, so the count survives a crash.

use wxhost_sdk::{Message, Outcome, Plugin, Reply};

/// The visit counter.
pub struct VisitCounter;

impl Plugin for VisitCounter {
    fn handle(msg: &Message) -> wxhost_sdk::Result<Outcome> {
        if msg.text().is_none() {
            return Ok(Outcome::Pass);
        }
        let visits = wxhost_sdk::kv::increment(&format!("visits:{}", msg.from_user()), 1)?;
        Ok(Reply::text(format!("visit #{visits}")).into())
    }
}

wxhost_sdk::export!(VisitCounter);

#[cfg(test)]
mod tests {
    use super::*;
    use wxhost_sdk::testing::{TestHost, event_message, text_message};

    #[test]
    fn counts_each_users_visits() {
        let host = TestHost::new();
        for n in 1..=3 {
            let out = host.handle::<VisitCounter>(&text_message("o_a", "hi"));
            assert_eq!(out, Ok(Reply::text(format!("visit #{n}")).into()));
        }
        let other = host.handle::<VisitCounter>(&text_message("o_b", "hi"));
        assert_eq!(other, Ok(Reply::text("visit #1").into()));
        assert_eq!(host.kv_get("visits:o_a"), Some(b"3".to_vec()));
    }

    #[test]
    fn passes_on_events() {
        let host = TestHost::new();
        let msg = event_message("o_a", wxhost_sdk::Event::Unsubscribe);
        assert_eq!(host.handle::<VisitCounter>(&msg), Ok(Outcome::Pass));
    }
}
