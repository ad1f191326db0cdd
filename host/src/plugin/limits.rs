//! What one plugin call may use: fuel, wall-clock time, memory, tables, instances, and the
//! buffers a guest can make the host allocate (log lines, captured output, kv keys and values).

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// Bytes of stdout and of stderr kept per call (the rest is dropped).
    pub output_bytes: u32,
    /// Bytes of a kv key.
    pub kv_key_bytes: u32,
    /// Bytes of a kv value.
    pub kv_value_bytes: u32,
    /// kv writes (set, delete, increment) per call.
    pub kv_writes: u32,
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
            output_bytes: 16 * 1024,
            kv_key_bytes: 256,
            kv_value_bytes: 64 * 1024,
            kv_writes: 100,
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

    /// Checks the limits are usable; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("fuel", self.fuel),
            ("deadline_ms", self.deadline_ms),
            ("memory_bytes", self.memory_bytes),
            ("table_elements", u64::from(self.table_elements)),
            ("log_line_bytes", u64::from(self.log_line_bytes)),
            ("kv_key_bytes", u64::from(self.kv_key_bytes)),
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
        Ok(())
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
    /// How often the epoch ticker advances, in milliseconds (the precision of deadlines).
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
            epoch_tick_ms: 5,
            max_idle_instances: 64,
        }
    }
}
