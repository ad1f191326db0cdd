//! The error type plugin code returns: any error converts into it with `?`.

use std::fmt;

/// An error from a plugin's `handle`; the host logs its message and moves to the next plugin.
///
/// Any `std::error::Error` converts into it, so `?` works on kv, config and parsing errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    /// An error with this message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Error(message.to_string())
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(e: E) -> Self {
        Error(e.to_string())
    }
}

/// Result with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;
