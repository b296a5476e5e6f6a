//! Per-address and per-conference session counts, released by guards so no path can leak.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Counts per key; an entry disappears when its count returns to zero.
#[derive(Debug)]
pub struct CountTable<K: Eq + Hash + Clone> {
    counts: Mutex<HashMap<K, u32>>,
}

impl<K: Eq + Hash + Clone> Default for CountTable<K> {
    fn default() -> Self {
        Self {
            counts: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone> CountTable<K> {
    /// Takes one slot for `key` if fewer than `max` are taken.
    pub fn try_take(self: &Arc<Self>, key: K, max: u32) -> Option<SlotGuard<K>> {
        let mut m = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = m.entry(key.clone()).or_insert(0);
        if *n >= max {
            if *n == 0 {
                m.remove(&key);
            }
            return None;
        }
        *n += 1;
        Some(SlotGuard {
            table: self.clone(),
            key: Some(key),
        })
    }

    fn release(&self, key: &K) {
        let mut m = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = m.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(key);
            }
        }
    }

    /// Keys with a nonzero count (tests check this returns to zero).
    pub fn len(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One taken slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct SlotGuard<K: Eq + Hash + Clone> {
    table: Arc<CountTable<K>>,
    key: Option<K>,
}

impl<K: Eq + Hash + Clone> Drop for SlotGuard<K> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.table.release(&k);
        }
    }
}

/// Both tables of the role.
#[derive(Debug, Default)]
pub struct Limits {
    pub by_address: Arc<CountTable<IpAddr>>,
    pub by_conference: Arc<CountTable<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_returned() {
        let t: Arc<CountTable<u8>> = Arc::default();
        let a = t.try_take(1, 2).unwrap();
        let b = t.try_take(1, 2).unwrap();
        assert!(t.try_take(1, 2).is_none());
        assert!(t.try_take(2, 2).is_some(), "other keys are unaffected");
        drop(a);
        let c = t.try_take(1, 2).unwrap();
        drop((b, c));
        assert!(t.is_empty(), "entries vanish at zero");
        assert!(t.try_take(3, 0).is_none());
        assert!(t.is_empty(), "a refused key leaves no entry");
    }
}
