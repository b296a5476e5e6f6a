//! The conferencing servers connected on the internal port and which conferences they host.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use edged_tls::PeerIdentity;

/// One connected conferencing server.
#[derive(Clone)]
pub struct Server {
    pub id: u64,
    pub peer: SocketAddr,
    /// Who its certificate names: a conference it registered stays its own against any
    /// other identity while it is connected.
    pub identity: PeerIdentity,
    pub link: webconf_link::edge::EdgeLink,
}

/// What one REGISTER achieved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Registration {
    /// Conferences the server now owns.
    pub owned: usize,
    /// Conferences it asked for that a connected server of another identity owns.
    pub refused: Vec<String>,
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

    /// Records that `server_id` hosts these conferences. A conference owned by another
    /// connected server moves only to a server of the same identity (that server again,
    /// reconnected before its old link timed out): a second server of the internal CA
    /// cannot take a running conference's new sessions by registering it last.
    pub fn register(&self, server_id: u64, conferences: &[String]) -> Registration {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(me) = g.servers.get(&server_id).map(|s| s.identity.clone()) else {
            return Registration::default();
        };
        let mut refused = Vec::new();
        for c in conferences {
            let other_owner = g
                .owners
                .get(c)
                .filter(|&&owner| owner != server_id)
                .and_then(|owner| g.servers.get(owner));
            if other_owner.is_some_and(|o| !o.identity.same_peer(&me)) {
                refused.push(c.clone());
                continue;
            }
            g.owners.insert(c.clone(), server_id);
        }
        let owned = g.owners.values().filter(|&&s| s == server_id).count();
        Registration { owned, refused }
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
