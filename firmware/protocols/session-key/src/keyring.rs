//! Shared secrets with ids: minting, verification and rotation with overlap.
//!
//! Like a TURN REST secret ring: the newest live secret signs new tokens; older secrets
//! keep verifying until their `retire_at`, so tokens minted just before a rotation stay
//! good for the overlap and nobody is cut off mid-meeting by a key change.

use serde::{Deserialize, Serialize};
use zeroize::Zeroize as _;

use crate::token::{self, Claims, ParticipantRole, TokenLimits, VerifyError, MAC_LEN};

/// Shortest secret accepted: HMAC-SHA256 gains nothing above 32 bytes and is weak far below.
pub const MIN_SECRET_LEN: usize = 16;

/// One shared secret, in the form the store and key files keep it. Its `Debug` leaves the
/// secret out and it is cleared from memory when dropped.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSecret {
    pub id: u32,
    /// The secret as lowercase hex.
    pub secret_hex: String,
    /// Unix seconds when it was created.
    pub created_at: u64,
    /// Unix seconds after which tokens signed with it are refused; none while current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<u64>,
}

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSecret")
            .field("id", &self.id)
            .field("created_at", &self.created_at)
            .field("retire_at", &self.retire_at)
            .finish_non_exhaustive()
    }
}

impl Drop for SessionSecret {
    fn drop(&mut self) {
        self.secret_hex.zeroize();
    }
}

impl SessionSecret {
    /// A secret from raw bytes.
    pub fn new(id: u32, secret: &[u8], created_at: u64) -> Result<Self, KeyRingError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyRingError::ShortSecret(id));
        }
        Ok(Self {
            id,
            secret_hex: to_hex(secret),
            created_at,
            retire_at: None,
        })
    }

    /// The raw secret bytes.
    pub fn secret(&self) -> Result<Vec<u8>, KeyRingError> {
        let bytes = from_hex(&self.secret_hex).ok_or(KeyRingError::BadHex(self.id))?;
        if bytes.len() < MIN_SECRET_LEN {
            return Err(KeyRingError::ShortSecret(self.id));
        }
        Ok(bytes)
    }

    fn live_at(&self, now: u64) -> bool {
        self.retire_at.is_none_or(|r| now <= r)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    #[error("key {0}: secret is not hex")]
    BadHex(u32),
    #[error("key {0}: secret shorter than {MIN_SECRET_LEN} bytes")]
    ShortSecret(u32),
    #[error("key {0} appears twice")]
    DuplicateId(u32),
    #[error("no live key to sign with")]
    NoCurrentKey,
    #[error("cannot mint: {0}")]
    Mint(&'static str),
}

/// A decoded secret kept beside its record so verification does no hex work.
#[derive(Clone)]
struct Entry {
    record: SessionSecret,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.record.fmt(f)
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

/// The set of secrets shared between the edge and the conferencing servers.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    entries: Vec<Entry>,
}

impl KeyRing {
    /// A ring from stored records; refuses bad hex, short secrets and duplicate ids.
    pub fn from_records(
        records: impl IntoIterator<Item = SessionSecret>,
    ) -> Result<Self, KeyRingError> {
        let mut ring = KeyRing::default();
        for r in records {
            ring.insert(r)?;
        }
        Ok(ring)
    }

    pub fn insert(&mut self, record: SessionSecret) -> Result<(), KeyRingError> {
        if self.entries.iter().any(|e| e.record.id == record.id) {
            return Err(KeyRingError::DuplicateId(record.id));
        }
        let secret = record.secret()?;
        self.entries.push(Entry { record, secret });
        self.entries.sort_by_key(|e| e.record.id);
        Ok(())
    }

    pub fn records(&self) -> Vec<SessionSecret> {
        self.entries.iter().map(|e| e.record.clone()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The key new tokens are signed with: the highest id never scheduled to retire, or
    /// failing that the highest id still live.
    pub fn current(&self, now: u64) -> Option<&SessionSecret> {
        let live = || {
            self.entries
                .iter()
                .rev()
                .map(|e| &e.record)
                .filter(|r| r.live_at(now))
        };
        live()
            .find(|r| r.retire_at.is_none())
            .or_else(|| live().next())
    }

    /// Adds `secret` as the new current key (id one above the highest) and schedules every
    /// key without a retirement to retire `overlap_secs` from `now`. Returns the new record.
    pub fn rotate(
        &mut self,
        secret: &[u8],
        now: u64,
        overlap_secs: u64,
    ) -> Result<SessionSecret, KeyRingError> {
        let id = self
            .entries
            .iter()
            .map(|e| e.record.id)
            .max()
            .map_or(1, |m| m.wrapping_add(1).max(1));
        let record = SessionSecret::new(id, secret, now)?;
        for e in &mut self.entries {
            let retire = now.saturating_add(overlap_secs);
            e.record.retire_at = Some(e.record.retire_at.map_or(retire, |r| r.min(retire)));
        }
        self.insert(record.clone())?;
        Ok(record)
    }

    /// Drops keys retired before `now`; returns their ids.
    pub fn prune(&mut self, now: u64) -> Vec<u32> {
        let gone: Vec<u32> = self
            .entries
            .iter()
            .filter(|e| !e.record.live_at(now))
            .map(|e| e.record.id)
            .collect();
        self.entries.retain(|e| e.record.live_at(now));
        gone
    }

    /// Mints a token for one participant, issued at `now` and valid for `lifetime_secs`.
    pub fn mint(
        &self,
        conference_id: &str,
        role: ParticipantRole,
        lifetime_secs: u64,
        now: u64,
    ) -> Result<String, KeyRingError> {
        let current = self.current(now).ok_or(KeyRingError::NoCurrentKey)?;
        let entry = self
            .entries
            .iter()
            .find(|e| e.record.id == current.id)
            .ok_or(KeyRingError::NoCurrentKey)?;
        let claims = Claims {
            conference_id: conference_id.to_owned(),
            role,
            issued_at: now,
            expires_at: now.saturating_add(lifetime_secs),
            key_id: current.id,
        };
        token::sign_text(&claims, &entry.secret).map_err(KeyRingError::Mint)
    }

    /// Verifies a token for `conference_id` at `now`, within `limits` whatever the token
    /// claims. The signature is checked before age, expiry and conference, so an unsigned
    /// guess learns nothing but "bad signature"; an unknown key id costs the same MAC work
    /// as a known one, so timing does not tell them apart either.
    pub fn verify(
        &self,
        text: &str,
        conference_id: &str,
        now: u64,
        limits: &TokenLimits,
    ) -> Result<Claims, VerifyError> {
        let parsed = token::parse(text)?;
        let id = parsed.claims.key_id;
        let Some(entry) = self
            .entries
            .iter()
            .find(|e| e.record.id == id && e.record.live_at(now))
        else {
            let _ = token::mac_matches(&parsed.signed, &parsed.mac, &[0u8; MAC_LEN]);
            return Err(VerifyError::UnknownKey(id));
        };
        if !token::mac_matches(&parsed.signed, &parsed.mac, &entry.secret) {
            return Err(VerifyError::BadSignature);
        }
        limits.check_age(&parsed.claims, now)?;
        if now > parsed.claims.expires_at {
            return Err(VerifyError::Expired {
                expires_at: parsed.claims.expires_at,
                now,
            });
        }
        if parsed.claims.conference_id != conference_id {
            return Err(VerifyError::WrongConference);
        }
        Ok(parsed.claims)
    }
}

/// Lowercase hex of bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Bytes of a hex text (either case); none when it is not whole hex.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    let t = text.trim().as_bytes();
    if t.len() & 1 == 1 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    t.chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_790_000_000;
    const LIMITS: TokenLimits = TokenLimits {
        max_lifetime_secs: 8 * 3_600,
        max_clock_skew_secs: 30,
    };

    fn ring() -> KeyRing {
        let mut r = KeyRing::default();
        r.insert(SessionSecret::new(1, &[7u8; 32], NOW).unwrap())
            .unwrap();
        r
    }

    #[test]
    fn minted_token_verifies_with_its_claims() {
        let r = ring();
        let t = r
            .mint("conf-1", ParticipantRole::Presenter, 600, NOW)
            .unwrap();
        let c = r.verify(&t, "conf-1", NOW + 10, &LIMITS).unwrap();
        assert_eq!(c.conference_id, "conf-1");
        assert_eq!(c.role, ParticipantRole::Presenter);
        assert_eq!(c.expires_at, NOW + 600);
        assert_eq!(c.key_id, 1);
    }

    #[test]
    fn expiry_is_inclusive_then_refused() {
        let r = ring();
        let t = r.mint("c", ParticipantRole::Attendee, 60, NOW).unwrap();
        assert!(r.verify(&t, "c", NOW + 60, &LIMITS).is_ok());
        assert_eq!(
            r.verify(&t, "c", NOW + 61, &LIMITS),
            Err(VerifyError::Expired {
                expires_at: NOW + 60,
                now: NOW + 61
            })
        );
    }

    #[test]
    fn wrong_conference_is_refused() {
        let r = ring();
        let t = r.mint("c-a", ParticipantRole::Attendee, 60, NOW).unwrap();
        assert_eq!(
            r.verify(&t, "c-b", NOW, &LIMITS),
            Err(VerifyError::WrongConference)
        );
    }

    #[test]
    fn other_secret_is_bad_signature_and_unknown_id_is_unknown_key() {
        let mut other = KeyRing::default();
        other
            .insert(SessionSecret::new(1, &[8u8; 32], NOW).unwrap())
            .unwrap();
        let t = other.mint("c", ParticipantRole::Attendee, 60, NOW).unwrap();
        assert_eq!(
            ring().verify(&t, "c", NOW, &LIMITS),
            Err(VerifyError::BadSignature)
        );
        let mut third = KeyRing::default();
        third
            .insert(SessionSecret::new(9, &[7u8; 32], NOW).unwrap())
            .unwrap();
        let t9 = third.mint("c", ParticipantRole::Attendee, 60, NOW).unwrap();
        assert_eq!(
            ring().verify(&t9, "c", NOW, &LIMITS),
            Err(VerifyError::UnknownKey(9))
        );
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine as _;
        let r = ring();
        let t = r.mint("conf", ParticipantRole::Attendee, 60, NOW).unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        for i in 0..raw.len() * 8 {
            let mut m = raw.clone();
            m[i / 8] ^= 1 << (i % 8);
            let res = r.verify(&URL_SAFE_NO_PAD.encode(&m), "conf", NOW, &LIMITS);
            assert!(res.is_err(), "bit {i} flipped still verifies");
        }
    }

    #[test]
    fn a_token_older_than_the_maximum_lifetime_is_refused_whatever_its_expiry() {
        let r = ring();
        // Minted two days ago with a lifetime of a year: its own expiry is far away.
        let old = r
            .mint(
                "c",
                ParticipantRole::Attendee,
                365 * 86_400,
                NOW - 2 * 86_400,
            )
            .unwrap();
        assert_eq!(
            r.verify(&old, "c", NOW, &LIMITS),
            Err(VerifyError::TooOld {
                issued_at: NOW - 2 * 86_400,
                max_lifetime: LIMITS.max_lifetime_secs,
                now: NOW
            })
        );
    }

    #[test]
    fn a_token_issued_in_the_future_is_refused() {
        let r = ring();
        let future = r
            .mint("c", ParticipantRole::Attendee, 600, NOW + 3_600)
            .unwrap();
        assert_eq!(
            r.verify(&future, "c", NOW, &LIMITS),
            Err(VerifyError::IssuedInFuture {
                issued_at: NOW + 3_600,
                now: NOW
            })
        );
        // A server clock a few seconds ahead is tolerated.
        let close = r
            .mint("c", ParticipantRole::Attendee, 600, NOW + 20)
            .unwrap();
        assert!(r.verify(&close, "c", NOW, &LIMITS).is_ok());
    }

    #[test]
    fn every_other_character_at_the_end_is_refused() {
        // Conference ids of 1 to 3 bytes give every length modulo 3, so the last character
        // carries 2, 4 or 0 unused bits.
        let r = ring();
        for conf in ["a", "ab", "abc"] {
            let t = r.mint(conf, ParticipantRole::Attendee, 60, NOW).unwrap();
            for pos in [t.len() - 1, t.len() - 2] {
                for c in (0u8..=127).filter(|c| c.is_ascii_graphic()) {
                    let mut m = t.clone().into_bytes();
                    if m[pos] == c {
                        continue;
                    }
                    m[pos] = c;
                    let text = String::from_utf8(m).unwrap();
                    assert!(
                        r.verify(&text, conf, NOW, &LIMITS).is_err(),
                        "{t} -> {text} still verifies"
                    );
                }
            }
        }
    }

    #[test]
    fn rotation_overlaps_then_retires_the_old_key() {
        let mut r = ring();
        let old = r.mint("c", ParticipantRole::Attendee, 3600, NOW).unwrap();
        let new_key = r.rotate(&[9u8; 32], NOW + 100, 300).unwrap();
        assert_eq!(new_key.id, 2);
        assert_eq!(r.current(NOW + 100).map(|k| k.id), Some(2));
        let fresh = r
            .mint("c", ParticipantRole::Attendee, 3600, NOW + 100)
            .unwrap();
        assert_eq!(r.verify(&fresh, "c", NOW + 101, &LIMITS).unwrap().key_id, 2);
        // Inside the overlap the old token still works; after it, its key is unknown.
        assert!(r.verify(&old, "c", NOW + 400, &LIMITS).is_ok());
        assert_eq!(
            r.verify(&old, "c", NOW + 401, &LIMITS),
            Err(VerifyError::UnknownKey(1))
        );
        assert_eq!(r.prune(NOW + 401), vec![1]);
        assert_eq!(r.records().len(), 1);
        assert!(r.verify(&fresh, "c", NOW + 402, &LIMITS).is_ok());
    }

    #[test]
    fn a_second_rotation_never_extends_an_earlier_retirement() {
        let mut r = ring();
        r.rotate(&[2u8; 32], NOW, 100).unwrap();
        r.rotate(&[3u8; 32], NOW + 10, 1000).unwrap();
        let recs = r.records();
        assert_eq!(recs[0].retire_at, Some(NOW + 100));
        assert_eq!(recs[1].retire_at, Some(NOW + 1010));
        assert_eq!(recs[2].retire_at, None);
    }

    #[test]
    fn empty_or_fully_retired_ring_cannot_mint() {
        assert_eq!(
            KeyRing::default().mint("c", ParticipantRole::Attendee, 1, NOW),
            Err(KeyRingError::NoCurrentKey)
        );
        let mut r = ring();
        r.rotate(&[3u8; 32], NOW, 10).unwrap();
        r.prune(NOW);
        assert!(r.mint("c", ParticipantRole::Attendee, 1, NOW).is_ok());
    }

    #[test]
    fn bad_records_are_refused_by_name() {
        let mut bad = SessionSecret::new(3, &[1u8; 32], NOW).unwrap();
        bad.secret_hex = "zz".into();
        assert_eq!(
            KeyRing::from_records([bad]).err(),
            Some(KeyRingError::BadHex(3))
        );
        assert_eq!(
            SessionSecret::new(4, &[1u8; 8], NOW).err(),
            Some(KeyRingError::ShortSecret(4))
        );
        let a = SessionSecret::new(5, &[1u8; 32], NOW).unwrap();
        assert_eq!(
            KeyRing::from_records([a.clone(), a]).err(),
            Some(KeyRingError::DuplicateId(5))
        );
    }

    #[test]
    fn records_survive_json() {
        let mut r = ring();
        r.rotate(&[5u8; 20], NOW, 60).unwrap();
        let json = serde_json::to_string(&r.records()).unwrap();
        let back: Vec<SessionSecret> = serde_json::from_str(&json).unwrap();
        let r2 = KeyRing::from_records(back).unwrap();
        let t = r.mint("c", ParticipantRole::Attendee, 60, NOW).unwrap();
        assert!(r2.verify(&t, "c", NOW, &LIMITS).is_ok());
    }

    #[test]
    fn hex_round_trip_and_rejects() {
        let b: Vec<u8> = (0..=255).collect();
        assert_eq!(from_hex(&to_hex(&b)), Some(b));
        assert_eq!(from_hex("ABcd"), Some(vec![0xab, 0xcd]));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("gg"), None);
    }
}
