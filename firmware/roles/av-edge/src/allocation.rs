//! The control plane's view of allocations: who owns them, what they permit, when they
//! expire, and the quotas. The relay threads hold a forwarding copy of the UDP ones.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use media_relay::AllocationId;
use stun_core::TransactionId;

/// RFC 8656: permissions last 300 s, channel bindings 600 s.
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientTransport {
    Udp,
    Tcp,
    Tls,
}

/// The client's 5-tuple: one allocation per 5-tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    pub transport: ClientTransport,
    pub client: SocketAddr,
    pub server: SocketAddr,
}

/// Where the allocation's client-side traffic is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A UDP client on a relay thread's listener shard: the thread forwards its media.
    Plane { shard: usize, listener: usize },
    /// A TCP/TLS client: its connection task forwards the media.
    Stream,
}

#[derive(Debug)]
pub struct Allocation {
    pub id: AllocationId,
    pub username: String,
    pub relay: SocketAddr,
    pub expires: Instant,
    pub permissions: HashMap<IpAddr, Instant>,
    pub channels: HashMap<u16, (SocketAddr, Instant)>,
    pub origin: Origin,
    /// The Allocate transaction, so a retransmitted request gets the same answer.
    pub allocate_transaction: TransactionId,
}

impl Allocation {
    pub fn permits(&self, peer: IpAddr, now: Instant) -> bool {
        self.permissions.get(&peer).is_some_and(|e| *e > now)
    }

    pub fn channel_of(&self, peer: SocketAddr) -> Option<u16> {
        self.channels
            .iter()
            .find(|(_, (p, _))| *p == peer)
            .map(|(c, _)| *c)
    }
}

/// What expired in a sweep, for the relay threads.
#[derive(Debug, Default)]
pub struct Expired {
    pub allocations: Vec<(Origin, AllocationId, FiveTuple)>,
    pub permissions: Vec<(Origin, AllocationId, IpAddr)>,
    pub channels: Vec<(Origin, AllocationId, u16)>,
}

#[derive(Debug, Default)]
pub struct Allocations {
    by_tuple: HashMap<FiveTuple, Allocation>,
    per_user: HashMap<String, u32>,
    next_id: AllocationId,
}

impl Allocations {
    pub fn len(&self) -> usize {
        self.by_tuple.len()
    }

    pub fn get(&self, tuple: &FiveTuple) -> Option<&Allocation> {
        self.by_tuple.get(tuple)
    }

    pub fn get_mut(&mut self, tuple: &FiveTuple) -> Option<&mut Allocation> {
        self.by_tuple.get_mut(tuple)
    }

    pub fn user_count(&self, user: &str) -> u32 {
        self.per_user.get(user).copied().unwrap_or(0)
    }

    pub fn next_id(&mut self) -> AllocationId {
        self.next_id += 1;
        self.next_id
    }

    pub fn insert(&mut self, tuple: FiveTuple, alloc: Allocation) {
        *self.per_user.entry(alloc.username.clone()).or_default() += 1;
        self.by_tuple.insert(tuple, alloc);
    }

    pub fn remove(&mut self, tuple: &FiveTuple) -> Option<Allocation> {
        let alloc = self.by_tuple.remove(tuple)?;
        if let Some(n) = self.per_user.get_mut(&alloc.username) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_user.remove(&alloc.username);
            }
        }
        Some(alloc)
    }

    /// Removes what has expired at `now` and reports it.
    pub fn sweep(&mut self, now: Instant) -> Expired {
        let mut out = Expired::default();
        let dead: Vec<FiveTuple> = self
            .by_tuple
            .iter()
            .filter(|(_, a)| a.expires <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in dead {
            if let Some(a) = self.remove(&t) {
                out.allocations.push((a.origin, a.id, t));
            }
        }
        for a in self.by_tuple.values_mut() {
            a.permissions.retain(|ip, exp| {
                let keep = *exp > now;
                if !keep {
                    out.permissions.push((a.origin, a.id, *ip));
                }
                keep
            });
            a.channels.retain(|ch, (_, exp)| {
                let keep = *exp > now;
                if !keep {
                    out.channels.push((a.origin, a.id, *ch));
                }
                keep
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(port: u16) -> FiveTuple {
        FiveTuple {
            transport: ClientTransport::Udp,
            client: SocketAddr::from(([192, 0, 2, 1], port)),
            server: SocketAddr::from(([192, 0, 2, 2], 3478)),
        }
    }

    fn alloc(table: &mut Allocations, user: &str, expires: Instant) -> Allocation {
        Allocation {
            id: table.next_id(),
            username: user.into(),
            relay: SocketAddr::from(([192, 0, 2, 2], 50000)),
            expires,
            permissions: HashMap::new(),
            channels: HashMap::new(),
            origin: Origin::Stream,
            allocate_transaction: TransactionId([0; 12]),
        }
    }

    #[test]
    fn sweep_expires_allocations_permissions_and_channels() {
        let now = Instant::now();
        let mut t = Allocations::default();
        let a = alloc(&mut t, "alice", now + Duration::from_secs(10));
        t.insert(tuple(1), a);
        let b = alloc(&mut t, "alice", now + Duration::from_secs(100));
        t.insert(tuple(2), b);
        assert_eq!(t.user_count("alice"), 2);
        let peer: IpAddr = [198, 51, 100, 1].into();
        if let Some(b) = t.get_mut(&tuple(2)) {
            b.permissions.insert(peer, now + Duration::from_secs(20));
            b.channels.insert(
                0x4000,
                (SocketAddr::new(peer, 9), now + Duration::from_secs(50)),
            );
        }
        let e = t.sweep(now + Duration::from_secs(30));
        assert_eq!(e.allocations.len(), 1);
        assert_eq!(e.permissions.len(), 1);
        assert!(e.channels.is_empty());
        assert_eq!(t.user_count("alice"), 1);
        assert!(t.get(&tuple(2)).is_some_and(|b| !b.permits(peer, now)));
        let e = t.sweep(now + Duration::from_secs(200));
        assert_eq!(e.allocations.len(), 1);
        assert_eq!(t.len(), 0);
        assert_eq!(t.user_count("alice"), 0);
    }
}
