//! Responses built from a request (RFC 3261 8.2.6) and Via branch values.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::message::Request;

/// RFC 3261 branch prefix that marks a globally unique branch.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// What to answer; headers copied from the request are added automatically.
#[derive(Debug, Clone, Copy)]
pub struct ResponseSpec<'s> {
    pub status: u16,
    pub reason: &'s str,
    /// Tag added to To when the request's To has none (ignored for 100).
    pub to_tag: Option<&'s str>,
    pub extra_headers: &'s [(&'s str, &'s str)],
    /// Content-Type and body.
    pub body: Option<(&'s str, &'s [u8])>,
}

impl<'s> ResponseSpec<'s> {
    pub fn new(status: u16, reason: &'s str) -> Self {
        ResponseSpec {
            status,
            reason,
            to_tag: None,
            extra_headers: &[],
            body: None,
        }
    }
}

/// Writes the response into `out` (cleared first): status line, every Via
/// field in order, From, To (tagged if needed), Call-ID, CSeq, the extra
/// headers, then Content-Type/Content-Length and the body.
pub fn build_response(request: &Request<'_>, spec: &ResponseSpec<'_>, out: &mut Vec<u8>) {
    out.clear();
    let mut head = String::with_capacity(512);
    // Writing into a String cannot fail.
    let _ = write!(head, "SIP/2.0 {} {}\r\n", spec.status, spec.reason);
    for via in request.header_fields("Via") {
        let _ = write!(head, "Via: {}\r\n", via.value);
    }
    if let Some(from) = request.first("From") {
        let _ = write!(head, "From: {from}\r\n");
    }
    if let Some(to) = request.first("To") {
        let has_tag = request.to().is_some_and(|t| t.tag().is_some());
        match spec.to_tag {
            Some(tag) if !has_tag && spec.status != 100 => {
                let _ = write!(head, "To: {to};tag={tag}\r\n");
            }
            _ => {
                let _ = write!(head, "To: {to}\r\n");
            }
        }
    }
    if let Some(call_id) = request.call_id() {
        let _ = write!(head, "Call-ID: {call_id}\r\n");
    }
    if let Some(cseq) = request.first("CSeq") {
        let _ = write!(head, "CSeq: {cseq}\r\n");
    }
    for (name, value) in spec.extra_headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    let body: &[u8] = match spec.body {
        Some((content_type, body)) => {
            let _ = write!(head, "Content-Type: {content_type}\r\n");
            body
        }
        None => &[],
    };
    let _ = write!(head, "Content-Length: {}\r\n\r\n", body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
}

/// Branch from caller-supplied randomness (16 bytes from a CSPRNG).
pub fn branch_from_random(random: &[u8; 16]) -> String {
    let mut branch = String::with_capacity(MAGIC_COOKIE.len() + 32);
    branch.push_str(MAGIC_COOKIE);
    push_hex(&mut branch, random);
    branch
}

/// Branch from a counter keyed by a per-process secret: unique while the
/// counter does not repeat, and unguessable without the secret.
pub fn branch_from_counter(secret: &[u8], counter: u64) -> String {
    let digest = Sha256::new()
        .chain_update(secret)
        .chain_update(counter.to_be_bytes())
        .finalize();
    let mut branch = String::with_capacity(MAGIC_COOKIE.len() + 32);
    branch.push_str(MAGIC_COOKIE);
    push_hex(&mut branch, &digest[..16]);
    branch
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse, Message};
    use crate::via::Via;

    const REQUEST: &str = "SERVICE sip:edge.example.com SIP/2.0\r\n\
        Via: SIP/2.0/TLS 10.0.0.5:5061;branch=z9hG4bKabc;rport=5061;received=10.0.0.5\r\n\
        Via: SIP/2.0/TLS client.example.com;branch=z9hG4bKdef, SIP/2.0/TLS ua.example.com;branch=z9hG4bKghi\r\n\
        Max-Forwards: 69\r\n\
        From: \"Alice\" <sip:alice@example.com>;tag=99\r\n\
        t: <sip:edge.example.com>\r\n\
        i: call-1@example.com\r\n\
        CSeq: 7 SERVICE\r\n\
        Content-Type: application/msrtc-media-relay-auth+xml\r\n\
        Content-Length: 5\r\n\r\n<x/>\n";

    fn request() -> crate::Request<'static> {
        match parse(REQUEST.as_bytes()) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn response_copies_dialog_headers_and_tags_to() {
        let req = request();
        let mut out = Vec::new();
        let spec = ResponseSpec {
            to_tag: Some("edge1"),
            extra_headers: &[("Server", "edged")],
            body: Some(("application/msrtc-media-relay-auth+xml", b"<ok/>")),
            ..ResponseSpec::new(200, "OK")
        };
        build_response(&req, &spec, &mut out);
        let msg = parse(&out).unwrap();
        let resp = msg.as_response().unwrap();
        assert_eq!((resp.code(), resp.reason()), (200, "OK"));
        let vias: Vec<String> = resp.vias().map(|v| v.host.to_string()).collect();
        assert_eq!(vias, ["10.0.0.5", "client.example.com", "ua.example.com"]);
        assert_eq!(resp.to().unwrap().tag(), Some("edge1"));
        assert_eq!(resp.from().unwrap().tag(), Some("99"));
        assert_eq!(resp.call_id(), Some("call-1@example.com"));
        assert_eq!(resp.cseq().unwrap().number, 7);
        assert_eq!(resp.first("server"), Some("edged"));
        assert_eq!(resp.body(), b"<ok/>");
    }

    #[test]
    fn trying_keeps_to_untagged() {
        let mut out = Vec::new();
        let spec = ResponseSpec {
            to_tag: Some("x"),
            ..ResponseSpec::new(100, "Trying")
        };
        build_response(&request(), &spec, &mut out);
        let msg = parse(&out).unwrap();
        assert_eq!(msg.to().unwrap().tag(), None);
        assert_eq!(msg.content_length(), Some(0));
    }

    #[test]
    fn branches_are_valid_and_distinct() {
        let a = branch_from_counter(b"secret", 1);
        let b = branch_from_counter(b"secret", 2);
        let c = branch_from_random(&[0xab; 16]);
        assert_ne!(a, b);
        assert_eq!(c, format!("z9hG4bK{}", "ab".repeat(16)));
        for branch in [a, b, c] {
            let via = format!("SIP/2.0/TLS edge.example.com;branch={branch}");
            assert!(Via::parse(&via).unwrap().has_rfc3261_branch());
        }
    }
}
