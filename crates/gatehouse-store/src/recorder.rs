//! The recorder: sessions and statements are queued and written to the
//! store in batches by one background task, so recording never blocks the
//! data path. Each session gathers its statement records in chunks
//! ([`SessionLog`]), so the writer stores one row per chunk, not one per
//! statement.
//!
//! Fail closed: a statement may run only once the recorder has *admitted*
//! it ([`Recorder::admit`]), which reserves room for its record; at most
//! [`IN_FLIGHT`] admitted statements wait to be written. When the writer
//! falls behind or the store is down, admission fails and the caller
//! refuses the statement instead of running it unrecorded. Every admitted
//! statement's record is then accepted without fail.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, mpsc};

use crate::{RecordEvent, Store};

/// Admitted statements not yet written, at most.
pub const IN_FLIGHT: usize = 65_536;
const BATCH: usize = 4_096;
/// Batches are written at most this often while events keep coming.
const WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);
/// How long the data path waits for room in a full recorder before it
/// refuses the statement.
pub const ROOM_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("the session recorder has stopped")]
    Stopped,
}

#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Queued>,
    in_flight: Arc<AtomicUsize>,
    limit: usize,
    /// Told whenever the writer has stored a batch (room came free).
    room: Arc<Notify>,
    /// Told when a session starts or ends: the writer then writes at once
    /// (statement chunks may wait for the next batch).
    prompt: Arc<Notify>,
    /// Chunk buffers the writer has stored, for sessions to fill again: a
    /// session's next chunk reuses memory that is already mapped instead of
    /// a new allocation freed later on the writer's thread.
    spare: Arc<Mutex<Vec<String>>>,
    /// What the writer has done, for `/metrics`.
    counts: Arc<Counts>,
}

/// The recorder's counters since start (see [`Recorder::stats`]).
#[derive(Debug, Default)]
struct Counts {
    unadmitted: AtomicU64,
    written: AtomicU64,
    writes: AtomicU64,
    write_micros: AtomicU64,
}

/// A snapshot of the recorder's queue and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecorderStats {
    /// Statements admitted whose records are not stored yet.
    pub unwritten: usize,
    /// How many may be, at most.
    pub capacity: usize,
    /// Statements the recorder had no room for (refused, or run unrecorded
    /// where recording fails open).
    pub unadmitted: u64,
    /// Statement records stored.
    pub written: u64,
    /// Batches stored, and the time their writes took.
    pub writes: u64,
    pub write_micros: u64,
}

impl Recorder {
    /// Starts the writer task on `store`.
    pub fn start(store: Store) -> (Self, tokio::task::JoinHandle<()>) {
        Self::with_limit(store, IN_FLIGHT)
    }

    pub fn with_limit(store: Store, limit: usize) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let room = Arc::new(Notify::new());
        let prompt = Arc::new(Notify::new());
        let spare = Arc::new(Mutex::new(Vec::new()));
        let counts = Arc::new(Counts::default());
        let task = tokio::spawn(write_loop(
            store,
            rx,
            in_flight.clone(),
            room.clone(),
            prompt.clone(),
            spare.clone(),
            counts.clone(),
        ));
        (
            Self {
                tx,
                in_flight,
                limit,
                room,
                prompt,
                spare,
                counts,
            },
            task,
        )
    }

    /// The queue as it is now, and the counters since start.
    pub fn stats(&self) -> RecorderStats {
        let c = &self.counts;
        RecorderStats {
            unwritten: self.in_flight.load(Ordering::Acquire),
            capacity: self.limit,
            unadmitted: c.unadmitted.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            write_micros: c.write_micros.load(Ordering::Relaxed),
        }
    }

    /// Reserves room for one statement's record; `None` means the recorder
    /// is behind and the statement must not run. Dropping the admission
    /// unused gives the room back.
    pub fn admit(&self) -> Option<Admission> {
        let admitted = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            self.counts.unadmitted.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(Admission {
            in_flight: Some(self.in_flight.clone()),
        })
    }

    /// Whether the data path should wait for room before its next batch of
    /// statements: less than a sixteenth of the room is left. The margin is
    /// what a session admits after its check, while sessions on the other
    /// threads admit theirs: waiting only when no room at all was left, a
    /// session that saw one place free could find it taken by the time it
    /// admitted its statement, and refuse it although the writer was behind
    /// for a moment only (seen at 33,000 statements a second).
    pub fn is_full(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) + self.limit / 16 >= self.limit
    }

    /// Waits, at most `max`, until there is room for a record: the data
    /// path calls this before a batch of statements, so that a writer
    /// briefly behind (a slow disk, a store fail-over) slows clients down
    /// instead of failing their statements. Whether there is room after
    /// the wait; admission may still fail, and then the statement is
    /// refused (fail closed).
    pub async fn wait_for_room(&self, max: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            // Registered before the check, so a batch stored in between is not missed.
            notified.as_mut().enable();
            if !self.is_full() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return !self.is_full();
            }
        }
    }

    /// Queues a session event (start or end), written at once.
    pub fn record(&self, ev: RecordEvent) -> Result<(), RecordError> {
        let prompt = !matches!(ev, RecordEvent::Statements(_));
        self.tx
            .send(Queued::Event(ev))
            .map_err(|_| RecordError::Stopped)?;
        if prompt {
            self.prompt.notify_one();
        }
        Ok(())
    }

    /// A buffer for one session's statement records.
    pub fn session_log(&self, session_id: &str) -> SessionLog {
        SessionLog {
            recorder: self.clone(),
            session_id: session_id.into(),
            data: String::new(),
            records: Vec::new(),
            text: String::new(),
            approx_bytes: 0,
            statements: 0,
            first_seq: 0,
            last_seq: 0,
            chunk: 0,
            last_bytes: 0,
            last_text: 0,
            last_records: 0,
        }
    }
}

/// Statements per chunk, at most.
pub const CHUNK_STATEMENTS: usize = 256;
/// Bytes of JSON lines per chunk before it is sent early.
const CHUNK_BYTES: usize = 64 * 1024;
/// Stored chunk buffers kept for reuse, at most (about 4 MiB at full size).
const SPARE_BUFFERS: usize = 64;

impl Recorder {
    /// An empty buffer for a new chunk: a spare one when there is one.
    fn chunk_buffer(&self, capacity: usize) -> String {
        take_spare(&self.spare, capacity)
    }
}

/// A spare buffer (or a new one) with room for `capacity` bytes.
fn take_spare(spare: &Mutex<Vec<String>>, capacity: usize) -> String {
    let buf = spare.lock().ok().and_then(|mut s| s.pop());
    let mut buf = buf.unwrap_or_default();
    buf.reserve(capacity);
    buf
}

/// Keeps a stored chunk's buffer for reuse, unless enough are kept or it
/// grew far past a chunk's size (a huge statement; its memory goes back).
fn keep_spare(spare: &Mutex<Vec<String>>, mut buf: String) {
    if buf.capacity() > 2 * CHUNK_BYTES {
        return;
    }
    if let Ok(mut s) = spare.lock()
        && s.len() < SPARE_BUFFERS
    {
        buf.clear();
        s.push(buf);
    }
}

/// What the writer is sent: an event as it is, or a chunk with records
/// whose JSON it writes itself.
#[derive(Debug)]
enum Queued {
    Event(RecordEvent),
    Records(PendingChunk),
}

impl Queued {
    /// The event to store (a chunk's JSON written now if it was not).
    fn into_event(self, spare: &Mutex<Vec<String>>) -> RecordEvent {
        match self {
            Self::Event(ev) => ev,
            Self::Records(c) => RecordEvent::Statements(c.write(spare)),
        }
    }
}

/// A statement's record as the data path hands it over ([`SessionLog::push_record`]):
/// its values, with shared text where the session has it already (the
/// statement, its verdict, its column names). The writer writes its JSON,
/// off the session's thread.
#[derive(Debug)]
pub struct Record {
    pub seq: i64,
    pub started_at: i64,
    pub duration_us: i64,
    pub sql: Arc<str>,
    pub verdict: Arc<gatehouse_core::policy::Verdict>,
    pub rows: i64,
    pub error: Option<String>,
    pub columns: Option<Arc<dyn ColumnNames>>,
}

/// The column names of a result, as the session keeps them.
pub trait ColumnNames: std::fmt::Debug + Send + Sync {
    fn names(&self) -> &[String];
}

/// A [`Record`] in its chunk: where its command tag and its result rows
/// (as JSON) are in the chunk's text.
#[derive(Debug)]
struct Held {
    record: Record,
    command: Option<(usize, usize)>,
    result: Option<(usize, usize)>,
    truncated: bool,
    /// Its parameters' JSON, and whether more were bound than kept.
    params: Option<(usize, usize)>,
    params_truncated: bool,
}

/// A chunk whose records' JSON is still to be written: after `data` (JSON
/// lines written on the data path, if any), one line per record.
#[derive(Debug)]
struct PendingChunk {
    chunk: crate::SessionChunk,
    records: Vec<Held>,
    text: String,
}

impl PendingChunk {
    /// The chunk with every record's JSON line written, in order.
    fn write(mut self, spare: &Mutex<Vec<String>>) -> crate::SessionChunk {
        if self.chunk.data.capacity() == 0 {
            let bytes = self
                .records
                .iter()
                .map(|h| h.record.sql.len() + RECORD_BYTES)
                .sum::<usize>()
                + self.text.len();
            self.chunk.data = take_spare(spare, bytes);
        }
        let mut repeats = Repeats::default();
        for h in &self.records {
            h.write(&mut self.chunk.data, &self.text, &mut repeats);
        }
        // The records and their text are let go here, on the writer's
        // thread. The text is not kept as a spare: the spares are for
        // chunks' JSON, and a small buffer among them would be grown (and
        // its new pages faulted in) when it is next taken for that.
        drop(self.records);
        drop(self.text);
        self.chunk
    }
}

/// The JSON of the statement text and of the column names of the last
/// record written, kept with what it was written from: a session's records
/// share these (the same `Arc`), so each is escaped once per chunk.
#[derive(Default)]
struct Repeats {
    sql: Kept<str>,
    columns: Kept<dyn ColumnNames>,
}

/// The JSON of one shared value, and the value (kept, so that the pointer
/// it is known by cannot be reused for another).
struct Kept<T: ?Sized>(Option<(Arc<T>, String)>);

impl<T: ?Sized> Default for Kept<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<T: ?Sized> Kept<T> {
    /// The JSON of `v`, written by `write` unless it is the value kept.
    fn json(&mut self, v: &Arc<T>, write: impl FnOnce(&mut String, &T)) -> &str {
        if !matches!(&self.0, Some((kept, _)) if Arc::ptr_eq(kept, v)) {
            // Its buffer is written again for the new value.
            let mut json = self.0.take().map(|(_, json)| json).unwrap_or_default();
            json.clear();
            write(&mut json, v);
            self.0 = Some((v.clone(), json));
        }
        self.0.as_ref().map_or("", |(_, json)| json)
    }
}

impl Held {
    fn write(&self, out: &mut String, text: &str, repeats: &mut Repeats) {
        let r = &self.record;
        let part = |at: Option<(usize, usize)>| at.and_then(|(a, b)| text.get(a..b));
        let written = crate::sessions::Written {
            sql: Some(repeats.sql.json(&r.sql, crate::sessions::json_str)),
            params: part(self.params),
            columns: r.columns.as_ref().map(|c| {
                repeats
                    .columns
                    .json(c, |out, c| crate::sessions::json_columns(out, c.names()))
            }),
        };
        crate::StatementEntry {
            seq: r.seq,
            started_at: r.started_at,
            duration_us: Some(r.duration_us),
            sql: &r.sql,
            params: None,
            params_truncated: self.params_truncated,
            decision: r.verdict.label(),
            rule: r.verdict.rule(),
            command: part(self.command),
            rows: Some(r.rows),
            error: r.error.as_deref(),
            columns: r.columns.as_ref().map(|c| c.names()),
            result: None,
            result_truncated: self.truncated,
        }
        .write_json_given(
            out,
            part(self.result).map(crate::sessions::ResultJson::Written),
            written,
        );
        out.push('\n');
    }
}

/// A record's JSON besides its statement's text and its result, about
/// (for sizing chunks before their JSON is written).
const RECORD_BYTES: usize = 160;

/// One session's statement records on their way to the store. Records
/// gather in a chunk that goes to the writer when it is full, when
/// [`SessionLog::flush`] is called (the data path calls it when the
/// session has been quiet for a moment) and when the log is dropped, so a
/// session's records are never lost with it. Each record comes with its
/// admission; the room stays reserved until the writer has stored the
/// chunk. A record comes as JSON written on the data path
/// ([`SessionLog::push`]) or as values whose JSON the writer writes
/// ([`SessionLog::push_record`]), which keeps that work off the session's
/// thread.
#[derive(Debug)]
pub struct SessionLog {
    recorder: Recorder,
    session_id: Arc<str>,
    /// JSON lines (of records given as JSON).
    data: String,
    /// Records given as values, after those in `data`.
    records: Vec<Held>,
    /// Their command tags and result rows.
    text: String,
    /// Bytes of the chunk's JSON, about.
    approx_bytes: usize,
    statements: usize,
    first_seq: i64,
    last_seq: i64,
    chunk: i64,
    /// Bytes of the last chunk sent.
    last_bytes: usize,
    /// Bytes of the text of the last chunk sent with records.
    last_text: usize,
    /// Records of the last chunk sent with records.
    last_records: usize,
}

impl SessionLog {
    /// Adds an admitted statement's record, written as JSON now.
    pub fn push(&mut self, mut admission: Admission, entry: &crate::StatementEntry<'_>) {
        // The room is now the chunk's, freed by the writer once stored.
        admission.in_flight = None;
        if self.statements == 0 {
            self.first_seq = entry.seq;
            // Room for a chunk like the last one, at once (not by doubling);
            // taken only when there is something to hold.
            self.data = self.recorder.chunk_buffer(self.last_bytes);
        }
        if !self.records.is_empty() {
            // Keeps the order: the records given as values go first.
            let mut repeats = Repeats::default();
            for h in std::mem::take(&mut self.records) {
                h.write(&mut self.data, &self.text, &mut repeats);
            }
            self.text.clear();
        }
        self.last_seq = entry.seq;
        self.statements += 1;
        entry.write_json(&mut self.data);
        self.data.push('\n');
        self.approx_bytes = self.data.len();
        if self.statements >= CHUNK_STATEMENTS || self.approx_bytes >= CHUNK_BYTES {
            self.flush();
        }
    }

    /// Adds an admitted statement's record as values: its JSON is written
    /// by the writer. `command` is its command tag, `result` its first rows
    /// (kept if any), `params` the values bound to its parameters (a sample
    /// of one row); the samples may be reused once this returns.
    pub fn push_record(
        &mut self,
        mut admission: Admission,
        record: Record,
        command: Option<&str>,
        result: &crate::ResultSample,
        params: Option<&crate::ResultSample>,
    ) {
        admission.in_flight = None;
        if self.statements == 0 {
            self.first_seq = record.seq;
            if self.text.capacity() == 0 {
                // Room for text like the last chunk's, at once.
                self.text = String::with_capacity(self.last_text);
            }
            if self.records.capacity() == 0 {
                // And for as many records (not grown by doubling, which
                // copied a busy session's records 8 times per chunk).
                self.records = Vec::with_capacity(self.last_records);
            }
        }
        let before = self.text.len();
        let command = command.map(|c| {
            self.text.push_str(c);
            (before, self.text.len())
        });
        let rows = (!result.is_empty()).then(|| {
            let at = self.text.len();
            result.write_json(&mut self.text);
            (at, self.text.len())
        });
        let params_truncated = params.is_some_and(|p| p.truncated);
        let params = params.map(|p| {
            let at = self.text.len();
            p.write_row_json(&mut self.text);
            (at, self.text.len())
        });
        self.approx_bytes += record.sql.len() + (self.text.len() - before) + RECORD_BYTES;
        self.last_seq = record.seq;
        self.statements += 1;
        if self.records.len() == self.records.capacity() {
            // Past the last chunk's size: room for a whole chunk at once
            // (grown by doubling, the records were copied at each step).
            self.records
                .reserve_exact(CHUNK_STATEMENTS.saturating_sub(self.records.len()).max(1));
        }
        self.records.push(Held {
            record,
            command,
            result: rows,
            truncated: result.truncated,
            params,
            params_truncated,
        });
        if self.statements >= CHUNK_STATEMENTS || self.approx_bytes >= CHUNK_BYTES {
            self.flush();
        }
    }

    /// Whether records wait to be sent.
    pub fn is_empty(&self) -> bool {
        self.statements == 0
    }

    /// Sends the records gathered so far to the writer.
    pub fn flush(&mut self) {
        if self.statements == 0 {
            return;
        }
        self.chunk += 1;
        self.last_bytes = self.approx_bytes.min(CHUNK_BYTES);
        let chunk = crate::SessionChunk {
            session_id: self.session_id.clone(),
            chunk: self.chunk,
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            statements: self.statements,
            data: std::mem::take(&mut self.data),
        };
        self.statements = 0;
        self.approx_bytes = 0;
        let queued = if self.records.is_empty() {
            Queued::Event(RecordEvent::Statements(chunk))
        } else {
            self.last_text = self.text.len();
            self.last_records = self.records.len();
            Queued::Records(PendingChunk {
                chunk,
                records: std::mem::take(&mut self.records),
                text: std::mem::take(&mut self.text),
            })
        };
        if self.recorder.tx.send(queued).is_err() {
            tracing::error!(session = %self.session_id, "the session recorder has stopped; statement records were lost");
        }
    }
}

impl Drop for SessionLog {
    fn drop(&mut self) {
        self.flush();
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
    mut rx: mpsc::UnboundedReceiver<Queued>,
    in_flight: Arc<AtomicUsize>,
    room: Arc<Notify>,
    prompt: Arc<Notify>,
    spare: Arc<Mutex<Vec<String>>>,
    counts: Arc<Counts>,
) {
    let mut queued = Vec::with_capacity(BATCH);
    let mut batch = Vec::with_capacity(BATCH);
    let mut last_write: Option<tokio::time::Instant> = None;
    while rx.recv_many(&mut queued, BATCH).await > 0 {
        batch.extend(queued.drain(..).map(|q| q.into_event(&spare)));
        // While sessions keep the writer busy, chunks that arrive within
        // WRITE_INTERVAL of the last write join one transaction: a steady
        // stream of chunks becomes a few larger writes, not a wake-up and a
        // commit each (senders of chunks do not wake the writer while it
        // waits). After a quiet spell the first event goes at once, and a
        // session starting or ending is written at once, so that it shows.
        let starts_or_ends =
            |b: &[RecordEvent]| b.iter().any(|e| !matches!(e, RecordEvent::Statements(_)));
        if let Some(due) = last_write.map(|t| t + WRITE_INTERVAL)
            && batch.len() < BATCH
            && !starts_or_ends(&batch)
            && tokio::time::Instant::now() < due
        {
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = prompt.notified() => {}
            }
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(q) => batch.push(q.into_event(&spare)),
                    Err(_) => break,
                }
            }
        }
        let started = tokio::time::Instant::now();
        last_write = Some(started);
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
        let statements: usize = batch
            .iter()
            .map(|e| match e {
                RecordEvent::Statements(c) => c.statements,
                _ => 0,
            })
            .sum();
        // Counted before the room is given back, which waiters see.
        counts
            .written
            .fetch_add(statements as u64, Ordering::Relaxed);
        counts.writes.fetch_add(1, Ordering::Relaxed);
        counts.write_micros.fetch_add(
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        in_flight.fetch_sub(
            statements.min(in_flight.load(Ordering::Acquire)),
            Ordering::AcqRel,
        );
        room.notify_waiters();
        for ev in batch.drain(..) {
            if let RecordEvent::Statements(c) = ev {
                keep_spare(&spare, c.data);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store in a temporary directory (kept while the guard lives).
    async fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_sqlite(&dir.path().join("s.db"))
            .await
            .expect("store");
        (dir, store)
    }

    #[tokio::test]
    async fn admission_is_bounded() {
        let (_dir, store) = temp_store().await;
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

    /// The data path waits while less than a sixteenth of the room is left,
    /// not only once none is, so that what sessions on other threads admit
    /// between its check and its own admission finds room.
    #[tokio::test]
    async fn the_data_path_waits_before_the_last_room_is_taken() {
        let (_dir, store) = temp_store().await;
        let (r, _) = Recorder::with_limit(store, 32);
        let mut log = r.session_log("s");
        for seq in 1..=29 {
            log.push(r.admit().expect("room"), &entry(seq, "SELECT 1"));
        }
        assert!(!r.is_full(), "three places of 32 left: no wait");
        log.push(r.admit().expect("room"), &entry(30, "SELECT 1"));
        assert!(r.is_full(), "two places left: wait for the writer");
        assert!(
            !r.wait_for_room(std::time::Duration::from_millis(50)).await,
            "nothing was sent to the writer, so no room came free"
        );
        assert!(
            r.admit().is_some(),
            "a statement admitted meanwhile still finds room"
        );
        log.flush();
        assert!(
            r.wait_for_room(std::time::Duration::from_secs(30)).await,
            "room after the batch was stored"
        );
    }

    /// The counters `/metrics` shows: what waits, what was refused room,
    /// what was stored and in how many writes.
    #[tokio::test]
    async fn stats_count_what_waits_what_was_refused_and_what_was_stored() {
        let (_dir, store) = temp_store().await;
        let (r, _) = Recorder::with_limit(store, 2);
        let mut log = r.session_log("s");
        for seq in 1..=2 {
            log.push(r.admit().expect("room"), &entry(seq, "SELECT 1"));
        }
        assert!(r.admit().is_none());
        let s = r.stats();
        assert_eq!((s.unwritten, s.capacity, s.unadmitted), (2, 2, 1));
        assert_eq!((s.written, s.writes), (0, 0));
        log.flush();
        assert!(r.wait_for_room(std::time::Duration::from_secs(30)).await);
        let s = r.stats();
        assert_eq!((s.unwritten, s.unadmitted, s.written), (0, 1, 2));
        assert!(s.writes >= 1, "{s:?}");
    }

    /// A full recorder makes the data path wait, not fail, while the
    /// writer catches up; with nothing written the wait ends at its limit.
    #[tokio::test]
    async fn waiting_for_room_ends_when_the_writer_stores_a_batch() {
        let (_dir, store) = temp_store().await;
        let (r, _) = Recorder::with_limit(store, 2);
        let mut log = r.session_log("s");
        for seq in 1..=2 {
            let a = r.admit().expect("room");
            log.push(a, &entry(seq, "SELECT 1"));
        }
        assert!(r.is_full());
        assert!(
            !r.wait_for_room(std::time::Duration::from_millis(50)).await,
            "nothing was sent to the writer, so no room came free"
        );
        let waiter = {
            let r = r.clone();
            tokio::spawn(async move { r.wait_for_room(std::time::Duration::from_secs(30)).await })
        };
        log.flush();
        assert!(
            waiter.await.expect("waiter"),
            "room after the batch was stored"
        );
        assert!(r.admit().is_some());
    }

    fn entry(seq: i64, sql: &str) -> crate::StatementEntry<'_> {
        crate::StatementEntry {
            seq,
            started_at: seq,
            duration_us: Some(3),
            sql,
            decision: "allow",
            rule: None,
            command: Some("SELECT 1"),
            rows: Some(1),
            error: None,
            ..Default::default()
        }
    }

    async fn wait_for_statements(store: &Store, id: &str, n: usize) -> Vec<crate::StatementRecord> {
        for _ in 0..500 {
            if let Some((_, st)) = store.get_session(id).await.expect("get")
                && st.len() >= n
            {
                return st;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the records of {id} never reached the store");
    }

    #[derive(Debug)]
    struct Names(Vec<String>);

    impl ColumnNames for Names {
        fn names(&self) -> &[String] {
            &self.0
        }
    }

    /// Records given as values are stored as the same records given as
    /// JSON, in the order they came, whichever way each came.
    #[tokio::test]
    async fn records_given_as_values_are_stored_as_those_given_as_json() {
        use gatehouse_core::policy::Verdict;
        let (_dir, store) = temp_store().await;
        let (r, _) = Recorder::with_limit(store.clone(), 100);
        for id in ["json", "values"] {
            r.record(RecordEvent::SessionStart(crate::tests::session_record(id)))
                .expect("start");
        }
        let mut sample = crate::ResultSample::default();
        sample.begin_row();
        sample.value(Some("a \"quoted\"\nvalue"));
        sample.value(None);
        sample.end_row();
        sample.truncated = true;
        let deny = Arc::new(Verdict::Deny {
            rule: "no-\"drops\"".into(),
            message: "m".into(),
        });
        let allow = Arc::new(Verdict::Allow { rule: None });
        let names = vec!["id".to_string(), "na\\me".to_string()];
        // (seq, sql, verdict, command, error, with columns and rows)
        type Case<'a> = (
            i64,
            &'a str,
            &'a Arc<Verdict>,
            Option<&'a str>,
            Option<&'a str>,
            bool,
        );
        let cases: Vec<Case<'_>> = vec![
            (1, "SELECT 'é\t'", &allow, Some("SELECT 1"), None, true),
            (
                2,
                "DROP TABLE t",
                &deny,
                None,
                Some("42501: refused \"here\""),
                false,
            ),
            (3, "", &allow, Some("EMPTY"), None, false),
            (
                4,
                "UPDATE t SET a = 1",
                &allow,
                Some("UPDATE 0"),
                None,
                true,
            ),
            // The same statements again, sharing their text and column
            // names with the records above (as a session's do): written
            // once per chunk and copied, the lines must not differ.
            (5, "SELECT 'é\t'", &allow, Some("SELECT 1"), None, true),
            (6, "SELECT 'é\t'", &allow, Some("SELECT 1"), None, false),
            (
                7,
                "UPDATE t SET a = 1",
                &allow,
                Some("UPDATE 0"),
                None,
                true,
            ),
            (8, "SELECT 'é\t'", &allow, Some("SELECT 1"), None, true),
        ];
        let mut texts: std::collections::HashMap<&str, Arc<str>> = Default::default();
        let shared_names: Arc<dyn ColumnNames> = Arc::new(Names(names.clone()));
        let empty = crate::ResultSample::default();
        let mut bound = crate::ResultSample::default();
        bound.push_row([Some("7"), None, Some("\\x00ff")]);
        bound.truncated = true;
        let mut as_json = r.session_log("json");
        let mut as_values = r.session_log("values");
        for (seq, sql, verdict, command, error, rows) in &cases {
            let result = if *rows { &sample } else { &empty };
            let columns = rows.then_some(names.as_slice());
            let params = (seq % 2 == 0).then_some(&bound);
            let entry = crate::StatementEntry {
                seq: *seq,
                started_at: 1_000 + seq,
                duration_us: Some(7 * seq),
                sql,
                params,
                params_truncated: params.is_some_and(|p| p.truncated),
                decision: verdict.label(),
                rule: verdict.rule(),
                command: *command,
                rows: Some(*seq),
                error: *error,
                columns,
                result: (!result.is_empty()).then_some(result),
                result_truncated: result.truncated,
            };
            as_json.push(r.admit().expect("room"), &entry);
            let record = Record {
                seq: *seq,
                started_at: 1_000 + seq,
                duration_us: 7 * seq,
                sql: texts.entry(sql).or_insert_with(|| Arc::from(*sql)).clone(),
                verdict: (*verdict).clone(),
                rows: *seq,
                error: error.map(str::to_string),
                columns: rows.then(|| shared_names.clone()),
            };
            if *seq == 3 {
                // One given as JSON among values: it keeps its place.
                as_values.push(r.admit().expect("room"), &entry);
            } else {
                as_values.push_record(r.admit().expect("room"), record, *command, result, params);
            }
        }
        drop(as_json);
        drop(as_values);
        let json = wait_for_statements(&store, "json", cases.len()).await;
        let values = wait_for_statements(&store, "values", cases.len()).await;
        let strip = |v: Vec<crate::StatementRecord>| {
            v.into_iter()
                .map(|mut s| {
                    s.session_id.clear();
                    s
                })
                .collect::<Vec<_>>()
        };
        let (json, values) = (strip(json), strip(values));
        assert_eq!(values, json);
        assert_eq!(
            values.iter().map(|s| s.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert_eq!(
            values[0].result,
            Some(vec![vec![Some("a \"quoted\"\nvalue".into()), None]])
        );
        assert!(values[0].result_truncated);
        assert_eq!(values[0].params, None);
        assert_eq!(
            values[1].params,
            Some(vec![Some("7".into()), None, Some("\\x00ff".into())])
        );
        assert!(values[1].params_truncated);
        assert_eq!(values[1].rule.as_deref(), Some("no-\"drops\""));
        assert_eq!(values[3].columns.as_deref(), Some(names.as_slice()));
        // In the chunk, in the order they came (not sorted on reading).
        let data: Vec<String> = sqlx::query_scalar(
            "SELECT data FROM session_chunks WHERE session_id = 'values' ORDER BY chunk",
        )
        .fetch_all(&store.pool)
        .await
        .expect("chunks");
        let seqs: Vec<i64> = data
            .concat()
            .lines()
            .map(|l| {
                serde_json::from_str::<crate::StatementRecord>(l)
                    .expect("a record")
                    .seq
            })
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 7, 8]);
        // Byte for byte what the data path writes as JSON.
        let as_json: Vec<String> = sqlx::query_scalar(
            "SELECT data FROM session_chunks WHERE session_id = 'json' ORDER BY chunk",
        )
        .fetch_all(&store.pool)
        .await
        .expect("chunks");
        assert_eq!(data.concat(), as_json.concat());
        // Once stored, all their room is free again (the writer frees it
        // just after the store has it).
        for _ in 0..500 {
            if r.in_flight.load(Ordering::Acquire) == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(r.in_flight.load(Ordering::Acquire), 0);
    }

    /// A stored chunk's buffer goes back for the next chunk, of this
    /// session or another.
    #[tokio::test]
    async fn stored_chunk_buffers_are_reused() {
        let (_dir, store) = temp_store().await;
        let (r, _) = Recorder::with_limit(store.clone(), 1000);
        r.record(RecordEvent::SessionStart(crate::tests::session_record("s")))
            .expect("start");
        let spares = || r.spare.lock().expect("lock").len();
        let mut log = r.session_log("s");
        log.push(r.admit().expect("room"), &entry(1, "SELECT 1"));
        let first = log.data.as_ptr();
        log.flush();
        wait_for_statements(&store, "s", 1).await;
        // The writer returns the buffer after it stored the batch.
        for _ in 0..500 {
            if spares() == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(spares(), 1, "the stored chunk's buffer is kept");
        let mut other = r.session_log("s");
        other.push(r.admit().expect("room"), &entry(2, "SELECT 2"));
        assert_eq!(other.data.as_ptr(), first, "the next chunk fills it again");
        assert_eq!(spares(), 0);
        assert!(other.data.starts_with("{\"seq\":2,"), "and starts empty");
    }

    /// Spare buffers are bounded in number and size: one grown by a huge
    /// statement is freed, not kept.
    #[test]
    fn spare_buffers_are_bounded() {
        let spare = Mutex::new(Vec::new());
        keep_spare(&spare, String::with_capacity(3 * CHUNK_BYTES));
        assert!(spare.lock().expect("lock").is_empty());
        for _ in 0..SPARE_BUFFERS + 3 {
            keep_spare(&spare, "kept".repeat(100));
        }
        let kept = spare.lock().expect("lock");
        assert_eq!(kept.len(), SPARE_BUFFERS);
        assert!(
            kept.iter().all(String::is_empty),
            "kept buffers are emptied"
        );
    }

    #[tokio::test]
    async fn session_logs_write_chunks_and_free_their_room_once_stored() {
        let (_dir, store) = temp_store().await;
        let (r, _) = Recorder::with_limit(store.clone(), CHUNK_STATEMENTS + 10);
        r.record(RecordEvent::SessionStart(crate::tests::session_record("s")))
            .expect("start");
        let mut log = r.session_log("s");
        let total = CHUNK_STATEMENTS + 5;
        let texts: Vec<String> = (1..=total).map(|i| format!("SELECT '{i}\n\"'")).collect();
        for (i, sql) in texts.iter().enumerate() {
            let a = r.admit().expect("room");
            log.push(a, &entry(i as i64 + 1, sql));
        }
        // A full chunk went at once; the rest wait in the log and hold their room.
        let stored = wait_for_statements(&store, "s", CHUNK_STATEMENTS).await;
        assert_eq!(stored.len(), CHUNK_STATEMENTS);
        assert!(!log.is_empty());
        let mut spare = Vec::new();
        while let Some(a) = r.admit() {
            spare.push(a);
        }
        assert_eq!(
            spare.len(),
            10 + CHUNK_STATEMENTS - 5,
            "5 records still hold room"
        );
        drop(spare);
        drop(log);
        let stored = wait_for_statements(&store, "s", total).await;
        assert_eq!(
            stored.iter().map(|s| s.sql.clone()).collect::<Vec<_>>(),
            texts,
            "every record, in order, text exactly as sent"
        );
        for _ in 0..500 {
            if r.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("stored records must free their room");
    }
}
