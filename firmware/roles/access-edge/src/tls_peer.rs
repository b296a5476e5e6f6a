//! TLS configurations and certificate checks specific to the Access Edge.
//!
//! Federation partners present certificates issued for servers: since public CAs stopped
//! issuing the clientAuth EKU, the federation listener verifies a partner's chain for the
//! *server-authentication* purpose (and still accepts a clientAuth-only chain), then the
//! proxy matches the certificate's names against the domain the partner claims. Outgoing
//! connections to partners accept a certificate naming either the partner domain or the
//! edge host we were told to contact.

use std::sync::Arc;

use edged_tls::TlsMaterial;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::SingleCertAndKey;
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use x509_parser::extensions::GeneralName;

use edged_tls::provider;

fn rustls_err(e: impl std::fmt::Display) -> edged_tls::TlsError {
    edged_tls::TlsError::Rustls(e.to_string())
}

/// DNS names and IP addresses of a certificate's subjectAltName, lower-cased.
pub fn certificate_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.trim_end_matches('.').to_ascii_lowercase()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => <[u8; 4]>::try_from(*b)
                    .ok()
                    .map(|a| std::net::IpAddr::from(a).to_string()),
                16 => <[u8; 16]>::try_from(*b)
                    .ok()
                    .map(|a| std::net::IpAddr::from(a).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Whether a certificate name covers `host` (exact, or a `*.` wildcard for one label).
pub fn name_matches(cert_name: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if cert_name == host {
        return true;
    }
    match cert_name.strip_prefix("*.") {
        Some(base) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == base),
        None => false,
    }
}

/// Verifies federation client certificates for the server-auth purpose.
#[derive(Debug)]
pub struct FederationClientVerifier {
    server_purpose: Arc<WebPkiServerVerifier>,
    client_purpose: Arc<dyn ClientCertVerifier>,
}

impl FederationClientVerifier {
    pub fn new(roots: Arc<RootCertStore>) -> Result<Self, edged_tls::TlsError> {
        if roots.is_empty() {
            return Err(edged_tls::TlsError::NoAnchors("federation"));
        }
        Ok(FederationClientVerifier {
            server_purpose: WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .map_err(rustls_err)?,
            client_purpose: WebPkiClientVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(rustls_err)?,
        })
    }
}

impl ClientCertVerifier for FederationClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.client_purpose.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Checking the chain as a server certificate for one of its own names verifies the
        // chain and the serverAuth purpose; which domain it may speak for is decided later.
        let names = certificate_names(end_entity);
        let mut last = rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName);
        for name in &names {
            let Ok(server_name) = ServerName::try_from(name.clone()) else {
                continue;
            };
            match self.server_purpose.verify_server_cert(
                end_entity,
                intermediates,
                &server_name,
                &[],
                now,
            ) {
                Ok(_) => return Ok(ClientCertVerified::assertion()),
                Err(e) => last = e,
            }
        }
        // A chain issued for client authentication only is still a valid partner.
        self.client_purpose
            .verify_client_cert(end_entity, intermediates, now)
            .map_err(|_| last)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.client_purpose
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.client_purpose
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.client_purpose.supported_verify_schemes()
    }
}

/// Verifies a partner edge's server certificate against any of several acceptable names
/// (the partner domain, its allow-listed edge, the SRV target).
#[derive(Debug)]
pub struct PartnerServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    names: Vec<ServerName<'static>>,
}

impl ServerCertVerifier for PartnerServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut last = rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName);
        for name in &self.names {
            match self
                .inner
                .verify_server_cert(end_entity, intermediates, name, ocsp, now)
            {
                Ok(v) => return Ok(v),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The three listener configs and the outgoing config to the Director pool.
#[derive(Clone)]
pub struct EdgeTls {
    pub remote_users: Arc<ServerConfig>,
    pub federation: Arc<ServerConfig>,
    pub internal: Arc<ServerConfig>,
    pub to_next_hop: Arc<ClientConfig>,
    certified: Arc<rustls::sign::CertifiedKey>,
    federation_roots: Arc<RootCertStore>,
}

/// The Directors the internal side deals with, both ways (`access_edge.internal_peers`, or
/// the next hops' hosts when that is empty).
pub fn allowed_directors(cfg: &edged_config::AccessEdgeConfig) -> edged_tls::AllowedPeers {
    edged_tls::AllowedPeers::new("access_edge.internal_peers", cfg.allowed_directors())
}

impl EdgeTls {
    /// The listener and outgoing configs presenting certificate `cert_name`; a Director
    /// (connecting in, or a next hop connected to) must also match `directors`.
    pub fn build(
        tls: &TlsMaterial,
        cert_name: &str,
        directors: &edged_tls::AllowedPeers,
    ) -> Result<Self, edged_tls::TlsError> {
        let certified = tls.cert(cert_name)?.certified.clone();
        let federation_roots = tls.federation_roots();
        let verifier = FederationClientVerifier::new(federation_roots.clone())?;
        let federation = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(rustls_err)?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified.clone())));
        Ok(EdgeTls {
            remote_users: tls.server_config(cert_name, edged_tls::ClientAuth::None, &[])?,
            federation: Arc::new(federation),
            internal: tls.internal_server_config(cert_name, directors, &[])?,
            to_next_hop: tls.internal_client_config(cert_name, directors, &[])?,
            certified,
            federation_roots,
        })
    }

    /// Whether a partner's certificate chain (end entity first) passes the verifier of our
    /// own connections to it, for one of `names`.
    pub fn verifies_as_partner(&self, chain: &[CertificateDer<'static>], names: &[String]) -> bool {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return false;
        };
        let Ok(inner) =
            WebPkiServerVerifier::builder_with_provider(self.federation_roots.clone(), provider())
                .build()
        else {
            return false;
        };
        let names: Vec<ServerName<'static>> = names
            .iter()
            .filter_map(|n| ServerName::try_from(n.clone()).ok())
            .collect();
        let Some(any) = names.first().cloned() else {
            return false;
        };
        PartnerServerVerifier { inner, names }
            .verify_server_cert(end_entity, intermediates, &any, &[], UnixTime::now())
            .is_ok()
    }

    /// A client config for a partner edge accepting a certificate for any of `names`.
    pub fn to_partner(&self, names: &[String]) -> Result<Arc<ClientConfig>, edged_tls::TlsError> {
        let inner =
            WebPkiServerVerifier::builder_with_provider(self.federation_roots.clone(), provider())
                .build()
                .map_err(rustls_err)?;
        let names = names
            .iter()
            .filter_map(|n| ServerName::try_from(n.clone()).ok())
            .collect();
        let cfg = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(rustls_err)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PartnerServerVerifier { inner, names }))
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(self.certified.clone())));
        Ok(Arc::new(cfg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(name_matches("partner.test", "Partner.Test."));
        assert!(name_matches("*.partner.test", "sip.partner.test"));
        assert!(!name_matches("*.partner.test", "partner.test"));
        assert!(!name_matches("*.partner.test", "a.sip.partner.test"));
        assert!(!name_matches("partner.test", "evilpartner.test"));
    }

    /// A CA and a partner certificate issued for server authentication only, as public CAs
    /// issue them since 2026.
    fn server_auth_only_partner() -> (
        Arc<RootCertStore>,
        CertificateDer<'static>,
        CertificateDer<'static>,
    ) {
        use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
        fn ok<T>(r: Result<T, rcgen::Error>) -> T {
            r.unwrap_or_else(|e| panic!("{e}"))
        }
        let ca_key = ok(KeyPair::generate());
        let mut ca = ok(CertificateParams::new(Vec::<String>::new()));
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ok(ca.self_signed(&ca_key));
        let leaf_key = ok(KeyPair::generate());
        let mut leaf = ok(CertificateParams::new(vec![
            "sip.partner.test".into(),
            "partner.test".into(),
        ]));
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_cert = ok(leaf.signed_by(&leaf_key, &ca_cert, &ca_key));
        let other_key = ok(KeyPair::generate());
        let other_ca =
            ok(ok(CertificateParams::new(vec!["partner.test".into()])).self_signed(&other_key));
        let mut roots = RootCertStore::empty();
        roots
            .add(ca_cert.der().clone())
            .unwrap_or_else(|e| panic!("{e}"));
        (
            Arc::new(roots),
            leaf_cert.der().clone(),
            other_ca.der().clone(),
        )
    }

    #[test]
    fn federation_accepts_server_auth_only_partners_and_refuses_strangers() {
        let (roots, leaf, stranger) = server_auth_only_partner();
        let now = UnixTime::now();
        let ours = FederationClientVerifier::new(roots.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            ours.verify_client_cert(&leaf, &[], now).is_ok(),
            "serverAuth-only partner accepted"
        );
        assert!(
            ours.verify_client_cert(&stranger, &[], now).is_err(),
            "unknown issuer refused"
        );
        // The stock verifier would have refused the partner for its missing clientAuth EKU.
        let stock = WebPkiClientVerifier::builder_with_provider(roots, provider())
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(stock.verify_client_cert(&leaf, &[], now).is_err());
        assert_eq!(
            certificate_names(&leaf),
            vec!["sip.partner.test".to_string(), "partner.test".to_string()]
        );
    }

    #[test]
    fn names_are_read_from_the_certificate() {
        let ck =
            rcgen::generate_simple_self_signed(vec!["sip.partner.test".into(), "127.0.0.9".into()])
                .unwrap_or_else(|e| panic!("{e}"));
        let names = certificate_names(ck.cert.der());
        assert_eq!(
            names,
            vec!["sip.partner.test".to_string(), "127.0.0.9".to_string()]
        );
        assert!(certificate_names(b"not a certificate").is_empty());
    }
}
