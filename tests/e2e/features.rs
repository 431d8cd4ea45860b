//! What chat users expect (issue 17): replies and reactions over the socket, in history
//! (socket and REST), on both databases, and a reaction crossing two server processes on one
//! Redis.

use parley_e2e::{Backend, TestServer, WsClient, http, redis_url, unique};
use parley_server::LayerKind;
use serde_json::{Value, json};
use std::sync::Arc;

crate::on_both!(
    replies_carry_a_preview_of_the_original,
    reactions_are_stored_counted_and_broadcast,
    reaction_rules_refuse_with_typed_errors,
    room_lists_carry_the_last_message
);

/// Two users in a fresh room, both joined: (server, room, alice's socket, bob's socket,
/// alice's token, bob's token).
async fn two_in_a_room(server: &TestServer) -> (String, WsClient, WsClient, String, String) {
    let tag = unique();
    let alice = server.user(&format!("a{tag}")).await;
    let bob = server.user(&format!("b{tag}")).await;
    let room = format!("feat-{tag}");
    server.create_room(&alice, &room).await;
    let mut a = WsClient::connect(server.addr, &alice).await;
    let mut b = WsClient::connect(server.addr, &bob).await;
    for ws in [&mut a, &mut b] {
        let joined = ws.ask(json!({"type": "join", "room": room}), "j").await;
        assert_eq!(joined["type"], "joined", "{joined}");
    }
    (room, a, b, alice, bob)
}

/// The message with `id` in a history page.
fn find(messages: &Value, id: &Value) -> Value {
    messages
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == *id)
        .cloned()
        .unwrap_or_else(|| panic!("message {id} not in {messages}"))
}

async fn rest_history(server: &TestServer, token: &str, room: &str) -> Value {
    let r = http::get(
        server.addr,
        &format!("/api/rooms/{room}/messages"),
        Some(token),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["messages"].clone()
}

async fn replies_carry_a_preview_of_the_original(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (room, mut a, mut b, alice, _bob) = two_in_a_room(&server).await;
    let long = "é".repeat(150);
    let original = a
        .ask(json!({"type": "send", "room": room, "body": long}), "o")
        .await;
    assert_eq!(original["type"], "message", "{original}");
    // A plain message carries neither field.
    assert!(original.get("reply_to").is_none(), "{original}");
    assert!(original.get("reactions").is_none(), "{original}");

    let reply = b
        .ask(
            json!({"type": "send", "room": room, "body": "agreed", "reply_to": original["id"]}),
            "r",
        )
        .await;
    assert_eq!(reply["type"], "message", "{reply}");
    let preview = &reply["reply_to"];
    assert_eq!(preview["id"], original["id"]);
    assert_eq!(preview["sender"], original["sender"]);
    assert_eq!(preview["excerpt"], "é".repeat(100));
    assert_eq!(preview["deleted"], false);
    // The room sees the same preview live.
    let live = a.next_of("message").await;
    assert_eq!(live["reply_to"], *preview, "{live}");

    // Bad `reply_to`s: another room's message, a missing one, a wrong type.
    let other = format!("{room}-x");
    server.create_room(&alice, &other).await;
    a.ask(json!({"type": "join", "room": other}), "j2").await;
    let elsewhere = a
        .ask(
            json!({"type": "send", "room": other, "body": "elsewhere"}),
            "e",
        )
        .await;
    for bad in [elsewhere["id"].clone(), json!(999_999_999)] {
        let err = b
            .ask(
                json!({"type": "send", "room": room, "body": "x", "reply_to": bad}),
                "bad",
            )
            .await;
        assert_eq!(err["type"], "error", "{err}");
        assert_eq!(err["code"], "not_found", "{err}");
    }
    let err = b
        .ask(
            json!({"type": "send", "room": room, "body": "x", "reply_to": "one"}),
            "bad2",
        )
        .await;
    assert_eq!(err["code"], "invalid_field", "{err}");
    // The connection is still healthy, and nothing of the refused sends was stored.
    let page = rest_history(&server, &alice, &room).await;
    assert_eq!(page.as_array().unwrap().len(), 2, "{page}");

    // History (socket and REST) carries the preview; once the original is deleted it says so.
    let h = b.ask(json!({"type": "history", "room": room}), "h").await;
    assert_eq!(find(&h["messages"], &reply["id"])["reply_to"], *preview);
    let del = a
        .ask(json!({"type": "delete", "message_id": original["id"]}), "d")
        .await;
    assert_eq!(del["type"], "deleted", "{del}");
    let page = rest_history(&server, &alice, &room).await;
    let after = find(&page, &reply["id"]);
    assert_eq!(after["reply_to"]["deleted"], true, "{after}");
    assert_eq!(after["reply_to"]["excerpt"], "", "{after}");
    assert_eq!(after["reply_to"]["id"], original["id"]);
    // A reply to a deleted message is allowed, its preview says `deleted`.
    let late = b
        .ask(
            json!({"type": "send", "room": room, "body": "too late", "reply_to": original["id"]}),
            "late",
        )
        .await;
    assert_eq!(late["reply_to"]["deleted"], true, "{late}");
    // Editing keeps the preview in the `edited` frame.
    let edited = b
        .ask(
            json!({"type": "edit", "message_id": reply["id"], "body": "agreed!"}),
            "ed",
        )
        .await;
    assert_eq!(edited["type"], "edited", "{edited}");
    assert_eq!(edited["reply_to"]["id"], original["id"], "{edited}");
    server.stop().await;
}

async fn reactions_are_stored_counted_and_broadcast(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (room, mut a, mut b, alice, _bob) = two_in_a_room(&server).await;
    let m = a
        .ask(
            json!({"type": "send", "room": room, "body": "react to me"}),
            "m",
        )
        .await;
    let a_name = m["sender"].clone();
    let r = b
        .ask(
            json!({"type": "react", "message_id": m["id"], "emoji": "👍"}),
            "r1",
        )
        .await;
    assert_eq!(r["type"], "reaction", "{r}");
    assert_eq!(r["active"], true);
    assert_eq!(r["count"], 1);
    assert_eq!(r["room"], room);
    let b_name = r["user"].clone();
    let live = a.next_of("reaction").await;
    assert_eq!(live["emoji"], "👍");
    assert_eq!(live["user"], b_name);
    assert!(live.get("ref").is_none(), "{live}");
    // Reacting again changes nothing: answered, not broadcast.
    let again = b
        .ask(
            json!({"type": "react", "message_id": m["id"], "emoji": "👍"}),
            "r2",
        )
        .await;
    assert_eq!(again["count"], 1, "{again}");
    a.ask(
        json!({"type": "react", "message_id": m["id"], "emoji": "👍"}),
        "r3",
    )
    .await;
    a.ask(
        json!({"type": "react", "message_id": m["id"], "emoji": "🎉"}),
        "r4",
    )
    .await;
    // The next `reaction` bob sees is alice's, not a repeat of his own.
    let seen = b.next_of("reaction").await;
    assert_eq!(seen["user"], a_name, "{seen}");
    assert_eq!(seen["count"], 2, "{seen}");

    // History, socket and REST: counts and who, emoji in order of first use.
    let h = a.ask(json!({"type": "history", "room": room}), "h").await;
    let expected = json!([
        {"emoji": "👍", "count": 2, "users": [b_name, a_name]},
        {"emoji": "🎉", "count": 1, "users": [a_name]},
    ]);
    assert_eq!(find(&h["messages"], &m["id"])["reactions"], expected);
    let page = rest_history(&server, &alice, &room).await;
    assert_eq!(find(&page, &m["id"])["reactions"], expected);

    // Removing: broadcast once, then gone from history.
    let un = b
        .ask(
            json!({"type": "unreact", "message_id": m["id"], "emoji": "👍"}),
            "u1",
        )
        .await;
    assert_eq!(
        (un["active"].clone(), un["count"].clone()),
        (json!(false), json!(1))
    );
    let live = a.next_of("reaction").await;
    assert_eq!(live["active"], false, "{live}");
    let page = rest_history(&server, &alice, &room).await;
    assert_eq!(
        find(&page, &m["id"])["reactions"],
        json!([
            {"emoji": "👍", "count": 1, "users": [a_name]},
            {"emoji": "🎉", "count": 1, "users": [a_name]},
        ])
    );
    // A joiner's `joined` history has them too.
    let mut a2 = WsClient::connect(server.addr, &alice).await;
    let joined = a2.ask(json!({"type": "join", "room": room}), "j").await;
    assert_eq!(
        find(&joined["history"], &m["id"])["reactions"][0]["count"],
        1
    );
    // A deleted message shows no reactions, and takes none.
    a.ask(json!({"type": "delete", "message_id": m["id"]}), "d")
        .await;
    let page = rest_history(&server, &alice, &room).await;
    assert!(find(&page, &m["id"]).get("reactions").is_none());
    let err = b
        .ask(
            json!({"type": "react", "message_id": m["id"], "emoji": "👍"}),
            "r5",
        )
        .await;
    assert_eq!(err["code"], "conflict", "{err}");
    server.stop().await;
}

async fn reaction_rules_refuse_with_typed_errors(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        s.max_reactions_per_message = 3;
        s.reaction_burst = 50.0;
        s.guests = true;
    })
    .await;
    let (room, mut a, _b, _alice, _bob) = two_in_a_room(&server).await;
    let m = a
        .ask(json!({"type": "send", "room": room, "body": "x"}), "m")
        .await;
    for (emoji, code) in [
        ("a", "invalid_field"),
        ("", "invalid_field"),
        (":+1:", "invalid_field"),
        ("👍 ", "invalid_field"),
        ("🎉🎉🎉🎉🎉🎉🎉🎉🎉", "invalid_field"),
    ] {
        let err = a
            .ask(
                json!({"type": "react", "message_id": m["id"], "emoji": emoji}),
                "bad",
            )
            .await;
        assert_eq!(err["code"], code, "{emoji:?}: {err}");
    }
    let err = a
        .ask(json!({"type": "react", "message_id": m["id"]}), "missing")
        .await;
    assert_eq!(err["code"], "missing_field", "{err}");
    let err = a
        .ask(
            json!({"type": "react", "message_id": 999_999_999, "emoji": "👍"}),
            "nf",
        )
        .await;
    assert_eq!(err["code"], "not_found", "{err}");
    // The distinct-emoji limit: a fourth emoji is refused, an existing one still counts.
    for emoji in ["👍", "🎉", "❤️"] {
        let ok = a
            .ask(
                json!({"type": "react", "message_id": m["id"], "emoji": emoji}),
                "ok",
            )
            .await;
        assert_eq!(ok["type"], "reaction", "{ok}");
    }
    let err = a
        .ask(
            json!({"type": "react", "message_id": m["id"], "emoji": "😀"}),
            "many",
        )
        .await;
    assert_eq!(err["code"], "too_many_reactions", "{err}");
    // A guest may read, and not react.
    let guest = http::post(
        server.addr,
        "/api/auth/guest",
        None,
        &json!({"name": "visitor"}),
    )
    .await;
    assert_eq!(guest.status, 200, "{}", guest.body);
    let token = guest.json()["access"].as_str().unwrap().to_owned();
    let public = format!("pub-{}", unique());
    let owner = server.user(&format!("o{}", unique())).await;
    server.create_room(&owner, &public).await;
    let mut o = WsClient::connect(server.addr, &owner).await;
    o.ask(json!({"type": "join", "room": public}), "j").await;
    let pm = o
        .ask(json!({"type": "send", "room": public, "body": "hi"}), "m")
        .await;
    let mut g = WsClient::connect(server.addr, &token).await;
    let joined = g.ask(json!({"type": "join", "room": public}), "j").await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let err = g
        .ask(
            json!({"type": "react", "message_id": pm["id"], "emoji": "👍"}),
            "g",
        )
        .await;
    assert_eq!(err["code"], "guest_not_allowed", "{err}");
    assert_eq!(g.ask(json!({"type": "ping"}), "p").await["type"], "pong");
    server.stop().await;
}

crate::on_both!(a_reaction_crosses_two_processes_on_one_redis);

async fn a_reaction_crosses_two_processes_on_one_redis(backend: Backend) {
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
    let alice = one.user(&format!("a{tag}")).await;
    let bob = one.user(&format!("b{tag}")).await;
    let room = format!("multi-{tag}");
    one.create_room(&alice, &room).await;
    let mut a = WsClient::connect(one.addr, &alice).await;
    let mut b = WsClient::connect(two.addr, &bob).await;
    for ws in [&mut a, &mut b] {
        assert_eq!(
            ws.ask(json!({"type": "join", "room": room}), "j").await["type"],
            "joined"
        );
    }
    let m = a
        .ask(json!({"type": "send", "room": room, "body": "hello"}), "m")
        .await;
    let got = b.next_of("message").await;
    assert_eq!(got["id"], m["id"]);
    let reply = b
        .ask(
            json!({"type": "send", "room": room, "body": "hi", "reply_to": m["id"]}),
            "r",
        )
        .await;
    assert_eq!(reply["reply_to"]["excerpt"], "hello", "{reply}");
    let live = a.next_of("message").await;
    assert_eq!(live["reply_to"]["excerpt"], "hello", "{live}");
    let r = b
        .ask(
            json!({"type": "react", "message_id": m["id"], "emoji": "🎉"}),
            "x",
        )
        .await;
    assert_eq!(r["type"], "reaction", "{r}");
    let seen = a.next_of("reaction").await;
    assert_eq!(seen["emoji"], "🎉");
    assert_eq!(seen["message_id"], m["id"]);
    assert_eq!(seen["count"], 1);
    one.stop().await;
    two.stop().await;
}

async fn room_lists_carry_the_last_message(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (room, mut a, mut b, alice, bob) = two_in_a_room(&server).await;
    let empty = format!("{room}-empty");
    server.create_room(&alice, &empty).await;
    let last_of = |rooms: &Value, name: &str| {
        rooms["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {rooms}"))["last_message"]
            .clone()
    };
    let list = |token: String, path: &'static str| {
        let addr = server.addr;
        async move {
            let r = http::get(addr, path, Some(&token)).await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.json()
        }
    };
    // No message yet: null, and always present.
    let mine = list(alice.clone(), "/api/me/rooms").await;
    assert_eq!(last_of(&mine, &room), Value::Null);
    a.ask(json!({"type": "send", "room": room, "body": "older"}), "1")
        .await;
    let newest = b
        .ask(json!({"type": "send", "room": room, "body": "newest"}), "2")
        .await;
    for (token, path) in [
        (alice.clone(), "/api/me/rooms"),
        (bob.clone(), "/api/rooms"),
    ] {
        let rooms = list(token, path).await;
        let last = last_of(&rooms, &room);
        assert_eq!(last["id"], newest["id"], "{path}: {last}");
        assert_eq!(last["sender"], newest["sender"]);
        assert_eq!(last["preview"], "newest");
        assert_eq!(last["created_at"], newest["created_at"]);
        assert_eq!(last_of(&rooms, &empty), Value::Null, "{path}");
    }
    // Deleting the newest shows the one before it.
    b.ask(json!({"type": "delete", "message_id": newest["id"]}), "d")
        .await;
    let rooms = list(alice.clone(), "/api/me/rooms").await;
    assert_eq!(last_of(&rooms, &room)["preview"], "older");
    server.stop().await;
}

crate::on_both!(the_client_config_serves_ice_servers_and_turn_credentials);

async fn the_client_config_serves_ice_servers_and_turn_credentials(backend: Backend) {
    // None configured: an empty list, for signed-in users only.
    let plain = TestServer::start(backend).await;
    let token = plain.user(&format!("u{}", unique())).await;
    let r = http::get(plain.addr, "/api/config", None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = http::get(plain.addr, "/api/config", Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"ice_servers": [], "ice_expires_at": null}));
    plain.stop().await;

    let server = TestServer::start_with(backend, |s| {
        s.ice_servers = vec![
            "stun:stun.example.org:3478".into(),
            "turn:turn.example.org:3478?transport=udp".into(),
            "turns:turn.example.org:5349".into(),
        ];
        s.turn_secret = Some("north-wind".into());
        s.turn_ttl_secs = 3600;
    })
    .await;
    let name = format!("u{}", unique());
    let token = server.user(&name).await;
    let me = http::get(server.addr, "/api/me", Some(&token)).await.json();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let r = http::get(server.addr, "/api/config", Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let config = r.json();
    let servers = config["ice_servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2, "{config}");
    assert_eq!(servers[0], json!({"urls": ["stun:stun.example.org:3478"]}));
    assert_eq!(
        servers[1]["urls"],
        json!([
            "turn:turn.example.org:3478?transport=udp",
            "turns:turn.example.org:5349"
        ])
    );
    // username `<expiry>:<user id>`, the expiry an hour away.
    let username = servers[1]["username"].as_str().unwrap();
    let (expiry, user_id) = username.split_once(':').unwrap();
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        expiry >= before + 3600 && expiry <= before + 3600 + 60,
        "{username}"
    );
    assert_eq!(user_id, me["id"].to_string());
    assert_eq!(config["ice_expires_at"], expiry);
    // The credential is the TURN REST one, checked against an independent HMAC-SHA1
    // (Python's; scripts/test.sh needs Python 3 anyway). No fallback to the engine's own
    // function: that would compare it with itself.
    let credential = servers[1]["credential"].as_str().unwrap();
    let python = std::process::Command::new("python3")
        .args([
            "-c",
            "import base64,hashlib,hmac,sys; print(base64.b64encode(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha1).digest()).decode())",
            "north-wind",
            username,
        ])
        .output();
    let out = python.expect("python3 computes the reference HMAC-SHA1");
    assert!(out.status.success(), "python3 failed: {out:?}");
    let expected = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(credential, expected);
    server.stop().await;
}
