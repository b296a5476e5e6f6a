//! The internal link between the Web Conferencing Edge and a conferencing server.
//!
//! The conferencing server connects out to the edge over TCP with mutual TLS and keeps the
//! connection. On it runs HTTP/2 with the edge in the client role, since the edge is the
//! side that opens streams: first one control stream, then one stream per admitted meeting
//! client. HTTP/2 gives what the link needs without a protocol of our own: per-stream and
//! per-connection flow control (one slow meeting client cannot take the whole window), a
//! reset code per stream (the session's close reason), and PING for keep-alives.
//!
//! What a stream carries is the edge's own framing (`session_key::wire`): `REGISTER` /
//! `REGISTERED` on the control stream, `SESSION` and then raw bytes on a session stream.

mod keepalive;
mod pieces;
mod stream;

pub mod edge;
pub mod server;

pub use h2::Reason;
pub use pieces::Pieces;
pub use stream::{SessionRecv, SessionSend};

use std::time::Duration;

/// Path of the control stream the edge opens first on every link.
pub const CONTROL_PATH: &str = "/control";
/// Path of every session stream.
pub const SESSION_PATH: &str = "/session";

/// Receive window of one stream: enough for a few round trips of a fast session on a LAN,
/// small enough that a stalled meeting client pins little memory.
pub(crate) const STREAM_WINDOW: u32 = 1 << 20;
/// Receive window of the whole link, shared by its streams.
pub(crate) const LINK_WINDOW: u32 = 16 << 20;
/// Largest DATA frame either side accepts: four TLS records' worth, so bulk data costs few
/// frame headers.
pub(crate) const MAX_FRAME: u32 = 64 * 1024;
/// Plaintext rustls may hold for sending on the link's TLS connection, set by both ends.
/// rustls' default (64 KiB) is just under one full DATA frame with its header, so each
/// such frame left in two writes, and woke the peer twice; this holds a few frames.
pub const TLS_SEND_BUFFER: usize = 4 * MAX_FRAME as usize;
/// Streams one link may carry at once (one per client session, plus control).
pub const MAX_STREAMS: u32 = 10_000;

/// A keep-alive PING goes out this long after the previous answer...
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
/// ...and a link whose PING is not answered within this long is gone (power cut, cable).
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(8);

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The peer reset the stream with this code (a `CloseCode` of the session).
    #[error("stream reset by the peer with code {0}")]
    Reset(u32),
    #[error("HTTP/2: {0}")]
    H2(h2::Error),
    #[error("no keep-alive answer within {0:?}")]
    KeepaliveTimeout(Duration),
    #[error("the link is closed")]
    Closed,
    #[error("link protocol: {0}")]
    Protocol(String),
}

impl From<h2::Error> for LinkError {
    fn from(e: h2::Error) -> Self {
        match e.reason() {
            Some(r) if e.is_reset() && e.is_remote() => LinkError::Reset(u32::from(r)),
            _ => LinkError::H2(e),
        }
    }
}
