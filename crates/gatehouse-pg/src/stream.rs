//! A byte stream that is plain TCP or TLS (as server towards clients, as
//! client towards upstreams).

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

#[derive(Debug)]
pub enum PgStream {
    Plain(TcpStream),
    Server(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    Client(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// A session opened inside Gatehouse (the query API, MCP): an
    /// in-memory pipe, no network.
    Local(tokio::io::DuplexStream),
}

impl PgStream {
    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Server(_) | Self::Client(_))
    }

    /// The protocol agreed by ALPN in the TLS handshake, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match self {
            Self::Server(t) => t.get_ref().1.alpn_protocol(),
            Self::Client(t) => t.get_ref().1.alpn_protocol(),
            Self::Plain(_) | Self::Local(_) => None,
        }
    }
}

impl AsyncRead for PgStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Server(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Client(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Local(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PgStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Server(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::Client(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::Local(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Server(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Self::Client(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Self::Local(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Server(s) => s.is_write_vectored(),
            Self::Client(s) => s.is_write_vectored(),
            Self::Local(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Server(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Client(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Local(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Server(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Self::Client(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Self::Local(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Writes all of `buf`, then flushes. When the socket would block, a TLS
/// stream (tokio-rustls) reports bytes it only encrypted into its session as
/// written; they leave only on a later write or a flush, so without the flush
/// the peer may wait for them forever.
pub async fn write_flush<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    buf: &[u8],
) -> std::io::Result<()> {
    w.write_all(buf).await?;
    w.flush().await
}

/// The reading half of a [`PgStream`]. Plain TCP splits into independent
/// halves (no lock shared between the two directions); TLS needs the
/// session state of both, so its halves share it.
#[derive(Debug)]
pub enum PgReader {
    Plain(tokio::net::tcp::OwnedReadHalf),
    Tls(tokio::io::ReadHalf<PgStream>),
}

/// The writing half of a [`PgStream`]; see [`PgReader`].
#[derive(Debug)]
pub enum PgWriter {
    Plain(tokio::net::tcp::OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<PgStream>),
}

/// Splits a stream into its two directions.
pub fn split(s: PgStream) -> (PgReader, PgWriter) {
    match s {
        PgStream::Plain(tcp) => {
            let (r, w) = tcp.into_split();
            (PgReader::Plain(r), PgWriter::Plain(w))
        }
        tls => {
            let (r, w) = tokio::io::split(tls);
            (PgReader::Tls(r), PgWriter::Tls(w))
        }
    }
}

impl PgWriter {
    /// Writes all of `buf` and flushes it. A plain socket with room takes
    /// it in one non-blocking write, without the async write path (the
    /// common case on the data path); TLS, a full socket or a partial
    /// write go on the async way with what is left.
    pub async fn send(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let rest = match self {
            Self::Plain(s) => match s.try_write(buf) {
                Ok(n) if n == buf.len() => return Ok(()),
                Ok(n) => &buf[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => buf,
                Err(e) => return Err(e),
            },
            Self::Tls(_) => buf,
        };
        write_flush(self, rest).await
    }
}

impl AsyncRead for PgReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PgWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// More than a socket takes at once: the first write takes part, the
    /// rest goes the async way once the reader makes room, in order.
    #[tokio::test]
    async fn send_delivers_all_of_a_buffer_larger_than_the_socket_takes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (connected, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (_, mut w) = split(PgStream::Plain(connected.unwrap()));
        let (mut peer, _) = accepted.unwrap();
        let data: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8).collect();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            peer.read_to_end(&mut got).await.unwrap();
            got
        });
        w.send(&data).await.unwrap();
        w.send(b"").await.unwrap();
        w.send(b"end").await.unwrap();
        drop(w);
        let got = reader.await.unwrap();
        assert_eq!(got.len(), data.len() + 3);
        assert!(got[..data.len()] == data[..], "the bytes arrive in order");
        assert_eq!(&got[data.len()..], b"end");
    }
}
