//! Frames of the Web Conferencing Edge, on both legs.
//!
//! Every frame is `type u8 | length u16 (big-endian) | payload`. One format for the client
//! leg (TLS or QUIC, ALPN [`ALPN_CLIENT`]) and the internal leg (HTTP/2 streams over TLS with
//! mutual authentication, ALPN [`ALPN_INTERNAL`]) keeps one parser, tested once.
//!
//! Client leg: the client sends [`HELLO`] (conference id and session key); the edge answers
//! [`ACCEPT`] or [`CLOSE`] with a [`CloseCode`]; after that both sides send [`DATA`] and
//! either may end with [`CLOSE`]. Framing the data lets the edge tell a TLS client *why*
//! a session ended (server gone, idle, draining), which a bare TCP close cannot.
//!
//! Internal leg: the edge opens one control stream, on which the conferencing server sends
//! [`REGISTER`] with the conferences it hosts; the edge answers [`REGISTERED`] and pushes
//! its session-key ring ([`KEYS`]) then and at every rotation. Each admitted client
//! session arrives as a new stream opened by the edge, starting with [`SESSION`], then raw
//! bytes both ways (HTTP/2 streams already frame, flow-control and reset independently).

use crate::keyring::{from_hex, to_hex, SessionSecret};
use crate::token::{check_conference_id, ParticipantRole, MAX_CONFERENCE_ID, MAX_TOKEN_TEXT};

/// ALPN of meeting clients on the external port (TLS and QUIC alike).
pub const ALPN_CLIENT: &[u8] = b"edged-webconf/1";
/// ALPN of conferencing servers on the internal port.
pub const ALPN_INTERNAL: &[u8] = b"edged-webconf-internal/2";

pub const HELLO: u8 = 0x01;
pub const ACCEPT: u8 = 0x02;
pub const DATA: u8 = 0x03;
pub const CLOSE: u8 = 0x04;
pub const REGISTER: u8 = 0x10;
pub const REGISTERED: u8 = 0x11;
/// Edge to conferencing server, on the control stream: the session-key ring, after the
/// first registration and again at every rotation.
pub const KEYS: u8 = 0x12;
pub const SESSION: u8 = 0x20;

/// Frame header length.
pub const HEADER_LEN: usize = 3;
/// Largest HELLO payload: a conference id and a token, with their length fields.
pub const MAX_HELLO_PAYLOAD: usize = 1 + MAX_CONFERENCE_ID + 2 + MAX_TOKEN_TEXT;
/// Largest payload of any other frame.
pub const MAX_PAYLOAD: usize = 16 * 1024;
/// Payload that keeps header and payload inside one TLS record (16 KiB of plaintext):
/// what senders should use, so no frame costs a second record for its last 3 bytes.
pub const RECORD_FRIENDLY_PAYLOAD: usize = 16 * 1024 - HEADER_LEN;

/// Why a session ends, sent in CLOSE frames and as the QUIC application close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CloseCode {
    Normal = 0,
    MalformedFrame = 1,
    FrameTooLarge = 2,
    KeyMalformed = 3,
    KeyExpired = 4,
    KeyUnknown = 5,
    KeyBadSignature = 6,
    WrongConference = 7,
    FirstFrameTimeout = 8,
    AddressLimit = 9,
    ConferenceLimit = 10,
    NoServer = 11,
    ServerGone = 12,
    Draining = 13,
    IdleTimeout = 14,
    NoAlpn = 15,
    Internal = 16,
    /// What a client hears for any session key that parsed but was not admitted: the
    /// codes 4 to 7 and 18 stay inside the edge (counters, debug logs).
    KeyRefused = 17,
    /// Issued longer ago than the edge's maximum token lifetime, or in the future.
    KeyLifetime = 18,
}

impl CloseCode {
    pub const ALL: [CloseCode; 19] = [
        CloseCode::Normal,
        CloseCode::MalformedFrame,
        CloseCode::FrameTooLarge,
        CloseCode::KeyMalformed,
        CloseCode::KeyExpired,
        CloseCode::KeyUnknown,
        CloseCode::KeyBadSignature,
        CloseCode::WrongConference,
        CloseCode::FirstFrameTimeout,
        CloseCode::AddressLimit,
        CloseCode::ConferenceLimit,
        CloseCode::NoServer,
        CloseCode::ServerGone,
        CloseCode::Draining,
        CloseCode::IdleTimeout,
        CloseCode::NoAlpn,
        CloseCode::Internal,
        CloseCode::KeyRefused,
        CloseCode::KeyLifetime,
    ];

    pub fn from_u8(b: u8) -> Option<CloseCode> {
        Self::ALL.get(usize::from(b)).copied()
    }

    /// QUIC application error code: the same number.
    pub fn to_quic(self) -> u32 {
        u32::from(self as u8)
    }

    pub fn from_quic(code: u64) -> Option<CloseCode> {
        u8::try_from(code).ok().and_then(Self::from_u8)
    }

    /// Short snake_case name, used as a metric label and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseCode::Normal => "normal",
            CloseCode::MalformedFrame => "malformed_frame",
            CloseCode::FrameTooLarge => "frame_too_large",
            CloseCode::KeyMalformed => "key_malformed",
            CloseCode::KeyExpired => "key_expired",
            CloseCode::KeyUnknown => "key_unknown",
            CloseCode::KeyBadSignature => "key_bad_signature",
            CloseCode::WrongConference => "wrong_conference",
            CloseCode::FirstFrameTimeout => "first_frame_timeout",
            CloseCode::AddressLimit => "address_limit",
            CloseCode::ConferenceLimit => "conference_limit",
            CloseCode::NoServer => "no_server",
            CloseCode::ServerGone => "server_gone",
            CloseCode::Draining => "draining",
            CloseCode::IdleTimeout => "idle_timeout",
            CloseCode::NoAlpn => "no_alpn",
            CloseCode::Internal => "internal",
            CloseCode::KeyRefused => "key_refused",
            CloseCode::KeyLifetime => "key_lifetime",
        }
    }

    /// The code a client outside is sent for this reason. Every refusal that depends on
    /// the key ring (which key ids exist, which expired or retired, what they signed)
    /// becomes `key_refused`, so probing tokens learns nothing about the ring; a
    /// malformed key says nothing about the ring and keeps its own code.
    pub fn for_client(self) -> CloseCode {
        match self {
            CloseCode::KeyExpired
            | CloseCode::KeyUnknown
            | CloseCode::KeyBadSignature
            | CloseCode::WrongConference
            | CloseCode::KeyLifetime => CloseCode::KeyRefused,
            other => other,
        }
    }

    /// The reason text a client is sent with [`Self::for_client`]: the internal reason
    /// when the code is passed on unchanged, a fixed text when it was folded.
    pub fn client_reason(self, reason: &str) -> &str {
        if self.for_client() == self {
            reason
        } else {
            "session key refused"
        }
    }

    /// The close code for a refused session key.
    pub fn for_verify_error(e: &crate::VerifyError) -> CloseCode {
        match e {
            crate::VerifyError::Malformed(_) => CloseCode::KeyMalformed,
            crate::VerifyError::Expired { .. } => CloseCode::KeyExpired,
            crate::VerifyError::TooOld { .. } | crate::VerifyError::IssuedInFuture { .. } => {
                CloseCode::KeyLifetime
            }
            crate::VerifyError::UnknownKey(_) => CloseCode::KeyUnknown,
            crate::VerifyError::BadSignature => CloseCode::KeyBadSignature,
            crate::VerifyError::WrongConference => CloseCode::WrongConference,
        }
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.as_str(), *self as u8)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of type {kind:#04x} announces {len} bytes, more than {max}")]
    TooLarge { kind: u8, len: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

impl FrameError {
    pub fn close_code(&self) -> CloseCode {
        match self {
            FrameError::TooLarge { .. } => CloseCode::FrameTooLarge,
            FrameError::Malformed(_) => CloseCode::MalformedFrame,
        }
    }
}

/// One frame borrowed from a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub kind: u8,
    pub payload: &'a [u8],
}

/// Decodes one frame from the start of `buf`: `Ok(None)` while more bytes are needed,
/// otherwise the frame and the bytes it used. A length above `max_payload` fails as soon as
/// the header arrives, so an oversize frame is refused before it is buffered.
pub fn decode(buf: &[u8], max_payload: usize) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let kind = buf[0];
    let len = usize::from(u16::from_be_bytes([buf[1], buf[2]]));
    if len > max_payload {
        return Err(FrameError::TooLarge {
            kind,
            len,
            max: max_payload,
        });
    }
    let end = HEADER_LEN + len;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((
        Frame {
            kind,
            payload: &buf[HEADER_LEN..end],
        },
        end,
    )))
}

/// Appends a frame to `out`. Payloads above u16 are a caller bug, refused rather than cut.
pub fn encode(kind: u8, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    let len = u16::try_from(payload.len()).map_err(|_| FrameError::TooLarge {
        kind,
        len: payload.len(),
        max: usize::from(u16::MAX),
    })?;
    out.push(kind);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Header of a frame, for writers that send the payload separately (no copy).
pub fn header(kind: u8, len: u16) -> [u8; HEADER_LEN] {
    let l = len.to_be_bytes();
    [kind, l[0], l[1]]
}

/// The client's first frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub conference_id: String,
    pub token: String,
}

impl Hello {
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        check_conference_id(&self.conference_id).map_err(FrameError::Malformed)?;
        if self.token.len() > MAX_TOKEN_TEXT {
            return Err(FrameError::Malformed("session key too long"));
        }
        let mut p = Vec::with_capacity(3 + self.conference_id.len() + self.token.len());
        p.push(self.conference_id.len() as u8);
        p.extend_from_slice(self.conference_id.as_bytes());
        p.extend_from_slice(&(self.token.len() as u16).to_be_bytes());
        p.extend_from_slice(self.token.as_bytes());
        let mut out = Vec::with_capacity(HEADER_LEN + p.len());
        encode(HELLO, &p, &mut out)?;
        Ok(out)
    }

    /// Parses a HELLO payload.
    pub fn parse(payload: &[u8]) -> Result<Hello, FrameError> {
        let mut r = Reader(payload);
        let conf = r.take_u8_prefixed()?;
        let conference_id = text(conf)?;
        check_conference_id(&conference_id).map_err(FrameError::Malformed)?;
        let tlen = usize::from(r.u16()?);
        let token = text(r.take(tlen)?)?;
        r.end()?;
        Ok(Hello {
            conference_id,
            token,
        })
    }
}

/// Decodes the first frame of a client: `Ok(None)` while incomplete; anything but a
/// well-formed HELLO within [`MAX_HELLO_PAYLOAD`] is an error.
pub fn decode_hello(buf: &[u8]) -> Result<Option<(Hello, usize)>, FrameError> {
    if let Some(&kind) = buf.first() {
        if kind != HELLO {
            return Err(FrameError::Malformed("first frame is not HELLO"));
        }
    }
    match decode(buf, MAX_HELLO_PAYLOAD)? {
        None => Ok(None),
        Some((f, used)) => Ok(Some((Hello::parse(f.payload)?, used))),
    }
}

/// A CLOSE frame: code and a human-readable reason (cut to fit).
pub fn close_frame(code: CloseCode, reason: &str) -> Vec<u8> {
    let mut p = vec![code as u8];
    let mut r = reason;
    while r.len() > 256 {
        // Cut on a character boundary so the reason stays text.
        let mut cut = 256;
        while !r.is_char_boundary(cut) {
            cut -= 1;
        }
        r = &r[..cut];
    }
    p.extend_from_slice(r.as_bytes());
    let mut out = Vec::with_capacity(HEADER_LEN + p.len());
    // The payload is at most 257 bytes, so encoding cannot fail.
    let _ = encode(CLOSE, &p, &mut out);
    out
}

/// Parses a CLOSE payload; an unknown code reads as `Internal` so a newer peer's code
/// still closes cleanly.
pub fn parse_close(payload: &[u8]) -> (CloseCode, String) {
    let code = payload
        .first()
        .and_then(|&b| CloseCode::from_u8(b))
        .unwrap_or(CloseCode::Internal);
    let reason = String::from_utf8_lossy(payload.get(1..).unwrap_or_default()).into_owned();
    (code, reason)
}

/// The ACCEPT frame carrying the admitted role.
pub fn accept_frame(role: ParticipantRole) -> Vec<u8> {
    vec![ACCEPT, 0, 1, role.to_byte()]
}

/// REGISTER payload: the conferences a server hosts (possibly none: pool member only).
pub fn encode_register(conferences: &[String]) -> Result<Vec<u8>, FrameError> {
    let mut p = Vec::new();
    let n = u16::try_from(conferences.len())
        .map_err(|_| FrameError::Malformed("too many conferences"))?;
    p.extend_from_slice(&n.to_be_bytes());
    for c in conferences {
        check_conference_id(c).map_err(FrameError::Malformed)?;
        p.push(c.len() as u8);
        p.extend_from_slice(c.as_bytes());
    }
    let mut out = Vec::new();
    encode(REGISTER, &p, &mut out)?;
    Ok(out)
}

pub fn parse_register(payload: &[u8]) -> Result<Vec<String>, FrameError> {
    let mut r = Reader(payload);
    let n = r.u16()?;
    let mut out = Vec::with_capacity(usize::from(n).min(1024));
    for _ in 0..n {
        let c = text(r.take_u8_prefixed()?)?;
        check_conference_id(&c).map_err(FrameError::Malformed)?;
        out.push(c);
    }
    r.end()?;
    Ok(out)
}

/// Most keys one KEYS frame carries: a current key and the ones still retiring.
pub const MAX_KEYS: usize = 64;

/// `count u16`, then per key `id u32 | created_at u64 | retire_at u64 (0: current) |
/// secret_len u8 | secret`.
pub fn encode_keys(records: &[SessionSecret]) -> Result<Vec<u8>, FrameError> {
    if records.len() > MAX_KEYS {
        return Err(FrameError::Malformed("too many keys"));
    }
    let mut p = Vec::new();
    p.extend_from_slice(&(records.len() as u16).to_be_bytes());
    for r in records {
        let secret = from_hex(&r.secret_hex).ok_or(FrameError::Malformed("key is not hex"))?;
        let len = u8::try_from(secret.len()).map_err(|_| FrameError::Malformed("key too long"))?;
        p.extend_from_slice(&r.id.to_be_bytes());
        p.extend_from_slice(&r.created_at.to_be_bytes());
        p.extend_from_slice(&r.retire_at.unwrap_or(0).to_be_bytes());
        p.push(len);
        p.extend_from_slice(&secret);
    }
    let mut out = Vec::new();
    encode(KEYS, &p, &mut out)?;
    Ok(out)
}

pub fn parse_keys(payload: &[u8]) -> Result<Vec<SessionSecret>, FrameError> {
    let mut r = Reader(payload);
    let n = usize::from(r.u16()?);
    if n > MAX_KEYS {
        return Err(FrameError::Malformed("too many keys"));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let id = u32::from_be_bytes(
            r.take(4)?
                .try_into()
                .map_err(|_| FrameError::Malformed("key id"))?,
        );
        let created_at = u64::from_be_bytes(
            r.take(8)?
                .try_into()
                .map_err(|_| FrameError::Malformed("created_at"))?,
        );
        let retire_at = u64::from_be_bytes(
            r.take(8)?
                .try_into()
                .map_err(|_| FrameError::Malformed("retire_at"))?,
        );
        let secret = r.take_u8_prefixed()?;
        out.push(SessionSecret {
            id,
            secret_hex: to_hex(secret),
            created_at,
            retire_at: (retire_at != 0).then_some(retire_at),
        });
    }
    r.end()?;
    Ok(out)
}

/// How the client reached the edge, told to the conferencing server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientTransport {
    Tls,
    Quic,
}

/// The first bytes of each internal session stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionHeader {
    pub session_id: u64,
    pub role: ParticipantRole,
    pub transport: ClientTransport,
    pub conference_id: String,
    /// The client's address as the edge saw it.
    pub peer: String,
}

impl SessionHeader {
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        check_conference_id(&self.conference_id).map_err(FrameError::Malformed)?;
        let mut p = Vec::new();
        p.extend_from_slice(&self.session_id.to_be_bytes());
        p.push(self.role.to_byte());
        p.push(match self.transport {
            ClientTransport::Tls => 1,
            ClientTransport::Quic => 2,
        });
        p.push(self.conference_id.len() as u8);
        p.extend_from_slice(self.conference_id.as_bytes());
        let peer = self.peer.as_bytes();
        p.push(u8::try_from(peer.len()).map_err(|_| FrameError::Malformed("peer too long"))?);
        p.extend_from_slice(peer);
        let mut out = Vec::new();
        encode(SESSION, &p, &mut out)?;
        Ok(out)
    }

    pub fn parse(payload: &[u8]) -> Result<SessionHeader, FrameError> {
        let mut r = Reader(payload);
        let id = r.take(8)?;
        let mut b = [0u8; 8];
        b.copy_from_slice(id);
        let role =
            ParticipantRole::from_byte(r.u8()?).ok_or(FrameError::Malformed("unknown role"))?;
        let transport = match r.u8()? {
            1 => ClientTransport::Tls,
            2 => ClientTransport::Quic,
            _ => return Err(FrameError::Malformed("unknown transport")),
        };
        let conference_id = text(r.take_u8_prefixed()?)?;
        check_conference_id(&conference_id).map_err(FrameError::Malformed)?;
        let peer = text(r.take_u8_prefixed()?)?;
        r.end()?;
        Ok(SessionHeader {
            session_id: u64::from_be_bytes(b),
            role,
            transport,
            conference_id,
            peer,
        })
    }
}

fn text(b: &[u8]) -> Result<String, FrameError> {
    std::str::from_utf8(b)
        .map(str::to_owned)
        .map_err(|_| FrameError::Malformed("text field is not UTF-8"))
}

/// A cursor over a payload that fails, never panics, on short input.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.0.len() < n {
            return Err(FrameError::Malformed("payload shorter than its fields"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, FrameError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn take_u8_prefixed(&mut self) -> Result<&'a [u8], FrameError> {
        let n = usize::from(self.u8()?);
        self.take(n)
    }
    fn end(&self) -> Result<(), FrameError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Malformed("trailing bytes after the fields"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello {
            conference_id: "conf-9".into(),
            token: "AAAA".into(),
        }
    }

    #[test]
    fn clients_hear_one_code_for_every_refusal_that_depends_on_the_ring() {
        use crate::VerifyError;
        let ring_dependent = [
            VerifyError::Expired {
                expires_at: 1,
                now: 2,
            },
            VerifyError::UnknownKey(77),
            VerifyError::BadSignature,
            VerifyError::WrongConference,
            VerifyError::TooOld {
                issued_at: 1,
                max_lifetime: 1,
                now: 3,
            },
            VerifyError::IssuedInFuture {
                issued_at: 9,
                now: 1,
            },
        ];
        for e in &ring_dependent {
            let inside = CloseCode::for_verify_error(e);
            assert_ne!(inside, CloseCode::KeyRefused, "{e}: counted by its reason");
            assert_eq!(inside.for_client(), CloseCode::KeyRefused, "{e}");
            let said = inside.client_reason(&e.to_string()).to_owned();
            assert_eq!(said, "session key refused");
            assert!(!said.contains("77"));
        }
        let malformed = CloseCode::for_verify_error(&VerifyError::Malformed("too short"));
        assert_eq!(malformed.for_client(), CloseCode::KeyMalformed);
        assert_eq!(malformed.client_reason("too short"), "too short");
        for code in CloseCode::ALL {
            assert_eq!(CloseCode::from_u8(code as u8), Some(code), "{code:?}");
            assert_eq!(code.for_client().for_client(), code.for_client());
        }
    }

    #[test]
    fn hello_round_trips_and_reports_bytes_used() {
        let mut buf = hello().encode().unwrap();
        let n = buf.len();
        buf.extend_from_slice(b"next");
        let (h, used) = decode_hello(&buf).unwrap().unwrap();
        assert_eq!(h, hello());
        assert_eq!(used, n);
    }

    #[test]
    fn hello_needs_more_bytes_at_every_prefix() {
        let buf = hello().encode().unwrap();
        for n in 0..buf.len() {
            assert_eq!(decode_hello(&buf[..n]), Ok(None), "prefix {n}");
        }
    }

    #[test]
    fn oversize_hello_fails_on_the_header_alone() {
        let buf = [HELLO, 0xff, 0xff];
        assert!(matches!(
            decode_hello(&buf),
            Err(FrameError::TooLarge { len: 65535, .. })
        ));
        assert_eq!(
            decode_hello(&buf).unwrap_err().close_code(),
            CloseCode::FrameTooLarge
        );
    }

    #[test]
    fn garbage_first_bytes_are_malformed() {
        for g in [&b"GET / HTTP/1.1\r\n"[..], b"\x16\x03\x01", b"\x00"] {
            let e = decode_hello(g).unwrap_err();
            assert_eq!(e.close_code(), CloseCode::MalformedFrame, "{g:?}");
        }
        // A HELLO whose fields do not add up.
        let mut bad = Vec::new();
        encode(HELLO, &[5, b'a'], &mut bad).unwrap();
        assert!(matches!(decode_hello(&bad), Err(FrameError::Malformed(_))));
        let mut trailing = Vec::new();
        encode(HELLO, &[1, b'a', 0, 1, b'x', b'y'], &mut trailing).unwrap();
        assert!(matches!(
            decode_hello(&trailing),
            Err(FrameError::Malformed(_))
        ));
        let mut space = Vec::new();
        encode(HELLO, &[1, b' ', 0, 0], &mut space).unwrap();
        assert!(matches!(
            decode_hello(&space),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn random_bytes_never_panic_any_decoder() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..400usize {
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 7;
                x ^= x >> 9;
                buf.push(x as u8);
            }
            let _ = decode_hello(&buf);
            let _ = decode(&buf, MAX_PAYLOAD);
            let _ = Hello::parse(&buf);
            let _ = parse_register(&buf);
            let _ = SessionHeader::parse(&buf);
            let _ = parse_close(&buf);
        }
    }

    #[test]
    fn data_frames_decode_back_to_back() {
        let mut buf = Vec::new();
        encode(DATA, b"one", &mut buf).unwrap();
        encode(DATA, b"", &mut buf).unwrap();
        buf.extend_from_slice(&close_frame(CloseCode::IdleTimeout, "idle"));
        let (a, n1) = decode(&buf, MAX_PAYLOAD).unwrap().unwrap();
        assert_eq!((a.kind, a.payload), (DATA, &b"one"[..]));
        let (b, n2) = decode(&buf[n1..], MAX_PAYLOAD).unwrap().unwrap();
        assert_eq!((b.kind, b.payload.len()), (DATA, 0));
        let (c, n3) = decode(&buf[n1 + n2..], MAX_PAYLOAD).unwrap().unwrap();
        assert_eq!(c.kind, CLOSE);
        assert_eq!(
            parse_close(c.payload),
            (CloseCode::IdleTimeout, "idle".into())
        );
        assert_eq!(n1 + n2 + n3, buf.len());
        assert_eq!(header(DATA, 3), [DATA, 0, 3]);
    }

    #[test]
    fn close_reason_is_cut_on_a_character_boundary() {
        let f = close_frame(CloseCode::Draining, &"é".repeat(300));
        let (fr, _) = decode(&f, MAX_PAYLOAD).unwrap().unwrap();
        let (code, reason) = parse_close(fr.payload);
        assert_eq!(code, CloseCode::Draining);
        assert!(reason.len() <= 256 && reason.chars().all(|c| c == 'é'));
        assert_eq!(parse_close(&[200, b'x']).0, CloseCode::Internal);
        assert_eq!(parse_close(&[]).0, CloseCode::Internal);
    }

    #[test]
    fn close_codes_map_both_ways() {
        for c in CloseCode::ALL {
            assert_eq!(CloseCode::from_u8(c as u8), Some(c));
            assert_eq!(CloseCode::from_quic(u64::from(c.to_quic())), Some(c));
        }
        assert_eq!(CloseCode::from_u8(19), None);
        assert_eq!(CloseCode::from_quic(1 << 40), None);
    }

    #[test]
    fn register_and_session_header_round_trip() {
        let confs = vec!["a".to_string(), "b-2".to_string()];
        let buf = encode_register(&confs).unwrap();
        let (f, _) = decode(&buf, MAX_PAYLOAD).unwrap().unwrap();
        assert_eq!(f.kind, REGISTER);
        assert_eq!(parse_register(f.payload).unwrap(), confs);
        assert!(encode_register(&["bad id".into()]).is_err());
        let h = SessionHeader {
            session_id: 77,
            role: ParticipantRole::Presenter,
            transport: ClientTransport::Quic,
            conference_id: "c".into(),
            peer: "127.0.0.1:5000".into(),
        };
        let buf = h.encode().unwrap();
        let (f, _) = decode(&buf, MAX_PAYLOAD).unwrap().unwrap();
        assert_eq!(f.kind, SESSION);
        assert_eq!(SessionHeader::parse(f.payload).unwrap(), h);
    }

    #[test]
    fn accept_frame_carries_the_role() {
        let f = accept_frame(ParticipantRole::Attendee);
        let (fr, _) = decode(&f, MAX_PAYLOAD).unwrap().unwrap();
        assert_eq!(fr.kind, ACCEPT);
        assert_eq!(
            ParticipantRole::from_byte(fr.payload[0]),
            Some(ParticipantRole::Attendee)
        );
    }

    #[test]
    fn keys_round_trip_and_refuse_truncation() {
        let a = SessionSecret::new(1, &[7u8; 32], 100).unwrap();
        let mut b = SessionSecret::new(2, &[9u8; 32], 200).unwrap();
        b.retire_at = Some(900);
        let frame = encode_keys(&[a.clone(), b.clone()]).unwrap();
        let (f, used) = decode(&frame, MAX_PAYLOAD).unwrap().unwrap();
        assert_eq!((f.kind, used), (KEYS, frame.len()));
        assert_eq!(parse_keys(f.payload).unwrap(), vec![a, b]);
        for cut in 0..f.payload.len() {
            assert!(parse_keys(&f.payload[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = f.payload.to_vec();
        long.push(0);
        assert!(parse_keys(&long).is_err());
    }
}
