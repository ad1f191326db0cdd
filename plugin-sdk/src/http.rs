//! Outbound HTTP (`wasi:http`), allowed only with the `http` capability and only to the hosts
//! the tenant lists in the plugin's `http_hosts`; the host caps the time and the response size.
//!
//! ```no_run
//! let answer = wxhost_sdk::http::get("https://api.example.com/quote?symbol=WX")?;
//! let json: serde_json::Value = answer.json()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::runtime::host;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The host refused it: the `http` capability is not granted, the host is not on the
    /// plugin's `http_hosts`, or this call used up its requests.
    Denied,
    /// The URL is not an absolute `http://` or `https://` URL.
    InvalidUrl(String),
    /// It failed on the way (timeout, connection refused, response too large, …).
    Failed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Denied => f.write_str(
                "HTTP request denied: the host is not on this plugin's http_hosts, or the \
                 `http` capability is not granted, or the call used up its requests",
            ),
            Error::InvalidUrl(url) => write!(f, "not an http(s) URL: {url}"),
            Error::Failed(why) => write!(f, "HTTP request failed: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// A request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// An absolute `http://` or `https://` URL.
    pub url: String,
    /// Headers (the host sets `host`).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// Parts of an absolute URL: (https?, authority, path with query).
pub(crate) fn split_url(url: &str) -> Result<(bool, &str, String), Error> {
    let invalid = || Error::InvalidUrl(url.to_owned());
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(invalid());
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains(['@', ' ']) {
        return Err(invalid());
    }
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    Ok((https, authority, path))
}

/// Sends `request`.
pub fn send(request: &Request) -> Result<Response, Error> {
    split_url(&request.url)?;
    host::http_send(request)
}

/// GETs `url`.
pub fn get(url: &str) -> Result<Response, Error> {
    send(&Request {
        method: "GET".into(),
        url: url.into(),
        headers: Vec::new(),
        body: Vec::new(),
    })
}

/// POSTs `body` as JSON to `url`.
pub fn post_json(url: &str, body: &serde_json::Value) -> Result<Response, Error> {
    send(&Request {
        method: "POST".into(),
        url: url.into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split() {
        assert_eq!(
            split_url("https://a.com/x?y=1"),
            Ok((true, "a.com", "/x?y=1".into()))
        );
        assert_eq!(
            split_url("http://127.0.0.1:9000"),
            Ok((false, "127.0.0.1:9000", "/".into()))
        );
        assert_eq!(
            split_url("http://a.com?q"),
            Ok((false, "a.com", "/?q".into()))
        );
        assert!(split_url("ftp://a.com").is_err() && split_url("https:///x").is_err());
    }
}
