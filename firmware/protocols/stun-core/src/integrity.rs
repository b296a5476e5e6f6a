//! MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT (RFC 8489 14.5-14.7) and
//! long-term credential keys (RFC 8489 9.2).
//!
//! All three are computed over the message up to the attribute, with the header length
//! field rewritten as if the attribute were the last one. The hashes are fed the original
//! bytes plus a patched length, so verification never copies the message.

use crate::attributes::{PASSWORD_ALGORITHM_MD5, PASSWORD_ALGORITHM_SHA256};
use crate::header::HEADER_LEN;
use crate::message::Message;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use sha2::Sha256;

type HmacSha1 = Hmac<Sha1>;
type HmacSha256 = Hmac<Sha256>;

/// XORed into the CRC so that FINGERPRINT differs from a CRC other protocols might carry.
const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// Feeds `prefix` (a message cut just before an attribute) to `update`, with the length
/// field replaced by the length the message has when that attribute is its last.
#[inline]
fn feed_adjusted(prefix: &[u8], attribute_len: usize, mut update: impl FnMut(&[u8])) {
    // Callers only pass prefixes of validated or self-built messages, so both fit in u16.
    let adjusted = (prefix.len() - HEADER_LEN + attribute_len) as u16;
    update(&prefix[0..2]);
    update(&adjusted.to_be_bytes());
    update(&prefix[4..]);
}

/// FINGERPRINT value for a message whose FINGERPRINT attribute starts at `prefix.len()`.
pub(crate) fn fingerprint_value(prefix: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    feed_adjusted(prefix, 8, |b| crc.update(b));
    crc.finalize() ^ FINGERPRINT_XOR
}

/// HMAC-SHA1 for a MESSAGE-INTEGRITY attribute starting at `prefix.len()`.
pub(crate) fn hmac_sha1_prefix(key: &[u8], prefix: &[u8]) -> HmacSha1 {
    // HMAC accepts keys of any length; the error branch cannot be taken.
    let mut mac = <HmacSha1 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    feed_adjusted(prefix, 4 + 20, |b| mac.update(b));
    mac
}

/// HMAC-SHA256 for a MESSAGE-INTEGRITY-SHA256 attribute of `tag_len` bytes at `prefix.len()`.
pub(crate) fn hmac_sha256_prefix(key: &[u8], prefix: &[u8], tag_len: usize) -> HmacSha256 {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    feed_adjusted(prefix, 4 + tag_len, |b| mac.update(b));
    mac
}

/// Checks MESSAGE-INTEGRITY (HMAC-SHA1) under `key` in constant time. `false` when the
/// message has none. For long-term credentials `key` comes from [`long_term_key_md5`] /
/// [`long_term_key_sha256`]; for short-term credentials it is the password itself.
pub fn verify_integrity(msg: &Message<'_>, key: &[u8]) -> bool {
    let Some(offset) = msg.message_integrity_offset() else {
        return false;
    };
    let bytes = msg.as_bytes();
    let tag = &bytes[offset + 4..offset + 24];
    hmac_sha1_prefix(key, &bytes[..offset])
        .verify_slice(tag)
        .is_ok()
}

/// Checks MESSAGE-INTEGRITY-SHA256 (possibly truncated to 16..32 bytes) in constant time.
pub fn verify_integrity_sha256(msg: &Message<'_>, key: &[u8]) -> bool {
    let Some(offset) = msg.message_integrity_sha256_offset() else {
        return false;
    };
    let bytes = msg.as_bytes();
    let len = u16::from_be_bytes([bytes[offset + 2], bytes[offset + 3]]) as usize;
    let tag = &bytes[offset + 4..offset + 4 + len];
    hmac_sha256_prefix(key, &bytes[..offset], len)
        .verify_truncated_left(tag)
        .is_ok()
}

/// Long-term key for PASSWORD-ALGORITHM MD5 (and the RFC 5389 default):
/// MD5(username ":" realm ":" password). Inputs must already be OpaqueString-prepared;
/// relay credentials are ASCII, for which that preparation is the identity.
pub fn long_term_key_md5(username: &str, realm: &str, password: &str) -> [u8; 16] {
    let mut h = Md5::new();
    for part in [username, ":", realm, ":", password] {
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

/// Long-term key for PASSWORD-ALGORITHM SHA-256: SHA-256(username ":" realm ":" password).
pub fn long_term_key_sha256(username: &str, realm: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [username, ":", realm, ":", password] {
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

/// A long-term key for either password algorithm.
#[derive(Clone, PartialEq, Eq)]
pub enum LongTermKey {
    Md5([u8; 16]),
    Sha256([u8; 32]),
}

impl LongTermKey {
    /// Derives the key for a PASSWORD-ALGORITHM number; `None` for an unknown algorithm.
    pub fn derive(algorithm: u16, username: &str, realm: &str, password: &str) -> Option<Self> {
        match algorithm {
            PASSWORD_ALGORITHM_MD5 => Some(LongTermKey::Md5(long_term_key_md5(
                username, realm, password,
            ))),
            PASSWORD_ALGORITHM_SHA256 => Some(LongTermKey::Sha256(long_term_key_sha256(
                username, realm, password,
            ))),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            LongTermKey::Md5(k) => k,
            LongTermKey::Sha256(k) => k,
        }
    }
}

impl std::fmt::Debug for LongTermKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys never reach logs.
        f.write_str("LongTermKey(..)")
    }
}

/// USERHASH value: SHA-256(username ":" realm) (RFC 8489 14.4).
pub fn userhash(username: &str, realm: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [username, ":", realm] {
        h.update(part.as_bytes());
    }
    h.finalize().into()
}
