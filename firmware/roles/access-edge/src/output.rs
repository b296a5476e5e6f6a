//! The byte budget of one connection's output queue: what the proxy may queue for a peer
//! that reads slowly, so no peer holds more than its share of memory.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Bookkeeping charged for each queued message beyond its bytes (the queue entry and the
/// allocation), so many tiny messages cannot exceed the budget either.
pub const PER_MESSAGE_OVERHEAD: usize = 64;

/// Bytes queued for a peer, against its budget.
#[derive(Debug)]
pub struct OutputBudget {
    budget: usize,
    queued: AtomicUsize,
}

impl OutputBudget {
    pub fn new(budget: usize) -> Self {
        OutputBudget {
            budget,
            queued: AtomicUsize::new(0),
        }
    }

    /// Charges a message of `len` bytes; false (nothing charged) when it does not fit.
    pub fn reserve(&self, len: usize) -> bool {
        let cost = len.saturating_add(PER_MESSAGE_OVERHEAD);
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                q.checked_add(cost).filter(|total| *total <= self.budget)
            })
            .is_ok()
    }

    /// A message of `len` bytes left the queue (written, or the connection is gone).
    pub fn release(&self, len: usize) {
        let cost = len.saturating_add(PER_MESSAGE_OVERHEAD);
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                Some(q.saturating_sub(cost))
            });
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_bounds_bytes_and_frees_on_release() {
        let b = OutputBudget::new(1000 + 2 * PER_MESSAGE_OVERHEAD);
        assert!(b.reserve(600));
        assert!(b.reserve(400));
        assert!(!b.reserve(1), "full");
        assert_eq!(b.queued(), 1000 + 2 * PER_MESSAGE_OVERHEAD);
        b.release(600);
        assert!(b.reserve(500));
        assert!(!b.reserve(200));
    }

    #[test]
    fn tiny_messages_are_charged_their_overhead() {
        let b = OutputBudget::new(10 * PER_MESSAGE_OVERHEAD);
        let fitted = (0..100).filter(|_| b.reserve(2)).count();
        assert!(fitted < 10, "{fitted}");
    }
}
