//! Certificates and rustls configurations shared by the roles.
//!
//! [`TlsMaterial`] is built from the configuration once per (re)load: it reads certificate
//! files, or generates self-signed ones, and hands each role ready rustls configs. Roles
//! never read PEM files themselves.
//!
//! Self-signed mode creates one appliance CA and issues each named certificate from it, both
//! kept in the store so restarts present the same certificate. The CA (not the leaf) is what
//! a client or a peer edge trusts, which is how loopback demos and tests run mutual TLS.

mod generate;
mod peers;

use std::collections::BTreeMap;
use std::io::BufReader;
use std::sync::Arc;

use edged_config::Config;
use edged_store::Store;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use zeroize::Zeroizing;

pub use generate::{issue_client_certificate, IssuedCertificate};
pub use peers::{
    AllowedPeers, AllowedPeersClientVerifier, AllowedPeersServerVerifier, PeerIdentity,
};
pub use rustls;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key}: {reason}")]
    Certificate { key: String, reason: String },
    #[error("certificate \"{0}\" is not defined")]
    Unknown(String),
    #[error("no trust anchors for {0}: configure tls.{0}_ca_files")]
    NoAnchors(&'static str),
    #[error("TLS configuration failed: {0}")]
    Rustls(String),
    #[error("store: {0}")]
    Store(#[from] edged_store::StoreError),
}

/// Which peers a listener demands a client certificate from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Plain TLS: remote users, meeting clients.
    None,
    /// Mutual TLS with the internal anchors: Directors, conferencing servers, internal pools.
    Internal,
    /// Mutual TLS with the federation anchors.
    Federation,
}

/// One loaded certificate: the chain and key as PEM (for tests and export) and rustls' form.
#[derive(Clone)]
pub struct LoadedCert {
    pub chain_pem: String,
    pub certified: Arc<CertifiedKey>,
    chain: Vec<CertificateDer<'static>>,
    key_der: Arc<PrivateKeyDer<'static>>,
}

/// Every certificate and trust anchor the appliance uses, for one configuration.
#[derive(Clone)]
pub struct TlsMaterial {
    certs: BTreeMap<String, LoadedCert>,
    internal_roots: Arc<RootCertStore>,
    federation_roots: Arc<RootCertStore>,
    /// PEM of the appliance CA, when self-signed certificates are in use.
    ca_pem: Option<String>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("certs", &self.certs.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Installs aws-lc-rs as rustls' process-wide provider; harmless if already installed.
///
/// aws-lc-rs rather than ring: its AES-GCM uses the wide vector units of current x86
/// CPUs (about 15 GB/s against ring's 10 for 16 KiB records on the appliance's class of
/// CPU), and the Web Conferencing Edge decrypts and encrypts every byte twice (client TLS
/// and the internal link's mutual TLS): it moved 9 % more bytes per CPU-second with it.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The crypto provider every TLS configuration of the appliance is built with (see
/// [`install_crypto_provider`] for why it is aws-lc-rs): the one place that chooses it.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl TlsMaterial {
    /// Loads (or generates and stores) every certificate the configuration names.
    pub fn load(config: &Config, store: &Store) -> Result<TlsMaterial, TlsError> {
        let mut certs = BTreeMap::new();
        let mut ca_pem = None;
        for (name, c) in &config.certificates {
            let key = format!("certificates.{name}");
            let (chain_pem, key_pem) = if c.self_signed {
                let mut issued = generate::self_signed(store, name, &c.sans)?;
                ca_pem = Some(issued.ca_pem.clone());
                (
                    std::mem::take(&mut issued.chain_pem),
                    Zeroizing::new(std::mem::take(&mut issued.key_pem)),
                )
            } else {
                let (Some(cf), Some(kf)) = (&c.cert_file, &c.key_file) else {
                    return Err(TlsError::Certificate {
                        key,
                        reason: "cert_file and key_file are required".into(),
                    });
                };
                let read = |p: &std::path::Path, what: &str| {
                    std::fs::read_to_string(p).map_err(|e| TlsError::Certificate {
                        key: format!("{key}.{what}"),
                        reason: format!("cannot read {}: {e}", p.display()),
                    })
                };
                (
                    read(cf, "cert_file")?,
                    Zeroizing::new(read(kf, "key_file")?),
                )
            };
            certs.insert(name.clone(), load_pem(&key, &chain_pem, &key_pem)?);
        }
        let mut internal = RootCertStore::empty();
        let mut federation = RootCertStore::empty();
        for (i, p) in config.tls.internal_ca_files.iter().enumerate() {
            add_anchors(&mut internal, &format!("tls.internal_ca_files[{i}]"), p)?;
        }
        for (i, p) in config.tls.federation_ca_files.iter().enumerate() {
            add_anchors(&mut federation, &format!("tls.federation_ca_files[{i}]"), p)?;
        }
        if config.tls.trust_own_certificates {
            if let Some(ca) = &ca_pem {
                for store in [&mut internal, &mut federation] {
                    add_pem_anchors(store, "tls.trust_own_certificates", ca)?;
                }
            }
        }
        Ok(TlsMaterial {
            certs,
            internal_roots: Arc::new(internal),
            federation_roots: Arc::new(federation),
            ca_pem,
        })
    }

    /// Whether certificate `name` is the same chain and key here as `other_name` in `other`
    /// (a certificate missing in either counts as changed): what tells a reload that
    /// renewed a certificate file from one that re-read the same file.
    pub fn same_certificate(&self, name: &str, other: &TlsMaterial, other_name: &str) -> bool {
        match (self.certs.get(name), other.certs.get(other_name)) {
            (Some(a), Some(b)) => {
                a.chain == b.chain && a.key_der.secret_der() == b.key_der.secret_der()
            }
            _ => false,
        }
    }

    /// Whether the anchors trusted for internal peers are the same here and in `other`.
    pub fn same_internal_anchors(&self, other: &TlsMaterial) -> bool {
        self.internal_roots.roots == other.internal_roots.roots
    }

    /// Whether the anchors trusted for federation peers are the same here and in `other`.
    pub fn same_federation_anchors(&self, other: &TlsMaterial) -> bool {
        self.federation_roots.roots == other.federation_roots.roots
    }

    pub fn cert(&self, name: &str) -> Result<&LoadedCert, TlsError> {
        self.certs
            .get(name)
            .ok_or_else(|| TlsError::Unknown(name.into()))
    }

    /// PEM of the appliance CA that issued the self-signed certificates, if any: what a
    /// demo client passes as its CA file.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    pub fn internal_roots(&self) -> Arc<RootCertStore> {
        self.internal_roots.clone()
    }

    pub fn federation_roots(&self) -> Arc<RootCertStore> {
        self.federation_roots.clone()
    }

    /// A server config presenting certificate `name`, with the given client authentication
    /// and ALPN protocols.
    pub fn server_config(
        &self,
        name: &str,
        auth: ClientAuth,
        alpn: &[&[u8]],
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let verifier = match auth {
            ClientAuth::None => None,
            ClientAuth::Internal => Some(self.anchor_verifier(ClientAuth::Internal, false)?),
            ClientAuth::Federation => Some(self.anchor_verifier(ClientAuth::Federation, false)?),
        };
        self.server_config_with(name, verifier, alpn)
    }

    /// A server config for an internal listener: the client must present a certificate
    /// that chains to the internal anchors *and* matches `peers`.
    pub fn internal_server_config(
        &self,
        name: &str,
        peers: &AllowedPeers,
        alpn: &[&[u8]],
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let verifier = self.internal_client_verifier(peers, false)?;
        self.server_config_with(name, Some(verifier), alpn)
    }

    /// The client-certificate check of an internal listener: the internal anchors, then
    /// `peers`. With `optional`, a client may also send no certificate at all (the REST
    /// endpoint, where an API key is the alternative); one it does send must pass.
    pub fn internal_client_verifier(
        &self,
        peers: &AllowedPeers,
        optional: bool,
    ) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        Ok(Arc::new(AllowedPeersClientVerifier {
            inner: self.anchor_verifier(ClientAuth::Internal, optional)?,
            peers: peers.clone(),
        }))
    }

    /// A client config towards an internal server (a Director): its certificate must chain
    /// to the internal anchors, carry the name dialled *and* match `peers`; presents
    /// certificate `client_cert`.
    pub fn internal_client_config(
        &self,
        client_cert: &str,
        peers: &AllowedPeers,
        alpn: &[&[u8]],
    ) -> Result<Arc<ClientConfig>, TlsError> {
        let inner = WebPkiServerVerifier::builder_with_provider(self.internal_roots(), provider())
            .build()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        let cert = self.cert(client_cert)?;
        let mut cfg = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AllowedPeersServerVerifier {
                inner,
                peers: peers.clone(),
            }))
            .with_client_auth_cert(cert.chain.clone(), cert.key_der.clone_key())
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(cfg))
    }

    /// The stock verifier of the internal or federation anchors.
    fn anchor_verifier(
        &self,
        auth: ClientAuth,
        optional: bool,
    ) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        let (roots, what) = if auth == ClientAuth::Federation {
            (self.federation_roots.clone(), "federation")
        } else {
            (self.internal_roots.clone(), "internal")
        };
        if roots.is_empty() {
            return Err(TlsError::NoAnchors(what));
        }
        let builder = WebPkiClientVerifier::builder_with_provider(roots, provider());
        let builder = if optional {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        builder.build().map_err(|e| TlsError::Rustls(e.to_string()))
    }

    fn server_config_with(
        &self,
        name: &str,
        verifier: Option<Arc<dyn ClientCertVerifier>>,
        alpn: &[&[u8]],
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let cert = self.cert(name)?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        let builder = match verifier {
            None => builder.with_no_client_auth(),
            Some(v) => builder.with_client_cert_verifier(v),
        };
        let mut cfg = builder
            .with_single_cert(cert.chain.clone(), cert.key_der.clone_key())
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(cfg))
    }

    /// A client config trusting `roots`, presenting certificate `name` when given.
    pub fn client_config(
        &self,
        roots: Arc<RootCertStore>,
        client_cert: Option<&str>,
        alpn: &[&[u8]],
    ) -> Result<Arc<ClientConfig>, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?
            .with_root_certificates(roots);
        let mut cfg = match client_cert {
            None => builder.with_no_client_auth(),
            Some(name) => {
                let cert = self.cert(name)?;
                builder
                    .with_client_auth_cert(cert.chain.clone(), cert.key_der.clone_key())
                    .map_err(|e| TlsError::Rustls(e.to_string()))?
            }
        };
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(cfg))
    }
}

/// Parses a PEM chain and key into rustls' forms.
pub fn load_pem(key: &str, chain_pem: &str, key_pem: &str) -> Result<LoadedCert, TlsError> {
    let bad = |reason: String| TlsError::Certificate {
        key: key.to_owned(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut BufReader::new(chain_pem.as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|e| bad(format!("certificate PEM: {e}")))?;
    if chain.is_empty() {
        return Err(bad("the certificate file holds no certificate".into()));
    }
    let key_der = rustls_pemfile::private_key(&mut BufReader::new(key_pem.as_bytes()))
        .map_err(|e| bad(format!("key PEM: {e}")))?
        .ok_or_else(|| bad("the key file holds no private key".into()))?;
    let signing = provider()
        .key_provider
        .load_private_key(key_der.clone_key())
        .map_err(|e| bad(format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(chain.clone(), signing);
    certified
        .keys_match()
        .map_err(|e| bad(format!("the key does not match the certificate: {e}")))?;
    Ok(LoadedCert {
        chain_pem: chain_pem.to_owned(),
        certified: Arc::new(certified),
        chain,
        key_der: Arc::new(key_der),
    })
}

fn add_anchors(
    roots: &mut RootCertStore,
    key: &str,
    path: &std::path::Path,
) -> Result<(), TlsError> {
    let pem = std::fs::read_to_string(path).map_err(|e| TlsError::Certificate {
        key: key.into(),
        reason: format!("cannot read {}: {e}", path.display()),
    })?;
    add_pem_anchors(roots, key, &pem)
}

/// Adds every certificate of a PEM text as a trust anchor.
pub fn add_pem_anchors(roots: &mut RootCertStore, key: &str, pem: &str) -> Result<(), TlsError> {
    let mut n = 0;
    for der in rustls_pemfile::certs(&mut BufReader::new(pem.as_bytes())) {
        let der = der.map_err(|e| TlsError::Certificate {
            key: key.into(),
            reason: format!("PEM: {e}"),
        })?;
        roots.add(der).map_err(|e| TlsError::Certificate {
            key: key.into(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
        n += 1;
    }
    if n == 0 {
        return Err(TlsError::Certificate {
            key: key.into(),
            reason: "holds no certificate".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
