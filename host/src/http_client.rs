//! Outbound HTTP clients: reqwest over rustls with the `ring` provider and the platform's root
//! certificates, redirects never followed. The WeChat API client uses [`builder`] as it is (its
//! base URL is operator config); plugins' clients ([`PluginClients`]) connect only to the
//! addresses their [`AddressPolicy`] allows, checked on the addresses DNS answered, use no proxy,
//! and never share a connection pool with a client of another policy.

pub mod address;

use std::net::SocketAddr;
use std::sync::Arc;

pub use address::{AddressPolicy, AddressRange, Refused};

/// A client builder with TLS ready; the caller sets timeouts.
pub fn builder() -> reqwest::ClientBuilder {
    // Installing fails only when a provider is already installed, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("wxhost/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
}

/// The clients of plugins' outbound HTTP: one shared by every plugin allowed public addresses
/// only, and one of its own for each grant of non-public ranges (a pooled connection made
/// under one policy must never serve a request under another).
#[derive(Debug, Clone)]
pub struct PluginClients {
    public: reqwest::Client,
}

impl PluginClients {
    /// The shared public-only client.
    pub fn new() -> reqwest::Result<Self> {
        Ok(PluginClients {
            public: plugin_client(AddressPolicy::default())?,
        })
    }

    /// A client that connects only where `policy` allows.
    pub fn client(&self, policy: &AddressPolicy) -> reqwest::Result<reqwest::Client> {
        if policy.is_public_only() {
            Ok(self.public.clone())
        } else {
            plugin_client(policy.clone())
        }
    }
}

/// A client resolving names through [`GuardedResolver`], with no proxy (a proxy would make the
/// connection, out of the policy's sight) and no redirects. IP-literal URLs skip DNS: check them
/// with the policy before sending.
fn plugin_client(policy: AddressPolicy) -> reqwest::Result<reqwest::Client> {
    builder()
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .build()
}

/// Resolves a name and answers only the addresses its policy allows, so the client connects
/// to nothing else, whatever the name resolves to at that moment (DNS rebinding included); a
/// name with no allowed address fails with [`Refused`] as the error's source.
#[derive(Debug)]
struct GuardedResolver {
    policy: AddressPolicy,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let (allowed, refused) = filter(&policy, found);
            match (allowed.is_empty(), refused) {
                (true, Some(refused)) => {
                    Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>)
                }
                _ => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

/// The addresses of `found` that `policy` allows, and the first refusal.
fn filter(
    policy: &AddressPolicy,
    found: impl Iterator<Item = SocketAddr>,
) -> (Vec<SocketAddr>, Option<Refused>) {
    let mut refused = None;
    let allowed = found
        .filter(|addr| match policy.check(addr.ip()) {
            Ok(()) => true,
            Err(why) => {
                refused.get_or_insert(why);
                false
            }
        })
        .collect();
    (allowed, refused)
}

/// The refusal in `error`'s chain of sources, if a policy refused the connection.
pub fn refusal<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused);
        }
        source = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resolver_keeps_only_allowed_addresses() {
        let addrs = ["127.0.0.1:0", "93.184.216.34:0", "[::1]:0", "10.0.0.1:0"]
            .map(|a| a.parse::<SocketAddr>().expect("address"));
        let (allowed, refused) = filter(&AddressPolicy::default(), addrs.into_iter());
        assert_eq!(allowed, [addrs[1]]);
        assert_eq!(refused.map(|r| r.kind), Some("loopback"));
        let loopback = AddressPolicy::new(vec!["127.0.0.1".parse().expect("range")]);
        let (allowed, _) = filter(&loopback, addrs.into_iter());
        assert_eq!(allowed, [addrs[0], addrs[1]]);
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_unless_granted() {
        use reqwest::dns::Resolve;
        let name = |n: &str| n.parse::<reqwest::dns::Name>().expect("name");
        let guarded = GuardedResolver {
            policy: AddressPolicy::default(),
        };
        let error = match guarded.resolve(name("localhost")).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        assert_eq!(refusal(error.as_ref()).map(|r| r.kind), Some("loopback"));
        let granted = GuardedResolver {
            policy: AddressPolicy::new(vec![
                "127.0.0.0/8".parse().expect("range"),
                "::1".parse().expect("range"),
            ]),
        };
        let addrs: Vec<_> = granted
            .resolve(name("localhost"))
            .await
            .expect("resolves")
            .collect();
        assert!(
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()),
            "{addrs:?}"
        );
    }
}
