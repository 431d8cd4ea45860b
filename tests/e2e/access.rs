//! Who may see what: direct rooms, private rooms, tokens (refresh rotation, logout).

use parley_e2e::{Backend, TestServer, WsClient, http, unique};
use serde_json::json;

crate::on_both!(
    direct_room_is_closed_to_a_third_user,
    private_room_is_closed_to_non_members,
    refresh_rotation_and_logout,
    socket_needs_a_valid_token,
    too_many_sockets_are_refused
);

async fn too_many_sockets_are_refused(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.max_connections_per_user = 2).await;
    let alice = server.user("alice").await;
    let _one = WsClient::connect(server.addr, &alice).await;
    let two = WsClient::connect(server.addr, &alice).await;
    let path = format!("/ws?token={alice}");
    assert_eq!(
        WsClient::try_connect(server.addr, &path, &[]).await.err(),
        Some(429)
    );
    // The refusal is the API's: `rate_limited`, with Retry-After.
    let upgrade = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        server.addr
    );
    let r = http::raw_request(server.addr, upgrade.as_bytes()).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (429, "rate_limited"),
        "{}",
        r.body
    );
    let retry: u64 = r
        .header("retry-after")
        .expect("a 429 says when to retry")
        .parse()
        .unwrap();
    assert!(retry >= 1, "Retry-After {retry}");
    // Closing one frees a place (once the server has seen the close).
    two.close().await;
    let deadline = tokio::time::Instant::now() + parley_e2e::WAIT;
    while WsClient::try_connect(server.addr, &path, &[])
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place was never freed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.stop().await;
}

async fn direct_room_is_closed_to_a_third_user(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;

    let r = http::post(server.addr, "/api/direct/bob", Some(&alice), &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let room = r.json()["name"].as_str().unwrap().to_owned();
    assert!(room.starts_with("dm."), "{room}");
    // Bob gets the same room.
    let r = http::post(server.addr, "/api/direct/alice", Some(&bob), &json!({})).await;
    assert_eq!(r.json()["name"], room.as_str());

    let mut a = WsClient::connect(server.addr, &alice).await;
    a.ask(json!({"type": "join", "room": room}), "j").await;
    a.ask(json!({"type": "send", "room": room, "body": "secret"}), "s")
        .await;

    // Carol: cannot join, cannot send, cannot read over REST or the socket.
    let mut c = WsClient::connect(server.addr, &carol).await;
    let e = c.ask(json!({"type": "join", "room": room}), "j").await;
    assert_eq!(e["type"], "error");
    assert_eq!(e["code"], "not_member", "{e}");
    let e = c
        .ask(
            json!({"type": "send", "room": room, "body": "let me in"}),
            "s",
        )
        .await;
    assert_eq!(e["type"], "error", "{e}");
    let e = c.ask(json!({"type": "history", "room": room}), "h").await;
    assert_eq!(e["type"], "error", "{e}");
    let r = http::get(
        server.addr,
        &format!("/api/rooms/{room}/messages"),
        Some(&carol),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.error_code(), "not_member");
    assert!(!r.body.contains("secret"));
    let r = http::get(server.addr, &format!("/api/rooms/{room}"), Some(&carol)).await;
    assert_eq!(r.status, 403);
    // Nothing Carol did put a message in the room.
    let r = http::get(
        server.addr,
        &format!("/api/rooms/{room}/messages"),
        Some(&bob),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["messages"].as_array().unwrap().len(), 1);
    // And Carol's own socket is still fine.
    assert_eq!(c.ask(json!({"type": "ping"}), "p").await["type"], "pong");
    server.stop().await;
}

async fn private_room_is_closed_to_non_members(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let carol = server.user("carol").await;
    let room = format!("priv-{}", unique());
    let r = http::post(
        server.addr,
        "/api/rooms",
        Some(&alice),
        &json!({"name": room, "kind": "private", "topic": "staff only"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);

    let r = http::get(
        server.addr,
        &format!("/api/rooms/{room}/messages"),
        Some(&carol),
    )
    .await;
    assert_eq!(r.status, 403);
    for list in ["/api/rooms", "/api/me/rooms"] {
        let r = http::get(server.addr, list, Some(&carol)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            !r.body.contains(&room),
            "private room listed to a non-member"
        );
    }
    let mut c = WsClient::connect(server.addr, &carol).await;
    let e = c.ask(json!({"type": "join", "room": room}), "j").await;
    assert_eq!(e["code"], "not_member", "{e}");
    // Carol may not add herself.
    let r = http::post(
        server.addr,
        &format!("/api/rooms/{room}/members"),
        Some(&carol),
        &json!({"username": "carol"}),
    )
    .await;
    assert_eq!(r.status, 403);

    // The owner adds her: now she can read and join.
    let r = http::post(
        server.addr,
        &format!("/api/rooms/{room}/members"),
        Some(&alice),
        &json!({"username": "carol"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = http::get(
        server.addr,
        &format!("/api/rooms/{room}/messages"),
        Some(&carol),
    )
    .await;
    assert_eq!(r.status, 200);
    let j = c.ask(json!({"type": "join", "room": room}), "j2").await;
    assert_eq!(j["type"], "joined", "{j}");

    // Adding her again with another role changes her role (200: nothing was created); the
    // same again changes nothing; PATCH sets a role too.
    let members = format!("/api/rooms/{room}/members");
    for _ in 0..2 {
        let r = http::post(
            server.addr,
            &members,
            Some(&alice),
            &json!({"username": "carol", "role": "owner"}),
        )
        .await;
        assert_eq!(
            (r.status, r.json()["role"].as_str()),
            (200, Some("owner")),
            "{}",
            r.body
        );
    }
    let r = http::get(server.addr, &format!("/api/rooms/{room}"), Some(&carol)).await;
    assert_eq!(r.json()["role"], "owner", "{}", r.body);
    let carol_path = format!("/api/rooms/{room}/members/carol");
    let r = http::patch(
        server.addr,
        &carol_path,
        Some(&alice),
        &json!({"role": "member"}),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["role"].as_str()),
        (200, Some("member")),
        "{}",
        r.body
    );
    let r = http::patch(
        server.addr,
        &carol_path,
        Some(&carol),
        &json!({"role": "owner"}),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "forbidden"),
        "{}",
        r.body
    );

    // Removed again: her socket is told to leave, and the door is closed.
    let r = http::delete(
        server.addr,
        &format!("/api/rooms/{room}/members/carol"),
        Some(&alice),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let left = c.next_of("left").await;
    assert_eq!(left["room"], room.as_str());
    let r = http::get(
        server.addr,
        &format!("/api/rooms/{room}/messages"),
        Some(&carol),
    )
    .await;
    assert_eq!(r.status, 403);
    // A role is only set on a member: 404 now.
    let r = http::patch(
        server.addr,
        &carol_path,
        Some(&alice),
        &json!({"role": "member"}),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "not_found"),
        "{}",
        r.body
    );
    server.stop().await;
}

async fn refresh_rotation_and_logout(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.user("alice").await;
    let login = server.login("alice").await;
    assert_eq!(login["user"]["username"], "alice");
    let refresh1 = login["refresh"].as_str().unwrap().to_owned();

    let r = http::post(
        server.addr,
        "/api/auth/refresh",
        None,
        &json!({"refresh": refresh1}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let pair = r.json();
    let access2 = pair["access"].as_str().unwrap().to_owned();
    let refresh2 = pair["refresh"].as_str().unwrap().to_owned();
    assert_ne!(refresh1, refresh2);
    let me = http::get(server.addr, "/api/me", Some(&access2)).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["username"], "alice");

    // The rotated token is spent; presenting it again revokes the whole family.
    let r = http::post(
        server.addr,
        "/api/auth/refresh",
        None,
        &json!({"refresh": refresh1}),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "token_revoked");
    let r = http::post(
        server.addr,
        "/api/auth/refresh",
        None,
        &json!({"refresh": refresh2}),
    )
    .await;
    assert_eq!(r.status, 401, "family revoked after reuse");

    // Logout revokes the refresh token.
    let login = server.login("alice").await;
    let refresh = login["refresh"].as_str().unwrap().to_owned();
    let r = http::post(
        server.addr,
        "/api/auth/logout",
        None,
        &json!({"refresh": refresh}),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = http::post(
        server.addr,
        "/api/auth/refresh",
        None,
        &json!({"refresh": refresh}),
    )
    .await;
    assert_eq!(r.status, 401);
    // An access token is not a refresh token.
    let access = login["access"].as_str().unwrap();
    let r = http::post(
        server.addr,
        "/api/auth/refresh",
        None,
        &json!({"refresh": access}),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "wrong_token_type");

    // Wrong password, unknown user: the same answer.
    let r = http::post(
        server.addr,
        "/api/auth/login",
        None,
        &json!({"username": "alice", "password": "not-her-password"}),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (401, "invalid_credentials")
    );
    let r = http::post(
        server.addr,
        "/api/auth/login",
        None,
        &json!({"username": "nobody", "password": "whatever-123"}),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (401, "invalid_credentials")
    );
    // A taken name.
    let r = http::post(
        server.addr,
        "/api/auth/register",
        None,
        &json!({"username": "alice", "password": "another-password"}),
    )
    .await;
    assert_eq!((r.status, r.error_code().as_str()), (409, "username_taken"));
    server.stop().await;
}

async fn socket_needs_a_valid_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    assert_eq!(
        WsClient::try_connect(server.addr, "/ws", &[]).await.err(),
        Some(401)
    );
    assert_eq!(
        WsClient::try_connect(server.addr, "/ws?token=garbage", &[])
            .await
            .err(),
        Some(401)
    );
    assert_eq!(
        WsClient::try_connect(server.addr, "/ws", &[("authorization", "Bearer x.y.z")])
            .await
            .err(),
        Some(401)
    );
    // A refresh token is not an access token.
    let refresh = server.login("alice").await["refresh"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        WsClient::try_connect(server.addr, &format!("/ws?token={refresh}"), &[])
            .await
            .err(),
        Some(401)
    );
    assert!(
        WsClient::try_connect(server.addr, &format!("/ws?token={alice}"), &[])
            .await
            .is_ok()
    );
    server.stop().await;
}
