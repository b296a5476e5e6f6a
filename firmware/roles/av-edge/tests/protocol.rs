//! The TURN extensions over real sockets: EVEN-PORT and RESERVATION-TOKEN, DONT-FRAGMENT,
//! RFC 6156 dual stack (relays on 127.0.0.1 and ::1) and RFC 6062 TCP allocations.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use common::*;
use stun_core::{attr, AddressFamily, Attribute, Class, Message, Method, TRANSPORT_TCP};

const V6_RELAY: &str = "::1";

fn relayed(a: &Answer) -> Vec<SocketAddr> {
    a.message()
        .get_all(attr::XOR_RELAYED_ADDRESS)
        .filter_map(|r| match r {
            Ok(Attribute::XorRelayedAddress(s)) => Some(s),
            _ => None,
        })
        .collect()
}

fn allocate_with<W: Wire>(c: &mut Client<W>, extra: &[Attribute<'_>]) -> Answer {
    c.request(Method::ALLOCATE, &|e| {
        e.add(&Attribute::RequestedTransport(stun_core::TRANSPORT_UDP))?;
        for a in extra {
            e.add(a)?;
        }
        Ok(())
    })
}

fn token_of(a: &Answer) -> Option<[u8; 8]> {
    match a.message().get(attr::RESERVATION_TOKEN) {
        Ok(Some(Attribute::ReservationToken(t))) => Some(*t),
        _ => None,
    }
}

fn ipv6_loopback() -> bool {
    UdpSocket::bind("[::1]:0").is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn even_port_and_reservation_token() {
    let h = start(|_| {}).await;
    let mut even = Client::new(UdpWire::new(h.udp));
    let a = allocate_with(&mut even, &[Attribute::EvenPort(false)]);
    assert!(a.ok(), "{:?}", a.code);
    assert_eq!(relayed(&a)[0].port() % 2, 0, "EVEN-PORT gives an even port");
    assert!(token_of(&a).is_none(), "no reservation without the R bit");

    let mut first = Client::new(UdpWire::new(h.udp));
    let a = allocate_with(&mut first, &[Attribute::EvenPort(true)]);
    assert!(a.ok(), "{:?}", a.code);
    let port = relayed(&a)[0].port();
    assert_eq!(port % 2, 0);
    let token = token_of(&a).unwrap_or_else(|| panic!("no RESERVATION-TOKEN"));
    // The next port is held for the token.
    assert!(
        UdpSocket::bind(("127.0.0.1", port + 1)).is_err(),
        "reserved port {} is free",
        port + 1
    );

    // Both attributes together are a bad request.
    let mut both = Client::new(UdpWire::new(h.udp));
    let a = allocate_with(
        &mut both,
        &[
            Attribute::EvenPort(false),
            Attribute::ReservationToken(&token),
        ],
    );
    assert_eq!(a.code, Some(400));

    // The token gets exactly the reserved port, once.
    let mut second = Client::new(UdpWire::new(h.udp));
    let a = allocate_with(&mut second, &[Attribute::ReservationToken(&token)]);
    assert!(a.ok(), "{:?}", a.code);
    assert_eq!(relayed(&a)[0].port(), port + 1);
    let mut third = Client::new(UdpWire::new(h.udp));
    let a = allocate_with(&mut third, &[Attribute::ReservationToken(&token)]);
    assert_eq!(a.code, Some(508), "a used token");
    let a = allocate_with(&mut third, &[Attribute::ReservationToken(&[0xA5; 8])]);
    assert_eq!(a.code, Some(508), "an unknown token");

    // The odd allocation relays like any other.
    let p = peer();
    assert!(second.bind(0x4001, addr(&p)).ok());
    second.channel_data(0x4001, b"rtcp on the odd port");
    let (got, from) = recv(&p).unwrap_or_else(|| panic!("peer got nothing"));
    assert_eq!(
        (got.as_slice(), from.port()),
        (&b"rtcp on the odd port"[..], port + 1)
    );
    h.role.drain(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_count_against_the_quota() {
    let h = start(|c| c.max_allocations_per_user = 2).await;
    let mut first = Client::new(UdpWire::new(h.udp));
    let a = allocate_with(&mut first, &[Attribute::EvenPort(true)]);
    assert!(a.ok(), "{:?}", a.code);
    let token = token_of(&a).unwrap_or_else(|| panic!("no token"));
    // Allocation plus reservation use both of the user's slots.
    let mut second = Client::new(UdpWire::new(h.udp));
    assert_eq!(allocate_with(&mut second, &[]).code, Some(486));
    // An R-bit request needs two slots.
    let a = first.request(Method::REFRESH, &|e| {
        e.add(&Attribute::Lifetime(0))?;
        Ok(())
    });
    assert!(a.ok());
    let mut third = Client::new(UdpWire::new(h.udp));
    assert_eq!(
        allocate_with(&mut third, &[Attribute::EvenPort(true)]).code,
        Some(486),
        "the reservation still holds one slot"
    );
    // Taking the reservation turns it into the allocation: no extra slot.
    assert!(allocate_with(&mut second, &[Attribute::ReservationToken(&token)]).ok());
    assert!(allocate_with(&mut third, &[]).ok());
    h.role.drain(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dont_fragment_is_supported_on_allocate_and_send() {
    let h = start(|_| {}).await;
    let p = peer();
    for transport in ["udp", "tcp"] {
        let relay = if transport == "udp" {
            let mut c = Client::new(UdpWire::new(h.udp));
            dont_fragment_round(&mut c, &p)
        } else {
            let mut c = Client::new(TcpWire::new(h.tcp));
            dont_fragment_round(&mut c, &p)
        };
        assert_eq!(relay.ip(), h.udp.ip(), "{transport}");
    }
    h.role.drain(Duration::from_millis(10)).await;
}

fn dont_fragment_round<W: Wire>(c: &mut Client<W>, p: &UdpSocket) -> SocketAddr {
    let a = allocate_with(c, &[Attribute::DontFragment]);
    assert!(a.ok(), "DONT-FRAGMENT refused: {:?}", a.code);
    let relay = relayed(&a)[0];
    assert!(c.permit(addr(p)).ok());
    let mut buf = Vec::new();
    let mut enc = stun_core::MessageEncoder::new(&mut buf, Method::SEND, Class::Indication, tid());
    enc.add_xor_address(attr::XOR_PEER_ADDRESS, addr(p))
        .and_then(|e| e.add(&Attribute::DontFragment))
        .and_then(|e| e.add_raw(attr::DATA, &[0x5A; 1200]))
        .unwrap_or_else(|e| panic!("{e}"));
    c.wire.send(&buf);
    let (got, from) = recv(p).unwrap_or_else(|| panic!("peer got nothing"));
    assert_eq!((got.len(), from), (1200, relay));
    relay
}

/// The IPv4 relay socket bound to `relay`, found among this process's descriptors (the
/// role runs in the test process), read without taking ownership: its IP_MTU_DISCOVER.
#[allow(
    unsafe_code,
    reason = "reads a socket option of a descriptor found in /proc/self/fd, which only a raw fd reaches"
)]
fn relay_socket_df_option(relay: SocketAddr) -> Option<i32> {
    use std::os::fd::{AsRawFd, FromRawFd, RawFd};
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        // SAFETY: the descriptor belongs to this process; `ManuallyDrop` never closes it,
        // and on anything but a socket `local_addr` just fails.
        let sock = std::mem::ManuallyDrop::new(unsafe { UdpSocket::from_raw_fd(fd) });
        if sock.local_addr().ok() != Some(relay) {
            continue;
        }
        let mut value: i32 = -1;
        let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
        // SAFETY: `value` and `len` outlive the call and `len` holds the size of `value`.
        let rc = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                (&mut value as *mut i32).cast(),
                &mut len,
            )
        };
        return (rc == 0).then_some(value);
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_send_indication_dont_fragment_switches_the_relay_socket() {
    // An allocation without DONT-FRAGMENT; Send indications over UDP (relay threads) with
    // and without it. Each must arrive, and the relay socket must carry DF exactly while
    // the last Send asked for it.
    let h = start(|_| {}).await;
    let p = peer();
    let mut c = Client::new(UdpWire::new(h.udp));
    let relay = c.allocate();
    assert!(c.permit(addr(&p)).ok());
    let created = relay_socket_df_option(relay).unwrap_or_else(|| panic!("no relay socket"));
    assert_ne!(created, libc::IP_PMTUDISC_DO, "allocated without DF");
    for (n, df) in [(1u8, true), (2, true), (3, false), (4, true), (5, false)] {
        let mut buf = Vec::new();
        let mut enc =
            stun_core::MessageEncoder::new(&mut buf, Method::SEND, Class::Indication, tid());
        enc.add_xor_address(attr::XOR_PEER_ADDRESS, addr(&p))
            .unwrap_or_else(|e| panic!("{e}"));
        if df {
            enc.add(&Attribute::DontFragment)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        enc.add_raw(attr::DATA, &[n; 1200])
            .unwrap_or_else(|e| panic!("{e}"));
        c.wire.send(&buf);
        let (got, from) = recv(&p).unwrap_or_else(|| panic!("Send {n}: peer got nothing"));
        assert_eq!((got, from), (vec![n; 1200], relay), "Send {n}");
        let want = if df { libc::IP_PMTUDISC_DO } else { created };
        assert_eq!(
            relay_socket_df_option(relay),
            Some(want),
            "after Send {n} (DF {df})"
        );
    }
    h.role.drain(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_needs_a_configured_relay_address() {
    let h = start(|_| {}).await;
    let mut c = Client::new(UdpWire::new(h.udp));
    let a = allocate_with(
        &mut c,
        &[Attribute::RequestedAddressFamily(AddressFamily::V6)],
    );
    assert_eq!(a.code, Some(440));
    // A dual request gets its IPv4 half and ADDRESS-ERROR-CODE 440 for IPv6.
    let a = allocate_with(
        &mut c,
        &[Attribute::AdditionalAddressFamily(AddressFamily::V6)],
    );
    assert!(a.ok(), "{:?}", a.code);
    assert_eq!(relayed(&a).len(), 1);
    match a.message().get(attr::ADDRESS_ERROR_CODE) {
        Ok(Some(Attribute::AddressErrorCode { family, error })) => {
            assert_eq!((family, error.code), (AddressFamily::V6, 440))
        }
        other => panic!("no ADDRESS-ERROR-CODE: {other:?}"),
    }
    h.role.drain(Duration::from_millis(10)).await;
}

fn v6_harness_config(c: &mut edged_config::roles::av_edge::AvEdgeConfig) {
    c.relay_address_v6 = V6_RELAY.parse().ok();
    c.allowed_peer_ranges = vec!["127.0.0.0/8".into(), "::1/128".into()];
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_allocations_relay_client_to_client_over_loopback() {
    if !ipv6_loopback() {
        eprintln!("skipped: no IPv6 loopback");
        return;
    }
    let h = start(v6_harness_config).await;
    let v6 = [Attribute::RequestedAddressFamily(AddressFamily::V6)];
    let mut a = Client::new(UdpWire::new(h.udp));
    let mut b = Client::new(TcpWire::new(h.tcp));
    let ra = relayed(&allocate_with(&mut a, &v6))[0];
    let rb = relayed(&allocate_with(&mut b, &v6))[0];
    assert!(ra.is_ipv6() && rb.is_ipv6(), "{ra} {rb}");
    // The other family is refused on an IPv6 allocation.
    assert_eq!(a.permit(addr(&peer())).code, Some(443));
    assert_eq!(a.bind(0x4000, addr(&peer())).code, Some(443));
    // ::1 is the appliance's own address: allowed only on relay ports, so hairpin works.
    assert!(a.bind(0x4000, rb).ok());
    assert!(b.permit(ra).ok());
    assert_eq!(b.permit("[::1]:3478".parse().unwrap_or(rb)).code, Some(403));
    a.channel_data(0x4000, b"over ::1 from a UDP client");
    let got = b.wire.recv().unwrap_or_else(|| panic!("b got nothing"));
    let msg = Message::decode(&got).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(msg.method(), Method::DATA);
    assert_eq!(msg.address(attr::XOR_PEER_ADDRESS), Ok(Some(ra)));
    assert_eq!(msg.data(), Some(&b"over ::1 from a UDP client"[..]));
    b.send_indication(ra, b"back over ::1 from a TCP client");
    let got = a.wire.recv().unwrap_or_else(|| panic!("a got nothing"));
    let cd = stun_core::channel_data::parse_datagram(&got).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (cd.channel, cd.data),
        (0x4000, &b"back over ::1 from a TCP client"[..])
    );
    // Refresh naming the allocation's family is fine, the other one a mismatch.
    let r = a.request(Method::REFRESH, &|e| {
        e.add(&Attribute::RequestedAddressFamily(AddressFamily::V4))?;
        Ok(())
    });
    assert_eq!(r.code, Some(443));
    h.role.drain(Duration::from_millis(10)).await;
}

/// One dual allocation reaches an IPv4 peer and an IPv6 one.
async fn dual_allocation_round<W: Wire>(h: &Harness, mut c: Client<W>) {
    let mut v6_side = Client::new(UdpWire::new(h.udp));
    let r6 = relayed(&allocate_with(
        &mut v6_side,
        &[Attribute::RequestedAddressFamily(AddressFamily::V6)],
    ))[0];
    let a = allocate_with(
        &mut c,
        &[Attribute::AdditionalAddressFamily(AddressFamily::V6)],
    );
    assert!(a.ok(), "{:?}", a.code);
    let both = relayed(&a);
    assert_eq!(both.len(), 2, "{both:?}");
    let (mine4, mine6) = (both[0], both[1]);
    assert!(mine4.is_ipv4() && mine6.is_ipv6(), "{both:?}");
    // A Refresh may name either family of a dual allocation.
    for family in [AddressFamily::V4, AddressFamily::V6] {
        let r = c.request(Method::REFRESH, &|e| {
            e.add(&Attribute::RequestedAddressFamily(family))?;
            Ok(())
        });
        assert!(r.ok(), "Refresh naming {family:?}: {:?}", r.code);
    }
    let p4 = peer();
    assert!(c.permit(addr(&p4)).ok());
    assert!(c.bind(0x4002, r6).ok());
    assert!(v6_side.permit(mine6).ok());

    c.send_indication(addr(&p4), b"to the IPv4 peer");
    let (got, from) = recv(&p4).unwrap_or_else(|| panic!("IPv4 peer got nothing"));
    assert_eq!((got.as_slice(), from), (&b"to the IPv4 peer"[..], mine4));
    c.channel_data(0x4002, b"to the IPv6 peer");
    let got = v6_side
        .wire
        .recv()
        .unwrap_or_else(|| panic!("IPv6 peer got nothing"));
    let msg = Message::decode(&got).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(msg.address(attr::XOR_PEER_ADDRESS), Ok(Some(mine6)));
    assert_eq!(msg.data(), Some(&b"to the IPv6 peer"[..]));
    // Both peers reach the client.
    p4.send_to(b"from v4", mine4)
        .unwrap_or_else(|e| panic!("{e}"));
    let got = c
        .wire
        .recv()
        .unwrap_or_else(|| panic!("client got nothing from v4"));
    let msg = Message::decode(&got).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(msg.data(), Some(&b"from v4"[..]));
    v6_side.send_indication(mine6, b"from v6");
    let got = c
        .wire
        .recv()
        .unwrap_or_else(|| panic!("client got nothing from v6"));
    let cd = stun_core::channel_data::parse_datagram(&got)
        .or_else(|_| {
            // Streams pad ChannelData; the parser for datagrams wants it exact.
            let len = 4 + u16::from_be_bytes([got[2], got[3]]) as usize;
            stun_core::channel_data::parse_datagram(&got[..len])
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((cd.channel, cd.data), (0x4002, &b"from v6"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_allocations_over_udp_and_tcp() {
    if !ipv6_loopback() {
        eprintln!("skipped: no IPv6 loopback");
        return;
    }
    let h = start(v6_harness_config).await;
    dual_allocation_round(&h, Client::new(UdpWire::new(h.udp))).await;
    dual_allocation_round(&h, Client::new(TcpWire::new(h.tcp))).await;
    h.role.drain(Duration::from_millis(10)).await;
}

// ---- RFC 6062

fn connection_id(a: &Answer) -> u32 {
    match a.message().get(attr::CONNECTION_ID) {
        Ok(Some(Attribute::ConnectionId(id))) => id,
        other => panic!("no CONNECTION-ID in {:?}: {other:?}", a.code),
    }
}

fn tcp_allocate(c: &mut Client<TcpWire>) -> SocketAddr {
    let a = c.request(Method::ALLOCATE, &|e| {
        e.add(&Attribute::RequestedTransport(TRANSPORT_TCP))?;
        Ok(())
    });
    assert!(a.ok(), "TCP allocate: {:?}", a.code);
    relayed(&a)[0]
}

/// A new data connection bound to `id`; afterwards it carries raw bytes.
fn data_connection(server: SocketAddr, id: u32) -> TcpStream {
    let mut d = Client::new(TcpWire::new(server));
    let a = d.request(Method::CONNECTION_BIND, &|e| {
        e.add(&Attribute::ConnectionId(id))?;
        Ok(())
    });
    assert!(a.ok(), "ConnectionBind: {:?}", a.code);
    d.wire.stream
}

fn echo_through(data: &mut TcpStream, at_peer: &mut TcpStream, payload: &[u8]) {
    data.write_all(payload).unwrap_or_else(|e| panic!("{e}"));
    let mut got = vec![0u8; payload.len()];
    at_peer
        .read_exact(&mut got)
        .unwrap_or_else(|e| panic!("peer read: {e}"));
    assert_eq!(got, payload);
    at_peer.write_all(&got).unwrap_or_else(|e| panic!("{e}"));
    let mut back = vec![0u8; payload.len()];
    data.read_exact(&mut back)
        .unwrap_or_else(|e| panic!("client read: {e}"));
    assert_eq!(back, payload);
}

/// A Connect request for `peer` on a TCP allocation's control connection.
fn connect(control: &mut Client<TcpWire>, peer: SocketAddr) -> Answer {
    control.request(Method::CONNECT, &|e| {
        e.add_xor_address(attr::XOR_PEER_ADDRESS, peer)?;
        Ok(())
    })
}

fn tcp_peer() -> TcpListener {
    TcpListener::bind("127.0.0.3:0").unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_allocation_connect_and_connection_bind() {
    let h = start(|_| {}).await;
    let mut control = Client::new(TcpWire::new(h.tcp));
    let relay = tcp_allocate(&mut control);
    let listener = tcp_peer();
    let peer_addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let a = connect(&mut control, peer_addr);
    assert!(a.ok(), "Connect: {:?}", a.code);
    let id = connection_id(&a);
    let (mut at_peer, from) = listener.accept().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(from, relay, "the connection comes from the relayed address");
    at_peer
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap_or_else(|e| panic!("{e}"));
    // A second Connect to the same peer: 446.
    let a = connect(&mut control, peer_addr);
    assert_eq!(a.code, Some(446));
    // ChannelBind is for UDP allocations.
    assert_eq!(control.bind(0x4000, peer_addr).code, Some(400));

    let mut data = data_connection(h.tcp, id);
    data.set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap_or_else(|e| panic!("{e}"));
    echo_through(&mut data, &mut at_peer, b"raw bytes, no TURN framing");
    echo_through(&mut data, &mut at_peer, &[0xEE; 100_000]);
    // The id is used up.
    let mut again = Client::new(TcpWire::new(h.tcp));
    let a = again.request(Method::CONNECTION_BIND, &|e| {
        e.add(&Attribute::ConnectionId(id))?;
        Ok(())
    });
    assert_eq!(a.code, Some(400));

    // Closing the control connection ends the allocation and its peer connections.
    drop(control);
    let mut buf = [0u8; 16];
    let ended = at_peer.read(&mut buf);
    assert!(
        matches!(ended, Ok(0) | Err(_)),
        "peer connection outlived its allocation: {ended:?}"
    );
    h.role.drain(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_allocation_accepts_permitted_peers() {
    let h = start(|_| {}).await;
    let mut control = Client::new(TcpWire::new(h.tcp));
    let relay = tcp_allocate(&mut control);
    // Without a permission the relay does not take the peer's connection.
    let stranger = std::net::TcpStream::connect_timeout(&relay, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("{e}"));
    stranger
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut buf = [0u8; 4];
    assert!(matches!((&stranger).read(&mut buf), Ok(0) | Err(_)));
    // Nothing was announced for it.
    control
        .wire
        .stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        control.wire.recv().is_none(),
        "ConnectionAttempt for an unpermitted peer"
    );
    control
        .wire
        .stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap_or_else(|e| panic!("{e}"));

    assert!(control.permit("127.0.0.3:1".parse().unwrap_or(relay)).ok());
    let sock = std::net::TcpListener::bind("127.0.0.3:0").unwrap_or_else(|e| panic!("{e}"));
    let local = sock.local_addr().unwrap_or_else(|e| panic!("{e}"));
    drop(sock);
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .unwrap_or_else(|e| panic!("{e}"));
    s.bind(&local.into()).unwrap_or_else(|e| panic!("{e}"));
    s.connect(&relay.into()).unwrap_or_else(|e| panic!("{e}"));
    let mut at_peer: TcpStream = s.into();
    at_peer
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap_or_else(|e| panic!("{e}"));
    let ind = control
        .wire
        .recv()
        .unwrap_or_else(|| panic!("no ConnectionAttempt"));
    let msg = Message::decode(&ind).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (msg.method(), msg.class()),
        (Method::CONNECTION_ATTEMPT, Class::Indication)
    );
    assert_eq!(msg.address(attr::XOR_PEER_ADDRESS), Ok(Some(local)));
    let id = match msg.get(attr::CONNECTION_ID) {
        Ok(Some(Attribute::ConnectionId(id))) => id,
        other => panic!("no CONNECTION-ID: {other:?}"),
    };
    let mut data = data_connection(h.tcp, id);
    data.set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap_or_else(|e| panic!("{e}"));
    echo_through(&mut data, &mut at_peer, b"inbound peer, bound later");
    h.role.drain(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_allocation_errors() {
    let h = start(|_| {}).await;
    let mut control = Client::new(TcpWire::new(h.tcp));
    // Connect before any allocation.
    let connect_code = |c: &mut Client<TcpWire>, peer: &str| {
        let peer: SocketAddr = peer.parse().unwrap_or_else(|_| panic!("{peer}"));
        connect(c, peer).code
    };
    assert_eq!(connect_code(&mut control, "127.0.0.3:9"), Some(437));
    tcp_allocate(&mut control);
    // The peer policy applies to Connect.
    for forbidden in [
        "10.0.0.1:80",
        "169.254.169.254:80",
        "[::ffff:10.0.0.1]:80",
        "0.0.0.0:80",
    ] {
        assert_eq!(
            connect_code(&mut control, forbidden),
            Some(403),
            "{forbidden}"
        );
    }
    let own = format!("127.0.0.1:{}", h.tcp.port());
    assert_eq!(
        connect_code(&mut control, &own),
        Some(403),
        "own service port"
    );
    // Nobody listens: 447.
    let closed = {
        let l = tcp_peer();
        l.local_addr().unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(connect_code(&mut control, &closed.to_string()), Some(447));
    // ...and a later Connect to that peer is allowed to try again.
    assert_eq!(connect_code(&mut control, &closed.to_string()), Some(447));
    // ConnectionBind with an unknown id, and over UDP.
    let mut d = Client::new(TcpWire::new(h.tcp));
    let a = d.request(Method::CONNECTION_BIND, &|e| {
        e.add(&Attribute::ConnectionId(0xDEAD_BEEF))?;
        Ok(())
    });
    assert_eq!(a.code, Some(400));
    let mut u = Client::new(UdpWire::new(h.udp));
    let a = u.request(Method::CONNECTION_BIND, &|e| {
        e.add(&Attribute::ConnectionId(1))?;
        Ok(())
    });
    assert_eq!(a.code, Some(400));
    // Connect on a UDP allocation.
    let mut udp_alloc = Client::new(TcpWire::new(h.tcp));
    udp_alloc.allocate();
    assert_eq!(connect_code(&mut udp_alloc, "127.0.0.3:9"), Some(400));
    h.role.drain(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_allocation_caps_its_peer_connections() {
    let h = start(|_| {}).await;
    let mut control = Client::new(TcpWire::new(h.tcp));
    tcp_allocate(&mut control);
    // Every pending connection holds descriptors on the appliance: 32 per allocation.
    let peers: Vec<TcpListener> = (0..33).map(|_| tcp_peer()).collect();
    for (i, l) in peers.iter().enumerate() {
        let at = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let a = connect(&mut control, at);
        let want = if i < 32 { None } else { Some(508) };
        assert_eq!(a.code, want, "Connect number {}", i + 1);
    }
    h.role.drain(Duration::from_millis(10)).await;
}

/// Relays `each` bytes from client to peer and `each` from peer to client at the same time
/// through a fresh TCP allocation; returns how long both took.
fn tcp_transfer_both_ways(h: &Harness, each: usize) -> Duration {
    let mut control = Client::new(TcpWire::new(h.tcp));
    tcp_allocate(&mut control);
    let listener = tcp_peer();
    let peer_addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let a = connect(&mut control, peer_addr);
    assert!(a.ok(), "Connect: {:?}", a.code);
    let (mut at_peer, _) = listener.accept().unwrap_or_else(|e| panic!("{e}"));
    let mut data = data_connection(h.tcp, connection_id(&a));
    for s in [&at_peer, &data] {
        s.set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let up: Vec<u8> = (0..each).map(|i| i as u8).collect();
    let down: Vec<u8> = (0..each).map(|i| (i * 7) as u8).collect();
    let started = std::time::Instant::now();
    let writers = [
        (data.try_clone(), up.clone()),
        (at_peer.try_clone(), down.clone()),
    ]
    .map(|(s, bytes)| {
        let mut s = s.unwrap_or_else(|e| panic!("{e}"));
        std::thread::spawn(move || s.write_all(&bytes))
    });
    let mut got = vec![0u8; each];
    at_peer
        .read_exact(&mut got)
        .unwrap_or_else(|e| panic!("peer read: {e}"));
    assert!(got == up, "client to peer bytes intact");
    data.read_exact(&mut got)
        .unwrap_or_else(|e| panic!("client read: {e}"));
    assert!(got == down, "peer to client bytes intact");
    let took = started.elapsed();
    for w in writers {
        w.join()
            .unwrap_or_else(|_| panic!("writer panicked"))
            .unwrap_or_else(|e| panic!("write: {e}"));
    }
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_allocation_bandwidth_cap_delays_both_directions() {
    // 400 kbit/s = 50,000 B/s, one second (50 kB) of burst, one bucket for both
    // directions: 2 x 125 kB = 250 kB need (250 - 50) / 50 = 4 s. Separate buckets per
    // direction would need only 1.5 s, an uncapped relay a fraction of a second.
    let h = start(|av| av.allocation_bandwidth_kbps = 400).await;
    let took = tcp_transfer_both_ways(&h, 125_000);
    println!("capped TCP relay: 250 kB in {took:?}");
    // The upper bound leaves room for a loaded machine and still tells one shared bucket
    // from a cap charged twice (500 kB: 9 s).
    assert!(
        took >= Duration::from_millis(3500) && took <= Duration::from_millis(8000),
        "250 kB through a 400 kbit/s cap took {took:?}"
    );
    let throttled = h.role.status().counters["tcp_throttled_ms"];
    assert!(
        (3000..=12_000).contains(&throttled),
        "throttled time counted: {throttled} ms"
    );
    h.role.drain(Duration::from_millis(10)).await;

    let h = start(|av| av.allocation_bandwidth_kbps = 0).await;
    let took = tcp_transfer_both_ways(&h, 125_000);
    println!("uncapped TCP relay: 250 kB in {took:?}");
    // Well below the capped 3.5 s even on a loaded machine.
    assert!(took < Duration::from_millis(3000), "uncapped took {took:?}");
    assert_eq!(h.role.status().counters["tcp_throttled_ms"], 0);
    h.role.drain(Duration::from_millis(10)).await;
}
