//! Persisting the federation policy's per-domain state: what changed is written, what the
//! policy forgot is removed, so the store holds no more domains than the policy tracks.

use edged_store::{Store, StoreError};

use crate::policy::FederationPolicy;

/// The store namespace and key of a domain's state.
pub const NAMESPACE: &str = "access_edge";

pub fn domain_key(domain: &str) -> String {
    format!("domain.{domain}")
}

/// Writes the domains changed since the last call and removes the forgotten ones.
pub fn persist(policy: &mut FederationPolicy, store: &Store) -> Result<(), StoreError> {
    let dirty = policy.take_dirty();
    let forgotten = policy.take_forgotten();
    if dirty.is_empty() && forgotten.is_empty() {
        return Ok(());
    }
    store.write(|tx| {
        for d in &forgotten {
            tx.delete(NAMESPACE, &domain_key(d))?;
        }
        for (d, st) in &dirty {
            tx.put_json(NAMESPACE, &domain_key(d), st)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use edged_config::roles::access_edge::FederationConfig;
    use edged_role::test_support::TestSite;

    use super::*;
    use crate::policy::StoredDomain;

    #[test]
    fn a_partner_claiming_ten_thousand_domains_leaves_the_store_bounded() {
        let site = TestSite::new();
        let mut policy = FederationPolicy::new(FederationConfig {
            max_tracked_domains: 200,
            ..FederationConfig::default()
        });
        for i in 0..10_000u64 {
            let _ = policy.admit_inbound(&format!("d{i}.claimed.test"), "a@us", i, 1);
            if i % 500 == 499 {
                persist(&mut policy, &site.store).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        persist(&mut policy, &site.store).unwrap_or_else(|e| panic!("{e}"));
        let stored = site.store.list(NAMESPACE).unwrap_or_default();
        assert_eq!(stored.len(), 200, "{} domains stored", stored.len());
        assert!(stored.iter().any(|(k, _)| k == "domain.d9999.claimed.test"));

        // At the next start, the stored state comes back within the bound.
        let mut restored = FederationPolicy::new(FederationConfig {
            max_tracked_domains: 50,
            ..FederationConfig::default()
        });
        for (k, v) in &stored {
            let d = k.strip_prefix("domain.").unwrap_or(k);
            let st: StoredDomain = serde_json::from_slice(v).unwrap_or_default();
            restored.restore(d, st, 0);
        }
        persist(&mut restored, &site.store).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(site.store.list(NAMESPACE).unwrap_or_default().len(), 50);
    }
}
