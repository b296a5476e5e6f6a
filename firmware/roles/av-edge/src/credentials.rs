//! Where the long-term keys come from: users in the store (namespace `av_edge`, key
//! `user:<name>`) and the short-lived credentials of the A/V Authentication Service
//! (TURN REST convention, key ring stored as `relay_credentials::stored` lays it out).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use edged_store::{Store, StoreError};
use rand::Rng;
use relay_credentials::stored::{self, Loaded, STORE_KEY, STORE_NAMESPACE};
use relay_credentials::KeyRing;
use serde::{Deserialize, Serialize};
use stun_core::{long_term_key_md5, long_term_key_sha256};
use zeroize::Zeroize as _;

use crate::auth::{KeySource, UserKeys};

pub const USER_NAMESPACE: &str = "av_edge";
/// The ring is re-read this often, so a rotation by the authentication service is seen
/// without any coupling between the roles.
const RING_REFRESH: Duration = Duration::from_secs(stored::RELAY_REFRESH_SECS);

/// A long-term user as stored: the two RFC 8489 keys (hex), never the password, except
/// for the loopback demo user whose password is shown to the operator. The keys are as good
/// as the password: `Debug` leaves them out and they are cleared from memory when dropped.
#[derive(Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub realm: String,
    pub key_md5: String,
    pub key_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demo_password: Option<String>,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("realm", &self.realm)
            .field("demo", &self.demo_password.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for UserRecord {
    fn drop(&mut self) {
        self.key_md5.zeroize();
        self.key_sha256.zeroize();
        if let Some(p) = self.demo_password.as_mut() {
            p.zeroize();
        }
    }
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

pub struct Credentials {
    store: Store,
    ring: Mutex<(Instant, Option<KeyRing>)>,
}

fn ring_error(e: stored::StoredRingError) -> StoreError {
    StoreError::Corrupt {
        key: format!("{STORE_NAMESPACE}/{STORE_KEY}"),
        reason: e.to_string(),
    }
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
            let existing = tx.get(STORE_NAMESPACE, STORE_KEY)?;
            match stored::load_or_initial(existing.as_deref(), now_unix()) {
                Ok(Loaded::Existing(_)) => Ok(false),
                Ok(Loaded::Created { stored, .. }) => {
                    tx.put(STORE_NAMESPACE, STORE_KEY, &stored)?;
                    Ok(true)
                }
                Err(e) => Err(ring_error(e)),
            }
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
        let ring = match self.store.get(STORE_NAMESPACE, STORE_KEY)? {
            Some(bytes) => Some(stored::decode(&bytes).map_err(ring_error)?),
            None => None,
        };
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
        if let Some(mut record) = self.store.get_json::<UserRecord>(USER_NAMESPACE, key)? {
            if record.realm == realm {
                if let Some(p) = record.demo_password.take() {
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

/// The store is the role's key source for authentication.
impl KeySource for Credentials {
    type Error = StoreError;

    fn ring(&self) -> Option<KeyRing> {
        Credentials::ring(self)
    }

    fn user(&self, name: &str) -> Result<Option<UserKeys>, StoreError> {
        let key = format!("user:{name}");
        let Some(record) = self.store.get_json::<UserRecord>(USER_NAMESPACE, &key)? else {
            return Ok(None);
        };
        let (Some(md5), Some(sha256)) = (unhex(&record.key_md5), unhex(&record.key_sha256)) else {
            return Err(StoreError::Corrupt {
                key: format!("{USER_NAMESPACE}/{key}"),
                reason: "key is not hex".into(),
            });
        };
        Ok(Some(UserKeys {
            realm: record.realm.clone(),
            md5,
            sha256,
        }))
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

    #[test]
    fn user_record_debug_hides_keys_and_demo_password() {
        let mut record = UserRecord::new("alice", "edge.example", "correct horse");
        record.demo_password = Some("shown-once-9f2k".into());
        let debug = format!("{record:?} {record:#?}");
        for secret in [
            record.key_md5.as_str(),
            record.key_sha256.as_str(),
            "shown-once-9f2k",
        ] {
            assert!(!debug.contains(secret), "Debug shows {secret}: {debug}");
        }
        assert!(debug.contains("edge.example"), "{debug}");
    }
}
