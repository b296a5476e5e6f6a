//! (XOR-)address attribute values: MAPPED-ADDRESS, ALTERNATE-SERVER and the XOR forms
//! (RFC 8489 sections 14.1-14.2, RFC 8656 section 18).

use crate::error::AttributeError;
use crate::header::{TransactionId, MAGIC_COOKIE};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub(crate) const FAMILY_IPV4: u8 = 0x01;
pub(crate) const FAMILY_IPV6: u8 = 0x02;

/// Address family code used by REQUESTED-ADDRESS-FAMILY and friends (RFC 8656 18.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    V4,
    V6,
}

impl AddressFamily {
    pub fn code(self) -> u8 {
        match self {
            AddressFamily::V4 => FAMILY_IPV4,
            AddressFamily::V6 => FAMILY_IPV6,
        }
    }

    /// An unknown family is its own error because TURN answers it with 440, not 400.
    pub fn from_code(code: u8) -> Result<Self, AttributeError> {
        match code {
            FAMILY_IPV4 => Ok(AddressFamily::V4),
            FAMILY_IPV6 => Ok(AddressFamily::V6),
            other => Err(AttributeError::UnknownAddressFamily(other)),
        }
    }

    pub fn of(addr: &SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(_) => AddressFamily::V4,
            SocketAddr::V6(_) => AddressFamily::V6,
        }
    }
}

/// Longest encoded address value (IPv6).
pub(crate) const MAX_ADDRESS_LEN: usize = 20;

/// Encodes an address value into `out`, returning the used length. With `xor`, port and
/// address are masked with the cookie (and the transaction id for IPv6). An IPv4-mapped IPv6
/// address (what a dual-stack socket reports) is written as the IPv4 address it is, so the
/// peer sees the family it actually uses.
pub(crate) fn encode(
    addr: SocketAddr,
    xor: Option<&TransactionId>,
    out: &mut [u8; MAX_ADDRESS_LEN],
) -> usize {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let ip = match addr.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    let mut port = addr.port();
    if xor.is_some() {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    out[0] = 0;
    out[2..4].copy_from_slice(&port.to_be_bytes());
    match ip {
        IpAddr::V4(v4) => {
            out[1] = FAMILY_IPV4;
            let mut octets = v4.octets();
            if xor.is_some() {
                for (o, c) in octets.iter_mut().zip(cookie) {
                    *o ^= c;
                }
            }
            out[4..8].copy_from_slice(&octets);
            8
        }
        IpAddr::V6(v6) => {
            out[1] = FAMILY_IPV6;
            let mut octets = v6.octets();
            if let Some(id) = xor {
                let mask = cookie.iter().chain(id.0.iter());
                for (o, m) in octets.iter_mut().zip(mask) {
                    *o ^= m;
                }
            }
            out[4..20].copy_from_slice(&octets);
            20
        }
    }
}

/// Decodes an address value; `xor` carries the transaction id for the XOR forms.
pub(crate) fn decode(
    attr_type: u16,
    value: &[u8],
    xor: Option<&TransactionId>,
) -> Result<SocketAddr, AttributeError> {
    let bad_length = AttributeError::BadLength {
        attr_type,
        len: value.len(),
    };
    if value.len() < 4 {
        return Err(bad_length);
    }
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let mut port = u16::from_be_bytes([value[2], value[3]]);
    if xor.is_some() {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    match value[1] {
        FAMILY_IPV4 => {
            let Ok(mut octets) = <[u8; 4]>::try_from(&value[4..]) else {
                return Err(bad_length);
            };
            if xor.is_some() {
                for (o, c) in octets.iter_mut().zip(cookie) {
                    *o ^= c;
                }
            }
            Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(octets)), port))
        }
        FAMILY_IPV6 => {
            let Ok(mut octets) = <[u8; 16]>::try_from(&value[4..]) else {
                return Err(bad_length);
            };
            if let Some(id) = xor {
                let mask = cookie.iter().chain(id.0.iter());
                for (o, m) in octets.iter_mut().zip(mask) {
                    *o ^= m;
                }
            }
            Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        other => Err(AttributeError::UnknownAddressFamily(other)),
    }
}
