//! The rustls server configurations of the two listeners.

use std::sync::Arc;

use edged_config::Config;
use edged_tls::{ClientAuth, TlsError, TlsMaterial};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// SIP SERVICE: mutual TLS, the peer must present a certificate from the internal anchors.
pub fn sip(config: &Config, tls: &TlsMaterial) -> Result<Arc<ServerConfig>, TlsError> {
    tls.server_config(&config.av_auth.certificate, ClientAuth::Internal, &[])
}

#[derive(Debug)]
struct OneCert(Arc<CertifiedKey>);

impl ResolvesServerCert for OneCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// REST: a client certificate from the internal anchors is optional (the alternative is an
/// API key), so web applications without certificates can still call it.
pub fn rest(config: &Config, tls: &TlsMaterial) -> Result<Arc<ServerConfig>, TlsError> {
    let cert = tls.cert(&config.av_auth.certificate)?;
    let provider = edged_tls::provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let roots = tls.internal_roots();
    let builder = if roots.is_empty() {
        builder.with_no_client_auth()
    } else {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut cfg = builder.with_cert_resolver(Arc::new(OneCert(cert.certified.clone())));
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
