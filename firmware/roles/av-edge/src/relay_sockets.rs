//! An allocation's UDP relay sockets: which to get ([`RelayPlan`], sans-IO), and binding
//! them ([`bind_relay`]). Binding probes up to [`MAX_PROBES`] ports, so it runs before the
//! allocation table is locked: nothing here can reach the table, and the table is locked
//! only to take a reservation or to insert the finished allocation.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;

use rand::Rng;

use crate::allocate_request::{AllocateRequest, Parity, Refusal};
use crate::allocation::ReservationToken;

/// Ports tried per relay socket before answering 508.
pub const MAX_PROBES: u32 = 512;

/// Where the primary relay socket comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Primary {
    /// The odd port a RESERVATION-TOKEN holds (taken from the table, nothing to bind).
    Reserved(ReservationToken),
    /// A port of the relay range on this address.
    Bind { ip: IpAddr, parity: Parity },
}

/// What an Allocate needs, decided from the request and the relay addresses alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayPlan {
    pub primary: Primary,
    /// The IPv6 relay address of a dual allocation (RFC 6156 ADDITIONAL-ADDRESS-FAMILY);
    /// `None` also when the request asked for one and there is no IPv6 relay address: the
    /// IPv4 allocation then succeeds with ADDRESS-ERROR-CODE 440.
    pub additional: Option<IpAddr>,
    /// What the allocation counts against the quotas: itself, and the port reserved for
    /// the next Allocate with EVEN-PORT's R bit.
    pub quota_needed: usize,
}

impl RelayPlan {
    /// The plan for `request` on a relay with `relay_ip` and optionally `relay_ip_v6`; 440
    /// for a family the relay has no address of.
    pub fn new(
        request: &AllocateRequest,
        relay_ip: IpAddr,
        relay_ip_v6: Option<IpAddr>,
    ) -> Result<RelayPlan, Refusal> {
        let primary_ip = match request.family {
            None => relay_ip,
            Some(family) if family_of(relay_ip) == family => relay_ip,
            Some(stun_core::AddressFamily::V6) => {
                relay_ip_v6.ok_or((440, "Address Family not Supported"))?
            }
            Some(_) => return Err((440, "Address Family not Supported")),
        };
        // ADDITIONAL-ADDRESS-FAMILY is always IPv6 (parse checked it).
        let additional = if request.additional_v6 {
            relay_ip_v6.filter(|v6| v6.is_ipv6() && primary_ip.is_ipv4())
        } else {
            None
        };
        let primary = match request.token {
            Some(token) => Primary::Reserved(token),
            None => Primary::Bind {
                ip: primary_ip,
                parity: request.parity,
            },
        };
        Ok(RelayPlan {
            primary,
            additional,
            quota_needed: 1 + usize::from(request.parity == Parity::EvenWithNext),
        })
    }
}

fn family_of(ip: IpAddr) -> stun_core::AddressFamily {
    stun_core::AddressFamily::of(&SocketAddr::new(ip, 0))
}

/// The ports to try, in order: from `start` (an offset into the range) round the range, at
/// most [`MAX_PROBES`]; only even ones for EVEN-PORT, and not the last port of the range
/// when the next one must be reserved too.
pub fn candidate_ports(
    ports: &RangeInclusive<u16>,
    parity: Parity,
    start: u32,
) -> impl Iterator<Item = u16> {
    let (lo, hi) = (u32::from(*ports.start()), u32::from(*ports.end()));
    let span = hi.saturating_sub(lo) + 1;
    (0..span.min(MAX_PROBES))
        .map(move |i| lo + (start + i) % span)
        .filter(move |port| parity == Parity::Any || port % 2 == 0)
        .filter(move |port| parity != Parity::EvenWithNext || *port < hi)
        .filter_map(|port| u16::try_from(port).ok())
}

fn bind_port(ip: IpAddr, port: u16) -> Option<UdpSocket> {
    let sock = UdpSocket::bind(SocketAddr::new(ip, port)).ok()?;
    sock.set_nonblocking(true).ok()?;
    Some(sock)
}

/// Binds a relay socket on a free port of `ports`; with `Parity::EvenWithNext` also the
/// odd port after it, for a reservation. `None` when no candidate port was free.
pub fn bind_relay(
    ip: IpAddr,
    ports: &RangeInclusive<u16>,
    parity: Parity,
) -> Option<(UdpSocket, Option<UdpSocket>)> {
    let span = u32::from(ports.end().saturating_sub(*ports.start())) + 1;
    let start = rand::thread_rng().gen_range(0..span);
    for port in candidate_ports(ports, parity, start) {
        let Some(sock) = bind_port(ip, port) else {
            continue;
        };
        if parity != Parity::EvenWithNext {
            return Some((sock, None));
        }
        if let Some(next) = port.checked_add(1).and_then(|p| bind_port(ip, p)) {
            return Some((sock, Some(next)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use stun_core::AddressFamily;

    use super::*;

    const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

    fn request() -> AllocateRequest {
        AllocateRequest {
            tcp: false,
            family: None,
            additional_v6: false,
            parity: Parity::Any,
            token: None,
            dont_fragment: false,
        }
    }

    #[test]
    fn plan_follows_the_requested_families() {
        let plain = RelayPlan::new(&request(), V4, None);
        assert_eq!(
            plain,
            Ok(RelayPlan {
                primary: Primary::Bind {
                    ip: V4,
                    parity: Parity::Any
                },
                additional: None,
                quota_needed: 1,
            })
        );
        let v6 = AllocateRequest {
            family: Some(AddressFamily::V6),
            ..request()
        };
        assert_eq!(
            RelayPlan::new(&v6, V4, None).map(|_| ()),
            Err((440, "Address Family not Supported"))
        );
        assert_eq!(
            RelayPlan::new(&v6, V4, Some(V6)).map(|p| p.primary),
            Ok(Primary::Bind {
                ip: V6,
                parity: Parity::Any
            })
        );
        let v4_on_v6_relay = AllocateRequest {
            family: Some(AddressFamily::V4),
            ..request()
        };
        assert_eq!(
            RelayPlan::new(&v4_on_v6_relay, V6, None)
                .map(|_| ())
                .map_err(|r| r.0),
            Err(440)
        );
        let dual = AllocateRequest {
            additional_v6: true,
            ..request()
        };
        assert_eq!(
            RelayPlan::new(&dual, V4, Some(V6)).map(|p| p.additional),
            Ok(Some(V6))
        );
        // No IPv6 relay address: the IPv4 allocation alone (ADDRESS-ERROR-CODE 440).
        assert_eq!(
            RelayPlan::new(&dual, V4, None).map(|p| p.additional),
            Ok(None)
        );
    }

    #[test]
    fn plan_counts_reservations_and_takes_reserved_ports() {
        let even_next = AllocateRequest {
            parity: Parity::EvenWithNext,
            ..request()
        };
        assert_eq!(
            RelayPlan::new(&even_next, V4, None).map(|p| p.quota_needed),
            Ok(2)
        );
        let even = AllocateRequest {
            parity: Parity::Even,
            ..request()
        };
        assert_eq!(
            RelayPlan::new(&even, V4, None).map(|p| p.quota_needed),
            Ok(1)
        );
        let token = AllocateRequest {
            token: Some([7; 8]),
            ..request()
        };
        assert_eq!(
            RelayPlan::new(&token, V4, None).map(|p| (p.primary, p.quota_needed)),
            Ok((Primary::Reserved([7; 8]), 1))
        );
    }

    #[test]
    fn candidates_wrap_round_the_range_and_keep_parity() {
        let any: Vec<u16> = candidate_ports(&(100..=104), Parity::Any, 3).collect();
        assert_eq!(any, [103, 104, 100, 101, 102]);
        let even: Vec<u16> = candidate_ports(&(100..=104), Parity::Even, 3).collect();
        assert_eq!(even, [104, 100, 102]);
        // The last port cannot be followed by a reserved one.
        let pairs: Vec<u16> = candidate_ports(&(100..=104), Parity::EvenWithNext, 3).collect();
        assert_eq!(pairs, [100, 102]);
        let single: Vec<u16> = candidate_ports(&(5000..=5000), Parity::Any, 0).collect();
        assert_eq!(single, [5000]);
        // Wide ranges are probed MAX_PROBES times at most.
        assert_eq!(
            candidate_ports(&(1024..=65535), Parity::Any, 9).count(),
            MAX_PROBES as usize
        );
        assert_eq!(
            candidate_ports(&(65534..=65535), Parity::Any, 1).collect::<Vec<_>>(),
            [65535, 65534]
        );
    }

    /// A free even port on loopback whose successor is free too, found by the kernel.
    fn free_pair() -> u16 {
        for _ in 0..100 {
            let probe = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap_or_else(|e| panic!("{e}"));
            let port = probe
                .local_addr()
                .map(|a| a.port())
                .unwrap_or_else(|e| panic!("{e}"));
            drop(probe);
            let even = port & !1;
            let free = |p: u16| UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).is_ok();
            if even >= 1024 && free(even) && free(even + 1) {
                return even;
            }
        }
        panic!("no free port pair on loopback");
    }

    #[test]
    fn binds_an_even_port_and_reserves_the_next() {
        let lo = free_pair();
        let (sock, next) = bind_relay(V4, &(lo..=lo + 1), Parity::EvenWithNext)
            .unwrap_or_else(|| panic!("{lo} and {} were free", lo + 1));
        let port = |s: &UdpSocket| s.local_addr().map(|a| a.port()).unwrap_or_default();
        assert_eq!(port(&sock), lo);
        assert_eq!(next.as_ref().map(port), Some(lo + 1));
        // Both ports are taken now: nothing left in the range.
        assert!(bind_relay(V4, &(lo..=lo + 1), Parity::Any).is_none());
        drop((sock, next));
        let (again, none) =
            bind_relay(V4, &(lo..=lo), Parity::Any).unwrap_or_else(|| panic!("{lo} was released"));
        assert_eq!((port(&again), none.is_none()), (lo, true));
    }
}
