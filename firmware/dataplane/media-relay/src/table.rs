//! A relay thread's shard of the allocation table. Only its thread touches it, so there is
//! no lock; lookups never allocate (inserts do, on the control path).
//!
//! Every datagram from a client costs one lookup by its source address. The maps hash with
//! foldhash, seeded at random per process, instead of std's SipHash: SipHash over a socket
//! address was about 2 % of the relay thread's CPU at saturation, foldhash a fraction of
//! that. The random seed keeps what SipHash is there for: a client cannot choose source
//! addresses that collide, and only authenticated allocations ever enter the maps.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;

pub(crate) use crate::bandwidth::Bucket;
use crate::command::AllocationId;
use crate::dont_fragment::DfState;

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub(crate) struct Allocation {
    pub id: AllocationId,
    pub client: SocketAddr,
    pub listener: usize,
    /// Relay sockets by address family: `[IPv4, IPv6]`; a dual allocation (RFC 6156) has
    /// both, a single-family one has one.
    pub relays: [Option<UdpSocket>; 2],
    /// The DF option of each relay socket, for Send indications with DONT-FRAGMENT.
    pub df: [Option<DfState>; 2],
    /// Few entries per allocation in practice (and capped by the control plane), so a
    /// vector beats a map. The ports are those Send indications may reach.
    pub permissions: Vec<(IpAddr, RangeInclusive<u16>)>,
    pub channels: Vec<(u16, SocketAddr)>,
    pub to_peer: Bucket,
    pub to_client: Bucket,
}

/// Index into `Allocation::relays` for an address family.
#[inline]
pub(crate) fn family_index(ip: IpAddr) -> usize {
    match ip {
        IpAddr::V4(_) => 0,
        IpAddr::V6(_) => 1,
    }
}

impl Allocation {
    /// Whether data from or to `peer`'s address is permitted.
    #[inline]
    pub fn permits(&self, peer: IpAddr) -> bool {
        self.permissions.iter().any(|(ip, _)| *ip == peer)
    }
    /// Whether a Send indication may reach `peer` (its address and port).
    #[inline]
    pub fn permits_send_to(&self, peer: SocketAddr) -> bool {
        self.permissions
            .iter()
            .any(|(ip, ports)| *ip == peer.ip() && ports.contains(&peer.port()))
    }
    #[inline]
    pub fn channel_peer(&self, channel: u16) -> Option<SocketAddr> {
        self.channels
            .iter()
            .find(|(c, _)| *c == channel)
            .map(|(_, p)| *p)
    }
    #[inline]
    pub fn peer_channel(&self, peer: SocketAddr) -> Option<u16> {
        self.channels
            .iter()
            .find(|(_, p)| *p == peer)
            .map(|(c, _)| *c)
    }
}

#[derive(Default)]
pub(crate) struct Table {
    slots: Vec<Option<Allocation>>,
    free: Vec<usize>,
    by_id: HashMap<AllocationId, usize>,
    by_client: HashMap<(usize, SocketAddr), usize>,
}

impl Table {
    /// Inserts and returns the slot (used as the relay socket's epoll token).
    pub fn insert(&mut self, alloc: Allocation) -> usize {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        self.by_id.insert(alloc.id, slot);
        self.by_client.insert((alloc.listener, alloc.client), slot);
        self.slots[slot] = Some(alloc);
        slot
    }

    pub fn remove(&mut self, id: AllocationId) -> Option<Allocation> {
        let slot = self.by_id.remove(&id)?;
        let alloc = self.slots.get_mut(slot)?.take()?;
        self.by_client.remove(&(alloc.listener, alloc.client));
        self.free.push(slot);
        Some(alloc)
    }

    pub fn by_id_mut(&mut self, id: AllocationId) -> Option<&mut Allocation> {
        let slot = *self.by_id.get(&id)?;
        self.slots.get_mut(slot)?.as_mut()
    }

    /// The slot of the allocation of `client` on `listener`.
    #[inline]
    pub fn client_slot(&self, listener: usize, client: SocketAddr) -> Option<usize> {
        self.by_client.get(&(listener, client)).copied()
    }

    #[inline]
    pub fn slot(&self, slot: usize) -> Option<&Allocation> {
        self.slots.get(slot)?.as_ref()
    }

    #[inline]
    pub fn by_client_mut(
        &mut self,
        listener: usize,
        client: SocketAddr,
    ) -> Option<&mut Allocation> {
        let slot = *self.by_client.get(&(listener, client))?;
        self.slots.get_mut(slot)?.as_mut()
    }

    #[inline]
    pub fn slot_mut(&mut self, slot: usize) -> Option<&mut Allocation> {
        self.slots.get_mut(slot)?.as_mut()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }
}
