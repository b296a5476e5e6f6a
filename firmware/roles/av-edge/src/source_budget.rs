//! The per-source budget of answers to unauthenticated requests, so the relay is no
//! amplifier for spoofed sources: a fixed-size table, O(1) per request, no sweep.
//!
//! Sans-IO: the caller passes the time as whole seconds of a monotonic clock. Each source
//! (an IPv4 address, an IPv6 /64) may take one of two slots chosen by a keyed hash; a slot
//! whose window is over is free. When both slots are held by other sources in the current
//! second (more sources than slots, which only a flood of spoofed addresses reaches), the
//! request is charged to one shared overflow budget instead, so the table never grows and
//! the answers of a flood stay bounded however many sources it claims.

use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;

/// Slots of the table: 2^16 sources answered in the same second before the overflow
/// budget applies; 16 bytes each (1 MiB).
pub const SLOTS: usize = 1 << 16;

/// Who a budget is counted for: an IPv4 address or an IPv6 /64 (one subscriber).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SourceKey {
    V4(u32),
    V6(u64),
}

impl SourceKey {
    fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => SourceKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => SourceKey::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    key: SourceKey,
    /// The second this slot's count is for; a slot of an earlier second is free.
    second: u64,
    count: u32,
}

const FREE: Slot = Slot {
    key: SourceKey::V4(0),
    second: u64::MAX,
    count: 0,
};

pub struct SourceBudget {
    slots: Box<[Slot]>,
    /// Keyed, so a flood cannot pick addresses that collide with a victim's slots.
    hasher: foldhash::quality::RandomState,
    overflow: Slot,
}

impl Default for SourceBudget {
    fn default() -> Self {
        Self::with_slots(SLOTS)
    }
}

impl SourceBudget {
    /// A table of `slots` entries (a power of two).
    pub fn with_slots(slots: usize) -> Self {
        SourceBudget {
            slots: vec![FREE; slots.next_power_of_two().max(2)].into_boxed_slice(),
            hasher: foldhash::quality::RandomState::default(),
            overflow: FREE,
        }
    }

    /// Counts one answer to `ip` in second `now`; whether it fits `rate` per second.
    pub fn allow(&mut self, ip: IpAddr, now: u64, rate: u32) -> bool {
        let key = SourceKey::of(ip);
        let hash = self.hasher.hash_one(key);
        let mask = self.slots.len() - 1;
        let first = (hash as usize) & mask;
        let second = ((hash >> 32) as usize) & mask;
        let current = |s: &Slot| s.second == now;
        let index = if self.slots[first].key == key && current(&self.slots[first]) {
            Some(first)
        } else if self.slots[second].key == key && current(&self.slots[second]) {
            Some(second)
        } else if !current(&self.slots[first]) {
            self.slots[first] = Slot {
                key,
                second: now,
                count: 0,
            };
            Some(first)
        } else if !current(&self.slots[second]) {
            self.slots[second] = Slot {
                key,
                second: now,
                count: 0,
            };
            Some(second)
        } else {
            None
        };
        let slot = match index {
            Some(i) => &mut self.slots[i],
            None => {
                if !current(&self.overflow) {
                    self.overflow = Slot {
                        key,
                        second: now,
                        count: 0,
                    };
                }
                &mut self.overflow
            }
        };
        slot.count = slot.count.saturating_add(1);
        slot.count <= rate
    }

    /// Entries of the table: fixed from the start.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn each_source_gets_its_rate_per_second() {
        let mut b = SourceBudget::default();
        let answered = (0..10).filter(|_| b.allow(ip("192.0.2.1"), 5, 3)).count();
        assert_eq!(answered, 3);
        assert!(b.allow(ip("192.0.2.2"), 5, 3), "another source");
        assert!(b.allow(ip("192.0.2.1"), 6, 3), "the next second");
    }

    #[test]
    fn ipv6_is_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let mut b = SourceBudget::default();
        assert!(b.allow(ip("2001:db8:1:2::1"), 0, 1));
        assert!(!b.allow(ip("2001:db8:1:2::ffff"), 0, 1), "same /64");
        assert!(b.allow(ip("2001:db8:1:3::1"), 0, 1));
        assert!(b.allow(ip("192.0.2.9"), 0, 1));
        assert!(!b.allow(ip("::ffff:192.0.2.9"), 0, 1));
    }

    #[test]
    fn more_sources_than_slots_share_one_overflow_budget() {
        const RATE: u32 = 50;
        let mut b = SourceBudget::with_slots(64);
        // A flood from 100,000 addresses in one second: the table stays at its size, and
        // the sources it has no room for share one budget, so the answers stay bounded.
        let answered = (0..100_000u32)
            .filter(|i| b.allow(IpAddr::V4((0x0a00_0000 + i).into()), 7, RATE))
            .count();
        assert_eq!(b.capacity(), 64);
        assert!(
            answered <= 64 + RATE as usize,
            "{answered} answers to a spoofed flood"
        );
        assert!(answered >= RATE as usize);
        // In the next second every slot is free again, without a sweep.
        assert!(b.allow(ip("198.51.100.1"), 8, RATE));
    }
}
