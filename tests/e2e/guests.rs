//! Guests (issue 21): off by default and then invisible; on, a guest reads and posts in public
//! rooms over REST, `/ws` and the tutorial endpoint, carries the guest mark, and is refused
//! everything only accounts may do, each with its typed error.

use parley_e2e::{Backend, TestServer, WsClient, http, unique};
use serde_json::{Value, json};

crate::on_both!(
    guests_are_off_by_default,
    a_guest_reads_and_posts_in_public_rooms_only,
    guests_come_through_the_tutorial_endpoint,
    guest_budgets_are_their_own,
    staff_ban_a_guest_name
);

async fn start_with_guests(backend: Backend) -> TestServer {
    TestServer::start_with(backend, |s| s.guests = true).await
}

/// `POST /api/auth/guest {name}`: the answer, asserting 200.
async fn guest(server: &TestServer, name: &str) -> Value {
    let r = http::post(
        server.addr,
        "/api/auth/guest",
        None,
        &json!({ "name": name }),
    )
    .await;
    assert_eq!(r.status, 200, "guest {name}: {}", r.body);
    r.json()
}

async fn guests_are_off_by_default(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let room = format!("pub-{}", unique());
    server.create_room(&alice, &room).await;
    // The route looks absent, whatever the body.
    let r = http::get(server.addr, "/api/auth/guest", None).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "not_found"),
        "{}",
        r.body
    );
    for body in [json!({"name": "visitor"}), json!({"nonsense": 1})] {
        let r = http::post(server.addr, "/api/auth/guest", None, &body).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (404, "not_found"),
            "{}",
            r.body
        );
    }
    let r = http::post(
        server.addr,
        "/api/guests/bans/visitor",
        Some(&alice),
        &json!({}),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "not_found"),
        "{}",
        r.body
    );
    // The tutorial endpoint ignores `?guest=`: no token, no socket.
    assert_eq!(
        WsClient::try_connect(server.addr, &format!("/ws/chat/{room}/?guest=visitor"), &[])
            .await
            .err(),
        Some(401)
    );
    // The guests' names stay reserved even so.
    let r = http::post(
        server.addr,
        "/api/auth/register",
        None,
        &json!({"username": "guest.visitor.abcde", "password": "long enough password"}),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "invalid_field"),
        "{}",
        r.body
    );
    server.stop().await;
}

async fn a_guest_reads_and_posts_in_public_rooms_only(backend: Backend) {
    let server = start_with_guests(backend).await;
    let alice = server.user("alice").await;
    let public = format!("pub-{}", unique());
    let private = format!("priv-{}", unique());
    server.create_room(&alice, &public).await;
    let r = http::post(
        server.addr,
        "/api/rooms",
        Some(&alice),
        &json!({"name": private, "kind": "private"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);

    // Clients ask first.
    assert_eq!(
        http::get(server.addr, "/api/auth/guest", None).await.status,
        204
    );
    // Signing in as a guest: an access token, no refresh token, a reserved name.
    let login = guest(&server, "Visitor").await;
    assert!(login.get("refresh").is_none(), "{login}");
    let token = login["access"].as_str().unwrap().to_owned();
    let name = login["user"]["username"].as_str().unwrap().to_owned();
    assert!(name.starts_with("guest.visitor."), "{name}");
    assert_eq!(login["user"]["is_guest"], true, "{login}");
    let me = http::get(server.addr, "/api/me", Some(&token)).await;
    assert_eq!((me.status, &me.json()["is_guest"]), (200, &json!(true)));
    // Two guests choosing one name are two identities.
    let other = guest(&server, "Visitor").await;
    assert_ne!(other["user"]["username"], login["user"]["username"]);
    // Bad names are typed refusals.
    for bad in ["no spaces", "x", "1digit", &"g".repeat(21)] {
        let r = http::post(
            server.addr,
            "/api/auth/guest",
            None,
            &json!({ "name": bad }),
        )
        .await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (400, "invalid_field"),
            "{bad}: {}",
            r.body
        );
    }
    // Nothing to claim: the name cannot be registered, nor logged in to.
    let r = http::post(
        server.addr,
        "/api/auth/register",
        None,
        &json!({"username": name, "password": "long enough password"}),
    )
    .await;
    assert_eq!(r.error_code(), "invalid_field", "{}", r.body);
    let r = http::post(
        server.addr,
        "/api/auth/login",
        None,
        &json!({"username": name, "password": "!"}),
    )
    .await;
    assert_eq!(r.error_code(), "invalid_credentials", "{}", r.body);

    // REST refusals.
    let refused = |r: http::Response| {
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (403, "guest_not_allowed"),
            "{}",
            r.body
        );
    };
    refused(
        http::post(
            server.addr,
            "/api/rooms",
            Some(&token),
            &json!({"name": format!("mine-{}", unique())}),
        )
        .await,
    );
    refused(http::post(server.addr, "/api/direct/alice", Some(&token), &json!({})).await);
    refused(
        http::post(
            server.addr,
            &format!("/api/direct/{name}"),
            Some(&alice),
            &json!({}),
        )
        .await,
    );
    refused(
        http::post(
            server.addr,
            &format!("/api/rooms/{private}/members"),
            Some(&alice),
            &json!({ "username": name }),
        )
        .await,
    );
    // In a public room a guest may be a member, never an owner.
    refused(
        http::post(
            server.addr,
            &format!("/api/rooms/{public}/members"),
            Some(&alice),
            &json!({ "username": name, "role": "owner" }),
        )
        .await,
    );

    // The socket: join and post in the public room, marked as a guest's.
    let mut a = WsClient::connect(server.addr, &alice).await;
    a.ask(json!({"type": "join", "room": public}), "j").await;
    let hello = a
        .ask(
            json!({"type": "send", "room": public, "body": "welcome"}),
            "s",
        )
        .await;
    assert!(
        hello.get("guest").is_none(),
        "an account's message: {hello}"
    );
    let mut g = WsClient::connect(server.addr, &token).await;
    let joined = g.ask(json!({"type": "join", "room": public}), "j").await;
    assert_eq!(joined["type"], "joined", "{joined}");
    assert_eq!(joined["history"][0]["body"], "welcome", "{joined}");
    let mine = g
        .ask(
            json!({"type": "send", "room": public, "body": "hi, I am new"}),
            "s",
        )
        .await;
    assert_eq!(
        (
            mine["type"].as_str(),
            mine["sender"].as_str(),
            &mine["guest"]
        ),
        (Some("message"), Some(name.as_str()), &json!(true)),
        "{mine}"
    );
    let seen = a.next_of("message").await;
    assert_eq!(
        (&seen["body"], &seen["guest"]),
        (&json!("hi, I am new"), &json!(true))
    );
    // History, over the socket and REST, keeps the mark.
    let page = g.ask(json!({"type": "history", "room": public}), "h").await;
    let marks: Vec<(Value, Value)> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["body"].clone(), m["guest"].clone()))
        .collect();
    assert_eq!(
        marks,
        [
            (json!("welcome"), Value::Null),
            (json!("hi, I am new"), json!(true))
        ]
    );
    let r = http::get(
        server.addr,
        &format!("/api/rooms/{public}/messages"),
        Some(&token),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(r#""guest":true"#), "{}", r.body);

    // Socket refusals: a private room stays closed, calls are for accounts.
    let r = g.ask(json!({"type": "join", "room": private}), "p").await;
    assert_eq!(r["code"], "not_member", "{r}");
    let r = g
        .ask(
            json!({"type": "signal", "to": "alice", "payload": {"sdp": "x"}}),
            "c",
        )
        .await;
    assert_eq!(r["code"], "guest_not_allowed", "{r}");
    let r = a
        .ask(
            json!({"type": "signal", "to": name, "payload": {"sdp": "x"}}),
            "c",
        )
        .await;
    assert_eq!(r["code"], "guest_not_allowed", "{r}");
    server.stop().await;
}

async fn guests_come_through_the_tutorial_endpoint(backend: Backend) {
    let server = start_with_guests(backend).await;
    let alice = server.user("alice").await;
    let room = format!("tut-{}", unique());
    server.create_room(&alice, &room).await;
    let mut a = WsClient::try_connect(server.addr, &format!("/ws/chat/{room}/?token={alice}"), &[])
        .await
        .expect("alice's tutorial socket");
    let mut g = WsClient::try_connect(
        server.addr,
        &format!("/ws/chat/{room}/?guest=Anonymous"),
        &[],
    )
    .await
    .expect("a guest's tutorial socket");
    // The simplest tutorial apps' frame: username ignored, room_name checked.
    g.send(json!({"username": "Anonymous", "room_name": room, "message": "hello"}))
        .await;
    for ws in [&mut g, &mut a] {
        let got = ws.next_of("message").await;
        assert_eq!(got["message"], "hello", "{got}");
        assert_eq!(got["guest"], true, "{got}");
        assert!(
            got["username"]
                .as_str()
                .unwrap()
                .starts_with("guest.anonymous."),
            "{got}"
        );
    }
    g.send(json!({"username": "Anonymous", "room_name": "elsewhere", "message": "stray"}))
        .await;
    let r = g.next_of("error").await;
    assert_eq!(r["code"], "invalid_field", "{r}");
    assert!(r["message"].as_str().unwrap().contains("room_name"), "{r}");
    // A guest cannot bring a room into being.
    let mut n = WsClient::try_connect(
        server.addr,
        &format!("/ws/chat/new-{}/?guest=Anonymous", unique()),
        &[],
    )
    .await
    .expect("the handshake succeeds; the room is refused in it");
    let r = n.next_of("error").await;
    assert_eq!(r["code"], "guest_not_allowed", "{r}");
    assert_eq!(n.closed().await.0, 1008);
    // A bad name is refused before the upgrade.
    assert_eq!(
        WsClient::try_connect(server.addr, &format!("/ws/chat/{room}/?guest=a%20b"), &[])
            .await
            .err(),
        Some(400)
    );
    server.stop().await;
}

/// Guests' message budget and their sockets per address are their own.
async fn guest_budgets_are_their_own(backend: Backend) {
    const BURST: usize = 3;
    let server = TestServer::start_with(backend, |s| {
        s.guests = true;
        s.guest_message_rate = 0.01;
        s.guest_message_burst = BURST as f64;
        s.guest_connect_rate = 0.01;
        s.guest_connect_burst = 2.0;
    })
    .await;
    let alice = server.user("alice").await;
    let room = format!("pub-{}", unique());
    server.create_room(&alice, &room).await;
    let token = guest(&server, "flooder").await["access"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut g = WsClient::connect(server.addr, &token).await;
    let mut a = WsClient::connect(server.addr, &alice).await;
    for ws in [&mut g, &mut a] {
        ws.ask(json!({"type": "join", "room": room}), "j").await;
    }
    let send = |i: usize| json!({"type": "send", "room": room, "body": format!("m{i}")});
    for i in 0..BURST {
        assert_eq!(g.ask(send(i), &format!("g{i}")).await["type"], "message");
    }
    let r = g.ask(send(BURST), "over").await;
    assert_eq!(r["code"], "rate_limited", "{r}");
    // An account's budget is the ordinary one.
    for i in 0..=BURST {
        assert_eq!(a.ask(send(i), &format!("a{i}")).await["type"], "message");
    }
    // Guests' sockets per address: the first was one of two; the third is refused, with
    // the tutorial's `?guest=` counted too. Accounts' sockets are not.
    let _second = WsClient::connect(server.addr, &token).await;
    let path = format!("/ws?token={token}");
    assert_eq!(
        WsClient::try_connect(server.addr, &path, &[]).await.err(),
        Some(429)
    );
    let path = format!("/ws/chat/{room}/?guest=another");
    assert_eq!(
        WsClient::try_connect(server.addr, &path, &[]).await.err(),
        Some(429)
    );
    let _more = WsClient::connect(server.addr, &alice).await;
    server.stop().await;
}

async fn staff_ban_a_guest_name(backend: Backend) {
    let server = start_with_guests(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let me = http::get(server.addr, "/api/me", Some(&alice)).await.json();
    let id = parley_domain::UserId(me["id"].as_i64().unwrap());
    server.db.store().set_staff(id, true).await.unwrap();
    let room = format!("pub-{}", unique());
    server.create_room(&alice, &room).await;

    let troll = guest(&server, "troll").await["access"]
        .as_str()
        .unwrap()
        .to_owned();
    let bystander = guest(&server, "troll.b").await["access"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut t = WsClient::connect(server.addr, &troll).await;
    let mut b = WsClient::connect(server.addr, &bystander).await;
    for ws in [&mut t, &mut b] {
        ws.ask(json!({"type": "join", "room": room}), "j").await;
    }
    let ban = |token: Option<String>| {
        let addr = server.addr;
        async move { http::post(addr, "/api/guests/bans/troll", token.as_deref(), &json!({})).await }
    };
    assert_eq!(ban(None).await.status, 401);
    let r = ban(Some(bob.clone())).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "forbidden"),
        "{}",
        r.body
    );
    let r = ban(Some(alice.clone())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"name": "troll", "signed_out": 1}));
    // The banned guest's socket closes (signed out); it cannot come back, nor can anyone
    // sign in under the name. A guest with another name is untouched.
    assert_eq!(t.closed().await.0, 4004);
    assert_eq!(
        WsClient::try_connect(server.addr, &format!("/ws?token={troll}"), &[])
            .await
            .err(),
        Some(403)
    );
    let r = http::post(
        server.addr,
        "/api/auth/guest",
        None,
        &json!({"name": "Troll"}),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "guest_not_allowed"),
        "{}",
        r.body
    );
    assert_eq!(b.ask(json!({"type": "ping"}), "p").await["type"], "pong");
    // Lifting the ban.
    let unban = |token: &str| {
        let addr = server.addr;
        let token = token.to_owned();
        async move { http::delete(addr, "/api/guests/bans/troll", Some(&token)).await }
    };
    assert_eq!(unban(&bob).await.error_code(), "forbidden");
    assert_eq!(unban(&alice).await.status, 204);
    assert_eq!(unban(&alice).await.error_code(), "not_found");
    guest(&server, "troll").await;
    server.stop().await;
}
