//! Connections to federated partners: the allow-listed edge, or DNS SRV discovery
//! (`_sipfederationtls._tcp.<domain>`, then A/AAAA of the target).

use std::net::SocketAddr;
use std::sync::Arc;

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

/// An SRV target is trusted to speak for `domain` only when it lies inside the domain;
/// otherwise the certificate must name the domain itself.
pub fn srv_candidate(domain: &str, target: &str, port: u16) -> Candidate {
    let target = target.trim_end_matches('.').to_ascii_lowercase();
    let mut names = vec![domain.to_owned()];
    if target.ends_with(&format!(".{domain}")) || target == domain {
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
    if let Some(c) = shared.pooled(&domain_key(domain)) {
        return Ok(c);
    }
    let timeout = shared.settings().handshake_timeout;
    let mut errors = Vec::new();
    for cand in candidates(shared, domain).await? {
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
                        names,
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
    fn srv_target_outside_the_domain_does_not_vouch_for_it() {
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
