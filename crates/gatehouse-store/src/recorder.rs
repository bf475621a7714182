//! The recorder: sessions and statements are queued and written to the
//! store in batches by one background task, so recording never blocks the
//! data path.
//!
//! Fail closed: a statement may run only once the recorder has *admitted*
//! it ([`Recorder::admit`]), which reserves room for its record; at most
//! [`IN_FLIGHT`] admitted statements wait to be written. When the writer
//! falls behind or the store is down, admission fails and the caller
//! refuses the statement instead of running it unrecorded. Every admitted
//! statement's record is then accepted without fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use crate::{RecordEvent, Store};

/// Admitted statements not yet written, at most.
pub const IN_FLIGHT: usize = 65_536;
const BATCH: usize = 4_096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("the session recorder has stopped")]
    Stopped,
}

#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<RecordEvent>,
    in_flight: Arc<AtomicUsize>,
    limit: usize,
}

impl Recorder {
    /// Starts the writer task on `store`.
    pub fn start(store: Store) -> (Self, tokio::task::JoinHandle<()>) {
        Self::with_limit(store, IN_FLIGHT)
    }

    pub fn with_limit(store: Store, limit: usize) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(write_loop(store, rx, in_flight.clone()));
        (
            Self {
                tx,
                in_flight,
                limit,
            },
            task,
        )
    }

    /// Reserves room for one statement's record; `None` means the recorder
    /// is behind and the statement must not run. Dropping the admission
    /// unused gives the room back.
    pub fn admit(&self) -> Option<Admission> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Admission {
                in_flight: Some(self.in_flight.clone()),
            })
    }

    /// Queues a session event (start or end).
    pub fn record(&self, ev: RecordEvent) -> Result<(), RecordError> {
        self.tx.send(ev).map_err(|_| RecordError::Stopped)
    }

    /// Queues an admitted statement's record; the writer frees its room.
    pub fn record_statement(
        &self,
        mut admission: Admission,
        st: crate::StatementRecord,
    ) -> Result<(), RecordError> {
        admission.in_flight = None;
        self.tx
            .send(RecordEvent::Statement(st))
            .map_err(|_| RecordError::Stopped)
    }
}

/// Room reserved for one statement's record.
#[derive(Debug)]
pub struct Admission {
    in_flight: Option<Arc<AtomicUsize>>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(n) = self.in_flight.take() {
            n.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

async fn write_loop(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<RecordEvent>,
    in_flight: Arc<AtomicUsize>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut attempt = 0u32;
        loop {
            match store.write_records(&batch).await {
                Ok(()) => break,
                Err(e) => {
                    attempt += 1;
                    tracing::error!(error = %e, attempt, events = batch.len(), "could not write session records; retrying");
                    // Admission stays closed while these wait, so new
                    // statements are refused (fail closed) until the store is back.
                    tokio::time::sleep(std::time::Duration::from_millis(
                        200 * u64::from(attempt.min(25)),
                    ))
                    .await;
                }
            }
        }
        let statements = batch
            .iter()
            .filter(|e| matches!(e, RecordEvent::Statement(_)))
            .count();
        in_flight.fetch_sub(
            statements.min(in_flight.load(Ordering::Acquire)),
            Ordering::AcqRel,
        );
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn admission_is_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_sqlite(&dir.path().join("s.db"))
            .await
            .expect("store");
        let (r, _) = Recorder::with_limit(store, 3);
        let a = (r.admit(), r.admit(), r.admit());
        assert!(a.0.is_some() && a.1.is_some() && a.2.is_some());
        assert!(
            r.admit().is_none(),
            "a fourth statement must wait for the writer"
        );
        drop(a);
        assert!(
            r.admit().is_some(),
            "unused admissions give their room back"
        );
    }
}
