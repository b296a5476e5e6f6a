//! Sockets and a one-thread relay plane on loopback, shared by the data-plane tests.
#![allow(dead_code)] // each test binary uses its own subset

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use media_relay::{AllocationId, Command, PeerGuard, PlaneConfig};

/// A blocking test endpoint (client or peer) with a read timeout, so a lost packet fails
/// the test instead of hanging it.
pub fn udp(addr: &str) -> UdpSocket {
    let s = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap_or_else(|e| panic!("timeout: {e}"));
    s
}

/// A relay socket as the control plane hands it to a relay thread: bound, non-blocking.
pub fn relay_socket(addr: &str) -> UdpSocket {
    let s = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    s.set_nonblocking(true).unwrap_or_else(|e| panic!("{e}"));
    s
}

pub fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().unwrap_or_else(|e| panic!("addr: {e}"))
}

/// One relay thread on one loopback listener (port chosen by the plane).
pub fn plane_config(metrics: edged_metrics::Registry) -> PlaneConfig {
    PlaneConfig {
        threads: 1,
        cores: Vec::new(),
        listeners: vec!["127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!())],
        socket_buffer_bytes: 1 << 20,
        guard: PeerGuard::default(),
        metrics,
        pacing: (std::time::Duration::ZERO, std::time::Duration::ZERO),
    }
}

/// Installs an allocation for `client` on the plane's first listener: one relay socket,
/// no bandwidth cap.
pub fn install(id: AllocationId, client: &UdpSocket, relay: UdpSocket) -> Command {
    Command::Install {
        id,
        client: addr(client),
        listener: 0,
        relay,
        relay_v6: None,
        bandwidth_bytes_per_sec: 0,
    }
}

/// The commands for an allocation of `client` on the plane's first listener with a
/// permission for `peer` and channel `channel` bound to it.
pub fn bound_channel(
    id: AllocationId,
    client: &UdpSocket,
    relay: UdpSocket,
    peer: SocketAddr,
    channel: u16,
) -> [Command; 3] {
    [
        install(id, client, relay),
        Command::Permit {
            id,
            peer: peer.ip(),
        },
        Command::Bind { id, channel, peer },
    ]
}
