//! Hosts and `host[:port]` as written in SIP URIs and Via sent-by
//! (RFC 3261 25.1 with the RFC 5954 IPv6 grammar, checked by `std::net`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    Domain(&'a str),
    V4(Ipv4Addr),
    /// Written as an IPv6 reference (`[2001:db8::1]`) in URIs and Via.
    V6(Ipv6Addr),
}

impl Host<'_> {
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Domain(_) => None,
            Host::V4(v4) => Some(IpAddr::V4(*v4)),
            Host::V6(v6) => Some(IpAddr::V6(*v6)),
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::V4(v4) => write!(f, "{v4}"),
            Host::V6(v6) => write!(f, "[{v6}]"),
        }
    }
}

/// Parses a host: domain name, dotted IPv4 or bracketed IPv6 reference.
pub fn parse_host(text: &str) -> Result<Host<'_>, ParseError> {
    if let Some(inner) = text.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(ParseError::BadHost)?;
        return inner
            .parse::<Ipv6Addr>()
            .map(Host::V6)
            .map_err(|_| ParseError::BadHost);
    }
    if text.is_empty() || text.len() > 255 {
        return Err(ParseError::BadHost);
    }
    let bytes = text.as_bytes();
    if bytes.iter().all(|b| b.is_ascii_digit() || *b == b'.') {
        return text
            .parse::<Ipv4Addr>()
            .map(Host::V4)
            .map_err(|_| ParseError::BadHost);
    }
    let labels_ok = text.trim_end_matches('.').split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if labels_ok {
        Ok(Host::Domain(text))
    } else {
        Err(ParseError::BadHost)
    }
}

/// Parses an address that may be written with or without IPv6 brackets, as
/// the Via `received` parameter is in the wild (RFC 5118 4.5 accepts both).
pub fn parse_ip_loose(text: &str) -> Option<IpAddr> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse().ok()
}

/// Parses `host[:port]`.
pub fn parse_hostport(text: &str) -> Result<(Host<'_>, Option<u16>), ParseError> {
    let (host_text, port_text) = if text.starts_with('[') {
        let close = text.find(']').ok_or(ParseError::BadHost)?;
        let rest = &text[close + 1..];
        match rest.strip_prefix(':') {
            Some(port) => (&text[..=close], Some(port)),
            None if rest.is_empty() => (text, None),
            None => return Err(ParseError::BadHost),
        }
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    let host = parse_host(host_text)?;
    let port = match port_text {
        None => None,
        Some(p) => Some(parse_port(p).ok_or(ParseError::BadHost)?),
    };
    Ok((host, port))
}

fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_every_kind() {
        assert_eq!(parse_host("example.com"), Ok(Host::Domain("example.com")));
        assert_eq!(
            parse_host("192.0.2.1"),
            Ok(Host::V4(Ipv4Addr::new(192, 0, 2, 1)))
        );
        assert!(matches!(parse_host("[2001:db8::10]"), Ok(Host::V6(_))));
        assert!(matches!(parse_host("[::ffff:192.0.2.10]"), Ok(Host::V6(_))));
    }

    #[test]
    fn bad_hosts_are_refused() {
        for bad in [
            "",
            "[2001:db8:::192.0.2.1]",
            "2001:db8::10",
            "300.1.1.1",
            "a_b.com",
            "[::1",
            "-a.com",
        ] {
            assert!(parse_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hostport_with_ipv6_reference() {
        let (host, port) = parse_hostport("[2001:db8::10]:5070").unwrap();
        assert_eq!(host.to_string(), "[2001:db8::10]");
        assert_eq!(port, Some(5070));
        assert!(parse_hostport("2001:db8::10").is_err());
        assert!(parse_hostport("[2001:db8::10]x").is_err());
        assert!(parse_hostport("host:70000").is_err());
    }

    #[test]
    fn received_with_or_without_brackets() {
        assert_eq!(
            parse_ip_loose("[2001:db8::9:255]"),
            parse_ip_loose("2001:db8::9:255")
        );
        assert!(parse_ip_loose("2001:db8::9:255").is_some());
    }
}
