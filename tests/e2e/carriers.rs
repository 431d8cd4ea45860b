//! The two WebSocket carriers (`ws_carrier = direct`, the default, and `actix-ws`) behave the
//! same at the socket: chat, fragmented messages, control frames, bad frames and their close
//! codes, bursts larger than one write batch, refused upgrades with their HTTP errors, and a
//! first frame pipelined behind the handshake. Each scenario runs on both, on SQLite (the
//! carrier does not touch the database; the rest of the suite covers both databases on the
//! default carrier).

use parley_e2e::{Backend, TestServer, WsClient, http, unique};
use parley_server::WsCarrier;
use serde_json::{Value, json};
use std::collections::HashSet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

crate::on_both_carriers!(
    chat_and_bursts_arrive_whole_and_in_order,
    fragments_control_frames_and_bad_frames,
    refused_upgrades_get_http_errors,
    a_frame_pipelined_behind_the_handshake_is_read,
    the_django_tutorial_dialect_on_both_paths,
    a_client_that_pings_but_never_reads_is_dropped,
    close_codes_of_the_clients_making,
);

async fn start(carrier: WsCarrier) -> TestServer {
    start_tuned(carrier, |_| {}).await
}

/// [`start`] with more settings changed by `tweak`.
async fn start_tuned(
    carrier: WsCarrier,
    tweak: impl FnOnce(&mut parley_server::Settings),
) -> TestServer {
    TestServer::start_with(Backend::Sqlite, |s| {
        s.ws_carrier = carrier;
        s.max_frame_bytes = 4096;
        s.message_rate = 100_000.0;
        s.message_burst = 100_000.0;
        tweak(s);
    })
    .await
}

/// More messages than one write batch (128) sent back to back, with a ping and a bad frame
/// among them: every member gets each message exactly once, in id order, the sender gets an
/// answer to every frame in frame order, and the socket stays healthy.
async fn chat_and_bursts_arrive_whole_and_in_order(carrier: WsCarrier) {
    // The burst is stored and fanned out in runs of up to 128: with the default mailbox of
    // 100, whether the reader keeps up depended on scheduling (the slow-consumer close is
    // tested on its own). This test is about wholeness and order.
    let server = start_tuned(carrier, |s| s.layer_capacity = 1_000).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = format!("burst-{}", unique());
    server.create_room(&alice, &room).await;
    let mut a = WsClient::connect(server.addr, &alice).await;
    let mut b = WsClient::connect(server.addr, &bob).await;
    for (ws, tag) in [(&mut a, "ja"), (&mut b, "jb")] {
        let joined = ws.ask(json!({"type": "join", "room": room}), tag).await;
        assert_eq!(joined["type"], "joined", "{joined}");
    }

    // Written together, so the server reads runs of them at once: the sends of a run are
    // stored together, and the ping and the bad frame in the middle are answered in place.
    const N: usize = 300;
    let frames = (0..N).flat_map(|i| {
        let send =
            json!({"type": "send", "room": room, "body": format!("m{i}"), "ref": format!("s{i}")});
        let extra = match i {
            100 => Some(Message::text(
                json!({"type": "ping", "ref": "p100"}).to_string(),
            )),
            200 => Some(Message::text("{")),
            _ => None,
        };
        extra.into_iter().chain([Message::text(send.to_string())])
    });
    a.send_together(frames.collect::<Vec<_>>()).await;
    let mut last_id = 0;
    let mut bodies = HashSet::new();
    while bodies.len() < N {
        let m = b.next_of("message").await;
        let id = m["id"].as_i64().expect("id");
        assert!(id > last_id, "ids out of order: {id} after {last_id}");
        last_id = id;
        assert!(
            bodies.insert(m["body"].as_str().expect("body").to_owned()),
            "{m}"
        );
    }
    // Alice gets an answer to each frame, in frame order (her own connection is skipped by
    // the room's fan-out: the acknowledgement is her copy).
    let mut answers = Vec::new();
    while answers.len() < N + 2 {
        let v = a.next_json().await;
        match v["type"].as_str() {
            Some("message") => answers.push(v["ref"].as_str().expect("ref").to_owned()),
            Some("pong") => answers.push(v["ref"].as_str().expect("ref").to_owned()),
            Some("error") => answers.push(v["code"].as_str().expect("code").to_owned()),
            _ => {}
        }
    }
    let expected: Vec<String> = (0..N)
        .flat_map(|i| {
            let extra = match i {
                100 => Some("p100".to_owned()),
                200 => Some("invalid_json".to_owned()),
                _ => None,
            };
            extra.into_iter().chain([format!("s{i}")])
        })
        .collect();
    assert_eq!(answers, expected);
    let pong = b.ask(json!({"type": "ping"}), "still-there").await;
    assert_eq!(pong["type"], "pong", "{pong}");
}

/// A text message in three fragments is one frame to the engine; a client ping gets its
/// pong; binary gets an error frame; text that is not UTF-8 closes with 1007, a frame over
/// the hard limit with 1009.
async fn fragments_control_frames_and_bad_frames(carrier: WsCarrier) {
    let server = start(carrier).await;
    let alice = server.user("alice").await;
    let mut ws = WsClient::connect(server.addr, &alice).await;

    let parts: [&[u8]; 3] = [b"{\"type\":", b"\"ping\",\"ref\"", b":\"fragmented\"}"];
    ws.send_raw(Message::Frame(Frame::message(
        parts[0].to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await;
    ws.send_raw(Message::Frame(Frame::message(
        parts[1].to_vec(),
        OpCode::Data(Data::Continue),
        false,
    )))
    .await;
    ws.send_raw(Message::Frame(Frame::message(
        parts[2].to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .await;
    let pong = ws.next_json().await;
    assert_eq!(
        (pong["type"].as_str(), pong["ref"].as_str()),
        (Some("pong"), Some("fragmented")),
        "{pong}"
    );

    ws.send_raw(Message::Ping(b"are you there".to_vec().into()))
        .await;
    loop {
        match ws.next_message().await {
            Some(Message::Pong(payload)) => {
                assert_eq!(&payload[..], b"are you there");
                break;
            }
            Some(Message::Ping(_)) => continue,
            other => panic!("expected a pong, got {other:?}"),
        }
    }

    ws.send_raw(Message::binary(vec![1u8, 2, 3])).await;
    let e = ws.next_json().await;
    assert_eq!(e["code"], "binary_not_supported", "{e}");

    ws.send_raw(Message::Frame(Frame::message(
        vec![b'{', 0xff, 0xfe, b'}'],
        OpCode::Data(Data::Text),
        true,
    )))
    .await;
    let (code, _) = ws.closed().await;
    assert_eq!(code, 1007, "text that is not UTF-8");

    let mut ws = WsClient::connect(server.addr, &alice).await;
    ws.send_raw(Message::text("a".repeat(4096 * 4 + 1))).await;
    let (code, _) = ws.closed().await;
    assert_eq!(code, 1009, "a frame over the hard limit");
}

/// A client that closes gets 1000 back; frames that break the WebSocket protocol close the
/// socket with 1002: a client frame without a mask, and a continuation frame with no
/// message begun.
async fn close_codes_of_the_clients_making(carrier: WsCarrier) {
    use parley_e2e::raw;
    let server = start(carrier).await;
    let alice = server.user("alice").await;
    let ping = br#"{"type":"ping"}"#;
    let unmasked = [&[0x81, ping.len() as u8][..], ping].concat();
    let orphan = [&raw::frame_header(0x0, true, ping.len() as u64)[..], ping].concat();
    for (what, frame) in [("unmasked", unmasked), ("orphan continuation", orphan)] {
        let mut stream = raw::ws_handshake(server.addr, &alice).await;
        // The socket works until then.
        let good = [&raw::frame_header(0x1, true, ping.len() as u64)[..], ping].concat();
        stream.write_all(&good).await.unwrap();
        stream.write_all(&frame).await.unwrap();
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).await.unwrap();
        assert_eq!(head[0], 0x81, "{what}: the pong comes first");
        let mut pong = vec![0u8; usize::from(head[1] & 0x7F)];
        stream.read_exact(&mut pong).await.unwrap();
        assert!(String::from_utf8_lossy(&pong).contains("pong"), "{what}");
        let code = raw::read_close(&mut stream, parley_e2e::WAIT).await;
        assert_eq!(code, Some(1002), "{what}");
    }
    let mut stream = raw::ws_handshake(server.addr, &alice).await;
    let normal = 1000u16.to_be_bytes();
    let close = [&raw::frame_header(0x8, true, 2)[..], &normal].concat();
    stream.write_all(&close).await.unwrap();
    let code = raw::read_close(&mut stream, parley_e2e::WAIT).await;
    assert_eq!(code, Some(1000), "the answer to a normal close");
    server.stop().await;
}

/// The raw bytes of an upgrade request for `path`, plus extra header lines.
fn upgrade_request(addr: std::net::SocketAddr, path: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// A refused upgrade is a complete HTTP response with the REST API's error body.
async fn refused_upgrades_get_http_errors(carrier: WsCarrier) {
    let server = TestServer::start_with(Backend::Sqlite, |s| {
        s.ws_carrier = carrier;
        s.allowed_origins = vec!["http://app.example".into()];
    })
    .await;
    let alice = server.user("alice").await;

    let r = http::raw_request(server.addr, &upgrade_request(server.addr, "/ws", "")).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.error_code(), "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    // Refused upgrades carry the request id like every other answer (kept from the request
    // when it sends a plain one).
    assert!(
        r.header("x-request-id").is_some_and(|id| id.len() >= 16),
        "{:?}",
        r.headers
    );
    let r = http::raw_request(
        server.addr,
        &upgrade_request(server.addr, "/ws", "x-request-id: trace-42\r\n"),
    )
    .await;
    assert_eq!(
        (r.status, r.header("x-request-id")),
        (401, Some("trace-42"))
    );

    let r = http::raw_request(
        server.addr,
        &upgrade_request(server.addr, "/ws?token=forged.token.here", ""),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.error_code(), "token_invalid");

    let r = http::raw_request(
        server.addr,
        &upgrade_request(
            server.addr,
            &format!("/ws?token={alice}"),
            "origin: http://evil.example\r\n",
        ),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.error_code(), "origin_not_allowed");

    let r = http::raw_request(
        server.addr,
        &upgrade_request(
            server.addr,
            &format!("/ws/chat/Bad%20Name?token={alice}"),
            "",
        ),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_code(), "invalid_room_name");

    let r = http::raw_request(
        server.addr,
        &upgrade_request(server.addr, &format!("/ws/nowhere?token={alice}"), ""),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);

    // And a good one still works.
    let ok = WsClient::try_connect(
        server.addr,
        &format!("/ws?token={alice}"),
        &[("origin", "http://app.example")],
    )
    .await;
    assert!(ok.is_ok(), "allowed origin refused: {:?}", ok.err());
}

/// A client that sends its first frame in the same packet as the handshake (without waiting
/// for the 101) is served: the frame is not lost with actix-http's read buffer.
async fn a_frame_pipelined_behind_the_handshake_is_read(carrier: WsCarrier) {
    let server = start(carrier).await;
    let alice = server.user("alice").await;
    let mut bytes = upgrade_request(server.addr, &format!("/ws?token={alice}"), "");
    let payload = br#"{"type":"ping","ref":"early"}"#;
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    bytes.push(0x81);
    bytes.push(0x80 | u8::try_from(payload.len()).expect("short payload"));
    bytes.extend_from_slice(&mask);
    bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));

    let mut tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    tcp.write_all(&bytes).await.expect("write");
    let mut got = Vec::new();
    let reply = async {
        let mut buf = [0u8; 1024];
        loop {
            let n = tcp.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
            let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let frame = &got[end + 4..];
            // An unmasked server text frame with a 7-bit length.
            if frame.len() >= 2 && frame.len() >= 2 + usize::from(frame[1] & 0x7f) {
                return (
                    String::from_utf8_lossy(&got[..end]).to_string(),
                    frame[0],
                    frame[2..2 + usize::from(frame[1] & 0x7f)].to_vec(),
                );
            }
        }
    };
    let (head, opcode, text) = tokio::time::timeout(parley_e2e::WAIT, reply)
        .await
        .expect("no reply to the pipelined frame");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(opcode, 0x81, "a final text frame");
    let pong: Value = serde_json::from_slice(&text).expect("JSON");
    assert_eq!(
        (pong["type"].as_str(), pong["ref"].as_str()),
        (Some("pong"), Some("early")),
        "{pong}"
    );
}

/// `/ws/chat/{room}` with and without the trailing slash the tutorial's JavaScript adds: the
/// tutorial's own `{"message", "username"}` frames are sends, and every `message` frame on
/// such a socket carries `message` and `username`, whoever sent it. By default a tutorial
/// socket gets chat only (a tutorial page shows every frame as a chat line); `?frames=all`
/// adds Parley's own. An empty message is an error frame, not a close. A request that is no
/// handshake creates no room.
async fn the_django_tutorial_dialect_on_both_paths(carrier: WsCarrier) {
    let server = start(carrier).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let suffix = unique();
    let room = format!("tut-{suffix}");
    let mut b = WsClient::try_connect(
        server.addr,
        &format!("/ws/chat/{room}/?token={bob}&frames=all"),
        &[],
    )
    .await
    .expect("tutorial socket with the slash");
    assert_eq!(b.next_of("joined").await["room"], room.as_str());
    let mut a = WsClient::try_connect(
        server.addr,
        &format!("/ws/chat/Tut-{suffix}?token={alice}"),
        &[],
    )
    .await
    .expect("tutorial socket without the slash");

    // Alice's arrival reaches bob (all frames); alice, chat-only, gets nothing but chat.
    let presence = b.next_json().await;
    assert_eq!(
        (presence["type"].as_str(), presence["user"].as_str()),
        (Some("presence"), Some("alice"))
    );
    a.send(json!({"message": "hello bob", "username": "not-alice"}))
        .await;
    for (who, ws) in [("alice", &mut a), ("bob", &mut b)] {
        let got = ws.next_json().await;
        assert_eq!(got["type"], "message", "{who}: {got}");
        assert_eq!(got["message"], "hello bob", "{who}: {got}");
        assert_eq!(got["username"], "alice", "{who}: {got}");
    }
    b.send(json!({"message": "hello alice", "username": "bob"}))
        .await;
    let got = a.next_json().await;
    assert_eq!(
        (got["message"].as_str(), got["username"].as_str()),
        (Some("hello alice"), Some("bob")),
        "{got}"
    );

    b.send(json!({"message": ""})).await;
    let refused = b.next_of("error").await;
    assert_eq!(refused["code"], "invalid_field", "{refused}");
    assert_eq!(b.ask(json!({"type": "ping"}), "p").await["type"], "pong");

    let r = http::get(
        server.addr,
        &format!("/ws/chat/{room}?frames=some&token={alice}"),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "invalid_field"),
        "{}",
        r.body
    );
    let never = format!("never-{suffix}");
    let r = http::get(
        server.addr,
        &format!("/ws/chat/{never}/?token={alice}"),
        None,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_code(), "not_a_websocket");
    let r = http::get(server.addr, &format!("/api/rooms/{never}"), Some(&alice)).await;
    assert_eq!(
        r.status, 404,
        "a refused handshake created the room: {}",
        r.body
    );
    server.stop().await;
}

/// A client that keeps pinging but never reads fills the server's send buffer with pongs; the
/// server gives up on a write after the ping timeout and drops it, freeing the user's socket
/// slot (before, the pong write had no timeout and the connection stayed forever, "online").
async fn a_client_that_pings_but_never_reads_is_dropped(carrier: WsCarrier) {
    use std::time::{Duration, Instant};
    let server = TestServer::start_with(Backend::Sqlite, |s| {
        s.ws_carrier = carrier;
        s.ws_ping_interval_secs = 1;
        s.ws_ping_timeout_secs = 2;
        s.max_connections_per_user = 1;
    })
    .await;
    let alice = server.user("alice").await;
    let mut ws = WsClient::connect_slow(server.addr, &alice).await;
    let ping = Message::Ping(vec![7u8; 125].into());
    // Ping until the server, blocked on pongs nobody reads, stops taking the pings.
    let started = Instant::now();
    let mut sent = 0u64;
    loop {
        match tokio::time::timeout(Duration::from_millis(500), ws.try_send(ping.clone())).await {
            Ok(true) => sent += 1,
            Ok(false) | Err(_) => break,
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server kept reading {sent} pings"
        );
    }
    // Its one socket slot comes free once the server has given up on it.
    let path = format!("/ws?token={alice}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match WsClient::try_connect(server.addr, &path, &[]).await {
            Ok(_) => break,
            Err(status) => {
                assert_eq!(status, 429, "only the slot should refuse");
                assert!(
                    Instant::now() < deadline,
                    "the reading-nothing socket still holds the slot after {sent} pings"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    drop(ws);
    server.stop().await;
}
