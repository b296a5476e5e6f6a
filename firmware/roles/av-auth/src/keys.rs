//! The relay key ring, shared with the A/V Edge through the store.
//!
//! Convention (both roles follow it): namespace `relay_keys`, key `ring`, value the
//! `relay_credentials::KeyRing` as JSON. Whichever role starts first creates the ring inside
//! a write transaction, so two roles starting together cannot create two different rings.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use edged_store::{AuditRecord, Store, StoreError};
use relay_credentials::{KeyRing, RelayKey};
use serde::{Deserialize, Serialize};

pub const RING_NAMESPACE: &str = "relay_keys";
pub const RING_KEY: &str = "ring";
/// Overlap of a new ring: a retired key keeps verifying this long. Longer than the longest
/// credential (480 minutes), so a credential minted just before a rotation lives its whole
/// life; the same value the A/V Edge uses when it creates the ring first.
pub const DEFAULT_OVERLAP_SECS: u64 = 9 * 3600;
/// A new key is not minted with until it is this old: the A/V Edge re-reads the ring every
/// few seconds, and a credential signed with a key the relay has not seen yet would be
/// refused. Until then the previous key (still inside its overlap) keeps minting.
pub const KEY_PROPAGATION_SECS: u64 = 10;
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

fn decode(bytes: &[u8]) -> Result<KeyRing, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: format!("{RING_NAMESPACE}/{RING_KEY}"),
        reason: e.to_string(),
    })
}

/// Returns the ring, creating it (random 32-byte key `k1`) if the store has none.
pub fn load_or_create(store: &Store, now: u64) -> Result<KeyRing, KeyStoreError> {
    let mut key_error = None;
    let ring = store.write(|tx| {
        if let Some(bytes) = tx.get(RING_NAMESPACE, RING_KEY)? {
            return decode(&bytes).map(Some);
        }
        let ring = match RelayKey::generate(format!("k{now}"), now)
            .and_then(|k| KeyRing::new(k, DEFAULT_OVERLAP_SECS))
        {
            Ok(r) => r,
            Err(e) => {
                key_error = Some(e);
                return Ok(None);
            }
        };
        tx.put_json(RING_NAMESPACE, RING_KEY, &ring)?;
        tx.audit(AuditRecord::new(
            "av_auth",
            "relay-key-created",
            "created relay key ring with key k1",
        ))?;
        Ok(Some(ring))
    })?;
    match (ring, key_error) {
        (Some(r), _) => Ok(r),
        (None, Some(e)) => Err(e.into()),
        (None, None) => Err(KeyStoreError::Missing),
    }
}

/// The id of a new key: `k<unix time>` as the A/V Edge names the first key, bumped past
/// the highest numbered id so two rotations in one second still get distinct ids.
fn next_id(ids: &[KeyInfo], now: u64) -> String {
    let highest = ids
        .iter()
        .filter_map(|k| k.id.strip_prefix('k').and_then(|n| n.parse::<u64>().ok()))
        .max()
        .unwrap_or(0);
    format!("k{}", now.max(highest.saturating_add(1)))
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

/// The stored shape of a ring without the secrets: `KeyRing` exposes only its current key,
/// and the listing needs every key's id and dates.
#[derive(Deserialize)]
struct RingView {
    current: KeyView,
    previous: Vec<KeyView>,
}

#[derive(Deserialize)]
struct KeyView {
    id: String,
    created: u64,
    retired_at: Option<u64>,
}

pub fn describe(ring: &KeyRing) -> Vec<KeyInfo> {
    let Ok(view) = serde_json::to_value(ring).and_then(serde_json::from_value::<RingView>) else {
        // The ring serialises by construction; an empty listing beats a panic.
        return Vec::new();
    };
    std::iter::once((view.current, true))
        .chain(view.previous.into_iter().map(|k| (k, false)))
        .map(|(k, current)| KeyInfo {
            accepted_until: k.retired_at.map(|r| r.saturating_add(ring.overlap())),
            id: k.id,
            created: k.created,
            retired_at: k.retired_at,
            current,
        })
        .collect()
}

/// Makes a fresh key current; the old one keeps verifying for the overlap, keys past
/// their overlap are dropped. Returns the new ring.
pub fn rotate(store: &Store, actor: &str, now: u64) -> Result<KeyRing, KeyStoreError> {
    let mut key_error = None;
    let ring = store.write(|tx| {
        let Some(bytes) = tx.get(RING_NAMESPACE, RING_KEY)? else {
            return Ok(None);
        };
        let mut ring = decode(&bytes)?;
        let old = ring.current().id.clone();
        let id = next_id(&describe(&ring), now);
        let rotated = RelayKey::generate(id.clone(), now).and_then(|k| ring.rotate(k, now));
        if let Err(e) = rotated {
            key_error = Some(e);
            return Ok(None);
        }
        ring.prune(now);
        tx.put_json(RING_NAMESPACE, RING_KEY, &ring)?;
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

/// The ring to mint with at `now`: the stored ring, unless its current key is younger than
/// [`KEY_PROPAGATION_SECS`]; then a ring whose current key is the newest previous key that
/// still verifies (so relays that have not re-read the ring yet accept the credential).
pub fn minting_ring(ring: &Arc<KeyRing>, now: u64) -> Arc<KeyRing> {
    if now >= ring.current().created.saturating_add(KEY_PROPAGATION_SECS) {
        return ring.clone();
    }
    // KeyRing keeps its previous keys private; its stored form has them.
    #[derive(Deserialize)]
    struct Previous {
        previous: Vec<RelayKey>,
    }
    let Ok(stored) =
        serde_json::to_value(ring.as_ref()).and_then(serde_json::from_value::<Previous>)
    else {
        return ring.clone();
    };
    let overlap = ring.overlap();
    let newest = stored
        .previous
        .into_iter()
        .filter(|k| {
            k.retired_at
                .is_some_and(|r| now < r.saturating_add(overlap))
        })
        .max_by_key(|k| k.created);
    match newest.map(|mut k| {
        k.retired_at = None;
        KeyRing::new(k, overlap)
    }) {
        Some(Ok(previous)) => Arc::new(previous),
        _ => ring.clone(),
    }
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
        let ring = match self.store.get_json::<KeyRing>(RING_NAMESPACE, RING_KEY)? {
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
