//! Outbound HTTP clients (WeChat API, plugin requests): reqwest over rustls with the `ring`
//! provider and the platform's root certificates.

/// A client builder with TLS ready; the caller sets timeouts.
pub fn builder() -> reqwest::ClientBuilder {
    // Installing fails only when a provider is already installed, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("wxhost/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
}
