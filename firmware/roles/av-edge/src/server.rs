//! The TURN request path: authentication, Allocate, Refresh, CreatePermission, ChannelBind
//! and Binding, for every client transport. Media never comes through here for UDP
//! clients (the relay threads forward it); stream clients' media uses the lookups at the
//! end.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use edged_metrics::{Counter, Gauge, Registry};
use media_relay::{Command, RelayPlane};
use stun_core::{
    attr, AddressFamily, Attribute, Class, EncodeError, Message, MessageEncoder, Method,
};

use crate::allocate_request::{AllocateRequest, Parity};
use crate::allocation::{
    Allocation, Allocations, FiveTuple, Origin, Quotas, Reservation, ReservationToken,
    CHANNEL_LIFETIME, PERMISSION_LIFETIME, RESERVATION_LIFETIME,
};
pub(crate) use crate::auth::Auth;
use crate::auth::{self, CredentialKind, Refusal, Unauthorized, OFFERED_ALGORITHMS};
use crate::credentials::Credentials;
use crate::policy::Reachable;
use crate::relay_sockets::{bind_relay, Primary, RelayPlan};
use crate::settings::Settings;
use crate::source_budget::SourceBudget;
use crate::tcp_relay::{Bound, Dial, PendingConnections, TcpAllocated};
use media_relay::dont_fragment;

pub const SOFTWARE: &str = "edged A/V Edge";

/// The result of one request.
#[derive(Default)]
pub struct Outcome {
    pub reply: Option<Vec<u8>>,
    /// A new UDP allocation's relay sockets (two for a dual allocation) for a stream
    /// client's connection task.
    pub stream_relays: Vec<UdpSocket>,
    /// A new RFC 6062 TCP allocation for the control connection's task.
    pub tcp: Option<TcpAllocated>,
    /// A Connect for the control connection's task to carry out.
    pub dial: Option<Dial>,
    /// A data connection bound to a peer: from now on it carries raw bytes.
    pub bound: Option<Bound>,
    /// The request was authenticated (whatever its answer).
    pub authenticated: bool,
}

impl Outcome {
    pub(crate) fn reply(bytes: Option<Vec<u8>>) -> Self {
        Outcome {
            reply: bytes,
            ..Outcome::default()
        }
    }
}

pub struct ServerCounters {
    pub requests: Counter,
    pub unauthenticated: Counter,
    pub auth_failures: Counter,
    pub stale_nonces: Counter,
    pub forbidden_peers: Counter,
    pub quota_rejections: Counter,
    pub bad_requests: Counter,
    pub rate_limited: Counter,
    pub allocations_created: Counter,
    pub allocations: Gauge,
    /// Milliseconds RFC 6062 TCP relays waited for their allocation's bandwidth cap.
    pub tcp_throttled_ms: Counter,
}

impl ServerCounters {
    fn new(m: &Registry) -> Self {
        let refused = |reason: &str| {
            m.counter(
                "edged_av_edge_refused_requests_total",
                "TURN requests refused, by reason",
                &[("reason", reason)],
            )
        };
        ServerCounters {
            requests: m.counter(
                "edged_av_edge_requests_total",
                "STUN/TURN requests handled",
                &[],
            ),
            unauthenticated: refused("unauthenticated"),
            auth_failures: refused("bad_credentials"),
            stale_nonces: refused("stale_nonce"),
            forbidden_peers: refused("forbidden_peer"),
            quota_rejections: refused("quota"),
            bad_requests: refused("bad_request"),
            rate_limited: refused("rate_limited"),
            allocations_created: m.counter(
                "edged_av_edge_allocations_created_total",
                "TURN allocations created",
                &[],
            ),
            allocations: m.gauge("edged_av_edge_allocations", "Live TURN allocations", &[]),
            tcp_throttled_ms: m.counter(
                "edged_av_edge_tcp_throttled_milliseconds_total",
                "Time TCP relays (RFC 6062) waited for the per-allocation bandwidth cap",
                &[],
            ),
        }
    }
}

pub struct Server {
    pub settings: ArcSwap<Settings>,
    pub credentials: Credentials,
    table: Mutex<Allocations>,
    pub plane: Arc<RelayPlane>,
    relay_ip: IpAddr,
    /// The IPv6 relay address for RFC 6156 allocations, if configured.
    relay_ip_v6: Option<IpAddr>,
    pub(crate) relay_ports: RangeInclusive<u16>,
    pub(crate) pending: PendingConnections,
    rate: Mutex<SourceBudget>,
    /// The clock the source budget counts whole seconds on.
    started: Instant,
    pub counters: ServerCounters,
    pub draining: AtomicBool,
    /// Notified whenever the number of allocations changes, so a drain waits for the last
    /// one to go without polling.
    pub allocations_changed: tokio::sync::Notify,
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Builds a response; `None` only if encoding failed (never for the fixed attributes
/// used here, but a failure must not take the relay down).
pub(crate) fn respond(
    msg: &Message<'_>,
    class: Class,
    auth: Option<&Auth>,
    build: impl FnOnce(&mut MessageEncoder<'_>) -> Result<(), EncodeError>,
) -> Option<Vec<u8>> {
    respond_to(msg.method(), *msg.transaction_id(), class, auth, build)
}

/// `respond` for a request answered later (RFC 6062 Connect).
pub(crate) fn respond_to(
    method: Method,
    transaction: stun_core::TransactionId,
    class: Class,
    auth: Option<&Auth>,
    build: impl FnOnce(&mut MessageEncoder<'_>) -> Result<(), EncodeError>,
) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(128);
    let mut enc = MessageEncoder::new(&mut buf, method, class, transaction);
    let result = (|| {
        build(&mut enc)?;
        if let Some(a) = auth {
            enc.add(&Attribute::Software(SOFTWARE))?;
            if a.sha256 {
                enc.add_message_integrity_sha256(&a.key)?;
            } else {
                enc.add_message_integrity(&a.key)?;
            }
        }
        enc.add_fingerprint()?;
        Ok::<(), EncodeError>(())
    })();
    match result {
        Ok(()) => Some(buf),
        Err(e) => {
            tracing::warn!(target: "av_edge", "cannot encode a {method:?} response: {e}");
            None
        }
    }
}

pub(crate) fn error(
    msg: &Message<'_>,
    code: u16,
    reason: &str,
    auth: Option<&Auth>,
) -> Option<Vec<u8>> {
    respond(msg, Class::ErrorResponse, auth, |e| {
        e.add_error_code(code, reason)?;
        Ok(())
    })
}

/// An allocation's relay sockets, before it is in the table.
struct AcquiredRelays {
    primary: UdpSocket,
    /// The odd port after `primary`, to reserve (EVEN-PORT with the R bit).
    next: Option<UdpSocket>,
    /// The IPv6 socket of a dual allocation.
    additional: Option<UdpSocket>,
}

/// The reason phrase of a 508 answer.
type Refusal508 = &'static str;

/// The answer to an Allocate on a 5-tuple that already has an allocation: the same answer
/// again for a retransmission of the request that made it, 437 otherwise.
fn answer_existing(
    msg: &Message<'_>,
    auth: &Auth,
    tuple: FiveTuple,
    existing: &Allocation,
) -> Option<Vec<u8>> {
    if existing.allocate_transaction != *msg.transaction_id() {
        return error(msg, 437, "Allocation Mismatch", Some(auth));
    }
    let remaining = existing
        .expires
        .saturating_duration_since(Instant::now())
        .as_secs() as u32;
    respond(msg, Class::SuccessResponse, Some(auth), |e| {
        e.add_xor_address(attr::XOR_RELAYED_ADDRESS, existing.relay)?;
        if let Some(v6) = existing.relay_v6 {
            e.add_xor_address(attr::XOR_RELAYED_ADDRESS, v6)?;
        }
        e.add(&Attribute::Lifetime(remaining))?;
        e.add_xor_address(attr::XOR_MAPPED_ADDRESS, tuple.client)?;
        Ok(())
    })
}

/// The requester's own allocation of its 5-tuple, or the error answer (437 when there is
/// none, 441 when it is another user's).
fn owned_allocation<'t>(
    table: &'t mut Allocations,
    msg: &Message<'_>,
    tuple: &FiveTuple,
    auth: &Auth,
) -> Result<&'t mut Allocation, Option<Vec<u8>>> {
    table.owned_mut(tuple, &auth.username).map_err(|why| {
        let (code, reason) = why.error();
        error(msg, code, reason, Some(auth))
    })
}

/// Answers a malformed request whose header could still be read.
fn bad_request_for(header: &stun_core::Header) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(64);
    let mut enc = MessageEncoder::new(
        &mut buf,
        header.method,
        Class::ErrorResponse,
        header.transaction_id,
    );
    enc.add_error_code(400, "Bad Request").ok()?;
    enc.add_fingerprint().ok()?;
    Some(buf)
}

impl Server {
    pub fn new(
        settings: Settings,
        credentials: Credentials,
        plane: Arc<RelayPlane>,
        relay_ip: IpAddr,
        relay_ip_v6: Option<IpAddr>,
        relay_ports: RangeInclusive<u16>,
        metrics: &Registry,
    ) -> Server {
        Server {
            settings: ArcSwap::from_pointee(settings),
            credentials,
            table: Mutex::new(Allocations::default()),
            plane,
            relay_ip,
            relay_ip_v6,
            relay_ports,
            pending: PendingConnections::default(),
            rate: Mutex::new(SourceBudget::default()),
            started: Instant::now(),
            counters: ServerCounters::new(metrics),
            draining: AtomicBool::new(false),
            allocations_changed: tokio::sync::Notify::new(),
        }
    }

    /// Publishes the allocation count (the gauge, and drain's notification).
    pub(crate) fn allocations_now(&self, count: usize) {
        self.counters.allocations.set(count as i64);
        self.allocations_changed.notify_waiters();
    }

    pub(crate) fn table(&self) -> MutexGuard<'_, Allocations> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn allocation_count(&self) -> usize {
        self.table().len()
    }

    /// Per source budget of answers to unauthenticated requests (every answer not
    /// protected by a valid credential), so the relay is no amplifier for spoofed sources.
    fn unauthenticated_allowed(&self, ip: IpAddr, rate: u32) -> bool {
        let second = self.started.elapsed().as_secs();
        self.rate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .allow(ip, second, rate)
    }

    /// Handles one STUN message from a client.
    pub fn handle(&self, bytes: &[u8], tuple: FiveTuple, origin: Origin) -> Outcome {
        let settings = self.settings.load();
        let msg = match Message::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(target: "av_edge", client = %tuple.client, "malformed STUN: {e}");
                self.counters.bad_requests.inc();
                return match e.bad_request() {
                    Some(h)
                        if self.unauthenticated_allowed(
                            tuple.client.ip(),
                            settings.unauthenticated_rate,
                        ) =>
                    {
                        Outcome::reply(bad_request_for(h))
                    }
                    _ => Outcome::default(),
                };
            }
        };
        if msg.class() != Class::Request {
            // Indications other than Send (handled by the media path) and stray responses
            // get no answer.
            return Outcome::default();
        }
        self.counters.requests.inc();
        if msg.method() == Method::BINDING {
            if !self.unauthenticated_allowed(tuple.client.ip(), settings.unauthenticated_rate) {
                self.counters.rate_limited.inc();
                return Outcome::default();
            }
            return Outcome::reply(respond(&msg, Class::SuccessResponse, None, |e| {
                e.add_xor_address(attr::XOR_MAPPED_ADDRESS, tuple.client)?;
                Ok(())
            }));
        }
        let turn_method = matches!(
            msg.method(),
            Method::ALLOCATE
                | Method::REFRESH
                | Method::CREATE_PERMISSION
                | Method::CHANNEL_BIND
                | Method::CONNECT
                | Method::CONNECTION_BIND
        );
        let auth = match self.authenticate(&msg, tuple.client, &settings) {
            Ok(a) => a,
            Err(reply) => return Outcome::reply(reply),
        };
        if !turn_method {
            self.counters.bad_requests.inc();
            return Outcome::reply(error(&msg, 400, "Unsupported method", Some(&auth)));
        }
        let unknown: Vec<u16> = msg.unknown_comprehension_required().collect();
        if !unknown.is_empty() {
            return Outcome::reply(respond(&msg, Class::ErrorResponse, Some(&auth), |e| {
                e.add_error_code(420, "Unknown Attribute")?;
                e.add_unknown_attributes(unknown.iter().copied())?;
                Ok(())
            }));
        }
        let mut outcome = match msg.method() {
            Method::ALLOCATE => self.allocate(&msg, &auth, tuple, origin, &settings),
            Method::REFRESH => Outcome::reply(self.refresh(&msg, &auth, tuple, &settings)),
            Method::CREATE_PERMISSION => {
                Outcome::reply(self.create_permission(&msg, &auth, tuple, &settings))
            }
            Method::CONNECT => self.connect(&msg, &auth, tuple, &settings),
            Method::CONNECTION_BIND => self.connection_bind(&msg, &auth, tuple),
            _ => Outcome::reply(self.channel_bind(&msg, &auth, tuple, &settings)),
        };
        outcome.authenticated = true;
        outcome
    }

    /// Long-term credential check (RFC 8489 9.2, decided in `auth`). `Err` carries the
    /// answer (or `None` to stay silent).
    fn authenticate(
        &self,
        msg: &Message<'_>,
        client: SocketAddr,
        settings: &Settings,
    ) -> Result<Auth, Option<Vec<u8>>> {
        let now = now_unix();
        let refusal = match auth::authenticate(
            msg,
            client,
            now,
            &settings.realm,
            &settings.nonces,
            &self.credentials,
        ) {
            Ok(auth) => return Ok(auth),
            Err(refusal) => refusal,
        };
        let challenge = |code: u16, reason: &str| {
            let nonce = settings.nonces.mint(now, client);
            respond(msg, Class::ErrorResponse, None, |e| {
                e.add_error_code(code, reason)?;
                e.add(&Attribute::Realm(&settings.realm))?;
                e.add(&Attribute::Nonce(nonce.as_str()))?;
                e.add_password_algorithms(&OFFERED_ALGORITHMS)?;
                Ok(())
            })
        };
        // Whatever the refusal, the answer goes to an address nobody has proven: each one
        // counts against the source's budget, and beyond it the request gets none.
        let answered = self.unauthenticated_allowed(client.ip(), settings.unauthenticated_rate);
        let answer = match refusal {
            Refusal::Unauthenticated => {
                self.counters.unauthenticated.inc();
                answered.then(|| challenge(401, "Unauthorized"))
            }
            Refusal::BadRequest(reason) => {
                self.counters.bad_requests.inc();
                answered.then(|| error(msg, 400, reason, None))
            }
            Refusal::StaleNonce => {
                self.counters.stale_nonces.inc();
                answered.then(|| challenge(438, "Stale Nonce"))
            }
            Refusal::Unauthorized(why) => {
                if matches!(why, Unauthorized::Lookup(_) | Unauthorized::WrongKey) {
                    let username = msg.username().ok().flatten().unwrap_or_default();
                    tracing::debug!(target: "av_edge", %client, username, "authentication failed: {why}");
                }
                self.counters.auth_failures.inc();
                answered.then(|| challenge(401, "Unauthorized"))
            }
        };
        match answer {
            Some(reply) => Err(reply),
            None => {
                self.counters.rate_limited.inc();
                Err(None)
            }
        }
    }

    /// The lifetime to grant: the request's, within the configured bounds, and never
    /// beyond the expiry of a short-lived credential, so an allocation cannot outlive the
    /// credential that created or refreshed it.
    fn lifetime(msg: &Message<'_>, settings: &Settings, auth: &Auth) -> u32 {
        let granted = match msg.lifetime() {
            Ok(Some(requested)) => {
                requested.clamp(settings.default_lifetime, settings.max_lifetime)
            }
            _ => settings.default_lifetime,
        };
        match auth.kind {
            CredentialKind::ShortLived { expires_at } => {
                let left = expires_at.saturating_sub(now_unix());
                granted.min(u32::try_from(left).unwrap_or(u32::MAX)).max(1)
            }
            CredentialKind::LongTerm => granted,
        }
    }

    /// Refuses an Allocate over the total or per-user quota: the 486 answer.
    fn quota_refusal(&self, msg: &Message<'_>, auth: &Auth) -> Option<Vec<u8>> {
        self.counters.quota_rejections.inc();
        tracing::debug!(target: "av_edge", user = %auth.identity, "allocation quota reached");
        error(msg, 486, "Allocation Quota Reached", Some(auth))
    }

    /// Whether a new allocation may go into `table` now: its 5-tuple has none (else the
    /// answer for the one there) and `needed` more fit the quotas (else 486). Checked with
    /// the table locked for the insert, since the table changed while the relay sockets
    /// were bound. `Err` carries the answer.
    pub(crate) fn admit(
        &self,
        table: &Allocations,
        msg: &Message<'_>,
        auth: &Auth,
        tuple: FiveTuple,
        needed: usize,
        quotas: Quotas,
    ) -> Result<(), Option<Vec<u8>>> {
        if let Some(existing) = table.get(&tuple) {
            return Err(answer_existing(msg, auth, tuple, existing));
        }
        if !table.admits(&auth.identity, needed, quotas) {
            return Err(self.quota_refusal(msg, auth));
        }
        Ok(())
    }

    /// The relay sockets `plan` asks for: bound, or taken from a reservation, without
    /// holding the table lock while binding.
    fn acquire_relays(&self, plan: &RelayPlan) -> Result<AcquiredRelays, Refusal508> {
        let (primary, next) = match plan.primary {
            Primary::Reserved(token) => {
                // Only the table changes here; the port has been bound since it was reserved.
                let reserved = self.table().take_reservation(&token, Instant::now());
                let socket =
                    reserved.ok_or("Insufficient Capacity: unknown or expired reservation")?;
                (socket, None)
            }
            Primary::Bind { ip, parity } => {
                bind_relay(ip, &self.relay_ports, parity).ok_or("Insufficient Capacity")?
            }
        };
        let additional = match plan.additional {
            Some(ip) => Some(
                bind_relay(ip, &self.relay_ports, Parity::Any)
                    .map(|(socket, _)| socket)
                    .ok_or("Insufficient Capacity")?,
            ),
            None => None,
        };
        Ok(AcquiredRelays {
            primary,
            next,
            additional,
        })
    }

    fn allocate(
        &self,
        msg: &Message<'_>,
        auth: &Auth,
        tuple: FiveTuple,
        origin: Origin,
        settings: &Settings,
    ) -> Outcome {
        let fail = |code: u16, reason: &str| Outcome::reply(error(msg, code, reason, Some(auth)));
        if let Some(existing) = self.table().get(&tuple) {
            return Outcome::reply(answer_existing(msg, auth, tuple, existing));
        }
        if self.draining.load(Ordering::Relaxed) {
            return fail(500, "Server Error: draining");
        }
        let request = match AllocateRequest::parse(msg, tuple.transport) {
            Ok(r) => r,
            Err((code, reason)) => {
                if code == 400 {
                    self.counters.bad_requests.inc();
                }
                return fail(code, reason);
            }
        };
        let plan = match RelayPlan::new(&request, self.relay_ip, self.relay_ip_v6) {
            Ok(plan) => plan,
            Err((code, reason)) => return fail(code, reason),
        };
        let lifetime = Self::lifetime(msg, settings, auth);
        let quotas = Quotas {
            total: settings.max_allocations as usize,
            per_user: settings.max_allocations_per_user as usize,
        };
        // Refused before anything is bound; `admit` checks again at the insert.
        if !self
            .table()
            .admits(&auth.identity, plan.quota_needed, quotas)
        {
            return Outcome::reply(self.quota_refusal(msg, auth));
        }
        if request.tcp {
            // Parsing refuses RESERVATION-TOKEN with TCP, so the plan binds.
            let Primary::Bind { ip, .. } = plan.primary else {
                return fail(400, "RESERVATION-TOKEN is for UDP allocations");
            };
            return self.allocate_tcp(msg, auth, tuple, ip, lifetime, quotas);
        }
        let relays = match self.acquire_relays(&plan) {
            Ok(relays) => relays,
            Err(reason) => return fail(508, reason),
        };
        let AcquiredRelays {
            primary: socket,
            next: reserved,
            additional: second,
        } = relays;
        if request.dont_fragment {
            for s in std::iter::once(&socket).chain(second.as_ref()) {
                if let Err(e) = dont_fragment::set(s, s.local_addr().is_ok_and(|a| a.is_ipv4())) {
                    tracing::warn!(target: "av_edge", "cannot set DONT-FRAGMENT: {e}");
                    return fail(500, "Server Error: DONT-FRAGMENT");
                }
            }
        }
        let (Ok(relay), relay_v6) = (
            socket.local_addr(),
            second.as_ref().and_then(|s| s.local_addr().ok()),
        ) else {
            return fail(508, "Insufficient Capacity");
        };
        let mut table = self.table();
        let needed = 1 + usize::from(reserved.is_some());
        if let Err(reply) = self.admit(&table, msg, auth, tuple, needed, quotas) {
            // The sockets (and a reservation taken above) are dropped: their ports are free.
            return Outcome::reply(reply);
        }
        let id = table.next_id();
        let mut outcome = Outcome::default();
        match origin {
            Origin::Plane { shard, listener } => {
                // The data plane takes the IPv4 socket first in a dual allocation.
                let cmd = Command::Install {
                    id,
                    client: tuple.client,
                    listener,
                    relay: socket,
                    relay_v6: second,
                    bandwidth_bytes_per_sec: settings.bandwidth_bytes_per_sec,
                };
                if let Err(e) = self.plane.command(shard, cmd) {
                    tracing::warn!(target: "av_edge", "cannot install allocation: {e}");
                    return fail(508, "Insufficient Capacity");
                }
            }
            Origin::Stream => {
                outcome.stream_relays.push(socket);
                outcome.stream_relays.extend(second);
            }
        }
        let token = reserved.map(|next| {
            let token: ReservationToken = rand::random();
            table.reserve(
                token,
                Reservation {
                    socket: next,
                    identity: auth.identity.clone(),
                    expires: Instant::now() + RESERVATION_LIFETIME,
                },
            );
            token
        });
        table.insert(
            tuple,
            Allocation {
                id,
                username: auth.username.clone(),
                identity: auth.identity.clone(),
                relay,
                relay_v6,
                expires: Instant::now() + Duration::from_secs(u64::from(lifetime)),
                permissions: HashMap::new(),
                permission_ports: HashMap::new(),
                channels: HashMap::new(),
                origin,
                allocate_transaction: *msg.transaction_id(),
                tcp: None,
            },
        );
        self.allocations_now(table.len());
        drop(table);
        self.counters.allocations_created.inc();
        tracing::debug!(target: "av_edge", client = %tuple.client, %relay, ?relay_v6, user = %auth.username, lifetime, "allocation created");
        outcome.reply = respond(msg, Class::SuccessResponse, Some(auth), |e| {
            e.add_xor_address(attr::XOR_RELAYED_ADDRESS, relay)?;
            if let Some(v6) = relay_v6 {
                e.add_xor_address(attr::XOR_RELAYED_ADDRESS, v6)?;
            } else if request.additional_v6 {
                e.add_address_error_code(AddressFamily::V6, 440, "Address Family not Supported")?;
            }
            if let Some(t) = &token {
                e.add(&Attribute::ReservationToken(t))?;
            }
            e.add(&Attribute::Lifetime(lifetime))?;
            e.add_xor_address(attr::XOR_MAPPED_ADDRESS, tuple.client)?;
            Ok(())
        });
        outcome
    }

    fn refresh(
        &self,
        msg: &Message<'_>,
        auth: &Auth,
        tuple: FiveTuple,
        settings: &Settings,
    ) -> Option<Vec<u8>> {
        let mut table = self.table();
        let alloc = match owned_allocation(&mut table, msg, &tuple, auth) {
            Ok(alloc) => alloc,
            Err(reply) => return reply,
        };
        if let Ok(Some(Attribute::RequestedAddressFamily(f))) =
            msg.get(attr::REQUESTED_ADDRESS_FAMILY)
        {
            let families = [Some(alloc.relay), alloc.relay_v6];
            if !families.iter().flatten().any(|r| AddressFamily::of(r) == f) {
                return error(msg, 443, "Peer Address Family Mismatch", Some(auth));
            }
        }
        let requested = msg.lifetime().ok().flatten();
        let lifetime = if requested == Some(0) {
            0
        } else {
            Self::lifetime(msg, settings, auth)
        };
        if lifetime == 0 {
            if let Some(gone) = table.remove(&tuple) {
                self.forget(gone.origin, gone.id);
            }
            self.allocations_now(table.len());
        } else if let Some(alloc) = table.get_mut(&tuple) {
            alloc.expires = Instant::now() + Duration::from_secs(u64::from(lifetime));
        }
        drop(table);
        respond(msg, Class::SuccessResponse, Some(auth), |e| {
            e.add(&Attribute::Lifetime(lifetime))?;
            Ok(())
        })
    }

    fn forget(&self, origin: Origin, id: media_relay::AllocationId) {
        // A removal is never refused by a full queue (it waits for room), so this fails
        // only for a shard that does not exist.
        if !self.push(origin, Command::Remove { id }) {
            tracing::warn!(target: "av_edge", "cannot remove allocation {id}: no such relay thread");
        }
    }

    /// Checks a peer address against the policy; logs refusals at debug.
    pub(crate) fn check_peer(
        &self,
        peer: SocketAddr,
        settings: &Settings,
        client: SocketAddr,
    ) -> Result<SocketAddr, ()> {
        self.reach_peer(peer, settings, client).map(|r| r.peer)
    }

    /// `check_peer`, with the ports a permission for the peer covers.
    fn reach_peer(
        &self,
        peer: SocketAddr,
        settings: &Settings,
        client: SocketAddr,
    ) -> Result<Reachable, ()> {
        settings.policy.reach(peer).map_err(|why| {
            self.counters.forbidden_peers.inc();
            tracing::debug!(target: "av_edge", %client, %peer, "peer refused: {why}");
        })
    }

    fn create_permission(
        &self,
        msg: &Message<'_>,
        auth: &Auth,
        tuple: FiveTuple,
        settings: &Settings,
    ) -> Option<Vec<u8>> {
        let limits = settings.limits;
        let mut peers = Vec::new();
        for a in msg.get_all(attr::XOR_PEER_ADDRESS) {
            match a {
                Ok(Attribute::XorPeerAddress(p)) => peers.push(p),
                _ => return error(msg, 400, "Bad XOR-PEER-ADDRESS", Some(auth)),
            }
            if peers.len() > limits.peers_per_request {
                self.counters.bad_requests.inc();
                return error(msg, 400, "Too many XOR-PEER-ADDRESS", Some(auth));
            }
        }
        if peers.is_empty() {
            return error(msg, 400, "XOR-PEER-ADDRESS is required", Some(auth));
        }
        let mut table = self.table();
        let alloc = match owned_allocation(&mut table, msg, &tuple, auth) {
            Ok(alloc) => alloc,
            Err(reply) => return reply,
        };
        let mut checked: Vec<Reachable> = Vec::with_capacity(peers.len());
        for p in peers {
            let Ok(p) = self.reach_peer(p, settings, tuple.client) else {
                return error(msg, 403, "Forbidden", Some(auth));
            };
            if !alloc.serves_family_of(&p.peer) {
                return error(msg, 443, "Peer Address Family Mismatch", Some(auth));
            }
            checked.push(p);
        }
        let mut fresh: Vec<&Reachable> = Vec::new();
        for p in &checked {
            let ip = p.peer.ip();
            if !alloc.permissions.contains_key(&ip) && !fresh.iter().any(|f| f.peer.ip() == ip) {
                fresh.push(p);
            }
        }
        if alloc.permissions.len() + fresh.len() > limits.permissions {
            self.counters.quota_rejections.inc();
            tracing::debug!(target: "av_edge", client = %tuple.client, user = %auth.identity, "permission cap reached");
            return error(
                msg,
                508,
                "Insufficient Capacity: too many permissions",
                Some(auth),
            );
        }
        let expires = Instant::now() + PERMISSION_LIFETIME;
        for p in &checked {
            let cmd = Command::Permit {
                id: alloc.id,
                peer: p.peer.ip(),
                ports: p.ports.clone(),
            };
            // Told to the relay thread for a new peer, and again when the ports differ
            // from those the permission was made with.
            let changed = alloc.permission_ports.get(&p.peer.ip()) != Some(&p.ports);
            if changed && !self.push(alloc.origin, cmd) {
                return error(msg, 508, "Insufficient Capacity", Some(auth));
            }
            alloc.permissions.insert(p.peer.ip(), expires);
            alloc.permission_ports.insert(p.peer.ip(), p.ports.clone());
        }
        drop(table);
        respond(msg, Class::SuccessResponse, Some(auth), |_| Ok(()))
    }

    fn channel_bind(
        &self,
        msg: &Message<'_>,
        auth: &Auth,
        tuple: FiveTuple,
        settings: &Settings,
    ) -> Option<Vec<u8>> {
        let channel = match msg.get(attr::CHANNEL_NUMBER) {
            Ok(Some(Attribute::ChannelNumber(n))) if media_relay::channel::is_channel(n) => n,
            _ => return error(msg, 400, "Bad CHANNEL-NUMBER", Some(auth)),
        };
        let peer = match msg.address(attr::XOR_PEER_ADDRESS) {
            Ok(Some(p)) => p,
            _ => return error(msg, 400, "XOR-PEER-ADDRESS is required", Some(auth)),
        };
        let Ok(reach) = self.reach_peer(peer, settings, tuple.client) else {
            return error(msg, 403, "Forbidden", Some(auth));
        };
        let peer = reach.peer;
        let mut table = self.table();
        let alloc = match owned_allocation(&mut table, msg, &tuple, auth) {
            Ok(alloc) => alloc,
            Err(reply) => return reply,
        };
        if alloc.tcp.is_some() {
            return error(msg, 400, "no channels on a TCP allocation", Some(auth));
        }
        if !alloc.serves_family_of(&peer) {
            return error(msg, 443, "Peer Address Family Mismatch", Some(auth));
        }
        if let Some((bound, _)) = alloc.channels.get(&channel) {
            if *bound != peer {
                return error(msg, 400, "Channel bound to another peer", Some(auth));
            }
        }
        if alloc.channel_of(peer).is_some_and(|c| c != channel) {
            return error(msg, 400, "Peer bound to another channel", Some(auth));
        }
        let fresh_channel = !alloc.channels.contains_key(&channel);
        let fresh_permission = !alloc.permissions.contains_key(&peer.ip());
        if fresh_channel && alloc.channels.len() >= settings.limits.channels
            || fresh_permission && alloc.permissions.len() >= settings.limits.permissions
        {
            self.counters.quota_rejections.inc();
            tracing::debug!(target: "av_edge", client = %tuple.client, user = %auth.identity, "channel or permission cap reached");
            return error(
                msg,
                508,
                "Insufficient Capacity: too many channels or permissions",
                Some(auth),
            );
        }
        let (origin, id) = (alloc.origin, alloc.id);
        // A channel binding also installs or refreshes the permission (RFC 8656 11.2).
        if fresh_permission {
            let permit = Command::Permit {
                id,
                peer: peer.ip(),
                ports: reach.ports.clone(),
            };
            if !self.push(origin, permit) {
                return error(msg, 508, "Insufficient Capacity", Some(auth));
            }
            alloc.permission_ports.insert(peer.ip(), reach.ports);
        }
        if fresh_channel && !self.push(origin, Command::Bind { id, channel, peer }) {
            return error(msg, 508, "Insufficient Capacity", Some(auth));
        }
        let now = Instant::now();
        alloc
            .channels
            .insert(channel, (peer, now + CHANNEL_LIFETIME));
        alloc
            .permissions
            .insert(peer.ip(), now + PERMISSION_LIFETIME);
        drop(table);
        respond(msg, Class::SuccessResponse, Some(auth), |_| Ok(()))
    }

    /// Hands a change to the relay thread of a UDP allocation; `false` if it was refused
    /// (the queue is full; never for a removal). Stream allocations have no thread.
    fn push(&self, origin: Origin, cmd: Command) -> bool {
        let Origin::Plane { shard, .. } = origin else {
            return true;
        };
        match self.plane.command(shard, cmd) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(target: "av_edge", "relay thread update refused: {e}");
                false
            }
        }
    }

    /// Expires allocations, permissions and channels; tells the relay threads.
    pub fn sweep(&self) {
        let mut table = self.table();
        let now = Instant::now();
        let expired = table.sweep(now);
        self.allocations_now(table.len());
        drop(table);
        self.sweep_tcp(now);
        for (origin, id, tuple) in expired.allocations {
            tracing::debug!(target: "av_edge", client = %tuple.client, "allocation expired");
            self.forget(origin, id);
        }
        for (origin, id, peer) in expired.permissions {
            self.push(origin, Command::Revoke { id, peer });
        }
        for (origin, id, channel) in expired.channels {
            self.push(origin, Command::Unbind { id, channel });
        }
        let waiting = self.plane.retry_removals();
        if waiting > 0 {
            tracing::debug!(target: "av_edge", waiting, "relay threads backlogged: removals wait for room");
        }
    }

    // ---- media of stream clients (TCP/TLS); the lock is per packet, which the UDP
    // ---- data plane avoids; stream clients are the minority fallback transport.

    /// Whether the stream client's allocation still exists.
    pub fn stream_alive(&self, tuple: &FiveTuple) -> bool {
        self.table().get(tuple).is_some()
    }

    /// Where a ChannelData frame from a stream client goes.
    pub fn stream_channel_peer(&self, tuple: &FiveTuple, channel: u16) -> Option<SocketAddr> {
        let now = Instant::now();
        let table = self.table();
        let alloc = table.get(tuple)?;
        let (peer, exp) = alloc.channels.get(&channel)?;
        (*exp > now && alloc.permits(peer.ip(), now)).then_some(*peer)
    }

    /// Where a Send indication from a stream client goes (policy and permission checked).
    pub fn stream_send_peer(&self, tuple: &FiveTuple, peer: SocketAddr) -> Option<SocketAddr> {
        let settings = self.settings.load();
        let peer = self.check_peer(peer, &settings, tuple.client).ok()?;
        let table = self.table();
        let alloc = table.get(tuple)?;
        alloc.permits(peer.ip(), Instant::now()).then_some(peer)
    }

    /// How data from `peer` reaches a stream client: `Err` without permission, the
    /// channel number if one is bound.
    pub fn stream_from_peer(&self, tuple: &FiveTuple, peer: SocketAddr) -> Result<Option<u16>, ()> {
        let now = Instant::now();
        let table = self.table();
        let alloc = table.get(tuple).ok_or(())?;
        if !alloc.permits(peer.ip(), now) {
            return Err(());
        }
        Ok(alloc.channel_of(peer))
    }

    /// A stream client went away: its allocation goes with it (RFC 8656 on TCP).
    pub fn stream_closed(&self, tuple: &FiveTuple) {
        let mut table = self.table();
        if table.remove(tuple).is_some() {
            self.allocations_now(table.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::mpsc;

    use media_relay::{PeerGuard, PlaneConfig};

    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn server(dir: &tempfile::TempDir) -> Server {
        let store = edged_store::Store::open(&dir.path().join("store.redb"))
            .unwrap_or_else(|e| panic!("{e}"));
        let credentials = Credentials::open(store).unwrap_or_else(|e| panic!("{e}"));
        let (control, _) = tokio::sync::mpsc::channel(16);
        let plane = RelayPlane::start(
            PlaneConfig {
                threads: 1,
                cores: Vec::new(),
                listeners: vec![SocketAddr::new(LOOPBACK, 0)],
                socket_buffer_bytes: 1 << 16,
                guard: PeerGuard::default(),
                pacing: (Duration::ZERO, Duration::ZERO),
                metrics: Registry::new(),
            },
            control,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // Below Linux's ephemeral range, as the role's tests use.
        let ports = 20000..=29999;
        let config = edged_config::Config::embedded_default().av_edge;
        let settings = Settings::new(&config, &[7; 32], vec![LOOPBACK], ports.clone());
        Server::new(
            settings,
            credentials,
            Arc::new(plane),
            LOOPBACK,
            None,
            ports,
            &Registry::new(),
        )
    }

    #[test]
    fn relay_sockets_are_bound_while_another_thread_holds_the_table() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let server = server(&dir);
        let plan = RelayPlan {
            primary: Primary::Bind {
                ip: LOOPBACK,
                parity: Parity::EvenWithNext,
            },
            additional: None,
            quota_needed: 2,
        };
        let table = server.table();
        let (done, bound) = mpsc::channel();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let relays = server.acquire_relays(&plan).map(|r| {
                    let port = r.primary.local_addr().map(|a| a.port()).ok();
                    (port, r.next.is_some())
                });
                let _ = done.send(relays);
            });
            // Binding needs no table: it finishes while this thread holds the lock. The
            // bound only ends a broken run (the binder waiting for the lock) in a failure.
            let result = bound.recv_timeout(Duration::from_secs(120));
            drop(table);
            match result {
                Ok(Ok((Some(port), true))) => assert_eq!(port % 2, 0, "EVEN-PORT"),
                Ok(other) => panic!("binding failed: {other:?}"),
                Err(_) => panic!("binding waited for the allocation table lock"),
            }
        });
    }

    #[test]
    fn a_reservation_is_taken_from_the_table_not_bound() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let server = server(&dir);
        let held = UdpSocket::bind((LOOPBACK, 0)).unwrap_or_else(|e| panic!("{e}"));
        let port = held.local_addr().map(|a| a.port()).ok();
        server.table().reserve(
            [4; 8],
            Reservation {
                socket: held,
                identity: "alice".into(),
                expires: Instant::now() + RESERVATION_LIFETIME,
            },
        );
        let plan = RelayPlan {
            primary: Primary::Reserved([4; 8]),
            additional: None,
            quota_needed: 1,
        };
        let relays = server
            .acquire_relays(&plan)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(relays.primary.local_addr().map(|a| a.port()).ok(), port);
        assert_eq!(server.table().usage(), 0, "the reservation was used");
        assert_eq!(
            server.acquire_relays(&plan).err(),
            Some("Insufficient Capacity: unknown or expired reservation"),
            "a token is used once"
        );
    }
}
