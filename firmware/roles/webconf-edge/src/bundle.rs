//! The connector bundle for loopback demos: what a reference connector needs to reach this
//! edge, written to `webconf_edge.connector_bundle_dir` when that is set.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use edged_store::Store;
use edged_tls::TlsMaterial;
use serde::{Deserialize, Serialize};
use session_key::{KeyRing, SessionSecret};

/// `endpoints.json` of a bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleEndpoints {
    /// Where conferencing servers connect (TCP, mutual TLS).
    pub internal: String,
    /// Where meeting clients connect (TLS and QUIC).
    pub external: String,
    /// The name the edge's certificate carries.
    pub server_name: String,
}

pub const CA_FILE: &str = "ca.pem";
pub const CERT_FILE: &str = "connector.pem";
pub const KEY_FILE: &str = "connector.key";
pub const KEYS_FILE: &str = "session-keys.json";
pub const ENDPOINTS_FILE: &str = "endpoints.json";

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

/// Writes the bundle; the secrets (connector key, session keys) are readable by the owner only.
pub fn write(
    dir: &Path,
    store: &Store,
    tls: &TlsMaterial,
    keys: &KeyRing,
    endpoints: &BundleEndpoints,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let io =
        |what: &str, e: std::io::Error| format!("cannot write {what} in {}: {e}", dir.display());
    let ca = tls
        .ca_pem()
        .ok_or("the bundle needs self-signed certificates (the appliance CA issues the connector certificate)")?;
    let issued = edged_tls::issue_client_certificate(
        store,
        "webconf-connector",
        &["webconf-connector.localhost".into()],
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(dir.join(CA_FILE), ca).map_err(|e| io(CA_FILE, e))?;
    std::fs::write(dir.join(CERT_FILE), &issued.chain_pem).map_err(|e| io(CERT_FILE, e))?;
    write_private(&dir.join(KEY_FILE), issued.key_pem.as_bytes()).map_err(|e| io(KEY_FILE, e))?;
    write_keys(dir, keys)?;
    let ep = serde_json::to_vec_pretty(endpoints).map_err(|e| e.to_string())?;
    std::fs::write(dir.join(ENDPOINTS_FILE), ep).map_err(|e| io(ENDPOINTS_FILE, e))?;
    Ok(())
}

/// Rewrites `session-keys.json` after a rotation. The new file is renamed over the old one,
/// so a connector re-reading it never sees half a ring.
pub fn write_keys(dir: &Path, keys: &KeyRing) -> Result<(), String> {
    let records: Vec<SessionSecret> = keys.records();
    let json = serde_json::to_vec_pretty(&records).map_err(|e| e.to_string())?;
    let staged = dir.join(format!(".{KEYS_FILE}.new"));
    let io = |e: std::io::Error| format!("cannot write {KEYS_FILE} in {}: {e}", dir.display());
    write_private(&staged, &json).map_err(io)?;
    std::fs::rename(&staged, dir.join(KEYS_FILE)).map_err(io)
}
