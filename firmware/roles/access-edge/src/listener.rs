//! Accept loops of the three listeners: per-address limits, handshake timeout, then a
//! connection handed to the proxy.

use std::sync::{Arc, PoisonError};

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::conn::{self, Origin};
use crate::proxy::Shared;
use crate::tls_peer::{certificate_names, EdgeTls};

/// Which listener config of [`EdgeTls`] an origin uses.
fn server_config(tls: &EdgeTls, origin: Origin) -> Arc<ServerConfig> {
    match origin {
        Origin::RemoteUser => tls.remote_users.clone(),
        Origin::Federation => tls.federation.clone(),
        _ => tls.internal.clone(),
    }
}

pub async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, origin: Origin) {
    loop {
        let accepted = tokio::select! {
            _ = shared.accepting.cancelled() => return,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors or similar: pause briefly instead of spinning.
                tracing::warn!(target: "access_edge", error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let ip = peer.ip();
        let admitted = {
            let now = shared.now_ms();
            let mut guard = shared.guard.lock().unwrap_or_else(PoisonError::into_inner);
            guard.connection_opened(ip, now).and_then(|()| {
                guard
                    .handshake_started(ip, now)
                    .inspect_err(|_| guard.connection_closed(ip))
            })
        };
        if let Err(why) = admitted {
            shared.counters.connections_refused.inc();
            tracing::info!(target: "access_edge", %peer, reason = ?why, "connection refused by per-address limit");
            drop(tcp);
            continue;
        }
        let _ = tcp.set_nodelay(true);
        let acceptor = TlsAcceptor::from(server_config(&shared.edge_tls(), origin));
        let timeout = shared.settings().handshake_timeout;
        let shared = shared.clone();
        tokio::spawn(async move {
            let release = {
                let shared = shared.clone();
                move || {
                    shared
                        .guard
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .connection_closed(ip)
                }
            };
            let stream = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    shared.counters.handshake_failures.inc();
                    tracing::info!(target: "access_edge", %peer, error = %e, "TLS handshake failed");
                    release();
                    return;
                }
                Err(_) => {
                    shared.counters.handshake_failures.inc();
                    tracing::info!(target: "access_edge", %peer, "TLS handshake timed out");
                    release();
                    return;
                }
            };
            let names = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| certificate_names(c))
                .unwrap_or_default();
            conn::spawn(
                &shared,
                stream,
                peer,
                origin,
                names,
                None,
                Some(Box::new(release)),
            );
        });
    }
}
