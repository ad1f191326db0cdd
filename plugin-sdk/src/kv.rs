//! Key-value data private to this plugin within the current tenant; it outlives the call
//! (an instance, and its statics, may be replaced between any two messages, so state belongs
//! here).
//!
//! The host caps key and value sizes and the writes per call; values may expire after a TTL.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::runtime::host;

/// Why a kv operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The key is longer than the host allows (the limit, in bytes).
    KeyTooLong(u32),
    /// The value is larger than the host allows (the limit, in bytes).
    ValueTooLarge(u32),
    /// This call used up its write quota.
    QuotaExceeded(String),
    /// `increment` found a value that is not a decimal integer.
    NotANumber,
    /// `increment` would overflow.
    Overflow,
    /// The store failed, or a stored JSON value does not have the type asked for.
    Unavailable(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::KeyTooLong(max) => write!(f, "kv key longer than {max} bytes"),
            Error::ValueTooLarge(max) => write!(f, "kv value larger than {max} bytes"),
            Error::QuotaExceeded(why) => write!(f, "kv quota exceeded: {why}"),
            Error::NotANumber => f.write_str("kv value is not a decimal integer"),
            Error::Overflow => f.write_str("kv counter would overflow"),
            Error::Unavailable(why) => write!(f, "kv unavailable: {why}"),
        }
    }
}

impl std::error::Error for Error {}

fn ttl_secs(ttl: Option<Duration>) -> Option<u32> {
    ttl.map(|t| u32::try_from(t.as_secs().max(1)).unwrap_or(u32::MAX))
}

/// The bytes at `key`.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
    host::kv_get(key)
}

/// The UTF-8 text at `key` (invalid UTF-8 is replaced).
pub fn get_string(key: &str) -> Result<Option<String>, Error> {
    Ok(get(key)?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
}

/// The JSON value at `key` as a `T`.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, Error> {
    match get(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Unavailable(format!("`{key}` is not the JSON expected: {e}"))),
    }
}

/// Stores `value` at `key`, expiring after `ttl` (whole seconds, at least one) when given.
pub fn set(key: &str, value: impl AsRef<[u8]>, ttl: Option<Duration>) -> Result<(), Error> {
    host::kv_set(key, value.as_ref(), ttl_secs(ttl))
}

/// Stores `value` as JSON at `key`.
pub fn set_json<T: Serialize>(key: &str, value: &T, ttl: Option<Duration>) -> Result<(), Error> {
    let json = serde_json::to_vec(value).map_err(|e| Error::Unavailable(e.to_string()))?;
    set(key, json, ttl)
}

/// Removes `key`; returns whether it existed.
pub fn delete(key: &str) -> Result<bool, Error> {
    host::kv_delete(key)
}

/// Adds `delta` to the counter at `key` (absent counts as 0) and returns the new value.
pub fn increment(key: &str, delta: i64) -> Result<i64, Error> {
    host::kv_increment(key, delta)
}
