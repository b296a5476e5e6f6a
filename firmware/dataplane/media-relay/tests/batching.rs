//! Batching on the relay threads: datagrams that arrive together (here: during a pacing
//! sleep) leave grouped per flow as UDP GSO sends, and every one reaches its peer whole and
//! in its flow's order, both ways. A datagram longer than the relay takes from a client is
//! dropped and counted.

use std::net::UdpSocket;
use std::time::Duration;

use media_relay::RelayPlane;

mod common;
use common::{addr, bound_channel, plane_config, relay_socket, udp};

/// Pacing long enough that a test sends a whole burst while the relay thread sleeps.
const PACING: Duration = Duration::from_millis(5);
const CHANNEL: u16 = 0x4001;
const BURST: usize = 40;

fn counter(metrics: &edged_metrics::Registry, name: &str, labels: &[(&str, &str)]) -> u64 {
    metrics.counter(name, "", labels).get()
}

/// The counter once it reaches `at_least` (or after 2 s, whatever it is then). The relay
/// thread publishes its counters at the end of a turn, just after its sends: a count may
/// land a moment after the datagram it counts.
fn counter_reaching(
    metrics: &edged_metrics::Registry,
    name: &str,
    labels: &[(&str, &str)],
    at_least: u64,
) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let n = counter(metrics, name, labels);
        if n >= at_least || std::time::Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn channel_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8; 4 + payload.len().next_multiple_of(4)];
    let n = stun_core::channel_data::encode(&mut frame, CHANNEL, payload, false)
        .unwrap_or_else(|e| panic!("{e}"));
    frame.truncate(n);
    frame
}

/// Payload `seq` of flow `flow`: its bytes say which it is.
fn payload(flow: u8, seq: usize) -> Vec<u8> {
    let mut p = vec![flow; 200];
    p[1] = seq as u8;
    p
}

fn recv(sock: &UdpSocket) -> Vec<u8> {
    let mut buf = [0u8; 2048];
    let n = sock
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("receive on {}: {e}", addr(sock)));
    buf[..n].to_vec()
}

struct Flow {
    client: UdpSocket,
    peer: UdpSocket,
    relayed: std::net::SocketAddr,
}

fn start() -> (RelayPlane, edged_metrics::Registry, Vec<Flow>) {
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    let metrics = edged_metrics::Registry::new();
    let mut config = plane_config(metrics.clone());
    config.pacing = (PACING, PACING);
    let plane = RelayPlane::start(config, tx).unwrap_or_else(|e| panic!("start: {e}"));
    let mut flows = Vec::new();
    for id in 1..=2 {
        let client = udp("127.0.0.1:0");
        let peer = udp("127.0.0.1:0");
        let relay = relay_socket("127.0.0.1:0");
        let relayed = addr(&relay);
        for c in bound_channel(id, &client, relay, addr(&peer), CHANNEL) {
            plane.command(0, c).unwrap_or_else(|e| panic!("{e}"));
        }
        flows.push(Flow {
            client,
            peer,
            relayed,
        });
    }
    std::thread::sleep(Duration::from_millis(50));
    (plane, metrics, flows)
}

#[test]
fn bursts_leave_grouped_and_arrive_whole_and_in_order() {
    let (plane, metrics, flows) = start();
    let listener = plane.listener_addrs()[0];
    let probe = udp("127.0.0.1:0");
    let kernel_has_gso = {
        use std::os::fd::AsFd;
        media_relay::gso_supported(probe.as_fd())
    };
    let gso = || {
        counter(
            &metrics,
            "edged_av_edge_gso_sends_total",
            &[("thread", "0")],
        )
    };

    // One datagram starts a turn; the thread then sleeps out its pacing while the bursts
    // of both flows queue up, interleaved, and the next turn takes them all at once.
    for f in &flows {
        f.client
            .send_to(&channel_frame(&payload(0xEE, 0)), listener)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(recv(&f.peer), payload(0xEE, 0));
    }
    let before = gso();
    for seq in 0..BURST {
        for (i, f) in flows.iter().enumerate() {
            f.client
                .send_to(&channel_frame(&payload(i as u8, seq)), listener)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    for (i, f) in flows.iter().enumerate() {
        for seq in 0..BURST {
            assert_eq!(recv(&f.peer), payload(i as u8, seq), "flow {i} to its peer");
        }
    }
    let to_peers = gso() - before;

    // Back from the peers: frames to each client leave through the listener, grouped too.
    let before = gso();
    for f in &flows {
        f.peer
            .send_to(&payload(0xEE, 1), f.relayed)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(recv(&f.client), channel_frame(&payload(0xEE, 1)));
    }
    for seq in 0..BURST {
        for (i, f) in flows.iter().enumerate() {
            f.peer
                .send_to(&payload(i as u8, seq), f.relayed)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    for (i, f) in flows.iter().enumerate() {
        for seq in 0..BURST {
            assert_eq!(
                recv(&f.client),
                channel_frame(&payload(i as u8, seq)),
                "flow {i} to its client"
            );
        }
    }
    // The last turn's GSO count is published just after its sends.
    let to_clients = counter_reaching(
        &metrics,
        "edged_av_edge_gso_sends_total",
        &[("thread", "0")],
        before + if kernel_has_gso { 2 } else { 0 },
    ) - before;

    let expected = (2 * (BURST + 1)) as u64;
    let relayed = counter_reaching(
        &metrics,
        "edged_av_edge_relayed_packets_total",
        &[("thread", "0"), ("direction", "to_peer")],
        expected,
    );
    assert_eq!(relayed, expected);
    // Where the kernel has UDP GSO (Linux 4.18 on), the bursts left as GSO messages.
    if kernel_has_gso {
        assert!(to_peers >= 2, "GSO sends to peers: {to_peers}");
        assert!(to_clients >= 2, "GSO sends to clients: {to_clients}");
    }
}

#[test]
fn oversize_datagrams_from_clients_are_dropped_and_counted() {
    let (plane, metrics, flows) = start();
    let listener = plane.listener_addrs()[0];
    let f = &flows[0];
    let huge = vec![7u8; 12_000];
    f.client
        .send_to(&channel_frame(&huge), listener)
        .unwrap_or_else(|e| panic!("{e}"));
    // The next datagram still goes through: nothing else is disturbed.
    f.client
        .send_to(&channel_frame(&payload(1, 1)), listener)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(recv(&f.peer), payload(1, 1));
    let dropped = counter_reaching(
        &metrics,
        "edged_av_edge_dropped_packets_total",
        &[("thread", "0"), ("reason", "oversize")],
        1,
    );
    assert_eq!(dropped, 1);
}
