//! Error types. "Not STUN" (drop silently or hand to another protocol) is kept apart from
//! "malformed STUN" (a server answers 400 to a request it can identify).

use crate::header::{Class, Header, HeaderError};
use thiserror::Error;

/// Why bytes were rejected as not being a STUN message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum NotStun {
    #[error("shorter than the 20-byte header")]
    TooShort,
    #[error("first two bits are not zero")]
    LeadingBitsSet,
    #[error("magic cookie mismatch")]
    BadMagicCookie,
    /// RFC 8489 section 7.3: a FINGERPRINT that does not match marks the packet as belonging
    /// to a multiplexed protocol, not as a broken STUN message.
    #[error("FINGERPRINT does not match")]
    FingerprintMismatch,
}

impl From<HeaderError> for NotStun {
    fn from(e: HeaderError) -> Self {
        match e {
            HeaderError::TooShort => NotStun::TooShort,
            HeaderError::LeadingBitsSet => NotStun::LeadingBitsSet,
            HeaderError::BadMagicCookie => NotStun::BadMagicCookie,
        }
    }
}

/// Why a message with a valid STUN header is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Malformed {
    #[error("message length {0} is not a multiple of 4")]
    LengthNotMultipleOfFour(u16),
    #[error("message length {declared} does not match the {available} bytes after the header")]
    LengthMismatch { declared: usize, available: usize },
    #[error("attribute {attr_type:#06x} at offset {offset} runs past the end of the message (with padding)")]
    AttributeOverrun { attr_type: u16, offset: usize },
    #[error("attribute {attr_type:#06x} follows FINGERPRINT")]
    AttributeAfterFingerprint { attr_type: u16 },
    #[error("attribute {attr_type:#06x} has invalid length {len}")]
    BadLength { attr_type: u16, len: usize },
}

/// Error decoding a whole message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("not STUN: {0}")]
    NotStun(NotStun),
    #[error("malformed STUN {class:?} {method:?}: {reason}", class = header.class, method = header.method)]
    Malformed { header: Header, reason: Malformed },
}

impl DecodeError {
    /// The header of a malformed *request*: the one case where a server answers (400 Bad
    /// Request, same transaction id). Malformed indications and responses are dropped.
    pub fn bad_request(&self) -> Option<&Header> {
        match self {
            DecodeError::Malformed { header, .. } if header.class == Class::Request => Some(header),
            _ => None,
        }
    }
}

/// Error decoding the value of one attribute; for a request this also means 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AttributeError {
    #[error("attribute {attr_type:#06x} has invalid length {len}")]
    BadLength { attr_type: u16, len: usize },
    #[error("attribute {attr_type:#06x} is not valid UTF-8")]
    NotUtf8 { attr_type: u16 },
    #[error("address family {0:#04x} is not IPv4 or IPv6")]
    UnknownAddressFamily(u8),
    #[error("error code class {0} is outside 3..=6")]
    BadErrorClass(u8),
    #[error("error code number {0} is outside 0..=99")]
    BadErrorNumber(u8),
}

/// Error building a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("message would exceed the 16-bit length field")]
    MessageTooLong,
    #[error("attribute {attr_type:#06x} value of {len} bytes exceeds its limit")]
    ValueTooLong { attr_type: u16, len: usize },
    #[error("attribute {attr_type:#06x} cannot follow MESSAGE-INTEGRITY or FINGERPRINT")]
    AfterIntegrity { attr_type: u16 },
    #[error("error code {0} is outside 300..=699")]
    BadErrorCode(u16),
}
