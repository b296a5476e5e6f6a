//! Per-thread counters, exported as metrics labelled with the thread index.

use edged_metrics::{Counter, Registry};

/// Counters of one relay thread. Each is an uncontended relaxed atomic: no lock, no
/// allocation on the packet path.
#[derive(Clone)]
pub(crate) struct ThreadCounters {
    pub to_peer_packets: Counter,
    pub to_peer_bytes: Counter,
    pub to_client_packets: Counter,
    pub to_client_bytes: Counter,
    pub dropped_no_allocation: Counter,
    pub dropped_no_permission: Counter,
    pub dropped_malformed: Counter,
    /// Datagrams from clients longer than the relay takes (`CLIENT_MAX_PAYLOAD`).
    pub dropped_oversize: Counter,
    pub dropped_bandwidth: Counter,
    pub dropped_send_error: Counter,
    pub control_forwarded: Counter,
    pub control_queue_full: Counter,
    /// recvmmsg/sendmmsg calls that moved at least one datagram, by side: relayed
    /// packets divided by these is the mean batch size.
    pub receive_batches_client: Counter,
    pub receive_batches_peer: Counter,
    pub send_batches_client: Counter,
    pub send_batches_peer: Counter,
    /// GSO messages sent: each carried two datagrams or more of one flow.
    pub gso_sends: Counter,
}

impl ThreadCounters {
    pub fn new(metrics: &Registry, thread: usize) -> Self {
        let t = thread.to_string();
        let packets = |direction: &str| {
            metrics.counter(
                "edged_av_edge_relayed_packets_total",
                "Packets forwarded by the relay threads",
                &[("thread", &t), ("direction", direction)],
            )
        };
        let bytes = |direction: &str| {
            metrics.counter(
                "edged_av_edge_relayed_bytes_total",
                "Payload bytes forwarded by the relay threads",
                &[("thread", &t), ("direction", direction)],
            )
        };
        let dropped = |reason: &str| {
            metrics.counter(
                "edged_av_edge_dropped_packets_total",
                "Packets the relay threads dropped, by reason",
                &[("thread", &t), ("reason", reason)],
            )
        };
        let batches = |op: &str, side: &str| {
            metrics.counter(
                "edged_av_edge_io_batches_total",
                "recvmmsg/sendmmsg calls of the relay threads that moved at least one datagram",
                &[("thread", &t), ("op", op), ("side", side)],
            )
        };
        ThreadCounters {
            to_peer_packets: packets("to_peer"),
            to_peer_bytes: bytes("to_peer"),
            to_client_packets: packets("to_client"),
            to_client_bytes: bytes("to_client"),
            dropped_no_allocation: dropped("no_allocation"),
            dropped_no_permission: dropped("no_permission"),
            dropped_malformed: dropped("malformed_channel_data"),
            dropped_oversize: dropped("oversize"),
            dropped_bandwidth: dropped("bandwidth"),
            dropped_send_error: dropped("send_error"),
            control_forwarded: metrics.counter(
                "edged_av_edge_control_packets_total",
                "STUN messages handed from the relay threads to the control plane",
                &[("thread", &t)],
            ),
            control_queue_full: dropped("control_queue_full"),
            receive_batches_client: batches("receive", "client"),
            receive_batches_peer: batches("receive", "peer"),
            send_batches_client: batches("send", "client"),
            send_batches_peer: batches("send", "peer"),
            gso_sends: metrics.counter(
                "edged_av_edge_gso_sends_total",
                "UDP GSO messages of the relay threads (each two datagrams or more of one flow)",
                &[("thread", &t)],
            ),
        }
    }
}

/// The same counts as plain integers, kept by the relay thread while it works through a
/// batch and added to the shared counters once per loop turn: one atomic add per counter
/// and turn instead of several per packet.
#[derive(Default)]
pub(crate) struct Tally {
    pub to_peer_packets: u64,
    pub to_peer_bytes: u64,
    pub to_client_packets: u64,
    pub to_client_bytes: u64,
    pub dropped_no_allocation: u64,
    pub dropped_no_permission: u64,
    pub dropped_malformed: u64,
    pub dropped_oversize: u64,
    pub dropped_bandwidth: u64,
    pub dropped_send_error: u64,
    pub control_forwarded: u64,
    pub control_queue_full: u64,
    pub receive_batches_client: u64,
    pub receive_batches_peer: u64,
    pub send_batches_client: u64,
    pub send_batches_peer: u64,
    pub gso_sends: u64,
}

impl Tally {
    /// Adds what was counted since the last call to the exported counters and restarts.
    pub fn publish(&mut self, to: &ThreadCounters) {
        let pairs = [
            (&mut self.to_peer_packets, &to.to_peer_packets),
            (&mut self.to_peer_bytes, &to.to_peer_bytes),
            (&mut self.to_client_packets, &to.to_client_packets),
            (&mut self.to_client_bytes, &to.to_client_bytes),
            (&mut self.dropped_no_allocation, &to.dropped_no_allocation),
            (&mut self.dropped_no_permission, &to.dropped_no_permission),
            (&mut self.dropped_malformed, &to.dropped_malformed),
            (&mut self.dropped_oversize, &to.dropped_oversize),
            (&mut self.dropped_bandwidth, &to.dropped_bandwidth),
            (&mut self.dropped_send_error, &to.dropped_send_error),
            (&mut self.control_forwarded, &to.control_forwarded),
            (&mut self.control_queue_full, &to.control_queue_full),
            (&mut self.receive_batches_client, &to.receive_batches_client),
            (&mut self.receive_batches_peer, &to.receive_batches_peer),
            (&mut self.send_batches_client, &to.send_batches_client),
            (&mut self.send_batches_peer, &to.send_batches_peer),
            (&mut self.gso_sends, &to.gso_sends),
        ];
        for (local, shared) in pairs {
            if *local != 0 {
                shared.add(*local);
                *local = 0;
            }
        }
    }
}
