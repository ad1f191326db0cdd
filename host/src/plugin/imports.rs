//! The host side of the imports every plugin has, each with its own per-call state and caps:
//! `raw-fields`, `log`, `config` and `kv`. The granted imports live in `capabilities` and
//! `outbound`.

use std::sync::Arc;
use std::time::Duration;

use super::bindings::wxhost::plugin::{config, kv, log, raw_fields, types};
use super::context::{Caller, PushScope};
use super::convert;
use crate::storage;
use crate::wechat::Message;

/// `raw-fields`: the message being handled.
#[derive(Debug)]
pub struct RawFieldsImport {
    message: Arc<Message>,
}

impl RawFieldsImport {
    /// The import for a call on `message`.
    pub fn new(message: Arc<Message>) -> Self {
        RawFieldsImport { message }
    }

    /// The message being handled.
    pub fn message(&self) -> &Arc<Message> {
        &self.message
    }
}

impl raw_fields::Host for RawFieldsImport {
    fn get(&mut self) -> Vec<types::Field> {
        convert::fields(&self.message)
    }
}

/// `log`: lines go to the host's log, tagged with tenant and plugin, at most `log_lines` per
/// call, each cut at `log_line_bytes`.
#[derive(Debug)]
pub struct LogImport {
    caller: Arc<Caller>,
    lines: u32,
    /// Lines dropped past the cap.
    pub dropped: u32,
}

impl LogImport {
    /// The import for one call of `caller`.
    pub fn new(caller: &Arc<Caller>) -> Self {
        LogImport {
            caller: Arc::clone(caller),
            lines: 0,
            dropped: 0,
        }
    }
}

impl log::Host for LogImport {
    fn log(&mut self, level: log::Level, message: String) {
        let limits = self.caller.limits();
        if self.lines >= limits.log_lines {
            self.dropped += 1;
            return;
        }
        self.lines += 1;
        let message = truncate(&message, limits.log_line_bytes as usize);
        let (tenant, plugin) = (self.caller.tenant(), &*self.caller.plugin);
        match level {
            log::Level::Trace => tracing::trace!(tenant, plugin, "{message}"),
            log::Level::Debug => tracing::debug!(tenant, plugin, "{message}"),
            log::Level::Info => tracing::info!(tenant, plugin, "{message}"),
            log::Level::Warn => tracing::warn!(tenant, plugin, "{message}"),
            log::Level::Error => tracing::error!(tenant, plugin, "{message}"),
        }
    }
}

/// `config`: the plugin's settings for its tenant, and nothing else.
#[derive(Debug)]
pub struct ConfigImport {
    caller: Arc<Caller>,
}

impl ConfigImport {
    /// The import for one call of `caller`.
    pub fn new(caller: &Arc<Caller>) -> Self {
        ConfigImport {
            caller: Arc::clone(caller),
        }
    }
}

impl config::Host for ConfigImport {
    fn get(&mut self, key: String) -> Option<String> {
        self.caller.ctx.settings.get(&key).map(|v| v.to_string())
    }

    fn get_all(&mut self) -> String {
        self.caller.ctx.settings_json.to_string()
    }
}

/// `kv`: the plugin's own namespace in its tenant, with key and value size caps and at most
/// `kv_writes` writes per call; each write marks the push, which is then answered only once
/// its writes are durable.
#[derive(Debug)]
pub struct KvImport {
    caller: Arc<Caller>,
    scope: PushScope,
    writes: u32,
}

impl KvImport {
    /// The import for one call of `caller` in the push `scope`.
    pub fn new(caller: &Arc<Caller>, scope: &PushScope) -> Self {
        KvImport {
            caller: Arc::clone(caller),
            scope: scope.clone(),
            writes: 0,
        }
    }

    fn count_write(&mut self) -> Result<(), kv::Error> {
        let max = self.caller.limits().kv_writes;
        if self.writes >= max {
            return Err(kv::Error::QuotaExceeded(format!(
                "at most {max} kv writes per call"
            )));
        }
        self.writes += 1;
        // Marked before the write: a write that fails half-way may still have happened.
        self.scope.mark_kv_written();
        Ok(())
    }

    fn check_key(&self, key: &str) -> Result<(), kv::Error> {
        let max = self.caller.limits().kv_key_bytes;
        if key.len() > max as usize {
            return Err(kv::Error::KeyTooLong(max));
        }
        Ok(())
    }
}

fn kv_error(e: storage::Error) -> kv::Error {
    match e {
        storage::Error::NotANumber => kv::Error::NotANumber,
        storage::Error::Overflow => kv::Error::Overflow,
        storage::Error::Backend(reason) => kv::Error::Unavailable(reason),
    }
}

impl kv::Host for KvImport {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, kv::Error> {
        self.check_key(&key)?;
        let caller = &self.caller;
        caller.ctx.kv.get(&caller.namespace, &key).map_err(kv_error)
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_secs: Option<u32>) -> Result<(), kv::Error> {
        self.check_key(&key)?;
        let max = self.caller.limits().kv_value_bytes;
        if value.len() > max as usize {
            return Err(kv::Error::ValueTooLarge(max));
        }
        self.count_write()?;
        let ttl = ttl_secs.map(|s| Duration::from_secs(u64::from(s)));
        let caller = &self.caller;
        caller
            .ctx
            .kv
            .set(&caller.namespace, &key, &value, ttl)
            .map_err(kv_error)
    }

    fn delete(&mut self, key: String) -> Result<bool, kv::Error> {
        self.check_key(&key)?;
        self.count_write()?;
        let caller = &self.caller;
        caller
            .ctx
            .kv
            .delete(&caller.namespace, &key)
            .map_err(kv_error)
    }

    fn increment(&mut self, key: String, delta: i64) -> Result<i64, kv::Error> {
        self.check_key(&key)?;
        self.count_write()?;
        let caller = &self.caller;
        caller
            .ctx
            .kv
            .increment(&caller.namespace, &key, delta)
            .map_err(kv_error)
    }
}

/// At most `max` bytes of `s`, cut at a character boundary, marked when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
