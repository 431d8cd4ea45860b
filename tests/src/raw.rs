//! Raw sockets for the hardening tests, where a well-behaved client library would not do:
//! WebSocket frames whose headers declare more than is sent, fragments, HTTP requests that
//! trickle in a byte at a time, connections from a chosen local address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Connects to `addr` from `local` (any port), e.g. `127.0.0.2` to look like another client
/// to per-address limits.
pub async fn connect_from(local: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match local {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(addr).await
}

/// Opens the chat socket at `/ws` by hand: the stream right after the `101`.
pub async fn ws_handshake(addr: SocketAddr, token: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write handshake");
    // Byte by byte up to the blank line: nothing after the head may be swallowed.
    let mut head = Vec::new();
    let read = async {
        while !head.ends_with(b"\r\n\r\n") {
            let byte = stream.read_u8().await.expect("read handshake answer");
            head.push(byte);
        }
    };
    tokio::time::timeout(crate::WAIT, read)
        .await
        .expect("no handshake answer");
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101 "), "upgrade refused: {head}");
    stream
}

/// The header of a masked client frame (mask `0`, so the payload goes as is) with `opcode`,
/// FIN set or not, declaring `len` bytes of payload, whatever follows it.
pub fn frame_header(opcode: u8, fin: bool, len: u64) -> Vec<u8> {
    let mut header = vec![opcode | if fin { 0x80 } else { 0 }];
    if len < 126 {
        header.push(0x80 | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        header.push(0x80 | 126);
        header.extend_from_slice(&len.to_be_bytes());
    } else {
        header.push(0x80 | 127);
        header.extend_from_slice(&len.to_be_bytes());
    }
    header.extend_from_slice(&[0, 0, 0, 0]);
    header
}

/// Reads server frames until a close frame arrives within `within`: its code (1005 for a
/// close without one). `None`: no close frame in time, or the stream ended without one.
pub async fn read_close(stream: &mut TcpStream, within: Duration) -> Option<u16> {
    let read = async {
        loop {
            let mut head = [0u8; 2];
            stream.read_exact(&mut head).await.ok()?;
            let len = match head[1] & 0x7F {
                126 => u64::from(stream.read_u16().await.ok()?),
                127 => stream.read_u64().await.ok()?,
                short => u64::from(short),
            };
            let mut payload = vec![0u8; usize::try_from(len).ok()?];
            stream.read_exact(&mut payload).await.ok()?;
            if head[0] & 0x0F == 0x8 {
                return Some(match payload.get(..2) {
                    Some(code) => u16::from_be_bytes([code[0], code[1]]),
                    None => 1005,
                });
            }
        }
    };
    tokio::time::timeout(within, read).await.ok().flatten()
}

/// Waits until the server closes `stream` (end of stream or reset), reading and dropping
/// what it sends, for at most `within`. What arrived, or `None` if it stayed open.
pub async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read).await.ok()?;
    Some(got)
}
