//! `monoio-adapted`: the io_uring relay shaped as Gatehouse would run it, to
//! learn what the adaptation costs before Gatehouse is moved onto a ring.
//! Compared with `monoio-defer` (owned buffers used directly):
//!
//! - reads go through a tokio `AsyncRead` adapter ([`RingReader`]): the
//!   relay's loops poll reads beside signals and timers, and a read on a
//!   ring must not be dropped once submitted (its bytes would be lost), so
//!   the adapter keeps the submitted read (a boxed future that owns the
//!   socket half and the buffer) across polls and copies what it read out;
//! - writes copy the output into an owned buffer ([`RingWriter::send`]);
//! - the upstream task waits in a `poll_fn` on a shared flag (the relay's
//!   signals), the read, and a timer (the recorder's idle flush, armed after
//!   each response and re-armed once it fires). The timer is the ring
//!   thread's own (monoio's): a tokio timer, driven by a tokio multi-thread
//!   runtime on other threads whose handle the ring thread had entered (as
//!   Gatehouse's main runtime would be), cost the gain at 32 clients (each
//!   firing wakes the ring from another thread); the handle stays entered,
//!   as Gatehouse's other tokio uses on the thread would need it;
//! - the client task hands each request over to the upstream task through a
//!   locked queue, as the relay's pending statements are.
//!
//! Two switches take parts away, to see what each costs: `NO_TIMER=1` never
//! arms the timer; `PLAIN=1` leaves the upstream task only the adapters (no
//! signals, timer or queue).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

type ReadOp =
    Pin<Box<dyn Future<Output = (OwnedReadHalf<TcpStream>, monoio::BufResult<usize, Vec<u8>>)>>>;

/// A ring socket's reading half behind tokio's `AsyncRead`.
struct RingReader {
    half: Option<OwnedReadHalf<TcpStream>>,
    op: Option<ReadOp>,
    buf: Vec<u8>,
    at: usize,
}

impl RingReader {
    fn new(half: OwnedReadHalf<TcpStream>) -> Self {
        Self {
            half: Some(half),
            op: None,
            buf: Vec::with_capacity(16 * 1024),
            at: 0,
        }
    }
}

impl AsyncRead for RingReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        if me.at < me.buf.len() {
            let n = out.remaining().min(me.buf.len() - me.at);
            out.put_slice(&me.buf[me.at..me.at + n]);
            me.at += n;
            return Poll::Ready(Ok(()));
        }
        if me.op.is_none() {
            let Some(mut half) = me.half.take() else {
                return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
            };
            let mut buf = std::mem::take(&mut me.buf);
            buf.clear();
            me.op = Some(Box::pin(async move {
                let r = half.read(buf).await;
                (half, r)
            }));
        }
        let Some(op) = me.op.as_mut() else {
            unreachable!()
        };
        let (half, (res, buf)) = match op.as_mut().poll(cx) {
            Poll::Ready(done) => done,
            Poll::Pending => return Poll::Pending,
        };
        me.op = None;
        me.half = Some(half);
        me.buf = buf;
        me.at = 0;
        let n = res?;
        let n = n.min(out.remaining());
        out.put_slice(&me.buf[..n]);
        me.at = n;
        Poll::Ready(Ok(()))
    }
}

/// A ring socket's writing half: each send copies into an owned buffer.
struct RingWriter {
    half: OwnedWriteHalf<TcpStream>,
    buf: Vec<u8>,
}

impl RingWriter {
    async fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.extend_from_slice(data);
        let (r, buf) = self.half.write_all(buf).await;
        self.buf = buf;
        r.map(|_| ())
    }
}

pub fn run(source: crate::Source) {
    // Gatehouse's main runtime (one for all relay threads): it drives the
    // timers.
    static MAIN: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    let handle = MAIN
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime")
        })
        .handle()
        .clone();
    let mut ring = io_uring::IoUring::builder();
    ring.setup_single_issuer().setup_defer_taskrun();
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(1024)
        .uring_builder(ring)
        .enable_timer()
        .build()
        .expect("monoio runtime");
    let _entered = handle.enter();
    rt.block_on(crate::monoio_accept(source, |c, u| {
        let (cr, cw) = c.into_split();
        let (ur, uw) = u.into_split();
        let pending = Arc::new(Mutex::new(VecDeque::new()));
        let signal = Arc::new(AtomicBool::new(false));
        monoio::spawn(client_to_upstream(
            RingReader::new(cr),
            RingWriter {
                half: uw,
                buf: Vec::with_capacity(16 * 1024),
            },
            pending.clone(),
        ));
        monoio::spawn(upstream_to_client(
            RingReader::new(ur),
            RingWriter {
                half: cw,
                buf: Vec::with_capacity(16 * 1024),
            },
            pending,
            signal,
        ));
    }));
}

async fn client_to_upstream(
    mut client: RingReader,
    mut up: RingWriter,
    pending: Arc<Mutex<VecDeque<usize>>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.lock().expect("pending").push_back(n);
        if up.send(&buf[..n]).await.is_err() {
            return;
        }
    }
}

enum Wake {
    Signal,
    Flush,
    Read(std::io::Result<usize>),
}

async fn upstream_to_client(
    mut up: RingReader,
    mut client: RingWriter,
    pending: Arc<Mutex<VecDeque<usize>>>,
    signal: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let idle_flush = monoio::time::sleep(Duration::ZERO);
    let mut idle_flush = std::pin::pin!(idle_flush);
    let (mut armed, mut registered) = (false, false);
    let timer = std::env::var_os("NO_TIMER").is_none();
    if std::env::var_os("PLAIN").is_some() {
        // The adapters alone: no signals, timer or queue.
        loop {
            let n = match up.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if client.send(&buf[..n]).await.is_err() {
                return;
            }
        }
    }
    loop {
        let woke = std::future::poll_fn(|cx| {
            if signal.load(Ordering::Acquire) {
                return Poll::Ready(Wake::Signal);
            }
            let mut rb = ReadBuf::new(&mut buf);
            if let Poll::Ready(r) = Pin::new(&mut up).poll_read(cx, &mut rb) {
                return Poll::Ready(Wake::Read(r.map(|()| rb.filled().len())));
            }
            if armed {
                let due = if registered {
                    idle_flush.is_elapsed()
                } else {
                    registered = true;
                    idle_flush.as_mut().poll(cx).is_ready()
                };
                if due {
                    return Poll::Ready(Wake::Flush);
                }
            }
            Poll::Pending
        })
        .await;
        let n = match woke {
            Wake::Signal => return,
            Wake::Flush => {
                armed = false;
                continue;
            }
            Wake::Read(Ok(0) | Err(_)) => return,
            Wake::Read(Ok(n)) => n,
        };
        pending.lock().expect("pending").pop_front();
        if client.send(&buf[..n]).await.is_err() {
            return;
        }
        if timer && !armed {
            idle_flush
                .as_mut()
                .reset(monoio::time::Instant::now() + Duration::from_millis(5));
            armed = true;
            registered = false;
        }
    }
}
