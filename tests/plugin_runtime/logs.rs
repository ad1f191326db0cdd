//! A plugin's log lines as the host writes them: one line each however the plugin tries to
//! break them (escaped), at most `log_lines` per call, and within the chain entry's rate across
//! its calls and instances, the dropped ones counted by reason.

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::json;
use wxhost::plugin::{CallContext, Limits, PushScope, WarmInstances};
use wxhost::storage::MemoryKv;
use wxhost::telemetry::Metrics;
use wxhost_tests::plugins;

use super::{context, load, reply_text, runtime, text};

/// What a subscriber wrote, shared with the test.
#[derive(Clone, Default)]
struct Written(Arc<Mutex<Vec<u8>>>);

impl Written {
    fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8(bytes.clone()).expect("the log is UTF-8")
    }
}

impl std::io::Write for Written {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A subscriber writing everything to `written`, for this thread while the guard lives (the
/// tests run on a current-thread runtime, so the calls log here).
fn capture(written: &Written) -> tracing::subscriber::DefaultGuard {
    let written = written.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || written.clone())
        .finish();
    tracing::subscriber::set_default(subscriber)
}

fn flood_context(per_sec: u32, burst: u32) -> CallContext {
    context(
        "demo",
        json!({}),
        Arc::new(MemoryKv::default()),
        Limits {
            log_lines: 100,
            log_lines_per_sec: per_sec,
            log_lines_burst: burst,
            ..Limits::default()
        },
    )
}

/// The plugin's lines in `log` (the lines that carry its name and are not the host's note).
fn plugin_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("log-flood") && !l.contains("dropped"))
        .collect()
}

#[tokio::test]
async fn log_lines_are_one_line_each_escaped() {
    let rt = runtime();
    let plugin = load(&rt, "log-flood", plugins::LOG_FLOOD);
    let written = Written::default();
    let _guard = capture(&written);
    for command in ["log 3", "print 3"] {
        let ctx = flood_context(100, 200);
        let answer = reply_text(rt.call(&plugin, &ctx, &text("o", command)).await.result);
        assert_eq!(answer, "sent 3");
    }
    let log = written.text();
    let lines = plugin_lines(&log);
    // Three `log` lines; three printed ones, each printed line two lines of stdout (split at
    // its newline, as a terminal shows it), the carriage return and the escape shown escaped.
    assert_eq!(lines.len(), 3 + 6, "{log}");
    for i in 0..3 {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!(r"flood {i}\nERROR forged line\r\u{{1b}}[31mred"))),
            "log line {i} escaped: {log}"
        );
    }
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains(r": ERROR forged line\r\u{1b}[31mred plugin="))
            .count(),
        3,
        "{log}"
    );
    assert!(!log.contains('\u{1b}') && !log.contains('\r'), "{log}");
    assert!(
        lines.iter().all(|l| l.contains("demo")),
        "each carries its tenant: {log}"
    );
}

#[tokio::test]
async fn a_log_flood_is_capped_per_call_and_rate_limited_across_calls_and_instances() {
    let rt = runtime();
    let plugin = load(&rt, "log-flood", plugins::LOG_FLOOD);
    let metrics = Metrics::default();
    // 1 line a second after a burst of 20: the test's calls take far less than a second, so
    // at most a line or two come back while they run.
    let ctx = flood_context(1, 20).with_log_drops(metrics.log_drops("demo", "log-flood"));
    let warm = WarmInstances::default();
    let written = Written::default();
    let _guard = capture(&written);
    let msg = Arc::new(text("o", "log 150"));
    for call in 0..5 {
        // Warm calls share an instance; the others get fresh ones: all draw on one budget.
        let report = if call % 2 == 0 {
            rt.call_with(&plugin, &ctx, Some(&warm), &msg, &PushScope::default())
                .await
        } else {
            rt.call(&plugin, &ctx, &msg).await
        };
        assert_eq!(reply_text(report.result), "sent 150");
    }
    let (past_cap, past_rate) = ctx.log.dropped();
    assert_eq!(
        past_cap,
        5 * 50,
        "100 lines a call are considered, 50 are past the cap"
    );
    let written_lines = plugin_lines(&written.text()).len() as u64;
    assert_eq!(past_rate + written_lines, 5 * 100);
    assert!(
        (20..=22).contains(&written_lines),
        "the burst, and hardly more: {written_lines}"
    );
    let exported = metrics.encode();
    for line in [
        format!(
            r#"wxhost_plugin_log_lines_dropped_total{{tenant="demo",plugin="log-flood",reason="per_call_cap"}} {past_cap}"#
        ),
        format!(
            r#"wxhost_plugin_log_lines_dropped_total{{tenant="demo",plugin="log-flood",reason="rate"}} {past_rate}"#
        ),
    ] {
        assert!(exported.contains(&line), "{line} in\n{exported}");
    }
    // The host notes what it dropped, not once per call.
    let notes = written
        .text()
        .lines()
        .filter(|l| l.contains("plugin output over its caps was dropped"))
        .count();
    assert!((1..=2).contains(&notes), "{notes} notes");

    // Another chain entry has a budget of its own; printed lines draw on it too.
    let other = flood_context(1, 20);
    let answer = reply_text(
        rt.call(&plugin, &other, &text("o", "print 150"))
            .await
            .result,
    );
    assert_eq!(answer, "sent 150");
    let (past_cap, past_rate) = other.log.dropped();
    assert_eq!(
        past_cap, 0,
        "printed lines have no per-call cap but the output cap"
    );
    assert!(
        (278..=280).contains(&past_rate),
        "300 lines of stdout, 20 written: {past_rate}"
    );
}

#[tokio::test]
async fn a_plugins_error_and_panic_messages_stay_one_line() {
    let rt = runtime();
    let plugin = load(&rt, "log-flood", plugins::LOG_FLOOD);
    let ctx = flood_context(100, 200);
    let err = rt
        .call(&plugin, &ctx, &text("o", "fail"))
        .await
        .result
        .expect_err("fails");
    assert_eq!(
        err.to_string(),
        r"plugin `log-flood` returned an error: failing\nERROR forged line\r\u{1b}[31mred"
    );
    let err = rt
        .call(&plugin, &ctx, &text("o", "panic"))
        .await
        .result
        .expect_err("panics");
    let message = err.to_string();
    assert!(
        message.contains(r"panicking\nERROR forged line\r\u{1b}[31mred"),
        "{message}"
    );
    assert!(
        !message.contains(['\n', '\r', '\u{1b}']),
        "the error is logged as one line: {message:?}"
    );
}
