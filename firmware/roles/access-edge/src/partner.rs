//! Connections to federated partners: the allow-listed edge, or DNS SRV discovery
//! (`_sipfederationtls._tcp.<domain>`, then A/AAAA of the target). A connection the partner
//! opened to us carries our traffic to its domain only once its certificate passes the same
//! verifier as a connection we open.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfig, Protocol, ResolverConfig, ResolverOpts};
use hickory_resolver::TokioAsyncResolver;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::conn::{self, ConnHandle, Origin};
use crate::proxy::Shared;
use crate::registry::domain_key;
use crate::tls_peer::certificate_names;

/// A place to connect to, and the certificate names acceptable there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub host: String,
    pub port: u16,
    pub names: Vec<String>,
}

/// The allow-listed edge `host[:port]` of `domain` as a candidate.
pub fn allowed_edge(domain: &str, edge: &str, default_port: u16) -> Option<Candidate> {
    let (host, port) = match edge.parse::<SocketAddr>() {
        Ok(sa) => (sa.ip().to_string(), sa.port()),
        Err(_) => match edge.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().ok()?),
            None => (edge.to_owned(), default_port),
        },
    };
    let mut names = vec![domain.to_owned()];
    if host.parse::<std::net::IpAddr>().is_err() {
        names.push(host.trim_end_matches('.').to_ascii_lowercase());
    }
    Some(Candidate { host, port, names })
}

/// Whether an SRV target host lies inside `domain`, and so speaks for it.
pub fn inside_domain(target: &str, domain: &str) -> bool {
    target.ends_with(&format!(".{domain}")) || target == domain
}

/// An SRV target is trusted to speak for `domain` only when it lies inside the domain;
/// otherwise the certificate must name the domain itself.
pub fn srv_candidate(domain: &str, target: &str, port: u16) -> Candidate {
    let target = target.trim_end_matches('.').to_ascii_lowercase();
    let mut names = vec![domain.to_owned()];
    if inside_domain(&target, domain) {
        names.push(target.clone());
    }
    Candidate {
        host: target,
        port,
        names,
    }
}

fn resolver(servers: &[SocketAddr]) -> TokioAsyncResolver {
    if servers.is_empty() {
        if let Ok(r) = TokioAsyncResolver::tokio_from_system_conf() {
            return r;
        }
    }
    let mut cfg = ResolverConfig::new();
    for s in servers {
        cfg.add_name_server(NameServerConfig::new(*s, Protocol::Udp));
        cfg.add_name_server(NameServerConfig::new(*s, Protocol::Tcp));
    }
    TokioAsyncResolver::tokio(cfg, ResolverOpts::default())
}

/// How long an SRV answer (or its absence) vouches for a domain's hosts.
const SRV_CACHE_TTL: Duration = Duration::from_secs(60);
/// Domains whose SRV answers are remembered; beyond, the oldest half is forgotten.
const SRV_CACHE_ENTRIES: usize = 1024;

/// Recent SRV targets inside each partner domain, so a partner's requests (or an
/// outsider's) do not each cost a DNS lookup. Bounded in size and age.
#[derive(Debug, Default)]
pub struct SrvCache {
    entries: HashMap<String, (Instant, Vec<String>)>,
}

impl SrvCache {
    pub fn get(&self, domain: &str, now: Instant) -> Option<Vec<String>> {
        self.entries
            .get(domain)
            .filter(|(at, _)| now.duration_since(*at) < SRV_CACHE_TTL)
            .map(|(_, hosts)| hosts.clone())
    }

    pub fn put(&mut self, domain: &str, hosts: Vec<String>, now: Instant) {
        if self.entries.len() >= SRV_CACHE_ENTRIES {
            self.entries
                .retain(|_, (at, _)| now.duration_since(*at) < SRV_CACHE_TTL / 2);
            if self.entries.len() >= SRV_CACHE_ENTRIES {
                self.entries.clear();
            }
        }
        self.entries.insert(domain.to_owned(), (now, hosts));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The targets of `_sipfederationtls._tcp.<domain>` that lie inside the domain (empty when
/// there are none, or DNS does not answer in time).
pub async fn srv_hosts(shared: &Shared, domain: &str) -> Vec<String> {
    if let Some(hosts) = shared.srv_cache().get(domain, Instant::now()) {
        return hosts;
    }
    let s = shared.settings();
    let r = resolver(&s.dns_servers);
    let lookup = r.srv_lookup(format!("_sipfederationtls._tcp.{domain}."));
    let hosts = match tokio::time::timeout(s.handshake_timeout, lookup).await {
        Ok(Ok(srv)) => srv
            .iter()
            .map(|r| {
                r.target()
                    .to_utf8()
                    .trim_end_matches('.')
                    .to_ascii_lowercase()
            })
            .filter(|t| inside_domain(t, domain))
            .collect(),
        Ok(Err(e)) => {
            tracing::debug!(target: "access_edge", domain, error = %e, "SRV lookup for a partner's identity failed");
            Vec::new()
        }
        Err(_) => Vec::new(),
    };
    shared
        .srv_cache()
        .put(domain, hosts.clone(), Instant::now());
    hosts
}

/// A pooled connection that may carry traffic to its domain without another check: one we
/// opened, or an inbound one that already passed the outbound verifier.
pub fn reusable_as_is(c: &ConnHandle) -> bool {
    c.origin == Origin::ToPartner || c.outbound_verified.load(Ordering::Relaxed)
}

async fn candidates(shared: &Shared, domain: &str) -> Result<Vec<Candidate>, String> {
    let s = shared.settings();
    let edge = shared
        .policy
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .allowed_edge(domain)
        .map(str::to_owned);
    if let Some(edge) = edge {
        return allowed_edge(domain, &edge, s.partner_port)
            .map(|c| vec![c])
            .ok_or_else(|| format!("{domain}: allow-listed edge {edge} is not host[:port]"));
    }
    let r = resolver(&s.dns_servers);
    let srv = r
        .srv_lookup(format!("_sipfederationtls._tcp.{domain}."))
        .await
        .map_err(|e| format!("{domain}: SRV lookup: {e}"))?;
    let mut records: Vec<_> = srv
        .iter()
        .map(|r| {
            (
                r.priority(),
                std::cmp::Reverse(r.weight()),
                r.target().to_utf8(),
                r.port(),
            )
        })
        .collect();
    records.sort();
    Ok(records
        .into_iter()
        .map(|(_, _, t, p)| srv_candidate(domain, &t, p))
        .collect())
}

async fn addresses(shared: &Shared, host: &str, port: u16) -> Vec<SocketAddr> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return vec![SocketAddr::new(ip, port)];
    }
    let r = resolver(&shared.settings().dns_servers);
    match r.lookup_ip(format!("{host}.")).await {
        Ok(ips) => ips.iter().map(|ip| SocketAddr::new(ip, port)).collect(),
        Err(e) => {
            tracing::debug!(target: "access_edge", host, error = %e, "A/AAAA lookup failed");
            Vec::new()
        }
    }
}

/// The connection to a partner domain: reused when one exists (either direction), else
/// opened to the first candidate that completes mutual TLS with an acceptable certificate.
pub async fn connection(shared: &Arc<Shared>, domain: &str) -> Result<Arc<ConnHandle>, String> {
    let gate = shared.connect_lock(&domain_key(domain));
    let _one_at_a_time = gate.lock().await;
    let pooled = shared.pooled(&domain_key(domain));
    if let Some(c) = pooled.as_ref().filter(|c| reusable_as_is(c)) {
        return Ok(c.clone());
    }
    let timeout = shared.settings().handshake_timeout;
    let candidates = candidates(shared, domain).await;
    if let Some(c) = pooled {
        // The partner connected to us: its certificate must pass what our own connection
        // to the domain would require (the domain's own name always counts), or it gets
        // nothing of ours.
        let mut names = vec![domain.to_owned()];
        if let Ok(cands) = &candidates {
            names.extend(cands.iter().flat_map(|c| c.names.iter().cloned()));
        }
        if shared.edge_tls().verifies_as_partner(&c.chain, &names) {
            c.outbound_verified.store(true, Ordering::Relaxed);
            return Ok(c);
        }
        tracing::debug!(target: "access_edge", domain, peer = %c.peer, "inbound partner connection fails the outbound check; connecting");
    }
    let mut errors = Vec::new();
    for cand in candidates? {
        let tls = shared
            .edge_tls()
            .to_partner(&cand.names)
            .map_err(|e| e.to_string())?;
        for addr in addresses(shared, &cand.host, cand.port).await {
            let name = match ServerName::try_from(cand.names[0].clone()) {
                Ok(n) => n,
                Err(e) => return Err(format!("{domain}: {e}")),
            };
            let attempt = async {
                let tcp = TcpStream::connect(addr)
                    .await
                    .map_err(|e| format!("{addr}: {e}"))?;
                let _ = tcp.set_nodelay(true);
                TlsConnector::from(tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("{addr}: TLS: {e}"))
            };
            match tokio::time::timeout(timeout, attempt).await {
                Ok(Ok(stream)) => {
                    let names = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| certificate_names(c))
                        .unwrap_or_default();
                    let h = conn::spawn(
                        shared,
                        stream,
                        addr,
                        Origin::ToPartner,
                        conn::PeerCert {
                            names,
                            chain: Vec::new(),
                        },
                        Some(domain.to_owned()),
                        None,
                    );
                    tracing::info!(target: "access_edge", domain, %addr, "connected to partner edge");
                    return Ok(h);
                }
                Ok(Err(e)) => errors.push(e),
                Err(_) => errors.push(format!("{addr}: timed out")),
            }
        }
    }
    if errors.is_empty() {
        errors.push(format!("{domain}: no address for its edge"));
    }
    Err(errors.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_edge_forms() {
        let c = allowed_edge("partner.test", "sip.partner.test", 5061)
            .unwrap_or_else(|| panic!("parse"));
        assert_eq!((c.host.as_str(), c.port), ("sip.partner.test", 5061));
        assert_eq!(
            c.names,
            vec!["partner.test".to_string(), "sip.partner.test".to_string()]
        );
        let c = allowed_edge("partner.test", "127.0.0.3:10061", 5061)
            .unwrap_or_else(|| panic!("parse"));
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.3", 10061));
        assert_eq!(c.names, vec!["partner.test".to_string()]);
        assert!(allowed_edge("p.test", "h:notaport", 5061).is_none());
    }

    #[test]
    fn the_srv_cache_forgets_old_answers_and_stays_bounded() {
        let t0 = Instant::now();
        let mut c = SrvCache::default();
        c.put("partner.test", vec!["sip.partner.test".into()], t0);
        assert_eq!(
            c.get("partner.test", t0 + Duration::from_secs(1)),
            Some(vec!["sip.partner.test".to_string()])
        );
        assert_eq!(c.get("partner.test", t0 + SRV_CACHE_TTL), None);
        for i in 0..3 * SRV_CACHE_ENTRIES {
            c.put(&format!("d{i}.test"), Vec::new(), t0);
        }
        assert!(c.len() <= SRV_CACHE_ENTRIES);
    }

    #[test]
    fn srv_target_outside_the_domain_does_not_vouch_for_it() {
        assert!(inside_domain("sip.partner.test", "partner.test"));
        assert!(!inside_domain("sip.evilpartner.test", "partner.test"));
        assert_eq!(
            srv_candidate("partner.test", "sip.partner.test.", 5061)
                .names
                .len(),
            2
        );
        assert_eq!(
            srv_candidate("partner.test", "sip.hoster.test.", 5061).names,
            vec!["partner.test".to_string()]
        );
    }
}
