//! The HTTPS listener of the REST endpoint: TLS (client certificate optional), HTTP/1.1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::{Extension, Router};
use edged_role::{Handler, Incoming, Lifecycle, Refusal};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::handshake::accept_tls;
use crate::peer::peer_name;
use crate::rest::PeerCertificate;
use crate::service::Service;

/// A client has this long to send a request's headers, also between keep-alive requests.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// The REST listener's connections: the TLS handshake is the first stage (the header
/// deadline of hyper bounds each request after it).
pub struct RestListener {
    pub service: Arc<Service>,
    pub router: Router,
    pub tls: Arc<ArcSwap<ServerConfig>>,
    pub life: Lifecycle,
}

impl Handler for RestListener {
    type Ticket = ();
    type Opened = (TlsStream<TcpStream>, SocketAddr);

    fn admit(&self, _peer: SocketAddr) -> Option<()> {
        self.service.metrics.connections.inc();
        Some(())
    }

    async fn open(&self, incoming: Incoming, _ticket: ()) -> Option<Self::Opened> {
        accept_tls(
            &self.service,
            &self.tls,
            incoming,
            "REST TLS handshake failed",
        )
        .await
    }

    async fn serve(&self, (tls, peer): Self::Opened) {
        connection(tls, self.router.clone(), self.life.draining()).await;
        tracing::trace!(target: "av_auth", %peer, "REST connection closed");
    }

    fn timed_out(&self, _peer: SocketAddr) {
        self.service.metrics.tls_failures.inc();
    }

    fn refused(&self, peer: SocketAddr, why: Refusal) {
        edged_role::outsider_debug!(target: "av_auth", "REST connections refused at the listener's caps", peer.ip(), %peer, reason = %why, "REST connection closed at once");
    }
}

async fn connection(tls: TlsStream<TcpStream>, router: Router, drain: &edged_role::DrainToken) {
    let certs = tls.get_ref().1.peer_certificates();
    let peer = PeerCertificate {
        name: peer_name(certs),
        identity: edged_tls::PeerIdentity::of_peer(certs),
    };
    let svc = TowerToHyperService::new(router.layer(Extension(peer)));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true)
        .serve_connection(TokioIo::new(tls), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(target: "av_auth", error = %e, "REST connection error");
            }
        }
        _ = drain.cancelled() => {
            // Finish the request in flight, then close instead of keeping the connection.
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
