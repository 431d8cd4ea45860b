//! Mentions and notifications (issue 17 item 3): `@name` recognized by the server for the
//! room's members only (never the author), a `mention` frame on every socket of the
//! mentioned user whether or not it joined the room — across two processes on one Redis
//! too —, `unread_mentions` in room lists cleared by the read marker, and the per-message
//! limit. On both databases.

use parley_e2e::{Backend, TestServer, WsClient, http, redis_url, unique};
use parley_server::LayerKind;
use serde_json::{Value, json};
use std::sync::Arc;

crate::on_both!(
    mentions_notify_members_and_count_until_read,
    only_the_first_names_up_to_the_limit_count,
    mentions_are_stored_with_sends_written_together,
    a_mention_reaches_a_socket_on_another_process_that_never_joined
);

/// The summary of `room` in the room list at `path`, as `token` sees it.
async fn summary(server: &TestServer, token: &str, path: &str, room: &str) -> Value {
    let r = http::get(server.addr, path, Some(token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == room)
        .cloned()
        .unwrap_or_else(|| panic!("{room} not in {}", r.body))
}

/// The next frame on `ws` after a `ping` it sends now: `pong` unless something was queued.
async fn next_after_ping(ws: &mut WsClient) -> Value {
    ws.send(json!({"type": "ping"})).await;
    ws.next_json().await
}

async fn mentions_notify_members_and_count_until_read(backend: Backend) {
    let server = TestServer::start(backend).await;
    let tag = unique();
    let (alice_name, bob_name, carol_name) =
        (format!("a{tag}"), format!("b{tag}"), format!("c{tag}"));
    let alice = server.user(&alice_name).await;
    let bob = server.user(&bob_name).await;
    let carol = server.user(&carol_name).await;
    let room = format!("mention-{tag}");
    server.create_room(&alice, &room).await;
    let mut a = WsClient::connect(server.addr, &alice).await;
    assert_eq!(
        a.ask(json!({"type": "join", "room": room}), "j").await["type"],
        "joined"
    );
    // Bob becomes a member by joining once, then leaves on that socket; his second socket
    // never joins the room. Carol is not a member at all.
    let mut b1 = WsClient::connect(server.addr, &bob).await;
    assert_eq!(
        b1.ask(json!({"type": "join", "room": room}), "j").await["type"],
        "joined"
    );
    assert_eq!(
        b1.ask(json!({"type": "leave", "room": room}), "l").await["type"],
        "left"
    );
    let mut b2 = WsClient::connect(server.addr, &bob).await;
    let mut c = WsClient::connect(server.addr, &carol).await;

    // A plain message mentions nobody: no field.
    let plain = a
        .ask(
            json!({"type": "send", "room": room, "body": "hello all"}),
            "p",
        )
        .await;
    assert_eq!(plain["type"], "message", "{plain}");
    assert!(plain.get("mentions").is_none(), "{plain}");

    // Bob (any case), Carol (not a member), Alice herself, an e-mail address, an unknown
    // name: only Bob is mentioned.
    let body = format!(
        "@{} look, and @{carol_name} and @{alice_name}, mail {alice_name}@example.com @nobody{tag}",
        bob_name.to_uppercase()
    );
    let sent = a
        .ask(json!({"type": "send", "room": room, "body": body}), "m")
        .await;
    assert_eq!(sent["type"], "message", "{sent}");
    assert_eq!(sent["mentions"], json!([bob_name]), "{sent}");
    for ws in [&mut b1, &mut b2] {
        let mention = ws.next_of("mention").await;
        assert_eq!(mention["room"], room.as_str(), "{mention}");
        assert_eq!(mention["message_id"], sent["id"]);
        assert_eq!(mention["sender"], alice_name.as_str());
        // The first 100 characters.
        let preview: String = body.chars().take(100).collect();
        assert!(body.chars().count() > 100);
        assert_eq!(mention["preview"], preview.as_str());
        assert_eq!(mention["created_at"], sent["created_at"]);
    }
    // Neither the non-member nor the author hears of it.
    assert_eq!(next_after_ping(&mut c).await["type"], "pong");
    assert_eq!(next_after_ping(&mut a).await["type"], "pong");

    // History (REST and socket) carries who was mentioned.
    let r = http::get(
        server.addr,
        &format!("/api/rooms/{room}/messages"),
        Some(&bob),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let history = r.json()["messages"].clone();
    let stored = history
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == sent["id"])
        .cloned()
        .unwrap();
    assert_eq!(stored["mentions"], json!([bob_name]), "{stored}");
    assert!(
        history[0].get("mentions").is_none(),
        "plain message: {history}"
    );

    // A second mention; then the room lists count both, beside `unread`.
    let again = a
        .ask(
            json!({"type": "send", "room": room, "body": format!("and again @{bob_name}")}),
            "m2",
        )
        .await;
    b2.next_of("mention").await;
    for path in ["/api/rooms", "/api/me/rooms"] {
        let s = summary(&server, &bob, path, &room).await;
        assert_eq!(s["unread"], 3, "{path}: {s}");
        assert_eq!(s["unread_mentions"], 2, "{path}: {s}");
    }
    let s = summary(&server, &alice, "/api/me/rooms", &room).await;
    assert_eq!(s["unread_mentions"], 0, "{s}");

    // A deleted mention no longer counts.
    a.ask(json!({"type": "delete", "message_id": again["id"]}), "d")
        .await;
    let s = summary(&server, &bob, "/api/me/rooms", &room).await;
    assert_eq!(s["unread_mentions"], 1, "{s}");

    // Reading up to the first mention clears it, with `unread`.
    assert_eq!(
        b2.ask(json!({"type": "join", "room": room}), "j").await["type"],
        "joined"
    );
    let read = b2
        .ask(
            json!({"type": "read", "room": room, "message_id": sent["id"]}),
            "r",
        )
        .await;
    assert_eq!(read["type"], "read", "{read}");
    let s = summary(&server, &bob, "/api/me/rooms", &room).await;
    assert_eq!(s["unread_mentions"], 0, "{s}");
    assert_eq!(s["unread"], 0, "{s}");
    server.stop().await;
}

async fn only_the_first_names_up_to_the_limit_count(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.max_mentions_per_message = 2).await;
    let tag = unique();
    let alice = server.user(&format!("a{tag}")).await;
    let bob_name = format!("b{tag}");
    let bob = server.user(&bob_name).await;
    let room = format!("limit-{tag}");
    server.create_room(&alice, &room).await;
    let mut a = WsClient::connect(server.addr, &alice).await;
    let mut b = WsClient::connect(server.addr, &bob).await;
    for ws in [&mut a, &mut b] {
        assert_eq!(
            ws.ask(json!({"type": "join", "room": room}), "j").await["type"],
            "joined"
        );
    }
    // Two distinct names come first (repeats count once): Bob is the third, plain text. The
    // message is sent all the same.
    let over = a
        .ask(
            json!({"type": "send", "room": room, "body": format!("@x{tag} @y{tag} @x{tag} @{bob_name}")}),
            "o",
        )
        .await;
    assert_eq!(over["type"], "message", "{over}");
    assert!(over.get("mentions").is_none(), "{over}");
    let within = a
        .ask(
            json!({"type": "send", "room": room, "body": format!("@x{tag} @{bob_name} @y{tag}")}),
            "w",
        )
        .await;
    assert_eq!(within["mentions"], json!([bob_name]), "{within}");
    // The first frame Bob gets for either is the second one's mention.
    let mention = b.next_of("mention").await;
    assert_eq!(mention["message_id"], within["id"], "{mention}");
    let s = summary(&server, &bob, "/api/me/rooms", &room).await;
    assert_eq!(s["unread_mentions"], 1, "{s}");
    server.stop().await;
}

async fn a_mention_reaches_a_socket_on_another_process_that_never_joined(backend: Backend) {
    let db = Arc::new(backend.database().await);
    let prefix = format!("parley-e2e-{}:", unique());
    let redis = |s: &mut parley_server::Settings| {
        s.layer = Some(LayerKind::Redis);
        s.redis_url = Some(redis_url());
        s.redis_prefix = prefix.clone();
    };
    let one = TestServer::start_on(db.clone(), redis).await;
    let two = TestServer::start_on(db.clone(), redis).await;
    let tag = unique();
    let alice_name = format!("a{tag}");
    let bob_name = format!("b{tag}");
    let alice = one.user(&alice_name).await;
    let bob = one.user(&bob_name).await;
    // A private room Bob is added to over REST: no socket of his ever joins it.
    let room = format!("multi-mention-{tag}");
    let r = http::post(
        one.addr,
        "/api/rooms",
        Some(&alice),
        &json!({"name": room, "kind": "private"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = http::post(
        one.addr,
        &format!("/api/rooms/{room}/members"),
        Some(&alice),
        &json!({"username": bob_name}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mut b = WsClient::connect(two.addr, &bob).await;
    let mut a = WsClient::connect(one.addr, &alice).await;
    assert_eq!(
        a.ask(json!({"type": "join", "room": room}), "j").await["type"],
        "joined"
    );
    let sent = a
        .ask(
            json!({"type": "send", "room": room, "body": format!("ping @{bob_name}")}),
            "m",
        )
        .await;
    assert_eq!(sent["mentions"], json!([bob_name]), "{sent}");
    let mention = b.next_of("mention").await;
    assert_eq!(mention["room"], room.as_str(), "{mention}");
    assert_eq!(mention["message_id"], sent["id"]);
    assert_eq!(mention["sender"], alice_name.as_str());
    // Counted on either process.
    for server in [&one, &two] {
        let s = summary(server, &bob, "/api/me/rooms", &room).await;
        assert_eq!(s["unread_mentions"], 1, "{s}");
    }
    one.stop().await;
    two.stop().await;
}

/// Sends that arrive together are stored by one batch insert: each one's mentions are written
/// with it (paired with the row the insert returned), and a retry neither stores nor notifies
/// again.
async fn mentions_are_stored_with_sends_written_together(backend: Backend) {
    let server = TestServer::start(backend).await;
    let tag = unique();
    let alice = server.user(&format!("a{tag}")).await;
    let bob_name = format!("b{tag}");
    let bob = server.user(&bob_name).await;
    let carol_name = format!("c{tag}");
    let carol = server.user(&carol_name).await;
    let room = format!("batch-{tag}");
    server.create_room(&alice, &room).await;
    let mut a = WsClient::connect(server.addr, &alice).await;
    for token in [&bob, &carol] {
        let mut ws = WsClient::connect(server.addr, token).await;
        assert_eq!(
            ws.ask(json!({"type": "join", "room": room}), "j").await["type"],
            "joined"
        );
        ws.close().await;
    }
    assert_eq!(
        a.ask(json!({"type": "join", "room": room}), "j").await["type"],
        "joined"
    );
    let bodies = [
        "plain one".to_owned(),
        format!("@{bob_name} first"),
        "plain two".to_owned(),
        format!("@{carol_name} and @{bob_name}"),
    ];
    let frames: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            tokio_tungstenite::tungstenite::Message::text(
                json!({"type": "send", "room": room, "body": body, "client_id": format!("k{i}"), "ref": format!("s{i}")})
                    .to_string(),
            )
        })
        .collect();
    a.send_together(frames).await;
    let mut acks = Vec::new();
    while acks.len() < bodies.len() {
        let f = a.next_json().await;
        if f["type"] == "message" && f.get("ref").is_some() {
            acks.push(f);
        }
    }
    assert!(acks[0].get("mentions").is_none(), "{}", acks[0]);
    assert_eq!(acks[1]["mentions"], json!([bob_name]), "{}", acks[1]);
    assert!(acks[2].get("mentions").is_none(), "{}", acks[2]);
    // By name, whatever the order in the text.
    assert_eq!(
        acks[3]["mentions"],
        json!([bob_name, carol_name]),
        "{}",
        acks[3]
    );
    // A retry of a mentioning send: the first message again, nothing stored twice.
    let retry = a
        .ask(
            json!({"type": "send", "room": room, "body": bodies[1], "client_id": "k1"}),
            "again",
        )
        .await;
    assert_eq!(retry["id"], acks[1]["id"], "{retry}");
    let r = http::get(
        server.addr,
        &format!("/api/rooms/{room}/messages"),
        Some(&bob),
    )
    .await;
    let history = r.json()["messages"].clone();
    let with_mentions: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m.get("mentions").is_some())
        .map(|m| (m["id"].clone(), m["mentions"].clone()))
        .collect();
    assert_eq!(
        with_mentions,
        vec![
            (acks[1]["id"].clone(), json!([bob_name])),
            (acks[3]["id"].clone(), json!([bob_name, carol_name])),
        ],
        "{history}"
    );
    for (token, expected) in [(&bob, 2), (&carol, 1), (&alice, 0)] {
        let s = summary(&server, token, "/api/me/rooms", &room).await;
        assert_eq!(s["unread_mentions"], expected, "{s}");
    }
    server.stop().await;
}
