//! Shared by the integration tests and the bench: start the role on loopback and talk to
//! it as an internal server (SIP over mutual TLS) or a web application (HTTPS) would.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use edged_config::Config;
use edged_metrics::Registry;
use edged_role::test_support::TestSite;
use edged_role::{Role, Transport};
use edged_store::Store;
use edged_tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use edged_tls::rustls::{ClientConfig, RootCertStore};
use edged_tls::TlsMaterial;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use relay_credentials::{stored, KeyRing};
use sip_core::{Limits, StreamFramer, StreamItem};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A port free on `ip` right now (`rest_port = 0` would turn the REST endpoint off, so
/// tests cannot simply ask for port 0).
pub fn free_port(ip: IpAddr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The embedded default with the sides on `external`/`internal` and free ports.
pub fn config(external: IpAddr, internal: IpAddr) -> Config {
    let mut c = Config::embedded_default();
    c.network.external.address = external;
    c.network.internal.address = internal;
    c.av_auth.sip_port = 0;
    c.av_auth.rest_port = free_port(internal);
    c.av_auth.issuance_per_minute = 1_000_000;
    c
}

pub fn loopback_config() -> Config {
    config([127, 0, 0, 1].into(), [127, 0, 0, 2].into())
}

/// The A/V Edge and this service on loopback, nothing else: one relay thread, ports the
/// kernel picks, no demo user, loopback peers allowed so test peers can be reached.
pub fn relay_and_service_config() -> Config {
    let mut config = loopback_config();
    config.access_edge.enabled = false;
    config.webconf_edge.enabled = false;
    config.metrics.enabled = false;
    config.av_edge.udp_port = 0;
    config.av_edge.tcp_port = 0;
    config.av_edge.tls_port = 0;
    config.av_edge.relay_threads = 1;
    config.av_edge.demo_user = false;
    config.av_edge.allowed_peer_ranges = vec!["127.0.0.0/8".into()];
    config
}

pub struct Harness {
    /// The configuration the role was started with.
    pub config: Config,
    /// The temporary directory and store (shared with the relay in some tests).
    pub site: TestSite,
    pub store: Store,
    pub tls: Arc<TlsMaterial>,
    pub registry: Registry,
    pub role: Arc<dyn Role>,
    pub sip: SocketAddr,
    pub rest: SocketAddr,
}

pub async fn start(config: Config) -> Harness {
    start_with(config, TestSite::new()).await
}

/// Starts the role on a site (store and appliance CA) shared with other roles.
pub async fn start_with(config: Config, site: TestSite) -> Harness {
    let ctx = site.context(config.clone());
    let role = av_auth::start(ctx.clone()).await.expect("role starts");
    let addr = |t: Transport| -> SocketAddr {
        role.status()
            .listeners
            .iter()
            .find(|l| l.transport == t)
            .expect("listener")
            .address
            .parse()
            .expect("address")
    };
    let (sip, rest) = (addr(Transport::Mtls), addr(Transport::Https));
    Harness {
        config,
        store: site.store.clone(),
        site,
        tls: ctx.tls,
        registry: ctx.metrics,
        role,
        sip,
        rest,
    }
}

impl Harness {
    /// Applies a change from `old` to `new` (both with the harness's TLS material), as
    /// edged does on a configuration change.
    pub async fn apply(&self, old: &Config, new: &Config) -> edged_role::ApplyReport {
        let setup = |c: &Config| edged_role::Setup {
            config: Arc::new(c.clone()),
            tls: self.tls.clone(),
        };
        self.role.apply(&setup(old), &setup(new)).await
    }

    /// The relay key ring as stored.
    pub fn ring(&self) -> KeyRing {
        let bytes = self
            .store
            .get(stored::STORE_NAMESPACE, stored::STORE_KEY)
            .expect("store")
            .expect("ring exists");
        stored::decode(&bytes).expect("stored ring")
    }

    /// Replaces the stored relay key ring.
    pub fn put_ring(&self, ring: &KeyRing) {
        let bytes = stored::encode(ring).expect("ring encoded");
        self.store
            .write(|tx| tx.put(stored::STORE_NAMESPACE, stored::STORE_KEY, &bytes))
            .expect("ring stored");
    }

    /// A client certificate from the appliance CA, as a Director or pool server has.
    pub fn client_identity(
        &self,
        cn: &str,
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let issued =
            edged_tls::issue_client_certificate(&self.store, cn, &[format!("{cn}.example.test")])
                .expect("client certificate");
        let chain = rustls_pemfile::certs(&mut issued.chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("chain");
        let key = rustls_pemfile::private_key(&mut issued.key_pem.as_bytes())
            .expect("key")
            .expect("a key");
        (chain, key)
    }

    pub fn client_config(&self, cn: Option<&str>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        edged_tls::add_pem_anchors(
            &mut roots,
            "test",
            self.tls.ca_pem().expect("self-signed CA"),
        )
        .expect("CA");
        let builder = ClientConfig::builder_with_provider(edged_tls::provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let mut cfg = match cn {
            Some(cn) => {
                let (chain, key) = self.client_identity(cn);
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client cert")
            }
            None => builder.with_no_client_auth(),
        };
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(cfg)
    }
}

pub async fn tls_connect(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr)).await??;
    let name = ServerName::try_from("localhost").expect("name");
    tokio::time::timeout(IO_TIMEOUT, TlsConnector::from(cfg).connect(name, tcp)).await?
}

/// A SIP connection to the SERVICE listener.
pub struct SipClient {
    pub stream: TlsStream<TcpStream>,
    framer: StreamFramer,
    cseq: u32,
}

impl SipClient {
    pub async fn connect(h: &Harness, cn: Option<&str>) -> std::io::Result<SipClient> {
        let stream = tls_connect(h.sip, h.client_config(cn, &[])).await?;
        Ok(SipClient {
            stream,
            framer: StreamFramer::new(Limits::default()),
            cseq: 0,
        })
    }

    /// A request as an OCS front end would send it.
    pub fn request(&mut self, method: &str, content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
        self.cseq += 1;
        let ct = content_type.map_or(String::new(), |c| format!("Content-Type: {c}\r\n"));
        let mut out = format!(
            "{method} sip:edge.example.test SIP/2.0\r\n\
             Via: SIP/2.0/TLS 127.0.0.2:5061;branch=z9hG4bK{}x{}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:pool.example.test>;tag=t{}\r\n\
             To: <sip:edge.example.test>\r\n\
             Call-ID: call-{}\r\n\
             CSeq: {} {method}\r\n\
             {ct}Content-Length: {}\r\n\r\n",
            self.cseq,
            rand_suffix(),
            self.cseq,
            self.cseq,
            self.cseq,
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    }

    /// Sends raw bytes and returns the next message received.
    pub async fn exchange(&mut self, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        self.read_message().await
    }

    pub async fn read_message(&mut self) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match self.framer.next_message() {
                Ok(Some(StreamItem::Message(m))) => return Ok(m.to_vec()),
                Ok(Some(StreamItem::Ping)) => continue,
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
            let n = tokio::time::timeout(IO_TIMEOUT, self.stream.read(&mut buf)).await??;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.framer.push(&buf[..n]);
        }
    }

    /// SERVICE with an MS-AVEDGEA body; returns (status, whole response).
    pub async fn service(
        &mut self,
        content_type: &str,
        body: &[u8],
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let req = self.request("SERVICE", Some(content_type), body);
        let resp = self.exchange(&req).await?;
        Ok((status_of(&resp), resp))
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The status code of a response, read from its status line (error answers to unparsable
/// requests carry no dialog headers, so a full parse would refuse them).
pub fn status_of(resp: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(resp);
    text.strip_prefix("SIP/2.0 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not a SIP response: {text}"))
}

pub fn header_of(resp: &[u8], name: &str) -> Option<String> {
    let msg = sip_core::parse(resp).ok()?;
    msg.first(name).map(str::to_owned)
}

pub fn body_of(resp: &[u8]) -> Vec<u8> {
    sip_core::parse(resp)
        .map(|m| m.body().to_vec())
        .unwrap_or_default()
}

/// An HTTP/1.1 keep-alive connection to the REST listener.
pub struct RestClient {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    pub host: String,
}

pub struct RestResponse {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub json: serde_json::Value,
}

impl RestClient {
    pub async fn connect(h: &Harness, cn: Option<&str>) -> std::io::Result<RestClient> {
        let tls = tls_connect(h.rest, h.client_config(cn, &[b"http/1.1"])).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Ok(RestClient {
            sender,
            host: h.rest.to_string(),
        })
    }

    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> std::io::Result<RestResponse> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Empty::new()).map_err(std::io::Error::other)?;
        let resp = tokio::time::timeout(IO_TIMEOUT, self.sender.send_request(req))
            .await?
            .map_err(std::io::Error::other)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        let json = if body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&body).into())
            })
        };
        Ok(RestResponse {
            status,
            headers,
            json,
        })
    }

    pub async fn get(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> std::io::Result<RestResponse> {
        self.request("GET", path, headers).await
    }
}

/// Creates an API key through the role's admin action and returns its text.
pub async fn create_api_key(h: &Harness, name: &str) -> String {
    let v = h
        .role
        .action(
            "create-api-key",
            serde_json::json!({ "name": name }),
            edged_role::Actor::Edgectl,
        )
        .await
        .expect("create-api-key");
    v["key"].as_str().expect("key text").to_owned()
}
