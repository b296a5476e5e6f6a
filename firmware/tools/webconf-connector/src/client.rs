//! The reference meeting client: TLS or QUIC to the edge's external port, HELLO with the
//! conference id and session key, then DATA frames both ways.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use session_key::wire::{self, Hello, ACCEPT, CLOSE, DATA, MAX_PAYLOAD, RECORD_FRIENDLY_PAYLOAD};
use session_key::{CloseCode, ParticipantRole};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Plaintext rustls may hold for sending: a send of up to this much leaves in one write.
const TLS_SEND_BUFFER: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("QUIC: {0}")]
    Quic(String),
    #[error("the edge closed the session: {code} {reason}")]
    Closed { code: CloseCode, reason: String },
    #[error("protocol: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The edge's close code, when the edge said why.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            ClientError::Closed { code, .. } => Some(*code),
            _ => None,
        }
    }
}

trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

/// Makes clients; one QUIC endpoint (one UDP socket) serves all its QUIC sessions.
#[derive(Clone)]
pub struct Client {
    tls: Arc<rustls::ClientConfig>,
    quic: quinn::Endpoint,
    server_name: String,
}

impl Client {
    /// `tls` must trust the edge's certificate; ALPN is set here.
    pub fn new(tls: &rustls::ClientConfig, server_name: &str) -> Result<Client, ClientError> {
        let mut tls = tls.clone();
        tls.alpn_protocols = vec![wire::ALPN_CLIENT.to_vec()];
        let tls = Arc::new(tls);
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls.clone())
            .map_err(|e| ClientError::Quic(e.to_string()))?;
        let mut cc = quinn::ClientConfig::new(Arc::new(crypto));
        let mut t = quinn::TransportConfig::default();
        t.keep_alive_interval(Some(Duration::from_secs(5)));
        cc.transport_config(Arc::new(t));
        // Any local address: the edge may be on loopback or across a network (namespaces).
        let mut quic = quinn::Endpoint::client(([0, 0, 0, 0], 0).into())?;
        quic.set_default_client_config(cc);
        Ok(Client {
            tls,
            quic,
            server_name: server_name.to_owned(),
        })
    }

    pub async fn connect_tls(
        &self,
        edge: SocketAddr,
        conference: &str,
        token: &str,
    ) -> Result<Session, ClientError> {
        let tcp = TcpStream::connect(edge).await?;
        tcp.set_nodelay(true)?;
        let name = rustls::pki_types::ServerName::try_from(self.server_name.clone())
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await?;
        // A send goes out in one write: with rustls' default limit (64 KiB) a 64 KiB
        // message, framed, left as four records and then a separate tiny one.
        tls.get_mut().1.set_buffer_limit(Some(TLS_SEND_BUFFER));
        Session::start(Box::new(tls), None, conference, token).await
    }

    pub async fn connect_quic(
        &self,
        edge: SocketAddr,
        conference: &str,
        token: &str,
    ) -> Result<Session, ClientError> {
        let conn = self
            .quic
            .connect(edge, &self.server_name)
            .map_err(|e| ClientError::Quic(e.to_string()))?
            .await
            .map_err(|e| ClientError::Quic(e.to_string()))?;
        let (send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| ClientError::Quic(e.to_string()))?;
        let io = tokio::io::join(recv, send);
        Session::start(Box::new(io), Some(conn), conference, token).await
    }
}

/// Writes and flushes: TLS holds records it could not send yet until flushed.
async fn write_flush(io: &mut Box<dyn Duplex>, bytes: &[u8]) -> std::io::Result<()> {
    io.write_all(bytes).await?;
    io.flush().await
}

/// An admitted (or refused) meeting session.
pub struct Session {
    io: Box<dyn Duplex>,
    conn: Option<quinn::Connection>,
    buf: Vec<u8>,
    /// DATA payload received but not yet returned (a frame larger than what
    /// `recv_exact` asked for leaves its tail here).
    unread: Vec<u8>,
    pub role: ParticipantRole,
}

impl Session {
    async fn start(
        io: Box<dyn Duplex>,
        conn: Option<quinn::Connection>,
        conference: &str,
        token: &str,
    ) -> Result<Session, ClientError> {
        let hello = Hello {
            conference_id: conference.into(),
            token: token.into(),
        }
        .encode()
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut s = Session {
            io,
            conn,
            buf: Vec::new(),
            unread: Vec::new(),
            role: ParticipantRole::Attendee,
        };
        if let Err(e) = write_flush(&mut s.io, &hello).await {
            return Err(s.explain(e.into()));
        }
        let (kind, payload) = s.read_frame().await?;
        match kind {
            ACCEPT => {
                s.role = payload
                    .first()
                    .and_then(|&b| ParticipantRole::from_byte(b))
                    .ok_or_else(|| ClientError::Protocol("ACCEPT without a role".into()))?;
                Ok(s)
            }
            CLOSE => {
                let (code, reason) = wire::parse_close(&payload);
                Err(ClientError::Closed { code, reason })
            }
            k => Err(ClientError::Protocol(format!("unexpected frame {k:#04x}"))),
        }
    }

    /// On QUIC a refusal may arrive as the connection's close code rather than a frame.
    fn explain(&self, e: ClientError) -> ClientError {
        if let Some(quinn::ConnectionError::ApplicationClosed(c)) =
            self.conn.as_ref().and_then(|c| c.close_reason())
        {
            if let Some(code) = CloseCode::from_quic(c.error_code.into_inner()) {
                return ClientError::Closed {
                    code,
                    reason: String::from_utf8_lossy(&c.reason).into_owned(),
                };
            }
        }
        e
    }

    async fn read_frame(&mut self) -> Result<(u8, Vec<u8>), ClientError> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match wire::decode(&self.buf, MAX_PAYLOAD) {
                Ok(Some((f, used))) => {
                    let out = (f.kind, f.payload.to_vec());
                    self.buf.drain(..used);
                    return Ok(out);
                }
                Ok(None) => {}
                Err(e) => return Err(ClientError::Protocol(e.to_string())),
            }
            match self.io.read(&mut chunk).await {
                Ok(0) => {
                    return Err(self.explain(ClientError::Protocol(
                        "the edge ended the stream without CLOSE".into(),
                    )))
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(self.explain(e.into())),
            }
        }
    }

    /// Sends bytes as DATA frames.
    pub async fn send(&mut self, data: &[u8]) -> Result<(), ClientError> {
        let mut out = Vec::with_capacity(data.len() + data.len() / MAX_PAYLOAD * 3 + 3);
        for part in data.chunks(RECORD_FRIENDLY_PAYLOAD) {
            wire::encode(DATA, part, &mut out).map_err(|e| ClientError::Protocol(e.to_string()))?;
        }
        if let Err(e) = write_flush(&mut self.io, &out).await {
            return Err(self.explain(e.into()));
        }
        Ok(())
    }

    /// Sends raw bytes, unframed (tests of the edge's handling of bad input).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        if let Err(e) = write_flush(&mut self.io, bytes).await {
            return Err(self.explain(e.into()));
        }
        Ok(())
    }

    /// The next DATA payload; a CLOSE from the edge is an error carrying its code.
    pub async fn recv(&mut self) -> Result<Vec<u8>, ClientError> {
        if !self.unread.is_empty() {
            return Ok(std::mem::take(&mut self.unread));
        }
        let (kind, payload) = self.read_frame().await?;
        match kind {
            DATA => Ok(payload),
            CLOSE => {
                let (code, reason) = wire::parse_close(&payload);
                Err(ClientError::Closed { code, reason })
            }
            k => Err(ClientError::Protocol(format!("unexpected frame {k:#04x}"))),
        }
    }

    /// Receives exactly `n` payload bytes (DATA frames may split or merge writes).
    pub async fn recv_exact(&mut self, n: usize) -> Result<Vec<u8>, ClientError> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            out.extend_from_slice(&self.recv().await?);
        }
        // The edge frames what it relays afresh, so one frame may hold the end of one
        // message and the start of the next: the rest waits for the next call.
        self.unread = out.split_off(n);
        Ok(out)
    }

    /// Ends the session: CLOSE, then waits for the edge's CLOSE (data still in flight is
    /// discarded).
    pub async fn close(mut self) -> Result<CloseCode, ClientError> {
        let frame = wire::close_frame(CloseCode::Normal, "bye");
        if let Err(e) = write_flush(&mut self.io, &frame).await {
            return Err(self.explain(e.into()));
        }
        loop {
            match self.recv().await {
                Ok(_) => continue,
                Err(ClientError::Closed { code, .. }) => {
                    if let Some(c) = &self.conn {
                        c.close(0u32.into(), b"bye");
                    }
                    return Ok(code);
                }
                Err(e) => return Err(e),
            }
        }
    }
}
