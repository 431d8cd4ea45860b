//! Bad input over the socket: each gets its error and the connection stays healthy; a
//! typing flood is rate-limited, only what passed is relayed, and the server stays healthy.

use parley_e2e::{Backend, TestServer, WsClient, http, unique};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

crate::on_both!(
    bad_frames_get_errors_and_the_socket_survives,
    typing_flood_is_limited
);

/// The socket still works: a ping gets its pong.
async fn assert_alive(ws: &mut WsClient, tag: &str) {
    let pong = ws.ask(json!({"type": "ping"}), tag).await;
    assert_eq!(pong["type"], "pong", "{pong}");
}

async fn bad_frames_get_errors_and_the_socket_survives(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.max_frame_bytes = 4096).await;
    let alice = server.user("alice").await;
    let mut ws = WsClient::connect(server.addr, &alice).await;

    ws.send_raw(Message::text("{not json")).await;
    let e = ws.next_json().await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("invalid_json")),
        "{e}"
    );
    assert_alive(&mut ws, "p1").await;

    let e = ws.ask(json!({"type": "teleport", "room": "x"}), "u").await;
    assert_eq!(e["code"], "unknown_type", "{e}");
    assert_alive(&mut ws, "p2").await;

    let e = ws
        .ask(json!({"type": "join", "room": "x", "colour": "red"}), "f")
        .await;
    assert_eq!(e["code"], "unknown_field", "{e}");

    // Over the engine's limit but under the transport's hard limit: an error frame.
    let big = json!({"type": "send", "room": "x", "body": "a".repeat(5000)}).to_string();
    ws.send_raw(Message::text(big)).await;
    let e = ws.next_json().await;
    assert_eq!(e["code"], "frame_too_large", "{e}");
    assert_alive(&mut ws, "p3").await;

    ws.send_raw(Message::binary(vec![1u8, 2, 3])).await;
    let e = ws.next_json().await;
    assert_eq!(e["code"], "binary_not_supported", "{e}");
    assert_alive(&mut ws, "p4").await;

    // Past the hard limit (4 × the engine's): the connection is closed with 1009.
    let huge = "a".repeat(4096 * 4 + 1);
    ws.send_raw(Message::text(huge)).await;
    let (code, _) = ws.closed().await;
    assert_eq!(code, 1009);

    // The server is fine, and a new socket works.
    assert_eq!(http::get(server.addr, "/healthz", None).await.status, 200);
    let mut ws = WsClient::connect(server.addr, &alice).await;
    assert_alive(&mut ws, "p5").await;
    server.stop().await;
}

async fn typing_flood_is_limited(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = format!("flood-{}", unique());
    server.create_room(&alice, &room).await;
    let mut a = WsClient::connect(server.addr, &alice).await;
    let mut b = WsClient::connect(server.addr, &bob).await;
    a.ask(json!({"type": "join", "room": room}), "j").await;
    b.ask(json!({"type": "join", "room": room}), "j").await;

    // Typing is limited per user (default: 2 a second, bursts of 5): a flood is answered
    // with `rate_limited` errors (in order), and only what passed is relayed.
    const FLOOD: usize = 300;
    const BURST: usize = 5;
    let started = std::time::Instant::now();
    for i in 0..FLOOD {
        a.send(json!({"type": "typing", "room": room, "ref": format!("t{i}")}))
            .await;
    }
    a.send(json!({"type": "ping", "ref": "end"})).await;
    let mut limited = Vec::new();
    loop {
        let v = a.next_json().await;
        if v["ref"] == "end" {
            break;
        }
        if v["type"] == "error" && v["code"] == "rate_limited" {
            limited.push(v["ref"].as_str().unwrap().to_owned());
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let let_through = FLOOD - limited.len();
    assert!(
        (0..BURST).all(|i| !limited.contains(&format!("t{i}"))),
        "the burst of {BURST} was refused: {limited:?}"
    );
    let allowance = BURST as f64 + 2.0 * elapsed + 1.0;
    assert!(
        (let_through as f64) <= allowance,
        "{let_through} of {FLOOD} typing frames let through, allowance {allowance:.1}"
    );

    // Bob got exactly the typing frames that passed: a message Alice sends after the flood
    // is the next thing after them (one connection's frames reach members in order).
    a.ask(
        json!({"type": "send", "room": room, "body": "still here"}),
        "s",
    )
    .await;
    let mut relayed = 0;
    loop {
        let v = b.next_json().await;
        match v["type"].as_str() {
            Some("typing") if v["user"] == "alice" => relayed += 1,
            Some("message") => {
                assert_eq!(v["body"], "still here");
                break;
            }
            _ => {}
        }
    }
    assert_eq!(relayed, let_through, "typing frames relayed to bob");
    // His socket works, and the server stays healthy.
    let pong = b.ask(json!({"type": "ping"}), "bob-ping").await;
    assert_eq!(pong["type"], "pong");
    assert_eq!(http::get(server.addr, "/readyz", None).await.status, 200);
    server.stop().await;
}
