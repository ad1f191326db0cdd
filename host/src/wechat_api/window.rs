//! The customer-service window: WeChat delivers customer-service messages to a user only
//! within 48 hours of their last interaction (a message, a follow, a scan, a menu click), and
//! only so many per interaction. Each account records its users' last interaction in the
//! store (the host's namespace, shared by every node on Redis) and what it sent since, so a
//! send WeChat would refuse (45015, 45047) is refused before the call with a typed error.
//! A user with no record (not seen since wxhost began serving the account) is let through,
//! and WeChat's own refusals close the record until the user's next interaction.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::storage::{self, KvStore, Namespace};

/// WeChat's window and per-interaction count for an account's customer-service sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceWindow {
    /// How long after a user's last interaction sends reach them (48 hours).
    pub window: Duration,
    /// How many sends one interaction allows.
    pub limit: u32,
}

impl Default for ServiceWindow {
    fn default() -> Self {
        ServiceWindow {
            window: Duration::from_secs(48 * 3600),
            limit: 20,
        }
    }
}

/// How long a user's record is kept: long after the window, so that "closed" is told apart
/// from "never seen".
const RECORD_TTL: Duration = Duration::from_secs(30 * 86_400);

/// WeChat's errcode for a send outside the window (or to a user who unfollowed).
pub const OUTSIDE_WINDOW: i64 = 45015;
/// WeChat's errcode for a send beyond the count one interaction allows.
pub const OVER_LIMIT: i64 = 45047;

/// A user's last interaction and what was sent since.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Interaction {
    /// Seconds since the Unix epoch.
    pub at: i64,
    /// Customer-service messages sent since.
    pub sent: u32,
    /// WeChat refused a send since (45015): nothing reaches the user until they interact.
    pub closed: bool,
}

/// Why a send is refused before the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The window closed (`at` the last interaction).
    Closed { at: i64 },
    /// The interaction's sends are used up.
    UsedUp { limit: u32 },
}

impl ServiceWindow {
    /// Whether a send to a user with `record` may go now.
    pub(super) fn admits(&self, record: Option<Interaction>, now: i64) -> Result<(), Refusal> {
        let Some(record) = record else {
            return Ok(());
        };
        let window = i64::try_from(self.window.as_secs()).unwrap_or(i64::MAX);
        if record.closed || now.saturating_sub(record.at) >= window {
            return Err(Refusal::Closed { at: record.at });
        }
        if record.sent >= self.limit {
            return Err(Refusal::UsedUp { limit: self.limit });
        }
        Ok(())
    }
}

fn key(user: &str) -> String {
    format!("cs:{user}")
}

/// The record of `user` in `ns` (none if absent, unreadable, or the store fails).
pub(super) async fn load(kv: &dyn KvStore, ns: &Namespace, user: &str) -> Option<Interaction> {
    match kv.get(ns, &key(user)).await {
        Ok(bytes) => serde_json::from_slice(&bytes?).ok(),
        Err(e) => {
            tracing::debug!("cannot read the customer-service window of a user: {e}");
            None
        }
    }
}

/// Stores `record` for `user` in `ns` (a failure only logged: the window is advisory).
pub(super) async fn store(kv: &dyn KvStore, ns: &Namespace, user: &str, record: Interaction) {
    if let Err(e) = storage::set_json(kv, ns, &key(user), &record, Some(RECORD_TTL)).await {
        tracing::debug!("cannot record the customer-service window of a user: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_goes_within_the_window_and_the_count_or_to_an_unknown_user() {
        let w = ServiceWindow {
            window: Duration::from_secs(100),
            limit: 2,
        };
        let seen = |at, sent, closed| Some(Interaction { at, sent, closed });
        assert_eq!(w.admits(None, 1_000), Ok(()));
        assert_eq!(w.admits(seen(950, 1, false), 1_000), Ok(()));
        assert_eq!(
            w.admits(seen(900, 0, false), 1_000),
            Err(Refusal::Closed { at: 900 })
        );
        assert_eq!(
            w.admits(seen(990, 0, true), 1_000),
            Err(Refusal::Closed { at: 990 })
        );
        assert_eq!(
            w.admits(seen(990, 2, false), 1_000),
            Err(Refusal::UsedUp { limit: 2 })
        );
    }
}
