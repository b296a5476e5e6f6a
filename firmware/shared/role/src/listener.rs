//! The one accept loop of every TCP and TLS listener: caps from [`Admission`], a pause
//! after failed accepts, the role's own admission hook, a deadline for the handshake or
//! first request, an idle deadline after it, and connection tasks tracked by the role's
//! [`Lifecycle`].

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsRawFd as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::admission::{AcceptBackoff, Admission, ListenerLimits, Refusal, Source};
use crate::budget::{self, Pool, PoolSlot};
use crate::idle::{self, IdleStep};
use crate::lifecycle::Lifecycle;

/// A connection just accepted and admitted.
pub struct Incoming {
    pub tcp: TcpStream,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// When the first stage ([`Handler::open`]) is cut off; later stages that belong to
    /// the first request (reading a first frame after the handshake) may use it too.
    pub deadline: Instant,
}

/// What a role does with the connections of one listener.
pub trait Handler: Send + Sync + 'static {
    /// Held from the role's admission until the connection ends (a slot in a per-address
    /// count, say); `()` for roles without one.
    type Ticket: Send + 'static;
    /// What the first stage hands to the second: the stream after its handshake.
    type Opened: Send + 'static;

    /// The role's own admission after the listener's caps; `None` closes the connection.
    fn admit(&self, peer: SocketAddr) -> Option<Self::Ticket>;

    /// The handshake or first request; cut off at `incoming.deadline`. `None` closes.
    fn open(
        &self,
        incoming: Incoming,
        ticket: Self::Ticket,
    ) -> impl Future<Output = Option<Self::Opened>> + Send;

    /// The rest of the connection. Watches the lifecycle's `closing` to end with a
    /// goodbye; otherwise it is dropped a grace period after `closing`.
    fn serve(&self, opened: Self::Opened) -> impl Future<Output = ()> + Send;

    /// The first-request deadline for a connection accepted now, when the role reads it
    /// from its live settings; `None` takes the listener's limits.
    fn first_request_timeout(&self) -> Option<Duration> {
        None
    }

    /// The deadline cut off a connection's first stage.
    fn timed_out(&self, _peer: SocketAddr) {}

    /// The listener's caps closed a new connection at once.
    fn refused(&self, _peer: SocketAddr, _why: Refusal) {}

    /// The idle deadline closed a served connection.
    fn idled_out(&self, _peer: SocketAddr) {}
}

/// A listener's figures, for status and tests.
#[derive(Debug, Default)]
pub struct ListenerStats {
    accepted: AtomicU64,
    refused: AtomicU64,
    timed_out: AtomicU64,
    idled_out: AtomicU64,
    accept_errors: AtomicU64,
}

impl ListenerStats {
    /// Connections that passed the caps (the role's own hook may still close them).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
    /// Connections closed at once by the caps.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
    /// Connections closed at the first-request deadline.
    pub fn timed_out(&self) -> u64 {
        self.timed_out.load(Ordering::Relaxed)
    }
    /// Served connections closed at the idle deadline.
    pub fn idled_out(&self) -> u64 {
        self.idled_out.load(Ordering::Relaxed)
    }
    pub fn accept_errors(&self) -> u64 {
        self.accept_errors.load(Ordering::Relaxed)
    }
}

/// A running listener: its caps can change, its figures be read.
pub struct ListenerHandle {
    name: String,
    limits: Mutex<ListenerLimits>,
    admission: Mutex<Admission>,
    /// The role's budget, drawn from by every listener of the role.
    pool: Option<Arc<Pool>>,
    stats: ListenerStats,
}

impl ListenerHandle {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn stats(&self) -> &ListenerStats {
        &self.stats
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.admission().open()
    }

    /// New limits apply to connections accepted from now on.
    pub fn set_limits(&self, limits: ListenerLimits) {
        self.admission().set_limits(&limits);
        *self.limits.lock().unwrap_or_else(PoisonError::into_inner) = limits;
    }

    fn admission(&self) -> std::sync::MutexGuard<'_, Admission> {
        self.admission
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn limits(&self) -> ListenerLimits {
        *self.limits.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Frees the connection's place under the caps however its task ends.
struct Slot {
    handle: Arc<ListenerHandle>,
    source: Source,
    _pooled: Option<PoolSlot>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.handle.admission().release(self.source);
    }
}

/// A bound socket and its limits, before it runs.
pub struct Listener {
    name: String,
    tcp: TcpListener,
    limits: ListenerLimits,
    until: Option<CancellationToken>,
}

impl Listener {
    /// `name` appears in log lines: the listener's config key (`av_auth.sip_port`).
    pub fn new(name: impl Into<String>, tcp: TcpListener, limits: ListenerLimits) -> Self {
        Self {
            name: name.into(),
            tcp,
            limits,
            until: None,
        }
    }

    /// Stops accepting when `token` fires instead of when the lifecycle drains: a listener
    /// that is part of in-flight work (one TURN allocation's relayed address) keeps
    /// accepting during the drain, until its work ends or the lifecycle closes.
    pub fn until(mut self, token: CancellationToken) -> Self {
        self.until = Some(token);
        self
    }

    /// Starts accepting as a task of `life`; stops when `life` drains (or see
    /// [`until`](Self::until)).
    pub fn spawn<H: Handler>(self, life: &Lifecycle, handler: Arc<H>) -> Arc<ListenerHandle> {
        let pool = budget::pool_of_listener(&self.name);
        let handle = Arc::new(ListenerHandle {
            pool,
            name: self.name,
            admission: Mutex::new(Admission::new(&self.limits)),
            limits: Mutex::new(self.limits),
            stats: ListenerStats::default(),
        });
        let until = self.until.unwrap_or_else(|| life.draining().clone());
        life.spawn(accept_loop(
            self.tcp,
            handle.clone(),
            handler,
            life.clone(),
            until,
        ));
        handle
    }
}

async fn accept_loop<H: Handler>(
    tcp: TcpListener,
    handle: Arc<ListenerHandle>,
    handler: Arc<H>,
    life: Lifecycle,
    until: CancellationToken,
) {
    let name = handle.name();
    let Ok(local) = tcp.local_addr() else {
        tracing::warn!(
            target: "edged",
            listener = name,
            "listener has no local address; not accepting"
        );
        return;
    };
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            () = until.cancelled() => break,
            () = life.closing().cancelled() => break,
            a = tcp.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff.succeeded();
                a
            }
            Err(e) => {
                handle.stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                let step = backoff.failed(std::time::Instant::now());
                if let Some(unlogged) = step.log {
                    tracing::warn!(target: "edged", listener = name, error = %e, unlogged, pause = ?step.pause,
                        "accept failed; pausing");
                }
                tokio::select! {
                    () = until.cancelled() => break,
                    () = life.closing().cancelled() => break,
                    () = tokio::time::sleep(step.pause) => continue,
                }
            }
        };
        let own = handle.admission().admit(peer.ip());
        let admitted = own.and_then(|source| {
            let pooled = handle.pool.as_ref().map(|p| p.admit(peer.ip())).transpose();
            match pooled {
                Ok(pooled) => Ok((source, pooled)),
                Err(why) => {
                    handle.admission().release(source);
                    Err(why)
                }
            }
        });
        let (source, pooled) = match admitted {
            Ok(s) => s,
            Err(why) => {
                handle.stats.refused.fetch_add(1, Ordering::Relaxed);
                crate::outsider_debug!(target: "edged", "connections refused at a listener's caps", peer.ip(),
                    listener = name, %peer, reason = %why, "connection refused");
                handler.refused(peer, why);
                continue;
            }
        };
        let slot = Slot {
            handle: handle.clone(),
            source,
            _pooled: pooled,
        };
        handle.stats.accepted.fetch_add(1, Ordering::Relaxed);
        let Some(ticket) = handler.admit(peer) else {
            continue;
        };
        let limits = handle.limits();
        let timeout = handler
            .first_request_timeout()
            .unwrap_or(limits.first_request_timeout);
        let fd = stream.as_raw_fd();
        let incoming = Incoming {
            tcp: stream,
            peer,
            local,
            deadline: Instant::now() + timeout,
        };
        let (handler, handle) = (handler.clone(), handle.clone());
        life.spawn(async move {
            let _slot = slot;
            let deadline = incoming.deadline;
            let opened = match tokio::time::timeout_at(deadline, handler.open(incoming, ticket))
                .await
            {
                Ok(Some(o)) => o,
                Ok(None) => return,
                Err(_) => {
                    handle.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                    crate::outsider_debug!(target: "edged", "connections closed without a first request in time", peer.ip(),
                        listener = handle.name(), %peer, "no complete first request by the deadline; closed");
                    handler.timed_out(peer);
                    return;
                }
            };
            match limits.idle_timeout {
                Some(limit) => {
                    tokio::select! {
                        () = handler.serve(opened) => {}
                        () = idle_watch(fd, local, peer, limit, &handle) => {
                            handler.idled_out(peer);
                        }
                    }
                }
                None => handler.serve(opened).await,
            }
        });
    }
    tracing::debug!(target: "edged", listener = name, "stopped accepting");
}

/// Returns when the connection on `fd` has carried no data for `limit` (counted and logged
/// first, so the count is there before the peer sees the close); pends forever when the
/// connection is gone, and the role's serve ends on its own.
async fn idle_watch(
    fd: std::os::fd::RawFd,
    local: SocketAddr,
    peer: SocketAddr,
    limit: Duration,
    handle: &ListenerHandle,
) {
    loop {
        match idle::step(crate::tcp_activity::quiet_for(fd, local, peer), limit) {
            IdleStep::CheckAfter(wait) => tokio::time::sleep(wait).await,
            IdleStep::Stop => std::future::pending::<()>().await,
            IdleStep::Close => {
                handle.stats.idled_out.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target: "edged", listener = handle.name(), %peer, ?limit, "idle connection closed");
                return;
            }
        }
    }
}
