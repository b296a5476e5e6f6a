//! Proxy-level request validation (RFC 3261 16.3): decisions a proxy makes
//! about a well-formed request before forwarding it.

use thiserror::Error;

use crate::host::Host;
use crate::message::Request;
use crate::uri::Uri;

/// A request the proxy answers itself instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{status} {reason}")]
pub struct Reject {
    pub status: u16,
    pub reason: &'static str,
    /// For 420: the Proxy-Require option tags to list in `Unsupported`.
    pub unsupported: Vec<String>,
}

impl Reject {
    fn new(status: u16, reason: &'static str) -> Self {
        Reject {
            status,
            reason,
            unsupported: Vec::new(),
        }
    }
}

/// What this proxy supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyPolicy {
    /// Request-URI schemes the proxy can route; others get 416.
    pub schemes: Vec<String>,
    /// Proxy-Require option tags the proxy implements; others get 420.
    pub proxy_extensions: Vec<String>,
}

impl Default for ProxyPolicy {
    /// An edge routes SIP and SIPS only and implements no proxy extension.
    fn default() -> Self {
        ProxyPolicy {
            schemes: vec!["sip".into(), "sips".into()],
            proxy_extensions: Vec::new(),
        }
    }
}

/// [`validate_for_proxy_with`] under [`ProxyPolicy::default`].
pub fn validate_for_proxy(request: &Request<'_>) -> Result<(), Reject> {
    validate_for_proxy_with(request, &ProxyPolicy::default())
}

/// RFC 3261 16.3 steps 2, 3 and 6 (step 1, reasonable syntax, is the
/// parser's; loop detection needs the proxy's own Via and is left to it).
pub fn validate_for_proxy_with(request: &Request<'_>, policy: &ProxyPolicy) -> Result<(), Reject> {
    let uri = request.uri();
    if !policy
        .schemes
        .iter()
        .any(|s| s.eq_ignore_ascii_case(uri.scheme()))
    {
        return Err(Reject::new(416, "Unsupported URI Scheme"));
    }
    if is_port_ambiguous(uri) {
        return Err(Reject::new(400, "Ambiguous IPv6 Reference"));
    }
    // A missing Max-Forwards is fine: the proxy adds one (16.6 step 3).
    if request.max_forwards() == Some(0) {
        return Err(Reject::new(483, "Too Many Hops"));
    }
    let unsupported: Vec<String> = request
        .proxy_require()
        .filter(|tag| {
            !policy
                .proxy_extensions
                .iter()
                .any(|e| e.eq_ignore_ascii_case(tag))
        })
        .map(str::to_owned)
        .collect();
    if !unsupported.is_empty() {
        return Err(Reject {
            status: 420,
            reason: "Bad Extension",
            unsupported,
        });
    }
    Ok(())
}

/// RFC 5118 4.3: `sip:[2001:db8::10:5070]` is a valid address, but a
/// compressed IPv6 reference whose last group reads as a port number, with
/// no port given, is almost always a mistyped `[addr]:port`. Routing it
/// would send the request to the wrong host, so the edge refuses it.
fn is_port_ambiguous(uri: &Uri<'_>) -> bool {
    let Some(sip) = uri.as_sip() else {
        return false;
    };
    if sip.port.is_some() {
        return false;
    }
    let Host::V6(_) = sip.host else { return false };
    let text = sip
        .raw
        .split_once('[')
        .and_then(|(_, r)| r.split_once(']'))
        .map(|(a, _)| a);
    text.is_some_and(|addr| {
        let last = addr.rsplit(':').next().unwrap_or("");
        addr.contains("::")
            && !addr.contains('.')
            && last.len() >= 4
            && last.bytes().all(|b| b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse, Message};

    fn request(text: &str) -> Request<'_> {
        match parse(text.as_bytes()) {
            Ok(Message::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    fn options(uri: &str, extra: &str) -> String {
        format!(
            "OPTIONS {uri} SIP/2.0\r\nVia: SIP/2.0/TLS h;branch=z9hG4bK1\r\nTo: <sip:a@example.com>\r\n\
             From: <sip:b@example.com>;tag=1\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n{extra}Content-Length: 0\r\n\r\n"
        )
    }

    #[test]
    fn forwards_a_plain_request() {
        assert_eq!(
            validate_for_proxy(&request(&options(
                "sip:a@example.com",
                "Max-Forwards: 1\r\n"
            ))),
            Ok(())
        );
    }

    #[test]
    fn proxy_decisions() {
        let zero = options("sip:a@example.com", "Max-Forwards: 0\r\n");
        assert_eq!(validate_for_proxy(&request(&zero)).unwrap_err().status, 483);
        let tel = options("tel:+15551234", "");
        assert_eq!(validate_for_proxy(&request(&tel)).unwrap_err().status, 416);
        let ext = options(
            "sip:a@example.com",
            "Proxy-Require: foo, bar\r\nRequire: ignored-by-proxies\r\n",
        );
        let reject = validate_for_proxy(&request(&ext)).unwrap_err();
        assert_eq!(
            (reject.status, reject.unsupported),
            (420, vec!["foo".to_owned(), "bar".to_owned()])
        );
        let policy = ProxyPolicy {
            schemes: vec!["sip".into()],
            proxy_extensions: vec!["FOO".into(), "bar".into()],
        };
        assert_eq!(validate_for_proxy_with(&request(&ext), &policy), Ok(()));
    }

    #[test]
    fn ambiguous_ipv6_port() {
        let ambiguous = options("sip:[2001:db8::10:5070]", "");
        assert_eq!(
            validate_for_proxy(&request(&ambiguous)).unwrap_err().status,
            400
        );
        for fine in [
            "sip:[2001:db8::10]:5070",
            "sip:[2001:db8::10]",
            "sip:[::ffff:192.0.2.1]",
        ] {
            assert_eq!(
                validate_for_proxy(&request(&options(fine, ""))),
                Ok(()),
                "{fine}"
            );
        }
    }
}
