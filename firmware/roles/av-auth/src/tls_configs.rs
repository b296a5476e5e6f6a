//! The rustls server configurations of the two listeners.

use std::sync::Arc;

use edged_config::parse_peers;
use edged_config::Config;
use edged_tls::{AllowedPeers, TlsError, TlsMaterial};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// The clients that may present a certificate (`av_auth.allowed_clients`).
fn allowed_clients(config: &Config) -> AllowedPeers {
    AllowedPeers::new(
        "av_auth.allowed_clients",
        parse_peers(&config.av_auth.allowed_clients),
    )
}

/// SIP SERVICE: mutual TLS, the peer must present a certificate from the internal anchors
/// that `av_auth.allowed_clients` lists.
pub fn sip(config: &Config, tls: &TlsMaterial) -> Result<Arc<ServerConfig>, TlsError> {
    tls.internal_server_config(&config.av_auth.certificate, &allowed_clients(config), &[])
}

#[derive(Debug)]
struct OneCert(Arc<CertifiedKey>);

impl ResolvesServerCert for OneCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// REST: a client certificate is optional (the alternative is an API key), so web
/// applications without certificates can still call it; one that is sent must chain to the
/// internal anchors and be listed in `av_auth.allowed_clients`.
pub fn rest(config: &Config, tls: &TlsMaterial) -> Result<Arc<ServerConfig>, TlsError> {
    let cert = tls.cert(&config.av_auth.certificate)?;
    let provider = edged_tls::provider();
    let builder = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let roots = tls.internal_roots();
    let builder = if roots.is_empty() {
        builder.with_no_client_auth()
    } else {
        builder.with_client_cert_verifier(
            tls.internal_client_verifier(&allowed_clients(config), true)?,
        )
    };
    let mut cfg = builder.with_cert_resolver(Arc::new(OneCert(cert.certified.clone())));
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
