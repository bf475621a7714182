//! A byte stream that is plain or TLS (as server towards clients, as
//! client towards upstreams), and packet I/O for the connection phase.
//!
//! During the connection phase packets are read with exact reads, never
//! past the packet's end: a client sends its TLS ClientHello right behind
//! its SSLRequest, and those bytes must still be in the socket when the
//! TLS acceptor takes it over.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

use crate::codec::{self, CodecError, HEADER_LEN, MAX_CHUNK};

pub enum MysqlStream<S = TcpStream> {
    Plain(S),
    /// TLS, Gatehouse being the server (towards clients).
    Server(Box<tokio_rustls::server::TlsStream<S>>),
    /// TLS, Gatehouse being the client (towards upstreams).
    Client(Box<tokio_rustls::client::TlsStream<S>>),
}

impl<S> MysqlStream<S> {
    pub fn is_tls(&self) -> bool {
        !matches!(self, Self::Plain(_))
    }
}

/// Names the kind of stream only: a TLS session's state is not for logs.
impl<S> std::fmt::Debug for MysqlStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Plain(_) => "MysqlStream::Plain",
            Self::Server(_) => "MysqlStream::Server(TLS)",
            Self::Client(_) => "MysqlStream::Client(TLS)",
        })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MysqlStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Server(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Client(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MysqlStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Server(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::Client(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Server(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Client(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Server(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Self::Client(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the peer closed the connection")]
    Closed,
    #[error("reading from the peer: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// One logical packet. Its payload is zeroed on drop and left out of
/// `Debug`: connection-phase packets may carry a password.
pub struct Packet {
    /// Sequence id of the first piece.
    pub seq: u8,
    /// Sequence id of the last piece; the reply takes the one after it.
    pub last_seq: u8,
    pub payload: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Packet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packet")
            .field("seq", &self.seq)
            .field("last_seq", &self.last_seq)
            .field("payload", &format_args!("[{} bytes]", self.payload.len()))
            .finish()
    }
}

impl Packet {
    pub fn next_seq(&self) -> u8 {
        self.last_seq.wrapping_add(1)
    }
}

/// Reads one logical packet (joining 16 MiB pieces) of at most `limit`
/// payload bytes, reading exactly its bytes. Each piece's length is
/// checked against the limit before its payload is read or allocated.
pub async fn read_packet<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    limit: usize,
) -> Result<Packet, ReadError> {
    let mut payload = Zeroizing::new(Vec::new());
    let mut first: Option<u8> = None;
    let mut last = 0u8;
    loop {
        let mut head = [0u8; HEADER_LEN];
        match r.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(ReadError::Closed);
            }
            Err(e) => return Err(e.into()),
        }
        let (n, seq) = codec::packet_header(&head).ok_or(CodecError::Malformed("packet header"))?;
        match first {
            None => first = Some(seq),
            Some(_) => {
                let expected = last.wrapping_add(1);
                if seq != expected {
                    return Err(CodecError::Sequence { expected, got: seq }.into());
                }
            }
        }
        last = seq;
        let total = payload.len().saturating_add(n);
        if total > limit {
            return Err(CodecError::TooLarge { len: total, limit }.into());
        }
        let at = payload.len();
        payload.resize(total, 0);
        match r.read_exact(&mut payload[at..]).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(ReadError::Closed);
            }
            Err(e) => return Err(e.into()),
        }
        if n < MAX_CHUNK {
            return Ok(Packet {
                seq: first.unwrap_or(seq),
                last_seq: last,
                payload,
            });
        }
    }
}

/// Writes `payload` as one packet starting at `seq`, then flushes (a TLS
/// stream may otherwise hold the bytes); returns the next sequence id.
pub async fn write_packet<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    seq: u8,
    payload: &[u8],
) -> std::io::Result<u8> {
    let mut out = BytesMut::with_capacity(payload.len() + HEADER_LEN);
    let next = codec::put_packet(&mut out, seq, payload);
    let written = async {
        w.write_all(&out).await?;
        w.flush().await
    }
    .await;
    // The packet may hold a password (an auth response).
    zeroize::Zeroize::zeroize(&mut out[..]);
    written.map(|()| next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn packets_are_read_exactly_and_limited() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let next = write_packet(&mut a, 3, b"secret-token\0")
            .await
            .expect("write");
        assert_eq!(next, 4);
        a.write_all(b"\x16\x03\x01")
            .await
            .expect("bytes after the packet");
        let p = read_packet(&mut b, 64).await.expect("read");
        assert_eq!((p.seq, p.last_seq, p.next_seq()), (3, 3, 4));
        assert_eq!(p.payload.as_slice(), b"secret-token\0");
        assert!(!format!("{p:?}").contains("secret"), "{p:?}");
        // What follows the packet is still in the stream (a TLS ClientHello
        // behind an SSLRequest must be).
        let mut rest = [0u8; 3];
        b.read_exact(&mut rest).await.expect("rest");
        assert_eq!(&rest, b"\x16\x03\x01");
        // Over the limit: refused from the header.
        write_packet(&mut a, 0, &[0; 65]).await.expect("write");
        assert!(matches!(
            read_packet(&mut b, 64).await,
            Err(ReadError::Codec(CodecError::TooLarge {
                len: 65,
                limit: 64
            }))
        ));
        assert_eq!(format!("{:?}", MysqlStream::Plain(b)), "MysqlStream::Plain");
        // A peer that hangs up before a packet: Closed.
        let (a, mut b) = tokio::io::duplex(64);
        drop(a);
        assert!(matches!(
            read_packet(&mut b, 64).await,
            Err(ReadError::Closed)
        ));
    }

    #[tokio::test]
    async fn split_packets_are_joined() {
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        let big = vec![7u8; MAX_CHUNK + 5];
        let writer = tokio::spawn(async move { write_packet(&mut a, 0, &big).await });
        let p = read_packet(&mut b, MAX_CHUNK + 5).await.expect("read");
        assert_eq!(writer.await.expect("task").expect("write"), 2);
        assert_eq!((p.seq, p.last_seq, p.payload.len()), (0, 1, MAX_CHUNK + 5));
    }
}
