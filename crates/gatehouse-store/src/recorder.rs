//! The recorder: sessions and statements are queued on a bounded channel and
//! written to the store in batches by one background task, so recording
//! never blocks the data path. When the queue is full, callers are told
//! (`Backlog`) and refuse new statements rather than run them unrecorded.

use tokio::sync::mpsc;

use crate::{RecordEvent, Store};

/// Capacity of the queue between the data path and the writer.
pub const QUEUE: usize = 16_384;
const BATCH: usize = 512;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error(
        "the session recorder is behind; the statement was not run (it would have gone unrecorded)"
    )]
    Backlog,
    #[error("the session recorder has stopped")]
    Stopped,
}

#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::Sender<RecordEvent>,
}

impl Recorder {
    /// Starts the writer task on `store`.
    pub fn start(store: Store) -> (Self, tokio::task::JoinHandle<()>) {
        Self::with_capacity(store, QUEUE)
    }

    pub fn with_capacity(store: Store, capacity: usize) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(capacity);
        let task = tokio::spawn(write_loop(store, rx));
        (Self { tx }, task)
    }

    pub fn record(&self, ev: RecordEvent) -> Result<(), RecordError> {
        self.tx.try_send(ev).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => RecordError::Backlog,
            mpsc::error::TrySendError::Closed(_) => RecordError::Stopped,
        })
    }
}

async fn write_loop(store: Store, mut rx: mpsc::Receiver<RecordEvent>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut attempt = 0u32;
        loop {
            match store.write_records(&batch).await {
                Ok(()) => break,
                Err(e) => {
                    attempt += 1;
                    tracing::error!(error = %e, attempt, events = batch.len(), "could not write session records; retrying");
                    // The queue fills while the store is down, so new
                    // statements are refused (fail closed) until it is back.
                    tokio::time::sleep(std::time::Duration::from_millis(
                        200 * u64::from(attempt.min(25)),
                    ))
                    .await;
                }
            }
        }
        batch.clear();
    }
}

impl Recorder {
    /// Whether the queue is (nearly) full: new statements should be refused.
    pub fn is_backlogged(&self) -> bool {
        self.tx.capacity() < 16
    }
}
