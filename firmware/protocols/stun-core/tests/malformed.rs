//! Malformed and hostile input gives errors, never panics, and "not STUN" is kept apart
//! from "malformed STUN".

use stun_core::*;

const ID: TransactionId = TransactionId([0x42; 12]);

fn request_with_fingerprint() -> Vec<u8> {
    let mut buf = Vec::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::ALLOCATE, Class::Request, ID);
    enc.add(&Attribute::RequestedTransport(TRANSPORT_UDP))
        .unwrap();
    enc.add(&Attribute::Username("1795000600:alice")).unwrap();
    enc.add_message_integrity(b"secret").unwrap();
    enc.add_fingerprint().unwrap();
    enc.finish().to_vec()
}

fn set_length(bytes: &mut [u8], len: u16) {
    bytes[2..4].copy_from_slice(&len.to_be_bytes());
}

#[test]
fn not_stun_is_told_apart() {
    let good = request_with_fingerprint();
    assert!(Message::decode(&good).is_ok());
    assert_eq!(
        Message::decode(&good[..19]).unwrap_err(),
        DecodeError::NotStun(NotStun::TooShort)
    );
    assert_eq!(
        Message::decode(&[]).unwrap_err(),
        DecodeError::NotStun(NotStun::TooShort)
    );
    let mut bad = good.clone();
    bad[0] |= 0x80;
    assert_eq!(
        Message::decode(&bad).unwrap_err(),
        DecodeError::NotStun(NotStun::LeadingBitsSet)
    );
    let mut bad = good.clone();
    bad[5] ^= 0xFF;
    assert_eq!(
        Message::decode(&bad).unwrap_err(),
        DecodeError::NotStun(NotStun::BadMagicCookie)
    );
    // Any changed byte under the FINGERPRINT makes it another protocol's packet.
    let mut bad = good.clone();
    bad[34] ^= 0x01;
    assert_eq!(
        Message::decode(&bad).unwrap_err(),
        DecodeError::NotStun(NotStun::FingerprintMismatch)
    );
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    assert_eq!(
        Message::decode(&bad).unwrap_err(),
        DecodeError::NotStun(NotStun::FingerprintMismatch)
    );
    // A ChannelData frame is not STUN either.
    let mut frame = [0u8; 12];
    let n = channel_data::encode(&mut frame, 0x4000, b"rtp", true).unwrap();
    assert!(matches!(
        Message::decode(&frame[..n]),
        Err(DecodeError::NotStun(_))
    ));
}

#[test]
fn malformed_requests_are_answerable_and_malformed_indications_are_not() {
    let good = request_with_fingerprint();

    let mut bad = good.clone();
    set_length(&mut bad, (good.len() - 20 - 2) as u16);
    let err = Message::decode(&bad).unwrap_err();
    assert!(matches!(
        err,
        DecodeError::Malformed {
            reason: Malformed::LengthNotMultipleOfFour(_),
            ..
        }
    ));
    let header = err.bad_request().expect("a request gets a 400");
    assert_eq!(header.transaction_id, ID);
    assert_eq!(header.method, Method::ALLOCATE);

    // Declared length longer than the datagram (truncated) and shorter (trailing bytes).
    let err = Message::decode(&good[..good.len() - 4]).unwrap_err();
    assert!(matches!(
        err,
        DecodeError::Malformed {
            reason: Malformed::LengthMismatch { .. },
            ..
        }
    ));
    let mut oversize = good.clone();
    oversize.extend_from_slice(&[0; 8]);
    let err = Message::decode(&oversize).unwrap_err();
    assert!(matches!(
        err,
        DecodeError::Malformed {
            reason: Malformed::LengthMismatch { .. },
            ..
        }
    ));

    // An attribute whose length runs past the end.
    let mut bad = good.clone();
    bad[22..24].copy_from_slice(&0x0100u16.to_be_bytes());
    let err = Message::decode(&bad).unwrap_err();
    assert!(matches!(
        err,
        DecodeError::Malformed {
            reason: Malformed::AttributeOverrun {
                attr_type: attr::REQUESTED_TRANSPORT,
                ..
            },
            ..
        }
    ));

    // The same damage in an indication is dropped, not answered.
    let mut buf = Vec::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::SEND, Class::Indication, ID);
    enc.add(&Attribute::Data(b"x")).unwrap();
    let mut ind = enc.finish().to_vec();
    ind[22..24].copy_from_slice(&0x0009u16.to_be_bytes());
    let err = Message::decode(&ind).unwrap_err();
    assert!(matches!(err, DecodeError::Malformed { .. }));
    assert!(err.bad_request().is_none());
}

#[test]
fn padding_must_be_present_but_its_content_is_ignored() {
    // USERNAME of 5 bytes with its 3 padding bytes cut off (length adjusted to match).
    let mut buf = Vec::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::BINDING, Class::Request, ID);
    enc.add(&Attribute::Username("abcde")).unwrap();
    let full = enc.finish().to_vec();
    // 20 + 4 + 5 = 29 bytes: neither a multiple of 4 nor padded.
    let mut cut = full[..29].to_vec();
    set_length(&mut cut, 9);
    assert!(matches!(
        Message::decode(&cut),
        Err(DecodeError::Malformed { .. })
    ));
    // Length claims 8 (multiple of 4) but the value length 5 needs 8 bytes + header = 12.
    let mut short = full[..28].to_vec();
    set_length(&mut short, 8);
    assert!(matches!(
        Message::decode(&short),
        Err(DecodeError::Malformed {
            reason: Malformed::AttributeOverrun { .. },
            ..
        })
    ));
    // Non-zero padding is accepted.
    let mut noisy = full.clone();
    noisy[29..32].copy_from_slice(b"   ");
    assert_eq!(
        Message::decode(&noisy).unwrap().username().unwrap(),
        Some("abcde")
    );
}

#[test]
fn integrity_and_fingerprint_attributes_are_checked_and_ordered() {
    let good = request_with_fingerprint();
    let msg = Message::decode(&good).unwrap();
    assert!(verify_integrity(&msg, b"secret"));

    // Attributes after MESSAGE-INTEGRITY (other than FINGERPRINT) are ignored, and do not
    // break the integrity check.
    let mut buf = Vec::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::REFRESH, Class::Request, ID);
    enc.add(&Attribute::Lifetime(0)).unwrap();
    enc.add_message_integrity(b"secret").unwrap();
    let mut bytes = enc.finish().to_vec();
    bytes.extend_from_slice(&[0x00, 0x0D, 0x00, 0x04, 0, 0, 0x0E, 0x10]); // LIFETIME 3600
    set_length_if_room(&mut bytes);
    let msg = Message::decode(&bytes).unwrap();
    assert!(verify_integrity(&msg, b"secret"));
    assert_eq!(
        msg.lifetime().unwrap(),
        Some(0),
        "the appended LIFETIME is ignored"
    );
    assert_eq!(msg.attributes().count(), 2);

    // Something after FINGERPRINT is malformed.
    let mut bytes = good.clone();
    bytes.extend_from_slice(&[0x80, 0x22, 0x00, 0x00]);
    set_length_if_room(&mut bytes);
    assert!(matches!(
        Message::decode(&bytes),
        Err(DecodeError::Malformed {
            reason: Malformed::AttributeAfterFingerprint { .. },
            ..
        })
    ));

    // Wrong sizes for the fixed-size integrity attributes.
    for (attr_type, len) in [
        (attr::MESSAGE_INTEGRITY, 16usize),
        (attr::MESSAGE_INTEGRITY_SHA256, 12),
        (attr::MESSAGE_INTEGRITY_SHA256, 36),
        (attr::FINGERPRINT, 8),
    ] {
        let mut enc = MessageEncoder::new(&mut buf, Method::BINDING, Class::Request, ID);
        enc.add_raw(attr_type, &vec![0; len]).unwrap();
        let bytes = enc.finish().to_vec();
        assert!(
            matches!(
                Message::decode(&bytes),
                Err(DecodeError::Malformed {
                    reason: Malformed::BadLength { .. },
                    ..
                })
            ),
            "{attr_type:#x} len {len}"
        );
    }
}

#[test]
fn attribute_values_with_bad_contents_are_errors() {
    let cases: [(u16, &[u8]); 14] = [
        (attr::XOR_MAPPED_ADDRESS, &[0, 1, 0, 0, 1, 2, 3]),
        (attr::XOR_MAPPED_ADDRESS, &[0, 3, 0, 0, 1, 2, 3, 4]),
        (attr::MAPPED_ADDRESS, &[0, 2, 0, 0, 1, 2, 3, 4]),
        (attr::USERNAME, &[0xFF, 0xFE]),
        (attr::ERROR_CODE, &[0, 0, 2, 0]),
        (attr::ERROR_CODE, &[0, 0, 4, 100]),
        (attr::ERROR_CODE, &[0, 0, 4]),
        (attr::LIFETIME, &[0, 0, 1]),
        (attr::CHANNEL_NUMBER, &[0x40, 0]),
        (attr::REQUESTED_ADDRESS_FAMILY, &[3, 0, 0, 0]),
        (attr::PASSWORD_ALGORITHMS, &[0, 1, 0, 8, 0, 0]),
        (attr::UNKNOWN_ATTRIBUTES, &[0, 1, 0]),
        (attr::USERHASH, &[0; 31]),
        (attr::DONT_FRAGMENT, &[0]),
    ];
    let mut buf = Vec::new();
    for (attr_type, value) in cases {
        let mut enc = MessageEncoder::new(&mut buf, Method::ALLOCATE, Class::Request, ID);
        enc.add_raw(attr_type, value).unwrap();
        let bytes = enc.finish().to_vec();
        let msg = Message::decode(&bytes).expect("framing is fine");
        assert!(msg.get(attr_type).is_err(), "{attr_type:#x} {value:?}");
    }
    // An unknown family is its own error (TURN answers 440).
    assert_eq!(
        Attribute::decode(attr::REQUESTED_ADDRESS_FAMILY, &[3, 0, 0, 0], &ID),
        Err(AttributeError::UnknownAddressFamily(3))
    );
    // Over-long text.
    let long = vec![b'a'; 763];
    assert!(Attribute::decode(attr::REALM, &long, &ID).is_err());
    assert!(Attribute::decode(attr::REALM, &long[..762], &ID).is_ok());
}

/// Deterministic xorshift so the run is reproducible without a dependency.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Exercises every accessor on whatever decodes.
fn poke(bytes: &[u8]) {
    if let Ok(msg) = Message::decode(bytes) {
        for a in msg.attributes() {
            let _ = Attribute::decode(a.attr_type, a.value, msg.transaction_id());
            if let Ok(Attribute::PasswordAlgorithms(p)) =
                Attribute::decode(a.attr_type, a.value, msg.transaction_id())
            {
                let _ = p.iter().count();
            }
        }
        let _ = msg.unknown_comprehension_required().count();
        let _ = verify_integrity(&msg, b"k");
        let _ = verify_integrity_sha256(&msg, b"k");
    }
    let _ = channel_data::parse_datagram(bytes);
    let mut frames = Frames::new(bytes);
    for f in frames.by_ref() {
        if f.is_err() {
            break;
        }
    }
    assert!(frames.consumed() <= bytes.len());
}

#[test]
fn random_bytes_and_mutations_never_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let seed = request_with_fingerprint();
    // Without FINGERPRINT, mutations reach the attribute decoders instead of failing the CRC.
    let mut buf = Vec::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::ALLOCATE, Class::Request, ID);
    enc.add(&Attribute::XorPeerAddress(
        "[2001:db8::9]:9".parse().unwrap(),
    ))
    .unwrap();
    enc.add(&Attribute::ErrorCode(ErrorCode {
        code: 401,
        reason: "Unauthorized",
    }))
    .unwrap();
    enc.add_password_algorithms(&[PasswordAlgorithm {
        algorithm: 2,
        parameters: &[],
    }])
    .unwrap();
    enc.add_message_integrity_sha256(b"k").unwrap();
    let seed_plain = enc.finish().to_vec();

    for round in 0..20_000u32 {
        let mut bytes = if round % 2 == 0 {
            seed.clone()
        } else {
            seed_plain.clone()
        };
        match rng.next() % 4 {
            0 => {
                let len = (rng.next() % 96) as usize;
                bytes = (0..len).map(|_| rng.next() as u8).collect();
                if len >= 8 && rng.next() % 2 == 0 {
                    bytes[0] &= 0x3F;
                    bytes[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
                }
            }
            1 => {
                for _ in 0..1 + rng.next() % 4 {
                    let i = (rng.next() as usize) % bytes.len();
                    bytes[i] = rng.next() as u8;
                }
            }
            2 => bytes.truncate((rng.next() as usize) % (bytes.len() + 1)),
            _ => {
                let i = 20 + (rng.next() as usize) % (bytes.len() - 20);
                bytes[i] = rng.next() as u8;
                set_length_if_room(&mut bytes);
            }
        }
        poke(&bytes);
    }
}

fn set_length_if_room(bytes: &mut [u8]) {
    if bytes.len() >= 20 {
        let len = (bytes.len() - 20) as u16;
        set_length(bytes, len);
    }
}
