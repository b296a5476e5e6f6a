//! Which live connection serves whom: every open connection by id (the flow token a remote
//! user's Record-Route carries), and the reusable ones by peer (a partner domain or a next
//! hop of the Director pool).
//!
//! Generic over the handle so the bookkeeping is tested without sockets; the proxy stores
//! `Arc<ConnHandle>`.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::conn::ConnId;

/// The pool key of a next hop's connection (`host:port` as configured).
pub fn hop_key(hop: &str) -> String {
    format!("hop:{hop}")
}

/// The pool key of a partner domain's connection.
pub fn domain_key(domain: &str) -> String {
    format!("dom:{domain}")
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Live connections and the peers they serve.
pub struct ConnRegistry<C> {
    conns: Mutex<HashMap<ConnId, C>>,
    /// Reusable connections by peer: [`hop_key`] or [`domain_key`].
    pool: Mutex<HashMap<String, ConnId>>,
}

impl<C: Clone> Default for ConnRegistry<C> {
    fn default() -> Self {
        ConnRegistry {
            conns: Mutex::new(HashMap::new()),
            pool: Mutex::new(HashMap::new()),
        }
    }
}

impl<C: Clone> ConnRegistry<C> {
    /// Adds a connection; one already known to speak for a partner domain serves it.
    pub fn register(&self, id: ConnId, handle: C, domain: Option<&str>) {
        lock(&self.conns).insert(id, handle);
        if let Some(d) = domain {
            self.pool_put(&domain_key(d), id);
        }
    }

    /// Forgets a closed connection, and every peer it served.
    pub fn unregister(&self, id: ConnId) {
        lock(&self.conns).remove(&id);
        lock(&self.pool).retain(|_, served_by| *served_by != id);
    }

    /// Makes `id` the connection that serves `key` (replacing any previous one).
    pub fn pool_put(&self, key: &str, id: ConnId) {
        lock(&self.pool).insert(key.to_owned(), id);
    }

    /// The live connection serving `key`.
    pub fn pooled(&self, key: &str) -> Option<C> {
        let id = *lock(&self.pool).get(key)?;
        self.get(id)
    }

    /// The live connection with this id (a flow token's connection).
    pub fn get(&self, id: ConnId) -> Option<C> {
        lock(&self.conns).get(&id).cloned()
    }

    pub fn len(&self) -> usize {
        lock(&self.conns).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_token_finds_the_connection_until_it_closes() {
        let r = ConnRegistry::default();
        r.register(7, "alice", None);
        assert_eq!(r.get(7), Some("alice"));
        assert_eq!(r.len(), 1);
        r.unregister(7);
        assert_eq!(r.get(7), None);
        assert!(r.is_empty());
    }

    #[test]
    fn a_connection_registered_for_a_domain_serves_it() {
        let r = ConnRegistry::default();
        r.register(3, "partner edge", Some("partner.test"));
        assert_eq!(r.pooled(&domain_key("partner.test")), Some("partner edge"));
        assert_eq!(r.pooled(&domain_key("other.test")), None);
        // The domain and next-hop namespaces never collide.
        assert_eq!(r.pooled(&hop_key("partner.test")), None);
    }

    #[test]
    fn closing_a_connection_frees_every_peer_it_served() {
        let r = ConnRegistry::default();
        r.register(1, "director", None);
        r.register(2, "other", None);
        r.pool_put(&hop_key("10.0.0.1:5061"), 1);
        r.pool_put(&domain_key("partner.test"), 1);
        r.pool_put(&hop_key("10.0.0.2:5061"), 2);
        r.unregister(1);
        assert_eq!(r.pooled(&hop_key("10.0.0.1:5061")), None);
        assert_eq!(r.pooled(&domain_key("partner.test")), None);
        assert_eq!(r.pooled(&hop_key("10.0.0.2:5061")), Some("other"));
    }

    #[test]
    fn the_latest_connection_to_a_peer_replaces_the_previous_one() {
        let r = ConnRegistry::default();
        r.register(1, "first", Some("partner.test"));
        r.register(2, "second", Some("partner.test"));
        assert_eq!(r.pooled(&domain_key("partner.test")), Some("second"));
        // The first one closing does not unpool the second.
        r.unregister(1);
        assert_eq!(r.pooled(&domain_key("partner.test")), Some("second"));
    }

    #[test]
    fn a_pool_entry_whose_connection_is_gone_serves_nothing() {
        let r: ConnRegistry<&str> = ConnRegistry::default();
        r.pool_put(&hop_key("10.0.0.1:5061"), 9);
        assert_eq!(r.pooled(&hop_key("10.0.0.1:5061")), None);
    }
}
