//! Sans-IO STUN/TURN message codec (RFC 8489, RFC 8656, RFC 6156, RFC 6062).
//!
//! Decoding borrows the received buffer ([`Message::decode`]), encoding appends to a
//! reused `Vec<u8>` ([`MessageEncoder`]); ChannelData helpers ([`channel_data`]) and the
//! stream framer ([`framer`]) are allocation-free for the media path.

pub mod address;
pub mod attribute_type;
pub mod attributes;
pub mod channel_data;
pub mod encoder;
pub mod error;
pub mod framer;
pub mod header;
pub mod integrity;
pub mod message;
pub mod nonce;

pub use address::AddressFamily;
pub use attribute_type::{attr, is_comprehension_required, is_known};
pub use attributes::{
    Attribute, ErrorCode, Icmp, PasswordAlgorithm, PasswordAlgorithms, UnknownAttributes,
    PASSWORD_ALGORITHM_MD5, PASSWORD_ALGORITHM_SHA256, TRANSPORT_TCP, TRANSPORT_UDP,
};
pub use channel_data::{ChannelData, ChannelDataError, PacketKind};
pub use encoder::MessageEncoder;
pub use error::{AttributeError, DecodeError, EncodeError, Malformed, NotStun};
pub use framer::{Frame, FramerError, Frames};
pub use header::{Class, Header, Method, TransactionId, HEADER_LEN, MAGIC_COOKIE};
pub use integrity::{
    long_term_key_md5, long_term_key_sha256, userhash, verify_integrity, verify_integrity_sha256,
    LongTermKey,
};
pub use message::{Attributes, Message, RawAttribute};
pub use nonce::{Nonce, NonceMinter, NonceStatus, SecurityFeatures, NONCE_LEN};
