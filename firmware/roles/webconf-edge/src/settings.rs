//! The part of `[webconf_edge]` that can change while sessions run.

use std::time::Duration;

use edged_config::roles::webconf_edge::WebconfEdgeConfig;
use session_key::TokenLimits;

/// Limits and timeouts read on every new session; swapped whole on reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub first_frame_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_sessions_per_address: u32,
    pub max_sessions_per_conference: u32,
    /// Bytes per second each way per session; none means no cap.
    pub session_bytes_per_sec: Option<u64>,
    /// Age limits on session keys, whatever they claim.
    pub token_limits: TokenLimits,
    /// Stateless Retry for QUIC clients whose address is not validated yet.
    pub quic_retry: bool,
    /// QUIC connections not yet admitted, over all clients.
    pub quic_max_handshakes: u32,
    /// Queued QUIC connection attempts (quinn's `max_incoming`).
    pub quic_max_incoming: u32,
    /// Scheduled key rotation period; none: on demand only.
    pub key_rotation: Option<Duration>,
    /// How long older keys keep verifying after a rotation.
    pub key_overlap: Duration,
}

impl Settings {
    pub fn from_config(c: &WebconfEdgeConfig) -> Self {
        Self {
            first_frame_timeout: Duration::from_millis(c.first_frame_timeout_ms),
            idle_timeout: Duration::from_secs(c.idle_timeout_secs),
            max_sessions_per_address: c.max_sessions_per_address,
            max_sessions_per_conference: c.max_sessions_per_conference,
            session_bytes_per_sec: (c.session_bandwidth_kbps > 0)
                .then(|| u64::from(c.session_bandwidth_kbps) * 1000 / 8),
            token_limits: TokenLimits {
                max_lifetime_secs: c.max_token_lifetime_secs,
                max_clock_skew_secs: c.token_clock_skew_secs,
            },
            quic_retry: c.quic_retry,
            quic_max_handshakes: c.quic_max_handshakes,
            quic_max_incoming: c.quic_max_incoming,
            key_rotation: (c.key_rotation_hours > 0)
                .then(|| Duration::from_secs(u64::from(c.key_rotation_hours) * 3600)),
            key_overlap: Duration::from_secs(u64::from(c.key_overlap_minutes) * 60),
        }
    }

    /// Human-readable lines for what differs, for the apply report.
    pub fn changes(&self, new: &Settings) -> Vec<String> {
        let mut out = Vec::new();
        let mut note = |key: &str, old: String, new: String| {
            if old != new {
                out.push(format!("webconf_edge.{key}: {old} -> {new} from now on"));
            }
        };
        note(
            "first_frame_timeout_ms",
            self.first_frame_timeout.as_millis().to_string(),
            new.first_frame_timeout.as_millis().to_string(),
        );
        note(
            "idle_timeout_secs",
            self.idle_timeout.as_secs().to_string(),
            new.idle_timeout.as_secs().to_string(),
        );
        note(
            "max_sessions_per_address",
            self.max_sessions_per_address.to_string(),
            new.max_sessions_per_address.to_string(),
        );
        note(
            "max_sessions_per_conference",
            self.max_sessions_per_conference.to_string(),
            new.max_sessions_per_conference.to_string(),
        );
        note(
            "session_bandwidth_kbps",
            format!("{:?}", self.session_bytes_per_sec),
            format!("{:?}", new.session_bytes_per_sec),
        );
        note(
            "max_token_lifetime_secs",
            self.token_limits.max_lifetime_secs.to_string(),
            new.token_limits.max_lifetime_secs.to_string(),
        );
        note(
            "token_clock_skew_secs",
            self.token_limits.max_clock_skew_secs.to_string(),
            new.token_limits.max_clock_skew_secs.to_string(),
        );
        note(
            "quic_retry",
            self.quic_retry.to_string(),
            new.quic_retry.to_string(),
        );
        note(
            "quic_max_handshakes",
            self.quic_max_handshakes.to_string(),
            new.quic_max_handshakes.to_string(),
        );
        note(
            "quic_max_incoming",
            self.quic_max_incoming.to_string(),
            new.quic_max_incoming.to_string(),
        );
        note(
            "key_rotation_hours",
            format!("{:?}", self.key_rotation.map(|d| d.as_secs() / 3600)),
            format!("{:?}", new.key_rotation.map(|d| d.as_secs() / 3600)),
        );
        note(
            "key_overlap_minutes",
            (self.key_overlap.as_secs() / 60).to_string(),
            (new.key_overlap.as_secs() / 60).to_string(),
        );
        out
    }
}
