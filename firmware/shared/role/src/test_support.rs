//! A role's surroundings for tests, benchmarks and examples: a store in a temporary
//! directory, the appliance CA and TLS material built from the configuration, and a fresh
//! metrics registry. Panics on failure: it is only for code that tests.

use std::path::Path;
use std::sync::Arc;

use crate::{Config, Registry, RoleContext, Store, TlsMaterial};

/// A temporary directory with the store in it; both go when it is dropped.
pub struct TestSite {
    pub dir: tempfile::TempDir,
    pub store: Store,
}

impl TestSite {
    /// An empty store in a new temporary directory.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
        let store =
            Store::open(&dir.path().join("edged.redb")).unwrap_or_else(|e| panic!("store: {e}"));
        Self { dir, store }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A context for `config` on this site's store (see [`RoleContext::for_test_on`]).
    pub fn context(&self, config: Config) -> RoleContext {
        RoleContext::for_test_on(&self.store, config)
    }
}

impl Default for TestSite {
    fn default() -> Self {
        Self::new()
    }
}

impl RoleContext {
    /// A context for `config` on a fresh store; keep the [`TestSite`] as long as the role.
    pub fn for_test(config: Config) -> (RoleContext, TestSite) {
        let site = TestSite::new();
        (site.context(config), site)
    }

    /// A context for `config` on an existing store (several roles of one test share one
    /// store and CA), with its own metrics registry. Creates the appliance CA on first use.
    pub fn for_test_on(store: &Store, config: Config) -> RoleContext {
        edged_tls::install_crypto_provider();
        let tls = TlsMaterial::load(&config, store).unwrap_or_else(|e| panic!("TLS material: {e}"));
        RoleContext {
            config: Arc::new(config),
            tls: Arc::new(tls),
            store: store.clone(),
            metrics: Registry::new(),
        }
    }
}
