//! The transaction-stateful proxy (RFC 3261 sections 16 and 17) between the two sides.
//!
//! Requests from outside (remote users, partners) go to the Director pool; requests from
//! inside go to a partner domain, or back to a remote user's connection named by the flow
//! token in our Record-Route/Path. Responses follow our Via branch back to the connection the
//! request came on. Nothing is ever sent to an address taken from a Via header.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use edged_config::roles::access_edge::AccessEdgeConfig;
use edged_metrics::{Counter, Registry};
use sip_core::{
    build_response, parse_with, Limits, Message, MessageEditor, Request, Response, ResponseSpec,
};

use crate::conceal;
use crate::conn::{ConnHandle, ConnId, ConnSettings, Origin};
use crate::guard::{AddressGuard, GuardLimits};
use crate::policy::{Admission, FederationPolicy, PartnerKind};
use crate::reply::{looks_like_response, loose_response};
use crate::route::{
    derive_branch, own_route, pop_own_routes, uri_address, uri_domain, uri_host, FlowToken,
    BRANCH_PREFIX,
};
use crate::scanner::ScannerFilter;
use crate::timers::{self, Expiry, TimerLimits, TxnClock};
use crate::tls_peer::{name_matches, EdgeTls};
use crate::{next_hop, partner};

/// Header this edge uses to tell the Director where a request came from (MS-SIPRE 2.2.15).
pub const TRUST_HEADER: &str = "ms-edge-proxy-message-trust";

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Settings derived from the configuration, swapped whole on reload.
#[derive(Debug, Clone)]
pub struct Settings {
    pub limits: Limits,
    pub idle: Duration,
    pub handshake_timeout: Duration,
    pub transaction_timeout: Duration,
    pub timer_c: Duration,
    pub hide_user_existence: bool,
    pub health_interval: Duration,
    pub next_hops: Vec<String>,
    pub sip_domains: Vec<String>,
    pub fqdn: String,
    pub scanners: ScannerFilter,
    pub dns_servers: Vec<SocketAddr>,
    pub partner_port: u16,
}

impl Settings {
    pub fn from_config(c: &AccessEdgeConfig) -> Self {
        Settings {
            limits: Limits {
                max_message_size: c.max_message_bytes,
                ..Limits::default()
            },
            idle: Duration::from_secs(c.idle_timeout_secs),
            handshake_timeout: Duration::from_secs(c.handshake_timeout_secs),
            transaction_timeout: Duration::from_secs(c.transaction_timeout_secs),
            timer_c: Duration::from_secs(c.timer_c_secs),
            hide_user_existence: c.hide_user_existence,
            health_interval: Duration::from_secs(c.health_check_interval_secs),
            next_hops: c.next_hops.clone(),
            sip_domains: c
                .sip_domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            fqdn: c.fqdn.clone(),
            scanners: ScannerFilter::new(&c.scanner_user_agents),
            dns_servers: c.federation.dns_servers.clone(),
            partner_port: c.federation.partner_port,
        }
    }

    pub fn guard_limits(c: &AccessEdgeConfig) -> GuardLimits {
        GuardLimits {
            connection_rate: c.connection_rate_per_ip,
            handshake_rate: c.handshake_rate_per_ip,
            max_connections: c.max_connections_per_ip,
        }
    }
}

/// The counters `status()` shows and Prometheus exports.
pub struct Counters {
    pub requests: Counter,
    pub responses: Counter,
    pub malformed_requests: Counter,
    pub malformed_responses: Counter,
    pub stray_responses: Counter,
    pub oversize_closed: Counter,
    pub idle_closed: Counter,
    pub scanners: Counter,
    pub federation_refused: Counter,
    pub throttled: Counter,
    pub no_next_hop: Counter,
    pub timeouts: Counter,
    pub keepalives: Counter,
    pub connections: Counter,
    pub connections_refused: Counter,
    pub handshake_failures: Counter,
    pub loops: Counter,
    pub timer_c_cancels: Counter,
    pub concealed: Counter,
}

impl Counters {
    pub fn new(r: &Registry) -> Self {
        let c = |what: &str, help: &str| {
            r.counter(&format!("edged_access_edge_{what}_total"), help, &[])
        };
        Counters {
            requests: c("requests", "SIP requests received"),
            responses: c("responses_relayed", "SIP responses relayed"),
            malformed_requests: c("malformed_requests", "Requests refused as malformed"),
            malformed_responses: c("malformed_responses", "Malformed responses dropped"),
            stray_responses: c(
                "stray_responses",
                "Responses matching no transaction, dropped",
            ),
            oversize_closed: c(
                "oversize_closed",
                "Connections closed for an oversize message",
            ),
            idle_closed: c("idle_closed", "Connections closed after the idle timeout"),
            scanners: c("scanner_requests", "Requests from SIP scanners dropped"),
            federation_refused: c("federation_refused", "Federated requests refused by policy"),
            throttled: c(
                "federation_throttled",
                "Federated requests over their domain's rate",
            ),
            no_next_hop: c(
                "no_next_hop",
                "Requests answered 503 for lack of a next hop",
            ),
            timeouts: c("transaction_timeouts", "Transactions answered 408"),
            keepalives: c("keepalives", "CRLF keep-alives answered"),
            connections: c("connections", "Connections accepted or opened"),
            connections_refused: c(
                "connections_refused",
                "Connections refused by the per-address limits",
            ),
            handshake_failures: c(
                "handshake_failures",
                "TLS handshakes that failed or timed out",
            ),
            loops: c("loops", "Requests refused with 482 Loop Detected"),
            timer_c_cancels: c(
                "timer_c_cancels",
                "Ringing INVITE branches cancelled by Timer C",
            ),
            concealed: c(
                "concealed_answers",
                "Director answers to outsiders replaced by the uniform 480",
            ),
        }
    }

    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("requests", self.requests.get()),
            ("responses_relayed", self.responses.get()),
            ("malformed_requests", self.malformed_requests.get()),
            ("malformed_responses", self.malformed_responses.get()),
            ("stray_responses", self.stray_responses.get()),
            ("oversize_closed", self.oversize_closed.get()),
            ("idle_closed", self.idle_closed.get()),
            ("scanner_requests", self.scanners.get()),
            ("federation_refused", self.federation_refused.get()),
            ("federation_throttled", self.throttled.get()),
            ("no_next_hop", self.no_next_hop.get()),
            ("transaction_timeouts", self.timeouts.get()),
            ("keepalives", self.keepalives.get()),
            ("connections", self.connections.get()),
            ("connections_refused", self.connections_refused.get()),
            ("handshake_failures", self.handshake_failures.get()),
            ("loops", self.loops.get()),
            ("timer_c_cancels", self.timer_c_cancels.get()),
            ("concealed_answers", self.concealed.get()),
        ]
    }
}

/// What CANCEL and the ACK of a non-2xx answer need from the forwarded INVITE.
#[derive(Debug, Clone)]
struct InviteCopy {
    request_uri: String,
    via: String,
    routes: Vec<String>,
    call_id: String,
    from: String,
    to: String,
    cseq: u32,
}

impl InviteCopy {
    fn build(&self, method: &str, to: &str) -> Vec<u8> {
        let mut s = format!(
            "{method} {} SIP/2.0\r\nVia: {}\r\n",
            self.request_uri, self.via
        );
        for r in &self.routes {
            s.push_str("Route: ");
            s.push_str(r);
            s.push_str("\r\n");
        }
        s.push_str(&format!(
            "Max-Forwards: 70\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {} {method}\r\nContent-Length: 0\r\n\r\n",
            self.from, self.call_id, self.cseq
        ));
        s.into_bytes()
    }
}

/// A forwarded request waiting for its answers.
struct ClientTxn {
    /// Where answers go; None for our own health checks.
    upstream: Option<Arc<ConnHandle>>,
    downstream: Option<Arc<ConnHandle>>,
    /// The request as received, to answer it ourselves (408, 503) when needed.
    request: Vec<u8>,
    invite: Option<InviteCopy>,
    clock: TxnClock,
    final_status: Option<u16>,
    /// When the final answer came (or was made up): the transaction lingers from then on to
    /// absorb the ACK of a non-2xx and relay 2xx retransmissions.
    settled: Option<Instant>,
    /// Inbound federated domain, whose outcomes feed the failure ratio.
    partner: Option<String>,
    /// Health check of this next hop.
    health_of: Option<String>,
}

/// The bound addresses of the three listeners.
#[derive(Debug, Clone, Copy)]
pub struct OwnAddrs {
    pub remote_users: SocketAddr,
    pub federation: SocketAddr,
    pub internal: SocketAddr,
}

/// Where a request is going.
#[derive(Debug, Clone)]
pub enum Target {
    NextHopPool,
    Connection(ConnId),
    Partner(String),
}

/// Everything the role's tasks share.
pub struct Shared {
    pub settings: RwLock<Arc<Settings>>,
    pub tls: RwLock<EdgeTls>,
    pub policy: Mutex<FederationPolicy>,
    pub guard: Mutex<AddressGuard>,
    pub counters: Counters,
    pub listeners: RwLock<Vec<SocketAddr>>,
    /// Our bound listener addresses, written in Via, Record-Route and Path.
    pub own: RwLock<Option<OwnAddrs>>,
    /// Drain and stop: listeners stop on `draining`, connections close on `closing`.
    pub life: edged_role::Lifecycle,
    /// Notified when a transaction settles or a forward in flight ends, so a drain waits
    /// for the last one without polling.
    pub work_ended: tokio::sync::Notify,
    pub hops: Mutex<next_hop::Pool>,
    pub started: Instant,
    conns: Mutex<HashMap<ConnId, Arc<ConnHandle>>>,
    /// Reusable connections by peer: `hop:<host:port>` or `dom:<domain>`.
    pool: Mutex<HashMap<String, ConnId>>,
    txns: Mutex<HashMap<String, ClientTxn>>,
    next_id: AtomicU64,
    pub in_flight: AtomicUsize,
    /// One connection attempt per peer at a time, so a burst of requests shares it.
    connect_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    secret: [u8; 16],
}

impl Shared {
    pub fn new(cfg: &AccessEdgeConfig, tls: EdgeTls, metrics: &Registry) -> Self {
        let settings = Settings::from_config(cfg);
        Shared {
            hops: Mutex::new(next_hop::Pool::new(&settings.next_hops)),
            settings: RwLock::new(Arc::new(settings)),
            tls: RwLock::new(tls),
            policy: Mutex::new(FederationPolicy::new(cfg.federation.clone())),
            guard: Mutex::new(AddressGuard::new(Settings::guard_limits(cfg))),
            counters: Counters::new(metrics),
            listeners: RwLock::new(Vec::new()),
            own: RwLock::new(None),
            life: edged_role::Lifecycle::new(),
            work_ended: tokio::sync::Notify::new(),
            started: Instant::now(),
            conns: Mutex::new(HashMap::new()),
            pool: Mutex::new(HashMap::new()),
            txns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            in_flight: AtomicUsize::new(0),
            connect_locks: Mutex::new(HashMap::new()),
            secret: rand::random(),
        }
    }

    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn edge_tls(&self) -> EdgeTls {
        self.tls
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn conn_settings(&self) -> ConnSettings {
        let s = self.settings();
        ConnSettings {
            limits: s.limits,
            idle: s.idle,
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn next_conn_id(&self) -> ConnId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn register(&self, h: &Arc<ConnHandle>) {
        self.counters.connections.inc();
        lock(&self.conns).insert(h.id, h.clone());
        if let Some(d) = h.domain() {
            self.pool_put(&format!("dom:{d}"), h.id);
        }
    }

    pub fn unregister(&self, h: &ConnHandle) {
        lock(&self.conns).remove(&h.id);
        lock(&self.pool).retain(|_, id| *id != h.id);
    }

    pub fn pool_put(&self, key: &str, id: ConnId) {
        lock(&self.pool).insert(key.to_owned(), id);
    }

    pub fn pooled(&self, key: &str) -> Option<Arc<ConnHandle>> {
        let id = *lock(&self.pool).get(key)?;
        self.conn(id)
    }

    pub fn connect_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.connect_locks)
            .entry(key.to_owned())
            .or_default()
            .clone()
    }

    pub fn conn(&self, id: ConnId) -> Option<Arc<ConnHandle>> {
        lock(&self.conns).get(&id).cloned()
    }

    pub fn connection_count(&self) -> usize {
        lock(&self.conns).len()
    }

    pub fn pending_transactions(&self) -> usize {
        lock(&self.txns)
            .values()
            .filter(|t| t.final_status.is_none())
            .count()
    }

    fn unix_now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// Entry point for every complete message read from a connection.
    pub fn on_message(self: &Arc<Self>, conn: &Arc<ConnHandle>, bytes: Vec<u8>) {
        let settings = self.settings();
        tracing::trace!(target: "access_edge", peer = %conn.peer, origin = ?conn.origin, bytes = bytes.len(), "message received");
        match parse_with(&bytes, &settings.limits) {
            Ok(Message::Request(req)) => {
                self.counters.requests.inc();
                self.on_request(conn, &req, &bytes, &settings);
            }
            Ok(Message::Response(resp)) => self.on_response(conn, &resp),
            Err(e) => {
                if looks_like_response(&bytes) {
                    self.counters.malformed_responses.inc();
                    tracing::debug!(target: "access_edge", peer = %conn.peer, error = %e, "malformed response dropped");
                    return;
                }
                self.counters.malformed_requests.inc();
                tracing::info!(target: "access_edge", peer = %conn.peer, error = %e, "malformed request refused");
                if let Some(out) = loose_response(&bytes, e.status(), e.reason()) {
                    conn.send(out);
                }
            }
        }
    }

    fn reply(
        &self,
        conn: &ConnHandle,
        req: &Request<'_>,
        status: u16,
        reason: &str,
        extra: &[(&str, &str)],
    ) {
        if req.method() == "ACK" {
            return;
        }
        let mut out = Vec::new();
        let mut spec = ResponseSpec::new(status, reason);
        let tag = format!("ae{:x}", self.next_id.fetch_add(1, Ordering::Relaxed));
        spec.to_tag = Some(&tag);
        spec.extra_headers = extra;
        build_response(req, &spec, &mut out);
        conn.send(out);
    }

    fn on_request(
        self: &Arc<Self>,
        conn: &Arc<ConnHandle>,
        req: &Request<'_>,
        bytes: &[u8],
        s: &Settings,
    ) {
        if s.scanners.is_scanner(req.user_agent()) {
            // No answer at all: a scanner learns nothing, not even that SIP is spoken here.
            self.counters.scanners.inc();
            tracing::info!(target: "access_edge", peer = %conn.peer, "scanner request dropped");
            return;
        }
        if let Err(reject) = sip_core::validate_for_proxy(req) {
            let unsupported = reject.unsupported.join(", ");
            let extra: Vec<(&str, &str)> = if unsupported.is_empty() {
                vec![]
            } else {
                vec![("Unsupported", unsupported.as_str())]
            };
            self.reply(conn, req, reject.status, reject.reason, &extra);
            return;
        }
        let listeners = self
            .listeners
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(top_via) = req.top_via() else {
            self.reply(conn, req, 400, "Missing Via", &[]);
            return;
        };
        // Our own Via (our branch prefix at one of our listener addresses) means the request
        // came back to us: a loop.
        let is_ours = |v: &sip_core::Via<'_>| {
            let port = v.port.unwrap_or(5061);
            v.branch().is_some_and(|b| b.starts_with(BRANCH_PREFIX))
                && v.host
                    .ip()
                    .is_some_and(|ip| listeners.iter().any(|l| l.ip() == ip && l.port() == port))
        };
        if req.vias().any(|v| is_ours(&v)) {
            self.counters.loops.inc();
            self.reply(conn, req, 482, "Loop Detected", &[]);
            return;
        }
        let method = req.method();
        let via_raw = top_via.raw;
        // The connection is part of the key: on a stream a retransmission, CANCEL or ACK comes
        // on the INVITE's connection, and one peer can never match (or cancel) another's
        // transaction by copying its branch.
        let conn_key = conn.id.to_string();
        let mut extra: Vec<&str> = vec![&conn_key];
        if !top_via.has_rfc3261_branch() {
            // RFC 2543 peers: the transaction is identified by the dialog fields.
            extra.extend([
                req.call_id().unwrap_or(""),
                req.first("CSeq").unwrap_or(""),
                req.uri().as_str(),
            ]);
        }
        let branch = derive_branch(&self.secret, via_raw, method, &extra);

        if method == "CANCEL" {
            self.on_cancel(conn, req, &branch);
            return;
        }
        if method == "ACK" {
            let absorbed = lock(&self.txns)
                .get(&branch)
                .is_some_and(|t| t.final_status.is_some_and(|c| c >= 300));
            if absorbed {
                return;
            }
        }

        // Source checks and federation policy.
        let mut partner_kind = None;
        let mut inbound_partner = None;
        if conn.origin.is_federation() {
            let from_domain = req.from().and_then(|f| uri_domain(&f.uri));
            let Some(from_domain) = from_domain else {
                self.refuse(conn, req, "no From domain");
                return;
            };
            match conn.domain() {
                Some(d) if d == from_domain => {}
                Some(_) => {
                    self.refuse(conn, req, "From domain is not the authenticated domain");
                    return;
                }
                None => {
                    let covered = conn.names.iter().any(|n| {
                        name_matches(n, &from_domain) || n.ends_with(&format!(".{from_domain}"))
                    });
                    if !covered {
                        self.refuse(
                            conn,
                            req,
                            "partner certificate does not cover the From domain",
                        );
                        return;
                    }
                    conn.set_domain(&from_domain);
                    self.pool_put(&format!("dom:{from_domain}"), conn.id);
                }
            }
            let target = req.to().map(|t| uri_address(&t.uri)).unwrap_or_default();
            let verdict = lock(&self.policy).admit_inbound(
                &from_domain,
                &target,
                self.now_ms(),
                Self::unix_now(),
            );
            match verdict {
                Admission::Admit(kind) => partner_kind = Some(kind),
                Admission::Throttled => {
                    self.counters.throttled.inc();
                    self.reply(
                        conn,
                        req,
                        503,
                        "Service Unavailable",
                        &[("Retry-After", "1")],
                    );
                    return;
                }
                Admission::Blocked | Admission::NotFederated => {
                    self.refuse(conn, req, "domain not federated");
                    return;
                }
            }
            inbound_partner = Some(from_domain);
        }

        // Routing.
        let (popped, token, rest_routes) = pop_own_routes(req.header("Route"), &listeners, &s.fqdn);
        let target = if conn.origin.is_external() {
            Target::NextHopPool
        } else {
            match token {
                Some(FlowToken::Connection(id)) => Target::Connection(id),
                Some(FlowToken::Domain(d)) => Target::Partner(d),
                None => {
                    let Some(domain) = uri_domain(req.uri()) else {
                        self.reply(conn, req, 416, "Unsupported URI Scheme", &[]);
                        return;
                    };
                    if s.sip_domains.contains(&domain) {
                        // Our own users are reached through the Director, never by guessing.
                        self.reply(conn, req, 480, "Temporarily Unavailable", &[]);
                        return;
                    }
                    Target::Partner(domain)
                }
            }
        };
        if let Target::Partner(d) = &target {
            match lock(&self.policy).admit_outbound(d, self.now_ms(), Self::unix_now()) {
                Admission::Admit(k) => partner_kind = Some(k),
                _ => {
                    self.counters.federation_refused.inc();
                    self.reply(conn, req, 403, "Forbidden", &[]);
                    return;
                }
            }
        }

        // Edit the message: Via, rport/received, Max-Forwards, Route, Record-Route, trust.
        let going_inside = matches!(target, Target::NextHopPool);
        let Some(own) = *self.own.read().unwrap_or_else(PoisonError::into_inner) else {
            return;
        };
        let int_addr = own.internal;
        // Remote users come back on their own connection, partners connect to the federation port.
        let ext_addr =
            if conn.origin == Origin::RemoteUser || matches!(target, Target::Connection(_)) {
                own.remote_users
            } else {
                own.federation
            };
        let out_addr = if going_inside { int_addr } else { ext_addr };
        let host_of = |a: &SocketAddr| {
            if s.fqdn.is_empty() {
                uri_host(a)
            } else {
                s.fqdn.clone()
            }
        };
        let via = format!(
            "SIP/2.0/TLS {}:{};branch={branch}",
            host_of(&out_addr),
            out_addr.port()
        );
        let mut ed = MessageEditor::new(req.parts());
        ed.insert_top("Via", &via);
        let mut top = top_via.raw.to_owned();
        let mut changed = false;
        if top_via.needs_received(conn.peer.ip()) && top_via.received().is_none() {
            top.push_str(&format!(";received={}", conn.peer.ip()));
            changed = true;
        }
        if top_via.rport() == Some(None) {
            top = top.replacen(";rport", &format!(";rport={}", conn.peer.port()), 1);
            changed = true;
        }
        if changed {
            let _ = ed.replace_top_value("Via", &top);
        }
        ed.decrement_max_forwards();
        if popped > 0 {
            ed.remove_all("Route");
            if !rest_routes.is_empty() {
                ed.insert_bottom("Route", &rest_routes.join(", "));
            }
        }
        let in_dialog = req.to().is_some_and(|t| t.tag().is_some());
        let ext_token = match (&target, &inbound_partner) {
            (Target::Partner(d), _) => FlowToken::Domain(d.clone()),
            (_, Some(d)) => FlowToken::Domain(d.clone()),
            _ => FlowToken::Connection(conn.id),
        };
        let inner = own_route(&ext_token, &host_of(&int_addr), int_addr.port());
        let outer = own_route(&ext_token, &host_of(&ext_addr), ext_addr.port());
        if !in_dialog && method != "REGISTER" && method != "ACK" {
            // Two entries, one per side: the first faces the next hop the request goes to.
            if going_inside {
                ed.insert_top("Record-Route", &inner);
                ed.insert_top("Record-Route", &outer);
            } else {
                ed.insert_top("Record-Route", &outer);
                ed.insert_top("Record-Route", &inner);
            }
        }
        if method == "REGISTER" && conn.origin == Origin::RemoteUser {
            ed.insert_top("Path", &inner);
        }
        if conn.origin.is_external() || !going_inside {
            // Assertions from outside are never trusted, and ours never leave.
            ed.remove_all(TRUST_HEADER);
            ed.remove_all("P-Asserted-Identity");
            ed.remove_all("P-Preferred-Identity");
        }
        if going_inside {
            let source = match (conn.origin, partner_kind) {
                (Origin::RemoteUser, _) => "RemoteUser",
                (_, Some(k)) => k.trust_source(),
                _ => "Unknown",
            };
            let network = if conn.origin == Origin::RemoteUser {
                "internet"
            } else if partner_kind == Some(PartnerKind::PublicProvider) {
                "publiccloud"
            } else {
                "federation"
            };
            let mut trust = format!(
                "ms-source-type={source};ms-ep-fqdn={};ms-source-network={network}",
                host_of(&ext_addr)
            );
            if let Some(d) = &inbound_partner {
                trust.push_str(&format!(";ms-source-domain={d}"));
            }
            ed.insert_bottom(TRUST_HEADER, &trust);
        }
        let mut out = Vec::with_capacity(bytes.len() + 512);
        if ed.write_into(&mut out).is_err() {
            self.reply(conn, req, 500, "Server Internal Error", &[]);
            return;
        }

        if method == "ACK" {
            // A 2xx ACK is its own end-to-end transaction: forwarded, nothing to wait for.
            self.dispatch(target, out, None);
            return;
        }
        if method == "INVITE" {
            self.reply(conn, req, 100, "Trying", &[]);
        }
        let invite = (method == "INVITE").then(|| InviteCopy {
            request_uri: req.uri().as_str().to_owned(),
            via: via.clone(),
            routes: rest_routes.iter().map(|r| (*r).to_owned()).collect(),
            call_id: req.call_id().unwrap_or("").to_owned(),
            from: req.first("From").unwrap_or("").to_owned(),
            to: req.first("To").unwrap_or("").to_owned(),
            cseq: req.cseq().map_or(0, |c| c.number),
        });
        {
            let mut txns = lock(&self.txns);
            if txns.contains_key(&branch) {
                // A retransmission over a stream: the first copy is already on its way.
                return;
            }
            txns.insert(
                branch.clone(),
                ClientTxn {
                    upstream: Some(conn.clone()),
                    downstream: None,
                    clock: TxnClock::new(Instant::now(), invite.is_some()),
                    request: bytes.to_vec(),
                    invite,
                    final_status: None,
                    settled: None,
                    partner: inbound_partner,
                    health_of: None,
                },
            );
        }
        self.dispatch(target, out, Some(branch));
    }

    fn refuse(&self, conn: &ConnHandle, req: &Request<'_>, why: &str) {
        self.counters.federation_refused.inc();
        tracing::info!(target: "access_edge", peer = %conn.peer, reason = why, "federated request refused");
        self.reply(conn, req, 403, "Forbidden", &[]);
    }

    fn on_cancel(&self, conn: &ConnHandle, req: &Request<'_>, branch: &str) {
        let found = {
            let mut txns = lock(&self.txns);
            txns.get_mut(branch)
                .filter(|t| t.final_status.is_none())
                .and_then(|t| {
                    let invite = t.invite.clone()?;
                    t.clock.cancelled = Some(Instant::now());
                    Some((invite, t.downstream.clone()))
                })
        };
        match found {
            Some((invite, downstream)) => {
                self.reply(conn, req, 200, "OK", &[]);
                if let Some(d) = downstream {
                    d.send(invite.build("CANCEL", &invite.to));
                }
            }
            None => self.reply(conn, req, 481, "Call/Transaction Does Not Exist", &[]),
        }
    }

    /// The request as received, when its final answer `code` must reach the caller as the
    /// uniform 480 instead (federated and public-provider callers only).
    fn concealed_request(&self, conn: &ConnHandle, t: &ClientTxn, code: u16) -> Option<Vec<u8>> {
        if !conceal::reveals_user(code) || conn.origin.is_external() {
            return None;
        }
        let up = t.upstream.as_ref()?;
        (up.origin.is_federation() && self.settings().hide_user_existence)
            .then(|| t.request.clone())
    }

    fn on_response(&self, conn: &ConnHandle, resp: &Response<'_>) {
        let Some(branch) = resp.top_via().and_then(|v| v.branch().map(str::to_owned)) else {
            self.counters.stray_responses.inc();
            return;
        };
        let code = resp.code();
        if resp.cseq().is_some_and(|c| c.method == "CANCEL") {
            // We answered the CANCEL upstream ourselves; its downstream answer ends here.
            return;
        }
        let (upstream, ack, partner, health, concealed) = {
            let mut txns = lock(&self.txns);
            let Some(t) = txns.get_mut(&branch) else {
                self.counters.stray_responses.inc();
                tracing::debug!(target: "access_edge", peer = %conn.peer, "response for no transaction dropped");
                return;
            };
            let ack = match (&t.invite, code) {
                (Some(inv), 300..) if t.final_status.is_none() => {
                    Some(inv.build("ACK", resp.first("To").unwrap_or(&inv.to)))
                }
                _ => None,
            };
            let was_final = t.final_status.is_some();
            if (101..200).contains(&code) {
                t.clock.last_provisional = Some(Instant::now());
            }
            let concealed = if code >= 200 {
                self.concealed_request(conn, t, code)
            } else {
                None
            };
            if concealed.is_some() && was_final {
                // Already answered with the uniform 480: a repeat would only differ from it.
                return;
            }
            if code >= 200 && !was_final {
                t.final_status = Some(code);
                t.settled = Some(Instant::now());
                self.work_ended.notify_waiters();
            }
            let partner = if code >= 200 && !was_final {
                t.partner.clone()
            } else {
                None
            };
            (
                t.upstream.clone(),
                ack,
                partner,
                t.health_of.clone(),
                concealed,
            )
        };
        if let Some(ack) = ack {
            conn.send(ack);
        }
        if let Some(d) = partner {
            lock(&self.policy).record_outcome(&d, code, self.now_ms());
        }
        if let Some(hop) = health {
            lock(&self.hops).mark(&hop, true);
            return;
        }
        if code == 100 {
            return;
        }
        let Some(up) = upstream else { return };
        if let Some(original) = concealed {
            // Built from the caller's own request, exactly like the edge's own 480: nothing
            // of the Director's answer (reason, Warning, tag format, Server) reaches outside.
            if let Ok(Message::Request(req)) = parse_with(&original, &self.settings().limits) {
                self.counters.concealed.inc();
                tracing::debug!(target: "access_edge", peer = %up.peer, status = code, "answer to outside replaced by the uniform 480");
                self.reply(
                    &up,
                    &req,
                    conceal::UNIFORM_STATUS,
                    conceal::UNIFORM_REASON,
                    &[],
                );
            }
            return;
        }
        let mut ed = MessageEditor::new(resp.parts());
        if ed.remove_top_value("Via").is_err() {
            return;
        }
        if conn.origin.is_external() {
            ed.remove_all(TRUST_HEADER);
            ed.remove_all("P-Asserted-Identity");
        }
        let mut out = Vec::with_capacity(resp.as_bytes().len());
        if ed.write_into(&mut out).is_ok() && up.send(out) {
            self.counters.responses.inc();
        }
    }

    /// Sends a forwarded request to its target, connecting first when needed.
    pub fn dispatch(self: &Arc<Self>, target: Target, out: Vec<u8>, branch: Option<String>) {
        let direct = match &target {
            Target::Connection(id) => Some(self.conn(*id)),
            Target::Partner(d) => self.pooled(&format!("dom:{d}")).map(Some),
            Target::NextHopPool => next_hop::connected(self).map(Some),
        };
        match direct {
            Some(Some(c)) => {
                self.set_downstream(branch.as_deref(), &c);
                let sent = c.send(out);
                tracing::trace!(target: "access_edge", peer = %c.peer, sent, "request forwarded");
            }
            Some(None) => self.fail(branch.as_deref(), 480, "Temporarily Unavailable"),
            None => {
                let shared = self.clone();
                self.in_flight.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let result = match &target {
                        Target::Partner(d) => partner::connection(&shared, d).await,
                        _ => next_hop::connection(&shared).await,
                    };
                    match result {
                        Ok(c) => {
                            shared.set_downstream(branch.as_deref(), &c);
                            let sent = c.send(out);
                            tracing::trace!(target: "access_edge", peer = %c.peer, sent, "request forwarded");
                        }
                        Err(why) => {
                            tracing::warn!(target: "access_edge", error = %why, "no route for request");
                            if matches!(target, Target::NextHopPool) {
                                shared.counters.no_next_hop.inc();
                            }
                            let (code, reason) = match target {
                                Target::Partner(_) => (504, "Server Time-out"),
                                _ => (503, "Service Unavailable"),
                            };
                            shared.fail(branch.as_deref(), code, reason);
                        }
                    }
                    shared.in_flight.fetch_sub(1, Ordering::Relaxed);
                    shared.work_ended.notify_waiters();
                });
            }
        }
    }

    fn set_downstream(&self, branch: Option<&str>, c: &Arc<ConnHandle>) {
        if let Some(b) = branch {
            if let Some(t) = lock(&self.txns).get_mut(b) {
                t.downstream = Some(c.clone());
            }
        }
    }

    /// Answers a pending transaction ourselves and closes it.
    fn fail(&self, branch: Option<&str>, code: u16, reason: &str) {
        let Some(b) = branch else { return };
        let taken = {
            let mut txns = lock(&self.txns);
            match txns.get_mut(b) {
                Some(t) if t.final_status.is_none() => {
                    t.final_status = Some(code);
                    t.settled = Some(Instant::now());
                    self.work_ended.notify_waiters();
                    Some((t.upstream.clone(), t.request.clone()))
                }
                _ => None,
            }
        };
        let Some((Some(up), request)) = taken else {
            return;
        };
        if let Ok(Message::Request(req)) = parse_with(&request, &Limits::default()) {
            self.reply(&up, &req, code, reason, &[]);
        }
    }

    /// Registers our own OPTIONS to a next hop.
    pub fn register_health_check(&self, branch: &str, hop: &str) {
        lock(&self.txns).insert(
            branch.to_owned(),
            ClientTxn {
                upstream: None,
                downstream: None,
                request: Vec::new(),
                invite: None,
                clock: TxnClock::new(Instant::now(), false),
                final_status: None,
                settled: None,
                partner: None,
                health_of: Some(hop.to_owned()),
            },
        );
    }

    pub fn new_branch(&self) -> String {
        sip_core::branch_from_counter(&self.secret, self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Timers B/F and C: cancels ringing INVITEs whose Timer C fired, answers 408 for
    /// transactions given up, forgets settled ones once they stop lingering.
    pub fn sweep(&self) {
        let settings = self.settings();
        let limits = TimerLimits {
            transaction: settings.transaction_timeout,
            timer_c: settings.timer_c,
        };
        let now = Instant::now();
        let mut expired = Vec::new();
        let mut cancels = Vec::new();
        {
            let mut txns = lock(&self.txns);
            txns.retain(|branch, t| {
                if t.final_status.is_none() {
                    match timers::due(&t.clock, now, &limits) {
                        Some(Expiry::Cancel) => {
                            t.clock.cancelled = Some(now);
                            if let (Some(inv), Some(d)) = (&t.invite, &t.downstream) {
                                cancels.push((inv.build("CANCEL", &inv.to), d.clone()));
                            }
                        }
                        Some(Expiry::Timeout) => {
                            expired.push((branch.clone(), t.health_of.clone()));
                        }
                        None => {}
                    }
                    return true;
                }
                t.settled
                    .is_some_and(|at| now.saturating_duration_since(at) <= limits.transaction)
            });
        }
        for (cancel, downstream) in cancels {
            // RFC 3261 16.8: the branch is cancelled; its 487 is relayed like any answer.
            self.counters.timer_c_cancels.inc();
            tracing::info!(target: "access_edge", peer = %downstream.peer, "Timer C fired: ringing branch cancelled");
            downstream.send(cancel);
        }
        for (branch, health) in expired {
            if let Some(hop) = health {
                lock(&self.hops).mark(&hop, false);
                lock(&self.txns).remove(&branch);
                continue;
            }
            self.counters.timeouts.inc();
            self.fail(Some(&branch), 408, "Request Timeout");
        }
        lock(&self.guard).sweep(self.now_ms());
    }

    /// Persists changed per-domain figures.
    pub fn persist_domains(&self, store: &edged_store::Store) {
        let dirty = lock(&self.policy).take_dirty();
        if dirty.is_empty() {
            return;
        }
        let result = store.write(|tx| {
            for (d, st) in &dirty {
                tx.put_json("access_edge", &format!("domain.{d}"), st)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::warn!(target: "access_edge", error = %e, "cannot persist federation figures");
        }
    }
}
