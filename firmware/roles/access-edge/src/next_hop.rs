//! The internal next-hop pool (Directors): health by OPTIONS, spreading and failover.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::conn::{self, ConnHandle, Origin};
use crate::proxy::Shared;
use crate::registry::hop_key;

#[derive(Debug, Clone)]
struct Hop {
    addr: String,
    healthy: bool,
}

/// Next hops in configuration order with their health.
#[derive(Debug)]
pub struct Pool {
    hops: Vec<Hop>,
    turn: usize,
}

impl Pool {
    pub fn new(addrs: &[String]) -> Self {
        Pool {
            // Optimistic until the first check: a fresh edge should serve at once.
            hops: addrs
                .iter()
                .map(|a| Hop {
                    addr: a.clone(),
                    healthy: true,
                })
                .collect(),
            turn: 0,
        }
    }

    /// Keeps health of hops that stay, adds new ones.
    pub fn reconfigure(&mut self, addrs: &[String]) {
        let old = std::mem::take(&mut self.hops);
        self.hops = addrs
            .iter()
            .map(|a| Hop {
                addr: a.clone(),
                healthy: old.iter().find(|h| &h.addr == a).is_none_or(|h| h.healthy),
            })
            .collect();
    }

    pub fn mark(&mut self, addr: &str, healthy: bool) {
        if let Some(h) = self.hops.iter_mut().find(|h| h.addr == addr) {
            if h.healthy != healthy {
                tracing::info!(target: "access_edge", next_hop = addr, healthy, "next hop health changed");
            }
            h.healthy = healthy;
        }
    }

    /// Hops to try in order: healthy ones rotated (spreading new connections), then the rest.
    pub fn order(&mut self) -> Vec<String> {
        let n = self.hops.len();
        if n == 0 {
            return Vec::new();
        }
        self.turn = (self.turn + 1) % n;
        let rotated = (0..n).map(|i| &self.hops[(self.turn + i) % n]);
        let (good, bad): (Vec<&Hop>, Vec<&Hop>) = rotated.partition(|h| h.healthy);
        good.into_iter()
            .chain(bad)
            .map(|h| h.addr.clone())
            .collect()
    }

    pub fn healthy_count(&self) -> usize {
        self.hops.iter().filter(|h| h.healthy).count()
    }

    pub fn addrs(&self) -> Vec<String> {
        self.hops.iter().map(|h| h.addr.clone()).collect()
    }
}

fn split_host_port(hop: &str) -> Option<(String, u16)> {
    if let Ok(sa) = hop.parse::<std::net::SocketAddr>() {
        return Some((sa.ip().to_string(), sa.port()));
    }
    let (h, p) = hop.rsplit_once(':')?;
    Some((h.trim_matches(['[', ']']).to_owned(), p.parse().ok()?))
}

/// Opens a mutual-TLS connection to `host:port` presenting our certificate.
pub async fn open(shared: &Arc<Shared>, hop: &str) -> Result<Arc<ConnHandle>, String> {
    let (host, port) = split_host_port(hop).ok_or_else(|| format!("{hop}: not host:port"))?;
    let timeout = shared.settings().handshake_timeout;
    let tls = shared.edge_tls().to_next_hop;
    let name = ServerName::try_from(host.clone()).map_err(|e| format!("{hop}: {e}"))?;
    let connect = async {
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("{hop}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let peer = tcp.peer_addr().map_err(|e| e.to_string())?;
        let stream = TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("{hop}: TLS: {e}"))?;
        Ok::<_, String>((peer, stream))
    };
    let (peer, stream) = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| format!("{hop}: connect timed out"))??;
    let handle = conn::spawn(
        shared,
        stream,
        peer,
        Origin::ToNextHop,
        conn::PeerCert::default(),
        None,
        None,
    );
    shared.pool_put(&hop_key(hop), handle.id);
    Ok(handle)
}

/// The open connection to the hop whose turn it is, if there is one (no waiting).
pub fn connected(shared: &Shared) -> Option<Arc<ConnHandle>> {
    let first = shared
        .hops
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .order()
        .into_iter()
        .next()?;
    shared.pooled(&hop_key(&first))
}

/// A connection to the pool: an open one to the preferred hop, else the next that answers.
pub async fn connection(shared: &Arc<Shared>) -> Result<Arc<ConnHandle>, String> {
    let gate = shared.connect_lock("hop-pool");
    let _one_at_a_time = gate.lock().await;
    let order = shared
        .hops
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .order();
    if order.is_empty() {
        return Err("no next hop configured (access_edge.next_hops)".into());
    }
    let mut errors = Vec::new();
    for hop in order {
        if let Some(c) = shared.pooled(&hop_key(&hop)) {
            return Ok(c);
        }
        match open(shared, &hop).await {
            Ok(c) => return Ok(c),
            Err(e) => {
                shared
                    .hops
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .mark(&hop, false);
                errors.push(e);
            }
        }
    }
    Err(errors.join("; "))
}

async fn open_gated(shared: &Arc<Shared>, hop: &str) -> Result<Arc<ConnHandle>, String> {
    let gate = shared.connect_lock("hop-pool");
    let _one_at_a_time = gate.lock().await;
    match shared.pooled(&hop_key(hop)) {
        Some(c) => Ok(c),
        None => open(shared, hop).await,
    }
}

/// Sends OPTIONS to every next hop each interval; answers mark hops healthy, silence or a
/// failed connection marks them down.
pub async fn health_loop(shared: Arc<Shared>) {
    loop {
        let interval = shared.settings().health_interval;
        tokio::select! {
            _ = shared.life.draining().cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let hops = shared
            .hops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .addrs();
        for hop in hops {
            let c = match shared.pooled(&hop_key(&hop)) {
                Some(c) => c,
                None => match open_gated(&shared, &hop).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(target: "access_edge", error = %e, "health check cannot connect");
                        shared
                            .hops
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .mark(&hop, false);
                        continue;
                    }
                },
            };
            let branch = shared.new_branch();
            let local = shared
                .own
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .map(|a| a.internal.to_string());
            let local = local.unwrap_or_default();
            let n = shared.next_conn_id();
            let msg = format!(
                "OPTIONS sip:{hop};transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch={branch}\r\nMax-Forwards: 1\r\nFrom: <sip:edge@{local}>;tag=hc{n}\r\nTo: <sip:{hop}>\r\nCall-ID: hc{n}-{branch}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            );
            shared.register_health_check(&branch, &hop);
            c.send(msg.into_bytes());
        }
        let _ = shared.in_flight.load(Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_over_healthy_hops_and_fails_over() {
        let mut p = Pool::new(&["a:1".into(), "b:1".into(), "c:1".into()]);
        let firsts: Vec<String> = (0..3).map(|_| p.order()[0].clone()).collect();
        assert_eq!(firsts.len(), 3);
        assert!(firsts.contains(&"a:1".to_string()) && firsts.contains(&"b:1".to_string()));
        p.mark("b:1", false);
        for _ in 0..5 {
            let o = p.order();
            assert_eq!(o.len(), 3);
            assert_eq!(o[2], "b:1", "unhealthy hop is tried last: {o:?}");
        }
        assert_eq!(p.healthy_count(), 2);
        p.reconfigure(&["b:1".into(), "d:1".into()]);
        assert_eq!(p.order()[0], "d:1");
        assert!(Pool::new(&[]).order().is_empty());
        assert_eq!(split_host_port("[::1]:5061"), Some(("::1".into(), 5061)));
        assert_eq!(
            split_host_port("dir.corp.test:5061"),
            Some(("dir.corp.test".into(), 5061))
        );
    }
}
