//! Answers to requests the parser refused.
//!
//! A refused request still deserves its 400 (RFC 3261 21.4.1), but [`sip_core::build_response`]
//! needs a parsed request. This copies the transaction-identifying fields line by line from
//! the raw bytes, never any other part of the message, and gives up quietly when even those
//! cannot be found.

/// Whether raw bytes start like a response (responses that fail to parse are dropped).
pub fn looks_like_response(bytes: &[u8]) -> bool {
    bytes.starts_with(b"SIP/")
}

fn canonical(name: &str) -> Option<&'static str> {
    let n = name.trim();
    if n.eq_ignore_ascii_case("via") || n.eq_ignore_ascii_case("v") {
        Some("Via")
    } else if n.eq_ignore_ascii_case("from") || n.eq_ignore_ascii_case("f") {
        Some("From")
    } else if n.eq_ignore_ascii_case("to") || n.eq_ignore_ascii_case("t") {
        Some("To")
    } else if n.eq_ignore_ascii_case("call-id") || n.eq_ignore_ascii_case("i") {
        Some("Call-ID")
    } else if n.eq_ignore_ascii_case("cseq") {
        Some("CSeq")
    } else {
        None
    }
}

/// A response to an unparsable request, or None when it has no Via to answer along.
/// Missing Call-ID/CSeq are simply absent from the answer: the peer still learns why.
pub fn loose_response(bytes: &[u8], status: u16, reason: &str) -> Option<Vec<u8>> {
    let head_end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(bytes.len());
    let head = String::from_utf8_lossy(&bytes[..head_end]);
    let mut out = format!("SIP/2.0 {status} {reason}\r\n");
    let mut via = false;
    for line in head.split("\r\n").skip(1) {
        // Folded continuation lines and anything unusual are skipped, not repaired.
        if line.starts_with([' ', '\t'])
            || line.len() > 1024
            || line.chars().any(|c| c.is_control())
        {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let Some(name) = canonical(name) else {
            continue;
        };
        via |= name == "Via";
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value.trim());
        out.push_str("\r\n");
    }
    if !via {
        return None;
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_only_transaction_fields() {
        let req = b"INVITE sip:a@b SIP/2.0\r\nv: SIP/2.0/TLS h;branch=z9hG4bK1\r\nf: <sip:x@y>;tag=1\r\nt: <sip:a@b>\r\ni: abc\r\nCSeq: 1 INVITE\r\nContact: <sip:secret@10.0.0.1>\r\nContent-Length: zz\r\n\r\n";
        let out = loose_response(req, 400, "Bad Request").unwrap_or_default();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("SIP/2.0 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("Via: SIP/2.0/TLS h;branch=z9hG4bK1\r\n"));
        assert!(text.contains("Call-ID: abc\r\n"));
        assert!(!text.contains("secret"));
        assert!(loose_response(b"garbage\r\n\r\n", 400, "Bad Request").is_none());
        assert!(looks_like_response(b"SIP/2.0 200 OK\r\n"));
    }
}
