//! TURN over TCP and TLS: accept loops (with first-byte sniffing on the shared port) and
//! one task per connection that frames the stream, answers requests and forwards the
//! connection's media between the stream and its relay socket.

use arc_swap::ArcSwap;
use edged_role::{Handler, Incoming, Lifecycle};
use media_relay::channel;
use std::net::SocketAddr;
use std::sync::Arc;
use stun_core::framer::{next_frame, Frame};
use stun_core::{attr, Class, Message, MessageEncoder, Method, TransactionId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::allocation::{ClientTransport, FiveTuple, Origin};
use crate::server::Server;
use crate::stream_clock::StreamClock;
use crate::tcp_relay::Bound;

/// TLS records start with content type 22 (handshake); STUN and ChannelData never do.
const TLS_HANDSHAKE: u8 = 0x16;
/// A peer that sends this much without completing a frame is not speaking TURN.
const MAX_BUFFERED: usize = 70_000;

/// Which kind of stream listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// TCP and TLS on one port, told apart by the first byte.
    Sniffed,
    TlsOnly,
}

/// The connections of one stream listener: the first byte (on the shared port) and the
/// TLS handshake are the first stage, then TURN until the client or the role closes.
pub struct StreamListener {
    pub server: Arc<Server>,
    pub kind: StreamKind,
    pub tls: Arc<ArcSwap<rustls::ServerConfig>>,
    pub life: Lifecycle,
}

/// A stream after its first stage.
pub enum Opened {
    Tcp(TcpStream, FiveTuple, StreamClock),
    Tls(Box<TlsStream<TcpStream>>, FiveTuple, StreamClock),
}

impl Handler for StreamListener {
    type Ticket = ();
    type Opened = Opened;

    fn admit(&self, _peer: SocketAddr) -> Option<()> {
        Some(())
    }

    async fn open(&self, incoming: Incoming, _ticket: ()) -> Option<Opened> {
        let (peer, server_addr, stream) = (incoming.peer, incoming.local, incoming.tcp);
        let clock = StreamClock::new(
            self.server.settings.load().streams,
            std::time::Instant::now(),
            incoming.deadline.into_std(),
        );
        let _ = stream.set_nodelay(true);
        let is_tls = match self.kind {
            StreamKind::TlsOnly => true,
            StreamKind::Sniffed => {
                let mut first = [0u8; 1];
                match stream.peek(&mut first).await {
                    Ok(1) => first[0] == TLS_HANDSHAKE,
                    _ => return None,
                }
            }
        };
        let tuple = |transport| FiveTuple {
            transport,
            client: peer,
            server: server_addr,
        };
        if !is_tls {
            return Some(Opened::Tcp(stream, tuple(ClientTransport::Tcp), clock));
        }
        match TlsAcceptor::from(self.tls.load_full()).accept(stream).await {
            Ok(tls_stream) => Some(Opened::Tls(
                Box::new(tls_stream),
                tuple(ClientTransport::Tls),
                clock,
            )),
            Err(e) => {
                edged_role::outsider_debug!(target: "av_edge", "failed TLS handshakes", peer.ip(), %peer, "TLS handshake failed: {e}");
                None
            }
        }
    }

    async fn serve(&self, opened: Opened) {
        let (server, life) = (self.server.clone(), self.life.clone());
        match opened {
            Opened::Tcp(stream, tuple, clock) => serve(server, stream, tuple, clock, life).await,
            Opened::Tls(stream, tuple, clock) => serve(server, *stream, tuple, clock, life).await,
        }
    }

    fn first_request_timeout(&self) -> Option<std::time::Duration> {
        Some(self.server.settings.load().streams.first_request)
    }

    fn timed_out(&self, peer: SocketAddr) {
        tracing::debug!(target: "av_edge", %peer, "no first byte or TLS handshake in time");
    }
}

/// The next time the connection's deadlines are looked at: the clock's deadline, or while
/// it carries an allocation, an idle period later (to notice the allocation expired).
fn next_check(clock: &StreamClock, allocated: bool) -> tokio::time::Instant {
    match clock.deadline(allocated) {
        Some((at, _)) => at.into(),
        None => tokio::time::Instant::now() + clock.idle_timeout(),
    }
}

/// One client connection: at most one allocation (one 5-tuple), or, after an RFC 6062
/// ConnectionBind, the raw bytes of one peer connection.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    server: Arc<Server>,
    mut stream: S,
    tuple: FiveTuple,
    mut clock: StreamClock,
    life: Lifecycle,
) {
    let closing = life.closing();
    let mut inbuf: Vec<u8> = Vec::with_capacity(4096);
    let mut conn = Connection {
        relays: Vec::new(),
        events: None,
    };
    let mut peer_buf = vec![0u8; 65_536];
    let mut out = Vec::with_capacity(2048);
    let mut allocated = false;
    let check = tokio::time::sleep_until(next_check(&clock, allocated));
    tokio::pin!(check);
    loop {
        tokio::select! {
            r = stream.read_buf(&mut inbuf) => {
                match r {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                match frames(&server, &mut stream, &mut inbuf, &tuple, &mut conn, &mut clock, &life).await {
                    // Until the connection has an allocation, every frame moves its
                    // deadlines; with one, the timer looks again after an idle period
                    // (no table lookup per packet).
                    Ok(None) if !allocated => {
                        allocated = server.stream_alive(&tuple);
                        check.as_mut().reset(next_check(&clock, allocated));
                    }
                    Ok(None) => {}
                    Ok(Some(bound)) => {
                        tokio::select! {
                            _ = crate::tcp_relay::relay_bound(server.clone(), &mut stream, bound, &inbuf) => {}
                            _ = closing.cancelled() => {}
                        }
                        break;
                    }
                    Err(why) => {
                        tracing::debug!(target: "av_edge", client = %tuple.client, "closing stream: {why}");
                        break;
                    }
                }
            }
            r = recv_relays(&conn.relays, &mut peer_buf) => {
                let Ok((n, from)) = r else { continue };
                if !server.stream_alive(&tuple) {
                    conn.relays.clear();
                    continue;
                }
                let from = media_relay::address::normalise(from);
                let Ok(channel) = server.stream_from_peer(&tuple, from) else { continue };
                out.clear();
                match channel {
                    Some(ch) => {
                        // Streams always carry ChannelData padded to a multiple of 4.
                        out.resize(channel::stream_frame_len(n), 0);
                        if channel::write_header(&mut out, ch, n).is_none() {
                            continue;
                        }
                        out[channel::HEADER_LEN..channel::HEADER_LEN + n].copy_from_slice(&peer_buf[..n]);
                    }
                    None => {
                        let id = TransactionId(rand::random());
                        let mut enc = MessageEncoder::new(&mut out, Method::DATA, Class::Indication, id);
                        if enc
                            .add_xor_address(attr::XOR_PEER_ADDRESS, from)
                            .and_then(|e| e.add_raw(attr::DATA, &peer_buf[..n]))
                            .is_err()
                        {
                            continue;
                        }
                    }
                }
                if stream.write_all(&out).await.is_err() {
                    break;
                }
            }
            event = recv_event(conn.events.as_mut()) => match event {
                // Connect answers and ConnectionAttempt indications of a TCP allocation.
                Some(event) => {
                    if stream.write_all(&event).await.is_err() {
                        break;
                    }
                }
                // The allocation expired or was deleted: nothing more will come.
                None => conn.events = None,
            },
            () = &mut check => {
                allocated = server.stream_alive(&tuple);
                if let Some((at, why)) = clock.deadline(allocated) {
                    if at <= std::time::Instant::now() {
                        tracing::debug!(target: "av_edge", client = %tuple.client, "closing stream: {why}");
                        break;
                    }
                }
                check.as_mut().reset(next_check(&clock, allocated));
            }
            _ = closing.cancelled() => break,
        }
    }
    server.stream_closed(&tuple);
    let _ = stream.shutdown().await;
}

/// What a control connection holds besides its stream.
struct Connection {
    /// The UDP relay sockets of its allocation (two for a dual allocation).
    relays: Vec<UdpSocket>,
    /// The outbound queue of its TCP allocation.
    events: Option<tokio::sync::mpsc::Receiver<Vec<u8>>>,
}

impl Connection {
    /// The relay socket that reaches peers of `peer`'s family.
    fn relay_for(&self, peer: SocketAddr) -> Option<&UdpSocket> {
        self.relays
            .iter()
            .find(|r| r.local_addr().is_ok_and(|a| a.is_ipv4() == peer.is_ipv4()))
    }
}

async fn recv_event(events: Option<&mut tokio::sync::mpsc::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_relays(relays: &[UdpSocket], buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match relays {
        [] => std::future::pending().await,
        [only] => only.recv_from(buf).await,
        [a, b, ..] => loop {
            // Readiness first, so one buffer serves both sockets.
            let ready = tokio::select! {
                r = a.readable() => r.map(|()| a),
                r = b.readable() => r.map(|()| b),
            }?;
            match ready.try_recv_from(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        },
    }
}

/// Handles every complete frame at the start of `inbuf`. Stops at a successful
/// ConnectionBind: what follows it is the peer's raw byte stream.
async fn frames<S: AsyncWrite + Unpin>(
    server: &Arc<Server>,
    stream: &mut S,
    inbuf: &mut Vec<u8>,
    tuple: &FiveTuple,
    conn: &mut Connection,
    clock: &mut StreamClock,
    life: &Lifecycle,
) -> Result<Option<Bound>, String> {
    let mut consumed = 0;
    let mut bound = None;
    loop {
        let rest = &inbuf[consumed..];
        let frame = match stream_frame(rest) {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(e),
        };
        let bytes = &rest[..frame.len()];
        clock.frame(std::time::Instant::now());
        match frame {
            Frame::Stun { .. } => {
                if let Some(send) = send_indication(bytes) {
                    if let Some(peer) = server.stream_send_peer(tuple, send.peer) {
                        if let Some(r) = conn.relay_for(peer) {
                            if send.dont_fragment {
                                // Per socket: from now on every datagram of this
                                // allocation's family leaves with DF.
                                let _ = media_relay::dont_fragment::set(r, peer.is_ipv4());
                            }
                            let _ = r.try_send_to(send.data, peer);
                        }
                    }
                } else {
                    let outcome = server.handle(bytes, *tuple, Origin::Stream);
                    if outcome.authenticated {
                        clock.authenticated();
                    }
                    for sock in outcome.stream_relays {
                        match UdpSocket::from_std(sock) {
                            Ok(s) => conn.relays.push(s),
                            Err(e) => tracing::warn!(target: "av_edge", "relay socket: {e}"),
                        }
                    }
                    if let Some(tcp) = outcome.tcp {
                        conn.events = Some(tcp.events);
                        crate::tcp_relay::accept_peers(
                            server.clone(),
                            tcp.listener,
                            *tuple,
                            tcp.closed,
                            life,
                        );
                    }
                    if let Some(dial) = outcome.dial {
                        tokio::spawn(crate::tcp_relay::dial(server.clone(), dial));
                    }
                    if let Some(reply) = outcome.reply {
                        stream.write_all(&reply).await.map_err(|e| e.to_string())?;
                    }
                    if outcome.bound.is_some() {
                        bound = outcome.bound;
                        consumed += frame.len();
                        break;
                    }
                }
            }
            Frame::ChannelData {
                channel,
                payload_len,
                ..
            } => {
                let payload = &bytes[channel::HEADER_LEN..channel::HEADER_LEN + payload_len];
                if let Some(peer) = server.stream_channel_peer(tuple, channel) {
                    if let Some(r) = conn.relay_for(peer) {
                        let _ = r.try_send_to(payload, peer);
                    }
                }
            }
        }
        consumed += frame.len();
    }
    inbuf.drain(..consumed);
    if bound.is_none() && inbuf.len() > MAX_BUFFERED {
        return Err("oversized frame".into());
    }
    Ok(bound)
}

struct SendIndication<'a> {
    peer: SocketAddr,
    data: &'a [u8],
    dont_fragment: bool,
}

fn send_indication(bytes: &[u8]) -> Option<SendIndication<'_>> {
    let msg = Message::decode(bytes).ok()?;
    if msg.method() != Method::SEND || msg.class() != Class::Indication {
        return None;
    }
    Some(SendIndication {
        peer: msg.address(attr::XOR_PEER_ADDRESS).ok()??,
        data: msg.data()?,
        dont_fragment: msg.raw(attr::DONT_FRAGMENT).is_some(),
    })
}

/// The next frame on a stream; ChannelData with the RFC 5766 channel range (see
/// `media_relay::channel`), STUN through stun-core's framer.
fn stream_frame(buf: &[u8]) -> Result<Option<Frame>, String> {
    match buf.first() {
        Some(&b) if channel::is_channel_data(b) => {
            let Some(h) = buf.first_chunk::<{ channel::HEADER_LEN }>() else {
                return Ok(None);
            };
            let number = u16::from_be_bytes([h[0], h[1]]);
            let payload_len = u16::from_be_bytes([h[2], h[3]]) as usize;
            let len = channel::stream_frame_len(payload_len);
            Ok((buf.len() >= len).then_some(Frame::ChannelData {
                channel: number,
                payload_len,
                len,
            }))
        }
        _ => next_frame(buf).map_err(|e| e.to_string()),
    }
}
