//! What one authenticated user, or one connection, may hold: permissions, channels and
//! peers per request, allocations per identity, and how long a TCP/TLS connection may stay
//! without a request, without authenticating or idle.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use stun_core::{Attribute, Method};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// The n-th peer address in 127.0.1.0/24 and up (allowed by the tests' peer ranges).
fn nth_peer(n: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 1 + (n / 250) as u8, 1 + (n % 250) as u8], 9))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_and_channels_per_allocation_are_capped() {
    const PERMISSIONS: usize = 8;
    const CHANNELS: usize = 4;
    let h = start(|c| {
        c.max_permissions_per_allocation = PERMISSIONS as u32;
        c.max_channels_per_allocation = CHANNELS as u32;
    })
    .await;
    let mut c = Client::new(UdpWire::new(h.udp));
    c.allocate();
    for n in 0..PERMISSIONS {
        let a = c.permit(nth_peer(n));
        assert!(a.ok(), "permission {} refused: {:?}", n + 1, a.code);
    }
    assert_eq!(c.permit(nth_peer(PERMISSIONS)).code, Some(508));
    assert!(
        c.permit(nth_peer(0)).ok(),
        "refreshing one held is no new one"
    );

    let mut b = Client::new(UdpWire::new(h.udp));
    b.allocate();
    for n in 0..CHANNELS {
        let a = b.bind(0x4000 + n as u16, nth_peer(n));
        assert!(a.ok(), "channel {} refused: {:?}", n + 1, a.code);
    }
    assert_eq!(
        b.bind(0x4000 + CHANNELS as u16, nth_peer(CHANNELS)).code,
        Some(508)
    );
    assert!(b.bind(0x4000, nth_peer(0)).ok(), "refreshing a channel");
    h.role.drain(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_per_create_permission_are_capped() {
    let h = start(|c| c.max_peers_per_request = 4).await;
    let mut c = Client::new(UdpWire::new(h.udp));
    c.allocate();
    let request = |count: usize| {
        move |e: &mut stun_core::MessageEncoder<'_>| {
            for n in 0..count {
                e.add_xor_address(stun_core::attr::XOR_PEER_ADDRESS, nth_peer(n))?;
            }
            Ok(())
        }
    };
    let four = request(4);
    assert!(c.request(Method::CREATE_PERMISSION, &four).ok());
    let five = request(5);
    assert_eq!(c.request(Method::CREATE_PERMISSION, &five).code, Some(400));
    h.role.drain(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_credentials_of_one_user_share_a_quota() {
    let h = start(|c| c.max_allocations_per_user = 1).await;
    let stored = h
        .store
        .get(
            relay_credentials::stored::STORE_NAMESPACE,
            relay_credentials::stored::STORE_KEY,
        )
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no key ring"));
    let ring = relay_credentials::stored::decode(&stored).unwrap_or_else(|e| panic!("{e}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let allocate = |ttl: u64| {
        let cred = ring
            .mint("bob@example.test", ttl, now)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut client = Client::new(UdpWire::new(h.udp));
        client.user = cred.username.clone();
        client.password = cred.password.clone();
        let a = client.request(Method::ALLOCATE, &|e| {
            e.add(&Attribute::RequestedTransport(17))?;
            Ok(())
        });
        (client, a.code)
    };
    let (_first, code) = allocate(600);
    assert_eq!(code, None, "the first allocation");
    // A fresh credential of the same user (another expiry, so another username) is no
    // fresh quota.
    let (_second, code) = allocate(900);
    assert_eq!(code, Some(486));
    h.role.drain(Duration::from_millis(10)).await;
}

/// Whether the server closes `stream` within `within` (EOF or reset), reading whatever
/// it sends meanwhile.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap_or_else(|e| panic!("{e}"));
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_a_complete_request_is_closed_at_its_deadline() {
    let h = start(|c| c.tcp_first_request_timeout_secs = 1).await;
    // One byte that is no TLS handshake: the connection is TURN over TCP, and the first
    // request never completes.
    let mut stream = TcpStream::connect(h.tcp).unwrap_or_else(|e| panic!("{e}"));
    stream.write_all(&[0x00]).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        closed_within(&mut stream, Duration::from_secs(20)),
        "a partial first request holds its connection"
    );
    // Nothing at all, on the TLS-only port: the handshake deadline.
    let mut silent = TcpStream::connect(h.tls_addr).unwrap_or_else(|e| panic!("{e}"));
    assert!(closed_within(&mut silent, Duration::from_secs(20)));
    h.role.drain(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_never_authenticates_is_closed() {
    let h = start(|c| c.tcp_auth_timeout_secs = 2).await;
    let mut c = Client::new(TcpWire::new(h.tcp));
    // Binding requests keep coming, but none authenticates.
    let started = Instant::now();
    let mut binding = Vec::new();
    stun_core::MessageEncoder::new(
        &mut binding,
        Method::BINDING,
        stun_core::Class::Request,
        tid(),
    );
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(20) {
        c.wire.stream.write_all(&binding).ok();
        if closed_within(&mut c.wire.stream, Duration::from_millis(500)) {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "requests without authentication hold the connection"
    );
    h.role.drain(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_control_connection_without_allocation_is_closed() {
    let h = start(|c| c.tcp_idle_timeout_secs = 1).await;
    let mut c = Client::new(TcpWire::new(h.tcp));
    c.allocate();
    // Deleting the allocation leaves an authenticated connection with nothing on it.
    let a = c.request(Method::REFRESH, &|e| {
        e.add(&Attribute::Lifetime(0))?;
        Ok(())
    });
    assert!(a.ok());
    assert!(
        closed_within(&mut c.wire.stream, Duration::from_secs(20)),
        "an idle connection without allocation stays open"
    );
    // A connection with an allocation is not idle-closed: it lives as long as it.
    let mut d = Client::new(TcpWire::new(h.tcp));
    d.allocate();
    assert!(!closed_within(&mut d.wire.stream, Duration::from_secs(3)));
    assert!(d.permit(sa("127.0.0.3:9")).ok());
    h.role.drain(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_use_nat64_prefix_is_denied() {
    // 127.0.0.0/8 is allowed, but not whatever a local NAT64 translator reaches.
    let h = start(|_| {}).await;
    let mut c = Client::new(UdpWire::new(h.udp));
    c.allocate();
    for p in ["[64:ff9b:1::7f00:3]:9", "[64:ff9b:1::808:808]:53"] {
        assert_eq!(c.permit(sa(p)).code, Some(403), "{p}");
    }
    h.role.drain(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_range_with_ports_reaches_only_those_ports() {
    let allowed = peer();
    let other = peer();
    let port = addr(&allowed).port();
    let h = start(|c| c.allowed_peer_ranges = vec![format!("127.0.0.3/32:{port}")]).await;
    let mut c = Client::new(UdpWire::new(h.udp));
    c.allocate();
    assert_eq!(c.permit(addr(&other)).code, Some(403), "another port");
    assert!(c.permit(addr(&allowed)).ok());
    // The permission is for the address, but Send reaches only the allowed port.
    c.send_indication(addr(&other), b"must not arrive");
    c.send_indication(addr(&allowed), b"arrives");
    let got = recv(&allowed).map(|(bytes, _)| bytes);
    assert_eq!(got.as_deref(), Some(&b"arrives"[..]));
    other
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(recv(&other).is_none(), "a port outside the range got data");
    h.role.drain(Duration::from_millis(10)).await;
}
