//! Transport behaviour: origin checks, CORS, graceful shutdown (1001), idle sockets (4001),
//! the embedded web client.

use parley_e2e::{Backend, TestServer, WsClient, WsEvent, http};
use serde_json::json;

crate::on_both!(
    slow_consumer_is_dropped,
    origins_and_cors,
    shutdown_closes_sockets_with_going_away,
    silent_sockets_are_closed,
    web_client_is_served
);

async fn origins_and_cors(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        s.allowed_origins = vec!["http://app.example".into()];
        s.cors_origins = vec!["http://app.example".into()];
    })
    .await;
    let alice = server.user("alice").await;
    let addr = server.addr;
    let path = format!("/ws?token={alice}");
    assert_eq!(
        WsClient::try_connect(addr, &path, &[("origin", "http://evil.example")])
            .await
            .err(),
        Some(403)
    );
    let same = format!("http://{addr}");
    assert!(
        WsClient::try_connect(addr, &path, &[("origin", &same)])
            .await
            .is_ok()
    );
    assert!(
        WsClient::try_connect(addr, &path, &[("origin", "http://app.example")])
            .await
            .is_ok()
    );

    // CORS preflight from the allowed origin.
    let r = http::request(
        addr,
        "OPTIONS",
        "/api/rooms",
        None,
        None,
        &[
            ("origin", "http://app.example"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization, content-type",
            ),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.headers);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://app.example")
    );
    // A request from an unlisted origin gets no CORS grant.
    let r = http::request(
        addr,
        "GET",
        "/api/me",
        Some(&alice),
        None,
        &[("origin", "http://evil.example")],
    )
    .await;
    assert_ne!(
        r.header("access-control-allow-origin"),
        Some("http://evil.example")
    );
    // Same-origin pages (which send Origin on POST) are served.
    let r = http::request(
        addr,
        "GET",
        "/api/me",
        Some(&alice),
        None,
        &[("origin", &same)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    server.stop().await;
}

async fn shutdown_closes_sockets_with_going_away(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let mut ws = WsClient::connect(server.addr, &alice).await;
    assert_eq!(ws.ask(json!({"type": "ping"}), "p").await["type"], "pong");
    let stopping = tokio::spawn(server.stop());
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 1001, "{reason}");
    stopping.await.unwrap();
}

async fn silent_sockets_are_closed(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        s.ws_ping_interval_secs = 1;
        s.ws_ping_timeout_secs = 2;
    })
    .await;
    let alice = server.user("alice").await;
    let mut ws = WsClient::connect(server.addr, &alice).await;
    // Stay silent (not reading means not answering pings) past the timeout.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let code = loop {
        match ws.next_event().await {
            WsEvent::Closed(code, _) => break code,
            WsEvent::Json(_) => continue,
        }
    };
    assert_eq!(code, parley_actix::CLOSE_PING_TIMEOUT);
    server.stop().await;
}

async fn web_client_is_served(backend: Backend) {
    let server = TestServer::start(backend).await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/app.css", "text/css"),
    ] {
        let r = http::get(server.addr, path, None).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type").unwrap().starts_with(kind),
            "{path}"
        );
        assert_eq!(r.header("cache-control"), Some("no-cache"));
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert!(!r.body.is_empty());
    }
    server.stop().await;
}

async fn slow_consumer_is_dropped(backend: Backend) {
    // 600 × 16 KB: more than the kernel can buffer for one socket (tcp_wmem max is 4 MB
    // here, and the reader's window is tiny), so Bob's queue must overflow.
    const SENT: usize = 600;
    let server = TestServer::start_with(backend, |s| {
        s.layer_capacity = 16;
        s.max_message_chars = 16_000;
        s.message_rate = 10_000.0;
        s.message_burst = 10_000.0;
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = format!("slow-{}", parley_e2e::unique());
    server.create_room(&alice, &room).await;
    let mut a = WsClient::connect(server.addr, &alice).await;
    let mut b = WsClient::connect_slow(server.addr, &bob).await;
    a.ask(json!({"type": "join", "room": room}), "j").await;
    b.ask(json!({"type": "join", "room": room}), "j").await;

    // Bob stops reading while Alice posts; her own acks keep coming.
    let body = "x".repeat(16_000);
    for i in 0..SENT {
        let ack = a
            .ask(
                json!({"type": "send", "room": room, "body": body}),
                &format!("s{i}"),
            )
            .await;
        assert_eq!(ack["type"], "message", "{ack}");
    }
    // Bob reads again: what was queued, then the close for a slow consumer.
    let mut received = 0;
    let code = loop {
        match b.next_event().await {
            WsEvent::Json(v) if v["type"] == "message" => received += 1,
            WsEvent::Json(_) => {}
            WsEvent::Closed(code, _) => break code,
        }
    };
    assert_eq!(
        code,
        parley_actix::CLOSE_SLOW_CONSUMER,
        "after {received} messages"
    );
    assert!(received < SENT, "{received}");
    // Alice and the server are fine.
    assert_eq!(a.ask(json!({"type": "ping"}), "p").await["type"], "pong");
    assert_eq!(http::get(server.addr, "/readyz", None).await.status, 200);
    server.stop().await;
}
