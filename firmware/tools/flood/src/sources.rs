//! Source addresses a flood comes from: `count` addresses of an IPv4 network, taken in
//! order from its first host address. The harness makes the whole network local to the
//! flood namespace (`ip route add local NET dev lo`), so any of them can be bound, and
//! routes it there from the server's namespace, so answers come back to be counted.

use std::net::Ipv4Addr;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    base: u32,
    prefix: u8,
}

impl FromStr for Net {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s}: expected ADDRESS/PREFIX"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|e| format!("{s}: {e}"))?;
        let prefix: u8 = prefix.parse().map_err(|e| format!("{s}: {e}"))?;
        if !(1..=30).contains(&prefix) {
            return Err(format!("{s}: prefix must be 1-30"));
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Net {
            base: u32::from(addr) & mask,
            prefix,
        })
    }
}

impl Net {
    /// Usable host addresses (network and broadcast addresses excluded).
    pub fn hosts(&self) -> u32 {
        (1u32 << (32 - self.prefix)) - 2
    }

    /// The `i`-th host address, wrapping around the network.
    pub fn host(&self, i: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1 + i % self.hosts())
    }
}

/// A pool of `count` sources of a network (all of it when `count` is 0 or larger).
#[derive(Debug, Clone, Copy)]
pub struct Sources {
    net: Net,
    count: u32,
}

impl Sources {
    pub fn new(net: Net, count: u32) -> Self {
        let count = if count == 0 {
            net.hosts()
        } else {
            count.min(net.hosts())
        };
        Sources { net, count }
    }

    pub fn len(&self) -> u32 {
        self.count
    }

    /// The `i`-th source, round robin over the pool.
    pub fn nth(&self, i: u64) -> Ipv4Addr {
        self.net.host((i % u64::from(self.count)) as u32)
    }

    /// A source drawn at random from the pool.
    pub fn random(&self, rng: &mut impl rand::Rng) -> Ipv4Addr {
        self.net.host(rng.gen_range(0..self.count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_skip_the_network_address_and_wrap() {
        let net: Net = "10.128.0.0/30".parse().unwrap();
        assert_eq!(net.hosts(), 2);
        assert_eq!(net.host(0), Ipv4Addr::new(10, 128, 0, 1));
        assert_eq!(net.host(1), Ipv4Addr::new(10, 128, 0, 2));
        assert_eq!(net.host(2), Ipv4Addr::new(10, 128, 0, 1));
    }

    #[test]
    fn a_host_address_with_a_prefix_is_masked_to_its_network() {
        let net: Net = "10.200.3.7/16".parse().unwrap();
        assert_eq!(net.host(0), Ipv4Addr::new(10, 200, 0, 1));
    }

    #[test]
    fn a_pool_is_bounded_by_its_network_and_taken_round_robin() {
        let s = Sources::new("10.0.0.0/24".parse().unwrap(), 1000);
        assert_eq!(s.len(), 254);
        let s = Sources::new("10.0.0.0/16".parse().unwrap(), 3);
        assert_eq!(s.nth(3), s.nth(0));
        assert_ne!(s.nth(1), s.nth(0));
        let mut rng = rand::thread_rng();
        for _ in 0..100 {
            let a = s.random(&mut rng);
            assert!(
                (1..=3).contains(&a.octets()[3]) && a.octets()[2] == 0,
                "{a}"
            );
        }
    }

    #[test]
    fn malformed_networks_are_refused() {
        for bad in ["10.0.0.0", "10.0.0.0/0", "10.0.0.0/31", "x/8", "10.0.0.0/x"] {
            assert!(bad.parse::<Net>().is_err(), "{bad}");
        }
    }
}
