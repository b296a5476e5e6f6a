//! Test rig: a started Access Edge on loopback, SIP peers over real TLS (a remote user's
//! client, a Director playing the next hop), all with certificates from the appliance CA.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use access_edge::AccessEdge;
use edged_config::Config;
use edged_role::test_support::TestSite;
use edged_role::{Role, RoleContext};
use edged_store::Store;
use edged_tls::rustls::pki_types::ServerName;
use edged_tls::rustls::server::WebPkiClientVerifier;
use edged_tls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use edged_tls::TlsMaterial;
use sip_core::{StreamFramer, StreamItem};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

pub type BoxStream = Box<dyn AsyncStream>;
pub trait AsyncStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> AsyncStream for T {}

pub fn fail<T>(what: &str) -> impl FnOnce(T) -> String + '_
where
    T: std::fmt::Debug,
{
    move |e| format!("{what}: {e:?}")
}

/// A SIP peer on one TLS connection.
pub struct SipPeer {
    stream: BoxStream,
    framer: StreamFramer,
}

impl SipPeer {
    pub fn new(stream: BoxStream) -> Self {
        SipPeer {
            stream,
            framer: StreamFramer::new(sip_core::Limits::default()),
        }
    }

    pub async fn send(&mut self, text: &str) {
        self.send_bytes(text.as_bytes()).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .await
            .unwrap_or_else(|e| panic!("send: {e}"));
        self.stream
            .flush()
            .await
            .unwrap_or_else(|e| panic!("flush: {e}"));
    }

    /// The next message (keep-alive pongs skipped), or None after `wait` or on close.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = vec![0u8; 65536];
        loop {
            match self.framer.next_message() {
                Ok(Some(StreamItem::Message(m))) => {
                    return Some(String::from_utf8_lossy(m).into_owned())
                }
                Ok(Some(StreamItem::Ping)) => continue,
                Ok(None) => {}
                Err(e) => panic!("peer framing: {e}"),
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.framer.push(&buf[..n]);
        }
    }

    pub async fn recv(&mut self) -> String {
        self.recv_within(Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("no message within 5 s"))
    }

    /// Raw bytes within `wait` (for keep-alive pongs), empty on timeout.
    pub async fn read_raw(&mut self, wait: Duration) -> Vec<u8> {
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(wait, self.stream.read(&mut buf)).await {
            Ok(Ok(n)) => buf[..n].to_vec(),
            _ => Vec::new(),
        }
    }

    /// True when the other side closed the connection within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let mut buf = vec![0u8; 65536];
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// First value of a header in a message text (full or compact name given by the caller).
pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
}

pub fn headers<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .collect()
}

pub fn status_of(msg: &str) -> u16 {
    msg.strip_prefix("SIP/2.0 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

pub fn method_of(msg: &str) -> &str {
    msg.split(' ').next().unwrap_or("")
}

/// A response to `req` built the way a UA does: Vias, From, To (tagged), Call-ID, CSeq.
pub fn respond(req: &str, status: u16, reason: &str, extra: &str) -> String {
    let mut out = format!("SIP/2.0 {status} {reason}\r\n");
    for v in headers(req, "Via") {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    for rr in headers(req, "Record-Route") {
        out.push_str(&format!("Record-Route: {rr}\r\n"));
    }
    let to = header(req, "To").unwrap_or("");
    let to = if to.contains("tag=") || status == 100 {
        to.to_owned()
    } else {
        format!("{to};tag=uas1")
    };
    out.push_str(&format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}Content-Length: 0\r\n\r\n",
        header(req, "From").unwrap_or(""),
        header(req, "Call-ID").unwrap_or(""),
        header(req, "CSeq").unwrap_or("")
    ));
    out
}

/// One appliance's worth of state for a test: store, config, TLS material.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub config: Config,
}

impl Site {
    /// The embedded default reduced to the Access Edge on free loopback ports, with a
    /// certificate for `sans`.
    pub fn new(sans: &[&str]) -> Site {
        edged_tls::install_crypto_provider();
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
        let TestSite { dir, store } = TestSite::new();
        let mut config = Config::embedded_default();
        config.webconf_edge.enabled = false;
        config.av_edge.enabled = false;
        config.av_auth.enabled = false;
        config.access_edge.remote_users_port = 0;
        config.access_edge.federation_port = 0;
        config.access_edge.internal_port = 0;
        config.access_edge.health_check_interval_secs = 1;
        config.access_edge.idle_timeout_secs = 3;
        config.access_edge.transaction_timeout_secs = 3;
        if let Some(c) = config.certificates.get_mut("default") {
            c.sans = sans.iter().map(|s| (*s).to_owned()).collect();
        }
        Site { dir, store, config }
    }

    pub fn tls(&self) -> TlsMaterial {
        TlsMaterial::load(&self.config, &self.store).unwrap_or_else(|e| panic!("tls: {e}"))
    }

    /// Writes this site's CA to a file another site can trust.
    pub fn ca_file(&self) -> PathBuf {
        let tls = self.tls();
        let path = self.dir.path().join("ca.pem");
        std::fs::write(&path, tls.ca_pem().unwrap_or_default())
            .unwrap_or_else(|e| panic!("write ca: {e}"));
        path
    }

    pub async fn start(&self) -> Arc<AccessEdge> {
        let ctx = RoleContext::for_test_on(&self.store, self.config.clone());
        access_edge::start_edge(ctx)
            .await
            .unwrap_or_else(|e| panic!("start: {e}"))
    }

    fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        edged_tls::add_pem_anchors(&mut roots, "test", self.tls().ca_pem().unwrap_or_default())
            .unwrap_or_else(|e| panic!("anchors: {e}"));
        Arc::new(roots)
    }

    fn issued(
        &self,
        cn: &str,
        sans: &[&str],
    ) -> (
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ) {
        let _ = self.tls();
        let issued = edged_tls::issue_client_certificate(
            &self.store,
            cn,
            &sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap_or_else(|e| panic!("issue: {e}"));
        let chain = rustls_pemfile::certs(&mut issued.chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_else(|e| panic!("pem: {e}"));
        let key = rustls_pemfile::private_key(&mut issued.key_pem.as_bytes())
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("key"));
        (chain, key)
    }

    /// A TLS client config trusting this site's CA, optionally with a client certificate.
    pub fn client_config(&self, client_cert: Option<(&str, &[&str])>) -> Arc<ClientConfig> {
        let b = ClientConfig::builder().with_root_certificates(self.roots());
        Arc::new(match client_cert {
            None => b.with_no_client_auth(),
            Some((cn, sans)) => {
                let (chain, key) = self.issued(cn, sans);
                b.with_client_auth_cert(chain, key)
                    .unwrap_or_else(|e| panic!("client cert: {e}"))
            }
        })
    }

    /// A TLS client config trusting this site's CA, with a client certificate for `sans`
    /// issued by `issuer`'s CA (a partner's certificate, seen from this site).
    pub fn client_config_issued_by(
        &self,
        issuer: &Site,
        cn: &str,
        sans: &[&str],
    ) -> Arc<ClientConfig> {
        let (chain, key) = issuer.issued(cn, sans);
        Arc::new(
            ClientConfig::builder()
                .with_root_certificates(self.roots())
                .with_client_auth_cert(chain, key)
                .unwrap_or_else(|e| panic!("client cert: {e}")),
        )
    }

    /// A Director: a mutual-TLS server with a certificate from this site's CA, on 127.0.0.2.
    pub async fn director(&self) -> Director {
        let (chain, key) = self.issued("director", &["127.0.0.2"]);
        let verifier = WebPkiClientVerifier::builder(self.roots())
            .build()
            .unwrap_or_else(|e| panic!("verifier: {e}"));
        let cfg = ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap_or_else(|e| panic!("server cfg: {e}"));
        let listener = TcpListener::bind("127.0.0.2:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        Director {
            addr: listener
                .local_addr()
                .unwrap_or_else(|e| panic!("addr: {e}")),
            listener,
            acceptor: TlsAcceptor::from(Arc::new(cfg)),
        }
    }
}

pub struct Director {
    pub addr: SocketAddr,
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

impl Director {
    /// Accepts the edge's next connection that completes TLS (health checks may open one).
    pub async fn accept(&self) -> SipPeer {
        loop {
            let (tcp, _) = tokio::time::timeout(Duration::from_secs(5), self.listener.accept())
                .await
                .unwrap_or_else(|_| panic!("the edge did not connect to the director"))
                .unwrap_or_else(|e| panic!("accept: {e}"));
            if let Ok(Ok(s)) =
                tokio::time::timeout(Duration::from_secs(5), self.acceptor.accept(tcp)).await
            {
                return SipPeer::new(Box::new(s));
            }
        }
    }
}

/// Connects over TLS to `addr`, verifying the edge's certificate for `name`.
pub async fn connect(cfg: Arc<ClientConfig>, addr: SocketAddr, name: &str) -> SipPeer {
    let tcp = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let name = ServerName::try_from(name.to_owned()).unwrap_or_else(|e| panic!("name: {e}"));
    let s = TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS to {addr}: {e}"));
    SipPeer::new(Box::new(s))
}

/// Listener address of the role by purpose substring.
pub fn listener(edge: &AccessEdge, purpose: &str) -> SocketAddr {
    edge.status()
        .listeners
        .iter()
        .find(|l| l.purpose.contains(purpose))
        .and_then(|l| l.address.parse().ok())
        .unwrap_or_else(|| panic!("no {purpose} listener"))
}

/// A request from a remote user of example.test.
pub fn request(method: &str, branch: &str, call_id: &str, extra: &str) -> String {
    format!(
        "{method} sip:bob@example.test SIP/2.0\r\nVia: SIP/2.0/TLS 192.0.2.10:5061;branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.test>;tag=a1\r\nTo: <sip:bob@example.test>\r\nCall-ID: {call_id}\r\nCSeq: 1 {method}\r\nContact: <sip:alice@192.0.2.10:5061;transport=tls>\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

/// The next request a Director receives, answering the edge's health-check OPTIONS on the
/// way; None when nothing else arrives within `wait`.
pub async fn next_request_within(dir: &mut SipPeer, wait: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = dir.recv_within(left).await?;
        if header(&m, "Call-ID").is_some_and(|c| c.starts_with("hc")) {
            dir.send(&respond(&m, 200, "OK", "")).await;
            continue;
        }
        return Some(m);
    }
}

pub async fn next_request(dir: &mut SipPeer) -> String {
    next_request_within(dir, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("the director received no request within 5 s"))
}

/// Alice's INVITE through the edge until it rings: 100 to her, the INVITE at the Director,
/// 180 from the Director back to her. Returns the Director's connection and the INVITE it
/// received.
pub async fn ringing_invite(
    alice: &mut SipPeer,
    director: &Director,
    branch: &str,
    call_id: &str,
) -> (SipPeer, String) {
    alice.send(&request("INVITE", branch, call_id, "")).await;
    assert_eq!(status_of(&alice.recv().await), 100);
    let mut dir = director.accept().await;
    let inv = next_request(&mut dir).await;
    assert!(inv.starts_with("INVITE "), "{inv}");
    dir.send(&respond(&inv, 180, "Ringing", "")).await;
    assert_eq!(status_of(&alice.recv().await), 180);
    (dir, inv)
}
