//! Proves the relay threads forward ChannelData, Send and Data without touching the heap:
//! a counting global allocator sees no allocation while thousands of packets are relayed
//! both ways through real sockets.

#![allow(
    unsafe_code,
    reason = "a counting global allocator is an `unsafe impl GlobalAlloc`; it only forwards"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use media_relay::RelayPlane;
use stun_core::{attr, Class, Message, MessageEncoder, Method, TransactionId};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

mod common;
use common::{addr, bound_channel, counter_reaching, plane_config, relay_socket, udp};

#[test]
fn relaying_allocates_nothing() {
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    let metrics = edged_metrics::Registry::new();
    let plane = RelayPlane::start(plane_config(metrics.clone()), tx)
        .unwrap_or_else(|e| panic!("start: {e}"));
    let listener = plane.listener_addrs()[0];
    let client = udp("127.0.0.1:0");
    let peer = udp("127.0.0.1:0");
    let other_peer = udp("127.0.0.1:0");
    let relay = relay_socket("127.0.0.1:0");
    let relay_addr = addr(&relay);
    let id = 1;
    let cmds = bound_channel(id, &client, relay, addr(&peer), 0x4001);
    for c in cmds {
        plane.command(0, c).unwrap_or_else(|e| panic!("{e}"));
    }
    // No wait for the relay thread to take these commands: it drains its command queue at
    // the start of every turn, before the datagrams of the turn.

    // A ChannelData frame and a Send indication towards `other_peer` (same IP, so
    // permitted, but no channel: the answer comes back as a Data indication).
    let payload = [0x5Au8; 160];
    let mut channel_frame = [0u8; 164];
    stun_core::channel_data::encode(&mut channel_frame, 0x4001, &payload, false)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut send_buf = Vec::new();
    let mut enc = MessageEncoder::new(
        &mut send_buf,
        Method::SEND,
        Class::Indication,
        TransactionId([3; 12]),
    );
    enc.add_xor_address(attr::XOR_PEER_ADDRESS, addr(&other_peer))
        .and_then(|e| e.add_raw(attr::DATA, &payload))
        .unwrap_or_else(|e| panic!("{e}"));
    let send_indication = enc.finish().to_vec();
    // The same with DONT-FRAGMENT: alternating with the plain one switches the relay
    // socket's DF option every time, the costliest Send path.
    let mut send_df_buf = Vec::new();
    let mut enc = MessageEncoder::new(
        &mut send_df_buf,
        Method::SEND,
        Class::Indication,
        TransactionId([4; 12]),
    );
    enc.add_xor_address(attr::XOR_PEER_ADDRESS, addr(&other_peer))
        .and_then(|e| e.add_raw(attr::DONT_FRAGMENT, &[]))
        .and_then(|e| e.add_raw(attr::DATA, &payload))
        .unwrap_or_else(|e| panic!("{e}"));
    let send_df_indication = enc.finish().to_vec();

    let mut buf = [0u8; 2048];
    let mut round = |client_buf: &mut [u8; 2048]| -> (usize, usize) {
        client
            .send_to(&channel_frame, listener)
            .unwrap_or_else(|e| panic!("{e}"));
        let (n, _) = peer
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("peer: {e}"));
        assert_eq!(&buf[..n], &payload[..]);
        peer.send_to(&buf[..n], relay_addr)
            .unwrap_or_else(|e| panic!("{e}"));
        let (channel_back, _) = client
            .recv_from(client_buf)
            .unwrap_or_else(|e| panic!("client: {e}"));
        client
            .send_to(&send_df_indication, listener)
            .unwrap_or_else(|e| panic!("{e}"));
        let (n, _) = other_peer
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("other peer, DF: {e}"));
        assert_eq!(&buf[..n], &payload[..]);
        client
            .send_to(&send_indication, listener)
            .unwrap_or_else(|e| panic!("{e}"));
        let (n, _) = other_peer
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("other peer: {e}"));
        other_peer
            .send_to(&buf[..n], relay_addr)
            .unwrap_or_else(|e| panic!("{e}"));
        let (data_back, _) = client
            .recv_from(client_buf)
            .unwrap_or_else(|e| panic!("client: {e}"));
        (channel_back, data_back)
    };

    let mut client_buf = [0u8; 2048];
    // Warm up, and check what comes back is well-formed.
    for _ in 0..50 {
        round(&mut client_buf);
    }
    let (_, data_len) = round(&mut client_buf);
    let msg = Message::decode(&client_buf[..data_len]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(msg.method(), Method::DATA);
    assert_eq!(msg.data(), Some(&payload[..]));
    let (channel_len, _) = {
        client
            .send_to(&channel_frame, listener)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut b = [0u8; 2048];
        let (n, _) = peer.recv_from(&mut b).unwrap_or_else(|e| panic!("{e}"));
        peer.send_to(&b[..n], relay_addr)
            .unwrap_or_else(|e| panic!("{e}"));
        client
            .recv_from(&mut client_buf)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let cd = stun_core::channel_data::parse_datagram(&client_buf[..channel_len])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cd.channel, 0x4001);
    assert_eq!(cd.data, &payload[..]);

    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let rounds = 2_000;
    for _ in 0..rounds {
        round(&mut client_buf);
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    // 5 relayed packets per round: ChannelData out/in, Send with and without DF out,
    // Data in.
    assert_eq!(
        after - before,
        0,
        "{} heap allocations while relaying {} packets",
        after - before,
        rounds * 5
    );

    // Bursts: two allocations, frames back to back in both directions, so reads return
    // several datagrams per recvmmsg and writes leave several per sendmmsg (runs for one
    // relay socket towards the peer, frames of both relay sockets towards the clients).
    let client2 = udp("127.0.0.1:0");
    let relay2 = relay_socket("127.0.0.1:0");
    let relay2_addr = addr(&relay2);
    let id2 = 2;
    let cmds = bound_channel(id2, &client2, relay2, addr(&peer), 0x4002);
    for c in cmds {
        plane.command(0, c).unwrap_or_else(|e| panic!("{e}"));
    }
    // No wait for the relay thread to take these commands: it drains its command queue at
    // the start of every turn, before the datagrams of the turn.
    let mut channel_frame2 = [0u8; 164];
    stun_core::channel_data::encode(&mut channel_frame2, 0x4002, &payload, false)
        .unwrap_or_else(|e| panic!("{e}"));
    const BURST: usize = 16;
    let burst = |peer_buf: &mut [u8; 2048]| {
        for (c, frame) in [(&client, &channel_frame), (&client2, &channel_frame2)] {
            for _ in 0..BURST {
                c.send_to(frame, listener).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        let mut from_relays = [0usize; 2];
        for _ in 0..2 * BURST {
            let (n, from) = peer
                .recv_from(peer_buf)
                .unwrap_or_else(|e| panic!("peer burst: {e}"));
            assert_eq!(n, payload.len());
            from_relays[usize::from(from == relay2_addr)] += 1;
        }
        assert_eq!(
            from_relays,
            [BURST, BURST],
            "each relay socket sent its run"
        );
        for to in [relay_addr, relay2_addr] {
            for _ in 0..BURST {
                peer.send_to(&payload, to).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        for c in [&client, &client2] {
            for _ in 0..BURST {
                let (n, _) = c
                    .recv_from(peer_buf)
                    .unwrap_or_else(|e| panic!("client burst: {e}"));
                assert_eq!(n, payload.len() + 4);
            }
        }
    };
    let mut peer_buf = [0u8; 2048];
    for _ in 0..5 {
        burst(&mut peer_buf);
    }
    let batches = |op: &str, side: &str| {
        metrics
            .counter(
                "edged_av_edge_io_batches_total",
                "",
                &[("thread", "0"), ("op", op), ("side", side)],
            )
            .get()
    };
    let calls = |m: &dyn Fn(&str, &str) -> u64| {
        [
            m("receive", "client"),
            m("receive", "peer"),
            m("send", "client"),
            m("send", "peer"),
        ]
    };
    // Exact here: the last turn that sent to peers finished (and published) before the
    // turn that sent the frames the clients just received.
    let relayed_to_peer = || {
        metrics
            .counter(
                "edged_av_edge_relayed_packets_total",
                "",
                &[("thread", "0"), ("direction", "to_peer")],
            )
            .get()
    };
    let to_peer_before = relayed_to_peer();
    let calls_before = calls(&batches);
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let bursts = 100;
    for _ in 0..bursts {
        burst(&mut peer_buf);
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(
        after - before,
        0,
        "{} heap allocations while relaying {} packets in bursts",
        after - before,
        bursts * BURST * 4
    );
    // Counters are published at the end of the relay thread's turn: one more datagram to
    // the peer, in a turn after all the others, and its count published means theirs are.
    client
        .send_to(&channel_frame, listener)
        .unwrap_or_else(|e| panic!("{e}"));
    let (n, _) = peer
        .recv_from(&mut peer_buf)
        .unwrap_or_else(|e| panic!("fence: {e}"));
    assert_eq!(n, payload.len());
    let relayed = (bursts * BURST * 2 + 1) as u64;
    assert_eq!(
        counter_reaching(
            &metrics,
            "edged_av_edge_relayed_packets_total",
            &[("thread", "0"), ("direction", "to_peer")],
            to_peer_before + relayed,
        ) - to_peer_before,
        relayed
    );
    let calls_after = calls(&batches);
    let packets_per_side = (bursts * BURST * 2) as u64;
    let used: Vec<u64> = calls_after
        .iter()
        .zip(calls_before)
        .map(|(a, b)| a - b)
        .collect();
    println!("system calls per side for {packets_per_side} packets (receive client, receive peer, send client, send peer): {used:?}");
    for (what, n) in [
        "receive from clients",
        "receive from peers",
        "send to clients",
    ]
    .iter()
    .zip(&used)
    {
        assert!(
            *n > 0 && *n < packets_per_side,
            "{what}: {n} calls for {packets_per_side} packets, so no batching"
        );
    }
    assert!(
        used[3] > 0 && used[3] <= packets_per_side,
        "send to peers: {} calls",
        used[3]
    );
    plane.shutdown();
}
