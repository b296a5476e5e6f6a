//! Message encoder writing into a caller-owned, reusable `Vec<u8>`.

use crate::address::{self, AddressFamily, MAX_ADDRESS_LEN};
use crate::attribute_type::attr;
use crate::attributes::{
    padded, Attribute, Icmp, PasswordAlgorithm, MAX_TEXT_LEN, MAX_USERNAME_LEN,
};
use crate::error::EncodeError;
use crate::header::{Class, Header, Method, TransactionId, HEADER_LEN, MAX_BODY_LEN};
use crate::integrity::{fingerprint_value, hmac_sha1_prefix, hmac_sha256_prefix};
use hmac::Mac;
use std::net::SocketAddr;

/// Where the message stands with respect to its trailing integrity attributes, which fix
/// what may still be appended (RFC 8489 14.5-14.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seal {
    Open,
    AfterIntegrity,
    AfterIntegritySha256,
    AfterFingerprint,
}

/// Builds one message. The buffer is cleared on creation; its capacity is kept, so a
/// reused buffer does not allocate once warm.
pub struct MessageEncoder<'b> {
    buf: &'b mut Vec<u8>,
    transaction_id: TransactionId,
    seal: Seal,
    padding_byte: u8,
}

impl<'b> MessageEncoder<'b> {
    pub fn new(
        buf: &'b mut Vec<u8>,
        method: Method,
        class: Class,
        transaction_id: TransactionId,
    ) -> Self {
        buf.clear();
        let mut head = [0u8; HEADER_LEN];
        Header::write(&mut head, method, class, 0, &transaction_id);
        buf.extend_from_slice(&head);
        MessageEncoder {
            buf,
            transaction_id,
            seal: Seal::Open,
            padding_byte: 0,
        }
    }

    pub fn transaction_id(&self) -> &TransactionId {
        &self.transaction_id
    }

    /// Byte used to pad later attributes. Receivers must ignore padding (RFC 8489 14), so
    /// zero, the default, is right on the wire; RFC 5769 pads with spaces to catch
    /// receivers that do not.
    pub fn set_padding_byte(&mut self, byte: u8) -> &mut Self {
        self.padding_byte = byte;
        self
    }

    /// Appends one attribute whose value is produced by `write`, then pads it and updates
    /// the header length.
    fn append(
        &mut self,
        attr_type: u16,
        value_len: usize,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<&mut Self, EncodeError> {
        let allowed = match self.seal {
            Seal::Open => true,
            Seal::AfterIntegrity => {
                matches!(
                    attr_type,
                    attr::MESSAGE_INTEGRITY_SHA256 | attr::FINGERPRINT
                )
            }
            Seal::AfterIntegritySha256 => attr_type == attr::FINGERPRINT,
            Seal::AfterFingerprint => false,
        };
        if !allowed {
            return Err(EncodeError::AfterIntegrity { attr_type });
        }
        let body_len = self.buf.len() - HEADER_LEN + 4 + padded(value_len);
        if value_len > u16::MAX as usize || body_len > MAX_BODY_LEN {
            return Err(EncodeError::MessageTooLong);
        }
        self.buf.extend_from_slice(&attr_type.to_be_bytes());
        self.buf
            .extend_from_slice(&(value_len as u16).to_be_bytes());
        let start = self.buf.len();
        write(self.buf);
        debug_assert_eq!(self.buf.len() - start, value_len);
        self.buf
            .resize(start + padded(value_len), self.padding_byte);
        self.set_body_len(body_len);
        Ok(self)
    }

    fn set_body_len(&mut self, body_len: usize) {
        self.buf[2..4].copy_from_slice(&(body_len as u16).to_be_bytes());
    }

    /// Appends an attribute with an already-encoded value.
    pub fn add_raw(&mut self, attr_type: u16, value: &[u8]) -> Result<&mut Self, EncodeError> {
        self.append(attr_type, value.len(), |b| b.extend_from_slice(value))
    }

    fn add_text(
        &mut self,
        attr_type: u16,
        value: &str,
        max: usize,
    ) -> Result<&mut Self, EncodeError> {
        if value.len() > max {
            return Err(EncodeError::ValueTooLong {
                attr_type,
                len: value.len(),
            });
        }
        self.add_raw(attr_type, value.as_bytes())
    }

    /// MAPPED-ADDRESS / ALTERNATE-SERVER style (plain) address.
    pub fn add_address(
        &mut self,
        attr_type: u16,
        addr: SocketAddr,
    ) -> Result<&mut Self, EncodeError> {
        let mut value = [0u8; MAX_ADDRESS_LEN];
        let len = address::encode(addr, None, &mut value);
        self.add_raw(attr_type, &value[..len])
    }

    /// XOR-MAPPED-ADDRESS / XOR-PEER-ADDRESS / XOR-RELAYED-ADDRESS.
    pub fn add_xor_address(
        &mut self,
        attr_type: u16,
        addr: SocketAddr,
    ) -> Result<&mut Self, EncodeError> {
        let mut value = [0u8; MAX_ADDRESS_LEN];
        let id = self.transaction_id;
        let len = address::encode(addr, Some(&id), &mut value);
        self.add_raw(attr_type, &value[..len])
    }

    fn add_error_like(
        &mut self,
        attr_type: u16,
        family: Option<AddressFamily>,
        code: u16,
        reason: &str,
    ) -> Result<&mut Self, EncodeError> {
        if !(300..=699).contains(&code) {
            return Err(EncodeError::BadErrorCode(code));
        }
        if reason.len() > MAX_TEXT_LEN {
            return Err(EncodeError::ValueTooLong {
                attr_type,
                len: reason.len(),
            });
        }
        let head = [
            family.map_or(0, AddressFamily::code),
            0,
            (code / 100) as u8,
            (code % 100) as u8,
        ];
        self.append(attr_type, 4 + reason.len(), |b| {
            b.extend_from_slice(&head);
            b.extend_from_slice(reason.as_bytes());
        })
    }

    pub fn add_error_code(&mut self, code: u16, reason: &str) -> Result<&mut Self, EncodeError> {
        self.add_error_like(attr::ERROR_CODE, None, code, reason)
    }

    pub fn add_address_error_code(
        &mut self,
        family: AddressFamily,
        code: u16,
        reason: &str,
    ) -> Result<&mut Self, EncodeError> {
        self.add_error_like(attr::ADDRESS_ERROR_CODE, Some(family), code, reason)
    }

    /// UNKNOWN-ATTRIBUTES for a 420 response.
    pub fn add_unknown_attributes(
        &mut self,
        types: impl IntoIterator<Item = u16> + Clone,
    ) -> Result<&mut Self, EncodeError> {
        let len = types.clone().into_iter().count() * 2;
        self.append(attr::UNKNOWN_ATTRIBUTES, len, |b| {
            for t in types {
                b.extend_from_slice(&t.to_be_bytes());
            }
        })
    }

    fn password_algorithm_len(entry: &PasswordAlgorithm<'_>) -> usize {
        4 + padded(entry.parameters.len())
    }

    fn write_password_algorithm(b: &mut Vec<u8>, entry: &PasswordAlgorithm<'_>) {
        b.extend_from_slice(&entry.algorithm.to_be_bytes());
        b.extend_from_slice(&(entry.parameters.len() as u16).to_be_bytes());
        b.extend_from_slice(entry.parameters);
        b.resize(
            b.len() + padded(entry.parameters.len()) - entry.parameters.len(),
            0,
        );
    }

    /// PASSWORD-ALGORITHMS offered by a server in a 401/438.
    pub fn add_password_algorithms(
        &mut self,
        entries: &[PasswordAlgorithm<'_>],
    ) -> Result<&mut Self, EncodeError> {
        if entries
            .iter()
            .any(|e| e.parameters.len() > u16::MAX as usize)
        {
            return Err(EncodeError::MessageTooLong);
        }
        let len = entries.iter().map(Self::password_algorithm_len).sum();
        self.append(attr::PASSWORD_ALGORITHMS, len, |b| {
            for e in entries {
                Self::write_password_algorithm(b, e);
            }
        })
    }

    pub fn add_password_algorithm(
        &mut self,
        entry: &PasswordAlgorithm<'_>,
    ) -> Result<&mut Self, EncodeError> {
        if entry.parameters.len() > u16::MAX as usize {
            return Err(EncodeError::MessageTooLong);
        }
        self.append(
            attr::PASSWORD_ALGORITHM,
            Self::password_algorithm_len(entry),
            |b| Self::write_password_algorithm(b, entry),
        )
    }

    fn add_u32(&mut self, attr_type: u16, v: u32) -> Result<&mut Self, EncodeError> {
        self.add_raw(attr_type, &v.to_be_bytes())
    }

    /// Appends any typed attribute. MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT given this
    /// way are copied verbatim; use the `add_message_integrity*` / `add_fingerprint`
    /// methods to compute them.
    pub fn add(&mut self, attribute: &Attribute<'_>) -> Result<&mut Self, EncodeError> {
        let t = attribute.attr_type();
        match *attribute {
            Attribute::MappedAddress(a) | Attribute::AlternateServer(a) => self.add_address(t, a),
            Attribute::XorMappedAddress(a)
            | Attribute::XorPeerAddress(a)
            | Attribute::XorRelayedAddress(a) => self.add_xor_address(t, a),
            Attribute::Username(s) => self.add_text(t, s, MAX_USERNAME_LEN),
            Attribute::Realm(s) | Attribute::Nonce(s) | Attribute::Software(s) => {
                self.add_text(t, s, MAX_TEXT_LEN)
            }
            Attribute::UserHash(h) => self.add_raw(t, h),
            Attribute::MessageIntegrity(m) => self.add_raw(t, m),
            Attribute::MessageIntegritySha256(m) => self.add_raw(t, m),
            Attribute::Fingerprint(v) | Attribute::ConnectionId(v) | Attribute::Lifetime(v) => {
                self.add_u32(t, v)
            }
            Attribute::ErrorCode(e) => self.add_error_code(e.code, e.reason),
            Attribute::PasswordAlgorithms(p) => self.add_raw(t, p.raw()),
            Attribute::PasswordAlgorithm(p) => self.add_password_algorithm(&p),
            Attribute::UnknownAttributes(u) => self.add_raw(t, u.raw()),
            Attribute::ChannelNumber(n) => {
                let [hi, lo] = n.to_be_bytes();
                self.add_raw(t, &[hi, lo, 0, 0])
            }
            Attribute::Data(d) => self.add_raw(t, d),
            Attribute::RequestedAddressFamily(f) | Attribute::AdditionalAddressFamily(f) => {
                self.add_raw(t, &[f.code(), 0, 0, 0])
            }
            Attribute::EvenPort(reserve) => self.add_raw(t, &[if reserve { 0x80 } else { 0 }]),
            Attribute::RequestedTransport(p) => self.add_raw(t, &[p, 0, 0, 0]),
            Attribute::DontFragment => self.add_raw(t, &[]),
            Attribute::ReservationToken(tok) => self.add_raw(t, tok),
            Attribute::AddressErrorCode { family, error } => {
                self.add_address_error_code(family, error.code, error.reason)
            }
            Attribute::Icmp(Icmp {
                icmp_type,
                icmp_code,
                error_data,
            }) => {
                let d = error_data.to_be_bytes();
                self.add_raw(t, &[0, 0, icmp_type, icmp_code, d[0], d[1], d[2], d[3]])
            }
            Attribute::Other { value, .. } => self.add_raw(t, value),
        }
    }

    /// Appends MESSAGE-INTEGRITY (HMAC-SHA1 under `key`) over everything written so far.
    pub fn add_message_integrity(&mut self, key: &[u8]) -> Result<&mut Self, EncodeError> {
        if self.seal != Seal::Open {
            return Err(EncodeError::AfterIntegrity {
                attr_type: attr::MESSAGE_INTEGRITY,
            });
        }
        let tag = hmac_sha1_prefix(key, &self.buf[..]).finalize().into_bytes();
        self.append(attr::MESSAGE_INTEGRITY, 20, |b| b.extend_from_slice(&tag))?;
        self.seal = Seal::AfterIntegrity;
        Ok(self)
    }

    /// Appends a full 32-byte MESSAGE-INTEGRITY-SHA256.
    pub fn add_message_integrity_sha256(&mut self, key: &[u8]) -> Result<&mut Self, EncodeError> {
        if matches!(
            self.seal,
            Seal::AfterIntegritySha256 | Seal::AfterFingerprint
        ) {
            return Err(EncodeError::AfterIntegrity {
                attr_type: attr::MESSAGE_INTEGRITY_SHA256,
            });
        }
        let tag = hmac_sha256_prefix(key, &self.buf[..], 32)
            .finalize()
            .into_bytes();
        self.append(attr::MESSAGE_INTEGRITY_SHA256, 32, |b| {
            b.extend_from_slice(&tag)
        })?;
        self.seal = Seal::AfterIntegritySha256;
        Ok(self)
    }

    /// Appends FINGERPRINT; nothing may follow it.
    pub fn add_fingerprint(&mut self) -> Result<&mut Self, EncodeError> {
        let value = fingerprint_value(&self.buf[..]);
        self.append(attr::FINGERPRINT, 4, |b| {
            b.extend_from_slice(&value.to_be_bytes())
        })?;
        self.seal = Seal::AfterFingerprint;
        Ok(self)
    }

    /// The finished message.
    pub fn finish(self) -> &'b [u8] {
        self.buf
    }
}
