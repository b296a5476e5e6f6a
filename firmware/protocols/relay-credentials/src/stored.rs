//! The key ring as the roles keep it in the appliance store: the one definition the A/V
//! Authentication Service (mints), the A/V Edge (verifies), the tools and the tests share.
//!
//! Layout: namespace [`STORE_NAMESPACE`], key [`STORE_KEY`], value the [`KeyRing`] as JSON
//! ([`encode`] / [`decode`]). Whichever role starts first creates the ring
//! ([`load_or_initial`], inside the store's write transaction so two roles starting
//! together cannot create two different rings). The store itself stays out of this crate:
//! these functions take and return the stored bytes.

use crate::error::KeyError;
use crate::keyring::{KeyRing, RelayKey};

/// Store namespace of the ring.
pub const STORE_NAMESPACE: &str = "relay_keys";
/// Store key of the ring inside [`STORE_NAMESPACE`].
pub const STORE_KEY: &str = "ring";

/// Overlap of a new ring: a retired key keeps verifying this long. Longer than the longest
/// credential the A/V Authentication Service mints (480 minutes), so a credential minted
/// just before a rotation lives its whole life.
pub const DEFAULT_OVERLAP_SECS: u64 = 9 * 3600;
/// A relay re-reads the ring at least this often, so rotations reach it without any
/// coupling between the roles.
pub const RELAY_REFRESH_SECS: u64 = 5;
/// A new key is not minted with until it is this old, so every relay has re-read the ring
/// (see [`RELAY_REFRESH_SECS`]) before a credential signed with it arrives.
pub const KEY_PROPAGATION_SECS: u64 = 10;
const _: () = assert!(KEY_PROPAGATION_SECS > RELAY_REFRESH_SECS);
const _: () = assert!(DEFAULT_OVERLAP_SECS > 480 * 60);

/// Why the stored ring could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoredRingError {
    #[error("stored relay key ring {STORE_NAMESPACE}/{STORE_KEY} is not valid: {0}")]
    Corrupt(String),
    #[error("relay key ring: {0}")]
    Key(#[from] KeyError),
}

/// The stored form of `ring`.
pub fn encode(ring: &KeyRing) -> Result<Vec<u8>, StoredRingError> {
    serde_json::to_vec(ring).map_err(|e| StoredRingError::Corrupt(e.to_string()))
}

/// The ring from its stored form; a secret too short or a duplicate id is corruption too.
pub fn decode(bytes: &[u8]) -> Result<KeyRing, StoredRingError> {
    serde_json::from_slice(bytes).map_err(|e| StoredRingError::Corrupt(e.to_string()))
}

/// The id of a key created at `now`: `k<unix time>`.
fn key_id_at(now: u64) -> String {
    format!("k{now}")
}

/// The ring a role creates when the store has none: one random key `k<now>`, the default
/// overlap.
pub fn initial_ring(now: u64) -> Result<KeyRing, KeyError> {
    KeyRing::new(
        RelayKey::generate(key_id_at(now), now)?,
        DEFAULT_OVERLAP_SECS,
    )
}

/// The id of the next key of `ring`: `k<now>`, bumped past the highest numbered id so two
/// rotations in one second still get distinct ids.
pub fn next_key_id(ring: &KeyRing, now: u64) -> String {
    let highest = ring
        .keys()
        .filter_map(|k| k.id.strip_prefix('k').and_then(|n| n.parse::<u64>().ok()))
        .max()
        .unwrap_or(0);
    key_id_at(now.max(highest.saturating_add(1)))
}

/// What the store should hold, given what it holds.
#[derive(Debug)]
pub enum Loaded {
    /// The stored ring.
    Existing(KeyRing),
    /// There was none: this ring, whose stored form the caller writes in the same
    /// transaction it read in.
    Created { ring: KeyRing, stored: Vec<u8> },
}

impl Loaded {
    pub fn ring(&self) -> &KeyRing {
        match self {
            Loaded::Existing(ring) | Loaded::Created { ring, .. } => ring,
        }
    }

    pub fn into_ring(self) -> KeyRing {
        match self {
            Loaded::Existing(ring) | Loaded::Created { ring, .. } => ring,
        }
    }
}

/// Decodes the stored ring, or makes the initial one if `stored` is `None`.
pub fn load_or_initial(stored: Option<&[u8]>, now: u64) -> Result<Loaded, StoredRingError> {
    if let Some(bytes) = stored {
        return decode(bytes).map(Loaded::Existing);
    }
    let ring = initial_ring(now)?;
    let stored = encode(&ring)?;
    Ok(Loaded::Created { ring, stored })
}

/// The ring to mint with at `now`: `ring` itself, unless its current key is younger than
/// [`KEY_PROPAGATION_SECS`]; then a ring whose current key is the newest retired key that
/// still verifies (relays that have not re-read the ring yet accept what it signs). `None`
/// means `ring` itself.
pub fn minting_ring(ring: &KeyRing, now: u64) -> Option<KeyRing> {
    if now >= ring.current().created.saturating_add(KEY_PROPAGATION_SECS) {
        return None;
    }
    let overlap = ring.overlap();
    let newest = ring
        .previous()
        .iter()
        .filter(|k| k.accepted_until(overlap).is_some_and(|until| now < until))
        .max_by_key(|k| k.created)?;
    let mut key = newest.clone();
    key.retired_at = None;
    KeyRing::new(key, overlap).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    fn key(id: &str, byte: u8, created: u64) -> RelayKey {
        RelayKey::new(id, vec![byte; 32], created).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn stored_form_round_trips_and_rejects_damage() {
        let mut ring = KeyRing::new(key("k1", 1, T0), 3600).unwrap_or_else(|e| panic!("{e}"));
        ring.rotate(key("k2", 2, T0 + 10), T0 + 10)
            .unwrap_or_else(|e| panic!("{e}"));
        let bytes = encode(&ring).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decode(&bytes), Ok(ring));
        assert!(matches!(
            decode(b"{\"current\":"),
            Err(StoredRingError::Corrupt(_))
        ));
        // A short secret in the store is refused like one in a config file.
        let short = br#"{"current":{"id":"k1","secret":[1,2,3],"created":0,"retired_at":null},"previous":[],"overlap":60}"#;
        assert!(matches!(decode(short), Err(StoredRingError::Corrupt(_))));
    }

    #[test]
    fn an_empty_store_gets_the_initial_ring_and_a_full_one_keeps_its_ring() {
        let created = load_or_initial(None, T0).unwrap_or_else(|e| panic!("{e}"));
        let Loaded::Created { ring, stored } = created else {
            panic!("nothing was created");
        };
        assert_eq!(ring.current().id, format!("k{T0}"));
        assert_eq!(ring.current().created, T0);
        assert_eq!(ring.overlap(), DEFAULT_OVERLAP_SECS);
        let again = load_or_initial(Some(&stored), T0 + 5).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(&again, Loaded::Existing(r) if *r == ring));
        assert!(load_or_initial(Some(b"junk"), T0).is_err());
    }

    #[test]
    fn next_key_ids_are_distinct_within_one_second() {
        let mut ring = initial_ring(T0).unwrap_or_else(|e| panic!("{e}"));
        let id = next_key_id(&ring, T0 + 100);
        assert_eq!(id, format!("k{}", T0 + 100));
        ring.rotate(key(&id, 2, T0 + 100), T0 + 100)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(next_key_id(&ring, T0 + 100), format!("k{}", T0 + 101));
        // Ids that are not `k<number>` do not count.
        let odd = KeyRing::new(key("srtp", 1, 0), 60).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(next_key_id(&odd, 7), "k7");
    }

    #[test]
    fn a_fresh_key_mints_only_after_propagation() {
        let mut ring =
            KeyRing::new(key("k1", 1, T0), DEFAULT_OVERLAP_SECS).unwrap_or_else(|e| panic!("{e}"));
        // A ring with no previous key mints with its current key at once.
        assert!(minting_ring(&ring, T0).is_none());
        let rotated_at = T0 + 1000;
        ring.rotate(key("k2", 2, rotated_at), rotated_at)
            .unwrap_or_else(|e| panic!("{e}"));
        let early = minting_ring(&ring, rotated_at + KEY_PROPAGATION_SECS - 1)
            .unwrap_or_else(|| panic!("the previous key should mint"));
        assert_eq!(early.current().id, "k1");
        let now = rotated_at + 5;
        let c = early
            .mint("alice", 60, now)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ring.verify(&c.username, &c.password, now), Ok("k1".into()));
        assert!(minting_ring(&ring, rotated_at + KEY_PROPAGATION_SECS).is_none());
        // A previous key past its overlap does not mint even during propagation.
        let mut late = KeyRing::new(key("k1", 1, T0), 10).unwrap_or_else(|e| panic!("{e}"));
        late.rotate(key("k2", 2, T0), T0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(minting_ring(&late, T0 + 10).is_none());
    }
}
