//! RFC 6062 TCP allocations: a relay TCP listener per allocation, Connect to peers,
//! ConnectionAttempt for peers that connect in, ConnectionBind of a new client data
//! connection, then raw bytes both ways. These relays run on the control plane's runtime:
//! they are few and byte-stream copies, unlike the UDP media of the relay threads.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use edged_role::{DrainToken, Handler, Incoming, Lifecycle, Listener, ListenerLimits};
use rand::Rng;
use socket2::{Domain, Protocol, Socket, Type};
use stun_core::{attr, Attribute, Class, Message, MessageEncoder, Method, TransactionId};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;

use crate::allocation::{
    Allocation, ClientTransport, FiveTuple, Origin, Quotas, TcpState, PERMISSION_LIFETIME,
};
use crate::server::{error, respond_to, Auth, Outcome, Server};
use crate::tcp_bandwidth::{copy_bidirectional_capped, TcpCap};

/// RFC 6062 5.2: a Connect that has not succeeded by then gets 447.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// RFC 6062 5.3/5.4: a peer connection not bound by the client within 30 s is closed.
pub const UNBOUND_TIMEOUT: Duration = Duration::from_secs(30);
const CONTROL_QUEUE: usize = 64;
const LISTEN_BACKLOG: i32 = 64;

/// What the control connection's task runs for a new TCP allocation.
pub struct TcpAllocated {
    pub listener: std::net::TcpListener,
    /// Answers to Connect and ConnectionAttempt indications, in order.
    pub events: mpsc::Receiver<Vec<u8>>,
    pub closed: DrainToken,
}

/// A Connect the control connection's task carries out.
pub struct Dial {
    owner: FiveTuple,
    relay: SocketAddr,
    peer: SocketAddr,
    auth: Auth,
    transaction: TransactionId,
    control: mpsc::Sender<Vec<u8>>,
}

/// A data connection after a successful ConnectionBind: the peer it now carries.
pub struct Bound {
    pub peer_stream: TcpStream,
    owner: FiveTuple,
    peer: SocketAddr,
    closed: DrainToken,
    cap: Option<TcpCap>,
}

struct Pending {
    stream: TcpStream,
    owner: FiveTuple,
    username: String,
    peer: SocketAddr,
    created: Instant,
}

/// Peer connections waiting for their ConnectionBind, by CONNECTION-ID.
#[derive(Default)]
pub struct PendingConnections {
    map: Mutex<HashMap<u32, Pending>>,
    next: AtomicU32,
}

impl PendingConnections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Pending>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert(&self, p: Pending) -> u32 {
        let mut map = self.lock();
        loop {
            // Ids are not secrets (ConnectionBind is authenticated), but unpredictable ids
            // cost nothing and make guessing another client's pending connection harder.
            let id = self
                .next
                .fetch_add(rand::thread_rng().gen_range(1..1000), Ordering::Relaxed);
            if id != 0 && !map.contains_key(&id) {
                map.insert(id, p);
                return id;
            }
        }
    }

    /// Drops connections left unbound too long; reports whose peers they were.
    fn expire(&self, now: Instant) -> Vec<(FiveTuple, SocketAddr)> {
        let mut gone = Vec::new();
        self.lock().retain(|_, p| {
            let keep = now.duration_since(p.created) < UNBOUND_TIMEOUT;
            if !keep {
                gone.push((p.owner, p.peer));
            }
            keep
        });
        gone
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Binds the allocation's relay listener on a free port of the range. SO_REUSEPORT is set
/// only after the bind, so no other allocation can land on a port in use, while Connect's
/// outbound sockets (with SO_REUSEPORT) can still leave from the relayed address.
fn bind_listener(
    ip: IpAddr,
    ports: &std::ops::RangeInclusive<u16>,
) -> Option<std::net::TcpListener> {
    let (lo, hi) = (*ports.start(), *ports.end());
    let span = u32::from(hi - lo) + 1;
    let start = rand::thread_rng().gen_range(0..span);
    for i in 0..span.min(512) {
        let port = u16::try_from(u32::from(lo) + (start + i) % span).ok()?;
        let addr = SocketAddr::new(ip, port);
        let Ok(sock) = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        else {
            return None;
        };
        if sock.bind(&addr.into()).is_err() {
            continue;
        }
        if sock.set_reuse_port(true).is_err()
            || sock.listen(LISTEN_BACKLOG).is_err()
            || sock.set_nonblocking(true).is_err()
        {
            continue;
        }
        return Some(sock.into());
    }
    None
}

/// Opens a connection to `peer` from the relayed address (RFC 6062 5.2); from another
/// port of the relay address if the kernel refuses to share the port.
async fn connect_from(relay: SocketAddr, peer: SocketAddr) -> std::io::Result<TcpStream> {
    let shared = || -> std::io::Result<TcpSocket> {
        let s = if relay.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        s.set_reuseaddr(true)?;
        s.set_reuseport(true)?;
        s.bind(relay)?;
        Ok(s)
    };
    let sock = match shared() {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(target: "av_edge", %relay, "relayed port not shareable ({e}), using another");
            let s = if relay.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            s.bind(SocketAddr::new(relay.ip(), 0))?;
            s
        }
    };
    let stream = sock.connect(peer).await?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

fn connection_attempt(peer: SocketAddr, id: u32) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(64);
    let mut enc = MessageEncoder::new(
        &mut buf,
        Method::CONNECTION_ATTEMPT,
        Class::Indication,
        TransactionId(rand::random()),
    );
    enc.add_xor_address(attr::XOR_PEER_ADDRESS, peer)
        .and_then(|e| e.add(&Attribute::ConnectionId(id)))
        .and_then(|e| e.add_fingerprint())
        .ok()?;
    Some(buf)
}

impl Server {
    /// Allocate with REQUESTED-TRANSPORT TCP on a stream control connection.
    pub(crate) fn allocate_tcp(
        &self,
        msg: &Message<'_>,
        auth: &Auth,
        tuple: FiveTuple,
        ip: IpAddr,
        lifetime: u32,
        quotas: Quotas,
    ) -> Outcome {
        let fail = |code: u16, reason: &str| Outcome::reply(error(msg, code, reason, Some(auth)));
        // Bound before the table is locked; admitted again once it is.
        let Some(listener) = bind_listener(ip, &self.relay_ports) else {
            return fail(508, "Insufficient Capacity");
        };
        let Ok(relay) = listener.local_addr() else {
            return fail(508, "Insufficient Capacity");
        };
        let (control, events) = mpsc::channel(CONTROL_QUEUE);
        let closed = DrainToken::new();
        let mut table = self.table();
        if let Err(reply) = self.admit(&table, msg, auth, tuple, 1, quotas) {
            return Outcome::reply(reply);
        }
        let id = table.next_id();
        table.insert(
            tuple,
            Allocation {
                id,
                username: auth.username.clone(),
                identity: auth.identity.clone(),
                relay,
                relay_v6: None,
                expires: Instant::now() + Duration::from_secs(u64::from(lifetime)),
                permissions: HashMap::new(),
                permission_ports: HashMap::new(),
                channels: HashMap::new(),
                origin: Origin::Stream,
                allocate_transaction: *msg.transaction_id(),
                tcp: Some(TcpState {
                    control,
                    closed: closed.clone(),
                    peers: HashSet::new(),
                    cap: TcpCap::new(
                        self.settings.load().bandwidth_bytes_per_sec,
                        self.counters.tcp_throttled_ms.clone(),
                    ),
                }),
            },
        );
        self.allocations_now(table.len());
        drop(table);
        self.counters.allocations_created.inc();
        tracing::debug!(target: "av_edge", client = %tuple.client, %relay, user = %auth.username, "TCP allocation created");
        let mut outcome = Outcome::reply(crate::server::respond(
            msg,
            Class::SuccessResponse,
            Some(auth),
            |e| {
                e.add_xor_address(attr::XOR_RELAYED_ADDRESS, relay)?;
                e.add(&Attribute::Lifetime(lifetime))?;
                e.add_xor_address(attr::XOR_MAPPED_ADDRESS, tuple.client)?;
                Ok(())
            },
        ));
        outcome.tcp = Some(TcpAllocated {
            listener,
            events,
            closed,
        });
        outcome
    }

    /// Connect (RFC 6062 5.2): checks, then leaves the dialling to the connection task.
    pub(crate) fn connect(
        &self,
        msg: &Message<'_>,
        auth: &Auth,
        tuple: FiveTuple,
        settings: &crate::settings::Settings,
    ) -> Outcome {
        let fail = |code: u16, reason: &str| Outcome::reply(error(msg, code, reason, Some(auth)));
        let peer = match msg.address(attr::XOR_PEER_ADDRESS) {
            Ok(Some(p)) => p,
            _ => return fail(400, "XOR-PEER-ADDRESS is required"),
        };
        let Ok(peer) = self.check_peer(peer, settings, tuple.client) else {
            return fail(403, "Forbidden");
        };
        let mut table = self.table();
        let Some(alloc) = table.get_mut(&tuple) else {
            return fail(437, "Allocation Mismatch");
        };
        if alloc.username != auth.username {
            return fail(441, "Wrong Credentials");
        }
        if !alloc.serves_family_of(&peer) {
            return fail(443, "Peer Address Family Mismatch");
        }
        let relay = alloc.relay;
        let Some(tcp) = alloc.tcp.as_mut() else {
            return fail(400, "Connect needs a TCP allocation");
        };
        if tcp.peers.contains(&peer) {
            return fail(446, "Connection Already Exists");
        }
        // Each peer connection costs two descriptors: a user must not exhaust them.
        if tcp.peers.len() >= settings.limits.tcp_peer_connections {
            return fail(508, "Insufficient Capacity: too many peer connections");
        }
        tcp.peers.insert(peer);
        // The answer comes from the dial, on the control connection's queue.
        Outcome {
            dial: Some(Dial {
                owner: tuple,
                relay,
                peer,
                auth: auth.clone(),
                transaction: *msg.transaction_id(),
                control: tcp.control.clone(),
            }),
            ..Outcome::default()
        }
    }

    /// A peer connection exists (dialled or accepted): it waits for its ConnectionBind,
    /// and the peer gets (or keeps) a permission. `None` if the allocation is gone.
    fn tcp_connected(&self, owner: &FiveTuple, peer: SocketAddr, stream: TcpStream) -> Option<u32> {
        let mut table = self.table();
        let alloc = table.get_mut(owner)?;
        alloc
            .permissions
            .insert(peer.ip(), Instant::now() + PERMISSION_LIFETIME);
        alloc.tcp.as_mut()?.peers.insert(peer);
        let username = alloc.username.clone();
        drop(table);
        Some(self.pending.insert(Pending {
            stream,
            owner: *owner,
            username,
            peer,
            created: Instant::now(),
        }))
    }

    /// The peer's connection is over: a new Connect to it may follow.
    fn tcp_connection_ended(&self, owner: &FiveTuple, peer: SocketAddr) {
        if let Some(tcp) = self.table().get_mut(owner).and_then(|a| a.tcp.as_mut()) {
            tcp.peers.remove(&peer);
        }
    }

    /// ConnectionBind (RFC 6062 5.4) on a fresh client data connection.
    pub(crate) fn connection_bind(
        &self,
        msg: &Message<'_>,
        auth: &Auth,
        tuple: FiveTuple,
    ) -> Outcome {
        let fail = |code: u16, reason: &str| Outcome::reply(error(msg, code, reason, Some(auth)));
        if tuple.transport == ClientTransport::Udp {
            return fail(400, "ConnectionBind needs a TCP or TLS connection");
        }
        let table = self.table();
        if table.get(&tuple).is_some() {
            return fail(400, "this connection carries an allocation");
        }
        let id = match msg.get(attr::CONNECTION_ID) {
            Ok(Some(Attribute::ConnectionId(id))) => id,
            _ => return fail(400, "CONNECTION-ID is required"),
        };
        let Some(pending) = self.pending.lock().remove(&id) else {
            return fail(400, "unknown CONNECTION-ID");
        };
        let Some((closed, cap)) = table
            .get(&pending.owner)
            .and_then(|a| a.tcp.as_ref())
            .map(|t| (t.closed.clone(), t.cap.clone()))
        else {
            return fail(400, "the allocation is gone");
        };
        drop(table);
        if pending.username != auth.username {
            self.pending.lock().insert(id, pending);
            return fail(441, "Wrong Credentials");
        }
        let mut outcome = Outcome::reply(crate::server::respond(
            msg,
            Class::SuccessResponse,
            Some(auth),
            |_| Ok(()),
        ));
        outcome.bound = Some(Bound {
            peer_stream: pending.stream,
            owner: pending.owner,
            peer: pending.peer,
            closed,
            cap,
        });
        outcome
    }

    /// Closes peer connections left unbound.
    pub(crate) fn sweep_tcp(&self, now: Instant) {
        for (owner, peer) in self.pending.expire(now) {
            tracing::debug!(target: "av_edge", client = %owner.client, %peer, "peer connection not bound in time");
            self.tcp_connection_ended(&owner, peer);
        }
    }
}

/// Carries out a Connect and answers it on the control connection.
pub async fn dial(server: Arc<Server>, d: Dial) {
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, connect_from(d.relay, d.peer)).await;
    let id = match connected {
        Ok(Ok(stream)) => server.tcp_connected(&d.owner, d.peer, stream),
        Ok(Err(e)) => {
            tracing::debug!(target: "av_edge", peer = %d.peer, "Connect failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!(target: "av_edge", peer = %d.peer, "Connect timed out");
            None
        }
    };
    let reply = match id {
        Some(id) => respond_to(
            Method::CONNECT,
            d.transaction,
            Class::SuccessResponse,
            Some(&d.auth),
            |e| {
                e.add(&Attribute::ConnectionId(id))?;
                Ok(())
            },
        ),
        None => {
            server.tcp_connection_ended(&d.owner, d.peer);
            respond_to(
                Method::CONNECT,
                d.transaction,
                Class::ErrorResponse,
                Some(&d.auth),
                |e| {
                    e.add_error_code(447, "Connection Timeout or Failure")?;
                    Ok(())
                },
            )
        }
    };
    if let Some(reply) = reply {
        let _ = d.control.send(reply).await;
    }
}

/// Accepts peers on a TCP allocation's relayed address until the allocation goes.
pub fn accept_peers(
    server: Arc<Server>,
    listener: std::net::TcpListener,
    owner: FiveTuple,
    closed: DrainToken,
    life: &Lifecycle,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(target: "av_edge", "relay listener: {e}");
            return;
        }
    };
    // The allocation's own count (max_tcp_peer_connections_per_allocation) is the cap that matters; a peer
    // has nothing to complete before its ConnectionAttempt.
    Listener::new("av_edge.tcp_relay", listener, ListenerLimits::default())
        .until(closed)
        .spawn(life, Arc::new(PeerListener { server, owner }));
}

/// Peers connecting to one TCP allocation's relayed address.
struct PeerListener {
    server: Arc<Server>,
    owner: FiveTuple,
}

impl Handler for PeerListener {
    /// The allocation's control connection, told of the new peer.
    type Ticket = mpsc::Sender<Vec<u8>>;
    type Opened = ();

    fn admit(&self, from: SocketAddr) -> Option<Self::Ticket> {
        let peer = media_relay::address::normalise(from);
        let cap = self.server.settings.load().limits.tcp_peer_connections;
        let table = self.server.table();
        let control = match table.get(&self.owner) {
            Some(a) if a.permits(peer.ip(), Instant::now()) => a
                .tcp
                .as_ref()
                .filter(|t| t.peers.len() < cap)
                .map(|t| t.control.clone()),
            _ => None,
        };
        if control.is_none() {
            tracing::debug!(target: "av_edge", %peer, client = %self.owner.client, "peer connection refused: no permission or too many connections");
        }
        control
    }

    async fn open(&self, incoming: Incoming, control: Self::Ticket) -> Option<()> {
        let peer = media_relay::address::normalise(incoming.peer);
        let _ = incoming.tcp.set_nodelay(true);
        // The connection now waits in `pending` for the client's ConnectionBind (or
        // UNBOUND_TIMEOUT); this task has nothing more to do.
        let id = self.server.tcp_connected(&self.owner, peer, incoming.tcp)?;
        if let Some(ind) = connection_attempt(peer, id) {
            if control.try_send(ind).is_err() {
                tracing::debug!(target: "av_edge", %peer, "control connection backlogged: ConnectionAttempt dropped");
            }
        }
        None
    }

    async fn serve(&self, (): ()) {}
}

/// Raw bytes between a bound client data connection and its peer, until either side
/// closes or the allocation goes. `early` is what the client sent right after its
/// ConnectionBind.
pub async fn relay_bound<S: AsyncRead + AsyncWrite + Unpin>(
    server: Arc<Server>,
    client: &mut S,
    bound: Bound,
    early: &[u8],
) {
    let Bound {
        mut peer_stream,
        owner,
        peer,
        closed,
        cap,
    } = bound;
    let copied = async {
        if !early.is_empty() {
            if let Some(cap) = &cap {
                cap.pay(early.len()).await;
            }
            peer_stream.write_all(early).await?;
        }
        match &cap {
            Some(cap) => copy_bidirectional_capped(client, &mut peer_stream, cap).await,
            None => tokio::io::copy_bidirectional(client, &mut peer_stream).await,
        }
    };
    tokio::select! {
        r = copied => {
            if let Err(e) = r {
                tracing::debug!(target: "av_edge", %peer, "TCP relay ended: {e}");
            }
        }
        _ = closed.cancelled() => {}
    }
    let _ = peer_stream.shutdown().await;
    server.tcp_connection_ended(&owner, peer);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_listener_ports_are_exclusive_between_allocations() {
        let ip: IpAddr = [127, 0, 0, 1].into();
        let port = std::net::TcpListener::bind((ip, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let first = bind_listener(ip, &(port..=port)).unwrap_or_else(|| panic!("no port"));
        assert_eq!(first.local_addr().map(|a| a.port()).ok(), Some(port));
        assert!(
            bind_listener(ip, &(port..=port)).is_none(),
            "a second allocation got a port in use"
        );
        drop(first);
        assert!(bind_listener(ip, &(port..=port)).is_some());
    }

    #[tokio::test]
    async fn unbound_peer_connections_expire() {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let at = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let stream = TcpStream::connect(at)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (mut accepted, _) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
        let owner = FiveTuple {
            transport: ClientTransport::Tcp,
            client: at,
            server: at,
        };
        let pending = PendingConnections::default();
        let created = Instant::now();
        let id = pending.insert(Pending {
            stream,
            owner,
            username: "alice".into(),
            peer: at,
            created,
        });
        assert_ne!(id, 0);
        assert!(pending.expire(created + Duration::from_secs(29)).is_empty());
        assert_eq!(pending.len(), 1);
        let gone = pending.expire(created + UNBOUND_TIMEOUT);
        assert_eq!(gone, vec![(owner, at)]);
        assert_eq!(pending.len(), 0);
        // The peer sees its connection closed.
        let mut buf = [0u8; 1];
        let n = tokio::io::AsyncReadExt::read(&mut accepted, &mut buf).await;
        assert!(matches!(n, Ok(0) | Err(_)));
    }
}
