//! The Via header value (RFC 3261 20.42) with the RFC 3581 `rport` and the
//! `received` forms of RFC 5118 4.5.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::error::ParseError;
use crate::host::{parse_host, parse_hostport, parse_ip_loose, Host};
use crate::params::{self, Params};
use crate::scan::{is_lws, is_token_char, skip_lws, trim_lws};

const BAD: ParseError = ParseError::BadHeaderValue("Via");

/// One Via value (a single hop; split list headers first).
#[derive(Debug, Clone)]
pub struct Via<'a> {
    pub raw: &'a str,
    pub protocol: &'a str,
    pub version: &'a str,
    pub transport: &'a str,
    pub host: Host<'a>,
    pub port: Option<u16>,
    params: Params<'a>,
}

/// Where a response to this hop goes (RFC 3261 18.2.2 with RFC 3581).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseTarget<'a> {
    pub host: Host<'a>,
    pub ip: Option<IpAddr>,
    pub port: u16,
}

impl<'a> Via<'a> {
    pub fn parse(value: &'a str) -> Result<Self, ParseError> {
        let raw = trim_lws(value);
        let mut pos = 0;
        let protocol = take_token(raw, &mut pos)?;
        expect_slash(raw, &mut pos)?;
        let version = take_token(raw, &mut pos)?;
        expect_slash(raw, &mut pos)?;
        let transport = take_token(raw, &mut pos)?;
        if !protocol.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return Err(BAD);
        }
        let sent_by_start = skip_lws(raw, pos);
        if sent_by_start == pos {
            return Err(BAD);
        }
        let bytes = raw.as_bytes();
        let mut end = sent_by_start;
        while end < bytes.len() && !is_lws(bytes[end]) && bytes[end] != b';' {
            end += 1;
        }
        let (host, port) = parse_hostport(&raw[sent_by_start..end])?;
        let param_text = &raw[end..];
        params::validate(param_text).map_err(|()| BAD)?;
        let via = Via {
            raw,
            protocol,
            version,
            transport,
            host,
            port,
            params: Params::new(param_text),
        };
        via.check_known_params()?;
        Ok(via)
    }

    fn check_known_params(&self) -> Result<(), ParseError> {
        if let Some(branch) = self.params.get("branch") {
            branch.ok_or(BAD)?;
        }
        if let Some(received) = self.params.get("received") {
            received.and_then(parse_ip_loose).ok_or(BAD)?;
        }
        if let Some(Some(rport)) = self.params.get("rport") {
            rport.parse::<u16>().map_err(|_| BAD)?;
        }
        if let Some(maddr) = self.params.get("maddr") {
            parse_host(maddr.ok_or(BAD)?)?;
        }
        Ok(())
    }

    pub fn params(&self) -> Params<'a> {
        self.params.clone()
    }

    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }

    /// True when the branch carries the RFC 3261 magic cookie, so it can be
    /// used as a transaction key on its own.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.starts_with("z9hG4bK") && b.len() > 7)
    }

    pub fn received(&self) -> Option<IpAddr> {
        self.params
            .get("received")
            .flatten()
            .and_then(parse_ip_loose)
    }

    /// `None`: no rport; `Some(None)`: rport requested (empty);
    /// `Some(Some(p))`: filled in by the previous hop.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }

    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }

    /// Default port of the transport when sent-by has none.
    pub fn default_port(&self) -> u16 {
        if self.transport.eq_ignore_ascii_case("TLS") || self.transport.eq_ignore_ascii_case("WSS")
        {
            5061
        } else {
            5060
        }
    }

    /// Symmetric response routing: `received` (else sent-by) and `rport`
    /// (else sent-by port, else the transport default).
    pub fn response_target(&self) -> ResponseTarget<'a> {
        let ip = self.received().or_else(|| self.host.ip());
        let port = self
            .rport()
            .flatten()
            .or(self.port)
            .unwrap_or_else(|| self.default_port());
        ResponseTarget {
            host: self.host,
            ip,
            port,
        }
    }

    /// Whether a server must add `received` for a request that arrived from
    /// `source` (RFC 3261 18.2.1): sent-by differs from the packet source.
    pub fn needs_received(&self, source: IpAddr) -> bool {
        self.host.ip() != Some(source)
    }

    /// This value as a server stamps it on receipt from `source`: `received`
    /// when sent-by differs (RFC 3261 18.2.1) or rport was asked for, and
    /// `rport` filled with the source port (RFC 3581 4). Replace the top Via
    /// with it through [`crate::MessageEditor::replace_top_value`].
    pub fn stamped(&self, source: SocketAddr) -> String {
        let mut out = String::with_capacity(self.raw.len() + 40);
        // Writing into a String cannot fail.
        let _ = write!(
            out,
            "{}/{}/{} {}",
            self.protocol, self.version, self.transport, self.host
        );
        if let Some(port) = self.port {
            let _ = write!(out, ":{port}");
        }
        let wants_rport = self.rport().is_some();
        for param in self.params() {
            if param.name.eq_ignore_ascii_case("received") {
                continue;
            }
            if param.name.eq_ignore_ascii_case("rport") {
                let _ = write!(out, ";rport={}", source.port());
                continue;
            }
            out.push(';');
            out.push_str(param.name);
            if let Some(value) = param.value {
                out.push('=');
                out.push_str(value);
            }
        }
        if wants_rport || self.needs_received(source.ip()) {
            // RFC 3261 grammar: an IPv6 received is written without brackets.
            let _ = write!(out, ";received={}", source.ip());
        }
        out
    }
}

fn take_token<'a>(text: &'a str, pos: &mut usize) -> Result<&'a str, ParseError> {
    let start = skip_lws(text, *pos);
    let bytes = text.as_bytes();
    let mut end = start;
    while end < bytes.len() && is_token_char(bytes[end]) {
        end += 1;
    }
    if end == start {
        return Err(BAD);
    }
    *pos = end;
    Ok(&text[start..end])
}

fn expect_slash(text: &str, pos: &mut usize) -> Result<(), ParseError> {
    let at = skip_lws(text, *pos);
    if text.as_bytes().get(at) != Some(&b'/') {
        return Err(BAD);
    }
    *pos = at + 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn folded_via_with_spaces_around_slashes() {
        let via = Via::parse("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(via.transport, "UDP");
        assert_eq!(via.host, Host::V4(Ipv4Addr::new(192, 0, 2, 2)));
        assert_eq!(via.branch(), Some("390skdjuw"));
        assert!(!via.has_rfc3261_branch());
    }

    #[test]
    fn rport_and_received_drive_the_response_target() {
        let via =
            Via::parse("SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKx;rport=40000;received=192.0.2.7")
                .unwrap();
        let target = via.response_target();
        assert_eq!(target.ip, Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))));
        assert_eq!(target.port, 40000);
        let tls = Via::parse("SIP/2.0/TLS edge.example.com;branch=z9hG4bKy;rport").unwrap();
        assert_eq!(tls.rport(), Some(None));
        assert_eq!(tls.response_target().port, 5061);
        assert_eq!(tls.response_target().ip, None);
    }

    #[test]
    fn ipv6_received_with_and_without_brackets() {
        let a =
            Via::parse("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3")
                .unwrap();
        let b =
            Via::parse("SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3")
                .unwrap();
        assert_eq!(a.received(), b.received());
        assert!(a.received().is_some());
        assert!(a.needs_received(a.received().unwrap()));
    }

    #[test]
    fn stamping_fills_rport_and_received() {
        let via =
            Via::parse("SIP/2.0/UDP 10.0.0.1:5062;rport;branch=z9hG4bKx;received=1.1.1.1").unwrap();
        let source: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let stamped = via.stamped(source);
        assert_eq!(
            stamped,
            "SIP/2.0/UDP 10.0.0.1:5062;rport=40000;branch=z9hG4bKx;received=192.0.2.7"
        );
        let reparsed = Via::parse(&stamped).unwrap();
        assert_eq!(reparsed.response_target().port, 40000);

        let same = Via::parse("SIP/2.0/TLS [2001:db8::1];branch=z9hG4bKy").unwrap();
        let from_same: SocketAddr = "[2001:db8::1]:5061".parse().unwrap();
        assert_eq!(
            same.stamped(from_same),
            "SIP/2.0/TLS [2001:db8::1];branch=z9hG4bKy"
        );
        let from_other: SocketAddr = "[2001:db8::2]:5061".parse().unwrap();
        let stamped = same.stamped(from_other);
        assert!(stamped.ends_with(";received=2001:db8::2"));
        assert!(Via::parse(&stamped).unwrap().received().is_some());
    }

    #[test]
    fn malformed_vias_are_refused() {
        for bad in [
            "SIP/2.0/UDP 192.0.2.15;;",
            "SIP/7.0/UDP c.example.com",
            "SIP/2.0 host",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP host;branch",
            "SIP/2.0/UDP host;received=nothost",
            "SIP/2.0/UDP host;rport=99999",
        ] {
            assert!(Via::parse(bad).is_err(), "{bad}");
        }
    }
}
