//! Access Edge role: SIP edge proxy with federation policy.
//!
//! Three TLS listeners (remote users, federation with mutual TLS, the internal Director pool
//! with mutual TLS) feed one transaction-stateful proxy. Decisions live in sans-IO modules
//! tested without sockets; I/O wraps them.
//!
//! Module map:
//! - Decisions (sans-IO, unit-tested): [`plan`] decides what to do with each request (refusals,
//!   loop detection, federation checks, routing, the edits of a forwarded request) and how an
//!   answer is relayed; [`transactions`] keeps the client transactions by branch (which answer
//!   belongs to which request, CANCEL, the ACK of a non-2xx, concealment, Timer B/F/C);
//!   [`timers`] says when a transaction gives up; [`policy`] is the federation policy;
//!   [`guard`] the per-address limits; [`route`] the flow tokens and our Route entries;
//!   [`conceal`], [`scanner`] and [`reply`] are small rules used by the above.
//! - State: [`registry`] knows which live connection serves which flow token, partner domain
//!   or next hop; [`counters`] holds the role's metrics; [`settings`] what the proxy reads
//!   from the configuration.
//! - I/O: [`proxy`] parses messages, calls the core and carries out its plans; [`conn`] runs
//!   one connection; [`listener`] accepts them; [`next_hop`] and [`partner`] open
//!   connections to the Director pool and to partner edges; [`tls_peer`] builds the TLS
//!   setups.

pub mod conceal;
pub mod conn;
pub mod counters;
pub mod deadline;
pub mod domain_store;
pub mod guard;
pub mod listener;
pub mod next_hop;
pub mod output;
pub mod partner;
pub mod plan;
pub mod policy;
pub mod proxy;
pub mod reconfigure;
pub mod registry;
pub mod reply;
pub mod route;
pub mod scanner;
pub mod settings;
pub mod timers;
pub mod tls_peer;
pub mod transactions;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use edged_role::{
    wait_until, Actor, AdminError, Anchors, ApplyReport, Health, Listener, ListenerInfo,
    ListenerLimits, Role, RoleContext, RoleError, RoleStatus, Setup,
};
use edged_store::{AuditRecord, Store};
use tokio::net::TcpListener;

pub use policy::DomainFigures;
use policy::StoredDomain;
use proxy::{OwnAddrs, Settings, Shared};

pub(crate) const NAME: &str = "access_edge";

/// The running Access Edge.
pub struct AccessEdge {
    shared: Arc<Shared>,
    store: Store,
    listeners: Vec<ListenerInfo>,
}

/// Binds the listeners, starts the proxy and returns the role.
pub async fn start(ctx: RoleContext) -> Result<Arc<dyn Role>, RoleError> {
    Ok(start_edge(ctx).await?)
}

/// [`start`] returning the concrete type, for callers that want [`AccessEdge::domains`] and
/// the other federation actions without going through the admin interface.
pub async fn start_edge(ctx: RoleContext) -> Result<Arc<AccessEdge>, RoleError> {
    edged_tls::install_crypto_provider();
    let cfg = &ctx.config.access_edge;
    let tls = tls_peer::EdgeTls::build(
        &ctx.tls,
        &cfg.certificate,
        &tls_peer::allowed_directors(cfg),
    )?;
    let shared = Arc::new(Shared::new(cfg, tls, &ctx.metrics));

    // Restore operator decisions and figures of partner domains.
    let now = shared.now_ms();
    for (key, value) in ctx.store.list(NAME)? {
        let Some(domain) = key.strip_prefix("domain.") else {
            continue;
        };
        if let Ok(stored) = serde_json::from_slice::<StoredDomain>(&value) {
            shared
                .policy
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .restore(domain, stored, now);
        }
    }

    // Stored domains over the bound are removed now, not at the first change.
    shared.persist_domains(&ctx.store);

    let mut bound = Vec::new();
    let mut infos = Vec::new();
    for spec in ctx.config.sockets().into_iter().filter(|s| s.owner == NAME) {
        let listener = TcpListener::bind(spec.addr)
            .await
            .map_err(|source| RoleError::Bind {
                key: spec.key.clone(),
                addr: spec.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| RoleError::Bind {
            key: spec.key.clone(),
            addr: spec.addr,
            source,
        })?;
        let origin = match spec.key.as_str() {
            "access_edge.remote_users_port" => conn::Origin::RemoteUser,
            "access_edge.federation_port" => conn::Origin::Federation,
            _ => conn::Origin::Internal,
        };
        infos.push(ListenerInfo {
            purpose: spec.purpose.clone(),
            side: spec.side,
            transport: spec.transport,
            address: addr.to_string(),
        });
        bound.push((origin, addr, listener, spec.key.clone()));
    }
    let addr_of = |o: conn::Origin| {
        bound
            .iter()
            .find(|(x, _, _, _)| *x == o)
            .map(|(_, a, _, _)| *a)
    };
    let (Some(remote_users), Some(federation), Some(internal)) = (
        addr_of(conn::Origin::RemoteUser),
        addr_of(conn::Origin::Federation),
        addr_of(conn::Origin::Internal),
    ) else {
        return Err(RoleError::Config {
            key: NAME.into(),
            reason: "the role is not enabled or has no listeners".into(),
        });
    };
    *shared.own.write().unwrap_or_else(PoisonError::into_inner) = Some(OwnAddrs {
        remote_users,
        federation,
        internal,
    });
    *shared
        .listeners
        .write()
        .unwrap_or_else(PoisonError::into_inner) = bound.iter().map(|(_, a, _, _)| *a).collect();
    for (origin, addr, listener, key) in bound {
        tracing::info!(target: "access_edge", %addr, ?origin, "listening");
        let handler = Arc::new(listener::EdgeListener {
            shared: shared.clone(),
            origin,
        });
        Listener::new(key, listener, ListenerLimits::default()).spawn(&shared.life, handler);
    }
    tokio::spawn(next_hop::health_loop(shared.clone()));
    tokio::spawn(housekeeping(shared.clone(), ctx.store.clone()));

    Ok(Arc::new(AccessEdge {
        shared,
        store: ctx.store.clone(),
        listeners: infos,
    }))
}

/// Transaction timers every 250 ms; per-domain figures persisted every few seconds.
async fn housekeeping(shared: Arc<Shared>, store: Store) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut n: u32 = 0;
    loop {
        tokio::select! {
            _ = shared.life.closing().cancelled() => break,
            _ = tick.tick() => {}
        }
        shared.sweep();
        n += 1;
        if n >= 20 {
            n = 0;
            shared.persist_domains(&store);
        }
    }
    shared.persist_domains(&store);
}

impl AccessEdge {
    /// Live per-domain federation figures.
    pub fn domains(&self) -> Vec<DomainFigures> {
        self.shared
            .policy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .figures()
    }

    /// Treats a domain as allow-listed from now on (persisted, audited under `actor`).
    pub fn promote(&self, domain: &str, actor: Actor) -> Result<(), AdminError> {
        self.operator_action(domain, "promoted", actor, |p, d, now| p.promote(d, now))
    }

    /// Blocks a domain from now on (persisted, audited under `actor`).
    pub fn block(&self, domain: &str, actor: Actor) -> Result<(), AdminError> {
        self.operator_action(domain, "blocked", actor, |p, d, now| p.block(d, now))
    }

    fn operator_action(
        &self,
        domain: &str,
        verb: &str,
        actor: Actor,
        f: impl FnOnce(&mut policy::FederationPolicy, &str, u64) -> StoredDomain,
    ) -> Result<(), AdminError> {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        if !edged_config::roles::access_edge::is_domain(&domain) {
            return Err(AdminError::BadRequest(format!(
                "\"{domain}\" is not a domain name"
            )));
        }
        let stored = {
            let mut p = self
                .shared
                .policy
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            f(&mut p, &domain, self.shared.now_ms())
        };
        self.store
            .write(|tx| {
                tx.put_json(NAME, &format!("domain.{domain}"), &stored)?;
                tx.audit(AuditRecord::new(
                    actor.as_str(),
                    NAME,
                    format!("federation partner {domain} {verb}"),
                ))?;
                Ok(())
            })
            .map_err(|e| AdminError::Failed(e.to_string()))?;
        tracing::info!(target: "access_edge", domain, action = verb, "federation partner changed by operator");
        Ok(())
    }
}

/// Action names from before the `verb-noun` scheme, still accepted.
const RENAMED_ACTIONS: &[(&str, &str)] =
    &[("promote", "promote-domain"), ("block", "block-domain")];

fn domain_arg(arg: &serde_json::Value) -> Result<String, AdminError> {
    arg.get("domain")
        .and_then(|d| d.as_str())
        .or_else(|| arg.as_str())
        .map(str::to_owned)
        .ok_or_else(|| AdminError::BadRequest("expected {\"domain\": \"example.com\"}".into()))
}

#[async_trait::async_trait]
impl Role for AccessEdge {
    fn name(&self) -> &'static str {
        NAME
    }

    fn status(&self) -> RoleStatus {
        let s = &self.shared;
        let mut counters: BTreeMap<String, u64> = s
            .counters
            .snapshot()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        counters.insert("connections_open".into(), s.connection_count() as u64);
        counters.insert(
            "transactions_pending".into(),
            s.pending_transactions() as u64,
        );
        let figures = self.domains();
        counters.insert("federation_domains".into(), figures.len() as u64);
        counters.insert(
            "federation_domains_blocked".into(),
            figures.iter().filter(|f| f.kind == "blocked").count() as u64,
        );
        counters.insert(
            "federation_domains_watched".into(),
            figures.iter().filter(|f| f.watched).count() as u64,
        );
        counters.insert(
            "federation_messages".into(),
            figures.iter().map(|f| f.messages).sum(),
        );
        let (healthy, total) = {
            let hops = s.hops.lock().unwrap_or_else(PoisonError::into_inner);
            (hops.healthy_count(), hops.addrs().len())
        };
        counters.insert("next_hops_healthy".into(), healthy as u64);
        let health = if self.shared.life.is_draining() {
            Health::Draining
        } else if total == 0 {
            Health::Degraded("no next hop configured (access_edge.next_hops)".into())
        } else if healthy == 0 {
            Health::Degraded("no next hop answers OPTIONS".into())
        } else {
            Health::Ready
        };
        RoleStatus {
            role: NAME.into(),
            health,
            listeners: self.listeners.clone(),
            counters,
        }
    }

    async fn apply(&self, old: &Setup, new: &Setup) -> ApplyReport {
        let mut report = reconfigure::report(&old.config, &new.config);
        let cfg = &new.config.access_edge;
        // Rebuilt only when the material differs: a reload that re-read the same files
        // changes (and reports) nothing.
        // The Directors admitted are part of the handshake's check: another list (or other
        // next hops, when the list follows them) rebuilds the configs too.
        let directors_changed =
            old.config.access_edge.allowed_directors() != cfg.allowed_directors();
        let tls_changed = old.tls_changed(
            new,
            |c| c.access_edge.certificate.as_str(),
            &[Anchors::Internal, Anchors::Federation],
        );
        if directors_changed || tls_changed {
            let directors = tls_peer::allowed_directors(cfg);
            match tls_peer::EdgeTls::build(&new.tls, &cfg.certificate, &directors) {
                Ok(t) => {
                    *self
                        .shared
                        .tls
                        .write()
                        .unwrap_or_else(PoisonError::into_inner) = t;
                    if tls_changed {
                        report.applied.push(
                            "access_edge.certificate: certificate and trust anchors apply to new connections".into(),
                        );
                    }
                }
                Err(e) => report.restart_required.push(format!(
                    "access_edge.certificate: {e}; the previous TLS setup stays"
                )),
            }
        }
        if old.config.access_edge != *cfg {
            *self
                .shared
                .settings
                .write()
                .unwrap_or_else(PoisonError::into_inner) = Arc::new(Settings::from_config(cfg));
            self.shared
                .guard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .set_limits(Settings::guard_limits(cfg));
            self.shared
                .policy
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .set_config(cfg.federation.clone());
            self.shared
                .hops
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .reconfigure(&cfg.next_hops);
        }
        report
    }

    async fn drain(&self, deadline: Duration) {
        // In-flight work is the transactions still waiting for a final answer and the
        // forwards still looking for their next hop; connections stay open until then.
        let shared = &self.shared;
        let idle = wait_until(&shared.work_ended, || {
            shared.pending_transactions() == 0 && shared.in_flight.load(Ordering::Relaxed) == 0
        });
        shared.life.drain_until_idle(deadline, idle).await;
        self.shared.persist_domains(&self.store);
        tracing::info!(target: "access_edge", "drained");
    }

    fn hints(&self) -> Vec<String> {
        self.listeners
            .iter()
            .map(|l| format!("access_edge: SIP over TLS ({}) on {}", l.purpose, l.address))
            .collect()
    }

    async fn query(&self, what: &str) -> Result<serde_json::Value, AdminError> {
        match what {
            "domains" => {
                serde_json::to_value(self.domains()).map_err(|e| AdminError::Failed(e.to_string()))
            }
            _ => Err(AdminError::NotFound(format!(
                "access_edge has no \"{what}\" (queries: domains)"
            ))),
        }
    }

    async fn action(
        &self,
        action: &str,
        arg: serde_json::Value,
        actor: Actor,
    ) -> Result<serde_json::Value, AdminError> {
        let action = edged_role::current_name(NAME, action, RENAMED_ACTIONS);
        // The name first: an unknown action is that, whatever its argument.
        let act: fn(&Self, &str, Actor) -> Result<(), AdminError> = match action {
            "promote-domain" => Self::promote,
            "block-domain" => Self::block,
            _ => {
                return Err(AdminError::NotFound(format!(
                    "access_edge has no action \"{action}\" (actions: promote-domain, block-domain)"
                )))
            }
        };
        let domain = domain_arg(&arg)?;
        act(self, &domain, actor)?;
        Ok(serde_json::json!({ "domain": domain, "action": action }))
    }
}
