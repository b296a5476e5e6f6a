//! The conferencing-server side: connect out to the edge's internal port (QUIC, mutual
//! TLS), register conferences, accept one stream per admitted client session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use session_key::wire::{self, SessionHeader, MAX_PAYLOAD, REGISTERED, SESSION};

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("QUIC: {0}")]
    Quic(String),
    #[error("edge protocol: {0}")]
    Protocol(String),
    #[error("the edge closed the connection: {0}")]
    Closed(String),
}

fn quic(e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Quic(e.to_string())
}

/// A live connection to the edge.
pub struct Connector {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    control_send: quinn::SendStream,
    control_recv: quinn::RecvStream,
}

/// One client session handed over by the edge.
pub struct IncomingSession {
    pub header: SessionHeader,
    pub send: quinn::SendStream,
    pub recv: quinn::RecvStream,
    /// Client bytes that arrived with the header.
    pub leftover: Vec<u8>,
}

/// Reads one frame from a QUIC stream into `buf` (keeping what follows it).
async fn read_frame(
    recv: &mut quinn::RecvStream,
    buf: &mut Vec<u8>,
) -> Result<(u8, Vec<u8>), ConnectorError> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((f, used)) =
            wire::decode(buf, MAX_PAYLOAD).map_err(|e| ConnectorError::Protocol(e.to_string()))?
        {
            let out = (f.kind, f.payload.to_vec());
            buf.drain(..used);
            return Ok(out);
        }
        match recv.read(&mut chunk).await {
            Ok(Some(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(None) => {
                return Err(ConnectorError::Protocol(
                    "stream ended inside a frame".into(),
                ))
            }
            Err(e) => return Err(quic(e)),
        }
    }
}

impl Connector {
    /// Connects to the edge at `edge` (certificate name `server_name`) with `tls` (which must
    /// carry the connector's client certificate and ALPN `edged-webconf-internal/1`) and
    /// registers `conferences` (none: serve any conference as a pool member).
    pub async fn connect(
        edge: SocketAddr,
        server_name: &str,
        tls: Arc<rustls::ClientConfig>,
        conferences: &[String],
    ) -> Result<Connector, ConnectorError> {
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(quic)?;
        let mut cc = quinn::ClientConfig::new(Arc::new(crypto));
        let mut t = quinn::TransportConfig::default();
        // The edge opens one stream per client session.
        t.max_concurrent_bidi_streams(10_000u32.into());
        t.keep_alive_interval(Some(Duration::from_secs(2)));
        t.max_idle_timeout(Some(quinn::VarInt::from_u32(8_000).into()));
        cc.transport_config(Arc::new(t));
        let bind: SocketAddr = if edge.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let mut endpoint = quinn::Endpoint::client(bind).map_err(quic)?;
        endpoint.set_default_client_config(cc);
        let conn = endpoint
            .connect(edge, server_name)
            .map_err(quic)?
            .await
            .map_err(quic)?;
        let (control_send, control_recv) = conn.open_bi().await.map_err(quic)?;
        let mut c = Connector {
            endpoint,
            conn,
            control_send,
            control_recv,
        };
        c.register(conferences).await?;
        Ok(c)
    }

    /// Registers more conferences; returns how many the edge now routes to this server.
    pub async fn register(&mut self, conferences: &[String]) -> Result<u16, ConnectorError> {
        let frame = wire::encode_register(conferences)
            .map_err(|e| ConnectorError::Protocol(e.to_string()))?;
        self.control_send.write_all(&frame).await.map_err(quic)?;
        let mut buf = Vec::new();
        let (kind, payload) = read_frame(&mut self.control_recv, &mut buf).await?;
        if kind != REGISTERED || payload.len() != 2 {
            return Err(ConnectorError::Protocol(format!(
                "expected REGISTERED, got frame {kind:#04x}"
            )));
        }
        Ok(u16::from_be_bytes([payload[0], payload[1]]))
    }

    /// The next client session.
    pub async fn accept(&self) -> Result<IncomingSession, ConnectorError> {
        let (send, mut recv) = self
            .conn
            .accept_bi()
            .await
            .map_err(|e| ConnectorError::Closed(e.to_string()))?;
        let mut buf = Vec::new();
        let (kind, payload) = read_frame(&mut recv, &mut buf).await?;
        if kind != SESSION {
            return Err(ConnectorError::Protocol(format!(
                "expected SESSION, got frame {kind:#04x}"
            )));
        }
        let header =
            SessionHeader::parse(&payload).map_err(|e| ConnectorError::Protocol(e.to_string()))?;
        Ok(IncomingSession {
            header,
            send,
            recv,
            leftover: buf,
        })
    }

    /// Accepts sessions and echoes every byte back until the connection ends.
    pub async fn serve_echo(&self) -> ConnectorError {
        loop {
            match self.accept().await {
                Ok(s) => {
                    tokio::spawn(echo(s));
                }
                Err(ConnectorError::Protocol(e)) => {
                    tracing::warn!(target: "webconf_connector", error = %e, "bad session stream");
                }
                Err(e) => return e,
            }
        }
    }

    /// Closes the connection cleanly (the edge closes the sessions it carried).
    pub async fn close(&self) {
        self.conn.close(0u32.into(), b"connector stopping");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }

    /// The largest UDP payload this side currently sends to the edge (path MTU
    /// discovery raises it above 1452 where the path carries more, e.g. loopback).
    pub fn path_mtu(&self) -> u16 {
        self.conn.stats().path.current_mtu
    }

    pub fn remote_address(&self) -> SocketAddr {
        self.conn.remote_address()
    }
}

/// Echoes one session: what the client sends comes back unchanged.
pub async fn echo(mut s: IncomingSession) {
    if !s.leftover.is_empty() && s.send.write_all(&s.leftover).await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.recv.read(&mut buf).await {
            Ok(Some(n)) => {
                if s.send.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            Ok(None) => {
                let _ = s.send.finish();
                return;
            }
            Err(_) => return,
        }
    }
}
