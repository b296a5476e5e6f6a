//! Moves one admitted session's bytes: framed on the client leg, raw on the server stream.

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use edged_role::DrainToken;
use session_key::wire::{self, CLOSE, DATA, HEADER_LEN, MAX_PAYLOAD, RECORD_FRIENDLY_PAYLOAD};
use session_key::CloseCode;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Sleep};
use webconf_link::{Pieces, SessionRecv, SessionSend};

use crate::metrics::EdgeMetrics;

/// Room for one read from a busy client: eight records' worth, so a flush of the client's
/// arrives whole. A framed 64 KiB message is 65,551 bytes: with 64 KiB of room its last
/// 15 bytes were read, sent to the link and echoed on their own, for 3-5 % of the edge's
/// CPU in the throughput benchmark.
const READ_ROOM_BUSY: usize = 8 * (MAX_PAYLOAD + HEADER_LEN);

/// Room for one read from a client that has been quiet for [`QUIET_AFTER`]: a quiet
/// session gives its big buffer back, so idle meeting clients pin a few KiB each.
const READ_ROOM_QUIET: usize = 4 * 1024;

/// How long a client may send nothing before its session gives its read room back.
const QUIET_AFTER: Duration = Duration::from_secs(2);

/// The client leg's read buffer: frames land in it and leave as shared views into it.
/// Roomy while the client sends, small once it has been quiet for [`QUIET_AFTER`].
struct ClientReads {
    buf: BytesMut,
    /// Read with [`READ_ROOM_QUIET`] and no timer, else [`READ_ROOM_BUSY`].
    quiet: bool,
    quiet_timer: Pin<Box<Sleep>>,
}

impl ClientReads {
    /// Starts small (many meeting clients mostly listen), holding what came with HELLO.
    fn new(leftover: &[u8]) -> Self {
        Self {
            buf: BytesMut::from(leftover),
            quiet: true,
            quiet_timer: Box::pin(tokio::time::sleep(QUIET_AFTER)),
        }
    }

    /// Reads once from `rd` straight into the buffer's spare room (no staging copy; once
    /// the views taken earlier are gone, their space is reused). Returns the bytes read, 0
    /// at the end of the stream.
    async fn read_from<R: AsyncRead + Unpin>(&mut self, rd: &mut R) -> std::io::Result<usize> {
        loop {
            if self.quiet {
                self.buf.reserve(READ_ROOM_QUIET);
                let n = rd.read_buf(&mut self.buf).await?;
                self.quiet = false;
                return Ok(n);
            }
            self.buf.reserve(READ_ROOM_BUSY);
            self.quiet_timer
                .as_mut()
                .reset(Instant::now() + QUIET_AFTER);
            tokio::select! {
                read = rd.read_buf(&mut self.buf) => return read,
                // A cancelled `read_buf` has read nothing: keep only a partial frame, if
                // any, in a small buffer, and wait on.
                _ = self.quiet_timer.as_mut() => {
                    self.buf = BytesMut::from(&self.buf[..]);
                    self.quiet = true;
                }
            }
        }
    }
}

/// DATA frames gathered from the server stream before one flush to the client: eight
/// records, so 64 KiB of payload and the frame headers that push it into a fifth record
/// leave together.
const FRAMES_PER_FLUSH: usize = 8;

/// Plaintext rustls may hold for sending to the client: one flush of frames, so the
/// flush is one write (rustls' default, 64 KiB, split a full flush in two).
pub(crate) const CLIENT_TLS_SEND_BUFFER: usize = FRAMES_PER_FLUSH * (MAX_PAYLOAD + HEADER_LEN);

/// What a stream holds right now, without waiting.
enum ReadyChunk {
    Data(Bytes),
    NotYet,
    /// The server finished its stream (or it failed: the next awaited read says which).
    Finished,
}

/// Polls the stream once: a piece already received is taken, nothing is awaited.
fn try_chunk(stream: &mut SessionRecv) -> ReadyChunk {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match stream.poll_chunk(&mut cx) {
        std::task::Poll::Ready(Ok(Some(b))) => ReadyChunk::Data(b),
        std::task::Poll::Ready(Ok(None)) => ReadyChunk::Finished,
        std::task::Poll::Ready(Err(_)) => ReadyChunk::NotYet,
        std::task::Poll::Pending => ReadyChunk::NotYet,
    }
}

/// Writes DATA frames (header, payload, header, payload...) with vectored writes until
/// all of them are taken.
async fn write_frames<W: AsyncWrite + Unpin>(
    w: &mut W,
    headers: &[[u8; HEADER_LEN]],
    payloads: &[Bytes],
) -> std::io::Result<()> {
    let mut slices = [IoSlice::new(&[]); 2 * FRAMES_PER_FLUSH];
    for (i, (h, p)) in headers.iter().zip(payloads).enumerate() {
        slices[2 * i] = IoSlice::new(h);
        slices[2 * i + 1] = IoSlice::new(p);
    }
    let mut rest = &mut slices[..2 * headers.len()];
    while !rest.is_empty() {
        let n = w.write_vectored(rest).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

/// Per-session parameters, fixed when the session is admitted.
pub(crate) struct RelayParams {
    pub idle_timeout: Duration,
    pub bytes_per_sec: Option<u64>,
}

/// How a session ended, and who is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client sent CLOSE: confirm and finish the server stream.
    ClientClosed,
    /// The client's connection ended without CLOSE: nobody to tell on the client side.
    ClientGone,
    /// The server finished its stream: the session is over, normally.
    ServerFinished,
    /// Anything else, told to the client with this code.
    Code(CloseCode),
}

/// Paces one direction to a byte rate: bursts up to one second's worth, then waits.
struct Pacer {
    rate: Option<u64>,
    since: Instant,
    bytes: u64,
}

impl Pacer {
    fn new(rate: Option<u64>) -> Self {
        Self {
            rate,
            since: Instant::now(),
            bytes: 0,
        }
    }

    async fn pace(&mut self, n: usize) {
        let Some(rate) = self.rate.filter(|&r| r > 0) else {
            return;
        };
        let now = Instant::now();
        // A session quiet for a while does not bank unlimited credit.
        if now.duration_since(self.since) > Duration::from_secs(2) && self.bytes == 0 {
            self.since = now - Duration::from_secs(1);
        }
        self.bytes += n as u64;
        let due = self.since + Duration::from_secs_f64(self.bytes as f64 / rate as f64);
        if due > now {
            tokio::time::sleep_until(due).await;
        } else if now.duration_since(due) > Duration::from_secs(1) {
            self.since = now - Duration::from_secs(1);
            self.bytes = rate;
        }
    }
}

/// Relays until either side ends, the session idles out or `closing` fires, then tells
/// the client why (CLOSE frame) and ends the server stream. Returns the close code and the
/// client stream, so the caller can close its transport (QUIC: with that code).
pub(crate) async fn relay<C: AsyncRead + AsyncWrite + Unpin>(
    client: C,
    leftover: Vec<u8>,
    mut to_server: SessionSend,
    mut from_server: SessionRecv,
    params: RelayParams,
    metrics: &EdgeMetrics,
    closing: &DrainToken,
) -> (CloseCode, C) {
    let (mut client_rd, mut client_wr) = tokio::io::split(client);
    let started = Instant::now();
    let last_activity_ms = AtomicU64::new(0);
    let touch = || last_activity_ms.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);

    let upward = async {
        let mut reads = ClientReads::new(&leftover);
        let mut pacer = Pacer::new(params.bytes_per_sec);
        loop {
            // The payloads of every complete DATA frame of one read go to the stream as
            // one send (each send wakes the link's connection task: one per read, not one
            // per frame), as views of the read buffer: no copy before TLS encrypts them.
            let mut piece = Pieces::new();
            let mut end = None;
            while end.is_none() {
                let (kind, used) = match wire::decode(&reads.buf, MAX_PAYLOAD) {
                    Err(e) => {
                        end = Some(End::Code(e.close_code()));
                        break;
                    }
                    Ok(None) => break,
                    Ok(Some((frame, used))) => (frame.kind, used),
                };
                let frame = reads.buf.split_to(used).freeze();
                match kind {
                    DATA => piece.push(frame.slice(HEADER_LEN..)),
                    CLOSE => end = Some(End::ClientClosed),
                    _ => end = Some(End::Code(CloseCode::MalformedFrame)),
                }
            }
            // Data the client sent before its CLOSE (or before a bad frame) still goes in.
            if !piece.is_empty() {
                let n = piece.len();
                if to_server.send_pieces(piece).await.is_err() {
                    return End::Code(CloseCode::ServerGone);
                }
                metrics.bytes_in.add(n as u64);
                pacer.pace(n).await;
            }
            if let Some(end) = end {
                return end;
            }
            match reads.read_from(&mut client_rd).await {
                Ok(0) | Err(_) => return End::ClientGone,
                Ok(_) => touch(),
            }
        }
    };

    let downward = async {
        // Pieces the stream already holds go out together, each as one DATA frame of at
        // most one TLS record, in one vectored write and one flush: the frame headers are
        // written beside the payloads, which are not copied before TLS encrypts them.
        let mut headers = [[0u8; HEADER_LEN]; FRAMES_PER_FLUSH];
        let mut payloads: [Bytes; FRAMES_PER_FLUSH] = Default::default();
        // Received but not yet framed (a piece larger than one frame's payload).
        let mut carry = Bytes::new();
        let mut pacer = Pacer::new(params.bytes_per_sec);
        let mut finished = false;
        loop {
            if carry.is_empty() {
                carry = match from_server.chunk().await {
                    Ok(Some(b)) => b,
                    Ok(None) => return End::ServerFinished,
                    Err(_) => return End::Code(CloseCode::ServerGone),
                };
            }
            let mut count = 0;
            let mut payload = 0;
            while count < FRAMES_PER_FLUSH {
                if carry.is_empty() {
                    match try_chunk(&mut from_server) {
                        ReadyChunk::Data(b) => carry = b,
                        ReadyChunk::NotYet => break,
                        ReadyChunk::Finished => {
                            finished = true;
                            break;
                        }
                    }
                }
                let piece = carry.split_to(carry.len().min(RECORD_FRIENDLY_PAYLOAD));
                // A piece is at most one record's payload (under 16 KiB): it fits the u16.
                headers[count] = wire::header(DATA, piece.len() as u16);
                payload += piece.len();
                payloads[count] = piece;
                count += 1;
            }
            let written = write_frames(&mut client_wr, &headers[..count], &payloads[..count]).await;
            for p in &mut payloads[..count] {
                *p = Bytes::new();
            }
            // TLS keeps records it could not send yet in its buffer until flushed.
            if written.is_err() || client_wr.flush().await.is_err() {
                return End::ClientGone;
            }
            touch();
            metrics.bytes_out.add(payload as u64);
            if finished && carry.is_empty() {
                return End::ServerFinished;
            }
            pacer.pace(payload).await;
        }
    };

    let idle_watch = async {
        loop {
            let last = Duration::from_millis(last_activity_ms.load(Ordering::Relaxed));
            let due = started + last + params.idle_timeout;
            if Instant::now() >= due {
                return End::Code(CloseCode::IdleTimeout);
            }
            tokio::time::sleep_until(due).await;
        }
    };

    let end = tokio::select! {
        e = upward => e,
        e = downward => e,
        e = idle_watch => e,
        _ = closing.cancelled() => End::Code(CloseCode::Draining),
    };

    let (code, tell_client) = match end {
        End::ClientClosed => (CloseCode::Normal, Some("closed")),
        End::ClientGone => (CloseCode::Normal, None),
        End::ServerFinished => (
            CloseCode::Normal,
            Some("the conferencing server ended the session"),
        ),
        End::Code(CloseCode::ServerGone) => (
            CloseCode::ServerGone,
            Some("the conferencing server is gone"),
        ),
        End::Code(CloseCode::IdleTimeout) => (CloseCode::IdleTimeout, Some("session idle")),
        End::Code(CloseCode::Draining) => (CloseCode::Draining, Some("the edge is shutting down")),
        End::Code(c) => (c, Some("protocol error")),
    };
    match end {
        End::ClientClosed | End::ServerFinished => {
            let _ = to_server.finish();
        }
        // Both directions end, and the server reads why.
        _ => to_server.reset(code.to_quic()),
    }
    drop(from_server);
    if let Some(reason) = tell_client {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = client_wr.write_all(&wire::close_frame(code, reason)).await;
            let _ = client_wr.flush().await;
        })
        .await;
    }
    (code, client_rd.unsplit(client_wr))
}
