//! The appliance CA and the certificates it issues, kept in the store.

use edged_store::Store;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::TlsError;

const NS: &str = "tls";

/// A certificate issued by the appliance CA. `Debug` leaves the private key out, and the
/// key is cleared from memory when this is dropped.
#[derive(Clone)]
pub struct IssuedCertificate {
    /// Leaf then CA.
    pub chain_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

impl std::fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("chain_pem", &self.chain_pem)
            .field("ca_pem", &self.ca_pem)
            .finish_non_exhaustive()
    }
}

impl Drop for IssuedCertificate {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key_pem);
    }
}

fn gen_err(e: rcgen::Error) -> TlsError {
    TlsError::Certificate {
        key: "certificates".into(),
        reason: format!("certificate generation failed: {e}"),
    }
}

fn get_str(store: &Store, key: &str) -> Result<Option<String>, TlsError> {
    Ok(store.get_json::<String>(NS, key)?)
}

/// The appliance CA: loaded from the store, or created and stored on first use.
fn ca(store: &Store) -> Result<(String, rcgen::Certificate, KeyPair), TlsError> {
    if let (Some(cert_pem), Some(key_pem)) = (get_str(store, "ca.cert")?, get_str(store, "ca.key")?)
    {
        let key_pem = zeroize::Zeroizing::new(key_pem);
        let key = KeyPair::from_pem(&key_pem).map_err(gen_err)?;
        let params = CertificateParams::from_ca_cert_pem(&cert_pem).map_err(gen_err)?;
        // Re-signing the stored parameters gives an issuer object with the same subject and
        // key; certificates it signs chain to the stored CA certificate.
        let cert = params.self_signed(&key).map_err(gen_err)?;
        return Ok((cert_pem, cert, key));
    }
    let key = KeyPair::generate().map_err(gen_err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "edged appliance CA");
    dn.push(DnType::OrganizationName, "edged");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).map_err(gen_err)?;
    let cert_pem = cert.pem();
    store.write(|tx| {
        tx.put_json(NS, "ca.cert", &cert_pem)?;
        tx.put_json(NS, "ca.key", &*zeroize::Zeroizing::new(key.serialize_pem()))?;
        tx.audit(edged_store::AuditRecord::new(
            "edged",
            "tls",
            "generated the appliance CA",
        ))?;
        Ok(())
    })?;
    tracing::info!(target: "edged", "generated the appliance CA for self-signed certificates");
    Ok((cert_pem, cert, key))
}

fn issue(
    ca_cert: &rcgen::Certificate,
    ca_key: &KeyPair,
    common_name: &str,
    sans: &[String],
) -> Result<(String, String), TlsError> {
    let key = KeyPair::generate().map_err(gen_err)?;
    let mut params = CertificateParams::new(sans.to_vec()).map_err(gen_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Both purposes: the same certificate serves listeners and mutual TLS towards peers.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.signed_by(&key, ca_cert, ca_key).map_err(gen_err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The self-signed certificate `name` for `sans`: from the store when it was issued for
/// the same names, otherwise newly issued and stored.
pub(crate) fn self_signed(
    store: &Store,
    name: &str,
    sans: &[String],
) -> Result<IssuedCertificate, TlsError> {
    let (ca_pem, ca_cert, ca_key) = ca(store)?;
    let stored_sans: Option<Vec<String>> = store.get_json(NS, &format!("{name}.sans"))?;
    if stored_sans.as_deref() == Some(sans) {
        if let (Some(chain_pem), Some(key_pem)) = (
            get_str(store, &format!("{name}.cert"))?,
            get_str(store, &format!("{name}.key"))?,
        ) {
            return Ok(IssuedCertificate {
                chain_pem,
                key_pem,
                ca_pem,
            });
        }
    }
    let cn = sans.first().map_or(name, String::as_str);
    let (leaf, key_pem) = issue(&ca_cert, &ca_key, cn, sans)?;
    let chain_pem = format!("{leaf}{ca_pem}");
    store.write(|tx| {
        tx.put_json(NS, &format!("{name}.cert"), &chain_pem)?;
        tx.put_json(NS, &format!("{name}.key"), &key_pem)?;
        tx.put_json(NS, &format!("{name}.sans"), &sans)?;
        tx.audit(edged_store::AuditRecord::new(
            "edged",
            "tls",
            format!(
                "issued self-signed certificate \"{name}\" for {}",
                sans.join(", ")
            ),
        ))?;
        Ok(())
    })?;
    tracing::info!(target: "edged", certificate = name, sans = %sans.join(","), "issued self-signed certificate");
    Ok(IssuedCertificate {
        chain_pem,
        key_pem,
        ca_pem,
    })
}

/// Issues a certificate from the appliance CA for a peer (a Director, a conferencing
/// server, a test client) so it can take part in mutual TLS with this appliance. Nothing
/// is stored but the CA, which is created if it does not exist yet.
pub fn issue_client_certificate(
    store: &Store,
    common_name: &str,
    sans: &[String],
) -> Result<IssuedCertificate, TlsError> {
    let (ca_pem, ca_cert, ca_key) = ca(store)?;
    let (leaf, key_pem) = issue(&ca_cert, &ca_key, common_name, sans)?;
    Ok(IssuedCertificate {
        chain_pem: format!("{leaf}{ca_pem}"),
        key_pem,
        ca_pem,
    })
}
