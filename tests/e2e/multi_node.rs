//! Two server processes (two engines, each with its own Redis connections and HTTP server)
//! on one Redis and one database: messages cross, presence is the union, on every process.

use parley_e2e::{Backend, TestServer, WAIT, WsClient, http, redis_url, unique};
use parley_server::LayerKind;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

crate::on_both!(two_nodes_on_one_redis);

/// Polls `GET /api/rooms/{room}/online` on `server` until it lists every name in `want`.
async fn wait_online(server: &TestServer, token: &str, room: &str, want: &[&str]) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = http::get(
            server.addr,
            &format!("/api/rooms/{room}/online"),
            Some(token),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let online = r.json()["online"].clone();
        let names = online.as_array().cloned().unwrap_or_default();
        if want.iter().all(|w| names.contains(&json!(w))) {
            return online;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "online list on {} never reached {want:?}: {online}",
            server.addr
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn two_nodes_on_one_redis(backend: Backend) {
    let db = Arc::new(backend.database().await);
    let prefix = format!("parley-e2e-{}:", unique());
    let redis = |s: &mut parley_server::Settings| {
        s.layer = Some(LayerKind::Redis);
        s.redis_url = Some(redis_url());
        s.redis_prefix = prefix.clone();
        s.presence_interval_ms = 500;
        s.presence_ttl_ms = 2000;
    };
    let one = TestServer::start_on(db.clone(), redis).await;
    let two = TestServer::start_on(db.clone(), redis).await;
    let alice = one.user("alice").await;
    let bob = one.user("bob").await;
    // Tokens are valid on both servers (same secret).
    let room = format!("multi-{}", unique());
    let r = http::post(one.addr, "/api/rooms", Some(&alice), &json!({"name": room})).await;
    assert_eq!(r.status, 201, "{}", r.body);

    let mut a = WsClient::connect(one.addr, &alice).await;
    let mut b = WsClient::connect(two.addr, &bob).await;
    assert_eq!(
        a.ask(json!({"type": "join", "room": room}), "j").await["type"],
        "joined"
    );
    assert_eq!(
        b.ask(json!({"type": "join", "room": room}), "j").await["type"],
        "joined"
    );

    // Presence is the union, seen from either server, and from a third one that holds no
    // socket in the room (behind a load balancer, a REST call may land on any process).
    wait_online(&one, &alice, &room, &["alice", "bob"]).await;
    wait_online(&two, &bob, &room, &["alice", "bob"]).await;
    let three = TestServer::start_on(db.clone(), redis).await;
    let online = wait_online(&three, &alice, &room, &["alice", "bob"]).await;
    assert_eq!(online, json!(["alice", "bob"]));

    // A message sent on one reaches a client on the other, and the other way.
    let ack = a
        .ask(
            json!({"type": "send", "room": room, "body": "from node one"}),
            "s",
        )
        .await;
    assert_eq!(ack["type"], "message", "{ack}");
    let got = b.next_of("message").await;
    assert_eq!(got["body"], "from node one");
    assert_eq!(got["id"], ack["id"]);
    b.ask(
        json!({"type": "send", "room": room, "body": "from node two"}),
        "s",
    )
    .await;
    assert_eq!(a.next_of("message").await["body"], "from node two");

    // Bob leaves node two: node one sees him go.
    b.close().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = http::get(one.addr, &format!("/api/rooms/{room}/online"), Some(&alice)).await;
        if !r.json()["online"]
            .as_array()
            .unwrap()
            .contains(&json!("bob"))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob never left: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The third server, which never had a socket in the room, sees him go as well.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = http::get(
            three.addr,
            &format!("/api/rooms/{room}/online"),
            Some(&alice),
        )
        .await;
        if r.json()["online"] == json!(["alice"]) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the third server still lists bob: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    one.stop().await;
    two.stop().await;
    three.stop().await;
}
