//! Typed attribute values, decoded without copying from the message buffer.

use crate::address::{self, AddressFamily};
use crate::attribute_type::attr;
use crate::error::AttributeError;
use crate::header::TransactionId;
use std::net::SocketAddr;

/// RFC 8489 size limits, in bytes, for the text attributes ("fewer than N bytes").
pub const MAX_USERNAME_LEN: usize = 508;
pub const MAX_TEXT_LEN: usize = 762;

/// PASSWORD-ALGORITHM numbers (RFC 8489 section 18.5).
pub const PASSWORD_ALGORITHM_MD5: u16 = 0x0001;
pub const PASSWORD_ALGORITHM_SHA256: u16 = 0x0002;

/// REQUESTED-TRANSPORT protocol numbers.
pub const TRANSPORT_UDP: u8 = 17;
pub const TRANSPORT_TCP: u8 = 6;

/// ERROR-CODE / ADDRESS-ERROR-CODE value: a code in 300..=699 and a reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode<'a> {
    pub code: u16,
    pub reason: &'a str,
}

/// One entry of PASSWORD-ALGORITHM(S).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordAlgorithm<'a> {
    pub algorithm: u16,
    pub parameters: &'a [u8],
}

/// PASSWORD-ALGORITHMS, validated on decode, iterated lazily.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordAlgorithms<'a>(&'a [u8]);

impl<'a> PasswordAlgorithms<'a> {
    pub fn iter(&self) -> PasswordAlgorithmIter<'a> {
        PasswordAlgorithmIter(self.0)
    }
    pub(crate) fn raw(&self) -> &'a [u8] {
        self.0
    }
}

pub struct PasswordAlgorithmIter<'a>(&'a [u8]);

impl<'a> Iterator for PasswordAlgorithmIter<'a> {
    type Item = PasswordAlgorithm<'a>;
    fn next(&mut self) -> Option<Self::Item> {
        let (entry, rest) = split_password_algorithm(self.0)?;
        self.0 = rest;
        Some(entry)
    }
}

/// Splits one PASSWORD-ALGORITHM entry (algorithm, parameter length, padded parameters).
fn split_password_algorithm(bytes: &[u8]) -> Option<(PasswordAlgorithm<'_>, &[u8])> {
    let algorithm = u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]);
    let len = u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]) as usize;
    let parameters = bytes.get(4..4 + len)?;
    let rest = bytes.get(4 + padded(len)..)?;
    Some((
        PasswordAlgorithm {
            algorithm,
            parameters,
        },
        rest,
    ))
}

/// UNKNOWN-ATTRIBUTES, iterated as attribute type codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownAttributes<'a>(&'a [u8]);

impl<'a> UnknownAttributes<'a> {
    pub fn iter(&self) -> impl Iterator<Item = u16> + 'a {
        self.0
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
    }
    pub(crate) fn raw(&self) -> &'a [u8] {
        self.0
    }
}

/// ICMP attribute (RFC 8656 section 18.14), carried in Data indications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmp {
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub error_data: u32,
}

/// A decoded attribute borrowing from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute<'a> {
    MappedAddress(SocketAddr),
    XorMappedAddress(SocketAddr),
    Username(&'a str),
    UserHash(&'a [u8; 32]),
    MessageIntegrity(&'a [u8; 20]),
    MessageIntegritySha256(&'a [u8]),
    Fingerprint(u32),
    ErrorCode(ErrorCode<'a>),
    Realm(&'a str),
    Nonce(&'a str),
    PasswordAlgorithms(PasswordAlgorithms<'a>),
    PasswordAlgorithm(PasswordAlgorithm<'a>),
    UnknownAttributes(UnknownAttributes<'a>),
    Software(&'a str),
    AlternateServer(SocketAddr),
    ChannelNumber(u16),
    Lifetime(u32),
    XorPeerAddress(SocketAddr),
    Data(&'a [u8]),
    XorRelayedAddress(SocketAddr),
    RequestedAddressFamily(AddressFamily),
    /// The R bit: reserve the next-higher port too.
    EvenPort(bool),
    RequestedTransport(u8),
    DontFragment,
    ReservationToken(&'a [u8; 8]),
    AdditionalAddressFamily(AddressFamily),
    AddressErrorCode {
        family: AddressFamily,
        error: ErrorCode<'a>,
    },
    Icmp(Icmp),
    ConnectionId(u32),
    /// Any type this crate does not decode, kept raw.
    Other {
        attr_type: u16,
        value: &'a [u8],
    },
}

#[inline]
pub(crate) fn padded(len: usize) -> usize {
    (len + 3) & !3
}

fn exact<const N: usize>(attr_type: u16, value: &[u8]) -> Result<&[u8; N], AttributeError> {
    value.try_into().map_err(|_| AttributeError::BadLength {
        attr_type,
        len: value.len(),
    })
}

fn text(attr_type: u16, value: &[u8], max: usize) -> Result<&str, AttributeError> {
    if value.len() > max {
        return Err(AttributeError::BadLength {
            attr_type,
            len: value.len(),
        });
    }
    std::str::from_utf8(value).map_err(|_| AttributeError::NotUtf8 { attr_type })
}

/// ERROR-CODE layout: 21 reserved bits, class (3 bits), number (8 bits), reason phrase.
fn error_code(attr_type: u16, value: &[u8]) -> Result<ErrorCode<'_>, AttributeError> {
    if value.len() < 4 {
        return Err(AttributeError::BadLength {
            attr_type,
            len: value.len(),
        });
    }
    let class = value[2] & 0x07;
    let number = value[3];
    if !(3..=6).contains(&class) {
        return Err(AttributeError::BadErrorClass(class));
    }
    if number > 99 {
        return Err(AttributeError::BadErrorNumber(number));
    }
    let reason = text(attr_type, &value[4..], MAX_TEXT_LEN)?;
    Ok(ErrorCode {
        code: u16::from(class) * 100 + u16::from(number),
        reason,
    })
}

/// Family byte followed by three reserved bytes (REQUESTED-/ADDITIONAL-ADDRESS-FAMILY).
fn family(attr_type: u16, value: &[u8]) -> Result<AddressFamily, AttributeError> {
    let v = exact::<4>(attr_type, value)?;
    AddressFamily::from_code(v[0])
}

impl<'a> Attribute<'a> {
    /// Decodes one attribute value. The transaction id is needed for the XOR address forms.
    pub fn decode(
        attr_type: u16,
        value: &'a [u8],
        transaction_id: &TransactionId,
    ) -> Result<Attribute<'a>, AttributeError> {
        let t = attr_type;
        let xor = Some(transaction_id);
        Ok(match t {
            attr::MAPPED_ADDRESS => Attribute::MappedAddress(address::decode(t, value, None)?),
            attr::ALTERNATE_SERVER => Attribute::AlternateServer(address::decode(t, value, None)?),
            attr::XOR_MAPPED_ADDRESS => {
                Attribute::XorMappedAddress(address::decode(t, value, xor)?)
            }
            attr::XOR_PEER_ADDRESS => Attribute::XorPeerAddress(address::decode(t, value, xor)?),
            attr::XOR_RELAYED_ADDRESS => {
                Attribute::XorRelayedAddress(address::decode(t, value, xor)?)
            }
            attr::USERNAME => Attribute::Username(text(t, value, MAX_USERNAME_LEN)?),
            attr::REALM => Attribute::Realm(text(t, value, MAX_TEXT_LEN)?),
            attr::NONCE => Attribute::Nonce(text(t, value, MAX_TEXT_LEN)?),
            attr::SOFTWARE => Attribute::Software(text(t, value, MAX_TEXT_LEN)?),
            attr::USERHASH => Attribute::UserHash(exact::<32>(t, value)?),
            attr::MESSAGE_INTEGRITY => Attribute::MessageIntegrity(exact::<20>(t, value)?),
            attr::MESSAGE_INTEGRITY_SHA256 => {
                // RFC 8489 14.6: at least 16 bytes, at most 32, a multiple of 4.
                if !(16..=32).contains(&value.len()) || value.len() % 4 != 0 {
                    return Err(AttributeError::BadLength {
                        attr_type: t,
                        len: value.len(),
                    });
                }
                Attribute::MessageIntegritySha256(value)
            }
            attr::FINGERPRINT => Attribute::Fingerprint(u32::from_be_bytes(*exact::<4>(t, value)?)),
            attr::ERROR_CODE => Attribute::ErrorCode(error_code(t, value)?),
            attr::PASSWORD_ALGORITHM => match split_password_algorithm(value) {
                Some((entry, [])) => Attribute::PasswordAlgorithm(entry),
                _ => {
                    return Err(AttributeError::BadLength {
                        attr_type: t,
                        len: value.len(),
                    })
                }
            },
            attr::PASSWORD_ALGORITHMS => {
                let mut rest = value;
                while !rest.is_empty() {
                    match split_password_algorithm(rest) {
                        Some((_, tail)) => rest = tail,
                        None => {
                            return Err(AttributeError::BadLength {
                                attr_type: t,
                                len: value.len(),
                            })
                        }
                    }
                }
                Attribute::PasswordAlgorithms(PasswordAlgorithms(value))
            }
            attr::UNKNOWN_ATTRIBUTES => {
                if value.len() % 2 != 0 {
                    return Err(AttributeError::BadLength {
                        attr_type: t,
                        len: value.len(),
                    });
                }
                Attribute::UnknownAttributes(UnknownAttributes(value))
            }
            attr::CHANNEL_NUMBER => {
                let v = exact::<4>(t, value)?;
                Attribute::ChannelNumber(u16::from_be_bytes([v[0], v[1]]))
            }
            attr::LIFETIME => Attribute::Lifetime(u32::from_be_bytes(*exact::<4>(t, value)?)),
            attr::CONNECTION_ID => {
                Attribute::ConnectionId(u32::from_be_bytes(*exact::<4>(t, value)?))
            }
            attr::DATA => Attribute::Data(value),
            attr::REQUESTED_ADDRESS_FAMILY => Attribute::RequestedAddressFamily(family(t, value)?),
            attr::ADDITIONAL_ADDRESS_FAMILY => {
                Attribute::AdditionalAddressFamily(family(t, value)?)
            }
            attr::EVEN_PORT => Attribute::EvenPort(exact::<1>(t, value)?[0] & 0x80 != 0),
            attr::REQUESTED_TRANSPORT => Attribute::RequestedTransport(exact::<4>(t, value)?[0]),
            attr::DONT_FRAGMENT => {
                exact::<0>(t, value)?;
                Attribute::DontFragment
            }
            attr::RESERVATION_TOKEN => Attribute::ReservationToken(exact::<8>(t, value)?),
            attr::ADDRESS_ERROR_CODE => {
                // Same layout as ERROR-CODE with the family in the first reserved byte.
                let family =
                    AddressFamily::from_code(*value.first().ok_or(AttributeError::BadLength {
                        attr_type: t,
                        len: 0,
                    })?)?;
                Attribute::AddressErrorCode {
                    family,
                    error: error_code(t, value)?,
                }
            }
            attr::ICMP => {
                let v = exact::<8>(t, value)?;
                Attribute::Icmp(Icmp {
                    icmp_type: v[2],
                    icmp_code: v[3],
                    error_data: u32::from_be_bytes([v[4], v[5], v[6], v[7]]),
                })
            }
            _ => Attribute::Other {
                attr_type: t,
                value,
            },
        })
    }

    /// The wire type code of this attribute.
    pub fn attr_type(&self) -> u16 {
        match self {
            Attribute::MappedAddress(_) => attr::MAPPED_ADDRESS,
            Attribute::XorMappedAddress(_) => attr::XOR_MAPPED_ADDRESS,
            Attribute::Username(_) => attr::USERNAME,
            Attribute::UserHash(_) => attr::USERHASH,
            Attribute::MessageIntegrity(_) => attr::MESSAGE_INTEGRITY,
            Attribute::MessageIntegritySha256(_) => attr::MESSAGE_INTEGRITY_SHA256,
            Attribute::Fingerprint(_) => attr::FINGERPRINT,
            Attribute::ErrorCode(_) => attr::ERROR_CODE,
            Attribute::Realm(_) => attr::REALM,
            Attribute::Nonce(_) => attr::NONCE,
            Attribute::PasswordAlgorithms(_) => attr::PASSWORD_ALGORITHMS,
            Attribute::PasswordAlgorithm(_) => attr::PASSWORD_ALGORITHM,
            Attribute::UnknownAttributes(_) => attr::UNKNOWN_ATTRIBUTES,
            Attribute::Software(_) => attr::SOFTWARE,
            Attribute::AlternateServer(_) => attr::ALTERNATE_SERVER,
            Attribute::ChannelNumber(_) => attr::CHANNEL_NUMBER,
            Attribute::Lifetime(_) => attr::LIFETIME,
            Attribute::XorPeerAddress(_) => attr::XOR_PEER_ADDRESS,
            Attribute::Data(_) => attr::DATA,
            Attribute::XorRelayedAddress(_) => attr::XOR_RELAYED_ADDRESS,
            Attribute::RequestedAddressFamily(_) => attr::REQUESTED_ADDRESS_FAMILY,
            Attribute::EvenPort(_) => attr::EVEN_PORT,
            Attribute::RequestedTransport(_) => attr::REQUESTED_TRANSPORT,
            Attribute::DontFragment => attr::DONT_FRAGMENT,
            Attribute::ReservationToken(_) => attr::RESERVATION_TOKEN,
            Attribute::AdditionalAddressFamily(_) => attr::ADDITIONAL_ADDRESS_FAMILY,
            Attribute::AddressErrorCode { .. } => attr::ADDRESS_ERROR_CODE,
            Attribute::Icmp(_) => attr::ICMP,
            Attribute::ConnectionId(_) => attr::CONNECTION_ID,
            Attribute::Other { attr_type, .. } => *attr_type,
        }
    }
}
