//! Where the long-term keys come from: users in the store (namespace `av_edge`, key
//! `user:<name>`) and the short-lived credentials of the A/V Authentication Service
//! (TURN REST convention, key ring in the store namespace `relay_keys`, key `ring`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use edged_store::{Store, StoreError};
use rand::Rng;
use relay_credentials::{CredentialError, KeyRing, RelayKey};
use serde::{Deserialize, Serialize};
use stun_core::{long_term_key_md5, long_term_key_sha256, PASSWORD_ALGORITHM_SHA256};

pub const USER_NAMESPACE: &str = "av_edge";
pub const KEY_NAMESPACE: &str = "relay_keys";
pub const KEY_RING: &str = "ring";
/// A retired key keeps verifying this long: longer than any credential the A/V
/// Authentication Service mints (OCS: 480 minutes).
const DEFAULT_OVERLAP_SECS: u64 = 9 * 3600;
/// The ring is re-read this often, so a rotation by the authentication service is seen
/// without any coupling between the roles.
const RING_REFRESH: Duration = Duration::from_secs(5);

/// A long-term user as stored: the two RFC 8489 keys (hex), never the password, except
/// for the loopback demo user whose password is shown to the operator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub realm: String,
    pub key_md5: String,
    pub key_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demo_password: Option<String>,
}

impl UserRecord {
    pub fn new(name: &str, realm: &str, password: &str) -> Self {
        UserRecord {
            realm: realm.into(),
            key_md5: hex(&long_term_key_md5(name, realm, password)),
            key_sha256: hex(&long_term_key_sha256(name, realm, password)),
            demo_password: None,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Why no key could be found for a username.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("unknown user")]
    UnknownUser,
    #[error("user belongs to realm {0:?}")]
    OtherRealm(String),
    #[error("short-lived credential refused: {0}")]
    Credential(#[from] CredentialError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Which kind of credential authenticated a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    LongTerm,
    ShortLived { expires_at: u64 },
}

pub struct Credentials {
    store: Store,
    ring: Mutex<(Instant, Option<KeyRing>)>,
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Credentials {
    /// Opens the credential sources, creating the key ring if the authentication service
    /// has not written one yet.
    pub fn open(store: Store) -> Result<Credentials, StoreError> {
        // Check and create in one write transaction: the A/V Authentication Service may
        // start at the same moment, and two rings would leave one side's credentials
        // unverifiable.
        let created = store.write(|tx| {
            if tx.get(KEY_NAMESPACE, KEY_RING)?.is_some() {
                return Ok(false);
            }
            let now = now_unix();
            let key = RelayKey::generate(format!("k{now}"), now)
                .map_err(|e| StoreError::Db(e.to_string()))?;
            let ring = KeyRing::new(key, DEFAULT_OVERLAP_SECS)
                .map_err(|e| StoreError::Db(e.to_string()))?;
            tx.put_json(KEY_NAMESPACE, KEY_RING, &ring)?;
            Ok(true)
        })?;
        if created {
            tracing::info!(target: "av_edge", "created the initial relay credential key");
        }
        let creds = Credentials {
            store,
            ring: Mutex::new((Instant::now(), None)),
        };
        creds.reload_ring()?;
        Ok(creds)
    }

    fn reload_ring(&self) -> Result<(), StoreError> {
        let ring: Option<KeyRing> = self.store.get_json(KEY_NAMESPACE, KEY_RING)?;
        let mut guard = self
            .ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard = (Instant::now(), ring);
        Ok(())
    }

    /// The current key ring (for tests and the admin action that mints credentials).
    pub fn ring(&self) -> Option<KeyRing> {
        let stale = {
            let guard = self
                .ring
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            guard.0.elapsed() > RING_REFRESH
        };
        if stale {
            if let Err(e) = self.reload_ring() {
                tracing::warn!(target: "av_edge", "cannot re-read the relay key ring: {e}");
            }
        }
        let guard = self
            .ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.1.clone()
    }

    /// Candidate long-term keys for `username` under `algorithm` (one per accepting relay
    /// key for short-lived credentials).
    pub fn keys(
        &self,
        username: &str,
        realm: &str,
        algorithm: u16,
    ) -> Result<(Vec<Vec<u8>>, CredentialKind), LookupError> {
        if let Ok(parsed) = relay_credentials::parse_username(username) {
            let ring = self.ring().ok_or(LookupError::UnknownUser)?;
            let candidates = ring.password_for(username, now_unix())?;
            let keys = candidates
                .iter()
                .map(|(_, password)| derive(algorithm, username, realm, password))
                .collect();
            return Ok((
                keys,
                CredentialKind::ShortLived {
                    expires_at: parsed.expires_at,
                },
            ));
        }
        let record: UserRecord = self
            .store
            .get_json(USER_NAMESPACE, &format!("user:{username}"))?
            .ok_or(LookupError::UnknownUser)?;
        if record.realm != realm {
            return Err(LookupError::OtherRealm(record.realm));
        }
        let hex_key = if algorithm == PASSWORD_ALGORITHM_SHA256 {
            &record.key_sha256
        } else {
            &record.key_md5
        };
        let key = unhex(hex_key).ok_or_else(|| {
            LookupError::Store(StoreError::Corrupt {
                key: format!("{USER_NAMESPACE}/user:{username}"),
                reason: "key is not hex".into(),
            })
        })?;
        Ok((vec![key], CredentialKind::LongTerm))
    }

    /// Adds or replaces a long-term user, audited under `actor`.
    pub fn put_user(
        &self,
        name: &str,
        realm: &str,
        password: &str,
        actor: edged_role::Actor,
    ) -> Result<(), StoreError> {
        if name.is_empty() || name.contains(':') && relay_credentials::parse_username(name).is_ok()
        {
            return Err(StoreError::BadKey(format!("user:{name}")));
        }
        let record = UserRecord::new(name, realm, password);
        self.store.write(|tx| {
            tx.put_json(USER_NAMESPACE, &format!("user:{name}"), &record)?;
            tx.audit(edged_store::AuditRecord::new(
                actor.as_str(),
                "relay user set",
                name.to_string(),
            ))?;
            Ok(())
        })
    }

    /// Makes sure the demo user exists; returns its password.
    pub fn ensure_demo_user(&self, realm: &str) -> Result<String, StoreError> {
        let key = "user:demo";
        if let Some(record) = self.store.get_json::<UserRecord>(USER_NAMESPACE, key)? {
            if record.realm == realm {
                if let Some(p) = record.demo_password {
                    return Ok(p);
                }
            }
        }
        let password: String = rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(20)
            .map(char::from)
            .collect();
        let mut record = UserRecord::new("demo", realm, &password);
        record.demo_password = Some(password.clone());
        self.store.put_json(USER_NAMESPACE, key, &record)?;
        Ok(password)
    }
}

fn derive(algorithm: u16, username: &str, realm: &str, password: &str) -> Vec<u8> {
    if algorithm == PASSWORD_ALGORITHM_SHA256 {
        long_term_key_sha256(username, realm, password).to_vec()
    } else {
        long_term_key_md5(username, realm, password).to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(unhex(&hex(&bytes)), Some(bytes.to_vec()));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn concurrent_starters_create_one_key_ring() {
        for round in 0..5 {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let store =
                Store::open(&dir.path().join("store.redb")).unwrap_or_else(|e| panic!("{e}"));
            let rings: Vec<String> = std::thread::scope(|scope| {
                let starters: Vec<_> = (0..4)
                    .map(|_| {
                        let store = store.clone();
                        scope.spawn(move || {
                            let creds = Credentials::open(store).unwrap_or_else(|e| panic!("{e}"));
                            serde_json::to_string(&creds.ring()).unwrap_or_else(|e| panic!("{e}"))
                        })
                    })
                    .collect();
                starters
                    .into_iter()
                    .map(|t| t.join().unwrap_or_else(|_| panic!("starter panicked")))
                    .collect()
            });
            assert_ne!(rings[0], "null", "no key ring was created");
            assert!(
                rings.iter().all(|r| *r == rings[0]),
                "round {round}: starters saw different rings"
            );
        }
    }
}
