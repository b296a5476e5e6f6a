//! State shared by every task of the role.

use std::sync::atomic::AtomicU64;

use arc_swap::ArcSwap;
use edged_role::Lifecycle;
use session_key::KeyRing;
use tokio_rustls::TlsAcceptor;

use crate::limits::Limits;
use crate::metrics::EdgeMetrics;
use crate::pool::Pool;
use crate::settings::Settings;

pub(crate) struct Shared {
    pub settings: ArcSwap<Settings>,
    pub keys: ArcSwap<KeyRing>,
    /// Bumped whenever `keys` changes, so every link pushes the new ring to its server.
    pub keys_changed: tokio::sync::watch::Sender<()>,
    pub tls_acceptor: ArcSwap<TlsAcceptor>,
    /// Mutual TLS for conferencing servers on the internal port.
    pub internal_acceptor: ArcSwap<TlsAcceptor>,
    pub metrics: EdgeMetrics,
    pub limits: Limits,
    pub pool: Pool,
    /// Meeting clients: drain stops accepting them, lets their sessions run until the
    /// deadline, then closes the rest (each with a CLOSE frame).
    pub clients: Lifecycle,
    /// Conferencing servers' links: the sessions run over them, so they stop only after
    /// the clients' drain.
    pub links: Lifecycle,
    pub next_session: AtomicU64,
    pub next_server: AtomicU64,
}

impl Shared {
    /// Verifies with `ring` from now on, and has the links push it.
    pub fn set_keys(&self, ring: KeyRing) {
        self.keys.store(std::sync::Arc::new(ring));
        self.keys_changed.send_replace(());
    }
}
