//! Profiles and accounts (issue 15 item 5): the display name (registration, `PATCH /api/me`,
//! in message frames and history, reaching open sockets), the e-mail rule, a password change
//! (every other login refused and its sockets closed; the caller's goes on), deleting one's
//! own account (tokens refused on REST and WebSocket at once, socket closed with 4005), and
//! bad inputs answered with typed codes.

use parley_e2e::{Backend, TestServer, WsClient, http, login, unique};
use serde_json::json;

crate::on_both!(
    display_name_in_frames_history_and_login,
    profile_update_rules_and_typed_refusals,
    a_password_change_revokes_every_other_login,
    deleting_ones_own_account
);

fn code(r: &http::Response) -> (u16, String) {
    (r.status, r.error_code())
}

async fn display_name_in_frames_history_and_login(backend: Backend) {
    let server = TestServer::start(backend).await;
    let r = http::post(
        server.addr,
        "/api/auth/register",
        None,
        &json!({"username": "zoe", "password": "password-zoe", "display_name": "  Zoë Ångström  "}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["display_name"], "Zoë Ångström");
    let session = login(server.addr, "zoe").await;
    assert_eq!(session["user"]["display_name"], "Zoë Ångström");
    assert_eq!(session["user"]["is_staff"], false);
    let zoe = session["access"].as_str().unwrap().to_owned();
    let bob = server.user("bob").await;
    let room = format!("hall-{}", unique());
    server.create_room(&zoe, &room).await;
    let mut ws = WsClient::connect(server.addr, &zoe).await;
    ws.ask(json!({"type": "join", "room": room}), "j").await;
    let mut watcher = WsClient::connect(server.addr, &bob).await;
    watcher
        .ask(json!({"type": "join", "room": room}), "j")
        .await;
    let sent = ws
        .ask(json!({"type": "send", "room": room, "body": "one"}), "s1")
        .await;
    assert_eq!(sent["sender"], "zoe", "{sent}");
    assert_eq!(sent["sender_display_name"], "Zoë Ångström", "{sent}");

    // A change reaches the open socket: its next message carries the new name.
    let r = http::patch(
        server.addr,
        "/api/me",
        Some(&zoe),
        &json!({"display_name": "Zoe A."}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["display_name"], "Zoe A.");
    // The profile event and the next send travel the same user's ordered path only on
    // the layer; wait until the socket has it by asking the server (a ping round trip
    // does not order against the layer), so retry the send until the name shows.
    let mut carried = None;
    for n in 0..50 {
        let m = ws
            .ask(
                json!({"type": "send", "room": room, "body": format!("two {n}")}),
                &format!("s2-{n}"),
            )
            .await;
        if m["sender_display_name"] == "Zoe A." {
            carried = Some(m);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        carried.is_some(),
        "the new display name never reached the socket"
    );
    // A user without one sends no field.
    let plain = watcher
        .ask(json!({"type": "send", "room": room, "body": "hi"}), "b")
        .await;
    assert!(plain.get("sender_display_name").is_none(), "{plain}");

    // History shows each author's name now.
    let history = http::get(
        server.addr,
        &format!("/api/rooms/{room}/messages"),
        Some(&bob),
    )
    .await;
    assert_eq!(history.status, 200, "{}", history.body);
    let messages = history.json()["messages"].clone();
    assert_eq!(messages[0]["body"], "one");
    assert_eq!(messages[0]["sender_display_name"], "Zoe A.");
    // Cleared with null: gone from the account and from new messages' history.
    let r = http::patch(
        server.addr,
        "/api/me",
        Some(&zoe),
        &json!({"display_name": null}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["display_name"].is_null());
    let me = http::get(server.addr, "/api/me", Some(&zoe)).await.json();
    assert!(me["display_name"].is_null());
    assert_eq!(me["identities"], json!([]));
    server.stop().await;
}

async fn profile_update_rules_and_typed_refusals(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ann = server.user("ann").await;
    let ben = server.user("ben").await;
    let long = "x".repeat(65);
    for (body, want) in [
        (json!({"display_name": long}), (400, "invalid_display_name")),
        (
            json!({"display_name": "bell\u{7}"}),
            (400, "invalid_display_name"),
        ),
        (json!({"email": "not-an-email"}), (400, "invalid_field")),
        (json!({"nickname": "x"}), (400, "unknown_field")),
    ] {
        let r = http::patch(server.addr, "/api/me", Some(&ann), &body).await;
        let got = code(&r);
        assert_eq!((got.0, got.1.as_str()), want, "{body}: {}", r.body);
    }
    let r = http::post(
        server.addr,
        "/api/auth/register",
        None,
        &json!({"username": "cat", "password": "password-cat", "display_name": "y".repeat(65)}),
    )
    .await;
    assert_eq!(
        code(&r),
        (400, "invalid_display_name".to_owned()),
        "{}",
        r.body
    );
    // 64 characters (not bytes) is the limit.
    let r = http::patch(
        server.addr,
        "/api/me",
        Some(&ann),
        &json!({"display_name": "é".repeat(64), "email": "Ann@Example.com"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["email"], "Ann@Example.com");
    // Leaving a field out keeps it.
    let r = http::patch(server.addr, "/api/me", Some(&ann), &json!({})).await;
    assert_eq!(r.json()["display_name"], "é".repeat(64));
    // The same address (case-insensitively) on another account is refused.
    let r = http::patch(
        server.addr,
        "/api/me",
        Some(&ben),
        &json!({"email": "ann@example.COM"}),
    )
    .await;
    assert_eq!(code(&r), (409, "email_taken".to_owned()), "{}", r.body);
    // Re-saving one's own address is fine; clearing frees it.
    let r = http::patch(
        server.addr,
        "/api/me",
        Some(&ann),
        &json!({"email": "ann@example.com"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http::patch(server.addr, "/api/me", Some(&ann), &json!({"email": ""})).await;
    assert!(r.json()["email"].is_null(), "{}", r.body);
    let r = http::patch(
        server.addr,
        "/api/me",
        Some(&ben),
        &json!({"email": "ann@example.com"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Anonymous callers are refused.
    let r = http::patch(server.addr, "/api/me", None, &json!({})).await;
    assert_eq!(r.status, 401);
    server.stop().await;
}

async fn a_password_change_revokes_every_other_login(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.user("bob").await;
    let mine = login(server.addr, "bob").await;
    let other = login(server.addr, "bob").await;
    let access = mine["access"].as_str().unwrap().to_owned();
    let other_access = other["access"].as_str().unwrap().to_owned();
    let other_refresh = other["refresh"].as_str().unwrap().to_owned();
    let my_refresh = mine["refresh"].as_str().unwrap().to_owned();
    let mut my_ws = WsClient::connect(server.addr, &access).await;
    let mut other_ws = WsClient::connect(server.addr, &other_access).await;

    let r = http::post(
        server.addr,
        "/api/me/password",
        Some(&access),
        &json!({"current_password": "wrong one", "new_password": "a brand new secret"}),
    )
    .await;
    assert_eq!(
        code(&r),
        (401, "invalid_credentials".to_owned()),
        "{}",
        r.body
    );
    let r = http::post(
        server.addr,
        "/api/me/password",
        Some(&access),
        &json!({"current_password": "password-bob", "new_password": "bob"}),
    )
    .await;
    assert_eq!(code(&r), (400, "weak_password".to_owned()), "{}", r.body);
    let r = http::post(
        server.addr,
        "/api/me/password",
        Some(&access),
        &json!({"current_password": "password-bob", "new_password": "a brand new secret"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let fresh = r.json();
    let fresh_access = fresh["access"].as_str().unwrap().to_owned();
    let fresh_refresh = fresh["refresh"].as_str().unwrap().to_owned();
    // The other login: socket closed (4004), both tokens refused.
    assert_eq!(other_ws.closed().await.0, 4004);
    let r = http::get(server.addr, "/api/me", Some(&other_access)).await;
    assert_eq!(code(&r), (401, "token_revoked".to_owned()), "{}", r.body);
    let r = http::post(
        server.addr,
        "/api/auth/refresh",
        None,
        &json!({"refresh": other_refresh}),
    )
    .await;
    assert_eq!(code(&r), (401, "token_revoked".to_owned()), "{}", r.body);
    // The caller's own old tokens are refused too; the pair in the answer works, and its
    // socket stays open.
    let r = http::post(
        server.addr,
        "/api/auth/refresh",
        None,
        &json!({"refresh": my_refresh}),
    )
    .await;
    assert_eq!(code(&r), (401, "token_revoked".to_owned()), "{}", r.body);
    assert_eq!(
        my_ws.ask(json!({"type": "ping"}), "p").await["type"],
        "pong"
    );
    assert_eq!(
        http::get(server.addr, "/api/me", Some(&fresh_access))
            .await
            .status,
        200
    );
    let r = http::post(
        server.addr,
        "/api/auth/refresh",
        None,
        &json!({"refresh": fresh_refresh}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http::post(
        server.addr,
        "/api/auth/login",
        None,
        &json!({"username": "bob", "password": "a brand new secret"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    server.stop().await;
}

async fn deleting_ones_own_account(backend: Backend) {
    let server = TestServer::start(backend).await;
    let bob = server.user("bob").await;
    let room = format!("hall-{}", unique());
    server.create_room(&bob, &room).await;
    let mut ws = WsClient::connect(server.addr, &bob).await;
    ws.ask(json!({"type": "join", "room": room}), "j").await;
    ws.ask(json!({"type": "send", "room": room, "body": "bye"}), "s")
        .await;
    let id = http::get(server.addr, "/api/me", Some(&bob)).await.json()["id"]
        .as_i64()
        .unwrap();
    let del = |body: serde_json::Value| {
        let bob = bob.clone();
        let addr = server.addr;
        async move { http::request(addr, "DELETE", "/api/me", Some(&bob), Some(&body), &[]).await }
    };
    let r = del(json!({})).await;
    assert_eq!(
        code(&r),
        (401, "invalid_credentials".to_owned()),
        "{}",
        r.body
    );
    let r = del(json!({"password": "not it"})).await;
    assert_eq!(
        code(&r),
        (401, "invalid_credentials".to_owned()),
        "{}",
        r.body
    );
    assert_eq!(ws.ask(json!({"type": "ping"}), "p").await["type"], "pong");
    let r = del(json!({"password": "password-bob"})).await;
    assert_eq!(r.status, 204, "{}", r.body);
    // The socket closes with 4005; the (unexpired) access token is refused on REST and on
    // the WebSocket handshake.
    assert_eq!(ws.closed().await.0, 4005);
    let r = http::get(server.addr, "/api/me", Some(&bob)).await;
    assert_eq!(code(&r), (403, "account_disabled".to_owned()), "{}", r.body);
    assert_eq!(
        WsClient::try_connect(server.addr, &format!("/ws?token={bob}"), &[])
            .await
            .err(),
        Some(403)
    );
    let r = http::post(
        server.addr,
        "/api/auth/login",
        None,
        &json!({"username": "bob", "password": "password-bob"}),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    // The message stays, by the tombstone.
    let carol = server.user("carol").await;
    let history = http::get(
        server.addr,
        &format!("/api/rooms/{room}/messages"),
        Some(&carol),
    )
    .await;
    if history.status == 200 {
        assert_eq!(
            history.json()["messages"][0]["sender"],
            format!("deleted.{id}").as_str()
        );
    }
    server.stop().await;
}
