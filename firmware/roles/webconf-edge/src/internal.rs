//! The internal port: conferencing servers connect out to the edge over QUIC with mutual
//! TLS, register their conferences on a control stream, and receive one stream per session.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::pool::Server;
use crate::shared::Shared;
use session_key::wire::{self, MAX_PAYLOAD, REGISTER, REGISTERED};

/// How long a conferencing server may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn accept_loop(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        let s = shared.clone();
        tokio::spawn(async move { serve_server(s, incoming).await });
    }
}

async fn serve_server(shared: Arc<Shared>, incoming: quinn::Incoming) {
    let peer = incoming.remote_address();
    let conn = match incoming.accept() {
        Ok(c) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, c).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                tracing::warn!(target: "webconf_edge", %peer, error = %e, "conferencing server handshake failed");
                return;
            }
            Err(_) => {
                tracing::warn!(target: "webconf_edge", %peer, "conferencing server handshake timed out");
                return;
            }
        },
        Err(e) => {
            tracing::warn!(target: "webconf_edge", %peer, error = %e, "conferencing server connection not accepted");
            return;
        }
    };
    let id = shared.next_server.fetch_add(1, Ordering::Relaxed);
    shared.pool.add(Server {
        id,
        peer,
        conn: conn.clone(),
    });
    shared.metrics.servers_connected.inc();
    tracing::info!(target: "webconf_edge", %peer, server_id = id, "conferencing server connected");
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                let s = shared.clone();
                tokio::spawn(async move { control_stream(s, id, send, recv).await });
            }
            Err(e) => {
                tracing::info!(target: "webconf_edge", %peer, server_id = id, reason = %e, "conferencing server disconnected");
                break;
            }
        }
    }
    shared.pool.remove(id);
    shared.metrics.servers_connected.dec();
}

/// Reads REGISTER frames and answers each with REGISTERED (the count of conferences the
/// server now owns). A malformed frame ends the control stream, not the connection.
async fn control_stream(
    shared: Arc<Shared>,
    server_id: u64,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match wire::decode(&buf, MAX_PAYLOAD) {
            Ok(Some((frame, used))) => {
                if frame.kind != REGISTER {
                    tracing::warn!(target: "webconf_edge", server_id, kind = frame.kind, "unexpected control frame");
                    let _ = send.reset(quinn::VarInt::from_u32(1));
                    return;
                }
                let confs = match wire::parse_register(frame.payload) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(target: "webconf_edge", server_id, error = %e, "bad REGISTER");
                        let _ = send.reset(quinn::VarInt::from_u32(1));
                        return;
                    }
                };
                let owned = shared.pool.register(server_id, &confs);
                tracing::info!(target: "webconf_edge", server_id, registered = confs.len(), owned, "conferences registered");
                let mut reply = Vec::new();
                let count = u16::try_from(owned).unwrap_or(u16::MAX);
                if wire::encode(REGISTERED, &count.to_be_bytes(), &mut reply).is_err()
                    || send.write_all(&reply).await.is_err()
                {
                    return;
                }
                buf.drain(..used);
            }
            Ok(None) => match recv.read(&mut chunk).await {
                Ok(Some(n)) => buf.extend_from_slice(&chunk[..n]),
                Ok(None) | Err(_) => return,
            },
            Err(e) => {
                tracing::warn!(target: "webconf_edge", server_id, error = %e, "bad control frame");
                let _ = send.reset(quinn::VarInt::from_u32(1));
                return;
            }
        }
    }
}
