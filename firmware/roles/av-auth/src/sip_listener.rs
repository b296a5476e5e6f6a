//! The SIP SERVICE listener: mutual TLS, keep-alive connections, many requests each.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use sip_core::{Limits, StreamFramer, StreamItem};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::lifecycle::{Lifecycle, HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, MAX_CONNECTIONS};
use crate::peer::peer_name;
use crate::service::Service;
use crate::sip_service::{answer, bare_error};

pub async fn accept_loop(
    listener: TcpListener,
    service: Arc<Service>,
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
                // Out of descriptors and the like: pause instead of spinning.
                tracing::warn!(target: "av_auth", error = %e, "SIP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
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
        let (service, drain) = (service.clone(), life.drain.clone());
        life.spawn(async move {
            let _permit = permit;
            if let Err(e) = connection(tcp, acceptor, &service, drain).await {
                tracing::debug!(target: "av_auth", peer = %addr, error = %e, "SIP connection ended");
            }
        });
    }
    tracing::debug!(target: "av_auth", "SIP SERVICE listener stopped accepting");
}

async fn connection(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    service: &Service,
    drain: edged_role::DrainToken,
) -> std::io::Result<()> {
    let _ = tcp.set_nodelay(true);
    let mut tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            service.metrics.tls_failures.inc();
            tracing::info!(target: "av_auth", error = %e, "SIP TLS handshake refused (a trusted client certificate is required)");
            return Ok(());
        }
        Err(_) => {
            service.metrics.tls_failures.inc();
            return Ok(());
        }
    };
    let requester =
        peer_name(tls.get_ref().1.peer_certificates()).unwrap_or_else(|| "(unknown)".into());
    let mut framer = StreamFramer::new(Limits::default());
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // Answer everything already framed before reading again.
        loop {
            let out = match framer.next_message() {
                Ok(None) => break,
                Ok(Some(StreamItem::Ping)) => Some(b"\r\n".to_vec()),
                Ok(Some(StreamItem::Message(bytes))) => {
                    let bytes = bytes.to_vec();
                    answer(service, &bytes, &requester).await
                }
                Err(e) => {
                    // The stream cannot be resynchronised: say why and close.
                    service.metrics.bad_requests.inc();
                    tls.write_all(&bare_error(e.status(), e.reason())).await?;
                    tls.shutdown().await?;
                    return Ok(());
                }
            };
            if let Some(out) = out {
                tls.write_all(&out).await?;
            }
        }
        tls.flush().await?;
        let n = tokio::select! {
            _ = drain.cancelled() => break,
            r = tokio::time::timeout(IDLE_TIMEOUT, tls.read(&mut buf)) => match r {
                Ok(r) => r?,
                Err(_) => break,
            },
        };
        if n == 0 {
            return Ok(());
        }
        framer.push(&buf[..n]);
    }
    let _ = tls.shutdown().await;
    Ok(())
}
