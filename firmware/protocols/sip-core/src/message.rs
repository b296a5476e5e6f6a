//! Zero-copy message parsing: the start line and header fields borrow the
//! input; the only allocation is the vector of header entries.

use std::ops::{Deref, Range};

use crate::error::ParseError;
use crate::limits::Limits;
use crate::name_addr::NameAddr;
use crate::names::{full_name, is_list_header, same_header};
use crate::scan::{is_token, trim_lws, ListItems};
use crate::uri::Uri;
use crate::validate_headers::check_headers;
use crate::values::{parse_content_length, parse_expires, parse_max_forwards, CSeq};
use crate::via::Via;

/// One header field as received (folds kept inside `value`).
#[derive(Debug, Clone)]
pub struct Header<'a> {
    pub name: &'a str,
    /// Value without surrounding white space.
    pub value: &'a str,
    /// Bytes of the whole field line(s), final CRLF included, as offsets
    /// into [`Parts::as_bytes`].
    pub line: Range<usize>,
    value_start: usize,
}

impl Header<'_> {
    /// Long name of the field (compact forms expanded), for matching and logs.
    pub fn canonical_name(&self) -> &str {
        full_name(self.name)
    }
}

/// What requests and responses share: the header fields and the body.
#[derive(Debug, Clone)]
pub struct Parts<'a> {
    bytes: &'a [u8],
    head: &'a str,
    headers: Vec<Header<'a>>,
    /// Offset just past the start line's CRLF: where new top headers go.
    headers_start: usize,
    /// Offset of the empty line ending the header section.
    head_end: usize,
    body_start: usize,
}

#[derive(Debug, Clone)]
pub struct Request<'a> {
    method: &'a str,
    uri: Uri<'a>,
    parts: Parts<'a>,
}

#[derive(Debug, Clone)]
pub struct Response<'a> {
    code: u16,
    reason: &'a str,
    parts: Parts<'a>,
}

#[derive(Debug, Clone)]
pub enum Message<'a> {
    Request(Request<'a>),
    Response(Response<'a>),
}

/// Parses one datagram (or one message cut out by the stream framer) with
/// default limits. Bytes past Content-Length are ignored; without
/// Content-Length the body runs to the end of the input.
pub fn parse(input: &[u8]) -> Result<Message<'_>, ParseError> {
    parse_with(input, &Limits::default())
}

pub fn parse_with<'a>(input: &'a [u8], limits: &Limits) -> Result<Message<'a>, ParseError> {
    // RFC 3261 7.5: CRLFs before the start line are ignored.
    let first = input
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .ok_or(ParseError::Empty)?;
    let bytes = &input[first..];
    if bytes.len() > limits.max_message_size {
        return Err(ParseError::MessageTooLarge);
    }
    let head_end = find_blank_line(bytes).ok_or(ParseError::UnterminatedHead)?;
    // The head keeps the CRLF ending its last line.
    let head = std::str::from_utf8(&bytes[..head_end + 2]).map_err(|_| ParseError::NotUtf8)?;
    let mut lines = Lines { head, pos: 0 };
    let start_line = lines.next_line(limits)?.ok_or(ParseError::BadStartLine)?;
    let headers_start = lines.pos;
    let headers = collect_headers(&mut lines, limits)?;
    let body_start = head_end + 4;
    let content_length = single_content_length(&headers)?;
    let end = match content_length {
        Some(len) => {
            let end = body_start
                .checked_add(len)
                .ok_or(ParseError::BodyTooShort)?;
            if end > bytes.len() {
                return Err(ParseError::BodyTooShort);
            }
            end
        }
        None => bytes.len(),
    };
    let parts = Parts {
        bytes: &bytes[..end],
        head,
        headers,
        headers_start,
        head_end: head_end + 2,
        body_start,
    };
    let message = if start_line
        .as_bytes()
        .first()
        .is_some_and(|_| is_status_line(start_line))
    {
        let (code, reason) = parse_status_line(start_line)?;
        Message::Response(Response {
            code,
            reason,
            parts,
        })
    } else {
        let (method, uri) = parse_request_line(start_line)?;
        Message::Request(Request { method, uri, parts })
    };
    check_headers(message.parts(), message.as_request().map(Request::method))?;
    Ok(message)
}

fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

struct Lines<'a> {
    head: &'a str,
    pos: usize,
}

impl<'a> Lines<'a> {
    /// Next physical line without its CRLF; bare CR or LF inside is refused.
    fn next_line(&mut self, limits: &Limits) -> Result<Option<&'a str>, ParseError> {
        if self.pos >= self.head.len() {
            return Ok(None);
        }
        let rest = &self.head.as_bytes()[self.pos..];
        // One pass: the first CR or LF must start the CRLF ending the line.
        let len = rest
            .iter()
            .position(|b| *b == b'\r' || *b == b'\n')
            .ok_or(ParseError::BadHeaderLine)?;
        if rest[len] != b'\r' || rest.get(len + 1) != Some(&b'\n') {
            return Err(ParseError::BadHeaderLine);
        }
        if len > limits.max_line_len {
            return Err(ParseError::LineTooLong);
        }
        let line = &self.head[self.pos..self.pos + len];
        self.pos += len + 2;
        Ok(Some(line))
    }
}

fn collect_headers<'a>(
    lines: &mut Lines<'a>,
    limits: &Limits,
) -> Result<Vec<Header<'a>>, ParseError> {
    let head = lines.head;
    let mut headers: Vec<Header<'a>> = Vec::with_capacity(16);
    loop {
        let line_start = lines.pos;
        let Some(line) = lines.next_line(limits)? else {
            break;
        };
        if line.starts_with([' ', '\t']) {
            // A fold continues the previous field.
            let last = headers.last_mut().ok_or(ParseError::BadHeaderLine)?;
            last.line.end = lines.pos;
            last.value = trim_lws(&head[last.value_start..lines.pos - 2]);
            continue;
        }
        if headers.len() == limits.max_headers {
            return Err(ParseError::TooManyHeaders);
        }
        let colon = line.find(':').ok_or(ParseError::BadHeaderLine)?;
        let name = line[..colon].trim_end_matches([' ', '\t']);
        if !is_token(name) {
            return Err(ParseError::BadHeaderLine);
        }
        headers.push(Header {
            name,
            value: trim_lws(&line[colon + 1..]),
            line: line_start..lines.pos,
            value_start: line_start + colon + 1,
        });
    }
    Ok(headers)
}

/// Content-Length may repeat only with the same value (RFC 3261 20.14 and
/// the `mcl01` torture case); a mismatch makes framing ambiguous.
fn single_content_length(headers: &[Header<'_>]) -> Result<Option<usize>, ParseError> {
    let mut found = None;
    for h in headers
        .iter()
        .filter(|h| same_header(h.name, "Content-Length"))
    {
        let len = parse_content_length(h.value)?;
        if found.is_some_and(|f| f != len) {
            return Err(ParseError::ConflictingContentLength);
        }
        found = Some(len);
    }
    Ok(found)
}

fn is_status_line(line: &str) -> bool {
    // A method is a token and cannot contain '/'; a status line starts with
    // the version, which does.
    line.split(' ')
        .next()
        .is_some_and(|first| first.contains('/'))
}

fn check_version(version: &str) -> Result<(), ParseError> {
    if version.eq_ignore_ascii_case("SIP/2.0") {
        return Ok(());
    }
    let well_formed = version
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
        && version[4..].split_once('.').is_some_and(|(major, minor)| {
            !major.is_empty()
                && !minor.is_empty()
                && major.bytes().all(|b| b.is_ascii_digit())
                && minor.bytes().all(|b| b.is_ascii_digit())
        });
    Err(if well_formed {
        ParseError::UnsupportedVersion
    } else {
        ParseError::BadVersion
    })
}

/// `Method SP Request-URI SP SIP-Version`, single spaces exactly (RFC 3261
/// 7.1): extra or trailing white space is refused.
fn parse_request_line(line: &str) -> Result<(&str, Uri<'_>), ParseError> {
    let mut fields = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(ParseError::BadStartLine);
    };
    if !is_token(method) {
        return Err(ParseError::BadMethod);
    }
    check_version(version)?;
    let uri = Uri::parse(uri).map_err(|_| ParseError::BadRequestUri)?;
    if uri.as_sip().is_some_and(|sip| sip.headers.is_some()) {
        // Escaped headers belong in Contact/Refer-To, never in a Request-URI.
        return Err(ParseError::BadRequestUri);
    }
    Ok((method, uri))
}

/// `SIP-Version SP Status-Code SP Reason-Phrase`; an empty reason is allowed.
fn parse_status_line(line: &str) -> Result<(u16, &str), ParseError> {
    let mut fields = line.splitn(3, ' ');
    let version = fields.next().ok_or(ParseError::BadStartLine)?;
    check_version(version)?;
    let code_text = fields.next().ok_or(ParseError::BadStartLine)?;
    let reason = fields.next().unwrap_or("");
    if code_text.len() != 3 || !code_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::BadStatusCode);
    }
    let code: u16 = code_text.parse().map_err(|_| ParseError::BadStatusCode)?;
    if !(100..=699).contains(&code) {
        return Err(ParseError::BadStatusCode);
    }
    Ok((code, reason))
}

impl<'a> Message<'a> {
    pub fn parts(&self) -> &Parts<'a> {
        match self {
            Message::Request(r) => &r.parts,
            Message::Response(r) => &r.parts,
        }
    }

    pub fn as_request(&self) -> Option<&Request<'a>> {
        match self {
            Message::Request(r) => Some(r),
            Message::Response(_) => None,
        }
    }

    pub fn as_response(&self) -> Option<&Response<'a>> {
        match self {
            Message::Request(_) => None,
            Message::Response(r) => Some(r),
        }
    }
}

impl<'a> Deref for Message<'a> {
    type Target = Parts<'a>;
    fn deref(&self) -> &Parts<'a> {
        self.parts()
    }
}

impl<'a> Request<'a> {
    pub fn method(&self) -> &'a str {
        self.method
    }

    pub fn uri(&self) -> &Uri<'a> {
        &self.uri
    }

    pub fn parts(&self) -> &Parts<'a> {
        &self.parts
    }
}

impl<'a> Deref for Request<'a> {
    type Target = Parts<'a>;
    fn deref(&self) -> &Parts<'a> {
        &self.parts
    }
}

impl<'a> Response<'a> {
    pub fn code(&self) -> u16 {
        self.code
    }

    pub fn reason(&self) -> &'a str {
        self.reason
    }

    pub fn parts(&self) -> &Parts<'a> {
        &self.parts
    }
}

impl<'a> Deref for Response<'a> {
    type Target = Parts<'a>;
    fn deref(&self) -> &Parts<'a> {
        &self.parts
    }
}

/// Values of one header across all its fields; list headers are split at
/// commas (quotes and `<>` respected), others yield each field whole.
pub struct HeaderValues<'h, 'a> {
    fields: std::slice::Iter<'h, Header<'a>>,
    name: &'h str,
    list: bool,
    current: Option<ListItems<'a>>,
}

impl<'a> Iterator for HeaderValues<'_, 'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            if let Some(item) = self.current.as_mut().and_then(Iterator::next) {
                return Some(item);
            }
            let field = self
                .fields
                .by_ref()
                .find(|h| same_header(h.name, self.name))?;
            if self.list {
                self.current = Some(ListItems::new(field.value));
            } else {
                return Some(field.value);
            }
        }
    }
}

impl<'a> Parts<'a> {
    /// The message bytes (head and body, nothing past Content-Length).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Header section including the start line, each line CRLF-terminated.
    pub fn head(&self) -> &'a str {
        self.head
    }

    pub fn headers(&self) -> &[Header<'a>] {
        &self.headers
    }

    pub fn body(&self) -> &'a [u8] {
        &self.bytes[self.body_start..]
    }

    pub(crate) fn headers_start(&self) -> usize {
        self.headers_start
    }

    pub(crate) fn head_end(&self) -> usize {
        self.head_end
    }

    pub(crate) fn body_start(&self) -> usize {
        self.body_start
    }

    /// Values of `name` (compact forms match), see [`HeaderValues`].
    pub fn header<'h>(&'h self, name: &'h str) -> HeaderValues<'h, 'a> {
        HeaderValues {
            fields: self.headers.iter(),
            name,
            list: is_list_header(name),
            current: None,
        }
    }

    /// Fields named `name`, whole and unsplit.
    pub fn header_fields<'h>(&'h self, name: &'h str) -> impl Iterator<Item = &'h Header<'a>> + 'h {
        self.headers
            .iter()
            .filter(move |h| same_header(h.name, name))
    }

    /// Value of the first field named `name`.
    pub fn first(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|h| same_header(h.name, name))
            .map(|h| h.value)
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.first(name).is_some()
    }

    pub fn vias(&self) -> impl Iterator<Item = Via<'a>> + '_ {
        self.header("Via").filter_map(|v| Via::parse(v).ok())
    }

    pub fn top_via(&self) -> Option<Via<'a>> {
        self.vias().next()
    }

    pub fn from(&self) -> Option<NameAddr<'a>> {
        self.first("From")
            .and_then(|v| NameAddr::parse(v, "From").ok())
    }

    pub fn to(&self) -> Option<NameAddr<'a>> {
        self.first("To").and_then(|v| NameAddr::parse(v, "To").ok())
    }

    pub fn call_id(&self) -> Option<&'a str> {
        self.first("Call-ID")
    }

    pub fn cseq(&self) -> Option<CSeq<'a>> {
        self.first("CSeq").and_then(|v| CSeq::parse(v).ok())
    }

    pub fn max_forwards(&self) -> Option<u8> {
        self.first("Max-Forwards")
            .and_then(|v| parse_max_forwards(v).ok())
    }

    pub fn content_length(&self) -> Option<usize> {
        self.first("Content-Length")
            .and_then(|v| parse_content_length(v).ok())
    }

    pub fn content_type(&self) -> Option<&'a str> {
        self.first("Content-Type")
    }

    pub fn contacts(&self) -> impl Iterator<Item = NameAddr<'a>> + '_ {
        self.header("Contact")
            .filter_map(|v| NameAddr::parse(v, "Contact").ok())
    }

    pub fn routes(&self) -> impl Iterator<Item = NameAddr<'a>> + '_ {
        self.header("Route")
            .filter_map(|v| NameAddr::parse(v, "Route").ok())
    }

    pub fn record_routes(&self) -> impl Iterator<Item = NameAddr<'a>> + '_ {
        self.header("Record-Route")
            .filter_map(|v| NameAddr::parse(v, "Record-Route").ok())
    }

    pub fn require(&self) -> HeaderValues<'_, 'a> {
        self.header("Require")
    }

    pub fn proxy_require(&self) -> HeaderValues<'_, 'a> {
        self.header("Proxy-Require")
    }

    pub fn user_agent(&self) -> Option<&'a str> {
        self.first("User-Agent")
    }

    pub fn expires(&self) -> Option<u32> {
        self.first("Expires").and_then(|v| parse_expires(v).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        "Via: SIP/2.0/TLS h;branch=z9hG4bK1\r\nv: SIP/2.0/TLS g;branch=z9hG4bK2, SIP/2.0/UDP f\r\n\
        t: <sip:a@example.com>\r\nf: <sip:b@example.com>;tag=1\r\ni: c1\r\n";

    fn message(start: &str, extra: &str) -> String {
        format!("{start}\r\n{BASE}{extra}\r\n")
    }

    #[test]
    fn list_headers_and_compact_forms() {
        let text = message(
            "OPTIONS sip:a@example.com SIP/2.0",
            "CSeq: 1 OPTIONS\r\nDate: Sat, 15 Oct 2005 04:44:56 GMT\r\n",
        );
        let msg = parse(text.as_bytes()).unwrap();
        assert_eq!(msg.header("via").count(), 3);
        assert_eq!(msg.header_fields("VIA").count(), 2);
        // Date is not a list header: its comma stays inside the value.
        assert_eq!(
            msg.header("date").collect::<Vec<_>>(),
            ["Sat, 15 Oct 2005 04:44:56 GMT"]
        );
        assert_eq!(msg.call_id(), Some("c1"));
        // No Content-Length on a datagram: empty body to the end.
        assert!(msg.body().is_empty());
        assert_eq!(msg.headers()[0].canonical_name(), "Via");
        assert_eq!(msg.headers()[1].canonical_name(), "Via");
    }

    #[test]
    fn leading_crlf_is_skipped_and_offsets_stay_consistent() {
        let text = format!(
            "\r\n\r\n{}",
            message("OPTIONS sip:a@example.com SIP/2.0", "CSeq: 1 OPTIONS\r\n")
        );
        let msg = parse(text.as_bytes()).unwrap();
        let first = &msg.headers()[0];
        assert_eq!(
            &msg.as_bytes()[first.line.clone()],
            b"Via: SIP/2.0/TLS h;branch=z9hG4bK1\r\n"
        );
    }

    #[test]
    fn status_lines() {
        let ok = message("SIP/2.0 180 Ringing", "CSeq: 1 INVITE\r\n");
        let resp = parse(ok.as_bytes()).unwrap();
        assert_eq!(
            resp.as_response().map(|r| (r.code(), r.reason())),
            Some((180, "Ringing"))
        );
        for (line, error) in [
            ("SIP/2.0 099 Low", ParseError::BadStatusCode),
            ("SIP/2.0 700 High", ParseError::BadStatusCode),
            ("SIP/2.0 2000 Long", ParseError::BadStatusCode),
            ("SIP/3.0 200 OK", ParseError::UnsupportedVersion),
            ("SIP/two 200 OK", ParseError::BadVersion),
        ] {
            let text = message(line, "CSeq: 1 INVITE\r\n");
            assert_eq!(parse(text.as_bytes()).unwrap_err(), error, "{line}");
        }
    }

    #[test]
    fn head_limits_and_structure() {
        let limits = Limits {
            max_message_size: 4096,
            max_headers: 5,
            max_line_len: 100,
        };
        let text = message("OPTIONS sip:a@example.com SIP/2.0", "CSeq: 1 OPTIONS\r\n");
        assert_eq!(
            parse_with(text.as_bytes(), &limits).unwrap_err(),
            ParseError::TooManyHeaders
        );
        let long = message(
            "OPTIONS sip:a@example.com SIP/2.0",
            &format!("CSeq: 1 OPTIONS\r\nX: {}\r\n", "y".repeat(200)),
        );
        let limits = Limits {
            max_headers: 64,
            ..limits
        };
        assert_eq!(
            parse_with(long.as_bytes(), &limits).unwrap_err(),
            ParseError::LineTooLong
        );
        let big = Limits {
            max_message_size: 50,
            ..limits
        };
        assert_eq!(
            parse_with(text.as_bytes(), &big).unwrap_err(),
            ParseError::MessageTooLarge
        );
        assert_eq!(ParseError::MessageTooLarge.status(), 513);
        assert_eq!(parse(b"\r\n").unwrap_err(), ParseError::Empty);
        assert_eq!(
            parse(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n").unwrap_err(),
            ParseError::UnterminatedHead
        );
        let fold_first = "OPTIONS sip:a@b SIP/2.0\r\n folded: x\r\n\r\n";
        assert_eq!(
            parse(fold_first.as_bytes()).unwrap_err(),
            ParseError::BadHeaderLine
        );
        let bare_lf = "OPTIONS sip:a@b SIP/2.0\r\nX: a\nb\r\n\r\n";
        assert_eq!(
            parse(bare_lf.as_bytes()).unwrap_err(),
            ParseError::BadHeaderLine
        );
    }
}
