//! `guess-number`: a per-user number-guessing game whose state lives in kv.
//!
//! `guess` (or `猜数字`) starts a game with a number from 1 to `max` (setting, default 100);
//! each number then gets "higher"/"lower" until it is found. A game left alone expires after
//! `ttl_secs` (default 600). Other texts pass to the next plugin.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wxhost_sdk::{Message, Outcome, Plugin, Reply};

/// A game in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Game {
    /// The number to find.
    pub target: u32,
    /// Guesses so far.
    pub tries: u32,
}

fn key(msg: &Message) -> String {
    format!("game:{}", msg.from_user())
}

/// A number in 1..=max derived from the message (the sandbox needs no randomness source).
fn pick(msg: &Message, max: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let seed = format!(
        "{}|{}|{:?}",
        msg.from_user(),
        msg.envelope.create_time,
        msg.envelope.msg_id
    );
    for b in seed.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(max.max(1))) as u32 + 1
}

/// The guess-number plugin.
pub struct GuessNumber;

impl Plugin for GuessNumber {
    fn handle(msg: &Message) -> wxhost_sdk::Result<Outcome> {
        let Some(text) = msg.text().map(str::trim) else {
            return Ok(Outcome::Pass);
        };
        let max: u32 = wxhost_sdk::config::get("max")?.unwrap_or(100);
        let ttl = Duration::from_secs(wxhost_sdk::config::get("ttl_secs")?.unwrap_or(600));
        if text.eq_ignore_ascii_case("guess") || text == "猜数字" {
            let game = Game {
                target: pick(msg, max),
                tries: 0,
            };
            wxhost_sdk::kv::set_json(&key(msg), &game, Some(ttl))?;
            return Ok(
                Reply::text(format!("I picked a number from 1 to {max}. Your guess?")).into(),
            );
        }
        let Ok(guess) = text.parse::<u32>() else {
            return Ok(Outcome::Pass);
        };
        let Some(mut game) = wxhost_sdk::kv::get_json::<Game>(&key(msg))? else {
            return Ok(Outcome::Pass); // a number, but no game: not ours
        };
        game.tries += 1;
        let answer = match guess.cmp(&game.target) {
            std::cmp::Ordering::Less => format!("{guess} is too low."),
            std::cmp::Ordering::Greater => format!("{guess} is too high."),
            std::cmp::Ordering::Equal => {
                wxhost_sdk::kv::delete(&key(msg))?;
                return Ok(Reply::text(format!(
                    "{guess} is right! Found in {} tries.",
                    game.tries
                ))
                .into());
            }
        };
        wxhost_sdk::kv::set_json(&key(msg), &game, Some(ttl))?;
        Ok(Reply::text(answer).into())
    }
}

wxhost_sdk::export!(GuessNumber);

#[cfg(test)]
mod tests {
    use super::*;
    use wxhost_sdk::testing::{TestHost, text_message};

    fn say(text: &str) -> String {
        match GuessNumber::handle(&text_message("o_player", text)) {
            Ok(Outcome::Reply(Reply::Text(t))) => t,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn a_game_is_played_to_the_end_by_bisection() {
        let host = TestHost::new().setting("max", 1000);
        let _guard = host.install();
        assert!(say("guess").contains("1 to 1000"));
        assert_eq!(host.kv_ttl("game:o_player"), Some(600));
        let (mut lo, mut hi) = (1, 1000);
        for _ in 0..10 {
            let mid = (lo + hi) / 2;
            let answer = say(&mid.to_string());
            if answer.contains("right") {
                assert!(
                    host.kv_get("game:o_player").is_none(),
                    "finished games are deleted"
                );
                return;
            }
            if answer.contains("low") {
                lo = mid + 1
            } else {
                hi = mid - 1
            }
        }
        let last = say(&lo.to_string());
        assert!(last.contains("right"), "{last}");
    }

    #[test]
    fn numbers_without_a_game_and_other_text_pass() {
        let _guard = TestHost::new().install();
        let msg = text_message("o_player", "42");
        assert_eq!(GuessNumber::handle(&msg), Ok(Outcome::Pass));
        assert_eq!(
            GuessNumber::handle(&text_message("o", "hello")),
            Ok(Outcome::Pass)
        );
    }
}
