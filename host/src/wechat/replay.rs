//! The replay guard: a push whose timestamp is too far from now is refused, so a captured push
//! cannot be replayed later.

use super::error::{Error, Result};

/// How far a push's `timestamp` may be from the host's clock, in seconds; 0 disables the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampWindow {
    secs: u64,
}

impl TimestampWindow {
    /// The default window: five minutes either way.
    pub const DEFAULT_SECS: u64 = 300;

    /// A window of `secs` seconds either way; 0 disables the check.
    pub const fn new(secs: u64) -> Self {
        TimestampWindow { secs }
    }

    /// No check at all.
    pub const fn disabled() -> Self {
        TimestampWindow { secs: 0 }
    }

    /// The window in seconds (0 when disabled).
    pub const fn secs(self) -> u64 {
        self.secs
    }

    /// For how many more seconds after `now` the window accepts a push stamped `timestamp`
    /// (0 when the window is disabled, or the timestamp is not a number).
    pub fn remaining_secs(self, timestamp: &str, now: i64) -> u64 {
        match timestamp.parse::<i64>() {
            Ok(sent) if self.secs > 0 => {
                u64::try_from(sent.saturating_add_unsigned(self.secs).saturating_sub(now))
                    .unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// Checks the push's `timestamp` parameter against `now` (seconds since the Unix epoch).
    pub fn check(self, timestamp: &str, now: i64) -> Result<()> {
        if self.secs == 0 {
            return Ok(());
        }
        let sent: i64 = match timestamp.parse() {
            Ok(t) if timestamp.bytes().all(|b| b.is_ascii_digit()) => t,
            _ => {
                return Err(Error::InvalidTimestamp(
                    timestamp.chars().take(32).collect(),
                ));
            }
        };
        let skew_secs = sent.abs_diff(now);
        if skew_secs > self.secs {
            return Err(Error::StaleTimestamp {
                skew_secs,
                window_secs: self.secs,
            });
        }
        Ok(())
    }
}

impl Default for TimestampWindow {
    fn default() -> Self {
        TimestampWindow::new(Self::DEFAULT_SECS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn accepts_timestamps_inside_the_window_either_way() {
        let w = TimestampWindow::default();
        assert_eq!(w.check("1700000000", NOW), Ok(()));
        assert_eq!(w.check("1699999700", NOW), Ok(()));
        assert_eq!(w.check("1700000300", NOW), Ok(()));
    }

    #[test]
    fn rejects_stale_and_future_timestamps() {
        let w = TimestampWindow::default();
        assert_eq!(
            w.check("1699999699", NOW),
            Err(Error::StaleTimestamp {
                skew_secs: 301,
                window_secs: 300
            })
        );
        assert!(matches!(
            w.check("1700000301", NOW),
            Err(Error::StaleTimestamp { skew_secs: 301, .. })
        ));
        // Milliseconds are not seconds.
        assert!(matches!(
            w.check("1700000000000", NOW),
            Err(Error::StaleTimestamp { .. })
        ));
    }

    #[test]
    fn rejects_non_numeric_timestamps() {
        let w = TimestampWindow::new(10);
        for bad in [
            "",
            "-1",
            "+1700000000",
            "17e8",
            "1700000000 ",
            "99999999999999999999",
        ] {
            assert!(
                matches!(w.check(bad, NOW), Err(Error::InvalidTimestamp(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn zero_disables_the_check() {
        assert_eq!(TimestampWindow::new(0).check("1", NOW), Ok(()));
        assert_eq!(TimestampWindow::disabled().check("garbage", NOW), Ok(()));
    }
}
