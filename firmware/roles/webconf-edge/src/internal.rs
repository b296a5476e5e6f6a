//! The internal port: conferencing servers connect out to the edge over TCP with mutual
//! TLS and keep the connection (the link, see `webconf_link`). The edge opens a control
//! stream on it, on which the server registers its conferences, and then one stream per
//! admitted client session.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use edged_role::{Handler, Incoming};
use edged_tls::PeerIdentity;
use session_key::wire::{self, ALPN_INTERNAL, MAX_PAYLOAD, REGISTER, REGISTERED};
use webconf_link::edge::EdgeLink;
use webconf_link::{LinkError, SessionRecv, SessionSend, CONTROL_PATH};

use crate::pool::Server;
use crate::shared::Shared;

/// How long a conferencing server may take to finish its handshakes (TLS and the link's),
/// and then to take the control stream.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The future that runs a link's connection; it ends with the reason the link failed.
type LinkDriver = std::pin::Pin<Box<dyn std::future::Future<Output = LinkError> + Send>>;

/// Reset code of a control stream that carried something other than REGISTER.
const CONTROL_PROTOCOL_ERROR: u32 = 1;

/// Conferencing servers on the internal port: the TLS handshake, the ALPN check and the
/// link's own handshake are the first stage, then the link until it ends or the role
/// closes its links.
pub(crate) struct Servers {
    pub shared: Arc<Shared>,
}

impl Handler for Servers {
    type Ticket = ();
    type Opened = (EdgeLink, LinkDriver, SocketAddr, PeerIdentity);

    fn admit(&self, _peer: SocketAddr) -> Option<()> {
        Some(())
    }

    async fn open(&self, incoming: Incoming, _ticket: ()) -> Option<Self::Opened> {
        let peer = incoming.peer;
        // Frames are written whole; waiting to coalesce them only adds latency.
        let _ = incoming.tcp.set_nodelay(true);
        let acceptor = self.shared.internal_acceptor.load_full();
        let mut tls = match acceptor.accept(incoming.tcp).await {
            Ok(tls) => tls,
            Err(e) => {
                edged_role::outsider_debug!(target: "webconf_edge", "failed conferencing server handshakes", peer.ip(), %peer, error = %e, "conferencing server handshake failed");
                return None;
            }
        };
        tls.get_mut()
            .1
            .set_buffer_limit(Some(webconf_link::TLS_SEND_BUFFER));
        // The acceptor admitted only a listed certificate (webconf_edge.internal_peers);
        // who it names is kept for the routing table.
        let Some(identity) = PeerIdentity::of_peer(tls.get_ref().1.peer_certificates()) else {
            tracing::warn!(target: "webconf_edge", %peer, "conferencing server without a readable certificate");
            return None;
        };
        // rustls lets a client that offers no ALPN at all through; the link needs ours.
        if tls.get_ref().1.alpn_protocol() != Some(ALPN_INTERNAL) {
            tracing::warn!(target: "webconf_edge", %peer, "conferencing server did not offer ALPN {}",
                String::from_utf8_lossy(ALPN_INTERNAL));
            return None;
        }
        match webconf_link::edge::handshake(tls).await {
            Ok((link, driver)) => Some((link, Box::pin(driver), peer, identity)),
            Err(e) => {
                tracing::warn!(target: "webconf_edge", %peer, error = %e, "conferencing server link failed");
                None
            }
        }
    }

    async fn serve(&self, (link, driver, peer, identity): Self::Opened) {
        serve_server(&self.shared, link, driver, peer, identity).await;
    }

    fn timed_out(&self, peer: SocketAddr) {
        edged_role::outsider_debug!(target: "webconf_edge", "timed-out conferencing server handshakes", peer.ip(), %peer, "conferencing server handshake timed out");
    }
}

/// Takes a server out of the routing table when its link ends, however it ends.
struct Registered<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.shared.pool.remove(self.id);
        self.shared.metrics.servers_connected.dec();
    }
}

async fn serve_server(
    shared: &Shared,
    link: EdgeLink,
    driver: LinkDriver,
    peer: SocketAddr,
    identity: PeerIdentity,
) {
    let id = shared.next_server.fetch_add(1, Ordering::Relaxed);
    let serve = serve_link(shared, id, peer, identity, link);
    let reason = tokio::select! {
        e = driver => e.to_string(),
        r = serve => r,
        () = shared.links.closing().cancelled() => "the edge is shutting down".to_string(),
    };
    // The driver is dropped here: the connection closes and every session stream on it
    // fails, so their clients hear "server gone".
    tracing::info!(target: "webconf_edge", %peer, server_id = id, %reason, "conferencing server disconnected");
}

/// Opens the control stream, enters the server into the routing table and serves its
/// registrations. Returns only if the control stream cannot be opened.
async fn serve_link(
    shared: &Shared,
    id: u64,
    peer: SocketAddr,
    identity: PeerIdentity,
    link: EdgeLink,
) -> String {
    let (send, recv) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, link.open(CONTROL_PATH)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return format!("control stream refused: {e}"),
        Err(_) => return "control stream not taken in time".into(),
    };
    let name = identity.label();
    shared.pool.add(Server {
        id,
        peer,
        identity,
        link,
    });
    shared.metrics.servers_connected.inc();
    let _registered = Registered { shared, id };
    tracing::info!(target: "webconf_edge", %peer, server_id = id, server = %name, "conferencing server connected");
    control_stream(shared, id, send, recv).await;
    // A server that ends its control stream keeps its link and its sessions.
    std::future::pending().await
}

/// Reads REGISTER frames and answers each with REGISTERED (the count of conferences the
/// server now owns). After the first, pushes the session-key ring (KEYS), and again at
/// every change, so the server mints with the current key without a file to copy. A
/// malformed frame ends the control stream, not the link.
async fn control_stream(
    shared: &Shared,
    server_id: u64,
    mut send: SessionSend,
    mut recv: SessionRecv,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut keys_changed = shared.keys_changed.subscribe();
    let mut registered = false;
    loop {
        match wire::decode(&buf, MAX_PAYLOAD) {
            Ok(Some((frame, used))) => {
                if frame.kind != REGISTER {
                    tracing::warn!(target: "webconf_edge", server_id, kind = frame.kind, "unexpected control frame");
                    send.reset(CONTROL_PROTOCOL_ERROR);
                    return;
                }
                let confs = match wire::parse_register(frame.payload) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(target: "webconf_edge", server_id, error = %e, "bad REGISTER");
                        send.reset(CONTROL_PROTOCOL_ERROR);
                        return;
                    }
                };
                let registration = shared.pool.register(server_id, &confs);
                let owned = registration.owned;
                if !registration.refused.is_empty() {
                    tracing::warn!(target: "webconf_edge", server_id, refused = ?registration.refused,
                        "conferences not taken over: another conferencing server hosts them and is still connected");
                }
                tracing::info!(target: "webconf_edge", server_id, registered = confs.len(), owned, "conferences registered");
                let mut reply = Vec::new();
                let count = u16::try_from(owned).unwrap_or(u16::MAX);
                if wire::encode(REGISTERED, &count.to_be_bytes(), &mut reply).is_err()
                    || send.write_all(&reply).await.is_err()
                {
                    return;
                }
                buf.drain(..used);
                if !registered {
                    registered = true;
                    keys_changed.borrow_and_update();
                    if !push_keys(shared, server_id, &mut send).await {
                        return;
                    }
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(target: "webconf_edge", server_id, error = %e, "bad control frame");
                send.reset(CONTROL_PROTOCOL_ERROR);
                return;
            }
        }
        tokio::select! {
            read = recv.read(&mut chunk) => match read {
                Ok(Some(n)) => buf.extend_from_slice(&chunk[..n]),
                Ok(None) | Err(_) => return,
            },
            changed = keys_changed.changed(), if registered => {
                if changed.is_err() || !push_keys(shared, server_id, &mut send).await {
                    return;
                }
            }
        }
    }
}

/// Sends the keys that still verify (current and retiring) as one KEYS frame.
async fn push_keys(shared: &Shared, server_id: u64, send: &mut SessionSend) -> bool {
    let now = crate::keys::unix_now();
    let live: Vec<_> = shared
        .keys
        .load()
        .records()
        .into_iter()
        .filter(|r| r.retire_at.is_none_or(|t| t > now))
        .collect();
    let frame = match wire::encode_keys(&live) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(target: "webconf_edge", server_id, error = %e, "session keys not pushed");
            return true;
        }
    };
    if send.write_all(&frame).await.is_err() {
        return false;
    }
    tracing::debug!(target: "webconf_edge", server_id, keys = live.len(), "session keys pushed");
    true
}
