//! Stateless nonce minting and checking.

use std::net::SocketAddr;
use stun_core::*;

const SECRET: &[u8] = b"relay-nonce-secret-0123456789abcdef";

fn minter() -> NonceMinter {
    NonceMinter::new(SECRET, 600, SecurityFeatures::PASSWORD_ALGORITHMS)
}

fn client() -> SocketAddr {
    "198.51.100.7:40000".parse().unwrap()
}

#[test]
fn a_fresh_nonce_is_valid_then_stale() {
    let m = minter();
    let nonce = m.mint(1_000, client());
    assert_eq!(nonce.as_str().len(), NONCE_LEN);
    assert_eq!(m.check(nonce.as_str(), 1_000, client()), NonceStatus::Valid);
    assert_eq!(m.check(nonce.as_str(), 1_599, client()), NonceStatus::Valid);
    assert_eq!(m.check(nonce.as_str(), 1_600, client()), NonceStatus::Stale);
    // Small clock steps backwards between workers are tolerated, large ones are not.
    assert_eq!(m.check(nonce.as_str(), 998, client()), NonceStatus::Valid);
    assert_eq!(m.check(nonce.as_str(), 900, client()), NonceStatus::Invalid);
}

#[test]
fn the_nonce_carries_the_rfc8489_cookie_and_fits_a_nonce_attribute() {
    let nonce = minter().mint(1_000, client());
    assert!(nonce.as_str().starts_with("obMatJos2"));
    let features = SecurityFeatures::from_nonce(nonce.as_str()).unwrap();
    assert!(features.contains(SecurityFeatures::PASSWORD_ALGORITHMS));
    assert!(!features.contains(SecurityFeatures::USERNAME_ANONYMITY));
    assert!(SecurityFeatures::from_nonce("f//499k954d6OL34oL9FSTvy64sA").is_none());
    // It survives the NONCE attribute.
    let mut buf = Vec::new();
    let mut enc = MessageEncoder::new(
        &mut buf,
        Method::ALLOCATE,
        Class::ErrorResponse,
        TransactionId([1; 12]),
    );
    enc.add(&Attribute::Nonce(nonce.as_str())).unwrap();
    let bytes = enc.finish().to_vec();
    assert_eq!(
        Message::decode(&bytes).unwrap().nonce().unwrap(),
        Some(nonce.as_str())
    );
}

#[test]
fn a_nonce_is_bound_to_the_client_address_and_the_secret() {
    let m = minter();
    let nonce = m.mint(1_000, client());
    let other_port: SocketAddr = "198.51.100.7:40001".parse().unwrap();
    let other_ip: SocketAddr = "198.51.100.8:40000".parse().unwrap();
    assert_eq!(
        m.check(nonce.as_str(), 1_000, other_port),
        NonceStatus::Invalid
    );
    assert_eq!(
        m.check(nonce.as_str(), 1_000, other_ip),
        NonceStatus::Invalid
    );
    // A dual-stack socket reporting the same client as IPv4-mapped IPv6 is the same client.
    let mapped: SocketAddr = "[::ffff:198.51.100.7]:40000".parse().unwrap();
    assert_eq!(m.check(nonce.as_str(), 1_000, mapped), NonceStatus::Valid);
    let other = NonceMinter::new(
        b"another-secret-0123456789abcdefghij",
        600,
        SecurityFeatures::PASSWORD_ALGORITHMS,
    );
    assert_eq!(
        other.check(nonce.as_str(), 1_000, client()),
        NonceStatus::Invalid
    );
}

#[test]
fn tampered_or_foreign_nonces_are_invalid() {
    let m = minter();
    let nonce = m.mint(1_000, client());
    let s = nonce.as_str();
    // Every single-character change is caught, including in the timestamp and features.
    for i in 0..s.len() {
        let mut bytes = s.as_bytes().to_vec();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(bytes).unwrap();
        assert_eq!(
            m.check(&changed, 1_000, client()),
            NonceStatus::Invalid,
            "position {i}"
        );
    }
    for junk in [
        "",
        "obMatJos2",
        "obMatJos2gAAA",
        &s[..s.len() - 1],
        &format!("{s}x"),
        "f//499k954d6OL34oL9FSTvy64sA",
    ] {
        assert_eq!(
            m.check(junk, 1_000, client()),
            NonceStatus::Invalid,
            "{junk:?}"
        );
    }
    // Stretching the expiry by rewriting the timestamp breaks the MAC.
    let later = m.mint(5_000, client());
    let spliced = format!("{}{}", &s[..13], &later.as_str()[13..24]) + &s[24..];
    assert_eq!(m.check(&spliced, 1_000, client()), NonceStatus::Invalid);
}
