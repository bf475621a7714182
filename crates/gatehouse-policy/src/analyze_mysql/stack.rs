//! Threads with a large stack for the MySQL analysis.
//!
//! sqlparser parses and walks its tree by recursion, and its frames are
//! large (in a debug build, a level of nested derived tables takes about
//! 160 KiB), so even inputs within its recursion limit can overflow a
//! caller's stack (a tokio worker has 2 MiB). The analysis therefore runs
//! on a few long-lived threads with a 256 MiB stack (reserved, not
//! committed: only the pages used take memory), and its callers wait for
//! the answer. Nothing is kept between jobs.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

/// The stack of each analysis thread.
pub(crate) const STACK_SIZE: usize = 256 << 20;

type Job = Box<dyn FnOnce() + Send + 'static>;

static POOL: OnceLock<Option<Sender<Job>>> = OnceLock::new();

thread_local! {
    /// This thread is one of the pool's (a job that needs the pool again
    /// runs in place instead of waiting for itself).
    static IN_POOL: Cell<bool> = const { Cell::new(false) };
}

fn pool() -> Option<&'static Sender<Job>> {
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let n = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
        let mut started = 0;
        for k in 0..n {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("gatehouse-sql-{k}"))
                .stack_size(STACK_SIZE)
                .spawn(move || work(&rx));
            if spawned.is_ok() {
                started += 1;
            }
        }
        (started > 0).then_some(tx)
    })
    .as_ref()
}

fn work(rx: &Mutex<Receiver<Job>>) {
    IN_POOL.with(|f| f.set(true));
    loop {
        let job = {
            let guard = match rx.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            guard.recv()
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

/// Runs `f` on a thread with a [`STACK_SIZE`] stack and returns its
/// result; `None` when no such thread could be started. A panic in `f` is
/// raised again here.
pub(crate) fn on_large_stack<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    if IN_POOL.with(Cell::get) {
        return Some(f());
    }
    let tx = pool()?;
    let (rtx, rrx) = mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        let r = catch_unwind(AssertUnwindSafe(f));
        let _ = rtx.send(r);
    });
    tx.send(job).ok()?;
    match rrx.recv() {
        Ok(Ok(v)) => Some(v),
        Ok(Err(panic)) => resume_unwind(panic),
        Err(_) => None,
    }
}
