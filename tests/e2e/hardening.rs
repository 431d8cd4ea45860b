//! Hostile clients at the transport (issue 14, items 1 and 2), with real sockets written by
//! hand: WebSocket frame headers that declare more than the hard limit, and HTTP clients
//! that send slowly, not at all, or too many connections from one address. The figures under
//! load (the server's memory and descriptors) are in `bins/parley-server/tests/`, against the
//! real binary.
//!
//! Nothing here measures time to assert a bound: a slow client is cut off if its connection
//! closes before its trickle would have ended.

use parley_e2e::raw::{self, connect_from, frame_header, read_close, read_until_closed};
use parley_e2e::{Backend, TestServer, WAIT, WsClient, http};
use parley_server::{Settings, WsCarrier};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

crate::on_both_carriers!(
    oversized_frames_and_messages_are_refused_at_the_header,
    websockets_leave_the_per_address_count,
);

/// The engine's frame limit in these tests: the hard limit is four times this.
const MAX_FRAME: usize = 4096;
const HARD_LIMIT: u64 = 4 * MAX_FRAME as u64;

/// How long a refusal at the header may take to arrive (nothing else is in flight).
const CLOSE_WAIT: Duration = Duration::from_secs(5);

async fn oversized_frames_and_messages_are_refused_at_the_header(carrier: WsCarrier) {
    let server = TestServer::start_with(Backend::Sqlite, |s| {
        s.ws_carrier = carrier;
        s.max_frame_bytes = MAX_FRAME;
    })
    .await;
    let token = server.user("mallory").await;

    // One frame declaring 2^40 bytes: closed with 1009 on its header alone.
    let mut ws = raw::ws_handshake(server.addr, &token).await;
    ws.write_all(&frame_header(0x1, true, 1 << 40))
        .await
        .unwrap();
    assert_eq!(
        read_close(&mut ws, CLOSE_WAIT).await,
        Some(1009),
        "a 2^40-byte frame header must be refused before its payload"
    );

    // A fragmented message: a first fragment within the limit, then a continuation whose
    // header takes the message over it. Closed before the continuation's payload is sent.
    let mut ws = raw::ws_handshake(server.addr, &token).await;
    let first = HARD_LIMIT - 1000;
    ws.write_all(&frame_header(0x1, false, first))
        .await
        .unwrap();
    ws.write_all(&vec![b'a'; first as usize]).await.unwrap();
    ws.write_all(&frame_header(0x0, true, 2000)).await.unwrap();
    assert_eq!(
        read_close(&mut ws, CLOSE_WAIT).await,
        Some(1009),
        "a continuation over the message limit must be refused at its header"
    );

    // A continuation declaring 2^40 bytes.
    let mut ws = raw::ws_handshake(server.addr, &token).await;
    ws.write_all(&frame_header(0x1, false, 10)).await.unwrap();
    ws.write_all(b"0123456789").await.unwrap();
    ws.write_all(&frame_header(0x0, false, 1 << 40))
        .await
        .unwrap();
    assert_eq!(read_close(&mut ws, CLOSE_WAIT).await, Some(1009));

    // Messages up to the limit still pass, whole or in fragments.
    let mut ws = WsClient::connect(server.addr, &token).await;
    let reply = ws
        .ask(serde_json::json!({"type": "ping"}), "still-alive")
        .await;
    assert_eq!(reply["type"], "pong");
    let mut ws = raw::ws_handshake(server.addr, &token).await;
    let ping = br#"{"type":"ping","ref":"fragmented"}"#;
    let (a, b) = ping.split_at(10);
    ws.write_all(&frame_header(0x1, false, a.len() as u64))
        .await
        .unwrap();
    ws.write_all(a).await.unwrap();
    ws.write_all(&frame_header(0x0, true, b.len() as u64))
        .await
        .unwrap();
    ws.write_all(b).await.unwrap();
    let mut head = [0u8; 2];
    tokio::time::timeout(WAIT, ws.read_exact(&mut head))
        .await
        .expect("no answer to a fragmented ping")
        .unwrap();
    assert_eq!(head[0] & 0x0F, 0x1, "a text frame answers");
    server.stop().await;
}

async fn websockets_leave_the_per_address_count(carrier: WsCarrier) {
    let server = TestServer::start_with(Backend::Sqlite, |s| {
        s.ws_carrier = carrier;
        s.http_max_connections_per_address = 2;
    })
    .await;
    let token = server.user("alice").await;
    // More sockets than the cap, all from 127.0.0.1, kept open...
    let mut sockets = Vec::new();
    for _ in 0..5 {
        sockets.push(WsClient::connect(server.addr, &token).await);
    }
    // ...and HTTP from that address is still served.
    assert_eq!(http::get(server.addr, "/healthz", None).await.status, 200);
    for (i, ws) in sockets.iter_mut().enumerate() {
        let reply = ws
            .ask(serde_json::json!({"type": "ping"}), &format!("p{i}"))
            .await;
        assert_eq!(reply["type"], "pong");
    }
    server.stop().await;
}

/// A server with short HTTP timeouts (seconds).
async fn server_with(tweak: impl FnOnce(&mut Settings)) -> TestServer {
    TestServer::start_with(Backend::Sqlite, |s| {
        s.http_head_timeout_secs = 1;
        s.http_request_timeout_secs = 1;
        s.http_keep_alive_secs = 1;
        tweak(s);
    })
    .await
}

/// Sends `bytes` one at a time, `gap` apart, reading what the server says in between;
/// stops when the server closes. What the server sent and how many bytes went, or `None` if
/// the connection outlived the trickle (the server waited for all of it).
async fn trickle(stream: &mut TcpStream, bytes: &[u8], gap: Duration) -> Option<(String, usize)> {
    let mut got = Vec::new();
    for (sent, byte) in bytes.iter().enumerate() {
        if stream.write_all(std::slice::from_ref(byte)).await.is_err() {
            return Some((String::from_utf8_lossy(&got).into_owned(), sent));
        }
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(gap, stream.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0) | Err(_)) => return Some((String::from_utf8_lossy(&got).into_owned(), sent)),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    None
}

/// A byte every 100 ms: 40 bytes take 4 s, four times the request timeout of these tests.
const GAP: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_bodies_get_408_and_are_closed() {
    let server = server_with(|_| {}).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let body = format!(
        r#"{{"username": "nobody", "password": "{}"}}"#,
        "x".repeat(20)
    );
    let head = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (answer, sent) = trickle(&mut stream, body.as_bytes(), GAP)
        .await
        .expect("a body sent a byte at a time was waited for to its end");
    assert!(sent < body.len(), "closed only after the whole body");
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_first_heads_get_408_and_are_closed() {
    let server = server_with(|_| {}).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = b"GET /healthz HTTP/1.1\r\nHost: parley\r\nAccept: */*\r\n\r\n";
    let (answer, sent) = trickle(&mut stream, head, GAP)
        .await
        .expect("a first head sent a byte at a time was waited for to its end");
    assert!(sent < head.len());
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_of_later_requests_get_408_and_are_closed() {
    let server = server_with(|s| s.http_keep_alive_secs = 30).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // A first request, answered: the connection is kept alive...
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: parley\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200 "));
    // ...and the head of the second trickles in. actix-http's head timeout covers only a
    // connection's first request.
    let head = b"GET /healthz HTTP/1.1\r\nHost: parley\r\nAccept: */*\r\n\r\n";
    let (answer, sent) = trickle(&mut stream, head, GAP)
        .await
        .expect("a head sent a byte at a time was waited for to its end");
    assert!(sent < head.len());
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_bodies_and_idle_connections_are_closed() {
    let server = server_with(|_| {}).await;
    // A chunked body to a route that never reads it: actix-http drains it for as long as it
    // comes, so it must be cut off by the deadline.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: parley\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunks = b"1\r\na\r\n".repeat(10);
    let (answer, sent) = trickle(&mut stream, &chunks, GAP)
        .await
        .expect("an unread chunked body held the connection to its end");
    assert!(sent < chunks.len());
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");

    // Idle after an answer: closed at the keep-alive timeout.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: parley\r\n\r\n")
        .await
        .unwrap();
    let got = read_until_closed(&mut stream, WAIT)
        .await
        .expect("an idle keep-alive connection stayed open");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200 "));

    // A connection that sends nothing at all: closed at the head timeout.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    read_until_closed(&mut stream, WAIT)
        .await
        .expect("a silent connection stayed open");
    server.stop().await;
}

/// `GET /healthz` on a connection from `local`; the status, or `None` if refused.
async fn healthz_from(local: IpAddr, addr: SocketAddr) -> Option<String> {
    let mut stream = connect_from(local, addr).await.ok()?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: parley\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let got = read_until_closed(&mut stream, WAIT).await?;
    Some(String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_address_cap_get_429_and_are_closed() {
    let server = TestServer::start_with(Backend::Sqlite, |s| {
        s.http_max_connections_per_address = 3;
    })
    .await;
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    // Three idle connections hold the address's allowance (a request proves each is in).
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect_from(local, server.addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: parley\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200 "));
        held.push(stream);
    }
    // A fourth is refused, typed, and closed without waiting for its request.
    let mut refused = connect_from(local, server.addr).await.unwrap();
    let got = read_until_closed(&mut refused, WAIT)
        .await
        .expect("a connection over the cap stayed open");
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 429 "), "{got}");
    assert!(got.contains(r#""code":"rate_limited""#), "{got}");
    assert!(got.to_ascii_lowercase().contains("retry-after: 1"), "{got}");
    // Another address is served meanwhile.
    let answer = healthz_from(other, server.addr).await.expect("refused");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    // A closed connection gives its place back.
    drop(held.pop());
    let mut answer = String::new();
    for _ in 0..50 {
        answer = healthz_from(local, server.addr).await.unwrap_or_default();
        if answer.starts_with("HTTP/1.1 200 ") {
            break;
        }
        // The server sees the close a moment after the client.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    server.stop().await;
}
