//! The three listeners' connections: the per-address guard of the policy admits them, the
//! TLS handshake is their first stage, then the connection is handed to the proxy.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use edged_role::{Handler, Incoming, Refusal};
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
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

/// The connections of one listener.
pub struct EdgeListener {
    pub shared: Arc<Shared>,
    pub origin: Origin,
}

/// A connection's place in the per-address guard, given back however the connection ends.
pub struct GuardSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
    external: bool,
}

impl Drop for GuardSlot {
    fn drop(&mut self) {
        self.shared
            .guard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .connection_closed(self.ip, self.external);
    }
}

impl Handler for EdgeListener {
    type Ticket = GuardSlot;
    type Opened = (TlsStream<TcpStream>, SocketAddr, GuardSlot);

    fn admit(&self, peer: SocketAddr) -> Option<GuardSlot> {
        let ip = peer.ip();
        let external = self.origin.is_external();
        let admitted = {
            let now = self.shared.now_ms();
            let mut guard = self
                .shared
                .guard
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            guard.connection_opened(ip, now, external).and_then(|()| {
                guard
                    .handshake_started(ip, now)
                    .inspect_err(|_| guard.connection_closed(ip, external))
            })
        };
        match admitted {
            Ok(()) => Some(GuardSlot {
                shared: self.shared.clone(),
                ip,
                external,
            }),
            Err(why) => {
                self.shared.counters.connections_refused.inc();
                edged_role::outsider_debug!(target: "access_edge", "connections refused by the per-address limit", peer.ip(), %peer, reason = ?why, "connection refused by per-address limit");
                None
            }
        }
    }

    async fn open(&self, incoming: Incoming, slot: GuardSlot) -> Option<Self::Opened> {
        let _ = incoming.tcp.set_nodelay(true);
        let acceptor = TlsAcceptor::from(server_config(&self.shared.edge_tls(), self.origin));
        match acceptor.accept(incoming.tcp).await {
            Ok(s) => Some((s, incoming.peer, slot)),
            Err(e) => {
                self.shared.counters.handshake_failures.inc();
                edged_role::outsider_debug!(target: "access_edge", "failed TLS handshakes", incoming.peer.ip(), peer = %incoming.peer, error = %e, "TLS handshake failed");
                None
            }
        }
    }

    async fn serve(&self, (stream, peer, slot): Self::Opened) {
        let chain = stream.get_ref().1.peer_certificates().unwrap_or_default();
        let cert = conn::PeerCert {
            names: chain
                .first()
                .map(|c| certificate_names(c))
                .unwrap_or_default(),
            // Kept for the outbound verifier: only partners' connections may carry our
            // traffic to their domain.
            chain: if self.origin == Origin::Federation {
                chain.iter().map(|c| c.clone().into_owned()).collect()
            } else {
                Vec::new()
            },
        };
        // The proxy runs the connection on its own tasks; this one holds the listener's
        // place and the guard's until it ends.
        let (ended, wait) = tokio::sync::oneshot::channel::<()>();
        conn::spawn(
            &self.shared,
            stream,
            peer,
            self.origin,
            cert,
            None,
            Some(Box::new(move || {
                let _ = ended.send(());
            })),
        );
        let _ = wait.await;
        drop(slot);
    }

    fn first_request_timeout(&self) -> Option<Duration> {
        Some(self.shared.settings().handshake_timeout)
    }

    fn timed_out(&self, peer: SocketAddr) {
        self.shared.counters.handshake_failures.inc();
        edged_role::outsider_debug!(target: "access_edge", "timed-out TLS handshakes", peer.ip(), %peer, "TLS handshake timed out");
    }

    fn refused(&self, peer: SocketAddr, why: Refusal) {
        self.shared.counters.connections_refused.inc();
        edged_role::outsider_debug!(target: "access_edge", "connections refused at the listener's caps", peer.ip(), %peer, reason = %why, "connection refused by the listener's cap");
    }
}
