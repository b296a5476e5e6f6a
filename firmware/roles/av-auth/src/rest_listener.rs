//! The HTTPS listener of the REST endpoint: TLS (client certificate optional), HTTP/1.1.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::{Extension, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::lifecycle::{Lifecycle, HANDSHAKE_TIMEOUT, MAX_CONNECTIONS};
use crate::peer::peer_name;
use crate::rest::PeerCertificate;
use crate::service::Service;

/// A client has this long to send a request's headers, also between keep-alive requests.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn accept_loop(
    listener: TcpListener,
    service: Arc<Service>,
    router: Router,
    tls: Arc<ArcSwap<ServerConfig>>,
    life: Lifecycle,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = life.drain.cancelled() => break,
            a = listener.accept() => a,
        };
        let (tcp, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(target: "av_auth", error = %e, "REST accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Past the limit a new connection is closed at once rather than starving the
        // established ones of descriptors and memory.
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(target: "av_auth", peer = %addr, "connection limit reached; closing new connection");
            drop(tcp);
            continue;
        };
        service.metrics.connections.inc();
        let acceptor = TlsAcceptor::from(tls.load_full());
        let (service, router, drain) = (service.clone(), router.clone(), life.drain.clone());
        life.spawn(async move {
            let _permit = permit;
            connection(tcp, acceptor, &service, router, drain).await;
            tracing::trace!(target: "av_auth", peer = %addr, "REST connection closed");
        });
    }
    tracing::debug!(target: "av_auth", "REST listener stopped accepting");
}

async fn connection(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    service: &Service,
    router: Router,
    drain: edged_role::DrainToken,
) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            service.metrics.tls_failures.inc();
            tracing::info!(target: "av_auth", error = %e, "REST TLS handshake failed");
            return;
        }
        Err(_) => {
            service.metrics.tls_failures.inc();
            return;
        }
    };
    let peer = PeerCertificate(peer_name(tls.get_ref().1.peer_certificates()));
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
