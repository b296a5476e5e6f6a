//! rustls client configurations from PEM files.

use std::io::BufReader;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("{what}: {reason}")]
    Bad { what: String, reason: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn bad(what: &str, reason: impl ToString) -> PemError {
    PemError::Bad {
        what: what.into(),
        reason: reason.to_string(),
    }
}

pub fn certs(what: &str, pem: &str) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let v: Vec<_> = rustls_pemfile::certs(&mut BufReader::new(pem.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|e| bad(what, e))?;
    if v.is_empty() {
        return Err(bad(what, "holds no certificate"));
    }
    Ok(v)
}

pub fn key(what: &str, pem: &str) -> Result<PrivateKeyDer<'static>, PemError> {
    rustls_pemfile::private_key(&mut BufReader::new(pem.as_bytes()))
        .map_err(|e| bad(what, e))?
        .ok_or_else(|| bad(what, "holds no private key"))
}

pub fn roots(what: &str, ca_pem: &str) -> Result<RootCertStore, PemError> {
    let mut r = RootCertStore::empty();
    for c in certs(what, ca_pem)? {
        r.add(c).map_err(|e| bad(what, e))?;
    }
    Ok(r)
}

/// A client config trusting `ca_pem`, offering `alpn`, presenting a certificate if given.
pub fn client_config(
    ca_pem: &str,
    client_cert: Option<(&str, &str)>,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, PemError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots("CA", ca_pem)?);
    let mut cfg = match client_cert {
        None => builder.with_no_client_auth(),
        Some((chain, k)) => {
            builder.with_client_auth_cert(certs("certificate", chain)?, key("key", k)?)?
        }
    };
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Ok(Arc::new(cfg))
}
