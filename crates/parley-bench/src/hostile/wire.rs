//! Raw sockets for the probes: connecting from a chosen loopback address, a hand-made
//! WebSocket handshake and frames (so a probe can send what no well-behaved library would: a
//! header declaring 2^40 bytes, a message that never ends, pings from a client that never
//! reads), a server-frame reader that only looks for the close code, and one-shot HTTP; and,
//! for the well-behaved clients of the probes and of `scale`, a joined Parley socket.

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Opens a TCP connection to `server` (`ip:port`) from `local` (any port).
pub async fn connect_from(server: &str, local: IpAddr) -> Result<TcpStream> {
    let addr: SocketAddr = server
        .parse()
        .with_context(|| format!("server address {server:?} (ip:port)"))?;
    let socket = TcpSocket::new_v4()?;
    // Floods open tens of thousands of connections from one address: let a port whose last
    // connection is in TIME_WAIT be bound again.
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::new(local, 0))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Like [`connect_from`], with a small receive buffer: a client that does not read fills it
/// (and the server's send buffer) quickly.
pub async fn connect_small_buffer(server: &str, local: IpAddr) -> Result<TcpStream> {
    let addr: SocketAddr = server.parse()?;
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    socket.bind(SocketAddr::new(local, 0))?;
    Ok(socket.connect(addr).await?)
}

/// Reads an HTTP response head (up to the blank line, at most 16 KiB) and returns its status.
pub async fn read_status(stream: &mut TcpStream) -> Result<u16> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            bail!("closed before the response head");
        }
        head.push(byte[0]);
        if head.len() > 16 * 1024 {
            bail!("response head too long");
        }
    }
    status_of(&head).context("bad status line")
}

/// The status code of a response head (`HTTP/1.1 429 ...`).
pub fn status_of(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head.get(..head.len().min(64))?).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// A WebSocket upgrade of `/ws` with `token` (empty: none). Returns the stream and the
/// handshake's status (101 when upgraded).
pub async fn ws_handshake(
    server: &str,
    local: IpAddr,
    token: &str,
    small: bool,
) -> Result<(TcpStream, u16)> {
    let mut stream = if small {
        connect_small_buffer(server, local).await?
    } else {
        connect_from(server, local).await?
    };
    let auth = if token.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {token}\r\n")
    };
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n"
    );
    stream.write_all(req.as_bytes()).await?;
    let status = read_status(&mut stream).await?;
    Ok((stream, status))
}

/// Opcodes used here.
pub const TEXT: u8 = 0x1;
/// Continuation frame.
pub const CONTINUATION: u8 = 0x0;
/// Ping frame.
pub const PING: u8 = 0x9;

/// A client frame header: `fin`, `opcode`, a payload length of `len`, masked with the
/// all-zero key (valid, and the payload that follows is sent as is).
pub fn frame_header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(14);
    h.push(if fin { 0x80 } else { 0 } | opcode);
    if len < 126 {
        h.push(0x80 | len as u8);
    } else if len <= u64::from(u16::MAX) {
        h.push(0x80 | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(0x80 | 127);
        h.extend_from_slice(&len.to_be_bytes());
    }
    h.extend_from_slice(&[0, 0, 0, 0]);
    h
}

/// A whole masked client frame.
pub fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = frame_header(fin, opcode, payload.len() as u64);
    f.extend_from_slice(payload);
    f
}

/// Reads server frames until a close frame or the end of the stream; returns how the
/// connection ended: the close code (`"1009"`), `"eof"` or `"reset"`.
pub async fn read_until_close<R: AsyncReadExt + Unpin>(r: &mut R) -> String {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    loop {
        // Parse every complete frame at the front of the buffer.
        loop {
            if buf.len() < 2 {
                break;
            }
            let opcode = buf[0] & 0x0f;
            let short = u64::from(buf[1] & 0x7f);
            let (len, start) = match short {
                126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
                127 if buf.len() >= 10 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&buf[2..10]);
                    (u64::from_be_bytes(b), 10)
                }
                126 | 127 => break,
                n => (n, 2),
            };
            let end = start + len as usize;
            if buf.len() < end {
                break;
            }
            if opcode == 0x8 {
                return if len >= 2 {
                    u16::from_be_bytes([buf[start], buf[start + 1]]).to_string()
                } else {
                    "close without code".to_owned()
                };
            }
            buf.drain(..end);
        }
        match r.read(&mut chunk).await {
            Ok(0) => return "eof".to_owned(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return "reset".to_owned(),
        }
    }
}

/// `GET /healthz` on a new connection with a 2 s bound: true when answered 200.
pub async fn healthz(server: &str) -> bool {
    let probe = async {
        let mut s = TcpStream::connect(server).await?;
        s.write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        read_status(&mut s).await
    };
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(2), probe).await,
        Ok(Ok(200))
    )
}

/// A client WebSocket over plain TCP.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a Parley socket (`/ws`) as `token` from `local`, joins `room` and waits, at most
/// `within`, for `joined`.
pub async fn open_joined(
    server: &str,
    local: IpAddr,
    token: &str,
    room: &str,
    within: Duration,
) -> Result<Ws> {
    let mut req = format!("ws://{server}/ws").into_client_request()?;
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    let tcp = connect_from(server, local).await?;
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(
        req,
        tokio_tungstenite::MaybeTlsStream::Plain(tcp),
        Some(crate::bare::lean_config()),
    )
    .await?;
    ws.send(Message::text(format!(
        r#"{{"type":"join","room":"{room}"}}"#
    )))
    .await?;
    await_joined(&mut ws, within).await?;
    Ok(ws)
}

/// Reads `ws` until its `joined` frame (an `error` frame or a close first is an error), for at
/// most `within`; frames before it are dropped.
pub async fn await_joined(ws: &mut Ws, within: Duration) -> Result<()> {
    let wait = async {
        while let Some(frame) = ws.next().await {
            if let Message::Text(t) = frame? {
                if t.starts_with(r#"{"type":"joined""#) {
                    return Ok(());
                }
                if t.starts_with(r#"{"type":"error""#) {
                    bail!("join refused: {}", t.as_str());
                }
            }
        }
        bail!("closed before joined")
    };
    tokio::time::timeout(within, wait)
        .await
        .context("join timed out")?
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic in a test is a failed assertion
mod tests {
    use super::*;

    #[test]
    fn headers_use_the_shortest_length_encoding_and_a_mask() {
        assert_eq!(frame_header(true, TEXT, 5), vec![0x81, 0x85, 0, 0, 0, 0]);
        assert_eq!(
            frame_header(false, TEXT, 300),
            vec![0x01, 0xfe, 1, 44, 0, 0, 0, 0]
        );
        let big = frame_header(true, TEXT, 1 << 40);
        assert_eq!(&big[..2], &[0x81, 0xff]);
        assert_eq!(&big[2..10], &(1u64 << 40).to_be_bytes());
    }

    #[tokio::test]
    async fn the_close_code_is_found_after_other_frames() {
        // A text frame "hi", then a close frame with 1009.
        let bytes: Vec<u8> = vec![0x81, 2, b'h', b'i', 0x88, 2, 0x03, 0xf1];
        let mut r = &bytes[..];
        assert_eq!(read_until_close(&mut r).await, "1009");
        let mut empty: &[u8] = &[0x81, 1, b'x'];
        assert_eq!(read_until_close(&mut empty).await, "eof");
    }

    #[test]
    fn status_lines_parse() {
        assert_eq!(status_of(b"HTTP/1.1 429 Too Many Requests\r\n"), Some(429));
        assert_eq!(status_of(b"garbage"), None);
    }
}
