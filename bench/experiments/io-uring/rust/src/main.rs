//! Experiment: a byte-for-byte relay between each client and a new
//! connection to 127.0.0.1:5432, on one thread, two tasks per client (the
//! shape of Gatehouse's session threads), with no parsing:
//!
//!   relay-experiment tokio PORT          tokio, current-thread (epoll)
//!   relay-experiment tokio-one PORT      the same, both directions of a
//!                                        client in one task
//!   relay-experiment monoio PORT         monoio on io_uring
//!   relay-experiment monoio-defer PORT   the same, ring set up with
//!                                        SINGLE_ISSUER | DEFER_TASKRUN
//!   relay-experiment monoio-adapted PORT monoio-defer behind the adapters
//!                                        Gatehouse would use (adapted.rs)
//!
//! With `RELAY_THREADS=N` (N > 1) each mode runs N such threads, and an
//! acceptor thread hands the clients to them in turn (as Gatehouse's
//! listener hands sessions to its session threads).
//!
//! It measures what the I/O runtime costs per pgbench transaction; it is
//! not part of Gatehouse.

mod adapted;

use std::io::Write;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;

use monoio::io::{AsyncReadRent, AsyncReadRentExt, AsyncWriteRent, AsyncWriteRentExt, Splitable};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(port)) = (args.get(1), args.get(2).and_then(|p| p.parse::<u16>().ok()))
    else {
        eprintln!(
            "usage: relay-experiment tokio|tokio-one|monoio|monoio-defer|monoio-adapted PORT"
        );
        std::process::exit(2);
    };
    let run: fn(Source) = match mode.as_str() {
        "tokio" => |s| on_tokio(s, false),
        "tokio-one" => |s| on_tokio(s, true),
        "monoio" => |s| on_monoio(s, false),
        "monoio-defer" => |s| on_monoio(s, true),
        "monoio-adapted" => adapted::run,
        _ => {
            eprintln!("unknown mode {mode}");
            std::process::exit(2);
        }
    };
    let threads: Vec<_> = sources(port)
        .into_iter()
        .map(|s| std::thread::spawn(move || run(s)))
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

/// Where a relay thread gets its clients: a listener of its own (one
/// thread), or its end of a socket pair on which the acceptor thread sends
/// the descriptor number of each client it hands to this thread.
pub enum Source {
    Listen(u16),
    Feed(UnixStream),
}

/// One source per relay thread (`RELAY_THREADS`, default 1); with more than
/// one, starts the acceptor thread that deals the clients out in turn.
fn sources(port: u16) -> Vec<Source> {
    let n: usize = std::env::var("RELAY_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    if n <= 1 {
        return vec![Source::Listen(port)];
    }
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind");
    let (mut feeds, mut out) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let (a, b) = UnixStream::pair().expect("socket pair");
        feeds.push(a);
        out.push(Source::Feed(b));
    }
    std::thread::spawn(move || {
        for (i, client) in listener.incoming().enumerate() {
            let Ok(client) = client else { continue };
            let fd = client.into_raw_fd();
            let n = feeds.len();
            let _ = feeds[i % n].write_all(&fd.to_le_bytes());
        }
    });
    out
}

/// A client's socket from the descriptor number the acceptor sent.
fn adopt(fd: [u8; 4]) -> std::net::TcpStream {
    // SAFETY: the acceptor gave up this descriptor (into_raw_fd) and sent
    // its number to this thread only.
    let s = unsafe { std::net::TcpStream::from_raw_fd(i32::from_le_bytes(fd)) };
    s.set_nonblocking(true).expect("non-blocking");
    s
}

/// The next client of a tokio relay thread.
async fn tokio_next(
    listener: &Option<tokio::net::TcpListener>,
    feed: &mut Option<tokio::net::UnixStream>,
) -> Option<tokio::net::TcpStream> {
    use tokio::io::AsyncReadExt;
    if let Some(l) = listener {
        return l.accept().await.ok().map(|(c, _)| c);
    }
    let mut fd = [0u8; 4];
    feed.as_mut()?.read_exact(&mut fd).await.ok()?;
    tokio::net::TcpStream::from_std(adopt(fd)).ok()
}

fn on_tokio(source: Source, one_task: bool) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let (listener, mut feed) = match source {
            Source::Listen(port) => (
                Some(
                    tokio::net::TcpListener::bind(("127.0.0.1", port))
                        .await
                        .expect("bind"),
                ),
                None,
            ),
            Source::Feed(f) => {
                f.set_nonblocking(true).expect("non-blocking");
                (
                    None,
                    Some(tokio::net::UnixStream::from_std(f).expect("feed")),
                )
            }
        };
        loop {
            let Some(c) = tokio_next(&listener, &mut feed).await else {
                if feed.is_some() {
                    return;
                }
                continue;
            };
            let Ok(u) = tokio::net::TcpStream::connect("127.0.0.1:5432").await else {
                continue;
            };
            let _ = (c.set_nodelay(true), u.set_nodelay(true));
            let (cr, cw) = c.into_split();
            let (ur, uw) = u.into_split();
            if one_task {
                // Polled together: either direction's wake-up polls both.
                tokio::task::spawn_local(async move {
                    tokio::join!(tokio_pipe(cr, uw), tokio_pipe(ur, cw));
                });
            } else {
                tokio::task::spawn_local(tokio_pipe(cr, uw));
                tokio::task::spawn_local(tokio_pipe(ur, cw));
            }
        }
    });
}

async fn tokio_pipe(mut r: tokio::net::tcp::OwnedReadHalf, w: tokio::net::tcp::OwnedWriteHalf) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // As Gatehouse's PgWriter: one non-blocking write, waiting only
        // when the socket is full.
        let mut off = 0;
        while off < n {
            match w.try_write(&buf[off..n]) {
                Ok(k) => off += k,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if w.writable().await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    }
}

fn on_monoio(source: Source, defer: bool) {
    let mut ring = io_uring::IoUring::builder();
    if defer {
        ring.setup_single_issuer().setup_defer_taskrun();
    }
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(1024)
        .uring_builder(ring)
        .build()
        .expect("runtime");
    rt.block_on(monoio_accept(source, |c, u| {
        let (cr, cw) = c.into_split();
        let (ur, uw) = u.into_split();
        monoio::spawn(monoio_pipe(cr, uw));
        monoio::spawn(monoio_pipe(ur, cw));
    }));
}

/// Takes clients from `source` until it ends, connects each to
/// 127.0.0.1:5432, and hands the pair (client, upstream) to `relay`.
pub async fn monoio_accept(
    source: Source,
    relay: impl Fn(monoio::net::TcpStream, monoio::net::TcpStream),
) {
    let (listener, mut feed) = match source {
        Source::Listen(port) => (
            Some(monoio::net::TcpListener::bind(format!("127.0.0.1:{port}")).expect("bind")),
            None,
        ),
        Source::Feed(f) => (
            None,
            Some(monoio::net::UnixStream::from_std(f).expect("feed")),
        ),
    };
    loop {
        let c = if let Some(l) = &listener {
            let Ok((c, _)) = l.accept().await else {
                continue;
            };
            c
        } else {
            let Some(f) = feed.as_mut() else { return };
            let (r, fd) = f.read_exact(vec![0u8; 4]).await;
            if r.is_err() {
                return;
            }
            let Ok(c) = monoio::net::TcpStream::from_std(adopt([fd[0], fd[1], fd[2], fd[3]]))
            else {
                continue;
            };
            c
        };
        let Ok(u) = monoio::net::TcpStream::connect("127.0.0.1:5432").await else {
            continue;
        };
        let _ = (c.set_nodelay(true), u.set_nodelay(true));
        relay(c, u);
    }
}

async fn monoio_pipe<R: AsyncReadRent, W: AsyncWriteRent>(mut r: R, mut w: W) {
    // Owned buffers: the kernel holds each while its operation runs.
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        let (res, b) = r.read(buf).await;
        let n = match res {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let (res, b) = w.write_all(monoio::buf::IoBufMut::slice_mut(b, ..n)).await;
        if res.is_err() {
            return;
        }
        buf = b.into_inner();
        buf.clear();
    }
}
