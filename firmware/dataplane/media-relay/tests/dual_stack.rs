//! RFC 6156 dual allocations: one allocation with an IPv4 and an IPv6 relay socket. Packets
//! to a peer leave by the relay socket of the peer's family, packets from peers of either
//! family reach the client, and a single-family allocation drops packets for the other
//! family.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use media_relay::{Command, RelayPlane};
use stun_core::{attr, Class, Message, MessageEncoder, Method, TransactionId};

mod common;
use common::{
    addr, allocations_reaching, counter_reaching, install, plane_config, relay_socket, udp,
};

fn start() -> (RelayPlane, edged_metrics::Registry) {
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    let metrics = edged_metrics::Registry::new();
    let plane = RelayPlane::start(plane_config(metrics.clone()), tx)
        .unwrap_or_else(|e| panic!("start: {e}"));
    (plane, metrics)
}

fn channel_frame(channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8; 4 + payload.len().next_multiple_of(4)];
    let n = stun_core::channel_data::encode(&mut frame, channel, payload, false)
        .unwrap_or_else(|e| panic!("{e}"));
    frame.truncate(n);
    frame
}

fn send_indication(peer: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = MessageEncoder::new(
        &mut out,
        Method::SEND,
        Class::Indication,
        TransactionId([9; 12]),
    );
    enc.add_xor_address(attr::XOR_PEER_ADDRESS, peer)
        .and_then(|e| e.add_raw(attr::DATA, payload))
        .unwrap_or_else(|e| panic!("{e}"));
    enc.finish().to_vec()
}

fn recv(sock: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = sock
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("receive on {}: {e}", addr(sock)));
    (buf[..n].to_vec(), from)
}

/// Relay thread 0's drop counter for `reason`.
fn dropped(metrics: &edged_metrics::Registry, reason: &str) -> u64 {
    metrics
        .counter(
            "edged_av_edge_dropped_packets_total",
            "",
            &[("thread", "0"), ("reason", reason)],
        )
        .get()
}

#[test]
fn dual_allocation_relays_both_families() {
    let (plane, _metrics) = start();
    let listener = plane.listener_addrs()[0];
    let client = udp("127.0.0.1:0");
    let peer4 = udp("127.0.0.1:0");
    let peer6 = udp("[::1]:0");
    let relay4 = relay_socket("127.0.0.1:0");
    let relay6 = relay_socket("[::1]:0");
    let (relay4_addr, relay6_addr) = (addr(&relay4), addr(&relay6));
    let id = 7;
    let cmds = [
        // The IPv6 socket passed first as `relay` and the IPv4 one as `relay_v6` would be
        // a caller error; the documented order is IPv4 in `relay`.
        Command::Install {
            id,
            client: addr(&client),
            listener: 0,
            relay: relay4,
            relay_v6: Some(relay6),
            bandwidth_bytes_per_sec: 0,
        },
        Command::Permit {
            id,
            peer: addr(&peer4).ip(),
            ports: 1..=u16::MAX,
        },
        Command::Permit {
            id,
            peer: addr(&peer6).ip(),
            ports: 1..=u16::MAX,
        },
        Command::Bind {
            id,
            channel: 0x4004,
            peer: addr(&peer4),
        },
        Command::Bind {
            id,
            channel: 0x4006,
            peer: addr(&peer6),
        },
    ];
    for c in cmds {
        plane.command(0, c).unwrap_or_else(|e| panic!("{e}"));
    }
    // No wait for the relay thread to take these commands: it drains its command queue at
    // the start of every turn, before the datagrams of the turn.

    // Client to peers over channels: each leaves by the relay address of its family.
    client
        .send_to(&channel_frame(0x4004, b"to v4"), listener)
        .unwrap_or_else(|e| panic!("{e}"));
    let (bytes, from) = recv(&peer4);
    assert_eq!((bytes.as_slice(), from), (&b"to v4"[..], relay4_addr));
    client
        .send_to(&channel_frame(0x4006, b"to v6"), listener)
        .unwrap_or_else(|e| panic!("{e}"));
    let (bytes, from) = recv(&peer6);
    assert_eq!((bytes.as_slice(), from), (&b"to v6"[..], relay6_addr));

    // Peers to the client: accepted on both relay sockets, framed with the right channel.
    peer6
        .send_to(b"from v6", relay6_addr)
        .unwrap_or_else(|e| panic!("{e}"));
    let (bytes, _) = recv(&client);
    let cd = stun_core::channel_data::parse_datagram(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((cd.channel, cd.data), (0x4006, &b"from v6"[..]));
    peer4
        .send_to(b"from v4", relay4_addr)
        .unwrap_or_else(|e| panic!("{e}"));
    let (bytes, _) = recv(&client);
    let cd = stun_core::channel_data::parse_datagram(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((cd.channel, cd.data), (0x4004, &b"from v4"[..]));

    // A Send indication to an unbound IPv6 peer port leaves by the IPv6 socket, and the
    // answer comes back as a Data indication carrying the IPv6 peer address.
    let other6 = udp("[::1]:0");
    client
        .send_to(&send_indication(addr(&other6), b"send v6"), listener)
        .unwrap_or_else(|e| panic!("{e}"));
    let (bytes, from) = recv(&other6);
    assert_eq!((bytes.as_slice(), from), (&b"send v6"[..], relay6_addr));
    other6
        .send_to(b"data v6", relay6_addr)
        .unwrap_or_else(|e| panic!("{e}"));
    let (bytes, _) = recv(&client);
    let msg = Message::decode(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(msg.method(), Method::DATA);
    assert_eq!(msg.address(attr::XOR_PEER_ADDRESS), Ok(Some(addr(&other6))));
    assert_eq!(msg.data(), Some(&b"data v6"[..]));

    // Removing the allocation stops both sockets.
    plane
        .command(0, Command::Remove { id })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(allocations_reaching(&plane, &[0]), vec![0]);
    plane.shutdown();
}

#[test]
fn single_family_allocation_drops_the_other_family() {
    let (plane, metrics) = start();
    let listener = plane.listener_addrs()[0];
    let client = udp("127.0.0.1:0");
    let peer6 = udp("[::1]:0");
    let peer4 = udp("127.0.0.1:0");
    let id = 8;
    let cmds = [
        install(id, &client, relay_socket("127.0.0.1:0")),
        Command::Permit {
            id,
            peer: addr(&peer6).ip(),
            ports: 1..=u16::MAX,
        },
        Command::Permit {
            id,
            peer: addr(&peer4).ip(),
            ports: 1..=u16::MAX,
        },
        Command::Bind {
            id,
            channel: 0x4010,
            peer: addr(&peer6),
        },
        Command::Bind {
            id,
            channel: 0x4011,
            peer: addr(&peer4),
        },
    ];
    for c in cmds {
        plane.command(0, c).unwrap_or_else(|e| panic!("{e}"));
    }
    // No wait for the relay thread to take these commands: it drains its command queue at
    // the start of every turn, before the datagrams of the turn.
    let dropped_before = dropped(&metrics, "no_permission");
    client
        .send_to(&channel_frame(0x4010, b"nowhere"), listener)
        .unwrap_or_else(|e| panic!("{e}"));
    // Sent after the dropped one on the same path: once it arrives, the first was handled.
    client
        .send_to(&channel_frame(0x4011, b"v4 ok"), listener)
        .unwrap_or_else(|e| panic!("{e}"));
    let (bytes, _) = recv(&peer4);
    assert_eq!(bytes, b"v4 ok");
    peer6
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut buf = [0u8; 64];
    assert!(
        peer6.recv_from(&mut buf).is_err(),
        "nothing reaches an IPv6 peer"
    );
    // Counters are published at the end of the relay thread's turn.
    let dropped_after = counter_reaching(
        &metrics,
        "edged_av_edge_dropped_packets_total",
        &[("thread", "0"), ("reason", "no_permission")],
        dropped_before + 1,
    );
    assert_eq!(dropped_after - dropped_before, 1);
    plane.shutdown();
}
