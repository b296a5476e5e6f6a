//! A blocking TURN client over one TCP connection (RFC 8656 framing over a stream): enough
//! to allocate and ask for RFC 6062 peer connections with long-term credentials.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use stun_core::{
    attr, long_term_key_md5, Attribute, Class, Message, MessageEncoder, Method, TransactionId,
};

pub struct TcpTurn {
    stream: TcpStream,
    user: String,
    password: String,
    realm: Option<String>,
    nonce: Option<String>,
}

/// A refusal with its STUN error code (0: no answer, the connection was closed).
#[derive(Debug)]
pub struct Refused(pub u16);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused with {}", self.0)
    }
}
impl std::error::Error for Refused {}

impl TcpTurn {
    pub fn connect(src: Ipv4Addr, server: SocketAddr, user: &str, password: &str) -> Result<Self> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.bind(&SocketAddr::from((src, 0)).into())?;
        socket.connect_timeout(&server.into(), Duration::from_secs(3))?;
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        Ok(TcpTurn {
            stream,
            user: user.into(),
            password: password.into(),
            realm: None,
            nonce: None,
        })
    }

    fn read_message(&mut self) -> Result<Vec<u8>> {
        let mut head = [0u8; 20];
        self.stream.read_exact(&mut head).map_err(|_| Refused(0))?;
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let mut msg = head.to_vec();
        msg.resize(20 + len, 0);
        self.stream
            .read_exact(&mut msg[20..])
            .map_err(|_| Refused(0))?;
        Ok(msg)
    }

    /// An authenticated request; learns realm and nonce from a 401 or 438 first.
    pub fn request(
        &mut self,
        method: Method,
        build: &dyn Fn(&mut MessageEncoder<'_>) -> Result<(), stun_core::EncodeError>,
    ) -> Result<Vec<u8>> {
        for _ in 0..3 {
            let id = TransactionId(rand::random());
            let mut buf = Vec::with_capacity(256);
            let mut enc = MessageEncoder::new(&mut buf, method, Class::Request, id);
            build(&mut enc)?;
            if let (Some(realm), Some(nonce)) = (&self.realm, &self.nonce) {
                let key = long_term_key_md5(&self.user, realm, &self.password);
                enc.add(&Attribute::Username(&self.user))?
                    .add(&Attribute::Realm(realm))?
                    .add(&Attribute::Nonce(nonce))?
                    .add_message_integrity(&key)?;
            }
            enc.add_fingerprint()?;
            self.stream.write_all(&buf).map_err(|_| Refused(0))?;
            let answer = loop {
                let a = self.read_message()?;
                // Skip indications and answers to other transactions.
                if a.get(8..20) == Some(&id.0[..]) {
                    break a;
                }
            };
            let msg = Message::decode(&answer).context("bad answer")?;
            if msg.class() == Class::SuccessResponse {
                return Ok(answer);
            }
            let code = match msg.get(attr::ERROR_CODE) {
                Ok(Some(Attribute::ErrorCode(e))) => e.code,
                _ => bail!("error answer without ERROR-CODE"),
            };
            if (code == 401 && self.nonce.is_none()) || code == 438 {
                self.realm = msg.realm().ok().flatten().map(str::to_string);
                self.nonce = msg.nonce().ok().flatten().map(str::to_string);
                continue;
            }
            return Err(Refused(code).into());
        }
        bail!("authentication did not converge")
    }

    /// A TCP allocation (RFC 6062), so that peer connections can be asked for.
    pub fn allocate_tcp(&mut self) -> Result<()> {
        self.request(Method::ALLOCATE, &|e| {
            e.add(&Attribute::RequestedTransport(stun_core::TRANSPORT_TCP))?;
            e.add(&Attribute::Lifetime(600))?;
            Ok(())
        })
        .map(|_| ())
    }

    /// Asks the relay to open a TCP connection to `peer` (RFC 6062 Connect).
    pub fn connect_peer(&mut self, peer: SocketAddr) -> Result<()> {
        self.request(Method::CONNECT, &|e| {
            e.add_xor_address(attr::XOR_PEER_ADDRESS, peer)?;
            Ok(())
        })
        .map(|_| ())
    }
}

/// The STUN error code behind a failure (0: the connection failed or closed, no answer).
pub fn refusal_code(e: &anyhow::Error) -> u16 {
    e.downcast_ref::<Refused>().map_or(0, |r| r.0)
}
