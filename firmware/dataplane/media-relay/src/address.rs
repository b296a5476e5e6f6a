//! Peer address normalisation: the forms an IPv6 address can hide an IPv4 address in.
//!
//! Checks on peer addresses must run on the address the packet will really reach, so
//! IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), 6to4 (`2002:AABB:CCDD::/48`),
//! Teredo (`2001:0::/32`, client address inverted in the last 32 bits) and NAT64
//! (`64:ff9b::/96`, and the RFC 8215 local-use `64:ff9b:1::/48` read with the same /96
//! layout) are reduced to the IPv4 address they embed before any policy applies.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The IPv4 address an IPv6 address embeds, if it is one of the transition forms.
pub fn embedded_ipv4(v6: &Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let o = v6.octets();
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    // IPv4-compatible (deprecated, but a kernel may still route it): ::a.b.c.d, not :: or ::1.
    if s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1) {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    // 6to4: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    // Teredo: 2001:0000::/32, the client's public address is the bitwise inverse of the
    // last 32 bits.
    if s[0] == 0x2001 && s[1] == 0 {
        return Some(Ipv4Addr::new(!o[12], !o[13], !o[14], !o[15]));
    }
    // NAT64 well-known prefix 64:ff9b::/96, and the local-use 64:ff9b:1::/48 whose
    // layout is the site's choice: the /96 one is the common one (the control plane's
    // policy denies the whole /48 unless configured).
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || s[..3] == [0x64, 0xff9b, 1] {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    None
}

/// The address a peer address really designates.
#[inline]
pub fn normalise_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_ipv4(&v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[inline]
pub fn normalise(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(normalise_ip(addr.ip()), addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        normalise_ip(s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))).to_string()
    }

    #[test]
    fn transition_forms_reduce_to_ipv4() {
        assert_eq!(n("::ffff:127.0.0.1"), "127.0.0.1");
        assert_eq!(n("::127.0.0.1"), "127.0.0.1");
        assert_eq!(n("2002:7f00:1::1"), "127.0.0.1");
        assert_eq!(n("2002:a9fe:a9fe::"), "169.254.169.254");
        // Teredo inverts the client address: 127.0.0.1 -> 80.ff.ff.fe.
        assert_eq!(n("2001:0:4136:e378:8000:63bf:80ff:fffe"), "127.0.0.1");
        assert_eq!(n("64:ff9b::10.0.0.1"), "10.0.0.1");
        assert_eq!(n("64:ff9b:1::10.0.0.1"), "10.0.0.1");
        assert_eq!(n("64:ff9b:1:ffff::127.0.0.1"), "127.0.0.1");
    }

    #[test]
    fn plain_addresses_stay() {
        assert_eq!(n("::"), "::");
        assert_eq!(n("::1"), "::1");
        assert_eq!(n("2001:db8::1"), "2001:db8::1");
        assert_eq!(n("192.0.2.1"), "192.0.2.1");
        assert_eq!(n("fe80::1"), "fe80::1");
    }
}
