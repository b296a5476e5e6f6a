//! Changes the control plane hands to a relay thread.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;

/// Identifies an allocation across both planes.
pub type AllocationId = u64;

/// One change to a relay thread's shard of the allocation table. Commands are applied in
/// order, so a `Permit` queued after an `Install` always finds its allocation.
#[derive(Debug)]
pub enum Command {
    /// A new allocation for a UDP client seen on `listener` of this shard; `relay` is the
    /// bound, non-blocking relay socket the thread now owns.
    Install {
        id: AllocationId,
        client: SocketAddr,
        listener: usize,
        relay: UdpSocket,
        /// The IPv6 relay socket of an RFC 6156 dual allocation (then `relay` is the IPv4
        /// one). A single-family allocation of either family passes only `relay`. Packets
        /// to a peer leave by the socket of the peer's family; packets from peers are
        /// accepted on both.
        relay_v6: Option<UdpSocket>,
        /// Bytes per second in each direction; 0 means no cap.
        bandwidth_bytes_per_sec: u64,
    },
    /// A permission for a (normalised) peer IP; the control plane already checked policy.
    /// Send indications reach only `ports` of the peer (all ports, unless the range that
    /// allowed the peer has ports); a second Permit for the peer replaces them.
    Permit {
        id: AllocationId,
        peer: IpAddr,
        ports: RangeInclusive<u16>,
    },
    Revoke {
        id: AllocationId,
        peer: IpAddr,
    },
    Bind {
        id: AllocationId,
        channel: u16,
        peer: SocketAddr,
    },
    Unbind {
        id: AllocationId,
        channel: u16,
    },
    Remove {
        id: AllocationId,
    },
}

impl Command {
    /// Removals: a lost one would leave the relay thread forwarding for an allocation,
    /// permission or channel the control plane has ended (past its lifetime, past its
    /// credential). These are never dropped (see `command_queue`).
    pub fn must_arrive(&self) -> bool {
        matches!(
            self,
            Command::Remove { .. } | Command::Revoke { .. } | Command::Unbind { .. }
        )
    }
}
