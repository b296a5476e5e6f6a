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
    /// Internal port the conferencing servers connect out to (OCS: 8057): QUIC over UDP
    /// with mutual TLS, one stream per client session.
    pub internal_port: u16,
    /// A client that has not sent its first frame (conference id and key) by then is cut.
    pub first_frame_timeout_ms: u64,
    /// Sessions idle for this long are closed.
    pub idle_timeout_secs: u64,
    pub max_sessions_per_address: u32,
    pub max_sessions_per_conference: u32,
    /// Per-session bandwidth cap in kbit/s each way (0: no cap).
    pub session_bandwidth_kbps: u32,
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
            first_frame_timeout_ms: 5000,
            idle_timeout_secs: 300,
            max_sessions_per_address: 64,
            max_sessions_per_conference: 1000,
            session_bandwidth_kbps: 0,
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
            purpose: "conferencing servers (QUIC, mutual TLS)".into(),
            side: Side::Internal,
            protocol: Protocol::Udp,
            transport: Transport::Quic,
            addr: SocketAddr::new(int, self.internal_port),
        });
    }
}
