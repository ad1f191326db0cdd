//! The hosts a plugin may reach with outbound HTTP, as written in the tenant config:
//! `api.example.com` (its default ports), `api.example.com:8443` (that port only) and
//! `*.example.com` (any subdomain, not the domain itself). Which addresses the connection may
//! then go to is the grant's `AddressPolicy` (`http_client::address`), checked after DNS.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One allowed host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// The host, lowercase; for a wildcard, the suffix after `*.`.
    host: String,
    wildcard: bool,
    port: Option<u16>,
}

impl HostPattern {
    /// Whether a request to `host` (any case) on `port` is allowed; `default_port` is the
    /// scheme's default (80 or 443), the only port a pattern without a port allows.
    pub fn allows(&self, host: &str, port: u16, default_port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let host_ok = if self.wildcard {
            host.strip_suffix(&self.host)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.'))
        } else {
            host == self.host
        };
        host_ok && port == self.port.unwrap_or(default_port)
    }

    /// The address, when the pattern is an IP literal (`127.0.0.1:9000`, `[::1]`).
    pub fn ip(&self) -> Option<IpAddr> {
        if self.wildcard {
            return None;
        }
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        host.parse().ok()
    }
}

impl FromStr for HostPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| format!("{text:?} is not a host pattern: {why}");
        let lower = text.trim().to_ascii_lowercase();
        if lower.contains("://") || lower.contains('/') {
            return Err(bad("give the host only, without scheme or path"));
        }
        let (host, port) = match lower.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad("the port must be 1..=65535"))?;
                (host.to_owned(), Some(port))
            }
            _ => (lower, None),
        };
        let (host, wildcard) = match host.strip_prefix("*.") {
            Some(rest) => (rest.to_owned(), true),
            None => (host, false),
        };
        let is_ipv6 = host.starts_with('[') && host.ends_with(']') && !wildcard;
        let valid = is_ipv6
            || (!host.is_empty()
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                }));
        if !valid {
            return Err(bad(
                "use letters, digits, `-` and `.`, optionally `*.` first and `:port` last",
            ));
        }
        Ok(HostPattern {
            host,
            wildcard,
            port,
        })
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> HostPattern {
        text.parse().expect("valid pattern")
    }

    #[test]
    fn exact_hosts_allow_their_default_port_only() {
        let p = pattern("API.Example.com");
        assert!(p.allows("api.example.com", 443, 443));
        assert!(p.allows("api.EXAMPLE.com.", 80, 80));
        assert!(!p.allows("api.example.com", 8443, 443));
        assert!(!p.allows("evil.com", 443, 443));
        assert!(!p.allows("api.example.com.evil.com", 443, 443));
    }

    #[test]
    fn ports_and_wildcards() {
        let p = pattern("127.0.0.1:9000");
        assert!(p.allows("127.0.0.1", 9000, 80) && !p.allows("127.0.0.1", 80, 80));
        let w = pattern("*.example.com");
        assert!(w.allows("a.example.com", 443, 443) && w.allows("a.b.example.com", 443, 443));
        assert!(!w.allows("example.com", 443, 443) && !w.allows("badexample.com", 443, 443));
        assert!(pattern("[::1]:8080").allows("[::1]", 8080, 80));
        assert_eq!(pattern("*.x.org:81").to_string(), "*.x.org:81");
        assert_eq!(pattern("127.0.0.1:9000").ip(), Some([127, 0, 0, 1].into()));
        assert_eq!(
            pattern("[::1]:8080").ip(),
            Some(std::net::Ipv6Addr::LOCALHOST.into())
        );
        assert_eq!(pattern("localhost").ip(), None);
        assert_eq!(pattern("*.example.com").ip(), None);
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            "",
            "https://x.com",
            "x.com/path",
            "x.com:0",
            "x.com:99999",
            "a..b",
            "*",
            "x y",
        ] {
            assert!(bad.parse::<HostPattern>().is_err(), "{bad:?}");
        }
    }
}
