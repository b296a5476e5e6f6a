//! What the proxy reads from the configuration, swapped whole on reload, and the addresses
//! the role's listeners are bound to.

use std::net::SocketAddr;
use std::time::Duration;

use edged_config::roles::access_edge::AccessEdgeConfig;
use sip_core::Limits;

use crate::guard::GuardLimits;
use crate::scanner::ScannerFilter;

/// Settings derived from the configuration, swapped whole on reload.
#[derive(Debug, Clone)]
pub struct Settings {
    pub limits: Limits,
    pub idle: Duration,
    pub handshake_timeout: Duration,
    pub transaction_timeout: Duration,
    pub timer_c: Duration,
    pub hide_user_existence: bool,
    pub health_interval: Duration,
    pub next_hops: Vec<String>,
    pub sip_domains: Vec<String>,
    pub fqdn: String,
    pub scanners: ScannerFilter,
    pub dns_servers: Vec<SocketAddr>,
    pub partner_port: u16,
    /// Time a whole message has from its first byte.
    pub message_timeout: Duration,
    /// Time one message may take to write to a peer before it counts as gone.
    pub write_timeout: Duration,
    /// Bytes queued for one peer at most.
    pub output_budget: usize,
    /// Requests per second of one remote user's connection.
    pub request_rate: u32,
}

impl Settings {
    pub fn from_config(c: &AccessEdgeConfig) -> Self {
        Settings {
            limits: Limits {
                max_message_size: c.max_message_bytes,
                ..Limits::default()
            },
            idle: Duration::from_secs(c.idle_timeout_secs),
            handshake_timeout: Duration::from_secs(c.handshake_timeout_secs),
            transaction_timeout: Duration::from_secs(c.transaction_timeout_secs),
            timer_c: Duration::from_secs(c.timer_c_secs),
            hide_user_existence: c.hide_user_existence,
            health_interval: Duration::from_secs(c.health_check_interval_secs),
            next_hops: c.next_hops.clone(),
            sip_domains: c
                .sip_domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            fqdn: c.fqdn.clone(),
            scanners: ScannerFilter::new(&c.scanner_user_agents),
            dns_servers: c.federation.dns_servers.clone(),
            partner_port: c.federation.partner_port,
            message_timeout: Duration::from_secs(c.message_timeout_secs),
            write_timeout: Duration::from_secs(c.write_timeout_secs),
            output_budget: c.max_queued_bytes_per_connection,
            request_rate: c.remote_user_requests_per_sec,
        }
    }

    pub fn guard_limits(c: &AccessEdgeConfig) -> GuardLimits {
        GuardLimits {
            connection_rate: c.connection_rate_per_ip,
            handshake_rate: c.handshake_rate_per_ip,
            max_connections: c.max_connections_per_ip,
            max_external: c.max_connections,
        }
    }
}

/// The bound addresses of the three listeners.
#[derive(Debug, Clone, Copy)]
pub struct OwnAddrs {
    pub remote_users: SocketAddr,
    pub federation: SocketAddr,
    pub internal: SocketAddr,
}
