//! The TLS handshake both listeners open a connection with (the first stage of the shared
//! accept loop), counted and logged the same way for each.

use std::net::SocketAddr;

use arc_swap::ArcSwap;
use edged_role::Incoming;
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::service::Service;

/// Completes the handshake with the listener's current configuration; a failure is
/// counted and logged with `refused`, the listener's own words for it.
pub async fn accept_tls(
    service: &Service,
    tls: &ArcSwap<ServerConfig>,
    incoming: Incoming,
    refused: &'static str,
) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
    let _ = incoming.tcp.set_nodelay(true);
    let acceptor = TlsAcceptor::from(tls.load_full());
    match acceptor.accept(incoming.tcp).await {
        Ok(t) => Some((t, incoming.peer)),
        Err(e) => {
            service.metrics.tls_failures.inc();
            edged_role::outsider_debug!(target: "av_auth", "failed TLS handshakes", incoming.peer.ip(), peer = %incoming.peer, error = %e, "{refused}");
            None
        }
    }
}
