//! The fixed 20-byte STUN header: message type (method + class), length, magic cookie and
//! transaction id (RFC 8489 section 5).

use std::fmt;

/// Every STUN message since RFC 5389 carries this value at bytes 4..8.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 20;
/// The header length field is 16 bits, so the attribute section cannot exceed this.
pub const MAX_BODY_LEN: usize = u16::MAX as usize & !3;

/// The message class, carried in two bits spread over the message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Request,
    Indication,
    SuccessResponse,
    ErrorResponse,
}

impl Class {
    #[inline]
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0b00,
            Class::Indication => 0b01,
            Class::SuccessResponse => 0b10,
            Class::ErrorResponse => 0b11,
        }
    }

    #[inline]
    fn from_bits(bits: u16) -> Class {
        match bits & 0b11 {
            0b00 => Class::Request,
            0b01 => Class::Indication,
            0b10 => Class::SuccessResponse,
            _ => Class::ErrorResponse,
        }
    }
}

/// A 12-bit STUN method. A newtype rather than an enum because a server must still be able
/// to name (and reject) a method it does not implement.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Method(pub u16);

impl Method {
    pub const BINDING: Method = Method(0x001);
    pub const ALLOCATE: Method = Method(0x003);
    pub const REFRESH: Method = Method(0x004);
    pub const SEND: Method = Method(0x006);
    pub const DATA: Method = Method(0x007);
    pub const CREATE_PERMISSION: Method = Method(0x008);
    pub const CHANNEL_BIND: Method = Method(0x009);
    /// RFC 6062 TCP relay methods.
    pub const CONNECT: Method = Method(0x00A);
    pub const CONNECTION_BIND: Method = Method(0x00B);
    pub const CONNECTION_ATTEMPT: Method = Method(0x00C);

    /// Name of a method this crate knows, `None` otherwise.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Method::BINDING => "Binding",
            Method::ALLOCATE => "Allocate",
            Method::REFRESH => "Refresh",
            Method::SEND => "Send",
            Method::DATA => "Data",
            Method::CREATE_PERMISSION => "CreatePermission",
            Method::CHANNEL_BIND => "ChannelBind",
            Method::CONNECT => "Connect",
            Method::CONNECTION_BIND => "ConnectionBind",
            Method::CONNECTION_ATTEMPT => "ConnectionAttempt",
            _ => return None,
        })
    }

    pub fn is_known(self) -> bool {
        self.name().is_some()
    }
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Method({:#05x})", self.0),
        }
    }
}

/// The 96-bit transaction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TransactionId(pub [u8; 12]);

/// Interleaves method bits M0-M11 with class bits C0/C1 (RFC 8489 figure 3):
/// `M11..M7 C1 M6..M4 C0 M3..M0`.
#[inline]
pub fn message_type(method: Method, class: Class) -> u16 {
    let m = method.0 & 0x0FFF;
    let c = class.bits();
    (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 0b01) << 4) | ((c & 0b10) << 7)
}

/// Splits a 14-bit message type back into method and class.
#[inline]
pub fn split_message_type(message_type: u16) -> (Method, Class) {
    let t = message_type & 0x3FFF;
    let method = (t & 0x000F) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0F80);
    let class = ((t >> 4) & 0b01) | ((t >> 7) & 0b10);
    (Method(method), Class::from_bits(class))
}

/// The decoded fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub method: Method,
    pub class: Class,
    /// Length of the attribute section as declared on the wire.
    pub length: u16,
    pub transaction_id: TransactionId,
}

/// Why bytes are not a STUN message at all (the caller may try another protocol or drop them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    TooShort,
    LeadingBitsSet,
    BadMagicCookie,
}

impl Header {
    /// Checks the parts of the header that tell STUN apart from other protocols sharing the
    /// port (RTP, DTLS, ChannelData): first two bits zero and the magic cookie.
    #[inline]
    pub fn parse(bytes: &[u8]) -> Result<Header, HeaderError> {
        let Some(head) = bytes.get(..HEADER_LEN) else {
            return Err(HeaderError::TooShort);
        };
        if head[0] & 0xC0 != 0 {
            return Err(HeaderError::LeadingBitsSet);
        }
        if head[4..8] != MAGIC_COOKIE.to_be_bytes() {
            return Err(HeaderError::BadMagicCookie);
        }
        let (method, class) = split_message_type(u16::from_be_bytes([head[0], head[1]]));
        let mut id = [0u8; 12];
        id.copy_from_slice(&head[8..20]);
        Ok(Header {
            method,
            class,
            length: u16::from_be_bytes([head[2], head[3]]),
            transaction_id: TransactionId(id),
        })
    }

    /// Writes a header with the given body length into the first 20 bytes of `out`.
    pub(crate) fn write(
        out: &mut [u8; HEADER_LEN],
        method: Method,
        class: Class,
        length: u16,
        id: &TransactionId,
    ) {
        out[0..2].copy_from_slice(&message_type(method, class).to_be_bytes());
        out[2..4].copy_from_slice(&length.to_be_bytes());
        out[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out[8..20].copy_from_slice(&id.0);
    }
}
