//! Administration (issue 16): the staff routes under `/api/admin` over REST and their effect
//! on sockets — finding and showing accounts, promote/demote, deactivation (every token
//! refused, sockets closed with 4005 on every process), password resets (4004), deleting an
//! account while keeping its messages, the audit log, and turning guests off at run time.

use parley_e2e::{Backend, TestServer, WsClient, http, login, redis_url, unique};
use parley_server::LayerKind;
use serde_json::{Value, json};
use std::sync::Arc;

crate::on_both!(
    every_admin_route_refuses_non_staff_and_anonymous_callers,
    staff_find_and_show_accounts,
    promote_demote_and_the_staff_who_act_are_kept,
    deactivation_refuses_every_token_and_closes_sockets,
    a_password_reset_revokes_every_token,
    a_deleted_account_keeps_its_messages,
    staff_turn_guests_off_at_run_time,
    a_deactivated_users_sockets_close_on_every_process,
    a_promotion_reaches_open_sockets_on_every_process,
    new_accounts_join_the_default_rooms
);

/// Makes the account of `token` staff (through the store: the first staff member comes from
/// the command line in real life) and returns its user name.
pub(crate) async fn make_staff(server: &TestServer, token: &str) -> String {
    let me = http::get(server.addr, "/api/me", Some(token)).await.json();
    let id = parley_domain::UserId(me["id"].as_i64().unwrap());
    server.db.store().set_staff(id, true).await.unwrap();
    me["username"].as_str().unwrap().to_owned()
}

/// `POST path` as `token`, with `body`.
async fn post(server: &TestServer, path: &str, token: &str, body: Value) -> http::Response {
    http::post(server.addr, path, Some(token), &body).await
}

fn code(r: &http::Response) -> (u16, String) {
    (r.status, r.error_code())
}

async fn every_admin_route_refuses_non_staff_and_anonymous_callers(backend: Backend) {
    let server = TestServer::start(backend).await;
    let boss = server.user("boss").await;
    make_staff(&server, &boss).await;
    let bob = server.user("bob").await;
    let routes: [(&str, &str, Option<Value>); 11] = [
        ("GET", "/api/admin/users", None),
        ("GET", "/api/admin/users/boss", None),
        ("DELETE", "/api/admin/users/boss", None),
        ("POST", "/api/admin/users/boss/promote", Some(json!({}))),
        ("POST", "/api/admin/users/boss/demote", Some(json!({}))),
        ("POST", "/api/admin/users/boss/deactivate", Some(json!({}))),
        ("POST", "/api/admin/users/boss/reactivate", Some(json!({}))),
        (
            "POST",
            "/api/admin/users/boss/password",
            Some(json!({"password": "a new password"})),
        ),
        ("GET", "/api/admin/audit", None),
        ("GET", "/api/admin/guests", None),
        ("PUT", "/api/admin/guests", Some(json!({"enabled": false}))),
    ];
    for (method, path, body) in &routes {
        let anonymous = http::request(server.addr, method, path, None, body.as_ref(), &[]).await;
        assert_eq!(
            code(&anonymous),
            (401, "unauthorized".to_owned()),
            "{method} {path}: {}",
            anonymous.body
        );
        let member = http::request(server.addr, method, path, Some(&bob), body.as_ref(), &[]).await;
        assert_eq!(
            code(&member),
            (403, "forbidden".to_owned()),
            "{method} {path}: {}",
            member.body
        );
    }
    // Nothing happened to the staff account, and nothing was recorded.
    let r = http::get(server.addr, "/api/admin/users/boss", Some(&boss)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["user"]["is_staff"], true);
    assert_eq!(r.json()["user"]["is_active"], true);
    let log = http::get(server.addr, "/api/admin/audit", Some(&boss)).await;
    assert_eq!(log.json(), json!([]));
    server.stop().await;
}

async fn staff_find_and_show_accounts(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.guests = true).await;
    let boss = server.user("boss").await;
    make_staff(&server, &boss).await;
    let r = http::post(
        server.addr,
        "/api/auth/register",
        None,
        &json!({"username": "carol", "password": "password-carol", "email": "Carol@Example.org"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let bob = server.user("bob").await;
    let room = format!("bobs-{}", unique());
    server.create_room(&bob, &room).await;
    let r = http::post(
        server.addr,
        "/api/auth/guest",
        None,
        &json!({"name": "visitor"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let names = |page: &Value| -> Vec<String> {
        page["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_owned())
            .collect()
    };
    // Every account, no guest.
    let all = http::get(server.addr, "/api/admin/users", Some(&boss)).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(names(&all.json()), ["bob", "boss", "carol"]);
    assert_eq!(all.json()["next"], Value::Null);
    // By name (substring) and by e-mail (case-insensitive).
    let by_name = http::get(server.addr, "/api/admin/users?q=OS", Some(&boss)).await;
    assert_eq!(names(&by_name.json()), ["boss"]);
    let by_mail = http::get(server.addr, "/api/admin/users?q=example.ORG", Some(&boss)).await;
    assert_eq!(names(&by_mail.json()), ["carol"]);
    // `_` and `%` are not wildcards.
    let wild = http::get(server.addr, "/api/admin/users?q=%25", Some(&boss)).await;
    assert_eq!(names(&wild.json()), Vec::<String>::new());
    // Paged.
    let first = http::get(server.addr, "/api/admin/users?limit=2", Some(&boss)).await;
    assert_eq!(names(&first.json()), ["bob", "boss"]);
    assert_eq!(first.json()["next"], "boss");
    let second = http::get(
        server.addr,
        "/api/admin/users?limit=2&after=boss",
        Some(&boss),
    )
    .await;
    assert_eq!(names(&second.json()), ["carol"]);
    assert_eq!(second.json()["next"], Value::Null);
    let bad = http::get(server.addr, "/api/admin/users?limit=x", Some(&boss)).await;
    assert_eq!(
        code(&bad),
        (400, "invalid_field".to_owned()),
        "{}",
        bad.body
    );

    // One account: flags, last login, rooms with the role, linked sign-ins.
    let r = http::get(server.addr, "/api/admin/users/bob", Some(&boss)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let details = r.json();
    assert_eq!(details["user"]["username"], "bob");
    assert_eq!(details["user"]["is_staff"], false);
    assert_eq!(details["user"]["is_active"], true);
    assert!(
        details["user"]["last_login"].as_i64().unwrap() > 0,
        "{details}"
    );
    assert_eq!(details["rooms"][0]["name"], room.as_str());
    assert_eq!(details["rooms"][0]["role"], "owner");
    assert_eq!(details["rooms"][0]["kind"], "public");
    assert_eq!(details["linked_sign_ins"], json!([]));
    // A guest, a name nobody has, a malformed name.
    let guests = http::get(server.addr, "/api/admin/users?q=visitor", Some(&boss)).await;
    assert_eq!(names(&guests.json()), Vec::<String>::new());
    let r = http::get(server.addr, "/api/admin/users/nobody", Some(&boss)).await;
    assert_eq!(code(&r), (404, "not_found".to_owned()), "{}", r.body);
    let r = http::get(server.addr, "/api/admin/users/x", Some(&boss)).await;
    assert_eq!(code(&r), (400, "invalid_field".to_owned()), "{}", r.body);
    server.stop().await;
}

async fn promote_demote_and_the_staff_who_act_are_kept(backend: Backend) {
    let server = TestServer::start(backend).await;
    let boss = server.user("boss").await;
    make_staff(&server, &boss).await;
    let bob = server.user("bob").await;

    let r = post(
        &server,
        "/api/admin/users/bob/promote",
        &boss,
        json!({"reason": "runs the help desk"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["is_staff"], true);
    // Bob's own token now acts as staff (the account is read on every request).
    let r = http::get(server.addr, "/api/admin/users", Some(&bob)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The body may be left out.
    let r = http::request(
        server.addr,
        "POST",
        "/api/admin/users/bob/demote",
        Some(&boss),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["is_staff"], false);
    assert_eq!(
        code(&http::get(server.addr, "/api/admin/users", Some(&bob)).await),
        (403, "forbidden".to_owned())
    );
    // A bad reason, an unknown field: typed refusals, nothing changed.
    let r = post(
        &server,
        "/api/admin/users/bob/promote",
        &boss,
        json!({"reason": ""}),
    )
    .await;
    assert_eq!(code(&r), (400, "invalid_field".to_owned()), "{}", r.body);
    let r = post(
        &server,
        "/api/admin/users/bob/promote",
        &boss,
        json!({"why": "x"}),
    )
    .await;
    assert_eq!(code(&r), (400, "unknown_field".to_owned()), "{}", r.body);
    // Staff cannot demote, deactivate or delete themselves.
    for (method, path) in [
        ("POST", "/api/admin/users/boss/demote"),
        ("POST", "/api/admin/users/boss/deactivate"),
        ("DELETE", "/api/admin/users/boss"),
    ] {
        let r = http::request(server.addr, method, path, Some(&boss), None, &[]).await;
        assert_eq!(code(&r), (409, "conflict".to_owned()), "{path}: {}", r.body);
    }
    let me = http::get(server.addr, "/api/me", Some(&boss)).await.json();
    assert_eq!(
        (me["is_staff"].as_bool(), me["is_active"].as_bool()),
        (Some(true), Some(true))
    );

    // The audit log: newest first, with the reason; filtered; paged.
    let log = http::get(server.addr, "/api/admin/audit", Some(&boss)).await;
    assert_eq!(log.status, 200, "{}", log.body);
    let entries = log.json();
    let actions: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["demote_staff", "promote_staff"]);
    assert_eq!(entries[1]["actor"], "boss");
    assert_eq!(entries[1]["user"], "bob");
    assert_eq!(entries[1]["reason"], "runs the help desk");
    assert_eq!(entries[0]["reason"], Value::Null);
    let older = entries[0]["id"].as_i64().unwrap();
    let page = http::get(
        server.addr,
        &format!("/api/admin/audit?before={older}&limit=5"),
        Some(&boss),
    )
    .await
    .json();
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["action"], "promote_staff");
    let by_actor = http::get(server.addr, "/api/admin/audit?actor=bob", Some(&boss)).await;
    assert_eq!(by_actor.json(), json!([]));
    let by_user = http::get(
        server.addr,
        "/api/admin/audit?user=bob&limit=1",
        Some(&boss),
    )
    .await;
    assert_eq!(by_user.json()[0]["action"], "demote_staff");
    let bad = http::get(server.addr, "/api/admin/audit?room=%20", Some(&boss)).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    server.stop().await;
}

async fn deactivation_refuses_every_token_and_closes_sockets(backend: Backend) {
    let server = TestServer::start(backend).await;
    let boss = server.user("boss").await;
    make_staff(&server, &boss).await;
    server.user("bob").await;
    let session = login(server.addr, "bob").await;
    let access = session["access"].as_str().unwrap().to_owned();
    let refresh = session["refresh"].as_str().unwrap().to_owned();
    let mut ws = WsClient::connect(server.addr, &access).await;
    assert_eq!(ws.ask(json!({"type": "ping"}), "p").await["type"], "pong");

    let r = post(
        &server,
        "/api/admin/users/bob/deactivate",
        &boss,
        json!({"reason": "spam"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["is_active"], false);
    assert_eq!(ws.closed().await.0, 4005);
    // Every token of the account is refused, and it cannot log in again.
    let r = http::get(server.addr, "/api/me", Some(&access)).await;
    assert_eq!(code(&r), (403, "account_disabled".to_owned()), "{}", r.body);
    let r = http::post(
        server.addr,
        "/api/auth/refresh",
        None,
        &json!({"refresh": refresh}),
    )
    .await;
    assert_eq!(code(&r), (403, "account_disabled".to_owned()), "{}", r.body);
    let r = http::post(
        server.addr,
        "/api/auth/login",
        None,
        &json!({"username": "bob", "password": "password-bob"}),
    )
    .await;
    assert_eq!(code(&r), (403, "account_disabled".to_owned()), "{}", r.body);
    // A wrong password still says only that.
    let r = http::post(
        server.addr,
        "/api/auth/login",
        None,
        &json!({"username": "bob", "password": "not bob's password"}),
    )
    .await;
    assert_eq!(
        code(&r),
        (401, "invalid_credentials".to_owned()),
        "{}",
        r.body
    );
    assert_eq!(
        WsClient::try_connect(server.addr, &format!("/ws?token={access}"), &[])
            .await
            .err(),
        Some(403)
    );
    // Deactivating twice changes nothing and records nothing more.
    let r = post(&server, "/api/admin/users/bob/deactivate", &boss, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Reactivated: old tokens stay useless; a new login works.
    let r = post(&server, "/api/admin/users/bob/reactivate", &boss, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["is_active"], true);
    let r = http::get(server.addr, "/api/me", Some(&access)).await;
    assert_eq!(code(&r), (401, "token_revoked".to_owned()), "{}", r.body);
    let r = http::post(
        server.addr,
        "/api/auth/refresh",
        None,
        &json!({"refresh": refresh}),
    )
    .await;
    assert_eq!(code(&r), (401, "token_revoked".to_owned()), "{}", r.body);
    let again = login(server.addr, "bob").await;
    let mut ws = WsClient::connect(server.addr, again["access"].as_str().unwrap()).await;
    assert_eq!(ws.ask(json!({"type": "ping"}), "p").await["type"], "pong");

    let log = http::get(server.addr, "/api/admin/audit?user=bob", Some(&boss))
        .await
        .json();
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["reactivate_user", "deactivate_user"]);
    assert_eq!(log[1]["reason"], "spam");
    server.stop().await;
}

async fn a_password_reset_revokes_every_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    let boss = server.user("boss").await;
    make_staff(&server, &boss).await;
    server.user("bob").await;
    let session = login(server.addr, "bob").await;
    let access = session["access"].as_str().unwrap().to_owned();
    let refresh = session["refresh"].as_str().unwrap().to_owned();
    let mut ws = WsClient::connect(server.addr, &access).await;

    let r = post(
        &server,
        "/api/admin/users/bob/password",
        &boss,
        json!({"password": "bob"}),
    )
    .await;
    assert_eq!(code(&r), (400, "weak_password".to_owned()), "{}", r.body);
    assert_eq!(ws.ask(json!({"type": "ping"}), "p").await["type"], "pong");
    let r = post(
        &server,
        "/api/admin/users/bob/password",
        &boss,
        json!({"password": "a brand new secret", "reason": "locked out"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ws.closed().await.0, 4004);
    let r = http::get(server.addr, "/api/me", Some(&access)).await;
    assert_eq!(code(&r), (401, "token_revoked".to_owned()), "{}", r.body);
    let r = http::post(
        server.addr,
        "/api/auth/refresh",
        None,
        &json!({"refresh": refresh}),
    )
    .await;
    assert_eq!(code(&r), (401, "token_revoked".to_owned()), "{}", r.body);
    let old = http::post(
        server.addr,
        "/api/auth/login",
        None,
        &json!({"username": "bob", "password": "password-bob"}),
    )
    .await;
    assert_eq!(code(&old), (401, "invalid_credentials".to_owned()));
    let new = http::post(
        server.addr,
        "/api/auth/login",
        None,
        &json!({"username": "bob", "password": "a brand new secret"}),
    )
    .await;
    assert_eq!(new.status, 200, "{}", new.body);
    let fresh = new.json()["access"].as_str().unwrap().to_owned();
    assert_eq!(
        http::get(server.addr, "/api/me", Some(&fresh)).await.status,
        200
    );
    let log = http::get(server.addr, "/api/admin/audit", Some(&boss))
        .await
        .json();
    assert_eq!(log[0]["action"], "reset_password");
    assert_eq!(log[0]["reason"], "locked out");
    server.stop().await;
}

async fn a_deleted_account_keeps_its_messages(backend: Backend) {
    let server = TestServer::start(backend).await;
    let boss = server.user("boss").await;
    make_staff(&server, &boss).await;
    let bob = server.user("bob").await;
    let room = format!("hall-{}", unique());
    server.create_room(&boss, &room).await;
    let mut ws = WsClient::connect(server.addr, &bob).await;
    ws.ask(json!({"type": "join", "room": room}), "j").await;
    let sent = ws
        .ask(
            json!({"type": "send", "room": room, "body": "remember me"}),
            "s",
        )
        .await;
    assert_eq!(sent["type"], "message", "{sent}");
    let id = http::get(server.addr, "/api/me", Some(&bob)).await.json()["id"]
        .as_i64()
        .unwrap();

    let r = http::request(
        server.addr,
        "DELETE",
        "/api/admin/users/bob",
        Some(&boss),
        Some(&json!({"reason": "asked to leave"})),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let tombstone = format!("deleted.{id}");
    assert_eq!(r.json()["username"], tombstone.as_str());
    assert_eq!(r.json()["is_active"], false);
    assert_eq!(ws.closed().await.0, 4005);
    // The message stays, authored by the tombstone; the account is gone from every list.
    let history = http::get(
        server.addr,
        &format!("/api/rooms/{room}/messages"),
        Some(&boss),
    )
    .await;
    assert_eq!(history.status, 200, "{}", history.body);
    let messages = history.json()["messages"].clone();
    assert_eq!(messages[0]["body"], "remember me");
    assert_eq!(messages[0]["sender"], tombstone.as_str());
    let members = http::get(server.addr, &format!("/api/rooms/{room}"), Some(&boss)).await;
    assert!(!members.body.contains(&tombstone), "{}", members.body);
    let r = http::get(server.addr, "/api/admin/users", Some(&boss)).await;
    assert!(
        !r.body.contains("bob") && !r.body.contains("deleted."),
        "{}",
        r.body
    );
    let r = http::get(server.addr, "/api/admin/users/bob", Some(&boss)).await;
    assert_eq!(code(&r), (404, "not_found".to_owned()));
    let r = http::get(
        server.addr,
        &format!("/api/admin/users/{tombstone}"),
        Some(&boss),
    )
    .await;
    assert_eq!(code(&r), (404, "not_found".to_owned()));
    let r = http::get(server.addr, "/api/me", Some(&bob)).await;
    assert_eq!(code(&r), (403, "account_disabled".to_owned()), "{}", r.body);
    // The name is free again; the tombstone's is not to be had.
    server.user("bob").await;
    let r = http::post(
        server.addr,
        "/api/auth/register",
        None,
        &json!({"username": "deleted.99", "password": "long enough password"}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let log = http::get(server.addr, "/api/admin/audit?user=bob", Some(&boss))
        .await
        .json();
    assert_eq!(log[0]["action"], "delete_user");
    server.stop().await;
}

async fn staff_turn_guests_off_at_run_time(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.guests = true).await;
    let boss = server.user("boss").await;
    make_staff(&server, &boss).await;
    let room = format!("lobby-{}", unique());
    server.create_room(&boss, &room).await;
    let r = http::post(
        server.addr,
        "/api/auth/guest",
        None,
        &json!({"name": "visitor"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let guest = r.json()["access"].as_str().unwrap().to_owned();
    let mut ws = WsClient::connect(server.addr, &guest).await;
    assert_eq!(ws.ask(json!({"type": "ping"}), "p").await["type"], "pong");
    let r = http::get(server.addr, "/api/admin/guests", Some(&boss)).await;
    assert_eq!(r.json(), json!({"enabled": true, "allowed": true}));

    let put = |body: Value| {
        let (addr, boss) = (server.addr, boss.clone());
        async move {
            http::request(
                addr,
                "PUT",
                "/api/admin/guests",
                Some(&boss),
                Some(&body),
                &[],
            )
            .await
        }
    };
    let r = put(json!({"enabled": false, "reason": "raid"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"enabled": false, "allowed": true}));
    assert_eq!(ws.closed().await.0, 4005);
    // Off, as with the setting off: the guest routes look absent, `?guest=` needs a token,
    // and a guest token is refused at the handshake.
    assert_eq!(
        http::get(server.addr, "/api/auth/guest", None).await.status,
        404
    );
    let r = http::post(
        server.addr,
        "/api/auth/guest",
        None,
        &json!({"name": "other"}),
    )
    .await;
    assert_eq!(code(&r), (404, "not_found".to_owned()), "{}", r.body);
    assert_eq!(
        WsClient::try_connect(server.addr, &format!("/ws/chat/{room}/?guest=other"), &[])
            .await
            .err(),
        Some(401)
    );
    assert_eq!(
        WsClient::try_connect(server.addr, &format!("/ws?token={guest}"), &[])
            .await
            .err(),
        Some(403)
    );
    let r = put(json!({"enabled": "no"})).await;
    assert_eq!(code(&r), (400, "invalid_field".to_owned()), "{}", r.body);
    // On again.
    let r = put(json!({"enabled": true})).await;
    assert_eq!(r.json(), json!({"enabled": true, "allowed": true}));
    assert_eq!(
        http::get(server.addr, "/api/auth/guest", None).await.status,
        204
    );
    let log = http::get(server.addr, "/api/admin/audit", Some(&boss))
        .await
        .json();
    assert_eq!(
        (log[0]["action"].as_str(), log[0]["detail"].as_str()),
        (Some("set_guests"), Some("on"))
    );
    assert_eq!(
        (log[1]["detail"].as_str(), log[1]["reason"].as_str()),
        (Some("off"), Some("raid"))
    );
    server.stop().await;

    // With the setting off, staff cannot turn guests on.
    let server = TestServer::start(backend).await;
    let boss = server.user("boss").await;
    make_staff(&server, &boss).await;
    let r = http::request(
        server.addr,
        "PUT",
        "/api/admin/guests",
        Some(&boss),
        Some(&json!({"enabled": true})),
        &[],
    )
    .await;
    assert_eq!(code(&r), (403, "forbidden".to_owned()), "{}", r.body);
    let r = http::get(server.addr, "/api/admin/guests", Some(&boss)).await;
    assert_eq!(r.json(), json!({"enabled": false, "allowed": false}));
    server.stop().await;
}

async fn a_deactivated_users_sockets_close_on_every_process(backend: Backend) {
    let db = Arc::new(backend.database().await);
    let prefix = format!("parley-e2e-{}:", unique());
    let redis = |s: &mut parley_server::Settings| {
        s.layer = Some(LayerKind::Redis);
        s.redis_url = Some(redis_url());
        s.redis_prefix = prefix.clone();
    };
    let one = TestServer::start_on(db.clone(), redis).await;
    let two = TestServer::start_on(db.clone(), redis).await;
    let boss = one.user("boss").await;
    make_staff(&one, &boss).await;
    let bob = one.user("bob").await;
    let carol = one.user("carol").await;
    let mut here = WsClient::connect(one.addr, &bob).await;
    let mut there = WsClient::connect(two.addr, &bob).await;
    let mut bystander = WsClient::connect(two.addr, &carol).await;
    for ws in [&mut here, &mut there, &mut bystander] {
        assert_eq!(ws.ask(json!({"type": "ping"}), "p").await["type"], "pong");
    }
    let r = post(&one, "/api/admin/users/bob/deactivate", &boss, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(here.closed().await.0, 4005);
    assert_eq!(there.closed().await.0, 4005);
    // The other process refuses the token too; nobody else is touched.
    let r = http::get(two.addr, "/api/me", Some(&bob)).await;
    assert_eq!(code(&r), (403, "account_disabled".to_owned()), "{}", r.body);
    assert_eq!(
        bystander.ask(json!({"type": "ping"}), "p").await["type"],
        "pong"
    );
    one.stop().await;
    two.stop().await;
}

async fn new_accounts_join_the_default_rooms(backend: Backend) {
    let db = Arc::new(backend.database().await);
    let defaults = |s: &mut parley_server::Settings| {
        s.default_rooms = vec!["general".into(), "help".into()];
        s.guests = true;
    };
    let server = TestServer::start_on(db.clone(), defaults).await;
    let alice = server.user("alice").await;
    let mine = http::get(server.addr, "/api/me/rooms", Some(&alice))
        .await
        .json();
    let rooms: Vec<(&str, &str)> = mine["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["role"].as_str().unwrap()))
        .collect();
    assert_eq!(rooms, [("general", "member"), ("help", "member")]);
    let general = http::get(server.addr, "/api/rooms/general", Some(&alice)).await;
    assert_eq!(general.status, 200, "{}", general.body);
    assert_eq!(general.json()["kind"], "public");
    assert_eq!(general.json()["creator"], Value::Null);
    // Guests join nothing by themselves.
    let r = http::post(
        server.addr,
        "/api/auth/guest",
        None,
        &json!({"name": "visitor"}),
    )
    .await;
    let guest = r.json()["access"].as_str().unwrap().to_owned();
    let theirs = http::get(server.addr, "/api/me/rooms", Some(&guest))
        .await
        .json();
    assert_eq!(theirs["rooms"], json!([]));
    server.stop().await;

    // A restart finds the rooms there; a room that is not a group room's name is refused.
    let again = TestServer::start_on(db.clone(), defaults).await;
    let bob = again.user("bob").await;
    let r = http::get(again.addr, "/api/me/rooms", Some(&bob))
        .await
        .json();
    assert_eq!(r["rooms"].as_array().unwrap().len(), 2);
    again.stop().await;
    let mut settings = TestServer::settings(&db);
    settings.default_rooms = vec!["dm.1.2".into()];
    let refused = parley_server::Application::build(settings).await;
    assert!(
        refused
            .as_ref()
            .err()
            .is_some_and(|e| e.to_string().contains("default_rooms")),
        "{:?}",
        refused.err()
    );
}

async fn a_promotion_reaches_open_sockets_on_every_process(backend: Backend) {
    use crate::moderation::{send_until_accepted, send_until_refused};
    let db = Arc::new(backend.database().await);
    let prefix = format!("parley-e2e-{}:", unique());
    let redis = |s: &mut parley_server::Settings| {
        s.layer = Some(LayerKind::Redis);
        s.redis_url = Some(redis_url());
        s.redis_prefix = prefix.clone();
    };
    let one = TestServer::start_on(db.clone(), redis).await;
    let two = TestServer::start_on(db.clone(), redis).await;
    let boss = one.user("boss").await;
    make_staff(&one, &boss).await;
    let alice = one.user("alice").await;
    let bob = one.user("bob").await;
    let carol = one.user("carol").await;
    let room = format!("staff-now-{}", unique());
    one.create_room(&alice, &room).await;
    let r = http::patch(
        one.addr,
        &format!("/api/rooms/{room}"),
        Some(&alice),
        &json!({"read_only": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Bob has a socket on each process, joined before he is staff; Carol posts nothing (the
    // room is read-only), so Alice's messages are the ones to delete.
    let mut here = WsClient::connect(one.addr, &bob).await;
    let mut there = WsClient::connect(two.addr, &bob).await;
    let mut a = WsClient::connect(one.addr, &alice).await;
    let mut c = WsClient::connect(two.addr, &carol).await;
    for ws in [&mut here, &mut there, &mut a, &mut c] {
        assert_eq!(
            ws.ask(json!({"type": "join", "room": room}), "j").await["type"],
            "joined"
        );
    }
    let e = there
        .ask(json!({"type": "send", "room": room, "body": "no"}), "s")
        .await;
    assert_eq!(e["code"], "read_only", "{e}");
    let m1 = a
        .ask(json!({"type": "send", "room": room, "body": "one"}), "s")
        .await["id"]
        .clone();
    let m2 = a
        .ask(json!({"type": "send", "room": room, "body": "two"}), "s")
        .await["id"]
        .clone();
    let e = there
        .ask(json!({"type": "delete", "message_id": m1}), "d")
        .await;
    assert_eq!(e["code"], "forbidden", "{e}");

    // Promoted through process one: both of his open sockets post in the read-only room and
    // delete others' messages, without rejoining.
    let r = post(&one, "/api/admin/users/bob/promote", &boss, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    send_until_accepted(&mut there, &room).await;
    send_until_accepted(&mut here, &room).await;
    let d = there
        .ask(json!({"type": "delete", "message_id": m1}), "d")
        .await;
    assert_eq!(d["type"], "deleted", "{d}");
    assert_eq!(c.next_of("deleted").await["message_id"], m1);

    // Demoted: both refuse again, at once.
    let r = post(&one, "/api/admin/users/bob/demote", &boss, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    send_until_refused(&mut there, &room, "read_only").await;
    send_until_refused(&mut here, &room, "read_only").await;
    let e = there
        .ask(json!({"type": "delete", "message_id": m2}), "d")
        .await;
    assert_eq!(e["code"], "forbidden", "{e}");
    // Carol, never staff, was told nothing.
    let e = c
        .ask(json!({"type": "send", "room": room, "body": "me?"}), "s")
        .await;
    assert_eq!(e["code"], "read_only", "{e}");
    one.stop().await;
    two.stop().await;
}
