//! Per-address and per-conference session counts, and the global count of QUIC
//! connections not yet admitted; all released by guards so no path can leak.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use edged_metrics::Gauge;

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

/// One count with a ceiling over every client, mirrored into a gauge for the metrics.
#[derive(Debug, Default)]
pub struct Gate {
    taken: AtomicU32,
    gauge: Gauge,
}

impl Gate {
    pub fn new(gauge: Gauge) -> Self {
        Self {
            taken: AtomicU32::new(0),
            gauge,
        }
    }

    /// Takes a place if fewer than `max` are taken.
    pub fn try_enter(self: &Arc<Self>, max: u32) -> Option<GatePlace> {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        self.gauge.inc();
        Some(GatePlace(self.clone()))
    }

    /// Places taken now.
    pub fn taken(&self) -> u32 {
        self.taken.load(Ordering::Acquire)
    }
}

/// A place in a [`Gate`]; dropping it gives the place back.
#[derive(Debug)]
pub struct GatePlace(Arc<Gate>);

impl Drop for GatePlace {
    fn drop(&mut self) {
        self.0.taken.fetch_sub(1, Ordering::AcqRel);
        self.0.gauge.dec();
    }
}

/// The tables and the gate of the role.
#[derive(Debug, Default)]
pub struct Limits {
    pub by_address: Arc<CountTable<IpAddr>>,
    pub by_conference: Arc<CountTable<String>>,
    /// QUIC connections in their handshake or before their first frame is judged.
    pub quic_handshakes: Arc<Gate>,
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

    #[test]
    fn the_gate_holds_at_most_its_ceiling_and_counts_in_its_gauge() {
        let gauge = Gauge::detached();
        let gate = Arc::new(Gate::new(gauge.clone()));
        let a = gate.try_enter(2).unwrap();
        let b = gate.try_enter(2).unwrap();
        assert!(gate.try_enter(2).is_none());
        assert_eq!((gate.taken(), gauge.get()), (2, 2));
        // A lower ceiling set live refuses until enough places are given back.
        drop(a);
        assert!(gate.try_enter(1).is_none());
        drop(b);
        let c = gate.try_enter(1).unwrap();
        assert_eq!((gate.taken(), gauge.get()), (1, 1));
        drop(c);
        assert_eq!((gate.taken(), gauge.get()), (0, 0));
        assert!(gate.try_enter(0).is_none());
        assert_eq!(gate.taken(), 0, "a refusal takes nothing");
    }
}
