//! The parts of `[av_edge]` that change live on reload, in the form the request path uses.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use edged_config::roles::av_edge::AvEdgeConfig;
use stun_core::{NonceMinter, SecurityFeatures};

use crate::policy::{Allowed, PeerPolicy};

pub struct Settings {
    pub realm: String,
    pub policy: PeerPolicy,
    pub nonces: NonceMinter,
    pub max_allocations: u32,
    pub max_allocations_per_user: u32,
    pub default_lifetime: u32,
    pub max_lifetime: u32,
    /// Per allocation; 0 means no cap. UDP relaying has a bucket per direction, an
    /// RFC 6062 TCP allocation one for both directions of all its connections.
    pub bandwidth_bytes_per_sec: u64,
    pub unauthenticated_rate: u32,
    pub limits: AllocationLimits,
    pub streams: StreamTimeouts,
}

/// What one allocation or request may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocationLimits {
    pub permissions: usize,
    pub channels: usize,
    pub peers_per_request: usize,
    pub tcp_peer_connections: usize,
}

/// The deadlines of a TURN TCP/TLS connection (see `stream_clock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTimeouts {
    pub first_request: Duration,
    pub authentication: Duration,
    pub idle: Duration,
}

impl StreamTimeouts {
    pub fn of(cfg: &AvEdgeConfig) -> Self {
        let secs = |s: u32| Duration::from_secs(u64::from(s));
        StreamTimeouts {
            first_request: secs(cfg.tcp_first_request_timeout_secs),
            authentication: secs(cfg.tcp_auth_timeout_secs),
            idle: secs(cfg.tcp_idle_timeout_secs),
        }
    }
}

/// `max_allocations` as the descriptor budget allows: each allocation holds a relay socket,
/// and the role's TCP/TLS connections draw from the same budget, so allocations may take at
/// most half of it. Without a budget (the role outside edged: tests, benchmarks) the
/// configured figure stands.
pub fn allocations_within_budget(configured: u32, budget: Option<u64>) -> u32 {
    match budget {
        Some(descriptors) => configured.min(u32::try_from(descriptors / 2).unwrap_or(u32::MAX)),
        None => configured,
    }
}

impl Settings {
    pub fn new(
        cfg: &AvEdgeConfig,
        secret: &[u8],
        own_addresses: Vec<IpAddr>,
        relay_ports: RangeInclusive<u16>,
    ) -> Settings {
        // Validation already rejected bad ranges; anything unparsable is skipped here.
        let allowed = cfg
            .allowed_peer_ranges
            .iter()
            .filter_map(|s| Allowed::parse(s).ok())
            .collect();
        Settings {
            realm: cfg.realm.clone(),
            policy: PeerPolicy::new(allowed, own_addresses, relay_ports),
            nonces: NonceMinter::new(
                secret,
                cfg.nonce_lifetime_secs,
                SecurityFeatures::PASSWORD_ALGORITHMS,
            ),
            max_allocations: allocations_within_budget(
                cfg.max_allocations,
                edged_role::budget::pool("av_edge").map(|p| p.budget()),
            ),
            max_allocations_per_user: cfg.max_allocations_per_user,
            default_lifetime: cfg.default_lifetime_secs,
            max_lifetime: cfg.max_lifetime_secs,
            bandwidth_bytes_per_sec: u64::from(cfg.allocation_bandwidth_kbps) * 1000 / 8,
            unauthenticated_rate: cfg.unauthenticated_rate_per_sec,
            limits: AllocationLimits {
                permissions: cfg.max_permissions_per_allocation as usize,
                channels: cfg.max_channels_per_allocation as usize,
                peers_per_request: cfg.max_peers_per_request as usize,
                tcp_peer_connections: cfg.max_tcp_peer_connections_per_allocation as usize,
            },
            streams: StreamTimeouts::of(cfg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::allocations_within_budget;

    #[test]
    fn allocations_take_at_most_half_the_descriptor_budget() {
        assert_eq!(allocations_within_budget(100_000, Some(20_000)), 10_000);
        assert_eq!(allocations_within_budget(500, Some(20_000)), 500);
        assert_eq!(allocations_within_budget(100_000, None), 100_000);
        assert_eq!(allocations_within_budget(100, Some(1)), 0);
    }
}
