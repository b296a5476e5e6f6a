//! Reading the connector bundle an edge writes for loopback demos
//! (`webconf_edge.connector_bundle_dir`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use session_key::{KeyRing, SessionSecret};

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
}

fn read(dir: &Path, name: &str) -> Result<String, BundleError> {
    let path = dir.join(name);
    std::fs::read_to_string(&path).map_err(|e| BundleError::File {
        path,
        reason: e.to_string(),
    })
}

fn bad(dir: &Path, name: &str, reason: impl ToString) -> BundleError {
    BundleError::File {
        path: dir.join(name),
        reason: reason.to_string(),
    }
}

#[derive(Debug, Deserialize)]
struct Endpoints {
    internal: String,
    external: String,
    server_name: String,
}

/// Everything in a bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub internal: SocketAddr,
    pub external: SocketAddr,
    pub server_name: String,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub keys: Vec<SessionSecret>,
}

impl Bundle {
    pub fn load(dir: &Path) -> Result<Bundle, BundleError> {
        let ep: Endpoints = serde_json::from_str(&read(dir, "endpoints.json")?)
            .map_err(|e| bad(dir, "endpoints.json", e))?;
        let keys = read_keys_file(&dir.join("session-keys.json"))?;
        Ok(Bundle {
            internal: ep
                .internal
                .parse()
                .map_err(|e| bad(dir, "endpoints.json", e))?,
            external: ep
                .external
                .parse()
                .map_err(|e| bad(dir, "endpoints.json", e))?,
            server_name: ep.server_name,
            ca_pem: read(dir, "ca.pem")?,
            cert_pem: read(dir, "connector.pem")?,
            key_pem: read(dir, "connector.key")?,
            keys,
        })
    }
}

/// A key-ring file: a JSON array of `{id, secret_hex, created_at, retire_at?}`.
pub fn read_keys_file(path: &Path) -> Result<Vec<SessionSecret>, BundleError> {
    let text = std::fs::read_to_string(path).map_err(|e| BundleError::File {
        path: path.into(),
        reason: e.to_string(),
    })?;
    let keys: Vec<SessionSecret> = serde_json::from_str(&text).map_err(|e| BundleError::File {
        path: path.into(),
        reason: e.to_string(),
    })?;
    KeyRing::from_records(keys.clone()).map_err(|e| BundleError::File {
        path: path.into(),
        reason: e.to_string(),
    })?;
    Ok(keys)
}
