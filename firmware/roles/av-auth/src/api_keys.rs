//! API keys for the REST endpoint, stored as argon2id hashes in the store (namespace
//! `av_auth`, key `api_key.<name>`). A key reads `<name>.<secret>`, so verification looks up
//! one hash by name instead of trying every stored hash.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use edged_store::{AuditRecord, Store, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const NAMESPACE: &str = "av_auth";
const KEY_PREFIX: &str = "api_key.";
const MAX_NAME_LEN: usize = 64;
/// A verified key is remembered (by its SHA-256) this long: argon2 costs tens of
/// milliseconds by design, which would otherwise cap the endpoint at a few dozen
/// requests per second per core. Revocation clears the memory at once.
const VERIFIED_TTL: Duration = Duration::from_secs(60);
const MAX_REMEMBERED: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("name must be 1 to {MAX_NAME_LEN} characters of A-Z a-z 0-9 _ -")]
    BadName,
    #[error("an API key named \"{0}\" already exists; revoke it first")]
    Exists(String),
    #[error("no API key named \"{0}\"")]
    NotFound(String),
    #[error("hashing failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the store keeps of a key: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredApiKey {
    pub name: String,
    /// PHC string of the argon2id hash of the whole key text.
    pub hash: String,
    pub created: u64,
}

/// What listing shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyInfo {
    pub name: String,
    pub created: u64,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn digest(presented: &str) -> [u8; 32] {
    Sha256::digest(presented.as_bytes()).into()
}

pub struct ApiKeys {
    store: Store,
    /// SHA-256 of a recently verified key text -> (key name, verified at).
    verified: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

impl ApiKeys {
    pub fn new(store: Store) -> Self {
        ApiKeys {
            store,
            verified: Mutex::new(HashMap::new()),
        }
    }

    fn forget_all(&self) {
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// Creates a key and returns its full text, the only time it is ever shown.
    pub fn create(&self, name: &str, actor: &str, now: u64) -> Result<String, ApiKeyError> {
        if !valid_name(name) {
            return Err(ApiKeyError::BadName);
        }
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        let text = format!("{name}.{}", URL_SAFE_NO_PAD.encode(secret));
        zeroize::Zeroize::zeroize(&mut secret);
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default()
            .hash_password(text.as_bytes(), &salt)
            .map_err(|e| ApiKeyError::Hash(e.to_string()))?
            .to_string();
        let record = StoredApiKey {
            name: name.to_owned(),
            hash,
            created: now,
        };
        let key = format!("{KEY_PREFIX}{name}");
        let created = self.store.write(|tx| {
            if tx.get(NAMESPACE, &key)?.is_some() {
                return Ok(false);
            }
            tx.put_json(NAMESPACE, &key, &record)?;
            tx.audit(AuditRecord::new(
                actor,
                "api-key-created",
                format!("REST API key \"{name}\""),
            ))?;
            Ok(true)
        })?;
        if !created {
            return Err(ApiKeyError::Exists(name.to_owned()));
        }
        Ok(text)
    }

    pub fn list(&self) -> Result<Vec<ApiKeyInfo>, ApiKeyError> {
        let mut out = Vec::new();
        for (key, bytes) in self.store.list(NAMESPACE)? {
            if !key.starts_with(KEY_PREFIX) {
                continue;
            }
            let stored: StoredApiKey =
                serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                    key: format!("{NAMESPACE}/{key}"),
                    reason: e.to_string(),
                })?;
            out.push(ApiKeyInfo {
                name: stored.name,
                created: stored.created,
            });
        }
        Ok(out)
    }

    pub fn revoke(&self, name: &str, actor: &str) -> Result<(), ApiKeyError> {
        if !valid_name(name) {
            return Err(ApiKeyError::BadName);
        }
        let key = format!("{KEY_PREFIX}{name}");
        let existed = self.store.write(|tx| {
            let existed = tx.delete(NAMESPACE, &key)?;
            if existed {
                tx.audit(AuditRecord::new(
                    actor,
                    "api-key-revoked",
                    format!("REST API key \"{name}\""),
                ))?;
            }
            Ok(existed)
        })?;
        // Forget every remembered verification, so the revoked key stops working now.
        self.forget_all();
        if existed {
            Ok(())
        } else {
            Err(ApiKeyError::NotFound(name.to_owned()))
        }
    }

    /// The key's name if `presented` was verified recently; cheap, for the request path.
    pub fn recently_verified(&self, presented: &str) -> Option<String> {
        let d = digest(presented);
        let verified = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        verified
            .get(&d)
            .filter(|(_, at)| at.elapsed() < VERIFIED_TTL)
            .map(|(name, _)| name.clone())
    }

    /// Full verification against the stored argon2 hash: CPU-heavy, run it off the async
    /// workers. `Ok(None)` for an unknown or wrong key.
    pub fn verify(&self, presented: &str) -> Result<Option<String>, ApiKeyError> {
        let Some((name, _)) = presented.split_once('.') else {
            return Ok(None);
        };
        if !valid_name(name) {
            return Ok(None);
        }
        let Some(stored) = self
            .store
            .get_json::<StoredApiKey>(NAMESPACE, &format!("{KEY_PREFIX}{name}"))?
        else {
            return Ok(None);
        };
        let Ok(hash) = PasswordHash::new(&stored.hash) else {
            return Err(ApiKeyError::Hash(format!(
                "stored hash of \"{name}\" is unreadable"
            )));
        };
        if Argon2::default()
            .verify_password(presented.as_bytes(), &hash)
            .is_err()
        {
            return Ok(None);
        }
        let mut verified = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if verified.len() >= MAX_REMEMBERED {
            verified.clear();
        }
        verified.insert(digest(presented), (stored.name.clone(), Instant::now()));
        Ok(Some(stored.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        (dir, store)
    }

    #[test]
    fn create_verify_revoke() {
        let (_d, store) = store();
        let keys = ApiKeys::new(store.clone());
        let text = keys.create("portal", "test", 1).unwrap();
        assert!(text.starts_with("portal."));
        // The store holds a hash, not the key.
        let raw = store.list(NAMESPACE).unwrap();
        assert_eq!(raw.len(), 1);
        assert!(!String::from_utf8_lossy(&raw[0].1).contains(&text[7..]));
        assert!(matches!(
            keys.create("portal", "test", 2),
            Err(ApiKeyError::Exists(_))
        ));
        assert!(matches!(
            keys.create("bad name", "test", 2),
            Err(ApiKeyError::BadName)
        ));

        assert_eq!(keys.recently_verified(&text), None);
        assert_eq!(keys.verify(&text).unwrap().as_deref(), Some("portal"));
        assert_eq!(keys.recently_verified(&text).as_deref(), Some("portal"));
        let mut wrong = text.clone();
        wrong.push('x');
        assert_eq!(keys.verify(&wrong).unwrap(), None);
        assert_eq!(keys.verify("nokey").unwrap(), None);
        assert_eq!(keys.verify("other.abc").unwrap(), None);

        assert_eq!(keys.list().unwrap().len(), 1);
        keys.revoke("portal", "test").unwrap();
        assert_eq!(keys.recently_verified(&text), None);
        assert_eq!(keys.verify(&text).unwrap(), None);
        assert!(matches!(
            keys.revoke("portal", "test"),
            Err(ApiKeyError::NotFound(_))
        ));
        assert!(keys.list().unwrap().is_empty());
    }
}
