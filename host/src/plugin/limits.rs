//! What one plugin call may use: fuel, wall-clock time, memory, tables, instances, and the
//! buffers a guest can make the host allocate (log lines, captured output, kv keys and values);
//! the rate of log lines a chain entry may write across its calls ([`TokenBucket`]); and what
//! the plugin's kv namespace may hold over all its calls ([`Limits::kv_quota`]).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::storage::Quota;

/// Per-call limits of a plugin. The defaults suit a chat bot; a tenant's config may override
/// them per plugin (within the runtime's pool sizes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Deterministic CPU budget (wasmtime fuel units, roughly one per instruction).
    pub fuel: u64,
    /// Wall-clock deadline of one call, in milliseconds.
    pub deadline_ms: u64,
    /// Cap of each linear memory, in bytes.
    pub memory_bytes: u64,
    /// Cap of the elements of each table.
    pub table_elements: u32,
    /// Log lines a call may emit (more are dropped and counted).
    pub log_lines: u32,
    /// Bytes of one log line (longer lines are truncated).
    pub log_line_bytes: u32,
    /// Log lines a second the chain entry (one plugin in one tenant's chain) may write across
    /// all its calls and instances, `log` lines and captured stdout/stderr lines alike; more
    /// are dropped and counted.
    pub log_lines_per_sec: u32,
    /// Log lines the chain entry may write at once above that rate, after a quiet spell.
    pub log_lines_burst: u32,
    /// Bytes of stdout and of stderr kept per call (the rest is dropped).
    pub output_bytes: u32,
    /// Bytes of a kv key.
    pub kv_key_bytes: u32,
    /// Bytes of a kv value.
    pub kv_value_bytes: u32,
    /// kv writes (set, delete, increment) per call.
    pub kv_writes: u32,
    /// Live keys the plugin's kv namespace (in its tenant) may hold, over all its calls: a
    /// write adding one more fails with `quota-exceeded`. Expired keys stop counting at their
    /// expiry, deleted ones at once.
    pub kv_max_keys: u64,
    /// Bytes of keys and values the namespace may hold (live entries; an overwrite is charged
    /// the difference).
    pub kv_max_bytes: u64,
    /// WeChat API calls per call (with the `wechat-api` capability).
    pub api_calls: u32,
    /// Outbound HTTP requests per call (with the `http` capability).
    pub http_requests: u32,
    /// Timeout of one outbound HTTP request, in milliseconds (also bounded by the deadline).
    pub http_timeout_ms: u64,
    /// Bytes of one outbound HTTP response body (a larger body fails the request).
    pub http_response_bytes: u64,
    /// Calls one instance may serve, one after another, before it is replaced by a fresh one
    /// (1: every call gets a fresh instance). An instance serves one tenant's chain entry only
    /// and is dropped after any trap, timeout or limit.
    pub calls_per_instance: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 2_000_000_000,
            deadline_ms: 1_000,
            memory_bytes: 32 * 1024 * 1024,
            table_elements: 20_000,
            log_lines: 100,
            log_line_bytes: 4 * 1024,
            log_lines_per_sec: 100,
            log_lines_burst: 200,
            output_bytes: 16 * 1024,
            kv_key_bytes: 256,
            kv_value_bytes: 64 * 1024,
            kv_writes: 100,
            kv_max_keys: 10_000,
            kv_max_bytes: 16 * 1024 * 1024,
            api_calls: 10,
            http_requests: 10,
            http_timeout_ms: 5_000,
            http_response_bytes: 1024 * 1024,
            calls_per_instance: 1_000,
        }
    }
}

impl Limits {
    /// The deadline as a duration.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    /// The outbound HTTP timeout as a duration.
    pub fn http_timeout(&self) -> Duration {
        Duration::from_millis(self.http_timeout_ms)
    }

    /// The kv quota of the plugin's namespace.
    pub fn kv_quota(&self) -> Quota {
        Quota {
            max_keys: self.kv_max_keys,
            max_bytes: self.kv_max_bytes,
        }
    }

    /// Checks the limits are usable; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("fuel", self.fuel),
            ("deadline_ms", self.deadline_ms),
            ("memory_bytes", self.memory_bytes),
            ("table_elements", u64::from(self.table_elements)),
            ("log_line_bytes", u64::from(self.log_line_bytes)),
            ("log_lines_per_sec", u64::from(self.log_lines_per_sec)),
            ("log_lines_burst", u64::from(self.log_lines_burst)),
            ("kv_key_bytes", u64::from(self.kv_key_bytes)),
            ("kv_max_keys", self.kv_max_keys),
            ("http_timeout_ms", self.http_timeout_ms),
            ("calls_per_instance", u64::from(self.calls_per_instance)),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("`{name}` must be greater than 0"));
            }
        }
        if self.memory_bytes < 1024 * 1024 {
            return Err("`memory_bytes` must be at least 1048576 (1 MiB)".into());
        }
        let largest = u64::from(self.kv_key_bytes) + u64::from(self.kv_value_bytes);
        if self.kv_max_bytes < largest {
            return Err(format!(
                "`kv_max_bytes` must be at least `kv_key_bytes` + `kv_value_bytes` ({largest}), \
                 room for one entry of the largest size"
            ));
        }
        Ok(())
    }
}

/// A token bucket: `rate` tokens a second, at most `burst` saved up (it starts full). Shared
/// by threads; each take locks it briefly.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<Tokens>,
}

#[derive(Debug)]
struct Tokens {
    available: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `rate` a second.
    pub fn new(rate: u32, burst: u32) -> Self {
        TokenBucket::new_at(rate, burst, Instant::now())
    }

    fn new_at(rate: u32, burst: u32, now: Instant) -> Self {
        TokenBucket {
            rate: f64::from(rate),
            burst: f64::from(burst),
            state: Mutex::new(Tokens {
                available: f64::from(burst),
                at: now,
            }),
        }
    }

    /// Takes a token now, if there is one.
    pub fn take(&self) -> bool {
        self.take_at(Instant::now())
    }

    /// Takes a token at `now` (a time no earlier than the last take's), if there is one.
    fn take_at(&self, now: Instant) -> bool {
        // A panic while holding the lock leaves a number that is still a number.
        let mut tokens = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(tokens.at).as_secs_f64();
        tokens.available = (tokens.available + elapsed * self.rate).min(self.burst);
        tokens.at = now.max(tokens.at);
        if tokens.available >= 1.0 {
            tokens.available -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Sizes of the runtime shared by every plugin call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeLimits {
    /// Plugin calls that can run at once, shared fairly between tenants by `weight`; more wait
    /// their turn in their tenant's queue.
    pub max_concurrent_calls: u32,
    /// Calls one tenant may have waiting for a slot; more are shed at once.
    pub max_queued_per_tenant: u32,
    /// The largest `memory_bytes` any plugin may be given (sizes the pooled memory slots).
    pub max_memory_bytes: u64,
    /// How often the epoch ticker advances, in milliseconds: the precision of deadlines, and the
    /// longest a CPU-heavy call runs before it gives up its CPU turn (with 5 ms, a quiet
    /// tenant's echo waited 15 ms at the median behind a spinning tenant's flood; with 1 ms,
    /// 2 ms, see BENCHMARKS.md).
    pub epoch_tick_ms: u64,
    /// Instances kept warm between calls, over all tenants and plugins (each holds its linear
    /// memory); 0 gives every call a fresh instance.
    pub max_idle_instances: u32,
}

impl Default for RuntimeLimits {
    fn default() -> Self {
        RuntimeLimits {
            max_concurrent_calls: 64,
            max_queued_per_tenant: 256,
            max_memory_bytes: 64 * 1024 * 1024,
            epoch_tick_ms: 1,
            max_idle_instances: 64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_gives_its_burst_then_its_rate() {
        let start = Instant::now();
        let bucket = TokenBucket::new_at(100, 200, start);
        let taken = (0..1000).filter(|_| bucket.take_at(start)).count();
        assert_eq!(taken, 200, "the burst at once");
        let at = |ms| start + Duration::from_millis(ms);
        assert!(!bucket.take_at(at(5)), "half a token after 5 ms");
        assert!(bucket.take_at(at(10)), "one after 10 ms");
        assert!(!bucket.take_at(at(10)));
        let taken = (0..1000).filter(|_| bucket.take_at(at(1010))).count();
        assert_eq!(taken, 100, "a second later, a second's worth");
        let taken = (0..1000).filter(|_| bucket.take_at(at(60_000))).count();
        assert_eq!(taken, 200, "a long quiet spell saves up the burst, no more");
        // A time earlier than the last take's adds nothing (and takes nothing away).
        assert!(!bucket.take_at(at(1)));
        assert!(bucket.take_at(at(60_010)));
    }

    #[test]
    fn log_rates_must_be_positive() {
        for set in [
            |l: &mut Limits| l.log_lines_per_sec = 0,
            |l: &mut Limits| l.log_lines_burst = 0,
        ] {
            let mut limits = Limits::default();
            set(&mut limits);
            assert!(limits.validate().is_err());
        }
        assert_eq!(Limits::default().validate(), Ok(()));
    }

    #[test]
    fn a_kv_quota_has_room_for_one_key_of_the_largest_entry() {
        let mut limits = Limits::default();
        assert_eq!(
            limits.kv_quota(),
            Quota {
                max_keys: 10_000,
                max_bytes: 16 << 20
            }
        );
        limits.kv_max_keys = 0;
        assert_eq!(
            limits.validate(),
            Err("`kv_max_keys` must be greater than 0".into())
        );
        limits.kv_max_keys = 1;
        limits.kv_max_bytes = 256 + 64 * 1024 - 1;
        assert!(limits.validate().is_err_and(|e| e.contains("kv_max_bytes")));
        limits.kv_max_bytes += 1;
        assert_eq!(limits.validate(), Ok(()));
        limits.kv_value_bytes = 10;
        limits.kv_max_bytes = 266;
        assert_eq!(limits.validate(), Ok(()), "smaller values, smaller quota");
    }
}
