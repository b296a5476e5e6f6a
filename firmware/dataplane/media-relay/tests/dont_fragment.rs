//! DONT-FRAGMENT in Send indications (RFC 8656 14.8): a Send indication carrying it leaves
//! the relay socket with DF, one without it leaves as the allocation was created. The
//! relay socket's option is read through a duplicate of its descriptor, which shares the
//! socket with the relay thread, so the test sees exactly what the kernel applies to the
//! datagrams that socket sends.

use std::net::{SocketAddr, UdpSocket};

use media_relay::{dont_fragment, Command, RelayPlane};
use stun_core::{attr, Class, MessageEncoder, Method, TransactionId};

mod common;
use common::{addr, install, plane_config, relay_socket, udp};

fn send_indication(peer: SocketAddr, payload: &[u8], dont_fragment: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = MessageEncoder::new(
        &mut out,
        Method::SEND,
        Class::Indication,
        TransactionId([5; 12]),
    );
    enc.add_xor_address(attr::XOR_PEER_ADDRESS, peer)
        .unwrap_or_else(|e| panic!("{e}"));
    if dont_fragment {
        enc.add_raw(attr::DONT_FRAGMENT, &[])
            .unwrap_or_else(|e| panic!("{e}"));
    }
    enc.add_raw(attr::DATA, payload)
        .unwrap_or_else(|e| panic!("{e}"));
    enc.finish().to_vec()
}

/// The relay socket's DF option, as the kernel applies it to what the socket sends.
fn df_option(sock: &UdpSocket) -> i32 {
    dont_fragment::option_value(sock, addr(sock).is_ipv4())
        .unwrap_or_else(|e| panic!("getsockopt: {e}"))
}

/// One allocation on a fresh plane, with `peer` permitted; returns the plane, the client,
/// the listener and a duplicate of the relay socket's descriptor.
fn allocation(
    relay_bind: &str,
    created_with_df: bool,
    peer: &UdpSocket,
) -> (RelayPlane, UdpSocket, SocketAddr, UdpSocket) {
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    let mut config = plane_config(edged_metrics::Registry::new());
    if relay_bind.starts_with('[') {
        config.listeners = vec!["[::1]:0".parse().unwrap_or_else(|_| unreachable!())];
    }
    let plane = RelayPlane::start(config, tx).unwrap_or_else(|e| panic!("start: {e}"));
    let listener = plane.listener_addrs()[0];
    let client = udp(if relay_bind.starts_with('[') {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    });
    let relay = relay_socket(relay_bind);
    if created_with_df {
        dont_fragment::set(&relay, addr(&relay).is_ipv4()).unwrap_or_else(|e| panic!("{e}"));
    }
    let observer = relay.try_clone().unwrap_or_else(|e| panic!("dup: {e}"));
    for c in [
        install(1, &client, relay),
        Command::Permit {
            id: 1,
            peer: addr(peer).ip(),
            ports: 1..=u16::MAX,
        },
    ] {
        plane.command(0, c).unwrap_or_else(|e| panic!("{e}"));
    }
    // No wait for the relay thread to take these commands: it drains its command queue at
    // the start of every turn, before the datagrams of the turn.
    (plane, client, listener, observer)
}

fn relay_one(client: &UdpSocket, listener: SocketAddr, peer: &UdpSocket, df: bool, n: u8) {
    let payload = [n; 200];
    client
        .send_to(&send_indication(addr(peer), &payload, df), listener)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut buf = [0u8; 2048];
    let (len, _) = peer
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("peer: {e}"));
    assert_eq!(
        &buf[..len],
        &payload[..],
        "Send indication {n} relayed intact"
    );
}

#[test]
fn send_with_dont_fragment_sets_df_and_without_restores_it() {
    for (relay_bind, peer_bind, df_value) in [
        ("127.0.0.1:0", "127.0.0.1:0", libc::IP_PMTUDISC_DO),
        ("[::1]:0", "[::1]:0", 1),
    ] {
        let Ok(probe) = UdpSocket::bind(peer_bind) else {
            // No IPv6 loopback on this host: the IPv4 half still ran.
            continue;
        };
        drop(probe);
        let peer = udp(peer_bind);
        let (plane, client, listener, observer) = allocation(relay_bind, false, &peer);
        let created = df_option(&observer);
        assert_ne!(
            created, df_value,
            "{relay_bind}: allocation created without DF"
        );

        relay_one(&client, listener, &peer, true, 1);
        assert_eq!(
            df_option(&observer),
            df_value,
            "{relay_bind}: DF after a DF Send"
        );
        // A run of DF Sends keeps it.
        relay_one(&client, listener, &peer, true, 2);
        assert_eq!(df_option(&observer), df_value);

        relay_one(&client, listener, &peer, false, 3);
        assert_eq!(
            df_option(&observer),
            created,
            "{relay_bind}: a Send without DONT-FRAGMENT leaves as the allocation was created"
        );
        // Mixed kinds back to back in one burst: every one arrives, and the socket ends in
        // the state of the last one.
        for (n, df) in [(4, true), (5, false), (6, true)] {
            client
                .send_to(&send_indication(addr(&peer), &[n; 100], df), listener)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let mut buf = [0u8; 2048];
        for n in 4..=6u8 {
            let (len, _) = peer.recv_from(&mut buf).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&buf[..len], &[n; 100][..], "burst in order");
        }
        assert_eq!(df_option(&observer), df_value);
        plane.shutdown();
    }
}

#[test]
fn allocation_created_with_dont_fragment_keeps_df_on_every_send() {
    let peer = udp("127.0.0.1:0");
    let (plane, client, listener, observer) = allocation("127.0.0.1:0", true, &peer);
    for (n, df) in [(1, false), (2, true), (3, false)] {
        relay_one(&client, listener, &peer, df, n);
        assert_eq!(df_option(&observer), libc::IP_PMTUDISC_DO, "Send {n}");
    }
    plane.shutdown();
}
