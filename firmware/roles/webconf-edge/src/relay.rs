//! Moves one admitted session's bytes: framed on the client leg, raw on the server stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use edged_role::DrainToken;
use session_key::wire::{self, CLOSE, DATA, HEADER_LEN, MAX_PAYLOAD, RECORD_FRIENDLY_PAYLOAD};
use session_key::CloseCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::metrics::EdgeMetrics;

/// One read from the client connection: several full TLS records.
const CLIENT_READ_BYTES: usize = 64 * 1024;

/// DATA frames gathered from the server stream before one flush to the client.
const FRAMES_PER_FLUSH: usize = 4;

/// Writes the DATA header in front of the `n` payload bytes already placed after it at
/// `at`; returns where the next frame starts. `n` is at most one slot's payload (under
/// 16 KiB), so it fits the u16 length.
fn put_header(frames: &mut [u8], at: usize, n: usize) -> usize {
    frames[at..at + HEADER_LEN].copy_from_slice(&wire::header(DATA, n as u16));
    at + HEADER_LEN + n
}

/// What a stream holds right now, without waiting.
enum ReadyRead {
    Data(usize),
    NotYet,
    /// The server finished its stream (or it failed: the next awaited read says which).
    Finished,
}

/// Polls the stream once: data already received is taken, nothing is awaited.
fn read_ready(stream: &mut quinn::RecvStream, into: &mut [u8]) -> ReadyRead {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut buf = tokio::io::ReadBuf::new(into);
    match std::pin::Pin::new(stream).poll_read(&mut cx, &mut buf) {
        std::task::Poll::Ready(Ok(())) if buf.filled().is_empty() => ReadyRead::Finished,
        std::task::Poll::Ready(Ok(())) => ReadyRead::Data(buf.filled().len()),
        std::task::Poll::Ready(Err(_)) => ReadyRead::NotYet,
        std::task::Poll::Pending => ReadyRead::NotYet,
    }
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

/// Relays until either side ends, the session idles out or `close_all` fires, then tells
/// the client why (CLOSE frame) and ends the server stream. Returns the close code and the
/// client stream, so the caller can close its transport (QUIC: with that code).
pub(crate) async fn relay<C: AsyncRead + AsyncWrite + Unpin>(
    client: C,
    leftover: Vec<u8>,
    mut to_server: quinn::SendStream,
    mut from_server: quinn::RecvStream,
    params: RelayParams,
    metrics: &EdgeMetrics,
    close_all: &DrainToken,
) -> (CloseCode, C) {
    let (mut client_rd, mut client_wr) = tokio::io::split(client);
    let started = Instant::now();
    let last_activity_ms = AtomicU64::new(0);
    let touch = || last_activity_ms.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);

    let upward = async {
        let mut buf = leftover;
        // Payloads of every complete DATA frame of one read, sent to the stream in one
        // write: each stream write wakes the QUIC connection task, so one per read, not
        // one per frame.
        let mut batch = Vec::with_capacity(CLIENT_READ_BYTES);
        let mut pacer = Pacer::new(params.bytes_per_sec);
        loop {
            let mut pos = 0;
            let mut end = None;
            while end.is_none() {
                match wire::decode(&buf[pos..], MAX_PAYLOAD) {
                    Err(e) => end = Some(End::Code(e.close_code())),
                    Ok(None) => break,
                    Ok(Some((frame, used))) => {
                        match frame.kind {
                            DATA => batch.extend_from_slice(frame.payload),
                            CLOSE => end = Some(End::ClientClosed),
                            _ => end = Some(End::Code(CloseCode::MalformedFrame)),
                        }
                        pos += used;
                    }
                }
            }
            // Data the client sent before its CLOSE (or before a bad frame) still goes in.
            if !batch.is_empty() {
                if to_server.write_all(&batch).await.is_err() {
                    return End::Code(CloseCode::ServerGone);
                }
                metrics.bytes_in.add(batch.len() as u64);
                pacer.pace(batch.len()).await;
                batch.clear();
            }
            if let Some(end) = end {
                return end;
            }
            buf.drain(..pos);
            // Straight into the frame buffer's spare room: no staging copy.
            buf.reserve(CLIENT_READ_BYTES);
            match client_rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return End::ClientGone,
                Ok(_) => touch(),
            }
        }
    };

    let downward = async {
        // Up to FRAMES_PER_FLUSH DATA frames, each exactly one TLS record (header and
        // payload fill 16 KiB), written and flushed together: what the stream already
        // holds goes out in one socket write instead of one per record.
        const SLOT: usize = HEADER_LEN + RECORD_FRIENDLY_PAYLOAD;
        let mut frames = vec![0u8; SLOT * FRAMES_PER_FLUSH];
        let mut pacer = Pacer::new(params.bytes_per_sec);
        loop {
            let first = match from_server.read(&mut frames[HEADER_LEN..SLOT]).await {
                Ok(Some(n)) => n,
                Ok(None) => return End::ServerFinished,
                Err(_) => return End::Code(CloseCode::ServerGone),
            };
            let mut filled = put_header(&mut frames, 0, first);
            let mut payload = first;
            let mut finished = false;
            while filled + SLOT <= frames.len() {
                match read_ready(
                    &mut from_server,
                    &mut frames[filled + HEADER_LEN..filled + SLOT],
                ) {
                    ReadyRead::Data(n) => {
                        filled = put_header(&mut frames, filled, n);
                        payload += n;
                    }
                    ReadyRead::NotYet => break,
                    ReadyRead::Finished => {
                        finished = true;
                        break;
                    }
                }
            }
            // TLS keeps records it could not send yet in its buffer until flushed.
            if client_wr.write_all(&frames[..filled]).await.is_err()
                || client_wr.flush().await.is_err()
            {
                return End::ClientGone;
            }
            touch();
            metrics.bytes_out.add(payload as u64);
            if finished {
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
        _ = close_all.cancelled() => End::Code(CloseCode::Draining),
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
        _ => {
            let _ = to_server.reset(quinn::VarInt::from_u32(code.to_quic()));
        }
    }
    let _ = from_server.stop(quinn::VarInt::from_u32(code.to_quic()));
    if let Some(reason) = tell_client {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = client_wr.write_all(&wire::close_frame(code, reason)).await;
            let _ = client_wr.flush().await;
        })
        .await;
    }
    (code, client_rd.unsplit(client_wr))
}
