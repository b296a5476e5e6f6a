//! Batching on the relay threads: datagrams that arrive together (here: during a pacing
//! sleep) leave grouped per flow as UDP GSO sends, and every one reaches its peer whole and
//! in its flow's order, both ways. A datagram longer than the relay takes from a client is
//! dropped and counted.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use media_relay::RelayPlane;

mod common;
use common::{addr, bound_channel, counter, counter_reaching, plane_config, relay_socket, udp};

/// Pacing long enough that a test sends a whole burst while the relay thread sleeps.
const PACING: Duration = Duration::from_millis(20);
const CHANNEL: u16 = 0x4001;
const BURST: usize = 40;
/// Bursts sent at most, each way, until they have left grouped. On an idle machine the
/// first does; on a loaded one the test may be descheduled in the middle of a burst, and
/// the relay thread then takes that burst in several turns, not all of them grouped.
const MAX_ROUNDS: usize = 20;
const GSO_SENDS: &str = "edged_av_edge_gso_sends_total";
const RELAYED: &str = "edged_av_edge_relayed_packets_total";

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
    // No wait for the relay thread to take these commands: it drains its command queue at
    // the start of every turn, before the datagrams of the turn.
    (plane, metrics, flows)
}

/// Counts the datagrams relayed to peers and waits until the relay thread has published
/// them: the thread publishes its counters at the end of a turn, just after its sends.
struct Published<'a> {
    metrics: &'a edged_metrics::Registry,
    to_peer: u64,
}

impl Published<'_> {
    /// One datagram from `flow`'s client to its peer, after everything sent before: its
    /// turn comes after theirs, so once its count is published, all their counts are. A
    /// turn that relays one datagram sends no GSO message.
    fn fence(&mut self, flow: &Flow, listener: SocketAddr) {
        flow.client
            .send_to(&channel_frame(&payload(0xEF, 0)), listener)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(recv(&flow.peer), payload(0xEF, 0));
        self.relayed_to_peer(1);
    }

    /// Waits until `n` more datagrams to peers are counted, and checks that no more are.
    fn relayed_to_peer(&mut self, n: usize) {
        self.to_peer += n as u64;
        let labels = [("thread", "0"), ("direction", "to_peer")];
        let counted = counter_reaching(self.metrics, RELAYED, &labels, self.to_peer);
        assert_eq!(counted, self.to_peer, "datagrams relayed to peers");
    }
}

/// One datagram per flow starts a turn; the thread then sleeps out its pacing while the
/// bursts of both flows queue up, interleaved, and the next turn takes them all at once
/// (unless this thread is descheduled in the middle). Every datagram reaches its peer whole
/// and in its flow's order.
fn burst_to_peers(flows: &[Flow], listener: SocketAddr, published: &mut Published) {
    for f in flows {
        f.client
            .send_to(&channel_frame(&payload(0xEE, 0)), listener)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(recv(&f.peer), payload(0xEE, 0));
    }
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
    published.relayed_to_peer(flows.len() * (BURST + 1));
}

/// The same back from the peers: frames to each client leave through the listener.
fn burst_to_clients(flows: &[Flow]) {
    for f in flows {
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
    let gso = || counter(&metrics, GSO_SENDS, &[("thread", "0")]);
    let mut published = Published {
        metrics: &metrics,
        to_peer: 0,
    };

    // GSO messages per direction, over as many rounds as it takes until both flows' bursts
    // have left grouped each way (a GSO message holds two datagrams or more of one flow).
    let (mut to_peers, mut to_clients) = (0, 0);
    let mut rounds = 0;
    while rounds < MAX_ROUNDS && !(to_peers >= 2 && to_clients >= 2) {
        rounds += 1;
        let before = gso();
        burst_to_peers(&flows, listener, &mut published);
        published.fence(&flows[0], listener);
        to_peers += gso() - before;

        let before = gso();
        burst_to_clients(&flows);
        published.fence(&flows[0], listener);
        to_clients += gso() - before;
        if !kernel_has_gso {
            break;
        }
    }
    println!("{rounds} round(s): {to_peers} GSO sends to peers, {to_clients} to clients");
    // Where the kernel has UDP GSO (Linux 4.18 on), the bursts left as GSO messages.
    if kernel_has_gso {
        assert!(
            to_peers >= 2,
            "GSO sends to peers in {rounds} rounds: {to_peers}"
        );
        assert!(
            to_clients >= 2,
            "GSO sends to clients in {rounds} rounds: {to_clients}"
        );
    } else {
        assert_eq!(gso(), 0, "GSO sends where the kernel has none");
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
