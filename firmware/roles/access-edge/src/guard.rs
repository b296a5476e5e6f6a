//! Per-source protection: connection and handshake rates, concurrent connections, and the
//! cap on connections from outside across the external listeners.
//!
//! An attacker meets the edge first; one source must not be able to exhaust handshake CPU
//! or connection slots for everybody else. A source is an IPv4 address or an IPv6 /64 (one
//! subscriber's usual allocation, so rotating addresses inside it gains nothing). Sans-IO:
//! time comes in as milliseconds.

use std::collections::HashMap;
use std::net::IpAddr;

use edged_role::admission::Source;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    ConnectionRate,
    HandshakeRate,
    TooManyConnections,
    /// The external listeners together hold their maximum.
    EdgeFull,
}

#[derive(Debug, Clone, Copy)]
pub struct GuardLimits {
    pub connection_rate: u32,
    pub handshake_rate: u32,
    pub max_connections: u32,
    /// Connections from outside (remote users and partners) across both external listeners;
    /// the Director pool's listener is not counted, so outsiders cannot lock it out.
    pub max_external: u32,
}

#[derive(Debug, Default, Clone, Copy)]
struct PerAddress {
    /// Milli-tokens of the two buckets.
    connect_tokens: u64,
    handshake_tokens: u64,
    last_ms: u64,
    open: u32,
}

/// The per-address table. Idle entries are swept so the table stays bounded by the
/// addresses active within the last few seconds.
#[derive(Debug)]
pub struct AddressGuard {
    limits: GuardLimits,
    table: HashMap<Source, PerAddress>,
    external_open: u32,
}

impl AddressGuard {
    pub fn new(limits: GuardLimits) -> Self {
        AddressGuard {
            limits,
            table: HashMap::new(),
            external_open: 0,
        }
    }

    pub fn set_limits(&mut self, limits: GuardLimits) {
        self.limits = limits;
    }

    fn entry(&mut self, ip: IpAddr, now_ms: u64) -> &mut PerAddress {
        let l = self.limits;
        let e = self.table.entry(Source::of(ip)).or_insert(PerAddress {
            connect_tokens: u64::from(l.connection_rate) * 1000,
            handshake_tokens: u64::from(l.handshake_rate) * 1000,
            last_ms: now_ms,
            open: 0,
        });
        let elapsed = now_ms.saturating_sub(e.last_ms);
        e.last_ms = e.last_ms.max(now_ms);
        e.connect_tokens = (e.connect_tokens + elapsed * u64::from(l.connection_rate))
            .min(u64::from(l.connection_rate) * 1000);
        e.handshake_tokens = (e.handshake_tokens + elapsed * u64::from(l.handshake_rate))
            .min(u64::from(l.handshake_rate) * 1000);
        e
    }

    /// A new TCP connection from `ip`: admitted (and counted open) or refused. `external`:
    /// it counts against the cap of the external listeners.
    pub fn connection_opened(
        &mut self,
        ip: IpAddr,
        now_ms: u64,
        external: bool,
    ) -> Result<(), Refusal> {
        if external && self.external_open >= self.limits.max_external {
            return Err(Refusal::EdgeFull);
        }
        let max = self.limits.max_connections;
        let e = self.entry(ip, now_ms);
        if e.open >= max {
            return Err(Refusal::TooManyConnections);
        }
        if e.connect_tokens < 1000 {
            return Err(Refusal::ConnectionRate);
        }
        e.connect_tokens -= 1000;
        e.open += 1;
        if external {
            self.external_open += 1;
        }
        Ok(())
    }

    /// A TLS handshake is about to start on an admitted connection from `ip`.
    pub fn handshake_started(&mut self, ip: IpAddr, now_ms: u64) -> Result<(), Refusal> {
        let e = self.entry(ip, now_ms);
        if e.handshake_tokens < 1000 {
            return Err(Refusal::HandshakeRate);
        }
        e.handshake_tokens -= 1000;
        Ok(())
    }

    /// An admitted connection from `ip` closed.
    pub fn connection_closed(&mut self, ip: IpAddr, external: bool) {
        if let Some(e) = self.table.get_mut(&Source::of(ip)) {
            e.open = e.open.saturating_sub(1);
        }
        if external {
            self.external_open = self.external_open.saturating_sub(1);
        }
    }

    /// Drops entries with no open connection whose buckets are full again.
    pub fn sweep(&mut self, now_ms: u64) {
        // Buckets hold one second of tokens, so after a second of silence an entry is
        // indistinguishable from a fresh one.
        self.table
            .retain(|_, e| e.open > 0 || now_ms.saturating_sub(e.last_ms) < 1000);
    }

    pub fn tracked(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> AddressGuard {
        AddressGuard::new(GuardLimits {
            connection_rate: 5,
            handshake_rate: 3,
            max_connections: 4,
            max_external: 100,
        })
    }

    #[test]
    fn rates_and_concurrency_are_per_address() {
        let mut g = guard();
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        for _ in 0..4 {
            assert_eq!(g.connection_opened(a, 0, true), Ok(()));
        }
        assert_eq!(
            g.connection_opened(a, 0, true),
            Err(Refusal::TooManyConnections)
        );
        // Another address is untouched by a's use.
        assert_eq!(g.connection_opened(b, 0, true), Ok(()));
        for _ in 0..4 {
            g.connection_closed(a, true);
        }
        assert_eq!(g.connection_opened(a, 0, true), Ok(()));
        assert_eq!(
            g.connection_opened(a, 0, true),
            Err(Refusal::ConnectionRate)
        );
        // 200 ms at 5/s gives one token back.
        assert_eq!(g.connection_opened(a, 200, true), Ok(()));
        assert_eq!(
            g.connection_opened(a, 200, true),
            Err(Refusal::ConnectionRate)
        );
    }

    #[test]
    fn handshakes_have_their_own_rate_and_table_is_swept() {
        let mut g = guard();
        let a: IpAddr = [192, 0, 2, 1].into();
        for _ in 0..3 {
            assert_eq!(g.handshake_started(a, 0), Ok(()));
        }
        assert_eq!(g.handshake_started(a, 0), Err(Refusal::HandshakeRate));
        assert_eq!(g.handshake_started(a, 400), Ok(()));
        g.sweep(10_000);
        assert_eq!(g.tracked(), 0);
        assert_eq!(g.connection_opened(a, 10_000, true), Ok(()));
        g.sweep(20_000);
        assert_eq!(g.tracked(), 1, "an address with an open connection stays");
    }

    #[test]
    fn an_ipv6_64_is_one_source() {
        let mut g = guard();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{e}"));
        for i in 1..=4 {
            let a = ip(&format!("2001:db8:1:2::{i}"));
            assert_eq!(g.connection_opened(a, 0, true), Ok(()));
        }
        // Another address of the same /64 shares its limit; the next /64 does not.
        assert_eq!(
            g.connection_opened(ip("2001:db8:1:2:ffff::1"), 0, true),
            Err(Refusal::TooManyConnections)
        );
        assert_eq!(g.connection_opened(ip("2001:db8:1:3::1"), 0, true), Ok(()));
        assert_eq!(g.tracked(), 2);
    }

    #[test]
    fn the_external_cap_spans_sources_and_spares_the_internal_listener() {
        let mut g = AddressGuard::new(GuardLimits {
            connection_rate: 100,
            handshake_rate: 100,
            max_connections: 100,
            max_external: 2,
        });
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        let director: IpAddr = [10, 0, 0, 9].into();
        assert_eq!(g.connection_opened(a, 0, true), Ok(()));
        assert_eq!(g.connection_opened(b, 0, true), Ok(()));
        assert_eq!(g.connection_opened(b, 0, true), Err(Refusal::EdgeFull));
        assert_eq!(g.connection_opened(director, 0, false), Ok(()));
        g.connection_closed(a, true);
        assert_eq!(g.connection_opened(b, 0, true), Ok(()));
    }
}
