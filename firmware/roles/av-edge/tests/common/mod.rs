//! A started A/V Edge on loopback and a small blocking TURN client for the tests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use av_edge::credentials::Credentials;
use edged_config::roles::av_edge::AvEdgeConfig;
use edged_config::Config;
use edged_role::test_support::TestSite;
use edged_role::{Role, Side, Transport};
use edged_store::Store;
use edged_tls::TlsMaterial;
use stun_core::{
    attr, framer, long_term_key_md5, Attribute, Class, EncodeError, Message, MessageEncoder,
    Method, TransactionId,
};

pub const REALM: &str = "edge.test";
pub const USER: &str = "alice";
pub const PASSWORD: &str = "alice-password";
/// A key ring secret written as text, the way coturn's `-W` takes it.
pub const REST_SECRET: &str = "0123456789abcdef0123456789abcdef-rest";

pub struct Harness {
    pub role: Arc<dyn Role>,
    pub store: Store,
    pub metrics: edged_metrics::Registry,
    pub tls: Arc<TlsMaterial>,
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    pub tls_addr: SocketAddr,
    _dir: TestSite,
}

/// A UDP port nobody holds now. Port 0 is not good enough for the UDP listener: the relay
/// threads bind it with SO_REUSEPORT, and Linux may then hand out a port another
/// SO_REUSEPORT socket of this user already has (another test's relay), splitting the
/// clients between two servers.
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"))
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"))
}

pub async fn start(adjust: impl FnOnce(&mut AvEdgeConfig)) -> Harness {
    let site = TestSite::new();
    let store = site.store.clone();
    let mut config = Config::embedded_default();
    config.access_edge.enabled = false;
    config.webconf_edge.enabled = false;
    config.av_auth.enabled = false;
    config.metrics.enabled = false;
    let av = &mut config.av_edge;
    av.realm = REALM.into();
    av.udp_port = free_udp_port();
    av.tcp_port = 0;
    av.tls_port = free_tcp_port();
    av.relay_threads = 1;
    // Below Linux's ephemeral range (32768-60999): the listeners above bind port 0, and a
    // listener port inside the relay range would count as a relay port, not a service port.
    av.relay_port_min = 20000;
    av.relay_port_max = 29999;
    av.demo_user = false;
    av.allowed_peer_ranges = vec!["127.0.0.0/8".into()];
    adjust(av);
    let creds = Credentials::open(store.clone()).unwrap_or_else(|e| panic!("{e}"));
    creds
        .put_user(USER, REALM, PASSWORD, edged_role::Actor::Edgectl)
        .unwrap_or_else(|e| panic!("{e}"));
    let key = relay_credentials::RelayKey::new("test", REST_SECRET.as_bytes().to_vec(), 0)
        .unwrap_or_else(|e| panic!("{e}"));
    let ring = relay_credentials::KeyRing::new(key, 3600).unwrap_or_else(|e| panic!("{e}"));
    let stored = relay_credentials::stored::encode(&ring).unwrap_or_else(|e| panic!("{e}"));
    store
        .write(|tx| {
            tx.put(
                relay_credentials::stored::STORE_NAMESPACE,
                relay_credentials::stored::STORE_KEY,
                &stored,
            )
        })
        .unwrap_or_else(|e| panic!("{e}"));
    drop(creds);
    // The ports were free when picked, but another test's client may take one before the
    // role binds it (coturn's clients open many ephemeral sockets): pick again then.
    let mut attempt = 1;
    let (role, ctx) = loop {
        let ctx = site.context(config.clone());
        match av_edge::start(ctx.clone()).await {
            Ok(role) => break (role, ctx),
            Err(e) if attempt < 5 && e.to_string().contains("in use") => {
                attempt += 1;
                config.av_edge.udp_port = free_udp_port();
                config.av_edge.tls_port = free_tcp_port();
            }
            Err(e) => panic!("start: {e}"),
        }
    };
    let status = role.status();
    let find = |t: Transport| -> SocketAddr {
        status
            .listeners
            .iter()
            .find(|l| l.side == Side::External && l.transport == t)
            .and_then(|l| l.address.parse().ok())
            .unwrap_or_else(|| panic!("no external {t} listener in {:?}", status.listeners))
    };
    Harness {
        udp: find(Transport::Udp),
        tcp: find(Transport::Tcp),
        tls_addr: find(Transport::Tls),
        role,
        store,
        metrics: ctx.metrics,
        tls: ctx.tls,
        _dir: site,
    }
}

/// How a test client reaches the server.
pub trait Wire {
    fn send(&mut self, bytes: &[u8]);
    /// The next message or frame, `None` on timeout.
    fn recv(&mut self) -> Option<Vec<u8>>;
    fn pad_channel_data(&self) -> bool;
}

pub struct UdpWire {
    pub sock: UdpSocket,
    pub server: SocketAddr,
}

impl UdpWire {
    pub fn new(server: SocketAddr) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        sock.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap_or_else(|e| panic!("{e}"));
        UdpWire { sock, server }
    }
}

impl Wire for UdpWire {
    fn send(&mut self, bytes: &[u8]) {
        self.sock
            .send_to(bytes, self.server)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    fn recv(&mut self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65_536];
        let (n, _) = self.sock.recv_from(&mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    }
    fn pad_channel_data(&self) -> bool {
        false
    }
}

pub struct TcpWire {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl TcpWire {
    pub fn new(server: SocketAddr) -> Self {
        let stream = TcpStream::connect(server).unwrap_or_else(|e| panic!("{e}"));
        stream
            .set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap_or_else(|e| panic!("{e}"));
        TcpWire {
            stream,
            buf: Vec::new(),
        }
    }
}

impl Wire for TcpWire {
    fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    fn recv(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Ok(Some(f)) = framer::next_frame(&self.buf) {
                let frame: Vec<u8> = self.buf.drain(..f.len()).collect();
                return Some(frame);
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
    fn pad_channel_data(&self) -> bool {
        true
    }
}

/// What came back for a request.
#[derive(Debug)]
pub struct Answer {
    pub class: Class,
    pub code: Option<u16>,
    pub bytes: Vec<u8>,
}

impl Answer {
    pub fn message(&self) -> Message<'_> {
        Message::decode(&self.bytes).unwrap_or_else(|e| panic!("answer: {e}"))
    }
    pub fn ok(&self) -> bool {
        self.class == Class::SuccessResponse
    }
}

pub type Build<'a> = &'a dyn Fn(&mut MessageEncoder<'_>) -> Result<(), EncodeError>;

pub struct Client<W: Wire> {
    pub wire: W,
    pub user: String,
    pub password: String,
    pub nonce: Option<String>,
}

pub fn tid() -> TransactionId {
    TransactionId(rand::random())
}

pub fn decode_answer(bytes: Vec<u8>) -> Answer {
    let msg = Message::decode(&bytes).unwrap_or_else(|e| panic!("answer: {e}"));
    let code = match msg.get(attr::ERROR_CODE) {
        Ok(Some(Attribute::ErrorCode(e))) => Some(e.code),
        _ => None,
    };
    let class = msg.class();
    Answer { class, code, bytes }
}

impl<W: Wire> Client<W> {
    pub fn new(wire: W) -> Self {
        Client {
            wire,
            user: USER.into(),
            password: PASSWORD.into(),
            nonce: None,
        }
    }

    /// Sends raw bytes and waits for a STUN answer (skipping Data indications).
    pub fn exchange(&mut self, bytes: &[u8]) -> Option<Answer> {
        self.wire.send(bytes);
        for _ in 0..10 {
            let got = self.wire.recv()?;
            if Message::decode(&got).is_ok_and(|m| m.class() != Class::Indication) {
                return Some(decode_answer(got));
            }
        }
        None
    }

    fn encode(&self, method: Method, build: Build<'_>, auth: bool) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut enc = MessageEncoder::new(&mut buf, method, Class::Request, tid());
        build(&mut enc).unwrap_or_else(|e| panic!("{e}"));
        if auth {
            let nonce = self.nonce.clone().unwrap_or_default();
            enc.add(&Attribute::Username(&self.user))
                .and_then(|e| e.add(&Attribute::Realm(REALM)))
                .and_then(|e| e.add(&Attribute::Nonce(&nonce)))
                .and_then(|e| {
                    e.add_message_integrity(&long_term_key_md5(&self.user, REALM, &self.password))
                })
                .unwrap_or_else(|e| panic!("{e}"));
        }
        enc.add_fingerprint().unwrap_or_else(|e| panic!("{e}"));
        buf
    }

    /// An authenticated request, learning (or refreshing) the nonce as a client does.
    pub fn request(&mut self, method: Method, build: Build<'_>) -> Answer {
        for _ in 0..3 {
            let auth = self.nonce.is_some();
            let bytes = self.encode(method, build, auth);
            let answer = self
                .exchange(&bytes)
                .unwrap_or_else(|| panic!("no answer to {method:?}"));
            if matches!(answer.code, Some(401) | Some(438)) {
                let nonce = answer.message().nonce().ok().flatten().map(str::to_string);
                let retry = !auth || answer.code == Some(438);
                self.nonce = nonce;
                if retry {
                    continue;
                }
            }
            return answer;
        }
        panic!("authentication did not converge");
    }

    pub fn allocate(&mut self) -> SocketAddr {
        let a = self.request(Method::ALLOCATE, &|e| {
            e.add(&Attribute::RequestedTransport(stun_core::TRANSPORT_UDP))?;
            Ok(())
        });
        assert!(a.ok(), "allocate failed: {:?}", a.code);
        a.message()
            .address(attr::XOR_RELAYED_ADDRESS)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no relayed address"))
    }

    pub fn permit(&mut self, peer: SocketAddr) -> Answer {
        self.request(Method::CREATE_PERMISSION, &|e| {
            e.add_xor_address(attr::XOR_PEER_ADDRESS, peer)?;
            Ok(())
        })
    }

    pub fn bind(&mut self, channel: u16, peer: SocketAddr) -> Answer {
        self.request(Method::CHANNEL_BIND, &|e| {
            e.add(&Attribute::ChannelNumber(channel))?;
            e.add_xor_address(attr::XOR_PEER_ADDRESS, peer)?;
            Ok(())
        })
    }

    pub fn send_indication(&mut self, peer: SocketAddr, data: &[u8]) {
        let mut buf = Vec::new();
        let mut enc = MessageEncoder::new(&mut buf, Method::SEND, Class::Indication, tid());
        enc.add_xor_address(attr::XOR_PEER_ADDRESS, peer)
            .and_then(|e| e.add_raw(attr::DATA, data))
            .unwrap_or_else(|e| panic!("{e}"));
        self.wire.send(&buf);
    }

    pub fn channel_data(&mut self, channel: u16, data: &[u8]) {
        let pad = self.wire.pad_channel_data();
        let mut out = vec![0u8; stun_core::channel_data::frame_len(data.len(), pad)];
        stun_core::channel_data::encode(&mut out, channel, data, pad)
            .unwrap_or_else(|e| panic!("{e}"));
        self.wire.send(&out);
    }
}

/// A peer socket on 127.0.0.3 (allowed by the tests' peer ranges, not one of the
/// appliance's own addresses).
pub fn peer() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.3:0").unwrap_or_else(|e| panic!("{e}"));
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap_or_else(|e| panic!("{e}"));
    s
}

pub fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().unwrap_or_else(|e| panic!("{e}"))
}

pub fn recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; 65_536];
    let (n, from) = s.recv_from(&mut buf).ok()?;
    buf.truncate(n);
    Some((buf, from))
}
