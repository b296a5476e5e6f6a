//! `[webconf_edge]`: admission of external meeting clients by conference session key.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{default_certificate, side_address};
use crate::{CertRef, ConfigErrors, NetworkConfig, Protocol, Side, SocketSpec, Transport};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebconfEdgeConfig {
    pub enabled: bool,
    pub certificate: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_address: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_address: Option<IpAddr>,
    /// External port for clients: TLS over TCP and QUIC over UDP (OCS: 443).
    pub external_port: u16,
    /// Internal port the conferencing servers connect out to (OCS: 8057): TCP with mutual
    /// TLS, one HTTP/2 stream per client session.
    pub internal_port: u16,
    /// Conferencing servers allowed on the internal port (see `edged_config::peers`): DNS
    /// names, `*.` wildcards, IP addresses or `sha256:` key pins. A certificate from the
    /// internal anchors must also match one entry; empty: no conferencing server is
    /// accepted (the role logs it and reports itself degraded).
    pub internal_peers: Vec<String>,
    /// A client that has not sent its first frame (conference id and key) by then is cut.
    pub first_frame_timeout_ms: u64,
    /// Sessions idle for this long are closed.
    pub idle_timeout_secs: u64,
    pub max_sessions_per_address: u32,
    pub max_sessions_per_conference: u32,
    /// Per-session bandwidth cap in kbit/s each way (0: no cap).
    pub session_bandwidth_kbps: u32,
    /// A session key older than this (from the issue time it carries) is refused, whatever
    /// expiry it claims.
    pub max_token_lifetime_secs: u64,
    /// How far ahead of the edge's clock a session key's issue time may be.
    pub token_clock_skew_secs: u64,
    /// Answer a QUIC Initial from an address not yet validated with a stateless Retry, so a
    /// spoofed source costs the edge one small packet and no state.
    pub quic_retry: bool,
    /// QUIC connection attempts queued before the role looks at them; beyond it quinn
    /// refuses at once.
    pub quic_max_incoming: u32,
    /// QUIC connections in their handshake or before their first frame is judged, over all
    /// clients; beyond it new attempts are refused.
    pub quic_max_handshakes: u32,
    /// Scheduled session-key rotation, in hours (0: rotate only on demand, with
    /// `edgectl role webconf_edge rotate-keys`). Leave 0 when conferencing servers get the key
    /// ring out of band and cannot follow a schedule.
    pub key_rotation_hours: u32,
    /// After a rotation the previous key keeps verifying this long, so tokens minted just
    /// before it (and connectors that have not re-read the ring yet) keep working.
    pub key_overlap_minutes: u32,
    /// Loopback demos and labs only: a directory where the edge writes what a reference
    /// connector needs (CA, a connector certificate and key, the session-key ring).
    /// Leave unset on an appliance: there the secrets are provisioned out of band.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector_bundle_dir: Option<PathBuf>,
}

impl Default for WebconfEdgeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            certificate: default_certificate(),
            external_address: None,
            internal_address: None,
            external_port: 443,
            internal_port: 8057,
            internal_peers: Vec::new(),
            first_frame_timeout_ms: 5000,
            idle_timeout_secs: 300,
            max_sessions_per_address: 64,
            max_sessions_per_conference: 1000,
            session_bandwidth_kbps: 0,
            max_token_lifetime_secs: 28_800,
            token_clock_skew_secs: 30,
            quic_retry: true,
            quic_max_incoming: 1024,
            quic_max_handshakes: 512,
            key_rotation_hours: 0,
            key_overlap_minutes: 60,
            connector_bundle_dir: None,
        }
    }
}

impl WebconfEdgeConfig {
    pub(crate) fn validate<'a>(&'a self, errs: &mut ConfigErrors, certs: &mut Vec<CertRef<'a>>) {
        if !self.enabled {
            return;
        }
        certs.push(CertRef {
            key: "webconf_edge.certificate".into(),
            name: &self.certificate,
        });
        crate::peers::validate_peers("webconf_edge.internal_peers", &self.internal_peers, errs);
        if self.first_frame_timeout_ms == 0 || self.first_frame_timeout_ms > 60_000 {
            errs.push(
                "webconf_edge.first_frame_timeout_ms",
                "must be from 1 to 60000 ms",
            );
        }
        if self.max_sessions_per_address == 0 {
            errs.push(
                "webconf_edge.max_sessions_per_address",
                "must be at least 1",
            );
        }
        if self.max_sessions_per_conference == 0 {
            errs.push(
                "webconf_edge.max_sessions_per_conference",
                "must be at least 1",
            );
        }
        if self.idle_timeout_secs == 0 || self.idle_timeout_secs > 86_400 {
            errs.push(
                "webconf_edge.idle_timeout_secs",
                "must be from 1 to 86400 s",
            );
        }
        if !(60..=604_800).contains(&self.max_token_lifetime_secs) {
            errs.push(
                "webconf_edge.max_token_lifetime_secs",
                "must be from 60 to 604800 s",
            );
        }
        if self.token_clock_skew_secs > 600 {
            errs.push(
                "webconf_edge.token_clock_skew_secs",
                "must be from 0 to 600 s",
            );
        }
        for (key, value) in [
            ("webconf_edge.quic_max_incoming", self.quic_max_incoming),
            ("webconf_edge.quic_max_handshakes", self.quic_max_handshakes),
        ] {
            if !(1..=65_536).contains(&value) {
                errs.push(key, "must be from 1 to 65536");
            }
        }
        if self.key_rotation_hours > 8_760 {
            errs.push(
                "webconf_edge.key_rotation_hours",
                "must be from 0 (off) to 8760 h",
            );
        }
        if self.key_overlap_minutes == 0 || self.key_overlap_minutes > 10_080 {
            errs.push(
                "webconf_edge.key_overlap_minutes",
                "must be from 1 to 10080 min",
            );
        } else if self.key_rotation_hours > 0
            && u64::from(self.key_overlap_minutes) >= u64::from(self.key_rotation_hours) * 60
        {
            errs.push(
                "webconf_edge.key_overlap_minutes",
                "must be shorter than webconf_edge.key_rotation_hours",
            );
        }
        if let Some(dir) = &self.connector_bundle_dir {
            if !dir.is_absolute() {
                errs.push(
                    "webconf_edge.connector_bundle_dir",
                    "must be an absolute path",
                );
            }
        }
    }

    pub(crate) fn sockets(&self, net: &NetworkConfig, out: &mut Vec<SocketSpec>) {
        if !self.enabled {
            return;
        }
        let ext = side_address(net, Side::External, self.external_address);
        let int = side_address(net, Side::Internal, self.internal_address);
        out.push(SocketSpec {
            key: "webconf_edge.external_port".into(),
            owner: "webconf_edge",
            purpose: "meeting clients".into(),
            side: Side::External,
            protocol: Protocol::Tcp,
            transport: Transport::Tls,
            addr: SocketAddr::new(ext, self.external_port),
        });
        out.push(SocketSpec {
            key: "webconf_edge.external_port".into(),
            owner: "webconf_edge",
            purpose: "meeting clients".into(),
            side: Side::External,
            protocol: Protocol::Udp,
            transport: Transport::Quic,
            addr: SocketAddr::new(ext, self.external_port),
        });
        out.push(SocketSpec {
            key: "webconf_edge.internal_port".into(),
            owner: "webconf_edge",
            purpose: "conferencing servers (mutual TLS)".into(),
            side: Side::Internal,
            protocol: Protocol::Tcp,
            transport: Transport::Tls,
            addr: SocketAddr::new(int, self.internal_port),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    fn errors_with(adjust: impl FnOnce(&mut Config)) -> Vec<String> {
        let mut c = Config::embedded_default();
        adjust(&mut c);
        match c.validate() {
            Ok(()) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn key_rotation_defaults_are_valid_and_off() {
        let c = Config::embedded_default();
        assert_eq!(c.webconf_edge.key_rotation_hours, 0);
        assert_eq!(c.webconf_edge.key_overlap_minutes, 60);
        assert!(errors_with(|_| {}).is_empty());
        assert!(errors_with(|c| c.webconf_edge.key_rotation_hours = 24).is_empty());
    }

    #[test]
    fn token_and_quic_limits_have_safe_defaults_and_named_errors() {
        let c = Config::embedded_default();
        assert_eq!(c.webconf_edge.max_token_lifetime_secs, 28_800);
        assert!(c.webconf_edge.quic_retry);
        assert!(c.webconf_edge.quic_max_incoming < 65_536);
        for (key, adjust) in [
            (
                "webconf_edge.max_token_lifetime_secs",
                (|c: &mut Config| c.webconf_edge.max_token_lifetime_secs = 10) as fn(&mut Config),
            ),
            ("webconf_edge.token_clock_skew_secs", |c: &mut Config| {
                c.webconf_edge.token_clock_skew_secs = 3_600
            }),
            ("webconf_edge.quic_max_incoming", |c: &mut Config| {
                c.webconf_edge.quic_max_incoming = 0
            }),
            ("webconf_edge.quic_max_handshakes", |c: &mut Config| {
                c.webconf_edge.quic_max_handshakes = 100_000
            }),
        ] {
            let e = errors_with(adjust);
            assert!(e.iter().any(|m| m.contains(key)), "{key}: {e:?}");
        }
    }

    #[test]
    fn key_rotation_errors_name_their_key() {
        let e = errors_with(|c| c.webconf_edge.key_rotation_hours = 9_000);
        assert!(
            e.iter()
                .any(|m| m.contains("webconf_edge.key_rotation_hours")),
            "{e:?}"
        );
        let e = errors_with(|c| c.webconf_edge.key_overlap_minutes = 0);
        assert!(
            e.iter()
                .any(|m| m.contains("webconf_edge.key_overlap_minutes")),
            "{e:?}"
        );
        // The overlap must end before the next rotation.
        let e = errors_with(|c| {
            c.webconf_edge.key_rotation_hours = 1;
            c.webconf_edge.key_overlap_minutes = 60;
        });
        assert!(
            e.iter()
                .any(|m| m.contains("webconf_edge.key_overlap_minutes")
                    && m.contains("key_rotation_hours")),
            "{e:?}"
        );
    }
}
