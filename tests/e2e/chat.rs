//! The main flow: register, login, two sockets, join, send, both receive, reconnect,
//! history; the Django-tutorial endpoint.

use parley_e2e::{Backend, TestServer, WsClient, http, unique};
use serde_json::json;

crate::on_both!(register_login_chat_reconnect_history, tutorial_endpoint);

async fn register_login_chat_reconnect_history(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = format!("lobby-{}", unique());

    let r = http::post(
        server.addr,
        "/api/rooms",
        Some(&alice),
        &json!({"name": room}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["kind"], "public");

    // Alice authenticates with the header, Bob with the query parameter (as browsers do).
    let mut a = WsClient::connect(server.addr, &alice).await;
    let mut b = WsClient::try_connect(server.addr, &format!("/ws?token={bob}"), &[])
        .await
        .expect("query-token socket");
    let joined = a.ask(json!({"type": "join", "room": room}), "j1").await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let joined = b.ask(json!({"type": "join", "room": room}), "j2").await;
    assert_eq!(joined["type"], "joined", "{joined}");

    let ack = a
        .ask(
            json!({"type": "send", "room": room, "body": "hello, bob"}),
            "s1",
        )
        .await;
    assert_eq!(ack["type"], "message", "{ack}");
    assert_eq!(ack["body"], "hello, bob");
    assert_eq!(ack["sender"], "alice");
    let got = b.next_of("message").await;
    assert_eq!(got["body"], "hello, bob");
    assert_eq!(got["id"], ack["id"]);
    assert!(
        got.get("ref").is_none(),
        "the ref is only on the sender's copy"
    );

    // Reconnect: the message is in the history sent on join, and over REST.
    a.close().await;
    let mut a = WsClient::connect(server.addr, &alice).await;
    let joined = a.ask(json!({"type": "join", "room": room}), "j3").await;
    let history = joined["history"].as_array().expect("history");
    assert!(
        history.iter().any(|m| m["body"] == "hello, bob"),
        "{joined}"
    );
    let r = http::get(
        server.addr,
        &format!("/api/rooms/{room}/messages?limit=10"),
        Some(&bob),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let page = r.json();
    assert_eq!(page["messages"][0]["body"], "hello, bob");
    assert_eq!(page["has_more"], false);

    // Bob's room list shows it, with his unread count, and so does the directory.
    let r = http::get(server.addr, "/api/me/rooms", Some(&bob)).await;
    let listed = r.json();
    assert!(listed["next"].is_null(), "{listed}");
    let entry = listed["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == room.as_str())
        .cloned()
        .expect("room listed");
    assert_eq!(entry["role"], "member");
    assert_eq!(entry["unread"], 1);
    let r = http::get(server.addr, "/api/rooms", Some(&bob)).await;
    let listed = r.json();
    let public = listed["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == room.as_str())
        .cloned()
        .expect("room in the directory");
    assert_eq!(public, entry);

    // Both are online in the room.
    let r = http::get(
        server.addr,
        &format!("/api/rooms/{room}/online"),
        Some(&bob),
    )
    .await;
    let online = r.json()["online"].clone();
    assert!(
        online.as_array().unwrap().contains(&json!("alice")),
        "{online}"
    );
    assert!(
        online.as_array().unwrap().contains(&json!("bob")),
        "{online}"
    );
    server.stop().await;
}

async fn tutorial_endpoint(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    // As in the Django tutorial, the room need not exist: it is created, public. Asked for
    // all frames, the socket says so with `joined` (by default it gets chat messages only).
    let room = format!("tut-{}", unique());
    let mut ws = WsClient::try_connect(
        server.addr,
        &format!("/ws/chat/{room}?token={alice}&frames=all"),
        &[],
    )
    .await
    .expect("tutorial socket");
    let joined = ws.next_of("joined").await;
    assert_eq!(joined["room"], room.as_str());
    assert_eq!(joined["kind"], "public");
    ws.send(json!({"message": "hi from the tutorial"})).await;
    let got = ws.next_of("message").await;
    assert_eq!(got["body"], "hi from the tutorial");
    assert_eq!(got["message"], "hi from the tutorial");
    assert_eq!(got["username"], "alice");
    // Other frames work as on /ws.
    assert_eq!(ws.ask(json!({"type": "ping"}), "p").await["type"], "pong");

    // A room the user may not enter (someone else's private room): the socket opens, says
    // why, and closes with 1008.
    let private = format!("priv-{}", unique());
    let r = http::post(
        server.addr,
        "/api/rooms",
        Some(&bob),
        &json!({"name": private, "kind": "private"}),
    )
    .await;
    assert_eq!(r.status, 201);
    let mut ws = WsClient::try_connect(
        server.addr,
        &format!("/ws/chat/{private}?token={alice}"),
        &[],
    )
    .await
    .expect("socket");
    let error = ws.next_json().await;
    assert_eq!(error["code"], "not_member", "{error}");
    assert_eq!(ws.closed().await.0, 1008);
    server.stop().await;
}
