//! Stateless nonces: the server keeps no table, the nonce carries its own mint time and a
//! MAC binding it to the client transport address.
//!
//! Layout (45 ASCII characters):
//! `"obMatJos2"` + base64(24-bit security features) + base64url(timestamp u64 BE ‖ MAC[..16])
//! where MAC = HMAC-SHA256(secret, features ‖ timestamp ‖ client IP (16 bytes) ‖ port).
//! The RFC 8489 9.2 nonce cookie prefix tells RFC 8489 clients that the server supports
//! PASSWORD-ALGORITHMS (and, if set, USERHASH), which protects the algorithm negotiation
//! against downgrade.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::{IpAddr, SocketAddr};
use subtle::ConstantTimeEq;

const COOKIE: &[u8; 9] = b"obMatJos2";
const FEATURES_LEN: usize = 4;
const BODY_BYTES: usize = 8 + 16;
const BODY_LEN: usize = 32;
/// Length of every minted nonce.
pub const NONCE_LEN: usize = COOKIE.len() + FEATURES_LEN + BODY_LEN;
/// Nonces minted slightly "in the future" are tolerated (clock steps between workers).
const MAX_FUTURE_SKEW_SECS: u64 = 5;

/// The 24-bit STUN Security Features field (RFC 8489 18.1); bit 0 is the most significant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SecurityFeatures(pub u32);

impl SecurityFeatures {
    pub const PASSWORD_ALGORITHMS: SecurityFeatures = SecurityFeatures(0x80_0000);
    pub const USERNAME_ANONYMITY: SecurityFeatures = SecurityFeatures(0x40_0000);

    pub fn contains(self, other: SecurityFeatures) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn union(self, other: SecurityFeatures) -> SecurityFeatures {
        SecurityFeatures(self.0 | other.0)
    }

    /// Reads the features from a nonce with the RFC 8489 cookie; `None` without a cookie.
    pub fn from_nonce(nonce: &str) -> Option<SecurityFeatures> {
        let rest = nonce.as_bytes().strip_prefix(COOKIE.as_slice())?;
        let encoded = rest.get(..FEATURES_LEN)?;
        let mut out = [0u8; 3];
        match STANDARD.decode_slice(encoded, &mut out) {
            Ok(3) => Some(SecurityFeatures(u32::from_be_bytes([
                0, out[0], out[1], out[2],
            ]))),
            _ => None,
        }
    }
}

/// A minted nonce, held inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Nonce {
    bytes: [u8; NONCE_LEN],
}

impl Nonce {
    pub fn as_str(&self) -> &str {
        // Only ASCII from the cookie and base64 alphabets is ever written.
        std::str::from_utf8(&self.bytes).unwrap_or_default()
    }
}

impl std::fmt::Debug for Nonce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Outcome of checking a nonce a client sent back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStatus {
    Valid,
    /// Ours and untampered but expired: answer 438 Stale Nonce with a fresh one.
    Stale,
    /// Not ours, tampered, or bound to another client address: answer 401.
    Invalid,
}

/// Mints and checks nonces under a server secret.
pub struct NonceMinter {
    mac: Hmac<Sha256>,
    lifetime_secs: u64,
    features: SecurityFeatures,
}

impl NonceMinter {
    /// `secret` should be at least 32 random bytes, shared by all workers of the relay.
    pub fn new(secret: &[u8], lifetime_secs: u64, features: SecurityFeatures) -> Self {
        // HMAC accepts keys of any length; the error branch cannot be taken.
        let mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
        NonceMinter {
            mac,
            lifetime_secs,
            features,
        }
    }

    fn tag(&self, features: &[u8], timestamp: u64, client: SocketAddr) -> [u8; 16] {
        let ip = match client.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        let mut mac = self.mac.clone();
        mac.update(features);
        mac.update(&timestamp.to_be_bytes());
        mac.update(&ip.octets());
        mac.update(&client.port().to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&full[..16]);
        tag
    }

    /// A fresh nonce for `client` at `now` (unix seconds).
    pub fn mint(&self, now: u64, client: SocketAddr) -> Nonce {
        let mut bytes = [0u8; NONCE_LEN];
        bytes[..COOKIE.len()].copy_from_slice(COOKIE);
        let f = self.features.0.to_be_bytes();
        let features_end = COOKIE.len() + FEATURES_LEN;
        // Fixed sizes: 3 bytes -> 4 chars, 24 bytes -> 32 chars; encoding cannot fail.
        let _ = STANDARD.encode_slice(&f[1..], &mut bytes[COOKIE.len()..features_end]);
        let mut body = [0u8; BODY_BYTES];
        body[..8].copy_from_slice(&now.to_be_bytes());
        let tag = self.tag(&bytes[COOKIE.len()..features_end], now, client);
        body[8..].copy_from_slice(&tag);
        let _ = URL_SAFE_NO_PAD.encode_slice(body, &mut bytes[features_end..]);
        Nonce { bytes }
    }

    /// Checks a nonce received from `client` at `now`.
    pub fn check(&self, nonce: &str, now: u64, client: SocketAddr) -> NonceStatus {
        let bytes = nonce.as_bytes();
        if bytes.len() != NONCE_LEN || !bytes.starts_with(COOKIE) {
            return NonceStatus::Invalid;
        }
        let features_end = COOKIE.len() + FEATURES_LEN;
        let mut body = [0u8; BODY_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(&bytes[features_end..], &mut body) {
            Ok(BODY_BYTES) => {}
            _ => return NonceStatus::Invalid,
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&body[..8]);
        let timestamp = u64::from_be_bytes(ts);
        let expected = self.tag(&bytes[COOKIE.len()..features_end], timestamp, client);
        if !bool::from(expected.ct_eq(&body[8..])) {
            return NonceStatus::Invalid;
        }
        if timestamp > now.saturating_add(MAX_FUTURE_SKEW_SECS) {
            return NonceStatus::Invalid;
        }
        if now >= timestamp.saturating_add(self.lifetime_secs) {
            return NonceStatus::Stale;
        }
        NonceStatus::Valid
    }
}
