//! This plugin's settings for the current tenant: the `settings` table of its entry in the
//! tenant's plugin chain, read as JSON values.

use serde::de::DeserializeOwned;

use crate::runtime::host;

/// A setting that exists but does not have the type asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    key: Option<String>,
    reason: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(key) => write!(f, "setting `{key}`: {}", self.reason),
            None => write!(f, "settings: {}", self.reason),
        }
    }
}

impl std::error::Error for Error {}

/// The setting `key` as a `T`, or `None` when it is not set.
///
/// ```
/// let host = wxhost_sdk::testing::TestHost::new().setting("max", 10);
/// let _guard = host.install();
/// assert_eq!(wxhost_sdk::config::get::<u32>("max"), Ok(Some(10)));
/// assert_eq!(wxhost_sdk::config::get::<u32>("absent"), Ok(None));
/// assert!(wxhost_sdk::config::get::<String>("max").is_err());
/// ```
pub fn get<T: DeserializeOwned>(key: &str) -> Result<Option<T>, Error> {
    match host::config_get(key) {
        None => Ok(None),
        Some(json) => serde_json::from_str(&json).map(Some).map_err(|e| Error {
            key: Some(key.to_owned()),
            reason: e.to_string(),
        }),
    }
}

/// The setting `key` as raw JSON text.
pub fn get_json(key: &str) -> Option<String> {
    host::config_get(key)
}

/// All settings as a `T` (typically a `#[derive(Deserialize)]` struct).
pub fn get_all<T: DeserializeOwned>() -> Result<T, Error> {
    serde_json::from_str(&host::config_all()).map_err(|e| Error {
        key: None,
        reason: e.to_string(),
    })
}
