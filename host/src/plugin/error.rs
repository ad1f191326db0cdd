//! The ways a plugin load or call can fail, each naming the plugin.

use crate::wechat;

/// A plugin failure. The variants are distinct so the server can count and log them apart.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The plugin ran past its wall-clock deadline and was interrupted.
    #[error("plugin `{plugin}` exceeded its {deadline_ms} ms deadline")]
    Timeout {
        /// The plugin.
        plugin: String,
        /// The deadline it had.
        deadline_ms: u64,
    },
    /// The plugin used up its fuel budget.
    #[error("plugin `{plugin}` ran out of fuel ({fuel} units)")]
    OutOfFuel {
        /// The plugin.
        plugin: String,
        /// The budget it had.
        fuel: u64,
    },
    /// The plugin tried to grow a memory or table past its cap.
    #[error("plugin `{plugin}` hit its memory limit ({limit_bytes} bytes)")]
    MemoryLimit {
        /// The plugin.
        plugin: String,
        /// The cap.
        limit_bytes: u64,
    },
    /// The plugin trapped (a panic, an out-of-bounds access, a stack overflow, …).
    #[error("plugin `{plugin}` trapped: {message}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// The trap, and the guest's panic message when it printed one.
        message: String,
    },
    /// The plugin returned an error value from `handle`.
    #[error("plugin `{plugin}` returned an error: {message}")]
    Guest {
        /// The plugin.
        plugin: String,
        /// Its message (truncated to 1 KiB).
        message: String,
    },
    /// The plugin's reply breaks WeChat's rules (too long, too many articles, …).
    #[error("plugin `{plugin}` returned an invalid reply: {source}")]
    InvalidReply {
        /// The plugin.
        plugin: String,
        /// What is wrong with it.
        source: wechat::Error,
    },
    /// The plugin could not be loaded (invalid or incompatible component).
    #[error("plugin `{plugin}` cannot be loaded: {reason}")]
    Load {
        /// The plugin.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// The call got no slot: its tenant's queue was full, or the push's passive budget ran
    /// out while it waited.
    #[error("plugin `{plugin}` was not run: {reason}")]
    Shed {
        /// The plugin.
        plugin: String,
        /// Why.
        reason: &'static str,
    },
    /// The host failed around the call (instantiation, pool exhausted, …).
    #[error("plugin `{plugin}` could not run: {reason}")]
    Host {
        /// The plugin.
        plugin: String,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// A short stable label for metrics (`timeout`, `out_of_fuel`, `trap`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Timeout { .. } => "timeout",
            Error::OutOfFuel { .. } => "out_of_fuel",
            Error::MemoryLimit { .. } => "memory_limit",
            Error::Trap { .. } => "trap",
            Error::Guest { .. } => "guest_error",
            Error::InvalidReply { .. } => "invalid_reply",
            Error::Load { .. } => "load",
            Error::Shed { .. } => "shed",
            Error::Host { .. } => "host",
        }
    }
}
