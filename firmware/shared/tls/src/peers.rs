//! Peer identities on the internal side: who a verified certificate names, and the check
//! that it is one the listener's allowed-peers list admits (`edged_config::peers`). A chain
//! from the internal anchors proves only that the organisation's CA issued it; the list says
//! which of those certificates may act as a Director, a conferencing server or an A/V
//! Authentication client.

use std::sync::Arc;

use edged_config::AllowedPeer;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;

/// Who a certificate names: its subjectAltName DNS names and IP addresses (lower-cased,
/// as text) and the SHA-256 of its SubjectPublicKeyInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    pub names: Vec<String>,
    pub spki_sha256: [u8; 32],
}

impl PeerIdentity {
    /// Reads a DER certificate; `None` if it does not parse.
    pub fn from_der(der: &[u8]) -> Option<PeerIdentity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let spki_sha256 = Sha256::digest(cert.public_key().raw).into();
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    GeneralName::DNSName(d) => {
                        names.push(d.trim_end_matches('.').to_ascii_lowercase())
                    }
                    GeneralName::IPAddress(b) => {
                        if let Ok(a) = <[u8; 4]>::try_from(*b) {
                            names.push(std::net::IpAddr::from(a).to_string());
                        } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                            names.push(std::net::IpAddr::from(a).to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        Some(PeerIdentity { names, spki_sha256 })
    }

    /// The identity of a connection's peer: its leaf certificate, if it sent one.
    pub fn of_peer(certs: Option<&[CertificateDer<'_>]>) -> Option<PeerIdentity> {
        PeerIdentity::from_der(certs?.first()?.as_ref())
    }

    /// Whether `other` is the same peer: the same key, or the same non-empty set of names
    /// (the same server with a renewed certificate; a CA that issues one name to two
    /// parties cannot be told apart by any list of names anyway).
    pub fn same_peer(&self, other: &PeerIdentity) -> bool {
        if self.spki_sha256 == other.spki_sha256 {
            return true;
        }
        let sorted = |n: &[String]| {
            let mut v = n.to_vec();
            v.sort();
            v.dedup();
            v
        };
        !self.names.is_empty() && sorted(&self.names) == sorted(&other.names)
    }

    /// A short printable form for logs: the first name, else the key pin.
    pub fn label(&self) -> String {
        match self.names.first() {
            Some(n) => n.chars().take(128).filter(|c| !c.is_control()).collect(),
            None => AllowedPeer::Spki(self.spki_sha256).to_string(),
        }
    }
}

/// The allowed-peers list of one listener, with the key that sets it (named when a peer is
/// refused, so the log tells the admin which list to extend).
#[derive(Debug, Clone)]
pub struct AllowedPeers {
    key: &'static str,
    peers: Arc<Vec<AllowedPeer>>,
}

impl AllowedPeers {
    pub fn new(key: &'static str, peers: Vec<AllowedPeer>) -> Self {
        Self {
            key,
            peers: Arc::new(peers),
        }
    }

    /// The first entry that admits `id`.
    pub fn matching(&self, id: &PeerIdentity) -> Option<&AllowedPeer> {
        self.peers
            .iter()
            .find(|p| p.matches(&id.names, &id.spki_sha256))
    }

    /// Whether the certificate `der` is admitted.
    pub fn admits(&self, der: &[u8]) -> Result<PeerIdentity, rustls::Error> {
        let id = PeerIdentity::from_der(der).ok_or(rustls::Error::InvalidCertificate(
            rustls::CertificateError::BadEncoding,
        ))?;
        if self.matching(&id).is_some() {
            return Ok(id);
        }
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Other(rustls::OtherError(Arc::new(NotAllowed {
                key: self.key,
                who: id.label(),
            }))),
        ))
    }

    pub fn key(&self) -> &'static str {
        self.key
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

/// Why a verified certificate was refused.
#[derive(thiserror::Error)]
#[error("the certificate of {who} matches no entry of {key}")]
struct NotAllowed {
    key: &'static str,
    who: String,
}

// rustls prints a certificate error with `Debug`: the log line should read as the sentence.
impl std::fmt::Debug for NotAllowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A client-certificate verifier: the chain as `inner` verifies it, then the list.
#[derive(Debug)]
pub struct AllowedPeersClientVerifier {
    pub(crate) inner: Arc<dyn ClientCertVerifier>,
    pub(crate) peers: AllowedPeers,
}

impl ClientCertVerifier for AllowedPeersClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        self.peers.admits(end_entity.as_ref())?;
        Ok(verified)
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

/// A server-certificate verifier: the chain and name as `inner` verifies them, then the list.
#[derive(Debug)]
pub struct AllowedPeersServerVerifier {
    pub(crate) inner: Arc<dyn ServerCertVerifier>,
    pub(crate) peers: AllowedPeers,
}

impl ServerCertVerifier for AllowedPeersServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        self.peers.admits(end_entity.as_ref())?;
        Ok(verified)
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
