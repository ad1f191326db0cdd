//! The host side of the imports every plugin has, each with its own per-call state and caps:
//! `raw-fields`, `log`, `config` and `kv`. The granted imports live in `capabilities` and
//! `outbound`.

use std::borrow::Cow;
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
/// call and within the chain entry's rate (its [`LogBudget`](super::context::LogBudget)),
/// each cut at `log_line_bytes` and escaped ([`escape_log_line`]) so that it stays one line
/// of the host's log.
#[derive(Debug)]
pub struct LogImport {
    caller: Arc<Caller>,
    lines: u32,
    /// Lines dropped past the per-call cap.
    pub dropped: u32,
    /// Lines dropped past the entry's rate.
    pub rate_dropped: u32,
}

impl LogImport {
    /// The import for one call of `caller`.
    pub fn new(caller: &Arc<Caller>) -> Self {
        LogImport {
            caller: Arc::clone(caller),
            lines: 0,
            dropped: 0,
            rate_dropped: 0,
        }
    }
}

impl log::Host for LogImport {
    fn log(&mut self, level: log::Level, message: String) {
        let limits = self.caller.limits();
        let budget = &self.caller.ctx.log;
        if self.lines >= limits.log_lines {
            self.dropped += 1;
            budget.dropped_past_cap(1);
            return;
        }
        self.lines += 1;
        if !budget.admit() {
            self.rate_dropped += 1;
            return;
        }
        let message = truncate(&message, limits.log_line_bytes as usize);
        let message = escape_log_line(&message);
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

/// `kv`: the plugin's own namespace in its tenant, with key and value size caps, at most
/// `kv_writes` writes per call, and the namespace's quota over all calls (`kv_max_keys`,
/// `kv_max_bytes`, checked by the store atomically with the write; past it, `quota-exceeded`
/// naming the limit); each write marks the push, which is then answered only once its writes
/// are durable.
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
        e @ storage::Error::QuotaExceeded { .. } => kv::Error::QuotaExceeded(e.to_string()),
        storage::Error::Backend(reason) => kv::Error::Unavailable(reason),
    }
}

impl kv::Host for KvImport {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, kv::Error> {
        self.check_key(&key)?;
        let caller = &self.caller;
        caller
            .ctx
            .kv
            .get(&caller.namespace, &key)
            .await
            .map_err(kv_error)
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_secs: Option<u32>,
    ) -> Result<(), kv::Error> {
        self.check_key(&key)?;
        let max = self.caller.limits().kv_value_bytes;
        if value.len() > max as usize {
            return Err(kv::Error::ValueTooLarge(max));
        }
        self.count_write()?;
        let ttl = ttl_secs.map(|s| Duration::from_secs(u64::from(s)));
        let caller = &self.caller;
        let quota = caller.limits().kv_quota();
        caller
            .ctx
            .kv
            .set_within(&caller.namespace, &key, &value, ttl, quota)
            .await
            .map_err(kv_error)
    }

    async fn delete(&mut self, key: String) -> Result<bool, kv::Error> {
        self.check_key(&key)?;
        self.count_write()?;
        let caller = &self.caller;
        caller
            .ctx
            .kv
            .delete(&caller.namespace, &key)
            .await
            .map_err(kv_error)
    }

    async fn increment(&mut self, key: String, delta: i64) -> Result<i64, kv::Error> {
        self.check_key(&key)?;
        self.count_write()?;
        let caller = &self.caller;
        let quota = caller.limits().kv_quota();
        caller
            .ctx
            .kv
            .increment_within(&caller.namespace, &key, delta, quota)
            .await
            .map_err(kv_error)
    }
}

/// `line` as one line of the host's log: newline, carriage return and tab as `\n`, `\r`,
/// `\t`, every other control character (C0, DEL, C1) and the characters that break or
/// reorder a line on display (U+2028, U+2029, the bidirectional overrides and isolates) as
/// `\u{…}`. Backslashes stay as they are: the escapes keep a plugin from writing what looks
/// like another line of the log (every line it writes carries its tenant and plugin), they
/// are not meant to be decoded.
pub fn escape_log_line(line: &str) -> Cow<'_, str> {
    fn escaped(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !line.chars().any(escaped) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 16);
    for c in line.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if escaped(c) => {
                use std::fmt::Write as _;
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::plugin::context::CallContext;
    use crate::plugin::limits::Limits;
    use crate::storage::MemoryKv;

    #[test]
    fn control_characters_and_line_breaks_are_escaped() {
        for (line, expected) in [
            ("a\nb\rc\td", r"a\nb\rc\td"),
            ("\u{1b}[31mred\u{1b}[0m", r"\u{1b}[31mred\u{1b}[0m"),
            (
                "nul\u{0} bell\u{7} del\u{7f} nel\u{85}",
                r"nul\u{0} bell\u{7} del\u{7f} nel\u{85}",
            ),
            ("line\u{2028}para\u{2029}", r"line\u{2028}para\u{2029}"),
            ("\u{202e}txt.exe\u{2066}", r"\u{202e}txt.exe\u{2066}"),
        ] {
            assert_eq!(escape_log_line(line), expected, "{line:?}");
        }
        for kept in ["plain", r"a \n written out, a \ alone", "中文 😀 <&>", ""] {
            assert!(matches!(escape_log_line(kept), Cow::Borrowed(s) if s == kept));
        }
    }

    /// What a subscriber wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Written {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_plugins_log_lines_are_escaped_capped_per_call_and_rate_limited_across_calls() {
        let limits = Limits {
            log_lines: 3,
            log_lines_per_sec: 1,
            log_lines_burst: 2,
            ..Limits::default()
        };
        let ctx = CallContext::new(
            "shop",
            Default::default(),
            Arc::new(MemoryKv::default()),
            limits,
        );
        let caller = Caller::new("echo".into(), ctx.clone());
        let written = Written::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer({
                let written = written.clone();
                move || written.clone()
            })
            .finish();
        let (first, second) = tracing::subscriber::with_default(subscriber, || {
            let mut first = LogImport::new(&caller);
            for i in 0..5 {
                log::Host::log(
                    &mut first,
                    log::Level::Warn,
                    format!("line {i}\nERROR forged\r\u{1b}[31m"),
                );
            }
            // The next call of the same entry (another instance, even) finds the budget spent.
            let mut second = LogImport::new(&Caller::new("echo".into(), ctx.clone()));
            log::Host::log(&mut second, log::Level::Info, "later".into());
            (first, second)
        });
        let written =
            String::from_utf8(written.0.lock().expect("unpoisoned").clone()).expect("UTF-8 log");
        assert_eq!(
            written.lines().count(),
            2,
            "two lines written, each one line:\n{written}"
        );
        assert!(
            written.contains(r"line 0\nERROR forged\r\u{1b}[31m"),
            "{written}"
        );
        assert!(
            written.contains("line 1") && !written.contains("line 2"),
            "{written}"
        );
        assert!(
            written.contains("tenant=\"shop\"") || written.contains("tenant=shop"),
            "{written}"
        );
        assert!(
            !written.contains('\u{1b}') && !written.contains('\r'),
            "{written}"
        );
        assert_eq!(
            (first.dropped, first.rate_dropped),
            (2, 1),
            "2 past the cap, 1 past the rate"
        );
        assert_eq!((second.dropped, second.rate_dropped), (0, 1));
        assert_eq!(ctx.log.dropped(), (2, 2), "the entry's counters");
    }
}
