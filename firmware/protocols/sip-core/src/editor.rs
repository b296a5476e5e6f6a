//! Produces an outgoing message by splicing the received bytes: only the
//! edited spans change, everything else is copied through verbatim.

use std::ops::Range;

use thiserror::Error;

use crate::message::Parts;
use crate::names::same_header;
use crate::scan::{offset_in, ListItems};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EditError {
    #[error("header {0} not present")]
    NotFound(String),
    #[error("two edits touch the same bytes")]
    Overlap,
}

#[derive(Debug, Clone)]
struct Splice {
    /// Source bytes replaced (empty for an insertion).
    source: Range<usize>,
    /// Replacement text inside the editor's scratch buffer.
    text: Range<usize>,
}

/// Records edits against a parsed message and writes the result into a
/// caller-provided buffer. Edits refer to the original message, so their
/// order of registration does not shift positions.
#[derive(Debug)]
pub struct MessageEditor<'m, 'a> {
    parts: &'m Parts<'a>,
    splices: Vec<Splice>,
    scratch: Vec<u8>,
}

impl<'m, 'a> MessageEditor<'m, 'a> {
    pub fn new(parts: &'m Parts<'a>) -> Self {
        MessageEditor {
            parts,
            splices: Vec::new(),
            scratch: Vec::new(),
        }
    }

    fn splice(&mut self, source: Range<usize>, pieces: &[&[u8]]) {
        let start = self.scratch.len();
        for piece in pieces {
            self.scratch.extend_from_slice(piece);
        }
        self.splices.push(Splice {
            source,
            text: start..self.scratch.len(),
        });
    }

    fn value_range(&self, value: &str) -> Range<usize> {
        let start = offset_in(self.parts.head(), value);
        start..start + value.len()
    }

    /// Inserts `name: value` as the first header field, which makes it the
    /// topmost Via / Record-Route whatever the order of the others.
    pub fn insert_top(&mut self, name: &str, value: &str) -> &mut Self {
        let at = self.parts.headers_start();
        self.splice(at..at, &[name.as_bytes(), b": ", value.as_bytes(), b"\r\n"]);
        self
    }

    /// Inserts `name: value` as the last header field.
    pub fn insert_bottom(&mut self, name: &str, value: &str) -> &mut Self {
        let at = self.parts.head_end();
        self.splice(at..at, &[name.as_bytes(), b": ", value.as_bytes(), b"\r\n"]);
        self
    }

    /// Removes the first value of a list header (our Via from a response):
    /// the whole field when it holds a single value.
    pub fn remove_top_value(&mut self, name: &str) -> Result<&mut Self, EditError> {
        let field = self
            .parts
            .header_fields(name)
            .next()
            .ok_or_else(|| EditError::NotFound(name.to_owned()))?;
        let mut items = ListItems::new(field.value);
        let _first = items.next();
        match items.next() {
            Some(second) => {
                let start = offset_in(self.parts.head(), field.value);
                let end = offset_in(self.parts.head(), second);
                self.splice(start..end, &[]);
            }
            None => {
                let line = field.line.clone();
                self.splice(line, &[]);
            }
        }
        Ok(self)
    }

    /// Replaces the first value of a list header (e.g. the top Via with
    /// `received`/`rport` filled in), leaving the other values untouched.
    pub fn replace_top_value(&mut self, name: &str, value: &str) -> Result<&mut Self, EditError> {
        let first = self
            .parts
            .header(name)
            .next()
            .ok_or_else(|| EditError::NotFound(name.to_owned()))?;
        let range = self.value_range(first);
        self.splice(range, &[value.as_bytes()]);
        Ok(self)
    }

    /// Removes every field named `name` (compact forms included) and
    /// returns how many were removed.
    pub fn remove_all(&mut self, name: &str) -> usize {
        let lines: Vec<Range<usize>> = self
            .parts
            .headers()
            .iter()
            .filter(|h| same_header(h.name, name))
            .map(|h| h.line.clone())
            .collect();
        for line in &lines {
            self.splice(line.clone(), &[]);
        }
        lines.len()
    }

    /// Replaces the whole value of every field named `name`.
    pub fn replace_value(&mut self, name: &str, value: &str) -> Result<&mut Self, EditError> {
        let ranges: Vec<Range<usize>> = self
            .parts
            .header_fields(name)
            .map(|h| self.value_range(h.value))
            .collect();
        if ranges.is_empty() {
            return Err(EditError::NotFound(name.to_owned()));
        }
        for range in ranges {
            self.splice(range, &[value.as_bytes()]);
        }
        Ok(self)
    }

    /// Decrements Max-Forwards, inserting 70 when absent (RFC 3261 16.6
    /// step 3). Returns the value written. A value of 0 must have been
    /// refused by [`crate::validate_for_proxy`] before.
    pub fn decrement_max_forwards(&mut self) -> u8 {
        match self.parts.max_forwards() {
            Some(current) => {
                let next = current.saturating_sub(1);
                // The field exists, so replacement cannot fail.
                let _ = self.replace_value("Max-Forwards", &next.to_string());
                next
            }
            None => {
                self.insert_bottom("Max-Forwards", "70");
                70
            }
        }
    }

    /// Replaces the body and keeps Content-Length (and optionally
    /// Content-Type) consistent with it.
    pub fn set_body(&mut self, content_type: Option<&str>, body: &[u8]) -> &mut Self {
        let length = body.len().to_string();
        if self.replace_value("Content-Length", &length).is_err() {
            self.insert_bottom("Content-Length", &length);
        }
        if let Some(ct) = content_type {
            if self.replace_value("Content-Type", ct).is_err() {
                self.insert_bottom("Content-Type", ct);
            }
        }
        let body_range = self.parts.body_start()..self.parts.as_bytes().len();
        self.splice(body_range, &[body]);
        self
    }

    /// Writes the edited message into `out` (cleared first, capacity kept).
    pub fn write_into(&self, out: &mut Vec<u8>) -> Result<(), EditError> {
        let mut order: Vec<usize> = (0..self.splices.len()).collect();
        // Insertions (empty ranges) at a position go before a replacement
        // starting there; equal keys keep registration order.
        order.sort_by_key(|&i| (self.splices[i].source.start, self.splices[i].source.end));
        let source = self.parts.as_bytes();
        out.clear();
        out.reserve(source.len() + self.scratch.len());
        let mut copied = 0;
        for i in order {
            let splice = &self.splices[i];
            if splice.source.start < copied {
                return Err(EditError::Overlap);
            }
            out.extend_from_slice(&source[copied..splice.source.start]);
            out.extend_from_slice(&self.scratch[splice.text.clone()]);
            copied = splice.source.end;
        }
        out.extend_from_slice(&source[copied..]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::parse;

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/TLS a.example.com;branch=z9hG4bKa, SIP/2.0/TLS b.example.com;branch=z9hG4bKb\r\n\
        v: SIP/2.0/TLS c.example.com;branch=z9hG4bKc\r\n\
        Max-Forwards: 70\r\n\
        To: <sip:bob@example.com>\r\n\
        From: <sip:alice@example.com>;tag=1\r\n\
        Call-ID: abc\r\n\
        CSeq: 1 INVITE\r\n\
        P-Asserted-Identity: <sip:alice@example.com>\r\n\
        ms-edge-proxy-message-trust: ptype=Internal\r\n\
        P-Asserted-Identity: <tel:+15551234>\r\n\
        Content-Length: 4\r\n\r\nbody";

    fn edited(edit: impl FnOnce(&mut MessageEditor<'_, '_>)) -> String {
        let msg = parse(INVITE.as_bytes()).unwrap();
        let mut editor = MessageEditor::new(msg.parts());
        edit(&mut editor);
        let mut out = Vec::new();
        editor.write_into(&mut out).unwrap();
        // The result must itself be a valid message.
        parse(&out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn proxy_forwarding_edits() {
        let out = edited(|e| {
            e.insert_top("Via", "SIP/2.0/TLS edge.example.com;branch=z9hG4bKedge");
            e.insert_top("Record-Route", "<sip:edge.example.com;lr>");
            assert_eq!(e.remove_all("p-asserted-identity"), 2);
            assert_eq!(e.remove_all("MS-Edge-Proxy-Message-Trust"), 1);
            assert_eq!(e.decrement_max_forwards(), 69);
        });
        let msg = parse(out.as_bytes()).unwrap();
        assert_eq!(
            msg.top_via().unwrap().host,
            crate::Host::Domain("edge.example.com")
        );
        assert_eq!(msg.vias().count(), 4);
        assert_eq!(msg.max_forwards(), Some(69));
        assert!(!msg.has_header("P-Asserted-Identity"));
        assert!(!msg.has_header("ms-edge-proxy-message-trust"));
        assert_eq!(msg.record_routes().count(), 1);
        assert_eq!(msg.body(), b"body");
    }

    #[test]
    fn popping_vias_value_by_value() {
        let out = edited(|e| {
            e.remove_top_value("Via").unwrap();
        });
        assert!(out.contains("Via: SIP/2.0/TLS b.example.com;branch=z9hG4bKb\r\n"));
        let msg = parse(out.as_bytes()).unwrap();
        let hosts: Vec<String> = msg.vias().map(|v| v.host.to_string()).collect();
        assert_eq!(hosts, ["b.example.com", "c.example.com"]);
    }

    #[test]
    fn body_replacement_fixes_content_length() {
        let out = edited(|e| {
            e.set_body(Some("application/sdp"), b"v=0\r\n");
        });
        let msg = parse(out.as_bytes()).unwrap();
        assert_eq!(msg.content_length(), Some(5));
        assert_eq!(msg.content_type(), Some("application/sdp"));
        assert_eq!(msg.body(), b"v=0\r\n");
    }

    #[test]
    fn top_value_replacement_and_errors() {
        let out = edited(|e| {
            e.replace_top_value(
                "via",
                "SIP/2.0/TLS a.example.com;branch=z9hG4bKa;received=192.0.2.1",
            )
            .unwrap();
        });
        assert!(out.contains(";received=192.0.2.1, SIP/2.0/TLS b.example.com"));
        let msg = parse(INVITE.as_bytes()).unwrap();
        let mut editor = MessageEditor::new(msg.parts());
        assert!(matches!(
            editor.remove_top_value("Route"),
            Err(EditError::NotFound(_))
        ));
        editor.remove_all("Call-ID");
        editor.replace_value("Call-ID", "x").unwrap();
        assert_eq!(editor.write_into(&mut Vec::new()), Err(EditError::Overlap));
    }

    #[test]
    fn buffer_is_reused() {
        let msg = parse(INVITE.as_bytes()).unwrap();
        let mut out = Vec::with_capacity(4096);
        let editor = MessageEditor::new(msg.parts());
        editor.write_into(&mut out).unwrap();
        editor.write_into(&mut out).unwrap();
        assert_eq!(out, INVITE.as_bytes());
        assert!(out.capacity() >= 4096);
    }
}
