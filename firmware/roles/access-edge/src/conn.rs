//! One SIP connection: framing, keep-alive, idle and per-message deadlines, and an
//! outgoing queue.
//!
//! Reading and writing run in two tasks so a slow reader on the other side never stalls
//! the proxy: messages for a connection go through a queue with a byte budget, and a message
//! over the budget is dropped (SIP over TLS retransmits end to end) rather than block other
//! peers. A peer that stops reading altogether is closed once one write waits longer than
//! the write timeout.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use sip_core::{FramingError, Limits, StreamFramer, StreamItem};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::deadline::{read_deadline, Expiry};
use crate::output::OutputBudget;
use crate::policy::Bucket;
use crate::proxy::Shared;

pub type ConnId = u64;

/// Who is on the other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Accepted on the remote-users listener.
    RemoteUser,
    /// Accepted on the federation listener (mutual TLS).
    Federation,
    /// Accepted on the internal listener (a Director).
    Internal,
    /// Opened by us to a next hop of the Director pool.
    ToNextHop,
    /// Opened by us to a partner's edge.
    ToPartner,
}

impl Origin {
    /// Messages from these peers come from outside the perimeter.
    pub fn is_external(self) -> bool {
        matches!(
            self,
            Origin::RemoteUser | Origin::Federation | Origin::ToPartner
        )
    }

    pub fn is_federation(self) -> bool {
        matches!(self, Origin::Federation | Origin::ToPartner)
    }
}

/// A live connection as the proxy sees it.
#[derive(Debug)]
pub struct ConnHandle {
    pub id: ConnId,
    pub peer: SocketAddr,
    pub origin: Origin,
    /// Names in the peer's certificate (mutual TLS only).
    pub names: Vec<String>,
    /// The peer's certificate chain (federation only): checked by the outbound verifier
    /// before an inbound partner connection carries our traffic.
    pub chain: Vec<CertificateDer<'static>>,
    /// The partner domain this connection speaks for, once known.
    pub domain: Mutex<Option<String>>,
    /// An inbound partner connection that passed the outbound verifier for its domain.
    pub outbound_verified: std::sync::atomic::AtomicBool,
    /// A remote user's request rate.
    pub requests: Mutex<Bucket>,
    queued: Arc<OutputBudget>,
    output_dropped: edged_metrics::Counter,
    /// Cancelled when writing fails or times out, so the reader stops too.
    closed: CancellationToken,
    tx: mpsc::UnboundedSender<Vec<u8>>,
}

impl ConnHandle {
    /// Queues bytes; false when the connection is gone or its output budget is spent.
    pub fn send(&self, bytes: Vec<u8>) -> bool {
        if !self.queued.reserve(bytes.len()) {
            edged_role::outsider_debug!(target: "access_edge", "messages dropped for a spent output budget", self.peer.ip(), peer = %self.peer, "output budget spent; message dropped");
            self.output_dropped.inc();
            return false;
        }
        let len = bytes.len();
        if self.tx.send(bytes).is_err() {
            self.queued.release(len);
            return false;
        }
        true
    }

    pub fn domain(&self) -> Option<String> {
        self.domain
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_domain(&self, d: &str) {
        *self.domain.lock().unwrap_or_else(PoisonError::into_inner) = Some(d.to_owned());
    }
}

/// Settings a connection reads at its start.
#[derive(Debug, Clone, Copy)]
pub struct ConnSettings {
    pub limits: Limits,
    pub idle: Duration,
    /// Time a whole message has from its first byte.
    pub message_timeout: Duration,
    /// Time one queued message may take to write before the peer counts as gone.
    pub write_timeout: Duration,
    /// Bytes queued for the peer at most.
    pub output_budget: usize,
    /// A remote user's requests per second (burst: [`REQUEST_BURST_SECS`] seconds' worth).
    pub request_rate: u32,
}

/// Seconds of a remote user's request rate it may spend at once (signing in sends a burst
/// of REGISTER, SUBSCRIBE and SERVICE requests).
pub const REQUEST_BURST_SECS: u32 = 5;

/// The peer's certificate as the proxy keeps it.
#[derive(Debug, Default)]
pub struct PeerCert {
    pub names: Vec<String>,
    pub chain: Vec<CertificateDer<'static>>,
}

/// Registers a connection with the proxy and runs it until it closes.
pub fn spawn<S>(
    shared: &Arc<Shared>,
    stream: S,
    peer: SocketAddr,
    origin: Origin,
    cert: PeerCert,
    domain: Option<String>,
    on_close: Option<Box<dyn FnOnce() + Send>>,
) -> Arc<ConnHandle>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let settings = shared.conn_settings();
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = Arc::new(ConnHandle {
        id: shared.next_conn_id(),
        peer,
        origin,
        names: cert.names,
        chain: cert.chain,
        domain: Mutex::new(domain),
        outbound_verified: std::sync::atomic::AtomicBool::new(false),
        requests: Mutex::new(Bucket::with_burst(
            settings.request_rate,
            REQUEST_BURST_SECS,
            shared.now_ms(),
        )),
        queued: Arc::new(OutputBudget::new(settings.output_budget)),
        output_dropped: shared.counters.output_dropped.clone(),
        closed: CancellationToken::new(),
        tx,
    });
    shared.register(&handle);
    let (reader, writer) = tokio::io::split(stream);
    // The writer holds no handle: once the last holder lets go, its queue ends and so does
    // the connection.
    tokio::spawn(write_loop(
        shared.clone(),
        Writing {
            peer,
            budget: handle.queued.clone(),
            closed: handle.closed.clone(),
        },
        writer,
        rx,
        settings,
    ));
    let shared = shared.clone();
    let h = handle.clone();
    tokio::spawn(async move {
        // The writer goes on while transactions still hold the handle (their answers are
        // still delivered), and ends once the last holder lets go.
        read_loop(&shared, &h, reader, settings).await;
        shared.unregister(&h);
        if let Some(f) = on_close {
            f();
        }
    });
    handle
}

/// What the writer shares with the connection's handle.
struct Writing {
    peer: SocketAddr,
    budget: Arc<OutputBudget>,
    closed: CancellationToken,
}

async fn write_loop<W: AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    conn: Writing,
    mut writer: W,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    s: ConnSettings,
) {
    let closing = shared.life.closing().clone();
    loop {
        let bytes = tokio::select! {
            _ = closing.cancelled() => break,
            _ = conn.closed.cancelled() => break,
            next = rx.recv() => match next {
                Some(bytes) => bytes,
                None => break,
            },
        };
        let written = tokio::time::timeout(s.write_timeout, writer.write_all(&bytes)).await;
        conn.budget.release(bytes.len());
        match written {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            Err(_) => {
                shared.counters.write_timeouts.inc();
                tracing::debug!(target: "access_edge", peer = %conn.peer, "peer stopped reading; connection closed");
                break;
            }
        }
    }
    // The reader stops too, so the connection is unregistered and its descriptor freed.
    conn.closed.cancel();
    let _ = tokio::time::timeout(s.write_timeout, writer.shutdown()).await;
}

/// Bytes a connection holds for reading while it waits: most connections sit idle, so the
/// wait itself reads into this small array inside the task, not into a heap buffer.
const WAIT_READ: usize = 64;
/// Scratch buffer for draining what the TLS layer already decrypted once data arrived; it
/// lives only for that pass.
const DRAIN_READ: usize = 4096;

/// One read that never waits: `None` when the stream has nothing ready right now.
async fn read_ready<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut [u8],
) -> Option<std::io::Result<usize>> {
    std::future::poll_fn(|cx| {
        let mut rb = ReadBuf::new(buf);
        match Pin::new(&mut *reader).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => Poll::Ready(Some(Ok(rb.filled().len()))),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Ready(None),
        }
    })
    .await
}

async fn read_loop<R: AsyncRead + Unpin>(
    shared: &Arc<Shared>,
    conn: &Arc<ConnHandle>,
    mut reader: R,
    s: ConnSettings,
) {
    let mut framer = StreamFramer::new(s.limits);
    let mut waiting = [0u8; WAIT_READ];
    // Connections to the Director pool are ours and kept alive by the OPTIONS health checks,
    // which also notice a dead one; only peers' connections are closed for idling.
    let idle = if conn.origin == Origin::ToNextHop {
        Duration::from_secs(24 * 3600)
    } else {
        s.idle
    };
    // When the message being read began: its deadline does not move with each byte.
    let mut message_started: Option<Instant> = None;
    loop {
        let (deadline, expiry) =
            read_deadline(Instant::now(), idle, message_started, s.message_timeout);
        let read = tokio::select! {
            _ = shared.life.closing().cancelled() => return,
            _ = conn.closed.cancelled() => return,
            r = tokio::time::timeout_at(deadline, reader.read(&mut waiting)) => r,
        };
        let n = match read {
            Err(_) => {
                match expiry {
                    Expiry::Idle => {
                        tracing::debug!(target: "access_edge", peer = %conn.peer, "idle connection closed");
                        shared.counters.idle_closed.inc();
                    }
                    Expiry::Message => {
                        tracing::debug!(target: "access_edge", peer = %conn.peer, "message not complete in time; connection closed");
                        shared.counters.message_timeouts.inc();
                    }
                }
                return;
            }
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => n,
        };
        let Some(mut completed) = take_chunk(shared, conn, &mut framer, &waiting[..n]).await else {
            return;
        };
        if n == WAIT_READ {
            // More may be ready (the rest of a message): drain it without waiting.
            let mut drain = vec![0u8; DRAIN_READ];
            loop {
                match read_ready(&mut reader, &mut drain).await {
                    None => break,
                    Some(Ok(0)) | Some(Err(_)) => return,
                    Some(Ok(m)) => {
                        let Some(more) = take_chunk(shared, conn, &mut framer, &drain[..m]).await
                        else {
                            return;
                        };
                        completed |= more;
                    }
                }
            }
        }
        message_started = match (framer.pending().is_empty(), message_started) {
            (true, _) => None,
            // A message ended in what was read: the partial one after it starts now.
            (false, Some(t)) if !completed => Some(t),
            (false, _) => Some(Instant::now()),
        };
    }
}

/// Frames one chunk read from the connection and hands complete messages to the proxy:
/// whether a message or keep-alive ended in it, or None when the stream cannot be framed
/// and the connection must close.
async fn take_chunk(
    shared: &Arc<Shared>,
    conn: &Arc<ConnHandle>,
    framer: &mut StreamFramer,
    chunk: &[u8],
) -> Option<bool> {
    framer.push(chunk);
    let mut completed = false;
    loop {
        match framer.next_message() {
            Ok(None) => return Some(completed),
            Ok(Some(StreamItem::Ping)) => {
                completed = true;
                shared.counters.keepalives.inc();
                conn.send(b"\r\n".to_vec());
            }
            Ok(Some(StreamItem::Message(bytes))) => {
                completed = true;
                let owned = bytes.to_vec();
                shared.on_message(conn, owned).await;
            }
            Err(e) => {
                // The message's start may have come in an earlier chunk: answer from all of
                // what is buffered.
                let pending = framer.pending();
                let last = if pending.is_empty() { chunk } else { pending };
                close_on_framing_error(shared, conn, &e, last);
                return None;
            }
        }
    }
}

/// Logs and counts a stream that cannot be framed; a request in the last chunk read still
/// gets its answer before the connection closes.
fn close_on_framing_error(shared: &Shared, conn: &ConnHandle, e: &FramingError, last_read: &[u8]) {
    if !crate::reply::looks_like_response(last_read) {
        if let Some(answer) = crate::reply::loose_response(last_read, e.status(), e.reason()) {
            conn.send(answer);
        }
    }
    if matches!(e, FramingError::MessageTooLarge(_)) {
        shared.counters.oversize_closed.inc();
        edged_role::outsider_debug!(target: "access_edge", "connections closed for oversize messages", conn.peer.ip(), peer = %conn.peer, error = %e, "oversize message; connection closed");
    } else {
        shared.counters.malformed_requests.inc();
        edged_role::outsider_debug!(target: "access_edge", "connections closed for unframeable streams", conn.peer.ip(), peer = %conn.peer, error = %e, "unframeable stream; connection closed");
    }
}
