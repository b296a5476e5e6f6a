//! Per-address protection: connection and handshake rates, concurrent connections.
//!
//! An attacker meets the edge first; one address must not be able to exhaust handshake CPU
//! or connection slots for everybody else. Sans-IO: time comes in as milliseconds.

use std::collections::HashMap;
use std::net::IpAddr;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    ConnectionRate,
    HandshakeRate,
    TooManyConnections,
}

#[derive(Debug, Clone, Copy)]
pub struct GuardLimits {
    pub connection_rate: u32,
    pub handshake_rate: u32,
    pub max_connections: u32,
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
    table: HashMap<IpAddr, PerAddress>,
}

impl AddressGuard {
    pub fn new(limits: GuardLimits) -> Self {
        AddressGuard {
            limits,
            table: HashMap::new(),
        }
    }

    pub fn set_limits(&mut self, limits: GuardLimits) {
        self.limits = limits;
    }

    fn entry(&mut self, ip: IpAddr, now_ms: u64) -> &mut PerAddress {
        let l = self.limits;
        let e = self.table.entry(ip).or_insert(PerAddress {
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

    /// A new TCP connection from `ip`: admitted (and counted open) or refused.
    pub fn connection_opened(&mut self, ip: IpAddr, now_ms: u64) -> Result<(), Refusal> {
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
    pub fn connection_closed(&mut self, ip: IpAddr) {
        if let Some(e) = self.table.get_mut(&ip) {
            e.open = e.open.saturating_sub(1);
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
        })
    }

    #[test]
    fn rates_and_concurrency_are_per_address() {
        let mut g = guard();
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        for _ in 0..4 {
            assert_eq!(g.connection_opened(a, 0), Ok(()));
        }
        assert_eq!(g.connection_opened(a, 0), Err(Refusal::TooManyConnections));
        // Another address is untouched by a's use.
        assert_eq!(g.connection_opened(b, 0), Ok(()));
        for _ in 0..4 {
            g.connection_closed(a);
        }
        assert_eq!(g.connection_opened(a, 0), Ok(()));
        assert_eq!(g.connection_opened(a, 0), Err(Refusal::ConnectionRate));
        // 200 ms at 5/s gives one token back.
        assert_eq!(g.connection_opened(a, 200), Ok(()));
        assert_eq!(g.connection_opened(a, 200), Err(Refusal::ConnectionRate));
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
        assert_eq!(g.connection_opened(a, 10_000), Ok(()));
        g.sweep(20_000);
        assert_eq!(g.tracked(), 1, "an address with an open connection stays");
    }
}
