//! Group commit for login records. Every login must be on disk before it is acknowledged,
//! and a commit costs one fsync, so one task writes: it takes every login waiting, commits them
//! in one transaction and then acknowledges each. Under load the batch grows by itself while
//! the previous commit is in flight; when idle a login is committed alone, with no added delay.

use crate::audit::AuditKey;
use crate::domain::LoginWrite;
use crate::service::ServiceError;
use crate::storage::{Storage, StorageError};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most logins committed together; bounds a transaction's size and the latency of its first.
const MAX_BATCH: usize = 1024;
/// Logins waiting beyond this make callers wait for room (backpressure, not unbounded memory).
const QUEUE: usize = 8192;

type Ack = oneshot::Sender<Result<(), Arc<StorageError>>>;

/// A handle to the writer task; cheap to clone.
#[derive(Debug, Clone)]
pub struct LoginWriter {
    queue: mpsc::Sender<(LoginWrite, Ack)>,
}

impl LoginWriter {
    /// Each login is written with its audit record, signed with `key`.
    pub fn spawn(storage: Arc<dyn Storage>, key: Arc<AuditKey>) -> LoginWriter {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(storage, key, rx));
        LoginWriter { queue }
    }

    /// Returns once the record is durably committed.
    pub async fn write(&self, login: LoginWrite) -> Result<(), ServiceError> {
        let (ack, done) = oneshot::channel();
        self.queue
            .send((login, ack))
            .await
            .map_err(|_| ServiceError::ShuttingDown)?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ServiceError::LoginNotRecorded(e)),
            Err(_) => Err(ServiceError::ShuttingDown),
        }
    }
}

async fn run(
    storage: Arc<dyn Storage>,
    key: Arc<AuditKey>,
    mut rx: mpsc::Receiver<(LoginWrite, Ack)>,
) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let (writes, acks): (Vec<LoginWrite>, Vec<Ack>) = jobs.drain(..).unzip();
        match storage.record_logins(&writes, &key).await {
            Ok(()) => {
                for ack in acks {
                    let _ = ack.send(Ok(()));
                }
            }
            Err(e) if writes.len() == 1 => {
                tracing::error!(error = %e, "login record not written");
                let e = Arc::new(e);
                for ack in acks {
                    let _ = ack.send(Err(e.clone()));
                }
            }
            Err(e) => {
                // One bad record must not fail the others: write them one by one.
                tracing::warn!(error = %e, batch = writes.len(), "batch failed; writing one by one");
                for (write, ack) in writes.into_iter().zip(acks) {
                    let result = storage
                        .record_logins(std::slice::from_ref(&write), &key)
                        .await
                        .map_err(Arc::new);
                    if let Err(e) = &result {
                        tracing::error!(error = %e, "login record not written");
                    }
                    let _ = ack.send(result);
                }
            }
        }
    }
}
