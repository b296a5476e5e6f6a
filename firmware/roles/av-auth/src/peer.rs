//! Who is on the other end of a TLS connection, for logs and the audit log.

use rustls::pki_types::CertificateDer;

/// The subject common name of the peer's leaf certificate, or a placeholder when it has
/// none. Only called on certificates rustls has already verified against the anchors.
pub fn peer_name(certs: Option<&[CertificateDer<'_>]>) -> Option<String> {
    let leaf = certs?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(sanitize);
    Some(cn.unwrap_or_else(|| "(certificate without common name)".to_owned()))
}

/// Keeps a name printable and free of characters that would break an audit line.
fn sanitize(s: &str) -> String {
    s.chars()
        .take(128)
        .map(|c| if c.is_control() || c == ' ' { '_' } else { c })
        .collect()
}
