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
    pub dropped_bandwidth: Counter,
    pub dropped_send_error: Counter,
    pub control_forwarded: Counter,
    pub control_queue_full: Counter,
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
        ThreadCounters {
            to_peer_packets: packets("to_peer"),
            to_peer_bytes: bytes("to_peer"),
            to_client_packets: packets("to_client"),
            to_client_bytes: bytes("to_client"),
            dropped_no_allocation: dropped("no_allocation"),
            dropped_no_permission: dropped("no_permission"),
            dropped_malformed: dropped("malformed_channel_data"),
            dropped_bandwidth: dropped("bandwidth"),
            dropped_send_error: dropped("send_error"),
            control_forwarded: metrics.counter(
                "edged_av_edge_control_packets_total",
                "STUN messages handed from the relay threads to the control plane",
                &[("thread", &t)],
            ),
            control_queue_full: dropped("control_queue_full"),
        }
    }
}
