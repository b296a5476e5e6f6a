//! SIP/SIPS URIs (RFC 3261 19.1) and opaque absolute URIs of other schemes.

use crate::error::ParseError;
use crate::host::{parse_hostport, Host};

/// A URI as it appears in a Request-URI or a name-addr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uri<'a> {
    Sip(SipUri<'a>),
    /// Any other scheme (tel, http, ...): kept opaque, only its characters
    /// are checked so it cannot smuggle white space or delimiters.
    Other {
        scheme: &'a str,
        raw: &'a str,
    },
}

impl<'a> Uri<'a> {
    pub fn parse(raw: &'a str) -> Result<Self, ParseError> {
        let (scheme, rest) = raw.split_once(':').ok_or(ParseError::BadUri)?;
        if !is_scheme(scheme) {
            return Err(ParseError::BadUri);
        }
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            return SipUri::parse_after_scheme(raw, scheme, rest).map(Uri::Sip);
        }
        if rest.is_empty() || !rest.bytes().all(is_opaque_char) {
            return Err(ParseError::BadUri);
        }
        Ok(Uri::Other { scheme, raw })
    }

    pub fn scheme(&self) -> &'a str {
        match self {
            Uri::Sip(sip) => sip.scheme,
            Uri::Other { scheme, .. } => scheme,
        }
    }

    pub fn as_str(&self) -> &'a str {
        match self {
            Uri::Sip(sip) => sip.raw,
            Uri::Other { raw, .. } => raw,
        }
    }

    pub fn as_sip(&self) -> Option<&SipUri<'a>> {
        match self {
            Uri::Sip(sip) => Some(sip),
            Uri::Other { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipUri<'a> {
    pub raw: &'a str,
    pub scheme: &'a str,
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    pub host: Host<'a>,
    pub port: Option<u16>,
    /// Parameter text including the leading `;`, empty when there is none.
    pub params: &'a str,
    /// Header text after `?`; never allowed in a Request-URI.
    pub headers: Option<&'a str>,
}

impl<'a> SipUri<'a> {
    pub fn is_sips(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("sips")
    }

    /// URI parameter by name: `Some(None)` for a flag such as `lr`.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        self.params
            .split(';')
            .skip(1)
            .map(|p| match p.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (p, None),
            })
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    fn parse_after_scheme(
        raw: &'a str,
        scheme: &'a str,
        rest: &'a str,
    ) -> Result<Self, ParseError> {
        // '@' cannot appear unescaped after the userinfo, so the first one ends it.
        let (userinfo, after_user) = match rest.find('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, password) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                if user.is_empty() || !all_escaped(user, is_user_char) {
                    return Err(ParseError::BadUri);
                }
                if let Some(p) = password {
                    if !all_escaped(p, is_password_char) {
                        return Err(ParseError::BadUri);
                    }
                }
                (Some(user), password)
            }
        };
        let (before_headers, headers) = match after_user.split_once('?') {
            Some((b, h)) => (b, Some(h)),
            None => (after_user, None),
        };
        let (hostport, params) = match before_headers.find(';') {
            Some(semi) => (&before_headers[..semi], &before_headers[semi..]),
            None => (before_headers, ""),
        };
        let (host, port) = parse_hostport(hostport)?;
        for param in params.split(';').skip(1) {
            let (name, value) = match param.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (param, None),
            };
            let value_ok = value.is_none_or(|v| !v.is_empty() && all_escaped(v, is_param_char));
            if name.is_empty() || !all_escaped(name, is_param_char) || !value_ok {
                return Err(ParseError::BadUri);
            }
        }
        if let Some(h) = headers {
            if h.is_empty() || !all_escaped(h, is_header_char) {
                return Err(ParseError::BadUri);
            }
        }
        Ok(SipUri {
            raw,
            scheme,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }
}

fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

fn is_user_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/')
}

fn is_password_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',')
}

fn is_param_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
}

fn is_header_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$' | b'=' | b'&'
        )
}

/// Characters of an absolute URI of an unknown scheme (RFC 2396 uric plus
/// `#`): printable ASCII without white space, quotes or angle brackets.
fn is_opaque_char(b: u8) -> bool {
    b.is_ascii_graphic()
        && !matches!(
            b,
            b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
        )
}

/// True when every byte is allowed by `class` or is part of a `%HH` escape.
fn all_escaped(s: &str, class: fn(u8) -> bool) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
        } else if class(bytes[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_parts() {
        let uri =
            Uri::parse("sips:alice:pw@[2001:db8::1]:5061;transport=tls;lr?subject=x").unwrap();
        let sip = uri.as_sip().unwrap();
        assert!(sip.is_sips());
        assert_eq!(sip.user, Some("alice"));
        assert_eq!(sip.password, Some("pw"));
        assert_eq!(sip.host.to_string(), "[2001:db8::1]");
        assert_eq!(sip.port, Some(5061));
        assert_eq!(sip.param("TRANSPORT"), Some(Some("tls")));
        assert_eq!(sip.param("lr"), Some(None));
        assert_eq!(sip.headers, Some("subject=x"));
    }

    #[test]
    fn unusual_but_valid_user_parts() {
        let raw = "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com";
        let sip = *Uri::parse(raw).unwrap().as_sip().unwrap();
        assert_eq!(sip.host, Host::Domain("example.com"));
        assert_eq!(sip.headers, None);
        let semi = *Uri::parse("sip:user;par=u%40example.net@example.com")
            .unwrap()
            .as_sip()
            .unwrap();
        assert_eq!(semi.user, Some("user;par=u%40example.net"));
    }

    #[test]
    fn other_schemes_are_opaque() {
        let uri = Uri::parse("soap.beep://192.0.2.103:3002").unwrap();
        assert_eq!(uri.scheme(), "soap.beep");
        assert!(uri.as_sip().is_none());
        assert!(Uri::parse("isbn:2983792873").is_ok());
    }

    #[test]
    fn malformed_uris_are_refused() {
        for bad in [
            "sip:user@example.com; lr",
            "<sip:a@b>",
            "sip:%zz@b",
            "sip:@b",
            "sip:a@b;",
            "1x:y",
            "sip:a@b?",
            "tel:1 2",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad}");
        }
    }
}
