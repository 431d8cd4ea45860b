//! Room moderation (issue 16): bans, mutes, read-only rooms, owners deleting messages and
//! changing roles, each over REST and the socket, recorded in the audit log; who may do it;
//! and, on two processes sharing Redis, that it reaches sockets on the other process.

use parley_e2e::{Backend, TestServer, WAIT, WsClient, http, redis_url, unique};
use parley_server::LayerKind;
use parley_store::AuditQuery;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

crate::on_both!(
    a_ban_keeps_a_user_out_of_a_public_room,
    a_mute_silences_a_member_until_lifted_or_over,
    read_only_rooms_let_only_owners_and_staff_post,
    owners_delete_any_message_and_a_room_keeps_an_owner,
    moderation_refuses_non_owners,
    moderation_reaches_the_other_process,
    owners_and_staff_delete_messages_over_rest,
    a_room_keeps_an_owner_when_its_last_owner_goes,
    owners_rename_retopic_and_change_visibility_recorded,
);

async fn user_id(server: &TestServer, token: &str) -> parley_domain::UserId {
    let me = http::get(server.addr, "/api/me", Some(token)).await.json();
    parley_domain::UserId(me["id"].as_i64().unwrap())
}

/// The audit log's actions on `room`, newest first, as `(action, user, detail, reason)`.
async fn audited(server: &TestServer, room: &str) -> Vec<(String, String, String, String)> {
    let query = AuditQuery {
        target_room: Some(parley_domain::RoomName::parse(room).unwrap()),
        limit: 100,
        ..AuditQuery::default()
    };
    let page = server.db.store().audit_page(&query).await.unwrap();
    page.into_iter()
        .map(|e| {
            (
                e.action.as_str().to_owned(),
                e.target.user.map(|u| u.to_string()).unwrap_or_default(),
                e.target.detail.unwrap_or_default(),
                e.reason.map(|r| r.to_string()).unwrap_or_default(),
            )
        })
        .collect()
}

/// Sends `body` to `room` until the answer is an error with `code` (a moderation change
/// reaches the socket through the channel layer, a moment after the REST call answered);
/// returns that error frame.
pub(crate) async fn send_until_refused(ws: &mut WsClient, room: &str, code: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    for i in 0.. {
        let answer = ws
            .ask(
                json!({"type": "send", "room": room, "body": format!("try {i}")}),
                &format!("try-{i}"),
            )
            .await;
        if answer["type"] == "error" && answer["code"] == code {
            return answer;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never refused with {code}: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unreachable!()
}

/// Sends to `room` until the send is stored; the `message` frame.
pub(crate) async fn send_until_accepted(ws: &mut WsClient, room: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    for i in 0.. {
        let answer = ws
            .ask(
                json!({"type": "send", "room": room, "body": format!("again {i}")}),
                &format!("again-{i}"),
            )
            .await;
        if answer["type"] == "message" {
            return answer;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never accepted again: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unreachable!()
}

fn public_names(r: &http::Response) -> Vec<String> {
    r.json()["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_ban_keeps_a_user_out_of_a_public_room(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let room = format!("ban-{}", unique());
    server.create_room(&alice, &room).await;
    let mut b = WsClient::connect(server.addr, &bob).await;
    let mut c = WsClient::connect(server.addr, &carol).await;
    assert_eq!(
        b.ask(json!({"type": "join", "room": room}), "j").await["type"],
        "joined"
    );
    assert_eq!(
        c.ask(json!({"type": "join", "room": room}), "j").await["type"],
        "joined"
    );
    b.ask(json!({"type": "send", "room": room, "body": "hello"}), "s")
        .await;

    let bans = format!("/api/rooms/{room}/bans");
    let r = http::post(
        server.addr,
        &format!("{bans}/bob"),
        Some(&alice),
        &json!({"reason": "spam"}),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    // Bob's socket leaves the room at once; Carol's stays.
    let left = b.next_of("left").await;
    assert_eq!(left["room"], room.as_str());
    assert_eq!(c.ask(json!({"type": "ping"}), "p").await["type"], "pong");
    // Bob can no longer join, read, post, or see the room, over the socket or REST.
    let e = b.ask(json!({"type": "join", "room": room}), "j2").await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("banned")),
        "{e}"
    );
    let e = b.ask(json!({"type": "history", "room": room}), "h").await;
    assert_eq!(e["code"], "banned", "{e}");
    let e = b
        .ask(
            json!({"type": "send", "room": room, "body": "let me back"}),
            "s2",
        )
        .await;
    assert_eq!(e["code"], "not_joined", "{e}");
    for path in [
        format!("/api/rooms/{room}"),
        format!("/api/rooms/{room}/messages"),
    ] {
        let r = http::get(server.addr, &path, Some(&bob)).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (403, "banned"),
            "{path}: {}",
            r.body
        );
        assert!(!r.body.contains("hello"));
    }
    // He is no member any more, and the public list leaves the room out for him only.
    let r = http::get(server.addr, &format!("/api/rooms/{room}"), Some(&alice)).await;
    let details = r.json();
    let members: Vec<&str> = details["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["username"].as_str().unwrap())
        .collect();
    assert!(!members.contains(&"bob"), "{members:?}");
    let mine = http::get(server.addr, "/api/me/rooms", Some(&bob)).await;
    assert!(!public_names(&mine).contains(&room));
    assert!(!public_names(&http::get(server.addr, "/api/rooms", Some(&bob)).await).contains(&room));
    assert!(
        public_names(&http::get(server.addr, "/api/rooms", Some(&carol)).await).contains(&room)
    );
    // An owner cannot add him back while banned.
    let r = http::post(
        server.addr,
        &format!("/api/rooms/{room}/members"),
        Some(&alice),
        &json!({"username": "bob"}),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "banned"),
        "{}",
        r.body
    );
    // The owner lists the bans; banning again is no error and keeps the first reason.
    let r = http::post(
        server.addr,
        &format!("{bans}/bob"),
        Some(&alice),
        &json!({}),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = http::get(server.addr, &bans, Some(&alice)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let list = r.json()["bans"].clone();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["username"], "bob");
    assert_eq!(list[0]["reason"], "spam");
    assert_eq!(list[0]["banned_by"], "alice");
    // Bad input: a bad reason, yourself, an owner, an unknown user.
    let r = http::post(
        server.addr,
        &format!("{bans}/carol"),
        Some(&alice),
        &json!({"reason": " "}),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "invalid_field"),
        "{}",
        r.body
    );
    let r = http::post(
        server.addr,
        &format!("{bans}/alice"),
        Some(&alice),
        &json!({}),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "invalid_field"),
        "{}",
        r.body
    );
    let r = http::post(
        server.addr,
        &format!("{bans}/nobody"),
        Some(&alice),
        &json!({}),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    // A non-member is banned ahead of time: dave never gets in.
    let dave = server.user("dave").await;
    let r = http::post(
        server.addr,
        &format!("{bans}/dave"),
        Some(&alice),
        &json!({}),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let mut d = WsClient::connect(server.addr, &dave).await;
    assert_eq!(
        d.ask(json!({"type": "join", "room": room}), "j").await["code"],
        "banned"
    );

    // Unbanned, Bob may join again (as a new member).
    let r = http::delete(server.addr, &format!("{bans}/bob"), Some(&alice)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = http::delete(server.addr, &format!("{bans}/bob"), Some(&alice)).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        b.ask(json!({"type": "join", "room": room}), "j3").await["type"],
        "joined"
    );

    // Staff moderate a room they do not belong to (here: lifting Dave's ban).
    let staff = server.user("staff").await;
    let staff_id = user_id(&server, &staff).await;
    server.db.store().set_staff(staff_id, true).await.unwrap();
    let r = http::get(server.addr, &bans, Some(&staff)).await;
    assert_eq!(r.json()["bans"][0]["username"], "dave", "{}", r.body);
    let r = http::delete(server.addr, &format!("{bans}/dave"), Some(&staff)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let j = d.ask(json!({"type": "join", "room": room}), "j2").await;
    assert_eq!(j["type"], "joined", "{j}");
    let log = audited(&server, &room).await;
    assert!(
        log.contains(&(
            "ban_from_room".into(),
            "bob".into(),
            String::new(),
            "spam".into()
        )),
        "{log:?}"
    );
    assert!(
        log.contains(&(
            "unban_from_room".into(),
            "bob".into(),
            String::new(),
            String::new()
        )),
        "{log:?}"
    );
    assert!(
        log.iter().any(|e| e.0 == "ban_from_room" && e.1 == "dave"),
        "{log:?}"
    );
    server.stop().await;
}

async fn a_mute_silences_a_member_until_lifted_or_over(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = format!("mute-{}", unique());
    server.create_room(&alice, &room).await;
    let mut a = WsClient::connect(server.addr, &alice).await;
    let mut b = WsClient::connect(server.addr, &bob).await;
    a.ask(json!({"type": "join", "room": room}), "j").await;
    b.ask(json!({"type": "join", "room": room}), "j").await;
    let mine = b
        .ask(json!({"type": "send", "room": room, "body": "before"}), "s")
        .await;
    let my_id = mine["id"].as_i64().unwrap();

    let mutes = format!("/api/rooms/{room}/mutes");
    let r = http::post(
        server.addr,
        &format!("{mutes}/bob"),
        Some(&alice),
        &json!({"reason": "calm down"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"room": room, "user": "bob", "until": null})
    );
    let e = send_until_refused(&mut b, &room, "muted").await;
    assert!(e["message"].as_str().unwrap().contains("muted"), "{e}");
    // He still reads, but cannot edit; a mute does not stop him deleting his own message.
    let e = b
        .ask(
            json!({"type": "edit", "message_id": my_id, "body": "changed"}),
            "e",
        )
        .await;
    assert_eq!(e["code"], "muted", "{e}");
    let h = b.ask(json!({"type": "history", "room": room}), "h").await;
    assert_eq!(h["type"], "history", "{h}");
    let r = http::get(
        server.addr,
        &format!("/api/rooms/{room}/messages"),
        Some(&bob),
    )
    .await;
    assert_eq!(r.status, 200);
    // Alice is not muted; Bob receives her message.
    a.ask(
        json!({"type": "send", "room": room, "body": "from alice"}),
        "s",
    )
    .await;
    assert_eq!(b.next_of("message").await["body"], "from alice");
    // The owner lists mutes; leaving and rejoining does not lift one.
    let list = http::get(server.addr, &mutes, Some(&alice)).await.json()["mutes"].clone();
    assert_eq!(list[0]["username"], "bob", "{list}");
    assert_eq!(list[0]["reason"], "calm down", "{list}");
    assert_eq!(list[0]["until"], Value::Null, "{list}");
    b.ask(json!({"type": "leave", "room": room}), "l").await;
    b.ask(json!({"type": "join", "room": room}), "j2").await;
    let e = b
        .ask(json!({"type": "send", "room": room, "body": "x"}), "s3")
        .await;
    assert_eq!(e["code"], "muted", "{e}");
    // Unmuted, he posts again.
    let r = http::delete(server.addr, &format!("{mutes}/bob"), Some(&alice)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    send_until_accepted(&mut b, &room).await;
    let r = http::delete(server.addr, &format!("{mutes}/bob"), Some(&alice)).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "not_found"),
        "{}",
        r.body
    );
    // A mute with an end ends by itself (no background job: the end is compared).
    let r = http::post(
        server.addr,
        &format!("{mutes}/bob"),
        Some(&alice),
        &json!({"seconds": 1}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["until"].as_i64().is_some(), "{}", r.body);
    send_until_refused(&mut b, &room, "muted").await;
    send_until_accepted(&mut b, &room).await;
    let list = http::get(server.addr, &mutes, Some(&alice)).await.json();
    assert_eq!(list["mutes"], json!([]), "{list}");
    // Bad input: no zero, no more than a year, not yourself, not an owner.
    for body in [
        json!({"seconds": 0}),
        json!({"seconds": 31_536_001}),
        json!({"minutes": 5}),
    ] {
        let r = http::post(server.addr, &format!("{mutes}/bob"), Some(&alice), &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
    }
    let r = http::post(
        server.addr,
        &format!("{mutes}/alice"),
        Some(&alice),
        &json!({}),
    )
    .await;
    assert_eq!(r.error_code(), "invalid_field", "{}", r.body);
    let r = http::post(
        server.addr,
        &format!("/api/rooms/{room}/members"),
        Some(&alice),
        &json!({"username": "bob", "role": "owner"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http::post(
        server.addr,
        &format!("{mutes}/alice"),
        Some(&bob),
        &json!({}),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (409, "conflict"),
        "{}",
        r.body
    );

    let log = audited(&server, &room).await;
    assert!(
        log.contains(&(
            "mute_in_room".into(),
            "bob".into(),
            String::new(),
            "calm down".into()
        )),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|e| e.0 == "mute_in_room" && e.2.starts_with("until ")),
        "{log:?}"
    );
    assert!(
        log.iter().any(|e| e.0 == "unmute_in_room" && e.1 == "bob"),
        "{log:?}"
    );
    server.stop().await;
}

async fn read_only_rooms_let_only_owners_and_staff_post(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let staff = server.user("staff").await;
    let staff_id = user_id(&server, &staff).await;
    server.db.store().set_staff(staff_id, true).await.unwrap();
    let room = format!("ro-{}", unique());
    server.create_room(&alice, &room).await;
    let mut a = WsClient::connect(server.addr, &alice).await;
    let mut b = WsClient::connect(server.addr, &bob).await;
    let mut s = WsClient::connect(server.addr, &staff).await;
    for ws in [&mut a, &mut b, &mut s] {
        assert_eq!(
            ws.ask(json!({"type": "join", "room": room}), "j").await["type"],
            "joined"
        );
    }
    let path = format!("/api/rooms/{room}");
    let r = http::patch(
        server.addr,
        &path,
        Some(&alice),
        &json!({"read_only": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["read_only"], true);
    assert_eq!(
        http::get(server.addr, &path, Some(&bob)).await.json()["read_only"],
        true
    );
    let e = send_until_refused(&mut b, &room, "read_only").await;
    assert!(e["message"].as_str().unwrap().contains("read-only"), "{e}");
    // Owners and staff still post; everyone still reads.
    let m = a
        .ask(
            json!({"type": "send", "room": room, "body": "announcement"}),
            "s",
        )
        .await;
    assert_eq!(m["type"], "message", "{m}");
    assert_eq!(b.next_of("message").await["body"], "announcement");
    let m = s
        .ask(
            json!({"type": "send", "room": room, "body": "staff note"}),
            "s",
        )
        .await;
    assert_eq!(m["type"], "message", "{m}");
    // Made an owner, Bob posts; made a member again, he cannot.
    let member = format!("/api/rooms/{room}/members/bob");
    let r = http::patch(
        server.addr,
        &member,
        Some(&alice),
        &json!({"role": "owner"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    send_until_accepted(&mut b, &room).await;
    let r = http::patch(
        server.addr,
        &member,
        Some(&alice),
        &json!({"role": "member"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    send_until_refused(&mut b, &room, "read_only").await;
    // A socket joining a read-only room learns it at once.
    let mut b2 = WsClient::connect(server.addr, &bob).await;
    b2.ask(json!({"type": "join", "room": room}), "j").await;
    let e = b2
        .ask(json!({"type": "send", "room": room, "body": "x"}), "s")
        .await;
    assert_eq!(e["code"], "read_only", "{e}");
    // Writable again.
    let r = http::patch(
        server.addr,
        &path,
        Some(&alice),
        &json!({"read_only": false}),
    )
    .await;
    assert_eq!(r.json()["read_only"], false, "{}", r.body);
    send_until_accepted(&mut b, &room).await;
    // A direct room cannot be read-only.
    let dm = http::post(server.addr, "/api/direct/bob", Some(&alice), &json!({}))
        .await
        .json();
    let dm = dm["name"].as_str().unwrap();
    let r = http::patch(
        server.addr,
        &format!("/api/rooms/{dm}"),
        Some(&staff),
        &json!({"read_only": true}),
    )
    .await;
    assert_eq!(r.error_code(), "invalid_field", "{}", r.body);

    let log = audited(&server, &room).await;
    assert!(
        log.contains(&(
            "set_read_only".into(),
            String::new(),
            "on".into(),
            String::new()
        )),
        "{log:?}"
    );
    assert!(
        log.contains(&(
            "set_read_only".into(),
            String::new(),
            "off".into(),
            String::new()
        )),
        "{log:?}"
    );
    assert!(
        log.contains(&(
            "change_role".into(),
            "bob".into(),
            "owner".into(),
            String::new()
        )),
        "{log:?}"
    );
    assert!(
        log.contains(&(
            "change_role".into(),
            "bob".into(),
            "member".into(),
            String::new()
        )),
        "{log:?}"
    );
    server.stop().await;
}

async fn owners_delete_any_message_and_a_room_keeps_an_owner(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let room = format!("del-{}", unique());
    server.create_room(&alice, &room).await;
    let mut a = WsClient::connect(server.addr, &alice).await;
    let mut b = WsClient::connect(server.addr, &bob).await;
    let mut c = WsClient::connect(server.addr, &carol).await;
    for ws in [&mut a, &mut b, &mut c] {
        ws.ask(json!({"type": "join", "room": room}), "j").await;
    }
    let rude = b
        .ask(json!({"type": "send", "room": room, "body": "rude"}), "s")
        .await;
    let rude = rude["id"].as_i64().unwrap();
    let fine = a
        .ask(json!({"type": "send", "room": room, "body": "fine"}), "s")
        .await;
    let fine = fine["id"].as_i64().unwrap();
    // A plain member may not delete someone else's message; the owner may.
    let e = c
        .ask(json!({"type": "delete", "message_id": fine}), "d")
        .await;
    assert_eq!(e["code"], "forbidden", "{e}");
    let d = a
        .ask(json!({"type": "delete", "message_id": rude}), "d")
        .await;
    assert_eq!(d["type"], "deleted", "{d}");
    assert_eq!(b.next_of("deleted").await["message_id"], rude);
    // Her own message she edits as before (others' only staff may edit).
    let e = a
        .ask(
            json!({"type": "edit", "message_id": fine, "body": "mine"}),
            "e",
        )
        .await;
    assert_eq!(e["type"], "edited", "{e}");

    // A room keeps an owner: the last owner cannot be made a member.
    let r = http::patch(
        server.addr,
        &format!("/api/rooms/{room}/members/alice"),
        Some(&alice),
        &json!({"role": "member"}),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (409, "conflict"),
        "{}",
        r.body
    );
    let r = http::post(
        server.addr,
        &format!("/api/rooms/{room}/members"),
        Some(&alice),
        &json!({"username": "alice", "role": "member"}),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (409, "conflict"),
        "{}",
        r.body
    );
    // With a second owner, she may step down.
    let r = http::patch(
        server.addr,
        &format!("/api/rooms/{room}/members/carol"),
        Some(&alice),
        &json!({"role": "owner"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http::patch(
        server.addr,
        &format!("/api/rooms/{room}/members/alice"),
        Some(&alice),
        &json!({"role": "member"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Carol (now an owner) removes Bob, then deletes the room: both recorded.
    let r = http::delete(
        server.addr,
        &format!("/api/rooms/{room}/members/bob"),
        Some(&carol),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(b.next_of("left").await["room"], room.as_str());
    let r = http::delete(server.addr, &format!("/api/rooms/{room}"), Some(&carol)).await;
    assert_eq!(r.status, 204, "{}", r.body);

    let log = audited(&server, &room).await;
    assert!(
        log.contains(&(
            "delete_message".into(),
            "bob".into(),
            rude.to_string(),
            String::new()
        )),
        "{log:?}"
    );
    assert!(
        log.contains(&(
            "change_role".into(),
            "carol".into(),
            "owner".into(),
            String::new()
        )),
        "{log:?}"
    );
    assert!(
        log.contains(&(
            "remove_member".into(),
            "bob".into(),
            String::new(),
            String::new()
        )),
        "{log:?}"
    );
    assert!(
        log.contains(&(
            "delete_room".into(),
            String::new(),
            String::new(),
            String::new()
        )),
        "{log:?}"
    );
    // Alice stepping down herself is not someone else's role: not recorded.
    assert!(
        !log.iter().any(|e| e.0 == "change_role" && e.1 == "alice"),
        "{log:?}"
    );
    server.stop().await;
}

async fn moderation_refuses_non_owners(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.guests = true).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let outsider = server.user("outsider").await;
    let guest = http::post(
        server.addr,
        "/api/auth/guest",
        None,
        &json!({"name": "visitor"}),
    )
    .await;
    assert_eq!(guest.status, 200, "{}", guest.body);
    let guest = guest.json()["access"].as_str().unwrap().to_owned();
    let public = format!("pub-{}", unique());
    server.create_room(&alice, &public).await;
    let private = format!("priv-{}", unique());
    let r = http::post(
        server.addr,
        "/api/rooms",
        Some(&alice),
        &json!({"name": private, "kind": "private"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    for room in [&public, &private] {
        let r = http::post(
            server.addr,
            &format!("/api/rooms/{room}/members"),
            Some(&alice),
            &json!({"username": "bob"}),
        )
        .await;
        assert!(r.status == 201, "{}", r.body);
    }
    let mut g = WsClient::connect(server.addr, &guest).await;
    g.ask(json!({"type": "join", "room": public}), "j").await;
    // A message of Alice's in each room, for the deletion route.
    let mut owner_ws = WsClient::connect(server.addr, &alice).await;
    let mut first = std::collections::HashMap::new();
    for room in [&public, &private] {
        owner_ws
            .ask(json!({"type": "join", "room": room}), "j")
            .await;
        let m = owner_ws
            .ask(json!({"type": "send", "room": room, "body": "keep"}), "s")
            .await;
        first.insert(room.clone(), m["id"].as_i64().unwrap());
    }

    #[derive(Clone, Copy)]
    enum M {
        Get,
        Post,
        Patch,
        Delete,
    }
    let actions = |room: &str| -> Vec<(M, String, Value)> {
        vec![
            (M::Get, format!("/api/rooms/{room}/bans"), json!(null)),
            (M::Post, format!("/api/rooms/{room}/bans/alice"), json!({})),
            (M::Post, format!("/api/rooms/{room}/bans/bob"), json!({})),
            (
                M::Delete,
                format!("/api/rooms/{room}/bans/bob"),
                json!(null),
            ),
            (M::Get, format!("/api/rooms/{room}/mutes"), json!(null)),
            (
                M::Post,
                format!("/api/rooms/{room}/mutes/bob"),
                json!({"seconds": 60}),
            ),
            (
                M::Delete,
                format!("/api/rooms/{room}/mutes/bob"),
                json!(null),
            ),
            (
                M::Patch,
                format!("/api/rooms/{room}"),
                json!({"read_only": true}),
            ),
            (
                M::Patch,
                format!("/api/rooms/{room}/members/bob"),
                json!({"role": "owner"}),
            ),
            (
                M::Patch,
                format!("/api/rooms/{room}/members/alice"),
                json!({"role": "member"}),
            ),
            (
                M::Delete,
                format!("/api/rooms/{room}/members/alice"),
                json!(null),
            ),
            (
                M::Delete,
                format!("/api/rooms/{room}/messages/{}", first[room]),
                json!(null),
            ),
            (M::Delete, format!("/api/rooms/{room}"), json!(null)),
        ]
    };
    let call = |m: M, path: String, body: Value, token: Option<String>| {
        let addr = server.addr;
        async move {
            let token = token.as_deref();
            match m {
                M::Get => http::get(addr, &path, token).await,
                M::Post => http::post(addr, &path, token, &body).await,
                M::Patch => http::patch(addr, &path, token, &body).await,
                M::Delete => http::delete(addr, &path, token).await,
            }
        }
    };
    // (who, room, the code expected): a member, a guest, an outsider, nobody.
    let cases = [
        (Some(bob.clone()), &public, 403, "forbidden"),
        (Some(bob.clone()), &private, 403, "forbidden"),
        (Some(guest.clone()), &public, 403, "forbidden"),
        (Some(outsider.clone()), &public, 403, "forbidden"),
        (Some(outsider.clone()), &private, 403, "not_member"),
        (Some(guest.clone()), &private, 403, "not_member"),
        (None, &public, 401, "unauthorized"),
    ];
    for (who, room, status, code) in cases {
        for (m, path, body) in actions(room) {
            let r = call(m, path.clone(), body, who.clone()).await;
            assert_eq!(r.status, status, "{path}: {}", r.body);
            if status != 401 {
                assert_eq!(r.error_code(), code, "{path}: {}", r.body);
            }
        }
    }
    // Nothing of it took effect: no ban, no mute, not read-only, roles and room as they were.
    let r = http::get(
        server.addr,
        &format!("/api/rooms/{public}/bans"),
        Some(&alice),
    )
    .await;
    assert_eq!(r.json()["bans"], json!([]), "{}", r.body);
    let r = http::get(
        server.addr,
        &format!("/api/rooms/{public}/mutes"),
        Some(&alice),
    )
    .await;
    assert_eq!(r.json()["mutes"], json!([]), "{}", r.body);
    let details = http::get(server.addr, &format!("/api/rooms/{public}"), Some(&alice))
        .await
        .json();
    assert_eq!(details["read_only"], false);
    assert_eq!(details["role"], "owner");
    for room in [&public, &private] {
        let history = http::get(
            server.addr,
            &format!("/api/rooms/{room}/messages"),
            Some(&alice),
        )
        .await
        .json();
        assert_eq!(history["messages"][0]["body"], "keep", "{history}");
    }
    assert!(audited(&server, &public).await.is_empty());
    // Over the socket: a plain member deletes no one else's message.
    let mut a = WsClient::connect(server.addr, &alice).await;
    a.ask(json!({"type": "join", "room": public}), "j").await;
    let m = a
        .ask(json!({"type": "send", "room": public, "body": "mine"}), "s")
        .await;
    let e = g
        .ask(json!({"type": "delete", "message_id": m["id"]}), "d")
        .await;
    assert_eq!(e["code"], "forbidden", "{e}");
    server.stop().await;
}

async fn moderation_reaches_the_other_process(backend: Backend) {
    let db = Arc::new(backend.database().await);
    let prefix = format!("parley-e2e-{}:", unique());
    let redis = |s: &mut parley_server::Settings| {
        s.layer = Some(LayerKind::Redis);
        s.redis_url = Some(redis_url());
        s.redis_prefix = prefix.clone();
    };
    let one = TestServer::start_on(db.clone(), redis).await;
    let two = TestServer::start_on(db.clone(), redis).await;
    let alice = one.user("alice").await;
    let bob = one.user("bob").await;
    let carol = one.user("carol").await;
    let room = format!("multi-mod-{}", unique());
    one.create_room(&alice, &room).await;
    // Bob and Carol are on process two; Alice moderates through process one.
    let mut b = WsClient::connect(two.addr, &bob).await;
    let mut c = WsClient::connect(two.addr, &carol).await;
    for ws in [&mut b, &mut c] {
        assert_eq!(
            ws.ask(json!({"type": "join", "room": room}), "j").await["type"],
            "joined"
        );
    }
    // A mute applies on the other process.
    let r = http::post(
        one.addr,
        &format!("/api/rooms/{room}/mutes/carol"),
        Some(&alice),
        &json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    send_until_refused(&mut c, &room, "muted").await;
    let r = http::delete(
        one.addr,
        &format!("/api/rooms/{room}/mutes/carol"),
        Some(&alice),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    send_until_accepted(&mut c, &room).await;
    // So does read-only.
    let path = format!("/api/rooms/{room}");
    http::patch(one.addr, &path, Some(&alice), &json!({"read_only": true})).await;
    send_until_refused(&mut c, &room, "read_only").await;
    http::patch(one.addr, &path, Some(&alice), &json!({"read_only": false})).await;
    send_until_accepted(&mut c, &room).await;
    // A ban: Bob's socket on process two leaves the room and cannot rejoin.
    let r = http::post(
        one.addr,
        &format!("/api/rooms/{room}/bans/bob"),
        Some(&alice),
        &json!({}),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(b.next_of("left").await["room"], room.as_str());
    let e = b.ask(json!({"type": "join", "room": room}), "j2").await;
    assert_eq!(e["code"], "banned", "{e}");
    // Carol, on the same process, is untouched.
    let m = c
        .ask(
            json!({"type": "send", "room": room, "body": "still here"}),
            "s",
        )
        .await;
    assert_eq!(m["type"], "message", "{m}");
    one.stop().await;
    two.stop().await;
}

/// Makes the account of `token` staff (through the store, as the command line would).
async fn make_staff(server: &TestServer, token: &str) {
    let id = user_id(server, token).await;
    server.db.store().set_staff(id, true).await.unwrap();
}

async fn owners_and_staff_delete_messages_over_rest(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let boss = server.user("boss").await;
    make_staff(&server, &boss).await;
    let room = format!("rest-del-{}", unique());
    let other = format!("rest-other-{}", unique());
    server.create_room(&alice, &room).await;
    server.create_room(&alice, &other).await;
    let mut a = WsClient::connect(server.addr, &alice).await;
    let mut b = WsClient::connect(server.addr, &bob).await;
    let mut c = WsClient::connect(server.addr, &carol).await;
    for ws in [&mut a, &mut b, &mut c] {
        ws.ask(json!({"type": "join", "room": room}), "j").await;
    }
    let id = |m: Value| m["id"].as_i64().unwrap();
    let by_bob = id(b
        .ask(json!({"type": "send", "room": room, "body": "rude"}), "s")
        .await);
    let by_alice = id(a
        .ask(json!({"type": "send", "room": room, "body": "fine"}), "s")
        .await);
    let by_carol = id(c
        .ask(json!({"type": "send", "room": room, "body": "mine"}), "s")
        .await);
    let path = |m: i64| format!("/api/rooms/{room}/messages/{m}");

    // A plain member may not delete someone else's message.
    let r = http::delete(server.addr, &path(by_alice), Some(&carol)).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "forbidden"),
        "{}",
        r.body
    );
    // The owner deletes Bob's: every socket in the room hears it, and it is recorded.
    let r = http::delete(server.addr, &path(by_bob), Some(&alice)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(ws.next_of("deleted").await["message_id"], by_bob);
    }
    // Deleting it again is a conflict; an id of another room or of nothing is not found;
    // a malformed id is refused as such.
    let r = http::delete(server.addr, &path(by_bob), Some(&alice)).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (409, "conflict"),
        "{}",
        r.body
    );
    let r = http::delete(
        server.addr,
        &format!("/api/rooms/{other}/messages/{by_alice}"),
        Some(&alice),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "not_found"),
        "{}",
        r.body
    );
    let r = http::delete(server.addr, &path(999_999_999), Some(&alice)).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = http::delete(
        server.addr,
        &format!("/api/rooms/{room}/messages/x"),
        Some(&alice),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "invalid_field"),
        "{}",
        r.body
    );
    // Staff (not a member) delete anyone's message; an author deletes their own.
    let r = http::delete(server.addr, &path(by_carol), Some(&boss)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(b.next_of("deleted").await["message_id"], by_carol);
    let r = http::delete(server.addr, &path(by_alice), Some(&alice)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(b.next_of("deleted").await["message_id"], by_alice);

    let history = http::get(
        server.addr,
        &format!("/api/rooms/{room}/messages"),
        Some(&bob),
    )
    .await
    .json();
    let tombstones = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| !m["deleted_at"].is_null() && m["body"] == "")
        .count();
    assert_eq!(tombstones, 3, "{history}");
    let log = audited(&server, &room).await;
    let deletions: Vec<_> = log.iter().filter(|e| e.0 == "delete_message").collect();
    assert_eq!(
        deletions,
        vec![
            &(
                "delete_message".to_owned(),
                "carol".to_owned(),
                by_carol.to_string(),
                String::new()
            ),
            &(
                "delete_message".to_owned(),
                "bob".to_owned(),
                by_bob.to_string(),
                String::new()
            ),
        ],
        "only others' messages are recorded, newest first: {log:?}"
    );
    server.stop().await;
}

async fn a_room_keeps_an_owner_when_its_last_owner_goes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let boss = server.user("boss").await;
    make_staff(&server, &boss).await;
    let room = format!("heir-{}", unique());
    server.create_room(&alice, &room).await;
    let mut b = WsClient::connect(server.addr, &bob).await;
    let mut c = WsClient::connect(server.addr, &carol).await;
    // Bob joins first: he is the longest-standing member after Alice.
    b.ask(json!({"type": "join", "room": room}), "j").await;
    c.ask(json!({"type": "join", "room": room}), "j").await;

    // The last owner may not leave, nor be removed by staff: the room would have no owner.
    for who in [&alice, &boss] {
        let r = http::delete(
            server.addr,
            &format!("/api/rooms/{room}/members/alice"),
            Some(who),
        )
        .await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (409, "conflict"),
            "{}",
            r.body
        );
    }
    // Read-only: only owners post. Bob cannot, yet.
    let r = http::patch(
        server.addr,
        &format!("/api/rooms/{room}"),
        Some(&alice),
        &json!({"read_only": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    send_until_refused(&mut b, &room, "read_only").await;

    // Alice's account is deleted: Bob, the longest-standing member, becomes an owner, at once
    // on his open socket; Carol stays a member.
    let r = http::delete(server.addr, "/api/admin/users/alice", Some(&boss)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    send_until_accepted(&mut b, &room).await;
    let e = c
        .ask(json!({"type": "send", "room": room, "body": "me?"}), "s")
        .await;
    assert_eq!(e["code"], "read_only", "{e}");
    let details = http::get(server.addr, &format!("/api/rooms/{room}"), Some(&bob))
        .await
        .json();
    assert_eq!(details["role"], "owner", "{details}");
    let roles: Vec<(String, String)> = details["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["username"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        vec![
            ("bob".to_owned(), "owner".to_owned()),
            ("carol".to_owned(), "member".to_owned())
        ]
    );
    assert!(
        audited(&server, &room).await.contains(&(
            "change_role".into(),
            "bob".into(),
            "owner (hand-over)".into(),
            String::new()
        )),
        "{:?}",
        audited(&server, &room).await
    );

    // Bob's account is deactivated: Carol takes over, and Bob keeps his role for when he is
    // back.
    let r = http::post(
        server.addr,
        "/api/admin/users/bob/deactivate",
        Some(&boss),
        &json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    send_until_accepted(&mut c, &room).await;
    let details = http::get(server.addr, &format!("/api/rooms/{room}"), Some(&carol))
        .await
        .json();
    assert_eq!(details["role"], "owner", "{details}");
    let bob_role = details["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["username"] == "bob")
        .map(|m| m["role"].clone());
    assert_eq!(bob_role, Some(json!("owner")), "{details}");
    // Carol deactivated too: no active member is left to take over; the room keeps its
    // (inactive) owners and staff still moderate it.
    let r = http::post(
        server.addr,
        "/api/admin/users/carol/deactivate",
        Some(&boss),
        &json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http::get(server.addr, &format!("/api/rooms/{room}/bans"), Some(&boss)).await;
    assert_eq!(r.status, 200, "staff still moderate it: {}", r.body);
    server.stop().await;
}

async fn owners_rename_retopic_and_change_visibility_recorded(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.guests = true).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let outsider = server.user("outsider").await;
    let guest = http::post(
        server.addr,
        "/api/auth/guest",
        None,
        &json!({"name": "visitor"}),
    )
    .await;
    assert_eq!(guest.status, 200, "{}", guest.body);
    let guest = guest.json()["access"].as_str().unwrap().to_owned();
    let room = format!("vis-{}", unique());
    let renamed = format!("vis2-{}", unique());
    server.create_room(&alice, &room).await;
    let mut b = WsClient::connect(server.addr, &bob).await;
    let mut g = WsClient::connect(server.addr, &guest).await;
    for ws in [&mut b, &mut g] {
        assert_eq!(
            ws.ask(json!({"type": "join", "room": room}), "j").await["type"],
            "joined"
        );
    }
    let listed = |token: String| {
        let addr = server.addr;
        async move {
            let r = http::get(addr, "/api/rooms?limit=200", Some(&token)).await;
            public_names(&r)
        }
    };
    assert!(listed(outsider.clone()).await.contains(&room));
    // A member who does not own it changes nothing; `direct` is no visibility to choose.
    let path = format!("/api/rooms/{room}");
    let r = http::patch(server.addr, &path, Some(&bob), &json!({"kind": "private"})).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "forbidden"),
        "{}",
        r.body
    );
    let r = http::patch(server.addr, &path, Some(&alice), &json!({"kind": "direct"})).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "invalid_field"),
        "{}",
        r.body
    );
    // Private: the guest's membership ends (its socket leaves), Bob stays, and the directory
    // no longer lists it.
    let r = http::patch(
        server.addr,
        &path,
        Some(&alice),
        &json!({"kind": "private", "topic": "members only"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["kind"], "private");
    assert_eq!(r.json()["topic"], "members only");
    assert_eq!(g.next_of("left").await["room"], room.as_str());
    let e = g.ask(json!({"type": "join", "room": room}), "j2").await;
    assert_eq!(e["type"], "error", "{e}");
    let m = b
        .ask(
            json!({"type": "send", "room": room, "body": "still in"}),
            "s",
        )
        .await;
    assert_eq!(m["type"], "message", "{m}");
    assert!(!listed(outsider.clone()).await.contains(&room));
    let r = http::get(server.addr, &path, Some(&outsider)).await;
    assert_eq!(r.error_code(), "not_member", "{}", r.body);
    // Renamed and public again.
    let r = http::patch(
        server.addr,
        &path,
        Some(&alice),
        &json!({"name": renamed, "kind": "public"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(b.next_of("left").await["room"], room.as_str());
    assert!(listed(outsider.clone()).await.contains(&renamed));
    // Every change recorded; a PATCH that changes nothing records nothing.
    let r = http::patch(
        server.addr,
        &format!("/api/rooms/{renamed}"),
        Some(&alice),
        &json!({"kind": "public", "topic": "members only"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut log: Vec<(String, String)> = audited(&server, &room)
        .await
        .into_iter()
        .chain(audited(&server, &renamed).await)
        .map(|e| (e.0, e.2))
        .collect();
    log.sort();
    assert_eq!(
        log,
        vec![
            ("rename_room".to_owned(), room.clone()),
            ("set_topic".to_owned(), String::new()),
            ("set_visibility".to_owned(), "private".to_owned()),
            ("set_visibility".to_owned(), "public".to_owned()),
        ]
    );
    server.stop().await;
}
