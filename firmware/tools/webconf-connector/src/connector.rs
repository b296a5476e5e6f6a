//! The conferencing-server side: connect out to the edge's internal port (TCP, mutual TLS,
//! HTTP/2 streams: `webconf_link`), register conferences on the control stream the edge
//! opens, accept one stream per admitted client session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use session_key::wire::{
    self, SessionHeader, ALPN_INTERNAL, KEYS, MAX_PAYLOAD, REGISTERED, SESSION,
};
use session_key::KeyRing;
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinHandle;
use webconf_link::server::IncomingStream;
use webconf_link::{LinkError, SessionRecv, SessionSend, CONTROL_PATH, SESSION_PATH};

/// How long connecting, both handshakes and the edge's control stream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("cannot reach the edge: {0}")]
    Connect(String),
    #[error("link: {0}")]
    Link(#[from] LinkError),
    #[error("edge protocol: {0}")]
    Protocol(String),
    #[error("the edge closed the connection: {0}")]
    Closed(String),
}

/// A live connection to the edge.
pub struct Connector {
    streams: Mutex<mpsc::Receiver<IncomingStream>>,
    control_send: SessionSend,
    /// REGISTERED answers, from the control reader.
    registered: mpsc::Receiver<u16>,
    /// The session-key ring the edge pushed last.
    keys: watch::Receiver<Option<Arc<KeyRing>>>,
    /// Moves the link's bytes; aborting it closes the connection.
    driver: JoinHandle<LinkError>,
    control_reader: JoinHandle<()>,
    remote: SocketAddr,
}

/// One client session handed over by the edge.
pub struct IncomingSession {
    pub header: SessionHeader,
    pub send: SessionSend,
    pub recv: SessionRecv,
    /// Client bytes that arrived with the header.
    pub leftover: Vec<u8>,
}

/// Reads one frame from a stream into `buf` (keeping what follows it).
async fn read_frame(
    recv: &mut SessionRecv,
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
        match recv.read(&mut chunk).await? {
            Some(n) => buf.extend_from_slice(&chunk[..n]),
            None => {
                return Err(ConnectorError::Protocol(
                    "stream ended inside a frame".into(),
                ))
            }
        }
    }
}

impl Connector {
    /// Connects to the edge at `edge` (certificate name `server_name`) with `tls` (which must
    /// carry the connector's client certificate and ALPN `edged-webconf-internal/2`) and
    /// registers `conferences` (none: serve any conference as a pool member).
    pub async fn connect(
        edge: SocketAddr,
        server_name: &str,
        tls: Arc<rustls::ClientConfig>,
        conferences: &[String],
    ) -> Result<Connector, ConnectorError> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|e| ConnectorError::Connect(format!("server name {server_name}: {e}")))?;
        let (mut streams, driver) = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let tcp = tokio::net::TcpStream::connect(edge)
                .await
                .map_err(|e| ConnectorError::Connect(format!("{edge}: {e}")))?;
            let _ = tcp.set_nodelay(true);
            let mut tls = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .map_err(|e| ConnectorError::Connect(format!("TLS with {edge}: {e}")))?;
            tls.get_mut()
                .1
                .set_buffer_limit(Some(webconf_link::TLS_SEND_BUFFER));
            if tls.get_ref().1.alpn_protocol() != Some(ALPN_INTERNAL) {
                return Err(ConnectorError::Connect(format!(
                    "{edge} did not agree on ALPN {}",
                    String::from_utf8_lossy(ALPN_INTERNAL)
                )));
            }
            Ok(webconf_link::server::handshake(tls).await?)
        })
        .await
        .map_err(|_| {
            ConnectorError::Connect(format!("{edge}: no answer in {CONNECT_TIMEOUT:?}"))
        })??;
        let driver = tokio::spawn(driver);
        let control = match tokio::time::timeout(CONNECT_TIMEOUT, streams.recv()).await {
            Ok(Some(s)) if s.path == CONTROL_PATH => s,
            Ok(Some(s)) => {
                driver.abort();
                return Err(ConnectorError::Protocol(format!(
                    "expected the control stream first, got {}",
                    s.path
                )));
            }
            Ok(None) => {
                let reason = match driver.await {
                    Ok(e) => e.to_string(),
                    Err(e) => e.to_string(),
                };
                return Err(ConnectorError::Closed(reason));
            }
            Err(_) => {
                driver.abort();
                return Err(ConnectorError::Protocol(
                    "the edge opened no control stream".into(),
                ));
            }
        };
        let (registered_tx, registered) = mpsc::channel(4);
        let (keys_tx, mut keys) = watch::channel(None);
        let control_reader = tokio::spawn(read_control(control.recv, registered_tx, keys_tx));
        let mut c = Connector {
            streams: Mutex::new(streams),
            control_send: control.send,
            registered,
            keys: keys.clone(),
            driver,
            control_reader,
            remote: edge,
        };
        c.register(conferences).await?;
        // The edge pushes its key ring right after the first registration: wait for it, so
        // a connector can mint as soon as it is connected.
        let _ = tokio::time::timeout(CONNECT_TIMEOUT, keys.wait_for(Option::is_some)).await;
        Ok(c)
    }

    /// Registers more conferences; returns how many the edge now routes to this server.
    pub async fn register(&mut self, conferences: &[String]) -> Result<u16, ConnectorError> {
        let frame = wire::encode_register(conferences)
            .map_err(|e| ConnectorError::Protocol(e.to_string()))?;
        self.control_send.write_all(&frame).await?;
        match tokio::time::timeout(CONNECT_TIMEOUT, self.registered.recv()).await {
            Ok(Some(count)) => Ok(count),
            Ok(None) => Err(ConnectorError::Closed(
                "the control stream ended before REGISTERED".into(),
            )),
            Err(_) => Err(ConnectorError::Protocol(format!(
                "no REGISTERED within {CONNECT_TIMEOUT:?}"
            ))),
        }
    }

    /// The session-key ring the edge pushed last (at connect, then at every rotation);
    /// `None` only if the edge has pushed none.
    pub fn key_ring(&self) -> Option<Arc<KeyRing>> {
        self.keys.borrow().clone()
    }

    /// Follows the pushed key ring: `changed()` wakes at each push.
    pub fn key_updates(&self) -> watch::Receiver<Option<Arc<KeyRing>>> {
        self.keys.clone()
    }

    /// The next client session.
    pub async fn accept(&self) -> Result<IncomingSession, ConnectorError> {
        let stream = self
            .streams
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(|| ConnectorError::Closed("the link to the edge is closed".into()))?;
        let IncomingStream {
            path,
            mut send,
            mut recv,
        } = stream;
        if path != SESSION_PATH {
            send.reset(u32::from(webconf_link::Reason::REFUSED_STREAM));
            return Err(ConnectorError::Protocol(format!(
                "unexpected stream {path}"
            )));
        }
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
                Err(ConnectorError::Protocol(e))
                | Err(ConnectorError::Link(LinkError::Protocol(e))) => {
                    tracing::warn!(target: "webconf_connector", error = %e, "bad session stream");
                }
                Err(ConnectorError::Link(LinkError::Reset(code))) => {
                    tracing::debug!(target: "webconf_connector", code, "session reset before its header");
                }
                Err(e) => return e,
            }
        }
    }

    /// Closes the connection (the edge closes the sessions it carried at once).
    pub async fn close(&self) {
        self.control_reader.abort();
        self.driver.abort();
        // Let the runtime drop the connection before returning.
        tokio::task::yield_now().await;
    }

    pub fn remote_address(&self) -> SocketAddr {
        self.remote
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        self.control_reader.abort();
        self.driver.abort();
    }
}

/// Reads the control stream for as long as the link lives: REGISTERED answers go to
/// `register`, KEYS pushes replace the ring.
async fn read_control(
    mut recv: SessionRecv,
    registered: mpsc::Sender<u16>,
    keys: watch::Sender<Option<Arc<KeyRing>>>,
) {
    let mut buf = Vec::new();
    loop {
        let (kind, payload) = match read_frame(&mut recv, &mut buf).await {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(target: "webconf_connector", error = %e, "control stream ended");
                return;
            }
        };
        match kind {
            REGISTERED if payload.len() == 2 => {
                let _ = registered
                    .send(u16::from_be_bytes([payload[0], payload[1]]))
                    .await;
            }
            KEYS => match wire::parse_keys(&payload)
                .map_err(|e| e.to_string())
                .and_then(|records| KeyRing::from_records(records).map_err(|e| e.to_string()))
            {
                Ok(ring) => {
                    tracing::info!(target: "webconf_connector", keys = ring.records().len(), "session keys received from the edge");
                    keys.send_replace(Some(Arc::new(ring)));
                }
                Err(e) => {
                    tracing::warn!(target: "webconf_connector", error = %e, "bad KEYS frame from the edge; keeping the previous ring");
                }
            },
            other => {
                tracing::warn!(target: "webconf_connector", kind = other, "unexpected control frame from the edge");
                return;
            }
        }
    }
}

/// Echoes one session: what the client sends comes back unchanged.
pub async fn echo(mut s: IncomingSession) {
    if !s.leftover.is_empty() && s.send.write_all(&s.leftover).await.is_err() {
        return;
    }
    // The received pieces go back as they are: no copy.
    loop {
        match s.recv.chunk().await {
            Ok(Some(piece)) => {
                if s.send.send(piece).await.is_err() {
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
