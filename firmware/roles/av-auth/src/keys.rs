//! The relay key ring, shared with the A/V Edge through the store.
//!
//! The store key, layout, first key and overlap rules are `relay_credentials::stored`'s;
//! this module does the store transactions and the audit records of this role.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use edged_store::{AuditRecord, Store, StoreError};
use relay_credentials::stored::{self, Loaded, StoredRingError, STORE_KEY, STORE_NAMESPACE};
use relay_credentials::{KeyRing, RelayKey};
use serde::Serialize;

pub use relay_credentials::stored::{DEFAULT_OVERLAP_SECS, KEY_PROPAGATION_SECS};
/// How long a ring read from the store is trusted before it is read again: keys may be
/// rotated by another process sharing the store (or by the relay role).
const RING_REFRESH: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("key ring: {0}")]
    Key(#[from] relay_credentials::KeyError),
    #[error("the store holds no relay key ring")]
    Missing,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn corrupt(e: StoredRingError) -> StoreError {
    StoreError::Corrupt {
        key: format!("{STORE_NAMESPACE}/{STORE_KEY}"),
        reason: e.to_string(),
    }
}

/// Reads the stored ring through the shared layout.
fn read(store: &Store) -> Result<Option<KeyRing>, StoreError> {
    store
        .get(STORE_NAMESPACE, STORE_KEY)?
        .map(|bytes| stored::decode(&bytes).map_err(corrupt))
        .transpose()
}

/// Returns the ring, creating it (one random key) if the store has none.
pub fn load_or_create(store: &Store, now: u64) -> Result<KeyRing, KeyStoreError> {
    let mut key_error = None;
    let ring = store.write(|tx| {
        let existing = tx.get(STORE_NAMESPACE, STORE_KEY)?;
        let loaded = match stored::load_or_initial(existing.as_deref(), now) {
            Ok(loaded) => loaded,
            Err(StoredRingError::Key(e)) => {
                key_error = Some(e);
                return Ok(None);
            }
            Err(e) => return Err(corrupt(e)),
        };
        if let Loaded::Created { ring, stored } = &loaded {
            tx.put(STORE_NAMESPACE, STORE_KEY, stored)?;
            tx.audit(AuditRecord::new(
                "av_auth",
                "relay-key-created",
                format!("created relay key ring with key {}", ring.current().id),
            ))?;
        }
        Ok(Some(loaded.into_ring()))
    })?;
    match (ring, key_error) {
        (Some(r), _) => Ok(r),
        (None, Some(e)) => Err(e.into()),
        (None, None) => Err(KeyStoreError::Missing),
    }
}

/// What an operator may see of one key: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub created: u64,
    pub retired_at: Option<u64>,
    /// Unix time after which credentials signed with it are refused, for retired keys.
    pub accepted_until: Option<u64>,
    pub current: bool,
}

pub fn describe(ring: &KeyRing) -> Vec<KeyInfo> {
    let current = ring.current().id.as_str();
    ring.keys()
        .map(|k| KeyInfo {
            id: k.id.clone(),
            created: k.created,
            retired_at: k.retired_at,
            accepted_until: k.accepted_until(ring.overlap()),
            current: k.id == current,
        })
        .collect()
}

/// Makes a fresh key current; the old one keeps verifying for the overlap, keys past
/// their overlap are dropped. Returns the new ring.
pub fn rotate(store: &Store, actor: &str, now: u64) -> Result<KeyRing, KeyStoreError> {
    let mut key_error = None;
    let ring = store.write(|tx| {
        let Some(bytes) = tx.get(STORE_NAMESPACE, STORE_KEY)? else {
            return Ok(None);
        };
        let mut ring = stored::decode(&bytes).map_err(corrupt)?;
        let old = ring.current().id.clone();
        let id = stored::next_key_id(&ring, now);
        let rotated = RelayKey::generate(id.clone(), now).and_then(|k| ring.rotate(k, now));
        if let Err(e) = rotated {
            key_error = Some(e);
            return Ok(None);
        }
        ring.prune(now);
        tx.put(
            STORE_NAMESPACE,
            STORE_KEY,
            &stored::encode(&ring).map_err(corrupt)?,
        )?;
        tx.audit(AuditRecord::new(
            actor,
            "relay-key-rotated",
            format!(
                "current key {id}; {old} retired, accepted for {} s more",
                ring.overlap()
            ),
        ))?;
        Ok(Some(ring))
    })?;
    match (ring, key_error) {
        (Some(r), _) => Ok(r),
        (None, Some(e)) => Err(e.into()),
        (None, None) => Err(KeyStoreError::Missing),
    }
}

/// The ring to mint with at `now` (`relay_credentials::stored::minting_ring`): the stored
/// ring, or during a fresh key's propagation a ring minting with the previous key.
pub fn minting_ring(ring: &Arc<KeyRing>, now: u64) -> Arc<KeyRing> {
    stored::minting_ring(ring, now).map_or_else(|| ring.clone(), Arc::new)
}

/// The ring as last read from the store, re-read at most every second.
pub struct RingCache {
    store: Store,
    cached: Mutex<Option<(Instant, Arc<KeyRing>)>>,
}

impl RingCache {
    pub fn new(store: Store) -> Self {
        RingCache {
            store,
            cached: Mutex::new(None),
        }
    }

    pub fn get(&self) -> Result<Arc<KeyRing>, KeyStoreError> {
        let now = Instant::now();
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, ring)) = cached.as_ref() {
            if now.saturating_duration_since(*at) < RING_REFRESH {
                return Ok(ring.clone());
            }
        }
        let ring = match read(&self.store)? {
            Some(r) => r,
            // Deleted under us (store import): recreate rather than stop issuing.
            None => load_or_create(&self.store, unix_now())?,
        };
        let ring = Arc::new(ring);
        *cached = Some((now, ring.clone()));
        Ok(ring)
    }

    /// Forgets the cached ring so the next issuance reads the store (after a rotation).
    pub fn invalidate(&self) {
        *self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
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
    fn ring_is_created_once_and_rotated_with_overlap() {
        let (_d, store) = store();
        let t0 = 1_800_000_000;
        let ring = load_or_create(&store, t0).unwrap();
        assert_eq!(ring.current().id, format!("k{t0}"));
        assert_eq!(ring.overlap(), DEFAULT_OVERLAP_SECS);
        // A second start reads the same ring.
        assert_eq!(load_or_create(&store, t0 + 5).unwrap(), ring);

        let rotated = rotate(&store, "test", t0 + 100).unwrap();
        assert_eq!(rotated.current().id, format!("k{}", t0 + 100));
        // Two rotations in one second still get distinct ids.
        let again = rotate(&store, "test", t0 + 100).unwrap();
        assert_eq!(again.current().id, format!("k{}", t0 + 101));
        let listed = describe(&again);
        assert_eq!(listed.len(), 3);
        assert_eq!(listed.iter().filter(|k| k.current).count(), 1);
        assert!(listed
            .iter()
            .all(|k| k.current || k.accepted_until.is_some()));

        // Past the overlap, a rotation prunes the old keys.
        let late = t0 + 100 + DEFAULT_OVERLAP_SECS + 1;
        let pruned = rotate(&store, "test", late).unwrap();
        assert_eq!(describe(&pruned).len(), 2, "{:?}", describe(&pruned));
    }

    #[test]
    fn a_fresh_key_mints_only_after_propagation() {
        let (_d, store) = store();
        let t0 = 1_800_000_000;
        let first = load_or_create(&store, t0).unwrap();
        let ring = Arc::new(rotate(&store, "test", t0 + 1000).unwrap());
        // Just rotated: the previous key keeps minting, and the stored ring verifies it.
        let early = minting_ring(&ring, t0 + 1000 + KEY_PROPAGATION_SECS - 1);
        assert_eq!(early.current().id, first.current().id);
        let now = t0 + 1005;
        let c = early.mint("alice", 60, now).unwrap();
        assert_eq!(
            ring.verify(&c.username, &c.password, now).unwrap(),
            first.current().id
        );
        // Later: the new key.
        let later = minting_ring(&ring, t0 + 1000 + KEY_PROPAGATION_SECS);
        assert_eq!(later.current().id, ring.current().id);
        // A ring with no previous key mints with its current key at once.
        let single = Arc::new(first);
        assert_eq!(minting_ring(&single, t0).current().id, single.current().id);
    }
}
