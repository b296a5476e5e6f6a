//! Attribute type registry: the codes this crate understands and the
//! comprehension-required / comprehension-optional split (RFC 8489 section 14).

/// Attribute type codes (RFC 8489, RFC 8656, RFC 6156, RFC 6062).
pub mod attr {
    // Comprehension-required (0x0000-0x7FFF).
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    pub const USERNAME: u16 = 0x0006;
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    pub const ERROR_CODE: u16 = 0x0009;
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    pub const CHANNEL_NUMBER: u16 = 0x000C;
    pub const LIFETIME: u16 = 0x000D;
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    pub const DATA: u16 = 0x0013;
    pub const REALM: u16 = 0x0014;
    pub const NONCE: u16 = 0x0015;
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
    pub const EVEN_PORT: u16 = 0x0018;
    pub const REQUESTED_TRANSPORT: u16 = 0x0019;
    pub const DONT_FRAGMENT: u16 = 0x001A;
    pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
    pub const PASSWORD_ALGORITHM: u16 = 0x001D;
    pub const USERHASH: u16 = 0x001E;
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    pub const RESERVATION_TOKEN: u16 = 0x0022;
    pub const CONNECTION_ID: u16 = 0x002A;
    // Comprehension-optional (0x8000-0xFFFF).
    pub const ADDITIONAL_ADDRESS_FAMILY: u16 = 0x8000;
    /// The code point ADDITIONAL-ADDRESS-FAMILY had in the TURN-bis drafts, still sent by
    /// coturn's clients; same value layout as the RFC 8656 one.
    pub const ADDITIONAL_ADDRESS_FAMILY_DRAFT: u16 = 0x8032;
    pub const ADDRESS_ERROR_CODE: u16 = 0x8001;
    pub const PASSWORD_ALGORITHMS: u16 = 0x8002;
    pub const ICMP: u16 = 0x8004;
    pub const SOFTWARE: u16 = 0x8022;
    pub const ALTERNATE_SERVER: u16 = 0x8023;
    pub const FINGERPRINT: u16 = 0x8028;
}

/// Types below 0x8000 must be understood; a request carrying one we do not know gets a 420
/// with UNKNOWN-ATTRIBUTES.
#[inline]
pub fn is_comprehension_required(attr_type: u16) -> bool {
    attr_type < 0x8000
}

/// Whether this crate decodes the attribute type.
pub fn is_known(attr_type: u16) -> bool {
    use attr::*;
    matches!(
        attr_type,
        MAPPED_ADDRESS
            | USERNAME
            | MESSAGE_INTEGRITY
            | ERROR_CODE
            | UNKNOWN_ATTRIBUTES
            | CHANNEL_NUMBER
            | LIFETIME
            | XOR_PEER_ADDRESS
            | DATA
            | REALM
            | NONCE
            | XOR_RELAYED_ADDRESS
            | REQUESTED_ADDRESS_FAMILY
            | EVEN_PORT
            | REQUESTED_TRANSPORT
            | DONT_FRAGMENT
            | MESSAGE_INTEGRITY_SHA256
            | PASSWORD_ALGORITHM
            | USERHASH
            | XOR_MAPPED_ADDRESS
            | RESERVATION_TOKEN
            | CONNECTION_ID
            | ADDITIONAL_ADDRESS_FAMILY
            | ADDRESS_ERROR_CODE
            | PASSWORD_ALGORITHMS
            | ICMP
            | SOFTWARE
            | ALTERNATE_SERVER
            | FINGERPRINT
    )
}
