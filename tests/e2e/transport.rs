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
    // Every file of the repository's web/ is served at its path, as it is on disk.
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    let mut files = vec![("/".to_owned(), web.join("index.html"))];
    let mut dirs = vec![web.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().unwrap().to_str().unwrap().starts_with('.') {
                continue; // editors' files, never served
            } else if path.is_dir() {
                dirs.push(path);
            } else {
                let url = path
                    .strip_prefix(&web)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .replace('\\', "/");
                files.push((format!("/{url}"), path));
            }
        }
    }
    assert!(files.iter().any(|(url, _)| url == "/js/main.js"));
    for (url, path) in &files {
        let kind = match path.extension().and_then(|e| e.to_str()) {
            Some("html") => "text/html",
            Some("js") => "text/javascript",
            Some("css") => "text/css",
            other => panic!("{url}: no expected type for {other:?}"),
        };
        let r = http::get(server.addr, url, None).await;
        assert_eq!(r.status, 200, "{url}");
        assert!(
            r.header("content-type").unwrap().starts_with(kind),
            "{url}: {:?}",
            r.header("content-type")
        );
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{url}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{url}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{url}");
        assert_eq!(
            r.header("content-security-policy"),
            Some("frame-ancestors 'none'"),
            "{url}"
        );
        assert_eq!(r.body, std::fs::read_to_string(path).unwrap(), "{url}");
    }
    // A path that is no file is the API's JSON 404, whatever the method.
    for (method, url) in [
        ("GET", "/js/nope.js"),
        ("GET", "/app.js"),
        ("POST", "/nope"),
    ] {
        let r = http::request(server.addr, method, url, None, None, &[]).await;
        assert_eq!(r.status, 404, "{method} {url}");
        assert_eq!(r.error_code(), "not_found", "{method} {url}");
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
