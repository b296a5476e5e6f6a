//! Counters of the Web Conferencing Edge.

use std::collections::BTreeMap;

use edged_metrics::{Counter, Gauge, Registry};
use session_key::CloseCode;

/// Every counter the role keeps; cheap clones of atomics.
#[derive(Clone)]
pub struct EdgeMetrics {
    pub admitted_tls: Counter,
    pub admitted_quic: Counter,
    pub sessions_active: Gauge,
    pub servers_connected: Gauge,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub handshake_failed: Counter,
    /// QUIC attempts answered with a stateless Retry.
    pub quic_retries: Counter,
    /// QUIC attempts refused because the handshake cap was reached.
    pub quic_handshake_refusals: Counter,
    /// QUIC connections in their handshake or before their first frame is judged.
    pub quic_handshakes: Gauge,
    /// Closes by reason, refusals and ends alike.
    pub closes: Vec<(CloseCode, Counter)>,
}

impl EdgeMetrics {
    pub fn new(r: &Registry) -> Self {
        let closes = CloseCode::ALL
            .iter()
            .map(|&c| {
                (
                    c,
                    r.counter(
                        "edged_webconf_edge_closes_total",
                        "Client sessions closed, by reason (refusals before admission included)",
                        &[("reason", c.as_str())],
                    ),
                )
            })
            .collect();
        Self {
            admitted_tls: r.counter(
                "edged_webconf_edge_admitted_total",
                "Client sessions admitted",
                &[("transport", "tls")],
            ),
            admitted_quic: r.counter(
                "edged_webconf_edge_admitted_total",
                "Client sessions admitted",
                &[("transport", "quic")],
            ),
            sessions_active: r.gauge(
                "edged_webconf_edge_sessions",
                "Client sessions open now",
                &[],
            ),
            servers_connected: r.gauge(
                "edged_webconf_edge_servers",
                "Conferencing servers connected on the internal port",
                &[],
            ),
            bytes_in: r.counter(
                "edged_webconf_edge_client_bytes_total",
                "Payload bytes relayed",
                &[("direction", "in")],
            ),
            bytes_out: r.counter(
                "edged_webconf_edge_client_bytes_total",
                "Payload bytes relayed",
                &[("direction", "out")],
            ),
            handshake_failed: r.counter(
                "edged_webconf_edge_handshake_failures_total",
                "Client TLS or QUIC handshakes that failed",
                &[],
            ),
            quic_retries: r.counter(
                "edged_webconf_edge_quic_retries_total",
                "QUIC connection attempts answered with a stateless Retry",
                &[],
            ),
            quic_handshake_refusals: r.counter(
                "edged_webconf_edge_quic_handshake_refusals_total",
                "QUIC connection attempts refused at the cap on handshakes in progress",
                &[],
            ),
            quic_handshakes: r.gauge(
                "edged_webconf_edge_quic_handshakes",
                "QUIC connections in their handshake or before their first frame is judged",
                &[],
            ),
            closes,
        }
    }

    pub fn closed(&self, code: CloseCode) {
        if let Some((_, c)) = self.closes.iter().find(|(k, _)| *k == code) {
            c.inc();
        }
    }

    pub fn close_count(&self, code: CloseCode) -> u64 {
        self.closes
            .iter()
            .find(|(k, _)| *k == code)
            .map_or(0, |(_, c)| c.get())
    }

    /// The counters `edgectl status` shows.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        m.insert("admitted_tls".into(), self.admitted_tls.get());
        m.insert("admitted_quic".into(), self.admitted_quic.get());
        m.insert(
            "sessions_active".into(),
            self.sessions_active.get().max(0) as u64,
        );
        m.insert(
            "servers_connected".into(),
            self.servers_connected.get().max(0) as u64,
        );
        m.insert("bytes_in".into(), self.bytes_in.get());
        m.insert("bytes_out".into(), self.bytes_out.get());
        m.insert("handshake_failed".into(), self.handshake_failed.get());
        m.insert("quic_retries".into(), self.quic_retries.get());
        m.insert(
            "quic_handshake_refusals".into(),
            self.quic_handshake_refusals.get(),
        );
        m.insert(
            "quic_handshakes".into(),
            self.quic_handshakes.get().max(0) as u64,
        );
        for (code, c) in &self.closes {
            let v = c.get();
            if v > 0 {
                m.insert(format!("closed_{}", code.as_str()), v);
            }
        }
        m
    }
}
