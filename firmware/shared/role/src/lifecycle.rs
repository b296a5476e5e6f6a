//! One lifecycle for every role.
//!
//! - **drain**: stop accepting at once ([`Lifecycle::draining`] fires), let in-flight work
//!   finish until the deadline, then close what is left ([`Lifecycle::closing`] fires).
//! - **stop**: close now (both fire together).
//!
//! In-flight work is, by default, every task started with [`Lifecycle::spawn`]. A role whose
//! in-flight work is something else (the A/V Edge's allocations, the Access Edge's pending
//! transactions) hands [`Lifecycle::drain_until_idle`] a future that resolves when that work
//! is done; [`wait_until`] builds one from a [`Notify`] without polling.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a task told to close may take to say goodbye (a CLOSE frame, a TLS
/// close_notify) before it is dropped, which closes its sockets without one.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// A role's tasks and its two stop signals. Clones share them.
#[derive(Clone, Default)]
pub struct Lifecycle {
    draining: CancellationToken,
    closing: CancellationToken,
    tasks: TaskTracker,
}

impl Lifecycle {
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires when drain (or stop) starts: listeners stop accepting; a connection finishes
    /// the work in hand and takes no more.
    pub fn draining(&self) -> &CancellationToken {
        &self.draining
    }

    pub fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }

    /// Fires when what is left must close now: the drain deadline passed, or stop.
    pub fn closing(&self) -> &CancellationToken {
        &self.closing
    }

    pub fn is_closing(&self) -> bool {
        self.closing.is_cancelled()
    }

    /// Runs `fut` as tracked in-flight work. Once [`closing`](Self::closing) fires, a task
    /// that watches it ends by itself; one that does not is dropped after [`CLOSE_GRACE`].
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let closing = self.closing.clone();
        self.tasks.spawn(async move {
            tokio::pin!(fut);
            tokio::select! {
                () = &mut fut => return,
                () = closing.cancelled() => {}
            }
            let _ = tokio::time::timeout(CLOSE_GRACE, fut).await;
        });
    }

    /// Resolves once drain or stop has started and every tracked task has ended.
    pub async fn tasks_ended(&self) {
        self.tasks.wait().await;
    }

    /// Drain whose in-flight work is the tracked tasks.
    pub async fn drain(&self, deadline: Duration) {
        self.drain_until_idle(deadline, self.tasks.wait()).await;
    }

    /// Drain whose in-flight work ends when `idle` resolves. Returns whether it did before
    /// the deadline (false: the rest was closed).
    pub async fn drain_until_idle(
        &self,
        deadline: Duration,
        idle: impl Future<Output = ()>,
    ) -> bool {
        self.draining.cancel();
        self.tasks.close();
        let finished = tokio::time::timeout(deadline, idle).await.is_ok();
        if !finished {
            tracing::info!(target: "edged", "drain deadline reached: closing what is left");
        }
        self.closing.cancel();
        self.tasks.wait().await;
        finished
    }

    /// Closes everything now and waits for the tasks to end.
    pub async fn stop(&self) {
        self.draining.cancel();
        self.closing.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Resolves once `done()` holds, re-checking each time `changed` is notified (with
/// `notify_waiters`) instead of polling on a timer.
pub async fn wait_until(changed: &Notify, mut done: impl FnMut() -> bool) {
    loop {
        let notified = changed.notified();
        tokio::pin!(notified);
        // Registered before the check, so a change between check and wait is not missed.
        notified.as_mut().enable();
        if done() {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn drain_lets_tracked_work_finish_before_the_deadline() {
        let life = Lifecycle::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let finished = Arc::new(AtomicUsize::new(0));
        let f = finished.clone();
        life.spawn(async move {
            let _ = rx.await;
            f.fetch_add(1, Ordering::SeqCst);
        });
        let drain = tokio::spawn({
            let life = life.clone();
            async move {
                life.drain_until_idle(Duration::from_secs(60), life.tasks_ended())
                    .await
            }
        });
        life.draining().cancelled().await;
        assert!(
            !life.is_closing(),
            "work in flight is not closed before the deadline"
        );
        tx.send(()).unwrap_or_else(|()| panic!("task gone"));
        assert!(drain.await.unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(finished.load(Ordering::SeqCst), 1);
        assert!(life.is_closing());
    }

    #[tokio::test(start_paused = true)]
    async fn drain_closes_what_is_left_at_the_deadline() {
        let life = Lifecycle::new();
        // One task watches `closing` and ends by itself; one ignores it and is dropped.
        let watcher = life.clone();
        life.spawn(async move { watcher.closing().cancelled().await });
        life.spawn(std::future::pending());
        let started = tokio::time::Instant::now();
        assert!(
            !life
                .drain_until_idle(Duration::from_secs(5), life.tasks_ended())
                .await
        );
        let took = started.elapsed();
        assert!(took >= Duration::from_secs(5), "{took:?}");
        assert!(took <= Duration::from_secs(5) + CLOSE_GRACE, "{took:?}");
    }

    #[tokio::test]
    async fn stop_closes_at_once() {
        let life = Lifecycle::new();
        let watcher = life.clone();
        life.spawn(async move { watcher.closing().cancelled().await });
        life.stop().await;
        assert!(life.is_draining() && life.is_closing());
    }

    #[tokio::test]
    async fn wait_until_wakes_on_notification() {
        let changed = Arc::new(Notify::new());
        let count = Arc::new(AtomicUsize::new(2));
        let waiter = tokio::spawn({
            let (changed, count) = (changed.clone(), count.clone());
            async move { wait_until(&changed, || count.load(Ordering::SeqCst) == 0).await }
        });
        for _ in 0..2 {
            tokio::task::yield_now().await;
            count.fetch_sub(1, Ordering::SeqCst);
            changed.notify_waiters();
        }
        waiter.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(count.load(Ordering::SeqCst), 0);
    }
}
