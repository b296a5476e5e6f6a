//! What an unauthenticated source can get out of the relay: a minimal 401 (no attribute
//! beyond what the client needs to authenticate), minimal Binding and 400 answers, and no
//! more answers per second than `unauthenticated_rate_per_sec`, per source address.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::*;
use stun_core::{attr, Attribute, Class, MessageEncoder, Method};

fn allocate_without_credentials() -> Vec<u8> {
    let mut buf = Vec::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::ALLOCATE, Class::Request, tid());
    enc.add(&Attribute::RequestedTransport(stun_core::TRANSPORT_UDP))
        .unwrap_or_else(|e| panic!("{e}"));
    buf
}

fn attribute_types(bytes: &[u8]) -> Vec<u16> {
    decode_answer(bytes.to_vec())
        .message()
        .attributes()
        .map(|a| a.attr_type)
        .collect()
}

/// Answers `from` gets to `count` copies of `request` sent back to back.
fn answers(from: &UdpSocket, server: std::net::SocketAddr, request: &[u8], count: usize) -> usize {
    for _ in 0..count {
        from.send_to(request, server)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let mut got = 0;
    let mut buf = [0u8; 2048];
    while from.recv_from(&mut buf).is_ok() {
        got += 1;
    }
    got
}

fn client_socket(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).unwrap_or_else(|e| panic!("{e}"));
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap_or_else(|e| panic!("{e}"));
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_answers_are_minimal() {
    let h = start(|_| {}).await;
    let mut c = Client::new(UdpWire::new(h.udp));
    let request = allocate_without_credentials();
    let a = c.exchange(&request).unwrap_or_else(|| panic!("no 401"));
    assert_eq!(a.code, Some(401));
    assert_eq!(
        attribute_types(&a.bytes),
        [
            attr::ERROR_CODE,
            attr::REALM,
            attr::NONCE,
            attr::PASSWORD_ALGORITHMS,
            attr::FINGERPRINT
        ],
        "the 401 carries only what authentication needs (no SOFTWARE)"
    );
    // Nothing is padded beyond the attributes above: header, ERROR-CODE with
    // "Unauthorized", REALM, the fixed-size NONCE, two PASSWORD-ALGORITHMS entries,
    // FINGERPRINT.
    let pad = |n: usize| (n + 3) & !3;
    let needed = 20
        + 4
        + pad(4 + "Unauthorized".len())
        + 4
        + pad(REALM.len())
        + 4
        + pad(stun_core::NONCE_LEN)
        + 4
        + 8
        + 8;
    assert_eq!(a.bytes.len(), needed);

    let mut buf = Vec::new();
    MessageEncoder::new(&mut buf, Method::BINDING, Class::Request, tid());
    let a = c
        .exchange(&buf)
        .unwrap_or_else(|| panic!("no Binding answer"));
    assert!(a.ok());
    assert_eq!(
        attribute_types(&a.bytes),
        [attr::XOR_MAPPED_ADDRESS, attr::FINGERPRINT]
    );

    // A malformed request gets a bare 400.
    let mut bad = allocate_without_credentials();
    bad[3] = bad[3].wrapping_add(4); // the length now overruns the message
    let a = c.exchange(&bad).unwrap_or_else(|| panic!("no 400"));
    assert_eq!(a.code, Some(400));
    assert_eq!(
        attribute_types(&a.bytes),
        [attr::ERROR_CODE, attr::FINGERPRINT]
    );
    h.role.drain(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_answers_are_rate_limited_per_source() {
    const RATE: usize = 5;
    let h = start(|c| c.unauthenticated_rate_per_sec = RATE as u32).await;
    let request = allocate_without_credentials();
    let noisy = client_socket("127.0.0.1");
    let got = answers(&noisy, h.udp, &request, 4 * RATE);
    assert!(got <= RATE, "{got} answers for a budget of {RATE}");
    assert!(got > 0, "the first requests are answered");
    // Binding and malformed requests share the budget.
    let mut binding = Vec::new();
    MessageEncoder::new(&mut binding, Method::BINDING, Class::Request, tid());
    assert_eq!(
        answers(&noisy, h.udp, &binding, 3),
        0,
        "Binding beyond the budget"
    );
    // Another source has its own budget.
    let other = client_socket("127.0.0.5");
    assert!(answers(&other, h.udp, &request, 1) == 1);
    // The budget comes back after a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(answers(&noisy, h.udp, &request, 1), 1);
    // Authenticated requests are not limited: a client with credentials keeps working.
    let mut c = Client::new(UdpWire::new(h.udp));
    c.allocate();
    for _ in 0..(3 * RATE) {
        assert!(c.permit(addr(&peer())).ok());
    }
    h.role.drain(Duration::from_millis(10)).await;
}

/// An Allocate that carries MESSAGE-INTEGRITY but no valid credential: with `full`, a
/// username, realm and a nonce that is not ours (answered 401), without, bare (answered
/// 400).
fn allocate_with_bogus_integrity(full: bool) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::ALLOCATE, Class::Request, tid());
    enc.add(&Attribute::RequestedTransport(stun_core::TRANSPORT_UDP))
        .unwrap_or_else(|e| panic!("{e}"));
    if full {
        enc.add(&Attribute::Username("mallory"))
            .and_then(|e| e.add(&Attribute::Realm(REALM)))
            .and_then(|e| e.add(&Attribute::Nonce("not-a-nonce-of-this-relay")))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    enc.add_message_integrity(&[7; 16])
        .unwrap_or_else(|e| panic!("{e}"));
    buf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_to_requests_with_bogus_integrity_share_the_budget() {
    const RATE: usize = 5;
    let h = start(|c| c.unauthenticated_rate_per_sec = RATE as u32).await;
    for (source, full, code) in [("127.0.0.1", true, 401), ("127.0.0.6", false, 400)] {
        let request = allocate_with_bogus_integrity(full);
        let from = client_socket(source);
        let mut c = Client::new(UdpWire {
            sock: client_socket(source),
            server: h.udp,
        });
        let first = c.exchange(&request).unwrap_or_else(|| panic!("no answer"));
        assert_eq!(first.code, Some(code));
        let got = answers(&from, h.udp, &request, 8 * RATE);
        // The burst may straddle the start of a second: two seconds' budgets at most.
        assert!(
            got <= 2 * RATE,
            "{got} {code} answers to {} requests from {source} for a budget of {RATE} per second",
            8 * RATE
        );
    }
    h.role.drain(Duration::from_millis(10)).await;
}
