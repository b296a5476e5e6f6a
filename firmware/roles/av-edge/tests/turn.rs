//! TURN end to end against the started role, over real sockets: relaying on UDP and TCP,
//! the peer-address policy on every path, authentication errors, quotas, short-lived
//! credentials and bad input.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use stun_core::{attr, Attribute, Class, Message, MessageEncoder, Method};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|_| panic!("bad address {s}"))
}

/// Allocation, permission, channel, ChannelData both ways, Send and Data.
fn relay_round_trip<W: Wire>(client: &mut Client<W>) {
    let relayed = client.allocate();
    let peer_a = peer();
    let peer_b = peer();
    assert!(client.permit(addr(&peer_b)).ok());
    assert!(client.bind(0x4000, addr(&peer_a)).ok());

    client.channel_data(0x4000, b"to peer a over a channel");
    let (got, from) = recv(&peer_a).unwrap_or_else(|| panic!("peer a got nothing"));
    assert_eq!(got, b"to peer a over a channel");
    assert_eq!(from, relayed, "media leaves from the relayed address");

    peer_a
        .send_to(b"back from a", relayed)
        .unwrap_or_else(|e| panic!("{e}"));
    let frame = client
        .wire
        .recv()
        .unwrap_or_else(|| panic!("client got nothing"));
    let cd = stun_core::channel_data::parse_datagram(&frame)
        .unwrap_or_else(|e| panic!("not ChannelData: {e}"));
    assert_eq!((cd.channel, cd.data), (0x4000, &b"back from a"[..]));

    client.send_indication(addr(&peer_b), b"send indication to b");
    let (got, _) = recv(&peer_b).unwrap_or_else(|| panic!("peer b got nothing"));
    assert_eq!(got, b"send indication to b");
    peer_b
        .send_to(b"data from b", relayed)
        .unwrap_or_else(|e| panic!("{e}"));
    let frame = client
        .wire
        .recv()
        .unwrap_or_else(|| panic!("client got nothing"));
    let msg = Message::decode(&frame).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (msg.method(), msg.class()),
        (Method::DATA, Class::Indication)
    );
    assert_eq!(msg.address(attr::XOR_PEER_ADDRESS), Ok(Some(addr(&peer_b))));
    assert_eq!(msg.data(), Some(&b"data from b"[..]));

    // A peer without permission (permissions are per IP: another address) is not
    // relayed to the client.
    let stranger = std::net::UdpSocket::bind("127.0.0.4:0").unwrap_or_else(|e| panic!("{e}"));
    stranger
        .send_to(b"unsolicited", relayed)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        client.wire.recv().is_none(),
        "unpermitted peer reached the client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_client_relays_through_the_data_plane() {
    let h = start(|_| {}).await;
    let mut client = Client::new(UdpWire::new(h.udp));
    // Binding works unauthenticated and reports the client's address.
    let mut buf = Vec::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::BINDING, Class::Request, tid());
    enc.add_fingerprint().unwrap_or_else(|e| panic!("{e}"));
    let a = client
        .exchange(&buf)
        .unwrap_or_else(|| panic!("no Binding answer"));
    assert!(a.ok());
    assert_eq!(
        a.message().address(attr::XOR_MAPPED_ADDRESS),
        Ok(Some(addr(&client.wire.sock)))
    );
    relay_round_trip(&mut client);
    assert!(h.metrics.sum("edged_av_edge_relayed_packets_total") >= 4);
    assert_eq!(h.role.status().counters.get("allocations"), Some(&1));
    h.role.drain(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_client_relays_through_its_connection() {
    let h = start(|_| {}).await;
    let mut client = Client::new(TcpWire::new(h.tcp));
    relay_round_trip(&mut client);
    h.role.drain(Duration::from_millis(10)).await;
}

/// CVE-2020-26262 and CVE-2026-27624 style peers, and the metadata address, against a
/// relay that allows no private range.
const BYPASS: &[&str] = &[
    "0.0.0.0:9",
    "[::]:9",
    "[::1]:9",
    "127.0.0.1:9",
    "[::ffff:127.0.0.1]:9",
    "[::127.0.0.1]:9",
    "[2002:7f00:1::]:9",
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]:9",
    "[64:ff9b::7f00:1]:9",
    "169.254.169.254:80",
    "[::ffff:169.254.169.254]:80",
    "10.0.0.1:9",
    "192.168.1.1:9",
    "224.0.0.1:9",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bypass_peers_are_refused_on_every_path() {
    let h = start(|av| av.allowed_peer_ranges.clear()).await;
    let mut client = Client::new(UdpWire::new(h.udp));
    client.allocate();
    for (i, p) in BYPASS.iter().enumerate() {
        let peer = sa(p);
        let a = client.permit(peer);
        assert_eq!(a.code, Some(403), "CreatePermission {p}");
        let a = client.bind(0x4000 + i as u16, peer);
        assert_eq!(a.code, Some(403), "ChannelBind {p}");
    }
    // Send indications to a loopback peer (in any disguise) never arrive.
    let target = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    target
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap_or_else(|e| panic!("{e}"));
    let port = addr(&target).port();
    for form in [
        format!("127.0.0.1:{port}"),
        format!("[::ffff:127.0.0.1]:{port}"),
        format!("[::127.0.0.1]:{port}"),
        format!("[2002:7f00:1::]:{port}"),
    ] {
        client.send_indication(sa(&form), b"must not arrive");
    }
    assert!(recv(&target).is_none(), "a refused peer received data");
    assert!(h.role.status().counters["forbidden_peers"] >= 2 * BYPASS.len() as u64);
    h.role.drain(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_service_ports_are_refused_even_in_allowed_ranges() {
    let h = start(|_| {}).await;
    let mut client = Client::new(UdpWire::new(h.udp));
    client.allocate();
    for own in [h.udp, h.tcp, h.tls_addr] {
        assert_eq!(client.permit(own).code, Some(403), "{own}");
        let mapped = SocketAddr::new(
            match own.ip() {
                std::net::IpAddr::V4(v4) => std::net::IpAddr::V6(v4.to_ipv6_mapped()),
                v6 => v6,
            },
            own.port(),
        );
        assert_eq!(client.bind(0x4100, mapped).code, Some(403), "{mapped}");
    }
    h.role.drain(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_errors() {
    let h = start(|av| av.nonce_lifetime_secs = 1).await;
    let mut client = Client::new(UdpWire::new(h.udp));
    client.password = "wrong".into();
    let a = client.request(Method::ALLOCATE, &|e| {
        e.add(&Attribute::RequestedTransport(17))?;
        Ok(())
    });
    assert_eq!(a.code, Some(401));
    assert!(
        a.message().nonce().ok().flatten().is_some(),
        "401 carries a fresh nonce"
    );
    assert!(a.message().raw(attr::MESSAGE_INTEGRITY).is_none());

    // Unknown user.
    client.user = "mallory".into();
    client.password = PASSWORD.into();
    let a = client.request(Method::ALLOCATE, &|e| {
        e.add(&Attribute::RequestedTransport(17))?;
        Ok(())
    });
    assert_eq!(a.code, Some(401));

    // A nonce older than its lifetime gets 438 with a new one, then the request passes.
    client.user = USER.into();
    client.allocate();
    std::thread::sleep(Duration::from_millis(2100));
    let stale = client.nonce.clone();
    let mut buf = Vec::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::REFRESH, Class::Request, tid());
    enc.add(&Attribute::Username(USER))
        .and_then(|e| e.add(&Attribute::Realm(REALM)))
        .and_then(|e| e.add(&Attribute::Nonce(stale.as_deref().unwrap_or(""))))
        .and_then(|e| e.add_message_integrity(&stun_core::long_term_key_md5(USER, REALM, PASSWORD)))
        .unwrap_or_else(|e| panic!("{e}"));
    let a = client.exchange(&buf).unwrap_or_else(|| panic!("no answer"));
    assert_eq!(a.code, Some(438));
    let fresh = a.message().nonce().ok().flatten().map(str::to_string);
    assert!(fresh.is_some() && fresh != stale);
    client.nonce = fresh;
    let a = client.request(Method::REFRESH, &|_| Ok(()));
    assert!(a.ok(), "{:?}", a.code);
    h.role.drain(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_and_mismatches() {
    let h = start(|av| av.max_allocations_per_user = 1).await;
    let mut first = Client::new(UdpWire::new(h.udp));
    first.allocate();
    // A second Allocate on the same 5-tuple is a mismatch.
    let a = first.request(Method::ALLOCATE, &|e| {
        e.add(&Attribute::RequestedTransport(17))?;
        Ok(())
    });
    assert_eq!(a.code, Some(437));
    // The same user from another 5-tuple is over quota.
    let mut second = Client::new(UdpWire::new(h.udp));
    let a = second.request(Method::ALLOCATE, &|e| {
        e.add(&Attribute::RequestedTransport(17))?;
        Ok(())
    });
    assert_eq!(a.code, Some(486));
    // Without an allocation, CreatePermission is a mismatch too.
    let a = second.permit(sa("127.0.0.3:9"));
    assert_eq!(a.code, Some(437));
    // TCP relaying (RFC 6062) needs a TCP or TLS control connection.
    let mut third = Client::new(UdpWire::new(h.udp));
    third.user = USER.into();
    let a = third.request(Method::ALLOCATE, &|e| {
        e.add(&Attribute::RequestedTransport(6))?;
        Ok(())
    });
    assert_eq!(a.code, Some(442));
    // Deleting the allocation frees the quota.
    let a = first.request(Method::REFRESH, &|e| {
        e.add(&Attribute::Lifetime(0))?;
        Ok(())
    });
    assert!(a.ok());
    // The quota is given back when the relay thread has removed the allocation, a moment
    // after the answer: retry (bounded) until the second client's allocation passes.
    let deadline = std::time::Instant::now() + edged_test_tools::wait::WAIT;
    loop {
        let a = second.request(Method::ALLOCATE, &|e| {
            e.add(&Attribute::RequestedTransport(17))?;
            Ok(())
        });
        if a.ok() {
            break;
        }
        assert_eq!(a.code, Some(486), "allocation quota");
        assert!(
            std::time::Instant::now() < deadline,
            "the quota was not given back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.role.drain(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_credentials() {
    let h = start(|_| {}).await;
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
    let cred = ring
        .mint("bob@example.test", 600, now)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut client = Client::new(UdpWire::new(h.udp));
    client.user = cred.username.clone();
    client.password = cred.password.clone();
    let a = client.request(Method::ALLOCATE, &|e| {
        e.add(&Attribute::RequestedTransport(17))?;
        e.add(&Attribute::Lifetime(3600))?;
        Ok(())
    });
    assert!(a.ok(), "{:?}", a.code);
    let lifetime = a.message().lifetime().ok().flatten().unwrap_or(0);
    assert!(
        lifetime <= 600,
        "allocation outlives its credential: {lifetime}"
    );

    // An expired credential is refused, even with the right password.
    let expired_user = format!("{}:bob@example.test", now - 1);
    let mut late = Client::new(UdpWire::new(h.udp));
    late.password = relay_credentials::password(REST_SECRET.as_bytes(), &expired_user);
    late.user = expired_user;
    let a = late.request(Method::ALLOCATE, &|e| {
        e.add(&Attribute::RequestedTransport(17))?;
        Ok(())
    });
    assert_eq!(a.code, Some(401));
    h.role.drain(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_400_or_is_dropped_and_counted() {
    let h = start(|_| {}).await;
    let mut client = Client::new(UdpWire::new(h.udp));
    // A request whose attribute overruns the message: 400 with the same transaction.
    let mut buf = Vec::new();
    let id = tid();
    let mut enc = MessageEncoder::new(&mut buf, Method::ALLOCATE, Class::Request, id);
    enc.add_raw(attr::SOFTWARE, b"abcd")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut bad = enc.finish().to_vec();
    bad[22..24].copy_from_slice(&200u16.to_be_bytes());
    let a = client.exchange(&bad).unwrap_or_else(|| panic!("no 400"));
    assert_eq!(a.code, Some(400));
    assert_eq!(*a.message().transaction_id(), id);
    // A malformed indication gets nothing.
    bad[0..2].copy_from_slice(&0x0016u16.to_be_bytes());
    client.wire.send(&bad);
    assert!(client.wire.recv().is_none());
    // Truncated and oversized ChannelData are dropped and counted.
    client.allocate();
    let before = h.metrics.sum("edged_av_edge_dropped_packets_total");
    for frame in [
        &[0x40u8, 0x00, 0x00, 0x10, 1, 2][..],
        &[0x40, 0x00][..],
        &[0x40, 0x00, 0x00, 0x01, 1, 2, 3, 4, 5, 6, 7, 8][..],
    ] {
        client.wire.send(frame);
    }
    // Random junk does not take anything down.
    let mut seed = 0x1234_5678_9abc_def0u64;
    for len in 0..200usize {
        let mut junk = vec![0u8; len];
        for b in &mut junk {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *b = seed as u8;
        }
        client.wire.send(&junk);
    }
    // Counted by the relay thread at the end of its turn: wait (bounded) for the count.
    let deadline = std::time::Instant::now() + edged_test_tools::wait::WAIT;
    let mut after = h.metrics.sum("edged_av_edge_dropped_packets_total");
    while after < before + 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = h.metrics.sum("edged_av_edge_dropped_packets_total");
    }
    assert!(
        after >= before + 3,
        "malformed ChannelData not counted ({before} -> {after})"
    );
    // Still serving.
    let mut other = Client::new(UdpWire::new(h.udp));
    other.allocate();
    h.role.drain(Duration::from_millis(10)).await;
}
