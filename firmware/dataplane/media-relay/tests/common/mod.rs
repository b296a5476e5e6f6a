//! Sockets and a one-thread relay plane on loopback, shared by the data-plane tests.
#![allow(dead_code)] // each test binary uses its own subset

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use media_relay::{AllocationId, Command, PeerGuard, PlaneConfig};

/// How long a test waits for something it expects (a datagram, a counter): generous, so
/// that only a real hang fails, not a loaded machine.
pub const WAIT: Duration = Duration::from_secs(30);

/// A blocking test endpoint (client or peer) with a read timeout, so a lost packet fails
/// the test instead of hanging it.
pub fn udp(addr: &str) -> UdpSocket {
    let s = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    s.set_read_timeout(Some(WAIT))
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
            ports: 1..=u16::MAX,
        },
        Command::Bind { id, channel, peer },
    ]
}

/// A counter of the plane's registry.
pub fn counter(metrics: &edged_metrics::Registry, name: &str, labels: &[(&str, &str)]) -> u64 {
    metrics.counter(name, "", labels).get()
}

/// The counter once it reaches `at_least` (or after `WAIT`, whatever it is then). A relay
/// thread publishes its counters at the end of a turn, just after its sends: a count may
/// land a moment after the datagram it counts.
pub fn counter_reaching(
    metrics: &edged_metrics::Registry,
    name: &str,
    labels: &[(&str, &str)],
    at_least: u64,
) -> u64 {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let n = counter(metrics, name, labels);
        if n >= at_least || std::time::Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The plane's allocations per relay thread once they are `expected` (or after `WAIT`,
/// whatever they are then): a thread counts its table after it has taken its commands.
pub fn allocations_reaching(plane: &media_relay::RelayPlane, expected: &[usize]) -> Vec<usize> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let now = plane.allocations_per_shard();
        if now == expected || std::time::Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
