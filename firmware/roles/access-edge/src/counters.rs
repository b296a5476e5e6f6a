//! The role's metrics handles: what `status()` shows and Prometheus exports.

use edged_metrics::{Counter, Registry};

/// The counters `status()` shows and Prometheus exports.
pub struct Counters {
    pub requests: Counter,
    pub responses: Counter,
    pub malformed_requests: Counter,
    pub malformed_responses: Counter,
    pub stray_responses: Counter,
    pub oversize_closed: Counter,
    pub idle_closed: Counter,
    pub scanners: Counter,
    pub federation_refused: Counter,
    pub throttled: Counter,
    pub no_next_hop: Counter,
    pub timeouts: Counter,
    pub keepalives: Counter,
    pub connections: Counter,
    pub connections_refused: Counter,
    pub handshake_failures: Counter,
    pub loops: Counter,
    pub timer_c_cancels: Counter,
    pub concealed: Counter,
    pub rate_limited: Counter,
    pub forged_flow_tokens: Counter,
    pub output_dropped: Counter,
    pub write_timeouts: Counter,
    pub message_timeouts: Counter,
}

impl Counters {
    pub fn new(r: &Registry) -> Self {
        let c = |what: &str, help: &str| {
            r.counter(&format!("edged_access_edge_{what}_total"), help, &[])
        };
        Counters {
            requests: c("requests", "SIP requests received"),
            responses: c("responses_relayed", "SIP responses relayed"),
            malformed_requests: c("malformed_requests", "Requests refused as malformed"),
            malformed_responses: c("malformed_responses", "Malformed responses dropped"),
            stray_responses: c(
                "stray_responses",
                "Responses matching no transaction, dropped",
            ),
            oversize_closed: c(
                "oversize_closed",
                "Connections closed for an oversize message",
            ),
            idle_closed: c("idle_closed", "Connections closed after the idle timeout"),
            scanners: c("scanner_requests", "Requests from SIP scanners dropped"),
            federation_refused: c("federation_refused", "Federated requests refused by policy"),
            throttled: c(
                "federation_throttled",
                "Federated requests over their domain's rate",
            ),
            no_next_hop: c(
                "no_next_hop",
                "Requests answered 503 for lack of a next hop",
            ),
            timeouts: c("transaction_timeouts", "Transactions answered 408"),
            keepalives: c("keepalives", "CRLF keep-alives answered"),
            connections: c("connections", "Connections accepted or opened"),
            connections_refused: c(
                "connections_refused",
                "Connections refused by the per-address limits",
            ),
            handshake_failures: c(
                "handshake_failures",
                "TLS handshakes that failed or timed out",
            ),
            loops: c("loops", "Requests refused with 482 Loop Detected"),
            timer_c_cancels: c(
                "timer_c_cancels",
                "Ringing INVITE branches cancelled by Timer C",
            ),
            concealed: c(
                "concealed_answers",
                "Director answers to outsiders replaced by the uniform 480",
            ),
            rate_limited: c(
                "rate_limited",
                "Remote users' requests over their connection's rate, refused",
            ),
            forged_flow_tokens: c(
                "forged_flow_tokens",
                "Requests refused for a flow token this edge did not write",
            ),
            output_dropped: c(
                "output_dropped",
                "Messages dropped over a connection's output budget",
            ),
            write_timeouts: c(
                "write_timeouts",
                "Connections closed because the peer stopped reading",
            ),
            message_timeouts: c(
                "message_timeouts",
                "Connections closed for a message not complete within its deadline",
            ),
        }
    }

    /// Each counter under the name `status()` shows; Prometheus exports it as
    /// `edged_access_edge_<name>_total`.
    fn named(&self) -> [(&'static str, &Counter); 24] {
        [
            ("requests", &self.requests),
            ("responses_relayed", &self.responses),
            ("malformed_requests", &self.malformed_requests),
            ("malformed_responses", &self.malformed_responses),
            ("stray_responses", &self.stray_responses),
            ("oversize_closed", &self.oversize_closed),
            ("idle_closed", &self.idle_closed),
            ("scanner_requests", &self.scanners),
            ("federation_refused", &self.federation_refused),
            ("federation_throttled", &self.throttled),
            ("no_next_hop", &self.no_next_hop),
            ("transaction_timeouts", &self.timeouts),
            ("keepalives", &self.keepalives),
            ("connections", &self.connections),
            ("connections_refused", &self.connections_refused),
            ("handshake_failures", &self.handshake_failures),
            ("loops", &self.loops),
            ("timer_c_cancels", &self.timer_c_cancels),
            ("concealed_answers", &self.concealed),
            ("rate_limited", &self.rate_limited),
            ("forged_flow_tokens", &self.forged_flow_tokens),
            ("output_dropped", &self.output_dropped),
            ("write_timeouts", &self.write_timeouts),
            ("message_timeouts", &self.message_timeouts),
        ]
    }

    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        self.named()
            .into_iter()
            .map(|(name, c)| (name, c.get()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_prometheus_report_each_counter_under_one_name() {
        let registry = Registry::new();
        let counters = Counters::new(&registry);
        for (i, (_, c)) in counters.named().iter().enumerate() {
            c.add(i as u64 + 1);
        }
        let snapshot = counters.snapshot();
        assert_eq!(snapshot.len(), 24);
        for (i, (name, value)) in snapshot.into_iter().enumerate() {
            assert_eq!(value, i as u64 + 1, "{name}");
            let exported = registry.sum(&format!("edged_access_edge_{name}_total"));
            assert_eq!(exported, value, "{name} is exported under another name");
        }
    }
}
