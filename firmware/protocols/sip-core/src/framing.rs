//! Message boundaries: stream transports (TLS/TCP) and datagrams.
//!
//! On a stream Content-Length is mandatory (RFC 3261 18.3) and CRLF
//! keep-alives may sit between messages (RFC 5626 3.5.1): a double CRLF is
//! a ping the caller answers with a single CRLF pong.

use thiserror::Error;

use crate::error::ParseError;
use crate::limits::Limits;
use crate::message::{parse_with, Message};
use crate::values::parse_content_length;

/// Fatal framing faults: the stream cannot be resynchronised, so the
/// caller answers (when it can) and closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FramingError {
    #[error("message larger than {0} bytes")]
    MessageTooLarge(usize),
    #[error("more than {0} header fields")]
    TooManyHeaders(usize),
    #[error("line longer than {0} bytes")]
    LineTooLong(usize),
    #[error("line not terminated by CRLF")]
    BareLineFeed,
    #[error("Content-Length missing on a stream transport")]
    MissingContentLength,
    #[error("Content-Length is not a number")]
    BadContentLength,
    #[error("conflicting Content-Length values")]
    ConflictingContentLength,
}

impl FramingError {
    /// Status for a final answer before closing, when one can be sent.
    pub fn status(&self) -> u16 {
        match self {
            FramingError::MessageTooLarge(_) => 513,
            _ => 400,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            FramingError::MessageTooLarge(_) => "Message Too Large",
            FramingError::TooManyHeaders(_) => "Too Many Headers",
            FramingError::LineTooLong(_) => "Line Too Long",
            FramingError::BareLineFeed => "Malformed Line Ending",
            FramingError::MissingContentLength => "Content-Length Required",
            FramingError::BadContentLength => "Malformed Content-Length",
            FramingError::ConflictingContentLength => "Conflicting Content-Length",
        }
    }
}

/// One unit taken off a stream.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamItem<'b> {
    /// A CRLFCRLF keep-alive ping: answer with `b"\r\n"`.
    Ping,
    /// The bytes of one complete message, ready for [`crate::parse`].
    Message(&'b [u8]),
}

/// Accumulates stream bytes and cuts them into messages without copying
/// them out: a returned message borrows the framer until the next call.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
    limits: Limits,
    /// Bytes of the item returned last, dropped lazily on the next call so
    /// that item could borrow the buffer.
    consumed: usize,
    /// Progress through the head at the start of the buffer, so a head
    /// arriving a byte at a time is scanned once, not once per byte.
    scan: HeadScan,
}

impl StreamFramer {
    pub fn new(limits: Limits) -> Self {
        StreamFramer {
            buf: Vec::new(),
            limits,
            consumed: 0,
            scan: HeadScan::default(),
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as an item.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.consumed
    }

    /// The bytes received but not yet returned as an item: after an error, the start of the
    /// message that could not be framed (to answer it before closing).
    pub fn pending(&self) -> &[u8] {
        self.buf.get(self.consumed..).unwrap_or_default()
    }

    fn compact(&mut self) {
        if self.consumed > 0 {
            self.drop_front(self.consumed);
            self.consumed = 0;
        }
    }

    fn drop_front(&mut self, len: usize) {
        self.buf.drain(..len);
        self.scan = HeadScan::default();
    }

    /// The next complete item, `Ok(None)` when more bytes are needed.
    /// After an error the connection must be closed.
    pub fn next_message(&mut self) -> Result<Option<StreamItem<'_>>, FramingError> {
        self.compact();
        loop {
            let buf = &self.buf[..];
            if buf.starts_with(b"\r\n\r\n") {
                self.consumed = 4;
                return Ok(Some(StreamItem::Ping));
            }
            if buf.starts_with(b"\r\n") {
                // A lone CRLF is a pong or stray keep-alive; wait until we
                // know it is not the first half of a ping.
                if buf.len() >= 4 || (buf.len() == 3 && buf[2] != b'\r') {
                    self.drop_front(2);
                    continue;
                }
                return Ok(None);
            }
            break;
        }
        match self.scan.resume(&self.buf, &self.limits)? {
            None => Ok(None),
            Some(head) => {
                let len = head
                    .content_length
                    .ok_or(FramingError::MissingContentLength)?;
                let total = head.len.saturating_add(len);
                if total > self.limits.max_message_size {
                    return Err(FramingError::MessageTooLarge(self.limits.max_message_size));
                }
                if self.buf.len() < total {
                    return Ok(None);
                }
                self.consumed = total;
                Ok(Some(StreamItem::Message(&self.buf[..total])))
            }
        }
    }
}

struct HeadInfo {
    /// Head length including the empty line.
    len: usize,
    content_length: Option<usize>,
}

/// Resumable scan of the header section at the front of the buffer.
#[derive(Debug, Default, Clone)]
struct HeadScan {
    /// Start of the first line not yet complete.
    pos: usize,
    /// Bytes before this offset are known to hold no LF.
    searched: usize,
    fields: usize,
    content_length: Option<usize>,
}

impl HeadScan {
    /// Finds the end of the header section, enforcing line, header-count
    /// and size limits on the way so an endless head is refused early.
    fn resume(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<HeadInfo>, FramingError> {
        loop {
            let from = self.searched.max(self.pos);
            let Some(nl) = buf[from..]
                .iter()
                .position(|b| *b == b'\n')
                .map(|i| from + i)
            else {
                self.searched = buf.len();
                if buf.len() - self.pos > limits.max_line_len {
                    return Err(FramingError::LineTooLong(limits.max_line_len));
                }
                if buf.len() > limits.max_message_size {
                    return Err(FramingError::MessageTooLarge(limits.max_message_size));
                }
                return Ok(None);
            };
            if nl == self.pos || buf[nl - 1] != b'\r' {
                return Err(FramingError::BareLineFeed);
            }
            let line = &buf[self.pos..nl - 1];
            if line.len() > limits.max_line_len {
                return Err(FramingError::LineTooLong(limits.max_line_len));
            }
            if nl + 1 > limits.max_message_size {
                return Err(FramingError::MessageTooLarge(limits.max_message_size));
            }
            if line.is_empty() {
                return Ok(Some(HeadInfo {
                    len: nl + 1,
                    content_length: self.content_length,
                }));
            }
            let is_fold = matches!(line[0], b' ' | b'\t');
            if self.pos > 0 && !is_fold {
                self.fields += 1;
                if self.fields > limits.max_headers {
                    return Err(FramingError::TooManyHeaders(limits.max_headers));
                }
                if let Some(len) = content_length_of(line)? {
                    if self.content_length.is_some_and(|c| c != len) {
                        return Err(FramingError::ConflictingContentLength);
                    }
                    self.content_length = Some(len);
                }
            }
            self.pos = nl + 1;
        }
    }
}

fn content_length_of(line: &[u8]) -> Result<Option<usize>, FramingError> {
    let Some(colon) = line.iter().position(|b| *b == b':') else {
        return Ok(None);
    };
    let name = line[..colon].trim_ascii_end();
    if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
        return Ok(None);
    }
    let value =
        std::str::from_utf8(&line[colon + 1..]).map_err(|_| FramingError::BadContentLength)?;
    parse_content_length(value)
        .map(Some)
        .map_err(|_| FramingError::BadContentLength)
}

/// What one UDP datagram holds.
// Boxing the message would cost an allocation per datagram to save stack
// space in a value that lives for one handler call.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Datagram<'a> {
    /// Only CR/LF: a keep-alive, nothing to answer.
    KeepAlive,
    Message(Message<'a>),
}

/// Parses a datagram: bytes past Content-Length are discarded, and without
/// Content-Length the body runs to the end of the datagram (RFC 3261 18.3).
pub fn parse_datagram<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Datagram<'a>, ParseError> {
    if !bytes.is_empty() && bytes.iter().all(|b| matches!(b, b'\r' | b'\n')) {
        return Ok(Datagram::KeepAlive);
    }
    parse_with(bytes, limits).map(Datagram::Message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/TLS h;branch=z9hG4bK1\r\nTo: <sip:a@example.com>\r\nFrom: <sip:b@example.com>;tag=1\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\nbody";

    #[test]
    fn messages_split_across_pushes_and_pings() {
        let mut framer = StreamFramer::default();
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(OPTIONS);
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(OPTIONS);
        let mut items = Vec::new();
        for chunk in stream.chunks(7) {
            framer.push(chunk);
            while let Some(item) = framer.next_message().unwrap() {
                items.push(match item {
                    StreamItem::Ping => None,
                    StreamItem::Message(m) => Some(m.to_vec()),
                });
            }
        }
        assert_eq!(
            items,
            vec![None, Some(OPTIONS.to_vec()), Some(OPTIONS.to_vec())]
        );
        assert_eq!(framer.buffered(), 0);
    }

    #[test]
    fn missing_content_length_is_an_error_on_streams() {
        let mut framer = StreamFramer::default();
        framer.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n");
        assert_eq!(
            framer.next_message(),
            Err(FramingError::MissingContentLength)
        );
    }

    #[test]
    fn limits_give_distinct_errors() {
        let small = Limits {
            max_message_size: 200,
            max_headers: 3,
            max_line_len: 40,
        };
        let mut framer = StreamFramer::new(small);
        framer.push(b"OPTIONS sip:a@b SIP/2.0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n");
        assert_eq!(framer.next_message(), Err(FramingError::TooManyHeaders(3)));

        let mut framer = StreamFramer::new(small);
        framer.push(&[b'X'; 41]);
        assert_eq!(framer.next_message(), Err(FramingError::LineTooLong(40)));

        let mut framer = StreamFramer::new(small);
        framer.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 500\r\n\r\n");
        assert_eq!(
            framer.next_message(),
            Err(FramingError::MessageTooLarge(200))
        );

        let mut framer = StreamFramer::new(small);
        framer.push(b"OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(
            framer.next_message(),
            Err(FramingError::ConflictingContentLength)
        );

        let mut framer = StreamFramer::new(small);
        framer.push(b"OPTIONS sip:a@b SIP/2.0\nl: 1\r\n\r\n");
        assert_eq!(framer.next_message(), Err(FramingError::BareLineFeed));
    }

    #[test]
    fn byte_at_a_time_delivery_matches_one_push() {
        let mut stream = OPTIONS.to_vec();
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(OPTIONS);
        let mut framer = StreamFramer::default();
        let mut items = 0;
        for byte in &stream {
            framer.push(std::slice::from_ref(byte));
            while let Some(item) = framer.next_message().unwrap() {
                if let StreamItem::Message(m) = item {
                    assert_eq!(m, OPTIONS);
                }
                items += 1;
            }
        }
        assert_eq!(items, 3);
        assert_eq!(framer.buffered(), 0);
    }

    #[test]
    fn lone_crlf_waits_then_is_skipped() {
        let mut framer = StreamFramer::default();
        framer.push(b"\r\n");
        assert_eq!(framer.next_message(), Ok(None));
        framer.push(&OPTIONS[..10]);
        assert_eq!(framer.next_message(), Ok(None));
        framer.push(&OPTIONS[10..]);
        assert_eq!(
            framer.next_message(),
            Ok(Some(StreamItem::Message(OPTIONS)))
        );
    }

    #[test]
    fn datagram_keepalive_and_message() {
        assert!(matches!(
            parse_datagram(b"\r\n\r\n", &Limits::default()),
            Ok(Datagram::KeepAlive)
        ));
        assert!(matches!(
            parse_datagram(OPTIONS, &Limits::default()),
            Ok(Datagram::Message(_))
        ));
    }
}
