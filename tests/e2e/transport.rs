//! Transport behaviour: origin checks, CORS, graceful shutdown (1001), idle sockets (4001),
//! a channel layer failing for good (1011), the embedded web client.

use async_trait::async_trait;
use parley_e2e::{Backend, TestServer, WsClient, WsEvent, http, raw};
use parley_layer::{
    ChannelLayer, ChannelName, GroupName, GroupSendReport, InMemoryLayer, LayerError, Message,
};
use parley_server::WsCarrier;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

crate::on_both!(
    slow_consumer_is_dropped,
    origins_and_cors,
    shutdown_closes_sockets_with_going_away,
    silent_sockets_are_closed,
    web_client_is_served
);

/// A layer failing for good closes the sockets with 1011, on both carriers.
mod a_layer_that_fails_for_good_closes_sockets_with_1011 {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn direct() {
        super::a_layer_that_fails_for_good_closes_sockets_with_1011(
            parley_server::WsCarrier::Direct,
        )
        .await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn actix_ws() {
        super::a_layer_that_fails_for_good_closes_sockets_with_1011(
            parley_server::WsCarrier::ActixWs,
        )
        .await;
    }
}

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
    // A request or a preflight from an unlisted origin gets no CORS grant at all: neither
    // its own origin nor `*`.
    for (method, headers) in [
        ("GET", vec![("origin", "http://evil.example")]),
        (
            "OPTIONS",
            vec![
                ("origin", "http://evil.example"),
                ("access-control-request-method", "POST"),
            ],
        ),
    ] {
        let r = http::request(addr, method, "/api/rooms", Some(&alice), None, &headers).await;
        assert_eq!(
            r.header("access-control-allow-origin"),
            None,
            "{method} from an unlisted origin: {:?}",
            r.headers
        );
    }
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
    // A client that reads the server's pings and never answers them (nor sends anything):
    // closed with 4001 once the timeout has passed since the last thing it sent, not before,
    // and within a ping interval (and some slack) after.
    let mut stream = raw::ws_handshake(server.addr, &alice).await;
    let silent_since = Instant::now();
    let code = raw::read_close(&mut stream, Duration::from_secs(15)).await;
    let after = silent_since.elapsed();
    assert_eq!(
        code,
        Some(parley_actix::CLOSE_PING_TIMEOUT),
        "after {after:?}"
    );
    assert!(
        after >= Duration::from_millis(1900) && after <= Duration::from_secs(2 + 1 + 3),
        "closed {after:?} after the client fell silent (timeout 2 s, pings every 1 s)"
    );
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
    // The JavaScript client library's modules (not its `.d.ts` declarations), which the web
    // client imports, under /js/parley/.
    let library = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/js/src");
    for entry in std::fs::read_dir(&library).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.ends_with(".js") && !name.starts_with('.') {
            files.push((format!("/js/parley/{name}"), path));
        }
    }
    assert!(files.iter().any(|(url, _)| url == "/js/parley/index.js"));
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
        ("GET", "/js/parley/index.d.ts"),
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

/// An in-memory layer that can fail for good: from [`Breakable::break_for_good`] on, every
/// receive (those already waiting included) ends with [`LayerError::Closed`], as a backend
/// that is gone would answer. Everything else is the in-memory layer's.
struct Breakable {
    inner: InMemoryLayer,
    broken: tokio::sync::watch::Sender<bool>,
}

impl Breakable {
    fn break_for_good(&self) {
        self.broken.send_replace(true);
    }
}

#[async_trait]
impl ChannelLayer for Breakable {
    async fn new_channel(&self) -> parley_layer::Result<ChannelName> {
        self.inner.new_channel().await
    }
    async fn send(&self, channel: &ChannelName, message: Message) -> parley_layer::Result<()> {
        self.inner.send(channel, message).await
    }
    async fn receive(&self, channel: &ChannelName) -> parley_layer::Result<Message> {
        let mut broken = self.broken.subscribe();
        tokio::select! {
            // The in-memory receive is cancel-safe: nothing is lost by dropping it.
            received = self.inner.receive(channel) => received,
            _ = broken.wait_for(|b| *b) => Err(LayerError::Closed),
        }
    }
    async fn group_add(
        &self,
        group: &GroupName,
        channel: &ChannelName,
    ) -> parley_layer::Result<()> {
        self.inner.group_add(group, channel).await
    }
    async fn group_discard(
        &self,
        group: &GroupName,
        channel: &ChannelName,
    ) -> parley_layer::Result<()> {
        self.inner.group_discard(group, channel).await
    }
    async fn group_send(
        &self,
        group: &GroupName,
        message: Message,
    ) -> parley_layer::Result<GroupSendReport> {
        self.inner.group_send(group, message).await
    }
    async fn close_channel(&self, channel: &ChannelName) -> parley_layer::Result<()> {
        self.inner.close_channel(channel).await
    }
    async fn flush(&self) -> parley_layer::Result<()> {
        self.inner.flush().await
    }
}

/// The server's parts assembled as `parley_server::Application` does, on a [`Breakable`]
/// layer: the layer fails for good under an open socket, which is closed with 1011 ("the
/// channel layer failed for good", docs/api.md), while the server itself stays up.
async fn a_layer_that_fails_for_good_closes_sockets_with_1011(carrier: WsCarrier) {
    let db = Backend::Sqlite.database().await;
    let mut settings = TestServer::settings(&db);
    settings.ws_carrier = carrier;
    let store = parley_server::open_store(&settings).unwrap();
    let layer = Arc::new(Breakable {
        inner: InMemoryLayer::new(settings.layer_config()),
        broken: tokio::sync::watch::channel(false).0,
    });
    let auth_config = parley_server::auth_config(&settings).unwrap();
    let auth = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || parley_auth::Auth::new(store, &auth_config))
            .await
            .unwrap()
            .unwrap()
    };
    let engine = parley_core::Engine::start(store, layer.clone(), settings.engine_config())
        .await
        .unwrap();
    engine.use_auth(auth.clone());
    let state = parley_actix::AppState::new(
        engine.clone(),
        auth,
        settings.http_config(),
        tokio::runtime::Handle::current(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = parley_actix::serve(state, listener, &settings.serve_options()).unwrap();
    let handle = server.handle();
    let running = tokio::spawn(server);

    let alice = parley_e2e::account(addr, "alice").await;
    let mut ws = WsClient::connect(addr, &alice).await;
    assert_eq!(ws.ask(json!({"type": "ping"}), "p").await["type"], "pong");
    layer.break_for_good();
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 1011, "{reason}");
    // The process lives on: its health check still answers.
    assert_eq!(http::get(addr, "/healthz", None).await.status, 200);
    engine.shutdown();
    handle.stop(true).await;
    running.await.unwrap().unwrap();
}
