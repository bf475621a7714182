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
//! It measures what the I/O runtime costs per pgbench transaction; it is
//! not part of Gatehouse.

mod adapted;

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(port)) = (args.get(1), args.get(2).and_then(|p| p.parse::<u16>().ok()))
    else {
        eprintln!(
            "usage: relay-experiment tokio|tokio-one|monoio|monoio-defer|monoio-adapted PORT"
        );
        std::process::exit(2);
    };
    match mode.as_str() {
        "tokio" => on_tokio(port, false),
        "tokio-one" => on_tokio(port, true),
        "monoio" => on_monoio(port, false),
        "monoio-defer" => on_monoio(port, true),
        "monoio-adapted" => adapted::run(port),
        _ => {
            eprintln!("unknown mode {mode}");
            std::process::exit(2);
        }
    }
}

fn on_tokio(port: u16, one_task: bool) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        loop {
            let Ok((c, _)) = l.accept().await else {
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

fn on_monoio(port: u16, defer: bool) {
    let mut ring = io_uring::IoUring::builder();
    if defer {
        ring.setup_single_issuer().setup_defer_taskrun();
    }
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(1024)
        .uring_builder(ring)
        .build()
        .expect("runtime");
    rt.block_on(monoio_accept(port, |c, u| {
        let (cr, cw) = c.into_split();
        let (ur, uw) = u.into_split();
        monoio::spawn(monoio_pipe(cr, uw));
        monoio::spawn(monoio_pipe(ur, cw));
    }));
}

/// Accepts clients on `port` forever, connects each to 127.0.0.1:5432, and
/// hands the pair (client, upstream) to `relay`.
async fn monoio_accept(port: u16, relay: impl Fn(monoio::net::TcpStream, monoio::net::TcpStream)) {
    let l = monoio::net::TcpListener::bind(format!("127.0.0.1:{port}")).expect("bind");
    loop {
        let Ok((c, _)) = l.accept().await else {
            continue;
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
