//! Every attribute and method survives encode -> decode unchanged.

use std::net::SocketAddr;
use stun_core::header::{message_type, split_message_type};
use stun_core::*;

const ID: TransactionId = TransactionId([9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0xAA, 0x55]);

fn sample_attributes() -> Vec<Attribute<'static>> {
    let v4: SocketAddr = "203.0.113.45:51234".parse().unwrap();
    let v6: SocketAddr = "[2001:db8::1:2]:443".parse().unwrap();
    static HASH: [u8; 32] = [0x5A; 32];
    static MI: [u8; 20] = [0x11; 20];
    static TOKEN: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
    static ALGORITHMS: [u8; 16] = [0, 1, 0, 0, 0, 2, 0, 3, 0xAB, 0xCD, 0xEF, 0, 0, 9, 0, 0];
    static UNKNOWN: [u8; 4] = [0x00, 0x24, 0x7F, 0xFF];
    vec![
        Attribute::MappedAddress(v4),
        Attribute::MappedAddress(v6),
        Attribute::XorMappedAddress(v4),
        Attribute::XorMappedAddress(v6),
        Attribute::Username("1795000600:alice@example.com"),
        Attribute::UserHash(&HASH),
        Attribute::MessageIntegrity(&MI),
        Attribute::MessageIntegritySha256(&[0x22; 24]),
        Attribute::Fingerprint(0xDEAD_BEEF),
        Attribute::ErrorCode(ErrorCode {
            code: 438,
            reason: "Stale Nonce",
        }),
        Attribute::ErrorCode(ErrorCode {
            code: 300,
            reason: "",
        }),
        Attribute::ErrorCode(ErrorCode {
            code: 699,
            reason: "\u{00e9}t\u{00e9}",
        }),
        Attribute::Realm("edge.example.com"),
        Attribute::Nonce("obMatJos2gAAA-abc"),
        Attribute::PasswordAlgorithms(decode_password_algorithms(&ALGORITHMS)),
        Attribute::PasswordAlgorithm(PasswordAlgorithm {
            algorithm: 2,
            parameters: &[],
        }),
        Attribute::PasswordAlgorithm(PasswordAlgorithm {
            algorithm: 7,
            parameters: &[1, 2, 3],
        }),
        Attribute::UnknownAttributes(decode_unknown(&UNKNOWN)),
        Attribute::Software("edged 0.1"),
        Attribute::AlternateServer(v6),
        Attribute::ChannelNumber(0x4ABC),
        Attribute::Lifetime(600),
        Attribute::XorPeerAddress(v4),
        Attribute::XorPeerAddress(v6),
        Attribute::Data(b"media payload, odd length"),
        Attribute::Data(b""),
        Attribute::XorRelayedAddress(v4),
        Attribute::XorRelayedAddress(v6),
        Attribute::RequestedAddressFamily(AddressFamily::V6),
        Attribute::EvenPort(true),
        Attribute::EvenPort(false),
        Attribute::RequestedTransport(TRANSPORT_UDP),
        Attribute::RequestedTransport(TRANSPORT_TCP),
        Attribute::DontFragment,
        Attribute::ReservationToken(&TOKEN),
        Attribute::AdditionalAddressFamily(AddressFamily::V6),
        Attribute::AddressErrorCode {
            family: AddressFamily::V6,
            error: ErrorCode {
                code: 440,
                reason: "Address Family not Supported",
            },
        },
        Attribute::Icmp(Icmp {
            icmp_type: 3,
            icmp_code: 4,
            error_data: 1400,
        }),
        Attribute::ConnectionId(0x0102_0304),
        Attribute::Other {
            attr_type: 0xC001,
            value: b"opaque",
        },
    ]
}

fn decode_password_algorithms(raw: &'static [u8]) -> PasswordAlgorithms<'static> {
    match Attribute::decode(attr::PASSWORD_ALGORITHMS, raw, &ID).unwrap() {
        Attribute::PasswordAlgorithms(p) => p,
        other => panic!("{other:?}"),
    }
}

fn decode_unknown(raw: &'static [u8]) -> UnknownAttributes<'static> {
    match Attribute::decode(attr::UNKNOWN_ATTRIBUTES, raw, &ID).unwrap() {
        Attribute::UnknownAttributes(u) => u,
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_attribute_round_trips_alone() {
    let mut buf = Vec::new();
    for attribute in sample_attributes() {
        if let Attribute::Fingerprint(v) = attribute {
            // A FINGERPRINT with an arbitrary value cannot frame a valid message.
            let value = v.to_be_bytes();
            let back = Attribute::decode(attr::FINGERPRINT, &value, &ID).unwrap();
            assert_eq!(back, attribute);
            continue;
        }
        let mut enc = MessageEncoder::new(&mut buf, Method::ALLOCATE, Class::Request, ID);
        enc.add(&attribute).unwrap();
        let bytes = enc.finish().to_vec();
        let msg = Message::decode(&bytes).unwrap_or_else(|e| panic!("{attribute:?}: {e}"));
        let decoded: Vec<_> = msg.attributes().collect();
        assert_eq!(decoded.len(), 1, "{attribute:?}");
        let back = Attribute::decode(decoded[0].attr_type, decoded[0].value, &ID).unwrap();
        assert_eq!(back, attribute);
        assert_eq!(bytes.len() % 4, 0, "{attribute:?}: padded to 4");
    }
}

#[test]
fn lists_decode_to_their_entries() {
    let attrs = sample_attributes();
    let Some(Attribute::PasswordAlgorithms(list)) = attrs
        .iter()
        .find(|a| a.attr_type() == attr::PASSWORD_ALGORITHMS)
    else {
        panic!("missing");
    };
    let entries: Vec<_> = list.iter().collect();
    assert_eq!(
        entries,
        [
            PasswordAlgorithm {
                algorithm: 1,
                parameters: &[]
            },
            PasswordAlgorithm {
                algorithm: 2,
                parameters: &[0xAB, 0xCD, 0xEF]
            },
            PasswordAlgorithm {
                algorithm: 9,
                parameters: &[]
            },
        ]
    );
    // The typed builder writes the same bytes as the raw value.
    let mut buf = Vec::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::BINDING, Class::ErrorResponse, ID);
    enc.add_password_algorithms(&entries).unwrap();
    enc.add_unknown_attributes([0x0024u16, 0x7FFF]).unwrap();
    let bytes = enc.finish().to_vec();
    let msg = Message::decode(&bytes).unwrap();
    assert_eq!(
        msg.get(attr::PASSWORD_ALGORITHMS).unwrap(),
        Some(Attribute::PasswordAlgorithms(*list))
    );
    let Some(Attribute::UnknownAttributes(u)) = msg.get(attr::UNKNOWN_ATTRIBUTES).unwrap() else {
        panic!("missing");
    };
    assert_eq!(u.iter().collect::<Vec<_>>(), [0x0024, 0x7FFF]);
}

#[test]
fn all_attributes_in_one_message_with_integrity_and_fingerprint() {
    let attrs: Vec<_> = sample_attributes()
        .into_iter()
        .filter(|a| {
            !matches!(
                a.attr_type(),
                attr::MESSAGE_INTEGRITY | attr::MESSAGE_INTEGRITY_SHA256 | attr::FINGERPRINT
            )
        })
        .collect();
    let key = long_term_key_md5("user", "realm", "pass");
    let key256 = long_term_key_sha256("user", "realm", "pass");
    let mut buf = Vec::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::CHANNEL_BIND, Class::Request, ID);
    for a in &attrs {
        enc.add(a).unwrap();
    }
    enc.add_message_integrity(&key).unwrap();
    enc.add_message_integrity_sha256(&key256).unwrap();
    enc.add_fingerprint().unwrap();
    let bytes = enc.finish().to_vec();

    let msg = Message::decode(&bytes).unwrap();
    assert!(verify_integrity(&msg, &key));
    assert!(verify_integrity_sha256(&msg, &key256));
    assert!(!verify_integrity(&msg, &key256[..16]));
    let decoded: Vec<_> = msg
        .attributes()
        .filter(|a| {
            !matches!(
                a.attr_type,
                attr::MESSAGE_INTEGRITY | attr::MESSAGE_INTEGRITY_SHA256 | attr::FINGERPRINT
            )
        })
        .map(|a| Attribute::decode(a.attr_type, a.value, &ID).unwrap())
        .collect();
    assert_eq!(decoded, attrs);
    // Several XOR-PEER-ADDRESS attributes (CreatePermission) are all reachable.
    assert_eq!(msg.get_all(attr::XOR_PEER_ADDRESS).count(), 2);
    // get() returns the first of duplicates, as RFC 8489 requires.
    assert_eq!(
        msg.address(attr::XOR_PEER_ADDRESS).unwrap(),
        Some("203.0.113.45:51234".parse().unwrap())
    );
    // Only the 0xC001 attribute is unknown, and it is comprehension-optional.
    assert_eq!(msg.unknown_comprehension_required().count(), 0);
}

#[test]
fn ipv4_mapped_addresses_are_sent_as_ipv4() {
    let mut buf = Vec::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::BINDING, Class::SuccessResponse, ID);
    enc.add_xor_address(
        attr::XOR_MAPPED_ADDRESS,
        "[::ffff:192.0.2.7]:3478".parse().unwrap(),
    )
    .unwrap();
    let bytes = enc.finish().to_vec();
    let msg = Message::decode(&bytes).unwrap();
    assert_eq!(
        msg.address(attr::XOR_MAPPED_ADDRESS).unwrap(),
        Some("192.0.2.7:3478".parse().unwrap())
    );
}

#[test]
fn all_methods_and_classes_round_trip_through_the_message_type() {
    let methods = [
        (Method::BINDING, "Binding"),
        (Method::ALLOCATE, "Allocate"),
        (Method::REFRESH, "Refresh"),
        (Method::SEND, "Send"),
        (Method::DATA, "Data"),
        (Method::CREATE_PERMISSION, "CreatePermission"),
        (Method::CHANNEL_BIND, "ChannelBind"),
        (Method::CONNECT, "Connect"),
        (Method::CONNECTION_BIND, "ConnectionBind"),
        (Method::CONNECTION_ATTEMPT, "ConnectionAttempt"),
        (Method(0xFFF), ""),
    ];
    let classes = [
        Class::Request,
        Class::Indication,
        Class::SuccessResponse,
        Class::ErrorResponse,
    ];
    let mut buf = Vec::new();
    for (method, name) in methods {
        assert_eq!(method.name().unwrap_or(""), name);
        for class in classes {
            let t = message_type(method, class);
            assert_eq!(t & 0xC000, 0);
            assert_eq!(split_message_type(t), (method, class));
            let bytes = MessageEncoder::new(&mut buf, method, class, ID)
                .finish()
                .to_vec();
            let msg = Message::decode(&bytes).unwrap();
            assert_eq!((msg.method(), msg.class()), (method, class));
        }
    }
    // Values published in RFC 8489 / RFC 8656 / RFC 6062.
    assert_eq!(
        message_type(Method::BINDING, Class::SuccessResponse),
        0x0101
    );
    assert_eq!(message_type(Method::ALLOCATE, Class::ErrorResponse), 0x0113);
    assert_eq!(message_type(Method::SEND, Class::Indication), 0x0016);
    assert_eq!(message_type(Method::DATA, Class::Indication), 0x0017);
    assert_eq!(
        message_type(Method::CONNECTION_ATTEMPT, Class::Indication),
        0x001C
    );
}

#[test]
fn encoder_refuses_what_the_rfc_forbids() {
    let mut buf = Vec::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::BINDING, Class::Request, ID);
    assert_eq!(
        enc.add_error_code(700, "x").err(),
        Some(EncodeError::BadErrorCode(700))
    );
    assert!(matches!(
        enc.add(&Attribute::Username(&"u".repeat(509))),
        Err(EncodeError::ValueTooLong { .. })
    ));
    enc.add_message_integrity(b"k").unwrap();
    assert!(matches!(
        enc.add(&Attribute::Lifetime(1)),
        Err(EncodeError::AfterIntegrity { .. })
    ));
    assert!(enc.add_message_integrity(b"k").is_err());
    enc.add_fingerprint().unwrap();
    assert!(enc.add_fingerprint().is_err());
    assert!(enc.add_message_integrity_sha256(b"k").is_err());

    let mut enc = MessageEncoder::new(&mut buf, Method::SEND, Class::Indication, ID);
    enc.add_raw(attr::DATA, &[0u8; 65_000]).unwrap();
    assert_eq!(
        enc.add_raw(attr::DATA, &[0u8; 600]).err(),
        Some(EncodeError::MessageTooLong)
    );
}

#[test]
fn long_term_keys_and_userhash_match_their_definitions() {
    // MD5("user:realm:pass") and SHA-256 of the same, computed with python3 hashlib.
    assert_eq!(
        long_term_key_md5("user", "realm", "pass"),
        [
            0x84, 0x93, 0xfb, 0xc5, 0x3b, 0xa5, 0x82, 0xfb, 0x4c, 0x04, 0x4c, 0x45, 0x6b, 0xdc,
            0x40, 0xeb
        ]
    );
    let sha = LongTermKey::derive(PASSWORD_ALGORITHM_SHA256, "user", "realm", "pass").unwrap();
    assert_eq!(
        sha.as_bytes(),
        long_term_key_sha256("user", "realm", "pass")
    );
    assert!(LongTermKey::derive(0x7777, "user", "realm", "pass").is_none());
    assert_eq!(format!("{sha:?}"), "LongTermKey(..)");
}
