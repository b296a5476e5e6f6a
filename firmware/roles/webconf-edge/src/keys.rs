//! The session-key ring in the store: namespace `webconf_edge`, one record per `key:<id>`.

use std::time::{SystemTime, UNIX_EPOCH};

use edged_store::{AuditRecord, Store, StoreError};
use rand::RngCore;
use session_key::{KeyRing, KeyRingError, SessionSecret};

pub const NAMESPACE: &str = "webconf_edge";

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("webconf_edge session keys in the store: {0}")]
    Ring(#[from] KeyRingError),
    #[error("webconf_edge session key record {key} is not valid JSON: {reason}")]
    Record { key: String, reason: String },
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn fresh_secret() -> [u8; 32] {
    let mut s = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut s);
    s
}

/// Every stored key record.
pub fn load(store: &Store) -> Result<KeyRing, KeyStoreError> {
    let mut records = Vec::new();
    for (key, bytes) in store.list(NAMESPACE)? {
        if !key.starts_with("key:") {
            continue;
        }
        let rec: SessionSecret =
            serde_json::from_slice(&bytes).map_err(|e| KeyStoreError::Record {
                key: key.clone(),
                reason: e.to_string(),
            })?;
        records.push(rec);
    }
    Ok(KeyRing::from_records(records)?)
}

/// The stored ring; on first start (no key yet) a new random key 1 is created and stored.
pub fn load_or_create(store: &Store) -> Result<KeyRing, KeyStoreError> {
    let ring = load(store)?;
    if ring.current(unix_now()).is_some() {
        return Ok(ring);
    }
    rotate(store, 0, edged_role::Actor::Edged)
}

/// Adds a new random key as current; older keys keep verifying for `overlap_secs`.
/// Retired keys are removed from the store in the same transaction.
pub fn rotate(
    store: &Store,
    overlap_secs: u64,
    actor: edged_role::Actor,
) -> Result<KeyRing, KeyStoreError> {
    let now = unix_now();
    let mut ring = load(store)?;
    let new = ring.rotate(&fresh_secret(), now, overlap_secs)?;
    let gone = ring.prune(now);
    store.write(|tx| {
        for id in &gone {
            tx.delete(NAMESPACE, &format!("key:{id}"))?;
        }
        for rec in ring.records() {
            tx.put_json(NAMESPACE, &format!("key:{}", rec.id), &rec)?;
        }
        tx.audit(AuditRecord::new(
            actor.as_str(),
            "webconf_edge",
            format!(
                "new session key {} (older keys retire in {overlap_secs} s)",
                new.id
            ),
        ))?;
        Ok(())
    })?;
    tracing::info!(target: "webconf_edge", key_id = new.id, overlap_secs, "new session key");
    Ok(ring)
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_key::{ParticipantRole, TokenLimits};

    const LIMITS: TokenLimits = TokenLimits {
        max_lifetime_secs: 3_600,
        max_clock_skew_secs: 30,
    };

    #[test]
    fn first_start_creates_one_key_and_restarts_keep_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let a = load_or_create(&store).unwrap();
        let b = load_or_create(&store).unwrap();
        assert_eq!(a.records(), b.records());
        assert_eq!(a.records().len(), 1);
        let t = a
            .mint("c", ParticipantRole::Attendee, 60, unix_now())
            .unwrap();
        assert!(b.verify(&t, "c", unix_now(), &LIMITS).is_ok());
    }

    #[test]
    fn rotation_is_stored_with_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let first = load_or_create(&store).unwrap();
        let old = first
            .mint("c", ParticipantRole::Attendee, 60, unix_now())
            .unwrap();
        let ring = rotate(&store, 600, edged_role::Actor::Edgectl).unwrap();
        let reloaded = load(&store).unwrap();
        assert_eq!(ring.records(), reloaded.records());
        assert_eq!(reloaded.current(unix_now()).map(|k| k.id), Some(2));
        assert!(
            reloaded.verify(&old, "c", unix_now(), &LIMITS).is_ok(),
            "old key verifies in the overlap"
        );
        // Without overlap the old key is gone at once.
        let ring = rotate(&store, 0, edged_role::Actor::Edgectl).unwrap();
        assert!(ring
            .records()
            .iter()
            .all(|r| r.id == 3 || r.retire_at.is_some()));
    }
}
