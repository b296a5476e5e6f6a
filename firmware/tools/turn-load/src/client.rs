//! A blocking TURN client over UDP: enough of RFC 8656 to set up a relayed flow.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use stun_core::{
    attr, long_term_key_md5, Attribute, Class, EncodeError, Message, MessageEncoder, Method,
    TransactionId,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("no answer from {0}")]
    Timeout(SocketAddr),
    #[error("{method} refused: {code} {reason}")]
    Refused {
        method: &'static str,
        code: u16,
        reason: String,
    },
    #[error("bad answer: {0}")]
    BadAnswer(String),
    #[error("encoding: {0}")]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Srtp(#[from] crate::srtp::SrtpError),
}

/// How the client proves who it is.
#[derive(Debug, Clone)]
pub enum Credentials {
    LongTerm {
        user: String,
        password: String,
    },
    /// TURN REST: the username carries the expiry, the password is derived from the secret.
    Rest {
        user: String,
        secret: String,
        ttl: u64,
    },
}

impl Credentials {
    fn username_password(&self) -> (String, String) {
        match self {
            Credentials::LongTerm { user, password } => (user.clone(), password.clone()),
            Credentials::Rest { user, secret, ttl } => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let username = format!("{}:{user}", now + ttl);
                let password = relay_credentials::password(secret.as_bytes(), &username);
                (username, password)
            }
        }
    }
}

pub struct TurnClient {
    pub socket: Arc<UdpSocket>,
    pub server: SocketAddr,
    username: String,
    password: String,
    realm: Option<String>,
    nonce: Option<String>,
}

fn method_name(m: Method) -> &'static str {
    m.name().unwrap_or("request")
}

impl TurnClient {
    pub fn new(
        socket: Arc<UdpSocket>,
        server: SocketAddr,
        creds: &Credentials,
    ) -> Result<Self, ClientError> {
        socket.set_read_timeout(Some(Duration::from_millis(500)))?;
        let (username, password) = creds.username_password();
        Ok(TurnClient {
            socket,
            server,
            username,
            password,
            realm: None,
            nonce: None,
        })
    }

    fn transact(&self, bytes: &[u8], id: &TransactionId) -> Result<Vec<u8>, ClientError> {
        let mut buf = vec![0u8; 2048];
        for _ in 0..4 {
            self.socket.send_to(bytes, self.server)?;
            while let Ok((n, _)) = self.socket.recv_from(&mut buf) {
                if let Ok(msg) = Message::decode(&buf[..n]) {
                    if msg.transaction_id() == id {
                        return Ok(buf[..n].to_vec());
                    }
                }
            }
        }
        Err(ClientError::Timeout(self.server))
    }

    /// An authenticated request; learns realm and nonce from 401/438 as a client does.
    pub fn request(
        &mut self,
        method: Method,
        build: &dyn Fn(&mut MessageEncoder<'_>) -> Result<(), EncodeError>,
    ) -> Result<Vec<u8>, ClientError> {
        for _ in 0..3 {
            let id = TransactionId(rand::random());
            let mut buf = Vec::with_capacity(256);
            let mut enc = MessageEncoder::new(&mut buf, method, Class::Request, id);
            build(&mut enc)?;
            if let (Some(realm), Some(nonce)) = (&self.realm, &self.nonce) {
                let key = long_term_key_md5(&self.username, realm, &self.password);
                enc.add(&Attribute::Username(&self.username))?
                    .add(&Attribute::Realm(realm))?
                    .add(&Attribute::Nonce(nonce))?
                    .add_message_integrity(&key)?;
            }
            enc.add_fingerprint()?;
            let answer = self.transact(&buf, &id)?;
            let msg =
                Message::decode(&answer).map_err(|e| ClientError::BadAnswer(e.to_string()))?;
            if msg.class() == Class::SuccessResponse {
                return Ok(answer);
            }
            let (code, reason) = match msg.get(attr::ERROR_CODE) {
                Ok(Some(Attribute::ErrorCode(e))) => (e.code, e.reason.to_string()),
                _ => return Err(ClientError::BadAnswer("error without ERROR-CODE".into())),
            };
            let had_nonce = self.nonce.is_some();
            if code == 401 || code == 438 {
                self.realm = msg.realm().ok().flatten().map(str::to_string);
                self.nonce = msg.nonce().ok().flatten().map(str::to_string);
                if !had_nonce || code == 438 {
                    continue;
                }
            }
            return Err(ClientError::Refused {
                method: method_name(method),
                code,
                reason,
            });
        }
        Err(ClientError::BadAnswer(
            "authentication did not converge".into(),
        ))
    }

    /// Allocates a UDP relay; returns the relayed address.
    pub fn allocate(&mut self, lifetime: u32) -> Result<SocketAddr, ClientError> {
        let answer = self.request(Method::ALLOCATE, &|e| {
            e.add(&Attribute::RequestedTransport(stun_core::TRANSPORT_UDP))?;
            e.add(&Attribute::Lifetime(lifetime))?;
            Ok(())
        })?;
        let msg = Message::decode(&answer).map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        msg.address(attr::XOR_RELAYED_ADDRESS)
            .ok()
            .flatten()
            .ok_or_else(|| ClientError::BadAnswer("no XOR-RELAYED-ADDRESS".into()))
    }

    pub fn bind_channel(&mut self, channel: u16, peer: SocketAddr) -> Result<(), ClientError> {
        self.request(Method::CHANNEL_BIND, &|e| {
            e.add(&Attribute::ChannelNumber(channel))?;
            e.add_xor_address(attr::XOR_PEER_ADDRESS, peer)?;
            Ok(())
        })
        .map(|_| ())
    }

    /// Deletes the allocation (Refresh with lifetime 0).
    pub fn release(&mut self) -> Result<(), ClientError> {
        self.request(Method::REFRESH, &|e| {
            e.add(&Attribute::Lifetime(0))?;
            Ok(())
        })
        .map(|_| ())
    }
}
