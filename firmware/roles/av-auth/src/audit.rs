//! Issuance audit records, committed in groups.
//!
//! Every credential is audited before it is handed out, and a store commit is an fsync.
//! One commit per credential would cap issuance at the disk's fsync rate, so concurrent
//! requests share a commit: each waits for the commit that holds its record (durable
//! before the answer), and a burst of N requests costs one fsync instead of N.

use edged_store::{AuditRecord, Store};
use tokio::sync::{mpsc, oneshot};

/// Records taken into one commit at most.
const MAX_GROUP: usize = 256;
/// Records waiting for a commit at most; more wait for room (back-pressure on issuance).
const QUEUE: usize = 4096;

type Ack = oneshot::Sender<Result<(), String>>;

#[derive(Clone)]
pub struct AuditWriter {
    tx: mpsc::Sender<(AuditRecord, Ack)>,
}

impl AuditWriter {
    /// Starts the committing task on the current runtime.
    pub fn spawn(store: Store) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(commit_loop(store, rx));
        AuditWriter { tx }
    }

    /// Appends `record` and returns once it is durable.
    pub async fn append(&self, record: AuditRecord) -> Result<(), String> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send((record, ack))
            .await
            .map_err(|_| "audit writer stopped".to_owned())?;
        done.await.map_err(|_| "audit writer stopped".to_owned())?
    }
}

async fn commit_loop(store: Store, mut rx: mpsc::Receiver<(AuditRecord, Ack)>) {
    let mut batch = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut batch, MAX_GROUP).await > 0 {
        let (records, acks): (Vec<AuditRecord>, Vec<Ack>) = batch.drain(..).unzip();
        let store = store.clone();
        // redb commits block on fsync: keep them off the async workers.
        let result = tokio::task::spawn_blocking(move || {
            store.write(|tx| {
                for r in records {
                    tx.audit(r)?;
                }
                Ok(())
            })
        })
        .await;
        let outcome = match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("audit commit failed: {e}")),
            Err(e) => Err(format!("audit commit task failed: {e}")),
        };
        if let Err(e) = &outcome {
            tracing::error!(target: "av_auth", error = %e, "issuance audit could not be written; refusing the credentials");
        }
        for ack in acks {
            // A requester that went away does not need its answer.
            let _ = ack.send(outcome.clone());
        }
    }
}
