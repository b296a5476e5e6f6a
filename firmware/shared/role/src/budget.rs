//! Each role's descriptor budget, shared by all of the role's listeners.
//!
//! edged installs one pool per enabled role at start ([`install`]) from the configuration's
//! `[limits]`; a [`Listener`](crate::Listener) named `<role>.<key>` (its config key) draws
//! every connection from its role's pool as well as from its own caps, so a role's
//! listeners together stay within the role's budget and one source (IPv4 address, IPv6 /64)
//! within its share. A listener whose role has no pool (tests, tools) has only its own caps.
//!
//! A pool also answers whether its role is overloaded: at its cap now, or refusing
//! connections within the last [`OVERLOAD_MEMORY`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::admission::{Admission, ListenerLimits, Refusal, Source};

/// How long a refusal keeps a role reported as overloaded.
pub const OVERLOAD_MEMORY: Duration = Duration::from_secs(10);

/// One role's connections against its budget.
#[derive(Debug)]
pub struct Pool {
    admission: Mutex<Admission>,
    budget: AtomicU64,
    refused: AtomicU64,
    last_refusal: Mutex<Option<(Instant, Refusal)>>,
}

/// A connection counted in a pool; gives its place back when dropped.
#[derive(Debug)]
pub struct PoolSlot {
    pool: Arc<Pool>,
    source: Source,
}

impl Drop for PoolSlot {
    fn drop(&mut self) {
        self.pool.lock().release(self.source);
    }
}

/// The caps a budget of `descriptors` gives: all of it for the role, `share_percent` of it
/// for one source (at least one connection each).
pub fn limits_for(descriptors: u64, share_percent: u64) -> ListenerLimits {
    let total = usize::try_from(descriptors).unwrap_or(usize::MAX).max(1);
    let share = (u128::from(descriptors) * u128::from(share_percent.min(100)) / 100) as usize;
    ListenerLimits {
        max_connections: total,
        max_per_source: share.max(1),
        ..ListenerLimits::default()
    }
}

impl Pool {
    fn new(descriptors: u64, share_percent: u64) -> Self {
        Self {
            admission: Mutex::new(Admission::new(&limits_for(descriptors, share_percent))),
            budget: AtomicU64::new(descriptors),
            refused: AtomicU64::new(0),
            last_refusal: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Admission> {
        self.admission
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a connection from `ip` against the budget, or says why it does not fit.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<PoolSlot, Refusal> {
        let admitted = self.lock().admit(ip).map_err(|why| match why {
            Refusal::ListenerFull(n) => Refusal::RoleBudgetFull(n),
            Refusal::SourceFull(n) => Refusal::SourceBudgetFull(n),
            other => other,
        });
        match admitted {
            Ok(source) => Ok(PoolSlot {
                pool: self.clone(),
                source,
            }),
            Err(why) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                *self
                    .last_refusal
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), why));
                Err(why)
            }
        }
    }

    /// Connections of the role open now.
    pub fn open(&self) -> usize {
        self.lock().open()
    }

    pub fn budget(&self) -> u64 {
        self.budget.load(Ordering::Relaxed)
    }

    /// Connections refused for the budget since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Why the role is overloaded at `now`, if it is.
    pub fn overload(&self, now: Instant) -> Option<String> {
        let open = self.open();
        let budget = self.budget();
        if open as u64 >= budget {
            return Some(format!(
                "holds its whole budget of {budget} connections; new ones are refused"
            ));
        }
        let last = *self
            .last_refusal
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match last {
            Some((at, why)) if now.saturating_duration_since(at) < OVERLOAD_MEMORY => {
                Some(format!(
                    "refused connections in the last {} s: {why}; {open} of {budget} open",
                    OVERLOAD_MEMORY.as_secs()
                ))
            }
            _ => None,
        }
    }
}

fn pools() -> &'static Mutex<HashMap<String, Arc<Pool>>> {
    static POOLS: OnceLock<Mutex<HashMap<String, Arc<Pool>>>> = OnceLock::new();
    POOLS.get_or_init(Default::default)
}

/// Sets `role`'s budget (creating its pool, or changing it for new connections).
pub fn install(role: &str, descriptors: u64, share_percent: u64) {
    let mut map = pools().lock().unwrap_or_else(PoisonError::into_inner);
    match map.get(role) {
        Some(pool) => {
            pool.lock()
                .set_limits(&limits_for(descriptors, share_percent));
            pool.budget.store(descriptors, Ordering::Relaxed);
        }
        None => {
            map.insert(
                role.to_owned(),
                Arc::new(Pool::new(descriptors, share_percent)),
            );
        }
    }
}

/// The pool of `role`, if edged installed one.
pub fn pool(role: &str) -> Option<Arc<Pool>> {
    pools()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(role)
        .cloned()
}

/// The pool a listener named by its config key (`av_edge.tcp_port`) draws from.
pub fn pool_of_listener(name: &str) -> Option<Arc<Pool>> {
    pool(name.split('.').next().unwrap_or(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn a_budget_gives_the_role_cap_and_the_source_share() {
        let l = limits_for(1_000, 25);
        assert_eq!((l.max_connections, l.max_per_source), (1_000, 250));
        assert_eq!(limits_for(3, 10).max_per_source, 1);
    }

    #[test]
    fn a_full_pool_refuses_reports_overload_and_frees_on_drop() {
        let pool = Arc::new(Pool::new(2, 100));
        let now = Instant::now();
        assert_eq!(pool.overload(now), None);
        let a = pool
            .admit(ip("192.0.2.1"))
            .unwrap_or_else(|e| panic!("{e}"));
        let _b = pool
            .admit(ip("192.0.2.2"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(pool
            .overload(now)
            .is_some_and(|r| r.contains("whole budget of 2")));
        assert_eq!(
            pool.admit(ip("192.0.2.3")).err(),
            Some(Refusal::RoleBudgetFull(2))
        );
        drop(a);
        assert_eq!(pool.open(), 1);
        let recent = pool.overload(Instant::now());
        assert!(
            recent.is_some_and(|r| r.contains("refused connections")),
            "a refusal is remembered"
        );
        assert_eq!(pool.overload(Instant::now() + OVERLOAD_MEMORY), None);
    }

    #[test]
    fn listeners_find_their_roles_pool_by_their_key() {
        install("budget_test_role", 10, 50);
        let pool =
            pool_of_listener("budget_test_role.tcp_port").unwrap_or_else(|| panic!("no pool"));
        assert_eq!(pool.budget(), 10);
        install("budget_test_role", 20, 50);
        assert_eq!(pool.budget(), 20);
        assert!(pool_of_listener("no_such_role.port").is_none());
    }
}
