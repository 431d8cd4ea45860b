//! Transport behaviour: origin checks, CORS, graceful shutdown (1001), idle sockets (4001),
//! the embedded web client.

use parley_e2e::{Backend, TestServer, WsClient, WsEvent, http};
use serde_json::json;

crate::on_both!(
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
        assert!(!r.body.is_empty());
    }
    server.stop().await;
}
