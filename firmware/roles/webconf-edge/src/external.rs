//! The external port: meeting clients over TLS/TCP and over QUIC/UDP, same port number.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use session_key::wire::{self, ClientTransport, ALPN_CLIENT};
use session_key::CloseCode;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout_at, Instant};

use crate::admission::admit;
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

pub(crate) async fn tls_accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            _ = shared.stop_accepting.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((sock, peer)) => {
                let s = shared.clone();
                shared
                    .sessions
                    .spawn(async move { tls_session(s, sock, peer).await });
            }
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(target: "webconf_edge", error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tracing::info!(target: "webconf_edge", "TLS listener closed");
}

async fn tls_session(shared: Arc<Shared>, sock: TcpStream, peer: SocketAddr) {
    let settings = shared.settings.load_full();
    let deadline = Instant::now() + settings.first_frame_timeout;
    let address_slot = shared
        .limits
        .by_address
        .try_take(peer.ip(), settings.max_sessions_per_address);
    let _ = sock.set_nodelay(true);
    let acceptor = shared.tls_acceptor.load_full();
    let mut tls = match timeout_at(deadline, acceptor.accept(sock)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            shared.metrics.handshake_failed.inc();
            tracing::debug!(target: "webconf_edge", %peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            shared.metrics.closed(CloseCode::FirstFrameTimeout);
            tracing::debug!(target: "webconf_edge", %peer, "TLS handshake not done by the first-frame deadline");
            return;
        }
    };
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
    } else if shared.stop_accepting.is_cancelled() {
        Some((CloseCode::Draining, "the edge is shutting down".to_string()))
    } else {
        None
    };
    if let Some((code, reason)) = refusal {
        refuse_stream(&shared, &mut tls, peer, code, &reason).await;
        return;
    }
    let admitted = match timeout_at(
        deadline,
        admit(&shared, &mut tls, peer, ClientTransport::Tls),
    )
    .await
    {
        Ok(Ok(a)) => a,
        Ok(Err((code, reason))) => {
            refuse_stream(&shared, &mut tls, peer, code, &reason).await;
            return;
        }
        Err(_) => {
            refuse_stream(
                &shared,
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
    let _active = ActiveSession::new(&shared);
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
        &shared.close_all,
    )
    .await;
    shared.metrics.closed(code);
    tracing::debug!(target: "webconf_edge", session_id = admitted.session_id, %peer, code = %code, "session ended");
    let _ = tokio::time::timeout(Duration::from_secs(1), tls.shutdown()).await;
    drop(address_slot);
}

/// Sends a CLOSE frame with the reason, counts it, and shuts the stream down.
async fn refuse_stream<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    stream: &mut S,
    peer: SocketAddr,
    code: CloseCode,
    reason: &str,
) {
    shared.metrics.closed(code);
    tracing::debug!(target: "webconf_edge", %peer, code = %code, reason, "client refused");
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(&wire::close_frame(code, reason)).await;
        let _ = stream.flush().await;
        let _ = stream.shutdown().await;
    })
    .await;
}

pub(crate) async fn quic_accept_loop(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        if shared.stop_accepting.is_cancelled() {
            // Refused at once with a clear CONNECTION_REFUSED rather than left to time out.
            incoming.refuse();
            continue;
        }
        let s = shared.clone();
        shared
            .sessions
            .spawn(async move { quic_session(s, incoming).await });
    }
}

fn quic_close(conn: &quinn::Connection, code: CloseCode, reason: &str) {
    conn.close(quinn::VarInt::from_u32(code.to_quic()), reason.as_bytes());
}

async fn quic_session(shared: Arc<Shared>, incoming: quinn::Incoming) {
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
        &shared.close_all,
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
