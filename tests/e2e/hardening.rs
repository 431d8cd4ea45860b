//! Hostile clients at the transport (issue 14), with real sockets written by hand: WebSocket
//! frame headers that declare more than the hard limit. The figures under load (the server's
//! memory) are in `bins/parley-server/tests/`, against the real binary.

use parley_e2e::raw::{self, frame_header, read_close};
use parley_e2e::{Backend, TestServer, WAIT, WsClient};
use parley_server::WsCarrier;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `on_both_carriers!(scenario)` makes `scenario::direct` and `scenario::actix_ws`.
macro_rules! on_both_carriers {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn direct() {
                    super::$name(parley_server::WsCarrier::Direct).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn actix_ws() {
                    super::$name(parley_server::WsCarrier::ActixWs).await;
                }
            }
        )*
    };
}

on_both_carriers!(oversized_frames_and_messages_are_refused_at_the_header);

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
