//! The control plane's view of allocations: who owns them, what they permit, when they
//! expire, and the quotas. The relay threads hold a forwarding copy of the UDP ones.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use edged_role::DrainToken;

use media_relay::AllocationId;
use stun_core::TransactionId;

/// RFC 8656: permissions last 300 s, channel bindings 600 s.
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// RFC 8656 7.2 suggests about 30 s for a port reserved by EVEN-PORT with the R bit.
pub const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);

/// The RESERVATION-TOKEN value.
pub type ReservationToken = [u8; 8];

/// The odd port after an even relay port, held bound (so nobody else gets it) until an
/// Allocate with its token takes it or it expires.
#[derive(Debug)]
pub struct Reservation {
    pub socket: UdpSocket,
    /// Whose quota the reserved port counts against.
    pub identity: String,
    pub expires: Instant,
}

/// The RFC 6062 side of a TCP allocation: the control connection's outbound queue and
/// the connections to peers. Dropping it (the allocation went away) closes the relay
/// listener and every peer connection of the allocation.
#[derive(Debug)]
pub struct TcpState {
    /// Responses and ConnectionAttempt indications for the control connection.
    pub control: tokio::sync::mpsc::Sender<Vec<u8>>,
    pub closed: DrainToken,
    /// Peers with a connection (pending or bound): a second Connect gets 446.
    pub peers: HashSet<SocketAddr>,
    /// The bandwidth cap shared by all of the allocation's data connections; `None` when
    /// uncapped.
    pub cap: Option<crate::tcp_bandwidth::TcpCap>,
}

impl Drop for TcpState {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

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
    /// The USERNAME of the Allocate: later requests must carry the same (RFC 8656).
    pub username: String,
    /// Whose quota the allocation counts against: the user behind the username (every
    /// short-lived credential of one user is one identity).
    pub identity: String,
    pub relay: SocketAddr,
    /// The IPv6 relayed address of an RFC 6156 dual allocation (`relay` is the IPv4 one).
    pub relay_v6: Option<SocketAddr>,
    pub expires: Instant,
    pub permissions: HashMap<IpAddr, Instant>,
    /// The peer ports each permission of a UDP allocation lets Send reach (as told to the
    /// relay thread).
    pub permission_ports: HashMap<IpAddr, RangeInclusive<u16>>,
    pub channels: HashMap<u16, (SocketAddr, Instant)>,
    pub origin: Origin,
    /// The Allocate transaction, so a retransmitted request gets the same answer.
    pub allocate_transaction: TransactionId,
    /// Present for RFC 6062 TCP allocations.
    pub tcp: Option<TcpState>,
}

impl Allocation {
    /// Whether a peer of this family can be reached from one of the relayed addresses.
    pub fn serves_family_of(&self, peer: &SocketAddr) -> bool {
        self.relay.is_ipv4() == peer.is_ipv4()
            || self.relay_v6.is_some_and(|r| r.is_ipv4() == peer.is_ipv4())
    }

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

/// The limits an allocation is admitted under: allocations plus reserved ports, in total
/// and per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub total: usize,
    pub per_user: usize,
}

/// Why a request cannot act on the allocation of its 5-tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotOwned {
    /// No allocation on the 5-tuple.
    Missing,
    /// The allocation belongs to another user.
    OtherUser,
}

impl NotOwned {
    /// The error answer (RFC 8656: 437, and 441 for another user's allocation).
    pub fn error(self) -> (u16, &'static str) {
        match self {
            NotOwned::Missing => (437, "Allocation Mismatch"),
            NotOwned::OtherUser => (441, "Wrong Credentials"),
        }
    }
}

/// What expired in a sweep, for the relay threads.
#[derive(Debug, Default)]
pub struct Expired {
    pub allocations: Vec<(Origin, AllocationId, FiveTuple)>,
    pub permissions: Vec<(Origin, AllocationId, IpAddr)>,
    pub channels: Vec<(Origin, AllocationId, u16)>,
    pub reservations: usize,
}

#[derive(Debug, Default)]
pub struct Allocations {
    by_tuple: HashMap<FiveTuple, Allocation>,
    per_user: HashMap<String, u32>,
    reservations: HashMap<ReservationToken, Reservation>,
    next_id: AllocationId,
}

impl Allocations {
    pub fn len(&self) -> usize {
        self.by_tuple.len()
    }

    /// Allocations plus reserved ports: what the total quota counts.
    pub fn usage(&self) -> usize {
        self.by_tuple.len() + self.reservations.len()
    }

    /// Whether `needed` more allocations or reservations of identity `user` fit `quotas`.
    pub fn admits(&self, user: &str, needed: usize, quotas: Quotas) -> bool {
        self.usage() + needed <= quotas.total
            && self.user_count(user) as usize + needed <= quotas.per_user
    }

    pub fn reserve(&mut self, token: ReservationToken, reservation: Reservation) {
        *self
            .per_user
            .entry(reservation.identity.clone())
            .or_default() += 1;
        self.reservations.insert(token, reservation);
    }

    /// Takes a reservation by its token; `None` if unknown or expired.
    pub fn take_reservation(
        &mut self,
        token: &ReservationToken,
        now: Instant,
    ) -> Option<UdpSocket> {
        let r = self.reservations.remove(token)?;
        self.release_user(&r.identity);
        (r.expires > now).then_some(r.socket)
    }

    fn release_user(&mut self, user: &str) {
        if let Some(n) = self.per_user.get_mut(user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_user.remove(user);
            }
        }
    }

    pub fn get(&self, tuple: &FiveTuple) -> Option<&Allocation> {
        self.by_tuple.get(tuple)
    }

    pub fn get_mut(&mut self, tuple: &FiveTuple) -> Option<&mut Allocation> {
        self.by_tuple.get_mut(tuple)
    }

    /// The allocation of `tuple`, if `username` owns it: what Refresh, CreatePermission and
    /// ChannelBind may change.
    pub fn owned_mut(
        &mut self,
        tuple: &FiveTuple,
        username: &str,
    ) -> Result<&mut Allocation, NotOwned> {
        let alloc = self.by_tuple.get_mut(tuple).ok_or(NotOwned::Missing)?;
        if alloc.username != username {
            return Err(NotOwned::OtherUser);
        }
        Ok(alloc)
    }

    pub fn user_count(&self, user: &str) -> u32 {
        self.per_user.get(user).copied().unwrap_or(0)
    }

    pub fn next_id(&mut self) -> AllocationId {
        self.next_id += 1;
        self.next_id
    }

    pub fn insert(&mut self, tuple: FiveTuple, alloc: Allocation) {
        *self.per_user.entry(alloc.identity.clone()).or_default() += 1;
        self.by_tuple.insert(tuple, alloc);
    }

    pub fn remove(&mut self, tuple: &FiveTuple) -> Option<Allocation> {
        let alloc = self.by_tuple.remove(tuple)?;
        self.release_user(&alloc.identity);
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
        let stale: Vec<ReservationToken> = self
            .reservations
            .iter()
            .filter(|(_, r)| r.expires <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in stale {
            // Dropping the socket frees the port.
            if let Some(r) = self.reservations.remove(&t) {
                self.release_user(&r.identity);
                out.reservations += 1;
            }
        }
        for a in self.by_tuple.values_mut() {
            a.permissions.retain(|ip, exp| {
                let keep = *exp > now;
                if !keep {
                    out.permissions.push((a.origin, a.id, *ip));
                    a.permission_ports.remove(ip);
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
            identity: user.into(),
            relay: SocketAddr::from(([192, 0, 2, 2], 50000)),
            relay_v6: None,
            expires,
            permissions: HashMap::new(),
            permission_ports: HashMap::new(),
            channels: HashMap::new(),
            origin: Origin::Stream,
            allocate_transaction: TransactionId([0; 12]),
            tcp: None,
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

    #[test]
    fn quotas_count_allocations_and_reservations() {
        let now = Instant::now();
        let quotas = Quotas {
            total: 3,
            per_user: 2,
        };
        let mut t = Allocations::default();
        assert!(t.admits("alice", 2, quotas));
        assert!(!t.admits("alice", 3, quotas), "over the per-user quota");
        let a = alloc(&mut t, "alice", now + Duration::from_secs(10));
        t.insert(tuple(1), a);
        assert!(t.admits("alice", 1, quotas));
        assert!(!t.admits("alice", 2, quotas));
        // Admitted before binding, then the table filled up meanwhile: refused at insert.
        assert!(t.admits("bob", 2, quotas));
        let c = alloc(&mut t, "carol", now + Duration::from_secs(10));
        t.insert(tuple(2), c);
        assert!(!t.admits("bob", 2, quotas), "over the total quota");
        assert!(t.admits("bob", 1, quotas));
    }

    #[test]
    fn only_the_owner_gets_its_allocation() {
        let now = Instant::now();
        let mut t = Allocations::default();
        let a = alloc(&mut t, "alice", now + Duration::from_secs(10));
        t.insert(tuple(1), a);
        assert_eq!(
            t.owned_mut(&tuple(1), "alice").map(|a| a.username.clone()),
            Ok("alice".to_string())
        );
        assert_eq!(
            t.owned_mut(&tuple(1), "bob").map(|_| ()),
            Err(NotOwned::OtherUser)
        );
        assert_eq!(
            t.owned_mut(&tuple(2), "alice").map(|_| ()),
            Err(NotOwned::Missing)
        );
        assert_eq!(NotOwned::Missing.error().0, 437);
        assert_eq!(NotOwned::OtherUser.error().0, 441);
    }

    #[test]
    fn reservations_count_against_quotas_and_expire() {
        let now = Instant::now();
        let mut t = Allocations::default();
        let sock = |port| UdpSocket::bind(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{e}"));
        let held = sock(0);
        let port = held.local_addr().map(|a| a.port()).unwrap_or_default();
        t.reserve(
            [1; 8],
            Reservation {
                socket: held,
                identity: "bob".into(),
                expires: now + RESERVATION_LIFETIME,
            },
        );
        t.reserve(
            [2; 8],
            Reservation {
                socket: sock(0),
                identity: "bob".into(),
                expires: now + Duration::from_secs(1),
            },
        );
        assert_eq!((t.usage(), t.user_count("bob")), (2, 2));
        // The reserved port stays taken while reserved.
        assert!(UdpSocket::bind(("127.0.0.1", port)).is_err());
        assert!(t.take_reservation(&[9; 8], now).is_none(), "unknown token");
        let e = t.sweep(now + Duration::from_secs(2));
        assert_eq!(e.reservations, 1);
        assert_eq!((t.usage(), t.user_count("bob")), (1, 1));
        let taken = t.take_reservation(&[1; 8], now + Duration::from_secs(2));
        assert_eq!(
            taken.and_then(|s| s.local_addr().ok()).map(|a| a.port()),
            Some(port)
        );
        assert_eq!((t.usage(), t.user_count("bob")), (0, 0));
        assert!(
            t.take_reservation(&[1; 8], now).is_none(),
            "a token is used once"
        );
    }

    #[test]
    fn expired_reservation_is_refused_and_frees_the_port() {
        let now = Instant::now();
        let mut t = Allocations::default();
        let held = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = held.local_addr().map(|a| a.port()).unwrap_or_default();
        t.reserve(
            [3; 8],
            Reservation {
                socket: held,
                identity: "carol".into(),
                expires: now + Duration::from_secs(1),
            },
        );
        assert!(t
            .take_reservation(&[3; 8], now + Duration::from_secs(5))
            .is_none());
        assert_eq!(t.user_count("carol"), 0);
        assert!(UdpSocket::bind(("127.0.0.1", port)).is_ok());
    }
}
