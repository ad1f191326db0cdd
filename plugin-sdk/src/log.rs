//! Log lines, written by the host with the tenant and plugin name.
//!
//! The host caps the lines per call and the length of a line; past the cap lines are dropped.

use crate::runtime::host;

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the plugin handled.
    Warn,
    /// Something failed.
    Error,
}

/// Writes `message` at `level`.
pub fn log(level: Level, message: &str) {
    host::log(level, message);
}

/// Writes `message` at trace level.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Writes `message` at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Writes `message` at info level.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Writes `message` at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Writes `message` at error level.
pub fn error(message: &str) {
    log(Level::Error, message);
}
