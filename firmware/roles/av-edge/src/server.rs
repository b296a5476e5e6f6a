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
use rand::Rng;
use stun_core::{
    attr, verify_integrity, verify_integrity_sha256, AddressFamily, Attribute, Class, EncodeError,
    Message, MessageEncoder, Method, NonceStatus, PasswordAlgorithm, PASSWORD_ALGORITHM_MD5,
    PASSWORD_ALGORITHM_SHA256,
};

use crate::allocate_request::{AllocateRequest, Parity};
use crate::allocation::{
    Allocation, Allocations, FiveTuple, Origin, Reservation, ReservationToken, CHANNEL_LIFETIME,
    PERMISSION_LIFETIME, RESERVATION_LIFETIME,
};
use crate::credentials::{CredentialKind, Credentials};
use crate::settings::Settings;
use crate::tcp_relay::{Bound, Dial, PendingConnections, TcpAllocated};
use media_relay::dont_fragment;

pub const SOFTWARE: &str = "edged A/V Edge";

/// Offered in this order: SHA-256 preferred, MD5 for RFC 5389 clients.
const OFFERED_ALGORITHMS: [PasswordAlgorithm<'static>; 2] = [
    PasswordAlgorithm {
        algorithm: PASSWORD_ALGORITHM_SHA256,
        parameters: &[],
    },
    PasswordAlgorithm {
        algorithm: PASSWORD_ALGORITHM_MD5,
        parameters: &[],
    },
];

/// An authenticated request: who, and the key its answer is protected with.
#[derive(Clone)]
pub struct Auth {
    pub username: String,
    key: Vec<u8>,
    sha256: bool,
    pub kind: CredentialKind,
}

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
    rate: Mutex<HashMap<IpAddr, (Instant, u32)>>,
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
            rate: Mutex::new(HashMap::new()),
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

    /// Per source address budget of answers to unauthenticated requests, so the relay is
    /// no amplifier for spoofed sources.
    fn unauthenticated_allowed(&self, ip: IpAddr, rate: u32) -> bool {
        let now = Instant::now();
        let mut map = self.rate.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() > 100_000 {
            map.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(1));
        }
        let entry = map.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(1) {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= rate
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
        match msg.method() {
            Method::ALLOCATE => self.allocate(&msg, &auth, tuple, origin, &settings),
            Method::REFRESH => Outcome::reply(self.refresh(&msg, &auth, tuple, &settings)),
            Method::CREATE_PERMISSION => {
                Outcome::reply(self.create_permission(&msg, &auth, tuple, &settings))
            }
            Method::CONNECT => self.connect(&msg, &auth, tuple, &settings),
            Method::CONNECTION_BIND => self.connection_bind(&msg, &auth, tuple),
            _ => Outcome::reply(self.channel_bind(&msg, &auth, tuple, &settings)),
        }
    }

    /// Long-term credential check (RFC 8489 9.2). `Err` carries the answer (or `None`
    /// to stay silent).
    fn authenticate(
        &self,
        msg: &Message<'_>,
        client: SocketAddr,
        settings: &Settings,
    ) -> Result<Auth, Option<Vec<u8>>> {
        let now = now_unix();
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
        let has_integrity = msg.raw(attr::MESSAGE_INTEGRITY).is_some()
            || msg.raw(attr::MESSAGE_INTEGRITY_SHA256).is_some();
        if !has_integrity {
            self.counters.unauthenticated.inc();
            if !self.unauthenticated_allowed(client.ip(), settings.unauthenticated_rate) {
                self.counters.rate_limited.inc();
                return Err(None);
            }
            return Err(challenge(401, "Unauthorized"));
        }
        let bad = |reason: &str| {
            self.counters.bad_requests.inc();
            Err(error(msg, 400, reason, None))
        };
        let (Ok(Some(username)), Ok(Some(realm)), Ok(Some(nonce))) =
            (msg.username(), msg.realm(), msg.nonce())
        else {
            return bad("USERNAME, REALM and NONCE are required with MESSAGE-INTEGRITY");
        };
        match settings.nonces.check(nonce, now, client) {
            NonceStatus::Valid => {}
            NonceStatus::Stale => {
                self.counters.stale_nonces.inc();
                return Err(challenge(438, "Stale Nonce"));
            }
            NonceStatus::Invalid => {
                self.counters.auth_failures.inc();
                return Err(challenge(401, "Unauthorized"));
            }
        }
        if realm != settings.realm {
            self.counters.auth_failures.inc();
            return Err(challenge(401, "Unauthorized"));
        }
        let algorithm = match (
            msg.get(attr::PASSWORD_ALGORITHM),
            msg.get(attr::PASSWORD_ALGORITHMS),
        ) {
            (Ok(None), Ok(None)) => PASSWORD_ALGORITHM_MD5,
            (
                Ok(Some(Attribute::PasswordAlgorithm(chosen))),
                Ok(Some(Attribute::PasswordAlgorithms(echo))),
            ) => {
                // The echoed list must be ours, or a man in the middle downgraded it.
                let ours = echo
                    .iter()
                    .map(|a| (a.algorithm, a.parameters))
                    .eq(OFFERED_ALGORITHMS
                        .iter()
                        .map(|a| (a.algorithm, a.parameters)));
                if !ours
                    || !OFFERED_ALGORITHMS
                        .iter()
                        .any(|a| a.algorithm == chosen.algorithm)
                {
                    return bad("PASSWORD-ALGORITHM not offered");
                }
                chosen.algorithm
            }
            _ => return bad("PASSWORD-ALGORITHM and PASSWORD-ALGORITHMS go together"),
        };
        let (keys, kind) = match self.credentials.keys(username, realm, algorithm) {
            Ok(k) => k,
            Err(e) => {
                tracing::debug!(target: "av_edge", %client, username, "authentication failed: {e}");
                self.counters.auth_failures.inc();
                return Err(challenge(401, "Unauthorized"));
            }
        };
        let sha256 = msg.raw(attr::MESSAGE_INTEGRITY_SHA256).is_some();
        let key = keys.into_iter().find(|k| {
            if sha256 {
                verify_integrity_sha256(msg, k)
            } else {
                verify_integrity(msg, k)
            }
        });
        match key {
            Some(key) => Ok(Auth {
                username: username.to_string(),
                key,
                sha256,
                kind,
            }),
            None => {
                tracing::debug!(target: "av_edge", %client, username, "authentication failed: wrong key");
                self.counters.auth_failures.inc();
                Err(challenge(401, "Unauthorized"))
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

    /// Binds a relay socket on a free port of the range; with `Parity::EvenWithNext` also
    /// the odd port after it, for a reservation.
    fn bind_relay(&self, ip: IpAddr, parity: Parity) -> Option<(UdpSocket, Option<UdpSocket>)> {
        let (lo, hi) = (*self.relay_ports.start(), *self.relay_ports.end());
        let span = u32::from(hi - lo) + 1;
        let start = rand::thread_rng().gen_range(0..span);
        let tries = span.min(512);
        let bind = |port: u32| {
            let sock = UdpSocket::bind(SocketAddr::new(ip, u16::try_from(port).ok()?)).ok()?;
            sock.set_nonblocking(true).ok()?;
            Some(sock)
        };
        for i in 0..tries {
            let port = u32::from(lo) + (start + i) % span;
            if parity != Parity::Any && port % 2 == 1 {
                continue;
            }
            let Some(sock) = bind(port) else { continue };
            if parity != Parity::EvenWithNext {
                return Some((sock, None));
            }
            if port < u32::from(hi) {
                if let Some(next) = bind(port + 1) {
                    return Some((sock, Some(next)));
                }
            }
        }
        None
    }

    /// The relay address for a requested family (RFC 6156): the configured relay address
    /// of that family, if there is one.
    fn relay_ip_of(&self, family: Option<AddressFamily>) -> Option<IpAddr> {
        let Some(family) = family else {
            return Some(self.relay_ip);
        };
        if AddressFamily::of(&SocketAddr::new(self.relay_ip, 0)) == family {
            return Some(self.relay_ip);
        }
        self.relay_ip_v6.filter(|_| family == AddressFamily::V6)
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
        {
            let table = self.table();
            if let Some(existing) = table.get(&tuple) {
                if existing.allocate_transaction == *msg.transaction_id() {
                    // A retransmission: the same answer again.
                    let (relay, relay_v6, remaining) = (
                        existing.relay,
                        existing.relay_v6,
                        existing
                            .expires
                            .saturating_duration_since(Instant::now())
                            .as_secs() as u32,
                    );
                    return Outcome::reply(respond(msg, Class::SuccessResponse, Some(auth), |e| {
                        e.add_xor_address(attr::XOR_RELAYED_ADDRESS, relay)?;
                        if let Some(v6) = relay_v6 {
                            e.add_xor_address(attr::XOR_RELAYED_ADDRESS, v6)?;
                        }
                        e.add(&Attribute::Lifetime(remaining))?;
                        e.add_xor_address(attr::XOR_MAPPED_ADDRESS, tuple.client)?;
                        Ok(())
                    }));
                }
                return fail(437, "Allocation Mismatch");
            }
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
        let Some(primary_ip) = self.relay_ip_of(request.family) else {
            return fail(440, "Address Family not Supported");
        };
        // ADDITIONAL-ADDRESS-FAMILY is always IPv6 (parse checked it); without an IPv6
        // relay address the IPv4 allocation succeeds with ADDRESS-ERROR-CODE 440.
        let additional_ip = if request.additional_v6 {
            self.relay_ip_v6
                .filter(|v6| v6.is_ipv6() && primary_ip.is_ipv4())
        } else {
            None
        };
        let lifetime = Self::lifetime(msg, settings, auth);
        let mut table = self.table();
        let needed = 1 + usize::from(request.parity == Parity::EvenWithNext);
        if table.usage() + needed > settings.max_allocations as usize
            || table.user_count(&auth.username) as usize + needed
                > settings.max_allocations_per_user as usize
        {
            self.counters.quota_rejections.inc();
            tracing::debug!(target: "av_edge", user = %auth.username, "allocation quota reached");
            return fail(486, "Allocation Quota Reached");
        }
        if request.tcp {
            drop(table);
            return self.allocate_tcp(msg, auth, tuple, primary_ip, lifetime);
        }
        let (socket, reserved) = match request.token {
            Some(token) => match table.take_reservation(&token, Instant::now()) {
                Some(s) => (s, None),
                None => return fail(508, "Insufficient Capacity: unknown or expired reservation"),
            },
            None => match self.bind_relay(primary_ip, request.parity) {
                Some(pair) => pair,
                None => return fail(508, "Insufficient Capacity"),
            },
        };
        let second = match additional_ip {
            Some(ip) => match self.bind_relay(ip, Parity::Any) {
                Some((s, _)) => Some(s),
                None => return fail(508, "Insufficient Capacity"),
            },
            None => None,
        };
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
        let token = match reserved {
            Some(next) => {
                let token: ReservationToken = rand::random();
                table.reserve(
                    token,
                    Reservation {
                        socket: next,
                        username: auth.username.clone(),
                        expires: Instant::now() + RESERVATION_LIFETIME,
                    },
                );
                Some(token)
            }
            None => None,
        };
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
        table.insert(
            tuple,
            Allocation {
                id,
                username: auth.username.clone(),
                relay,
                relay_v6,
                expires: Instant::now() + Duration::from_secs(u64::from(lifetime)),
                permissions: HashMap::new(),
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
        let Some(alloc) = table.get_mut(&tuple) else {
            return error(msg, 437, "Allocation Mismatch", Some(auth));
        };
        if alloc.username != auth.username {
            return error(msg, 441, "Wrong Credentials", Some(auth));
        }
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
        if let Origin::Plane { shard, .. } = origin {
            if let Err(e) = self.plane.command(shard, Command::Remove { id }) {
                tracing::warn!(target: "av_edge", "cannot remove allocation {id}: {e}");
            }
        }
    }

    /// Checks a peer address against the policy; logs refusals at debug.
    pub(crate) fn check_peer(
        &self,
        peer: SocketAddr,
        settings: &Settings,
        client: SocketAddr,
    ) -> Result<SocketAddr, ()> {
        settings.policy.check(peer).map_err(|why| {
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
        let mut peers = Vec::new();
        for a in msg.get_all(attr::XOR_PEER_ADDRESS) {
            match a {
                Ok(Attribute::XorPeerAddress(p)) => peers.push(p),
                _ => return error(msg, 400, "Bad XOR-PEER-ADDRESS", Some(auth)),
            }
        }
        if peers.is_empty() {
            return error(msg, 400, "XOR-PEER-ADDRESS is required", Some(auth));
        }
        let mut table = self.table();
        let Some(alloc) = table.get_mut(&tuple) else {
            return error(msg, 437, "Allocation Mismatch", Some(auth));
        };
        if alloc.username != auth.username {
            return error(msg, 441, "Wrong Credentials", Some(auth));
        }
        let mut checked = Vec::with_capacity(peers.len());
        for p in peers {
            let Ok(p) = self.check_peer(p, settings, tuple.client) else {
                return error(msg, 403, "Forbidden", Some(auth));
            };
            if !alloc.serves_family_of(&p) {
                return error(msg, 443, "Peer Address Family Mismatch", Some(auth));
            }
            checked.push(p);
        }
        let expires = Instant::now() + PERMISSION_LIFETIME;
        for p in checked {
            if alloc.permissions.insert(p.ip(), expires).is_none() {
                self.push(
                    alloc.origin,
                    Command::Permit {
                        id: alloc.id,
                        peer: p.ip(),
                    },
                );
            }
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
        let Ok(peer) = self.check_peer(peer, settings, tuple.client) else {
            return error(msg, 403, "Forbidden", Some(auth));
        };
        let mut table = self.table();
        let Some(alloc) = table.get_mut(&tuple) else {
            return error(msg, 437, "Allocation Mismatch", Some(auth));
        };
        if alloc.username != auth.username {
            return error(msg, 441, "Wrong Credentials", Some(auth));
        }
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
        let now = Instant::now();
        let fresh_channel = alloc
            .channels
            .insert(channel, (peer, now + CHANNEL_LIFETIME))
            .is_none();
        // A channel binding also installs or refreshes the permission (RFC 8656 11.2).
        let fresh_permission = alloc
            .permissions
            .insert(peer.ip(), now + PERMISSION_LIFETIME)
            .is_none();
        let (origin, id) = (alloc.origin, alloc.id);
        if fresh_permission {
            self.push(
                origin,
                Command::Permit {
                    id,
                    peer: peer.ip(),
                },
            );
        }
        if fresh_channel {
            self.push(origin, Command::Bind { id, channel, peer });
        }
        drop(table);
        respond(msg, Class::SuccessResponse, Some(auth), |_| Ok(()))
    }

    fn push(&self, origin: Origin, cmd: Command) {
        if let Origin::Plane { shard, .. } = origin {
            if let Err(e) = self.plane.command(shard, cmd) {
                tracing::warn!(target: "av_edge", "relay thread update lost: {e}");
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
