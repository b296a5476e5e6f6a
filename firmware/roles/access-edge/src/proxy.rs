//! The transaction-stateful proxy (RFC 3261 sections 16 and 17) between the two sides: the
//! I/O layer. It parses what connections read, asks the sans-IO core what to do
//! ([`plan`](crate::plan) for requests, the [transaction table](crate::transactions) for
//! answers and timers), and does it: sends, connects, counts and logs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use edged_config::roles::access_edge::AccessEdgeConfig;
use edged_metrics::Registry;
use sip_core::{build_response, parse_with, Limits, Message, Request, Response, ResponseSpec};

use crate::conceal;
use crate::conn::{ConnHandle, ConnId, ConnSettings, Origin};
use crate::guard::AddressGuard;
use crate::plan::{self, Action, Answer, Gate, Inbound, Refusal, ResponseKey, Setup, Silence};
use crate::policy::{Admission, FederationPolicy};
use crate::registry::{domain_key, ConnRegistry};
use crate::reply::{looks_like_response, loose_response};
use crate::route::{uri_domain, FlowKey};
use crate::timers::TimerLimits;
use crate::tls_peer::EdgeTls;
use crate::transactions::{AnswerFrom, CancelMatch, ClientTxn, Delivery, ResponseMatch, TxnTable};
use crate::{next_hop, partner};

pub use crate::counters::Counters;
pub use crate::plan::{Target, TRUST_HEADER};
pub use crate::settings::{OwnAddrs, Settings};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
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
    conns: ConnRegistry<Arc<ConnHandle>>,
    txns: Mutex<TxnTable<Arc<ConnHandle>>>,
    next_id: AtomicU64,
    pub in_flight: AtomicUsize,
    /// One connection attempt per peer at a time, so a burst of requests shares it.
    connect_locks: Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    secret: [u8; 16],
    flow_key: FlowKey,
    /// Hosts the SRV records of partner domains name, for a short while.
    srv_hosts: Mutex<partner::SrvCache>,
}

/// The [`Gate`] of the running proxy: each question takes its lock only while it is asked.
struct LiveGate<'a> {
    shared: &'a Shared,
    conn: &'a ConnHandle,
}

impl Gate for LiveGate<'_> {
    fn request_allowed(&mut self) -> bool {
        let rate = self.shared.settings().request_rate;
        lock(&self.conn.requests).take(rate, self.shared.now_ms())
    }

    fn ack_absorbed(&mut self, branch: &str) -> bool {
        lock(&self.shared.txns).ack_absorbed(branch)
    }

    fn admit_inbound(&mut self, from_domain: &str, target: &str) -> Admission {
        let now_ms = self.shared.now_ms();
        lock(&self.shared.policy).admit_inbound(from_domain, target, now_ms, Shared::unix_now())
    }

    fn admit_outbound(&mut self, domain: &str) -> Admission {
        let now_ms = self.shared.now_ms();
        lock(&self.shared.policy).admit_outbound(domain, now_ms, Shared::unix_now())
    }
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
            conns: ConnRegistry::default(),
            txns: Mutex::new(TxnTable::default()),
            next_id: AtomicU64::new(1),
            in_flight: AtomicUsize::new(0),
            connect_locks: Mutex::new(std::collections::HashMap::new()),
            secret: rand::random(),
            flow_key: FlowKey::random(),
            srv_hosts: Mutex::new(partner::SrvCache::default()),
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
            message_timeout: s.message_timeout,
            write_timeout: s.write_timeout,
            output_budget: s.output_budget,
            request_rate: s.request_rate,
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
        self.conns.register(h.id, h.clone(), h.domain().as_deref());
    }

    pub fn unregister(&self, h: &ConnHandle) {
        self.conns.unregister(h.id);
    }

    pub fn pool_put(&self, key: &str, id: ConnId) {
        self.conns.pool_put(key, id);
    }

    pub fn pooled(&self, key: &str) -> Option<Arc<ConnHandle>> {
        self.conns.pooled(key)
    }

    pub fn connect_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.connect_locks)
            .entry(key.to_owned())
            .or_default()
            .clone()
    }

    pub fn conn(&self, id: ConnId) -> Option<Arc<ConnHandle>> {
        self.conns.get(id)
    }

    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    pub fn pending_transactions(&self) -> usize {
        lock(&self.txns).pending()
    }

    fn unix_now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    pub fn srv_cache(&self) -> std::sync::MutexGuard<'_, partner::SrvCache> {
        lock(&self.srv_hosts)
    }

    /// Entry point for every complete message read from a connection. Waits only for the
    /// DNS that proves a partner's first request (its SRV targets).
    pub async fn on_message(self: &Arc<Self>, conn: &Arc<ConnHandle>, bytes: Vec<u8>) {
        let settings = self.settings();
        tracing::trace!(target: "access_edge", peer = %conn.peer, origin = ?conn.origin, bytes = bytes.len(), "message received");
        let vouched = self.vouched_hosts(conn, &bytes, &settings).await;
        match parse_with(&bytes, &settings.limits) {
            Ok(Message::Request(req)) => {
                self.counters.requests.inc();
                self.on_request(conn, &req, &bytes, &settings, &vouched);
            }
            Ok(Message::Response(resp)) => self.on_response(conn, &resp),
            Err(e) => {
                if looks_like_response(&bytes) {
                    self.counters.malformed_responses.inc();
                    tracing::debug!(target: "access_edge", peer = %conn.peer, error = %e, "malformed response dropped");
                    return;
                }
                self.counters.malformed_requests.inc();
                edged_role::outsider_debug!(target: "access_edge", "malformed requests", conn.peer.ip(), peer = %conn.peer, error = %e, "malformed request refused");
                if conn.origin == Origin::RemoteUser
                    && !(LiveGate { shared: self, conn }).request_allowed()
                {
                    // Over its rate: not even the 400 is written.
                    self.counters.rate_limited.inc();
                    return;
                }
                if let Some(out) = loose_response(&bytes, e.status(), e.reason()) {
                    conn.send(out);
                }
            }
        }
    }

    /// Hosts vouched to speak for the domain a partner's first request claims (the
    /// configured edge, SRV targets inside the domain): looked up only when the certificate
    /// does not name the domain itself.
    async fn vouched_hosts(&self, conn: &ConnHandle, bytes: &[u8], s: &Settings) -> Vec<String> {
        if conn.origin != Origin::Federation || conn.domain().is_some() {
            return Vec::new();
        }
        let domain = match parse_with(bytes, &s.limits) {
            Ok(Message::Request(req)) => req.from().and_then(|f| uri_domain(&f.uri)),
            _ => None,
        };
        let Some(domain) = domain else {
            return Vec::new();
        };
        let edge = lock(&self.policy).allowed_edge(&domain).map(str::to_owned);
        let mut hosts: Vec<String> = edge
            .and_then(|e| partner::allowed_edge(&domain, &e, s.partner_port))
            .map(|c| c.names.into_iter().skip(1).collect())
            .unwrap_or_default();
        if plan::certificate_covers(&conn.names, &domain, &hosts) {
            return hosts;
        }
        hosts.extend(partner::srv_hosts(self, &domain).await);
        hosts
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
        vouched: &[String],
    ) {
        let listeners = self
            .listeners
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let own = *self.own.read().unwrap_or_else(PoisonError::into_inner);
        let from = Inbound {
            id: conn.id,
            peer: conn.peer,
            origin: conn.origin,
            names: &conn.names,
            // Only a federation connection speaks for a domain.
            domain: conn.origin.is_federation().then(|| conn.domain()).flatten(),
            vouched,
        };
        let setup = Setup {
            settings: s,
            listeners: &listeners,
            own,
            secret: &self.secret,
            flow_key: &self.flow_key,
        };
        let plan = plan::plan(req, &from, &mut LiveGate { shared: self, conn }, &setup);
        if let Some(d) = &plan.bind_domain {
            conn.set_domain(d);
            self.pool_put(&domain_key(d), conn.id);
        }
        let forward = match plan.action {
            Action::Drop(Silence::Scanner) => {
                self.counters.scanners.inc();
                edged_role::outsider_debug!(target: "access_edge", "scanner requests dropped", conn.peer.ip(), peer = %conn.peer, "scanner request dropped");
                return;
            }
            Action::Drop(Silence::AbsorbedAck | Silence::NotListening) => return,
            Action::Answer(answer) => {
                self.answer(conn, req, &answer);
                return;
            }
            Action::Cancel { branch } => {
                self.on_cancel(conn, req, &branch);
                return;
            }
            Action::Forward(f) => *f,
        };
        let Some(new) = forward.transaction else {
            // A 2xx ACK is its own end-to-end transaction: forwarded, nothing to wait for.
            self.dispatch(forward.target, forward.message, None);
            return;
        };
        if forward.trying {
            self.reply(conn, req, 100, "Trying", &[]);
        }
        let txn = ClientTxn::forwarded(
            conn.clone(),
            conn.origin,
            bytes.to_vec(),
            new.invite,
            new.partner,
            Instant::now(),
        );
        if !lock(&self.txns).begin(&forward.branch, txn) {
            // A retransmission over a stream: the first copy is already on its way.
            return;
        }
        self.dispatch(forward.target, forward.message, Some(forward.branch));
    }

    /// Sends an answer the core decided on, counting and logging refusals.
    fn answer(&self, conn: &ConnHandle, req: &Request<'_>, answer: &Answer) {
        match answer.refusal {
            Some(Refusal::Loop) => self.counters.loops.inc(),
            Some(Refusal::Throttled) => self.counters.throttled.inc(),
            Some(Refusal::Federation(why)) => {
                self.counters.federation_refused.inc();
                edged_role::outsider_debug!(target: "access_edge", "federated requests refused", conn.peer.ip(), peer = %conn.peer, reason = why, "federated request refused");
            }
            Some(Refusal::PartnerRefused) => self.counters.federation_refused.inc(),
            Some(Refusal::RateLimited) => {
                self.counters.rate_limited.inc();
                tracing::debug!(target: "access_edge", peer = %conn.peer, "request over the connection's rate refused");
            }
            Some(Refusal::ForgedFlowToken) => {
                self.counters.forged_flow_tokens.inc();
                tracing::debug!(target: "access_edge", peer = %conn.peer, "request with a forged flow token refused");
            }
            None => {}
        }
        let extra: Vec<(&str, &str)> = answer
            .extra
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        self.reply(conn, req, answer.status, answer.reason, &extra);
    }

    fn on_cancel(&self, conn: &ConnHandle, req: &Request<'_>, branch: &str) {
        let found = lock(&self.txns).cancel(branch, Instant::now());
        match found {
            CancelMatch::Cancelled { forward } => {
                self.reply(conn, req, 200, "OK", &[]);
                if let Some((cancel, downstream)) = forward {
                    downstream.send(cancel);
                }
            }
            CancelMatch::Unknown => {
                self.reply(conn, req, 481, "Call/Transaction Does Not Exist", &[])
            }
        }
    }

    fn on_response(&self, conn: &ConnHandle, resp: &Response<'_>) {
        let branch = match plan::response_key(resp) {
            ResponseKey::Stray => {
                self.counters.stray_responses.inc();
                return;
            }
            // We answered the CANCEL upstream ourselves; its downstream answer ends here.
            ResponseKey::CancelAnswer => return,
            ResponseKey::Branch(b) => b,
        };
        let code = resp.code();
        let from = AnswerFrom {
            origin: conn.origin,
            hide_user_existence: self.settings().hide_user_existence,
        };
        let matched =
            lock(&self.txns).on_response(&branch, code, resp.first("To"), from, Instant::now());
        // A final answer may settle the last pending transaction a drain waits for.
        self.work_ended.notify_waiters();
        let ResponseMatch::Matched {
            ack,
            outcome_of,
            deliver,
        } = matched
        else {
            self.counters.stray_responses.inc();
            tracing::debug!(target: "access_edge", peer = %conn.peer, "response for no transaction dropped");
            return;
        };
        if let Some(ack) = ack {
            conn.send(ack);
        }
        if let Some(d) = outcome_of {
            lock(&self.policy).record_outcome(&d, code, self.now_ms());
        }
        match deliver {
            Delivery::Nothing => {}
            Delivery::HealthCheck(hop) => lock(&self.hops).mark(&hop, true),
            Delivery::Uniform { upstream, request } => {
                // Built from the caller's own request, exactly like the edge's own 480: nothing
                // of the Director's answer (reason, Warning, tag format, Server) reaches outside.
                if let Ok(Message::Request(req)) = parse_with(&request, &self.settings().limits) {
                    self.counters.concealed.inc();
                    tracing::debug!(target: "access_edge", peer = %upstream.peer, status = code, "answer to outside replaced by the uniform 480");
                    self.reply(
                        &upstream,
                        &req,
                        conceal::UNIFORM_STATUS,
                        conceal::UNIFORM_REASON,
                        &[],
                    );
                }
            }
            Delivery::Relay(upstream) => {
                if let Some(out) = plan::relayed_response(resp, conn.origin) {
                    if upstream.send(out) {
                        self.counters.responses.inc();
                    }
                }
            }
        }
    }

    /// Sends a forwarded request to its target, connecting first when needed.
    pub fn dispatch(self: &Arc<Self>, target: Target, out: Vec<u8>, branch: Option<String>) {
        let direct = match &target {
            Target::Connection(id) => Some(self.conn(*id)),
            // An inbound partner connection carries our traffic only once it passed the
            // outbound verifier (checked on the way that connects).
            Target::Partner(d) => self
                .pooled(&domain_key(d))
                .filter(|c| partner::reusable_as_is(c))
                .map(Some),
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
                            tracing::debug!(target: "access_edge", error = %why, "no route for request");
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
            lock(&self.txns).set_downstream(b, c.clone());
        }
    }

    /// Answers a pending transaction ourselves and closes it.
    fn fail(&self, branch: Option<&str>, code: u16, reason: &str) {
        let Some(b) = branch else { return };
        let taken = lock(&self.txns).give_up(b, code, Instant::now());
        self.work_ended.notify_waiters();
        let Some((up, request)) = taken else {
            return;
        };
        if let Ok(Message::Request(req)) = parse_with(&request, &Limits::default()) {
            self.reply(&up, &req, code, reason, &[]);
        }
    }

    /// Registers our own OPTIONS to a next hop.
    pub fn register_health_check(&self, branch: &str, hop: &str) {
        lock(&self.txns).begin(branch, ClientTxn::health_check(hop, Instant::now()));
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
        let swept = lock(&self.txns).sweep(Instant::now(), &limits);
        for (cancel, downstream) in swept.cancels {
            // RFC 3261 16.8: the branch is cancelled; its 487 is relayed like any answer.
            self.counters.timer_c_cancels.inc();
            tracing::debug!(target: "access_edge", peer = %downstream.peer, "Timer C fired: ringing branch cancelled");
            downstream.send(cancel);
        }
        for hop in swept.dead_hops {
            lock(&self.hops).mark(&hop, false);
        }
        for branch in swept.timeouts {
            self.counters.timeouts.inc();
            self.fail(Some(&branch), 408, "Request Timeout");
        }
        lock(&self.guard).sweep(self.now_ms());
    }

    /// Persists changed per-domain figures.
    pub fn persist_domains(&self, store: &edged_store::Store) {
        let result = crate::domain_store::persist(&mut lock(&self.policy), store);
        if let Err(e) = result {
            tracing::warn!(target: "access_edge", error = %e, "cannot persist federation figures");
        }
    }
}
