//! The SIP SERVICE listener: mutual TLS, keep-alive connections, many requests each.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use edged_role::{Handler, Incoming, Lifecycle, Refusal};
use edged_tls::PeerIdentity;
use rustls::ServerConfig;
use sip_core::{Limits, StreamFramer, StreamItem};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::handshake::accept_tls;
use crate::limits::IDLE_TIMEOUT;
use crate::peer::peer_name;
use crate::service::Service;
use crate::sip_service::{answer, bare_error};

/// The SIP SERVICE listener's connections: the TLS handshake (a trusted client
/// certificate is required) is the first stage, then requests until the client closes, the
/// connection idles out, or the role drains.
pub struct SipListener {
    pub service: Arc<Service>,
    pub tls: Arc<ArcSwap<ServerConfig>>,
    pub life: Lifecycle,
}

impl Handler for SipListener {
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
            "SIP TLS handshake refused (a trusted client certificate is required)",
        )
        .await
    }

    async fn serve(&self, (tls, peer): Self::Opened) {
        if let Err(e) = connection(tls, &self.service, self.life.draining()).await {
            tracing::debug!(target: "av_auth", %peer, error = %e, "SIP connection ended");
        }
    }

    fn timed_out(&self, _peer: SocketAddr) {
        self.service.metrics.tls_failures.inc();
    }

    fn refused(&self, peer: SocketAddr, why: Refusal) {
        edged_role::outsider_debug!(target: "av_auth", "SIP connections refused at the listener's caps", peer.ip(), %peer, reason = %why, "SIP connection closed at once");
    }
}

async fn connection(
    mut tls: TlsStream<TcpStream>,
    service: &Service,
    drain: &edged_role::DrainToken,
) -> std::io::Result<()> {
    let requester =
        peer_name(tls.get_ref().1.peer_certificates()).unwrap_or_else(|| "(unknown)".into());
    let client = PeerIdentity::of_peer(tls.get_ref().1.peer_certificates());
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
                    answer(service, &bytes, &requester, client.as_ref()).await
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
