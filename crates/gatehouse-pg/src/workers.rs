//! Threads that run proxied sessions, one single-threaded runtime each.
//!
//! A session's two sockets (client and upstream) and both of its relay
//! directions live on one thread: a message arriving wakes a task on the
//! thread whose reactor saw it, never another worker. On the shared
//! work-stealing runtime idle workers were woken to look for work to steal
//! (0.34 futex calls per pgbench transaction); with these threads pgbench
//! -S throughput was higher with simple queries and about the same with
//! prepared statements (session 6 in docs/benchmarks.md). Sessions are
//! handed out round-robin at accept; the API, the recorder and the store
//! stay on the main runtime.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a stopping thread waits for its sessions to wind down (they
/// have been told to end) before it drops what is left.
const WIND_DOWN: Duration = Duration::from_secs(10);

/// A fixed set of session threads. They stop when [`Workers::stop`] is
/// called (or every clone is dropped) and their sessions have ended.
#[derive(Debug, Clone)]
pub struct Workers {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    handles: Vec<Handle>,
    next: AtomicUsize,
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Inner {
    fn stop(&self) {
        self.tracker.close();
        self.stop.cancel();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Workers {
    /// Starts `threads` session threads named `{name}-{n}`. With zero,
    /// sessions run on the caller's runtime instead.
    pub fn start(name: &str, threads: usize) -> std::io::Result<Self> {
        let tracker = TaskTracker::new();
        let stop = CancellationToken::new();
        let mut handles = Vec::new();
        for n in 0..threads {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            let (tracker, stop) = (tracker.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("{name}-{n}"))
                .spawn(move || {
                    rt.block_on(async {
                        stop.cancelled().await;
                        let _ = tokio::time::timeout(WIND_DOWN, tracker.wait()).await;
                    });
                })?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                handles,
                next: AtomicUsize::new(0),
                tracker,
                stop,
            }),
        })
    }

    /// The number of session threads for this machine: one per CPU.
    pub fn default_threads() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// Runs `session` on the next thread in turn. `session` is called
    /// there, so that the sockets it opens or adopts register with that
    /// thread's reactor.
    pub fn spawn<F, Fut>(&self, session: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let inner = &self.inner;
        let task = inner.tracker.track_future(async move { session().await });
        if inner.handles.is_empty() {
            tokio::spawn(task);
            return;
        }
        let i = inner.next.fetch_add(1, Ordering::Relaxed) % inner.handles.len();
        inner.handles[i].spawn(task);
    }

    /// Lets the threads end once their sessions have (at most after a
    /// grace period). New sessions are not expected after this.
    pub fn stop(&self) {
        self.inner.stop();
    }
}

/// Accepts clients on `listener` until `shutdown` resolves, and runs
/// `session` for each on the session threads (`what` names the protocol
/// in logs). Returns once no more clients are accepted.
pub async fn accept<F, Fut>(
    listener: tokio::net::TcpListener,
    workers: &Workers,
    shutdown: impl Future<Output = ()>,
    what: &'static str,
    session: F,
) where
    F: Fn(tokio::net::TcpStream, std::net::SocketAddr) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    // Taken off this runtime's reactor, and registered
                    // with the session thread's.
                    let tcp = match tcp.into_std() {
                        Ok(tcp) => tcp,
                        Err(e) => {
                            tracing::warn!(error = %e, "handing a {what} client over failed");
                            continue;
                        }
                    };
                    let session = session.clone();
                    workers.spawn(move || async move {
                        match tokio::net::TcpStream::from_std(tcp) {
                            Ok(tcp) => session(tcp, peer).await,
                            Err(e) => tracing::warn!(error = %e, "adopting a {what} client failed"),
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a {what} client failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or("").to_string()
    }

    /// Sessions go round-robin to the named threads; a socket accepted on
    /// the main runtime works on the session thread it is handed to.
    #[tokio::test]
    async fn sessions_run_on_their_threads_in_turn() {
        let workers = Workers::start("t-session", 2).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let w = workers.clone();
        let server = tokio::spawn(async move {
            accept(
                listener,
                &w,
                async {
                    let _ = stop_rx.await;
                },
                "test",
                move |mut tcp, _| {
                    let seen = seen_tx.clone();
                    async move {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut b = [0u8; 4];
                        tcp.read_exact(&mut b).await.unwrap();
                        tcp.write_all(thread_name().as_bytes()).await.unwrap();
                        let _ = seen.send(thread_name());
                    }
                },
            )
            .await;
        });
        let mut names = Vec::new();
        for _ in 0..4 {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(b"ping").await.unwrap();
            let mut reply = String::new();
            c.read_to_string(&mut reply).await.unwrap();
            names.push(reply);
            assert_eq!(seen_rx.recv().await.unwrap(), *names.last().unwrap());
        }
        assert_eq!(
            names,
            ["t-session-0", "t-session-1", "t-session-0", "t-session-1"]
        );
        let _ = stop_tx.send(());
        server.await.unwrap();
        workers.stop();
    }

    /// With no threads, sessions run on the caller's runtime.
    #[tokio::test]
    async fn zero_threads_runs_on_the_callers_runtime() {
        let workers = Workers::start("unused", 0).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        workers.spawn(move || async move {
            let _ = tx.send(thread_name());
        });
        // This test's runtime is single-threaded: the caller's thread.
        assert_eq!(rx.await.unwrap(), thread_name());
    }

    /// A stopped set of threads waits for its running sessions, then ends.
    #[test]
    fn stop_lets_running_sessions_finish() {
        let workers = Workers::start("t-stop", 1).unwrap();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        workers.spawn(move || async move {
            tokio::task::spawn_blocking(move || release_rx.recv())
                .await
                .unwrap()
                .unwrap();
            done_tx.send(()).unwrap();
        });
        workers.stop();
        release_tx.send(()).unwrap();
        done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the session ran to its end after stop");
    }
}
