//! Media relay data plane: pinned threads forwarding TURN traffic.
//!
//! Each relay thread owns an SO_REUSEPORT shard of every client-facing UDP listener, the
//! relay sockets of the allocations installed on it and its shard of the allocation table.
//! ChannelData, Send and Data are handled entirely on these threads with fixed buffers; the
//! control plane (tokio) receives every other STUN message through a bounded queue and
//! hands allocation, permission and channel changes back through lock-free SPSC queues.
//!
//! Logs under the target `media_relay` (`edgectl log-level media_relay debug`).

#![allow(
    unsafe_code,
    reason = "batched socket I/O (recvmmsg/sendmmsg with GSO control messages), sockaddr \
              conversions and real-time scheduling go through libc; each block says why it is sound"
)]

pub mod address;
pub mod bandwidth;
pub mod channel;
mod command;
mod command_queue;
mod counters;
pub mod dont_fragment;
mod forward;
mod mmsg;
mod plane;
mod sockaddr;
mod table;
mod worker;

pub use command::{AllocationId, Command};
pub use mmsg::gso_supported;
pub use plane::{ControlPacket, PeerGuard, PlaneConfig, PlaneError, Realtime, RelayPlane};
