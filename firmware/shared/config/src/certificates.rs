//! Certificates the roles present, and the anchors they trust.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ConfigErrors;

/// A certificate: either files on disk, or a self-signed one edged generates at first start
/// and keeps in its store (the embedded default, and appliances not yet given a real one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// PEM chain, leaf first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Generate and keep a self-signed certificate instead of reading files.
    #[serde(default)]
    pub self_signed: bool,
    /// Subject alternative names: DNS names or IP addresses. For a self-signed certificate
    /// these are the names it is issued for; for files they document what the certificate
    /// must cover and are checked against it when it is loaded.
    #[serde(default)]
    pub sans: Vec<String>,
}

impl CertificateConfig {
    pub(crate) fn validate(&self, key: &str, errs: &mut ConfigErrors) {
        match (&self.cert_file, &self.key_file, self.self_signed) {
            (None, None, true) => {
                if self.sans.is_empty() {
                    errs.push(
                        format!("{key}.sans"),
                        "a self-signed certificate needs at least one name",
                    );
                }
            }
            (Some(cert), Some(private), false) => {
                check_readable(&format!("{key}.cert_file"), cert, errs);
                check_readable(&format!("{key}.key_file"), private, errs);
            }
            (_, _, true) => errs.push(
                key,
                "set either self_signed = true or cert_file and key_file, not both",
            ),
            (None, _, false) => errs.push(
                format!("{key}.cert_file"),
                "missing: give cert_file and key_file, or self_signed = true",
            ),
            (Some(_), None, false) => errs.push(
                format!("{key}.key_file"),
                "missing: a certificate file needs its private key file",
            ),
        }
        for san in &self.sans {
            if san.is_empty() || san.chars().any(|c| c.is_whitespace() || c.is_control()) {
                errs.push(
                    format!("{key}.sans"),
                    format!("\"{san}\" is not a valid name"),
                );
            }
        }
    }
}

fn check_readable(key: &str, path: &std::path::Path, errs: &mut ConfigErrors) {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => errs.push(key, format!("{} is not a regular file", path.display())),
        Err(e) => errs.push(key, format!("cannot read {}: {e}", path.display())),
    }
}

/// Whom the appliance trusts for mutual TLS on the internal side (Directors, conferencing
/// servers, internal pools) and for federation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsTrust {
    /// PEM files of CA certificates trusted for internal peers.
    pub internal_ca_files: Vec<PathBuf>,
    /// PEM files of CA certificates trusted for federation partners (in addition to none:
    /// an appliance trusts only what its admin installs).
    pub federation_ca_files: Vec<PathBuf>,
    /// Trust the appliance's own self-signed certificates as anchors (loopback demos and
    /// tests, where edged talks to itself). Off in production.
    pub trust_own_certificates: bool,
}

impl TlsTrust {
    pub(crate) fn validate(&self, errs: &mut ConfigErrors) {
        for (i, p) in self.internal_ca_files.iter().enumerate() {
            check_readable(&format!("tls.internal_ca_files[{i}]"), p, errs);
        }
        for (i, p) in self.federation_ca_files.iter().enumerate() {
            check_readable(&format!("tls.federation_ca_files[{i}]"), p, errs);
        }
    }
}
