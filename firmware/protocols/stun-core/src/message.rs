//! Zero-copy decoding of a whole STUN message: framing checks, FINGERPRINT, attribute walk.

use crate::attribute_type::{attr, is_comprehension_required, is_known};
use crate::attributes::{padded, Attribute};
use crate::error::{AttributeError, DecodeError, Malformed, NotStun};
use crate::header::{Class, Header, Method, TransactionId, HEADER_LEN};
use crate::integrity::fingerprint_value;
use std::net::SocketAddr;

/// One attribute as it sits in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawAttribute<'a> {
    pub attr_type: u16,
    pub value: &'a [u8],
    /// Offset of the attribute header from the start of the message.
    pub offset: usize,
}

/// A validated STUN message borrowing the datagram (or stream frame) it was decoded from.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    bytes: &'a [u8],
    header: Header,
    /// Offset of the first MESSAGE-INTEGRITY(-SHA256): later attributes other than
    /// MESSAGE-INTEGRITY-SHA256 and FINGERPRINT are ignored (RFC 8489 14.5/14.6).
    integrity_start: usize,
    message_integrity: Option<usize>,
    message_integrity_sha256: Option<usize>,
}

/// Reads the attribute at `offset`; `None` when it (with padding) does not fit in `bytes`.
#[inline]
fn attribute_at(bytes: &[u8], offset: usize) -> Option<RawAttribute<'_>> {
    let head = bytes.get(offset..offset + 4)?;
    let attr_type = u16::from_be_bytes([head[0], head[1]]);
    let len = u16::from_be_bytes([head[2], head[3]]) as usize;
    let start = offset + 4;
    // Padding is part of the framing: a value whose padding is cut off is malformed.
    bytes.get(start..start + padded(len))?;
    Some(RawAttribute {
        attr_type,
        value: &bytes[start..start + len],
        offset,
    })
}

impl<'a> Message<'a> {
    /// Decodes a message that must fill `bytes` exactly (a UDP datagram or one stream frame).
    pub fn decode(bytes: &'a [u8]) -> Result<Message<'a>, DecodeError> {
        let header = Header::parse(bytes).map_err(|e| DecodeError::NotStun(e.into()))?;
        let malformed = |reason| DecodeError::Malformed { header, reason };
        let declared = header.length as usize;
        if declared % 4 != 0 {
            return Err(malformed(Malformed::LengthNotMultipleOfFour(header.length)));
        }
        let available = bytes.len() - HEADER_LEN;
        if declared != available {
            return Err(malformed(Malformed::LengthMismatch {
                declared,
                available,
            }));
        }

        let mut offset = HEADER_LEN;
        let mut integrity_start = bytes.len();
        let mut message_integrity = None;
        let mut message_integrity_sha256 = None;
        let mut fingerprint = None;
        while offset < bytes.len() {
            let Some(raw) = attribute_at(bytes, offset) else {
                let attr_type = bytes
                    .get(offset..offset + 2)
                    .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
                return Err(malformed(Malformed::AttributeOverrun { attr_type, offset }));
            };
            if fingerprint.is_some() {
                return Err(malformed(Malformed::AttributeAfterFingerprint {
                    attr_type: raw.attr_type,
                }));
            }
            let bad_length = || {
                malformed(Malformed::BadLength {
                    attr_type: raw.attr_type,
                    len: raw.value.len(),
                })
            };
            match raw.attr_type {
                attr::MESSAGE_INTEGRITY
                    if message_integrity.is_none() && integrity_start == bytes.len() =>
                {
                    if raw.value.len() != 20 {
                        return Err(bad_length());
                    }
                    message_integrity = Some(offset);
                    integrity_start = offset;
                }
                attr::MESSAGE_INTEGRITY_SHA256 if message_integrity_sha256.is_none() => {
                    let len = raw.value.len();
                    if !(16..=32).contains(&len) || len % 4 != 0 {
                        return Err(bad_length());
                    }
                    message_integrity_sha256 = Some(offset);
                    integrity_start = integrity_start.min(offset);
                }
                attr::FINGERPRINT => {
                    if raw.value.len() != 4 {
                        return Err(bad_length());
                    }
                    fingerprint = Some(offset);
                }
                _ => {}
            }
            offset += 4 + padded(raw.value.len());
        }

        if let Some(fp_offset) = fingerprint {
            let expected = fingerprint_value(&bytes[..fp_offset]);
            let carried = &bytes[fp_offset + 4..fp_offset + 8];
            if carried != expected.to_be_bytes() {
                return Err(DecodeError::NotStun(NotStun::FingerprintMismatch));
            }
        }

        Ok(Message {
            bytes,
            header,
            integrity_start,
            message_integrity,
            message_integrity_sha256,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }
    pub fn method(&self) -> Method {
        self.header.method
    }
    pub fn class(&self) -> Class {
        self.header.class
    }
    pub fn transaction_id(&self) -> &TransactionId {
        &self.header.transaction_id
    }
    /// The whole encoded message.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub(crate) fn message_integrity_offset(&self) -> Option<usize> {
        self.message_integrity
    }
    pub(crate) fn message_integrity_sha256_offset(&self) -> Option<usize> {
        self.message_integrity_sha256
    }

    /// Attributes in wire order, skipping those that RFC 8489 says to ignore after
    /// MESSAGE-INTEGRITY(-SHA256).
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            bytes: self.bytes,
            offset: HEADER_LEN,
            integrity_start: self.integrity_start,
        }
    }

    /// The first (and per RFC 8489 the only significant) attribute of this type.
    pub fn raw(&self, attr_type: u16) -> Option<RawAttribute<'a>> {
        self.attributes().find(|a| a.attr_type == attr_type)
    }

    /// The first attribute of this type, decoded. `Ok(None)` when absent.
    pub fn get(&self, attr_type: u16) -> Result<Option<Attribute<'a>>, AttributeError> {
        self.raw(attr_type)
            .map(|a| Attribute::decode(a.attr_type, a.value, &self.header.transaction_id))
            .transpose()
    }

    /// Every occurrence of a type, decoded (CreatePermission may carry several
    /// XOR-PEER-ADDRESS attributes).
    pub fn get_all(
        &self,
        attr_type: u16,
    ) -> impl Iterator<Item = Result<Attribute<'a>, AttributeError>> + 'a {
        let id = self.header.transaction_id;
        self.attributes()
            .filter(move |a| a.attr_type == attr_type)
            .map(move |a| Attribute::decode(a.attr_type, a.value, &id))
    }

    /// Comprehension-required attribute types this crate does not understand, for the
    /// UNKNOWN-ATTRIBUTES of a 420 response.
    pub fn unknown_comprehension_required(&self) -> impl Iterator<Item = u16> + 'a {
        self.attributes()
            .map(|a| a.attr_type)
            .filter(|&t| is_comprehension_required(t) && !is_known(t))
    }

    fn text(&self, attr_type: u16) -> Result<Option<&'a str>, AttributeError> {
        Ok(match self.get(attr_type)? {
            Some(
                Attribute::Username(s)
                | Attribute::Realm(s)
                | Attribute::Nonce(s)
                | Attribute::Software(s),
            ) => Some(s),
            _ => None,
        })
    }
    pub fn username(&self) -> Result<Option<&'a str>, AttributeError> {
        self.text(attr::USERNAME)
    }
    pub fn realm(&self) -> Result<Option<&'a str>, AttributeError> {
        self.text(attr::REALM)
    }
    pub fn nonce(&self) -> Result<Option<&'a str>, AttributeError> {
        self.text(attr::NONCE)
    }
    pub fn software(&self) -> Result<Option<&'a str>, AttributeError> {
        self.text(attr::SOFTWARE)
    }

    /// Any of the address attributes (plain or XOR form), decoded to a socket address.
    pub fn address(&self, attr_type: u16) -> Result<Option<SocketAddr>, AttributeError> {
        Ok(match self.get(attr_type)? {
            Some(
                Attribute::MappedAddress(a)
                | Attribute::XorMappedAddress(a)
                | Attribute::XorPeerAddress(a)
                | Attribute::XorRelayedAddress(a)
                | Attribute::AlternateServer(a),
            ) => Some(a),
            _ => None,
        })
    }

    pub fn lifetime(&self) -> Result<Option<u32>, AttributeError> {
        Ok(match self.get(attr::LIFETIME)? {
            Some(Attribute::Lifetime(v)) => Some(v),
            _ => None,
        })
    }

    pub fn data(&self) -> Option<&'a [u8]> {
        self.raw(attr::DATA).map(|a| a.value)
    }
}

/// Iterator over the significant attributes of a decoded message.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    bytes: &'a [u8],
    offset: usize,
    integrity_start: usize,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = RawAttribute<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            // The message was validated on decode, so `None` here only means the end.
            let raw = attribute_at(self.bytes, self.offset)?;
            self.offset += 4 + padded(raw.value.len());
            let after_integrity = raw.offset > self.integrity_start;
            if !after_integrity
                || matches!(
                    raw.attr_type,
                    attr::MESSAGE_INTEGRITY_SHA256 | attr::FINGERPRINT
                )
            {
                return Some(raw);
            }
        }
    }
}
