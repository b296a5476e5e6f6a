//! One SIP connection: framing, keep-alive, idle timeout, and an outgoing queue.
//!
//! Reading and writing run in two tasks so a slow reader on the other side never stalls
//! the proxy: messages for a connection go through a bounded queue, and a full queue drops
//! the message (SIP over TLS retransmits end to end) rather than block other peers.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use sip_core::{FramingError, Limits, StreamFramer, StreamItem};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;

use crate::proxy::Shared;

pub type ConnId = u64;

/// Queue depth per connection; beyond it messages are dropped with a log line.
const QUEUE: usize = 1024;

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
    /// The partner domain this connection speaks for, once known.
    pub domain: Mutex<Option<String>>,
    tx: mpsc::Sender<Vec<u8>>,
}

impl ConnHandle {
    /// Queues bytes; false when the connection is gone or its queue is full.
    pub fn send(&self, bytes: Vec<u8>) -> bool {
        match self.tx.try_send(bytes) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                edged_role::outsider_debug!(target: "access_edge", "messages dropped for a full send queue", self.peer.ip(), peer = %self.peer, "send queue full; message dropped");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
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
}

/// Registers a connection with the proxy and runs it until it closes.
pub fn spawn<S>(
    shared: &Arc<Shared>,
    stream: S,
    peer: SocketAddr,
    origin: Origin,
    names: Vec<String>,
    domain: Option<String>,
    on_close: Option<Box<dyn FnOnce() + Send>>,
) -> Arc<ConnHandle>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (tx, rx) = mpsc::channel(QUEUE);
    let handle = Arc::new(ConnHandle {
        id: shared.next_conn_id(),
        peer,
        origin,
        names,
        domain: Mutex::new(domain),
        tx,
    });
    shared.register(&handle);
    let (reader, writer) = tokio::io::split(stream);
    let closing = shared.life.closing().clone();
    tokio::spawn(write_loop(writer, rx, closing));
    let shared = shared.clone();
    let h = handle.clone();
    tokio::spawn(async move {
        let settings = shared.conn_settings();
        read_loop(&shared, &h, reader, settings).await;
        shared.unregister(&h);
        if let Some(f) = on_close {
            f();
        }
    });
    handle
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::Receiver<Vec<u8>>,
    closing: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            _ = closing.cancelled() => break,
            next = rx.recv() => match next {
                Some(bytes) => {
                    if writer.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
        }
    }
    let _ = writer.shutdown().await;
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
    loop {
        let read = tokio::select! {
            _ = shared.life.closing().cancelled() => return,
            r = tokio::time::timeout(idle, reader.read(&mut waiting)) => r,
        };
        let n = match read {
            Err(_) => {
                tracing::debug!(target: "access_edge", peer = %conn.peer, "idle connection closed");
                shared.counters.idle_closed.inc();
                return;
            }
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => n,
        };
        if !take_chunk(shared, conn, &mut framer, &waiting[..n]) {
            return;
        }
        if n < WAIT_READ {
            continue;
        }
        // More may be ready (the rest of a message): drain it without waiting.
        let mut drain = vec![0u8; DRAIN_READ];
        loop {
            match read_ready(&mut reader, &mut drain).await {
                None => break,
                Some(Ok(0)) | Some(Err(_)) => return,
                Some(Ok(m)) => {
                    if !take_chunk(shared, conn, &mut framer, &drain[..m]) {
                        return;
                    }
                }
            }
        }
    }
}

/// Frames one chunk read from the connection and hands complete messages to the proxy;
/// false when the stream cannot be framed and the connection must close.
fn take_chunk(
    shared: &Arc<Shared>,
    conn: &Arc<ConnHandle>,
    framer: &mut StreamFramer,
    chunk: &[u8],
) -> bool {
    framer.push(chunk);
    loop {
        match framer.next_message() {
            Ok(None) => return true,
            Ok(Some(StreamItem::Ping)) => {
                shared.counters.keepalives.inc();
                conn.send(b"\r\n".to_vec());
            }
            Ok(Some(StreamItem::Message(bytes))) => {
                let owned = bytes.to_vec();
                shared.on_message(conn, owned);
            }
            Err(e) => {
                // The message's start may have come in an earlier chunk: answer from all of
                // what is buffered.
                let pending = framer.pending();
                let last = if pending.is_empty() { chunk } else { pending };
                close_on_framing_error(shared, conn, &e, last);
                return false;
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
