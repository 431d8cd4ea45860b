//! The axum example end to end, in-process on port 0 (SQLite in a temporary directory, the
//! in-memory layer): accounts over its REST routes, two clients chatting over real WebSockets.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

use futures_util::{SinkExt, StreamExt};
use parley_auth::AuthConfig;
use parley_axum_example::{Chat, router};
use parley_domain::{RoomKind, RoomName, Topic};
use parley_layer::InMemoryLayer;
use parley_store::testing::TestDb;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// Longest wait for anything the server should do at once.
const WAIT: Duration = Duration::from_secs(10);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The example, serving on `addr` until the test ends.
struct App {
    addr: SocketAddr,
    chat: Chat,
    /// Removes the database when the test ends.
    _db: TestDb,
}

async fn start() -> App {
    let db = TestDb::sqlite().await.expect("SQLite test database");
    let auth = AuthConfig {
        bcrypt_cost: 4,
        ..AuthConfig::hs256(b"an axum example test secret, 32+ bytes".to_vec())
    };
    let chat = Chat::start((*db).clone(), Arc::new(InMemoryLayer::default()), &auth)
        .await
        .expect("chat starts");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(axum::serve(listener, router(chat.clone())).into_future());
    App {
        addr,
        chat,
        _db: db,
    }
}

/// `POST path` with a JSON body over a fresh connection; the status and the JSON answer.
async fn post(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut raw = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut raw))
        .await
        .expect("answer in time")
        .expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {raw}"));
    (status.expect("a status"), body)
}

/// Registers `name` and logs in: the access token.
async fn sign_up(addr: SocketAddr, name: &str) -> String {
    let account = json!({"username": name, "password": "correct horse battery"});
    let (status, user) = post(addr, "/api/auth/register", &account).await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["username"], name);
    let (status, login) = post(addr, "/api/auth/login", &account).await;
    assert_eq!(status, 200, "{login}");
    login["access"].as_str().expect("access token").to_owned()
}

async fn connect(addr: SocketAddr, token: &str) -> Ws {
    let (ws, _) = connect_async(format!("ws://{addr}/ws?token={token}"))
        .await
        .expect("WebSocket upgrade");
    ws
}

async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::text(frame.to_string()))
        .await
        .expect("send");
}

/// The next frame of type `kind` (frames of other types, such as `presence`, are skipped).
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await.expect("socket open").expect("frame") {
                Message::Text(text) => {
                    let frame: Value = serde_json::from_str(&text).expect("JSON frame");
                    if frame["type"] == kind {
                        return frame;
                    }
                    assert_ne!(frame["type"], "error", "{frame}");
                }
                Message::Close(close) => panic!("closed while waiting for {kind}: {close:?}"),
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} frame in time"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_chat_through_the_axum_example() {
    let app = start().await;
    let alice_token = sign_up(app.addr, "alice").await;
    let bob_token = sign_up(app.addr, "bob").await;
    let (_, alice) = app
        .chat
        .auth
        .authenticate(&alice_token)
        .await
        .expect("alice");
    let lobby = RoomName::parse("lobby").expect("room name");
    let topic = Topic::parse("").expect("topic");
    app.chat
        .engine
        .rooms()
        .create(&alice, lobby, RoomKind::Public, topic)
        .await
        .expect("room created");

    let mut a = connect(app.addr, &alice_token).await;
    let mut b = connect(app.addr, &bob_token).await;
    for ws in [&mut a, &mut b] {
        send(ws, json!({"type": "join", "room": "lobby", "ref": "j"})).await;
        assert_eq!(next_of(ws, "joined").await["room"], "lobby");
    }

    let hello = json!({"type": "send", "room": "lobby", "body": "hello bob", "ref": "s1"});
    send(&mut a, hello).await;
    let got = next_of(&mut b, "message").await;
    assert_eq!(
        (&got["sender"], &got["body"]),
        (&json!("alice"), &json!("hello bob"))
    );
    // Alice's copy acknowledges her send.
    assert_eq!(next_of(&mut a, "message").await["ref"], "s1");

    let back = json!({"type": "send", "room": "lobby", "body": "hi alice", "ref": "s2"});
    send(&mut b, back).await;
    let got = next_of(&mut a, "message").await;
    assert_eq!(
        (&got["sender"], &got["body"]),
        (&json!("bob"), &json!("hi alice"))
    );

    // A WebSocket ping is answered (by tungstenite, under axum) with its payload.
    a.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .expect("ping");
    let pong = tokio::time::timeout(WAIT, async {
        loop {
            if let Message::Pong(payload) = a.next().await.expect("open").expect("frame") {
                return payload;
            }
        }
    })
    .await
    .expect("a pong in time");
    assert_eq!(&pong[..], b"are you there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_refuses_a_bad_token_before_the_upgrade() {
    let app = start().await;
    for (query, code) in [("?token=not-a-jwt", "token_invalid"), ("", "unauthorized")] {
        let refused = connect_async(format!("ws://{}/ws{query}", app.addr)).await;
        let Err(tungstenite::Error::Http(response)) = refused else {
            panic!("{query}: the upgrade should be refused");
        };
        assert_eq!(response.status(), 401, "{query}");
        let body: Value = serde_json::from_slice(response.body().as_deref().unwrap_or_default())
            .expect("a JSON error body");
        assert_eq!(body["error"]["code"], code, "{query}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_closes_with_1009() {
    let app = start().await;
    let token = sign_up(app.addr, "carol").await;
    let mut ws = connect(app.addr, &token).await;
    let limit = app.chat.engine.config().max_frame_bytes * 4;
    // Past the transport's limit: axum's error is read through to the close code, which
    // holds only while the example's tungstenite is the one axum uses.
    let _ = ws.send(Message::text("x".repeat(limit + 1))).await;
    let close = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(close))) => return close,
                Some(Ok(_)) => {}
                other => panic!("no close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("closed in time");
    assert_eq!(close.map(|c| u16::from(c.code)), Some(1009));
}
