//! Start/stop plumbing shared by both listeners.

use std::future::Future;
use std::time::Duration;

use edged_role::DrainToken;
use tokio_util::task::TaskTracker;

/// Time a client gets to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once per listener.
pub const MAX_CONNECTIONS: usize = 4096;
/// An idle connection is closed after this long (Directors keep SERVICE connections open
/// and send CRLF keep-alives well within it).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The role's tasks and its two stop signals.
#[derive(Clone, Default)]
pub struct Lifecycle {
    /// Stop accepting; connections finish the request in hand and close.
    pub drain: DrainToken,
    /// The drain deadline passed: whatever is still running is dropped.
    pub stop: DrainToken,
    pub tasks: TaskTracker,
}

impl Lifecycle {
    /// Runs `fut` as a tracked task that is dropped (closing its socket) on `stop`.
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = fut => {}
                _ = stop.cancelled() => {}
            }
        });
    }

    /// Drains: stop accepting, wait for tasks until `deadline`, then drop the rest.
    pub async fn drain(&self, deadline: Duration) {
        self.drain.cancel();
        self.tasks.close();
        if tokio::time::timeout(deadline, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::info!(target: "av_auth", "drain deadline reached; closing remaining connections");
        }
        self.stop.cancel();
        self.tasks.wait().await;
    }
}
