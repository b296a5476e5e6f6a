//! The external port: meeting clients over TLS/TCP and over QUIC/UDP, same port number.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use edged_role::{Handler, Incoming};

use session_key::wire::{self, ClientTransport, ALPN_CLIENT};
use session_key::CloseCode;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tokio_rustls::server::TlsStream;

use crate::admission::admit;
use crate::limits::{GatePlace, SlotGuard};
use crate::quic_admission::{first_step, Attempt, FirstStep};
use crate::relay::{relay, RelayParams};
use crate::shared::Shared;

/// Keeps the active-session gauge exact on every exit path.
struct ActiveSession<'a>(&'a Shared);

impl<'a> ActiveSession<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.metrics.sessions_active.inc();
        Self(shared)
    }
}

impl Drop for ActiveSession<'_> {
    fn drop(&mut self) {
        self.0.metrics.sessions_active.dec();
    }
}

/// Meeting clients over TLS/TCP. The first-frame deadline covers the handshake (the
/// listener's first stage) and the first frame read after it (admission).
pub(crate) struct TlsClients {
    pub shared: Arc<Shared>,
}

/// A client after its TLS handshake, with what admission needs.
pub(crate) struct Handshaken {
    tls: TlsStream<TcpStream>,
    peer: SocketAddr,
    address_slot: Option<SlotGuard<IpAddr>>,
    deadline: Instant,
}

impl Handler for TlsClients {
    /// The client's place in its address's session count; `None` is refused with a CLOSE
    /// frame after the handshake, so the client learns why.
    type Ticket = Option<SlotGuard<IpAddr>>;
    type Opened = Handshaken;

    fn admit(&self, peer: SocketAddr) -> Option<Self::Ticket> {
        let max = self.shared.settings.load().max_sessions_per_address;
        Some(self.shared.limits.by_address.try_take(peer.ip(), max))
    }

    async fn open(&self, incoming: Incoming, address_slot: Self::Ticket) -> Option<Handshaken> {
        let _ = incoming.tcp.set_nodelay(true);
        let acceptor = self.shared.tls_acceptor.load_full();
        match acceptor.accept(incoming.tcp).await {
            Ok(tls) => Some(Handshaken {
                tls,
                peer: incoming.peer,
                address_slot,
                deadline: incoming.deadline,
            }),
            Err(e) => {
                self.shared.metrics.handshake_failed.inc();
                edged_role::outsider_debug!(target: "webconf_edge", "failed TLS handshakes", incoming.peer.ip(), peer = %incoming.peer, error = %e, "TLS handshake failed");
                None
            }
        }
    }

    async fn serve(&self, handshaken: Handshaken) {
        tls_session(&self.shared, handshaken).await;
    }

    fn first_request_timeout(&self) -> Option<Duration> {
        Some(self.shared.settings.load().first_frame_timeout)
    }

    fn timed_out(&self, peer: SocketAddr) {
        self.shared.metrics.closed(CloseCode::FirstFrameTimeout);
        tracing::debug!(target: "webconf_edge", %peer, "TLS handshake not done by the first-frame deadline");
    }
}

async fn tls_session(shared: &Shared, handshaken: Handshaken) {
    let Handshaken {
        mut tls,
        peer,
        address_slot,
        deadline,
    } = handshaken;
    let settings = shared.settings.load_full();
    tls.get_mut()
        .1
        .set_buffer_limit(Some(crate::relay::CLIENT_TLS_SEND_BUFFER));
    let refusal = if address_slot.is_none() {
        Some((
            CloseCode::AddressLimit,
            format!(
                "{} sessions from this address already",
                settings.max_sessions_per_address
            ),
        ))
    } else if tls.get_ref().1.alpn_protocol() != Some(ALPN_CLIENT) {
        Some((
            CloseCode::NoAlpn,
            "ALPN edged-webconf/1 is required".to_string(),
        ))
    } else if shared.clients.is_draining() {
        Some((CloseCode::Draining, "the edge is shutting down".to_string()))
    } else {
        None
    };
    if let Some((code, reason)) = refusal {
        refuse_stream(shared, &mut tls, peer, code, &reason).await;
        return;
    }
    let admitted = match timeout_at(
        deadline,
        admit(shared, &mut tls, peer, ClientTransport::Tls),
    )
    .await
    {
        Ok(Ok(a)) => a,
        Ok(Err((code, reason))) => {
            refuse_stream(shared, &mut tls, peer, code, &reason).await;
            return;
        }
        Err(_) => {
            refuse_stream(
                shared,
                &mut tls,
                peer,
                CloseCode::FirstFrameTimeout,
                "no first frame in time",
            )
            .await;
            return;
        }
    };
    let accept = wire::accept_frame(admitted.claims.role);
    if tls.write_all(&accept).await.is_err() || tls.flush().await.is_err() {
        return;
    }
    shared.metrics.admitted_tls.inc();
    let _active = ActiveSession::new(shared);
    let params = RelayParams {
        idle_timeout: settings.idle_timeout,
        bytes_per_sec: settings.session_bytes_per_sec,
    };
    let (code, mut tls) = relay(
        tls,
        admitted.leftover,
        admitted.to_server,
        admitted.from_server,
        params,
        &shared.metrics,
        shared.clients.closing(),
    )
    .await;
    shared.metrics.closed(code);
    tracing::debug!(target: "webconf_edge", session_id = admitted.session_id, %peer, code = %code, "session ended");
    let _ = tokio::time::timeout(Duration::from_secs(1), tls.shutdown()).await;
    drop(address_slot);
}

/// Counts the refusal by its reason, sends a CLOSE frame with what a client may learn of
/// it, and shuts the stream down.
async fn refuse_stream<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    stream: &mut S,
    peer: SocketAddr,
    code: CloseCode,
    reason: &str,
) {
    shared.metrics.closed(code);
    tracing::debug!(target: "webconf_edge", %peer, code = %code, reason, "client refused");
    let frame = wire::close_frame(code.for_client(), code.client_reason(reason));
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(&frame).await;
        let _ = stream.flush().await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Takes each QUIC attempt as it arrives: a Retry or a refusal costs no task and no state;
/// an attempt that may begin its handshake takes a place under the handshake cap first.
pub(crate) async fn quic_accept_loop(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        let settings = shared.settings.load();
        let attempt = Attempt {
            draining: shared.clients.is_draining(),
            address_validated: incoming.remote_address_validated(),
            may_retry: incoming.may_retry(),
        };
        match first_step(attempt, settings.quic_retry) {
            FirstStep::Refuse => incoming.refuse(),
            FirstStep::Retry => match incoming.retry() {
                Ok(()) => shared.metrics.quic_retries.inc(),
                Err(e) => e.into_incoming().refuse(),
            },
            FirstStep::Handshake => {
                let Some(place) = shared
                    .limits
                    .quic_handshakes
                    .try_enter(settings.quic_max_handshakes)
                else {
                    shared.metrics.quic_handshake_refusals.inc();
                    tracing::debug!(target: "webconf_edge", peer = %incoming.remote_address(),
                        max = settings.quic_max_handshakes, "QUIC attempt refused: handshake cap reached");
                    incoming.refuse();
                    continue;
                };
                let s = shared.clone();
                shared
                    .clients
                    .spawn(async move { quic_session(s, incoming, place).await });
            }
        }
    }
}

/// Closes with what a client may learn of `code` (see [`CloseCode::for_client`]).
fn quic_close(conn: &quinn::Connection, code: CloseCode, reason: &str) {
    conn.close(
        quinn::VarInt::from_u32(code.for_client().to_quic()),
        code.client_reason(reason).as_bytes(),
    );
}

/// One QUIC client; `handshake` is its place under the handshake cap, given back once its
/// first frame is judged.
async fn quic_session(shared: Arc<Shared>, incoming: quinn::Incoming, handshake: GatePlace) {
    let settings = shared.settings.load_full();
    let deadline = Instant::now() + settings.first_frame_timeout;
    let peer = incoming.remote_address();
    let address_slot = shared
        .limits
        .by_address
        .try_take(peer.ip(), settings.max_sessions_per_address);
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            shared.metrics.handshake_failed.inc();
            tracing::debug!(target: "webconf_edge", %peer, error = %e, "QUIC connection not accepted");
            return;
        }
    };
    let conn = match timeout_at(deadline, connecting).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            shared.metrics.handshake_failed.inc();
            tracing::debug!(target: "webconf_edge", %peer, error = %e, "QUIC handshake failed");
            return;
        }
        Err(_) => {
            shared.metrics.closed(CloseCode::FirstFrameTimeout);
            return;
        }
    };
    if address_slot.is_none() {
        shared.metrics.closed(CloseCode::AddressLimit);
        quic_close(
            &conn,
            CloseCode::AddressLimit,
            "too many sessions from this address",
        );
        return;
    }
    // rustls refuses a QUIC handshake without a common ALPN, so this is a second guard.
    let alpn = conn
        .handshake_data()
        .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|h| h.protocol);
    if alpn.as_deref() != Some(ALPN_CLIENT) {
        shared.metrics.closed(CloseCode::NoAlpn);
        quic_close(&conn, CloseCode::NoAlpn, "ALPN edged-webconf/1 is required");
        return;
    }
    let (send, recv) = match timeout_at(deadline, conn.accept_bi()).await {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => return,
        Err(_) => {
            shared.metrics.closed(CloseCode::FirstFrameTimeout);
            quic_close(
                &conn,
                CloseCode::FirstFrameTimeout,
                "no first frame in time",
            );
            return;
        }
    };
    let mut io = tokio::io::join(recv, send);
    let admitted = match timeout_at(
        deadline,
        admit(&shared, &mut io, peer, ClientTransport::Quic),
    )
    .await
    {
        Ok(Ok(a)) => a,
        Ok(Err((code, reason))) => {
            shared.metrics.closed(code);
            tracing::debug!(target: "webconf_edge", %peer, code = %code, reason = %reason, "client refused");
            quic_close(&conn, code, &reason);
            return;
        }
        Err(_) => {
            shared.metrics.closed(CloseCode::FirstFrameTimeout);
            quic_close(
                &conn,
                CloseCode::FirstFrameTimeout,
                "no first frame in time",
            );
            return;
        }
    };
    drop(handshake);
    let accept = wire::accept_frame(admitted.claims.role);
    if io.write_all(&accept).await.is_err() || io.flush().await.is_err() {
        return;
    }
    shared.metrics.admitted_quic.inc();
    let _active = ActiveSession::new(&shared);
    let params = RelayParams {
        idle_timeout: settings.idle_timeout,
        bytes_per_sec: settings.session_bytes_per_sec,
    };
    let (code, io) = relay(
        io,
        admitted.leftover,
        admitted.to_server,
        admitted.from_server,
        params,
        &shared.metrics,
        shared.clients.closing(),
    )
    .await;
    shared.metrics.closed(code);
    tracing::debug!(target: "webconf_edge", session_id = admitted.session_id, %peer, code = %code, "session ended");
    let (_recv, mut send) = io.into_inner();
    // Let the CLOSE frame reach the client before the connection close discards it.
    let _ = send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(1), send.stopped()).await;
    quic_close(&conn, code, code.as_str());
    drop(address_slot);
}
