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
        }
    }

    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("requests", self.requests.get()),
            ("responses_relayed", self.responses.get()),
            ("malformed_requests", self.malformed_requests.get()),
            ("malformed_responses", self.malformed_responses.get()),
            ("stray_responses", self.stray_responses.get()),
            ("oversize_closed", self.oversize_closed.get()),
            ("idle_closed", self.idle_closed.get()),
            ("scanner_requests", self.scanners.get()),
            ("federation_refused", self.federation_refused.get()),
            ("federation_throttled", self.throttled.get()),
            ("no_next_hop", self.no_next_hop.get()),
            ("transaction_timeouts", self.timeouts.get()),
            ("keepalives", self.keepalives.get()),
            ("connections", self.connections.get()),
            ("connections_refused", self.connections_refused.get()),
            ("handshake_failures", self.handshake_failures.get()),
            ("loops", self.loops.get()),
            ("timer_c_cancels", self.timer_c_cancels.get()),
            ("concealed_answers", self.concealed.get()),
        ]
    }
}
