//! The conferencing servers connected on the internal port and which conferences they host.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// One connected conferencing server.
#[derive(Clone)]
pub struct Server {
    pub id: u64,
    pub peer: SocketAddr,
    pub link: webconf_link::edge::EdgeLink,
}

#[derive(Default)]
struct Inner {
    servers: BTreeMap<u64, Server>,
    /// Conference id to the server that registered it last.
    owners: HashMap<String, u64>,
}

/// Routing table: a conference goes to the server that registered it, else to any server
/// (round robin), as OCS does with a pool of conferencing servers.
#[derive(Default)]
pub struct Pool {
    inner: Mutex<Inner>,
    next: AtomicUsize,
}

impl Pool {
    pub fn add(&self, server: Server) {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.servers.insert(server.id, server);
    }

    /// Records that `server_id` hosts these conferences; returns how many it now owns.
    pub fn register(&self, server_id: u64, conferences: &[String]) -> usize {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if !g.servers.contains_key(&server_id) {
            return 0;
        }
        for c in conferences {
            g.owners.insert(c.clone(), server_id);
        }
        g.owners.values().filter(|&&s| s == server_id).count()
    }

    /// Forgets a server and every conference it owned.
    pub fn remove(&self, server_id: u64) {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.servers.remove(&server_id);
        g.owners.retain(|_, s| *s != server_id);
    }

    /// The server for a conference.
    pub fn pick(&self, conference_id: &str) -> Option<Server> {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = g.owners.get(conference_id).and_then(|id| g.servers.get(id)) {
            return Some(s.clone());
        }
        if g.servers.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % g.servers.len();
        g.servers.values().nth(i).cloned()
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .servers
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
