//! The REST API's edges: error shapes and statuses, body limits, room management.

use parley_e2e::{Backend, TestServer, WsClient, http, unique};
use serde_json::{Value, json};
use std::collections::HashSet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

crate::on_both!(
    errors_have_codes_and_statuses,
    room_management,
    account_endpoints_are_rate_limited,
    room_lists_are_paged
);

async fn errors_have_codes_and_statuses(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let addr = server.addr;

    let r = http::get(addr, "/api/me", None).await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "unauthorized"));
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert!(r.header("x-request-id").is_some());
    let r = http::get(addr, "/api/me", Some("not-a-token")).await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "token_invalid"));

    let r = http::get(addr, "/api/nothing-here", Some(&alice)).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));
    let r = http::get(addr, "/api/rooms/no-such-room", Some(&alice)).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));

    let r = http::post(
        addr,
        "/api/rooms",
        Some(&alice),
        &json!({"name": "ok", "colour": 1}),
    )
    .await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "unknown_field"));
    let r = http::post(addr, "/api/rooms", Some(&alice), &json!({"kind": "public"})).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "missing_field"));
    let r = http::post(
        addr,
        "/api/rooms",
        Some(&alice),
        &json!({"name": "bad name!"}),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "invalid_room_name")
    );
    let r = http::post(addr, "/api/rooms", Some(&alice), &json!({"name": "dm.1.2"})).await;
    assert_eq!(r.status, 400);
    let r = http::post(
        addr,
        "/api/rooms",
        Some(&alice),
        &json!({"name": "ok", "kind": "secret"}),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "invalid_field"),
        "{}",
        r.body
    );
    let r = http::post(
        addr,
        "/api/auth/register",
        None,
        &json!({"username": "weakling", "password": "short"}),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "weak_password"),
        "{}",
        r.body
    );
    let raw = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    let r = http::raw_request(addr, raw.as_bytes()).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "invalid_content_type"),
        "{}",
        r.body
    );
    let r = http::request(
        addr,
        "POST",
        "/api/auth/login",
        None,
        None,
        &[
            ("content-type", "application/json"),
            ("content-length", "9"),
        ],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let raw = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{{\"usernam"
    );
    let r = http::raw_request(addr, raw.as_bytes()).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "invalid_json"));

    // Over the JSON limit: 413, refused from Content-Length before the body is read. The
    // head announces 70 KiB and no byte of the body is sent: the answer comes anyway.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        70 * 1024
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !String::from_utf8_lossy(&answer).contains("too_large") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed without an answer: {}",
                String::from_utf8_lossy(&answer)
            );
            answer.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(parley_e2e::WAIT, read)
        .await
        .expect("no answer before the body was sent");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    // The same body sent whole is refused alike.
    let big = json!({"username": "x".repeat(70 * 1024), "password": "y"});
    let r = http::post(addr, "/api/auth/login", None, &big).await;
    assert_eq!((r.status, r.error_code().as_str()), (413, "too_large"));

    let name = format!("dup-{}", unique());
    let r = http::post(addr, "/api/rooms", Some(&alice), &json!({"name": name})).await;
    assert_eq!(r.status, 201);
    let r = http::post(addr, "/api/rooms", Some(&alice), &json!({"name": name})).await;
    assert_eq!((r.status, r.error_code().as_str()), (409, "conflict"));

    let r = http::get(addr, "/api/rooms/x/messages?limit=abc", Some(&alice)).await;
    assert_eq!(r.status, 400);

    let r = http::post(addr, "/api/direct/alice", Some(&alice), &json!({})).await;
    assert_eq!(r.status, 400);
    let r = http::post(addr, "/api/direct/nobody", Some(&alice), &json!({})).await;
    assert_eq!(r.status, 404);

    // A plain GET on the socket's path (no upgrade) is a 400, and opens no session.
    let r = http::get(addr, "/ws", Some(&alice)).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "not_a_websocket")
    );

    assert_eq!(http::get(addr, "/healthz", None).await.status, 200);
    let r = http::get(addr, "/readyz", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    server.stop().await;
}

async fn room_management(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let addr = server.addr;
    let room = format!("team-{}", unique());
    let r = http::post(
        addr,
        "/api/rooms",
        Some(&alice),
        &json!({"name": room, "topic": "t1"}),
    )
    .await;
    assert_eq!(r.status, 201);

    let r = http::get(addr, &format!("/api/rooms/{room}"), Some(&bob)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let detail = r.json();
    assert_eq!(detail["topic"], "t1");
    assert_eq!(detail["members"][0]["username"], "alice");
    assert_eq!(detail["members"][0]["role"], "owner");

    // Only the owner (or staff) manages the room.
    let patch = |token: String, body: serde_json::Value| {
        let room = room.clone();
        async move {
            http::request(
                addr,
                "PATCH",
                &format!("/api/rooms/{room}"),
                Some(&token),
                Some(&body),
                &[],
            )
            .await
        }
    };
    let r = patch(bob.clone(), json!({"topic": "mine now"})).await;
    assert_eq!((r.status, r.error_code().as_str()), (403, "forbidden"));
    let r = patch(alice.clone(), json!({"topic": "t2"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["topic"], "t2");
    let r = http::delete(addr, &format!("/api/rooms/{room}"), Some(&bob)).await;
    assert_eq!(r.status, 403);

    // Deleting tells joined sockets to leave.
    let mut b = WsClient::connect(addr, &bob).await;
    b.ask(json!({"type": "join", "room": room}), "j").await;
    let r = http::delete(addr, &format!("/api/rooms/{room}"), Some(&alice)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(b.next_of("left").await["room"], room.as_str());
    let r = http::get(addr, &format!("/api/rooms/{room}"), Some(&alice)).await;
    assert_eq!(r.status, 404);
    server.stop().await;
}

async fn account_endpoints_are_rate_limited(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        s.auth_rate = 0.01;
        s.auth_burst = 3.0;
    })
    .await;
    let guess = json!({"username": "alice", "password": "guess-guess"});
    for _ in 0..3 {
        let r = http::post(server.addr, "/api/auth/login", None, &guess).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let r = http::post(server.addr, "/api/auth/login", None, &guess).await;
    assert_eq!((r.status, r.error_code().as_str()), (429, "rate_limited"));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1, "{retry}");
    // Other endpoints are not affected.
    assert_eq!(http::get(server.addr, "/healthz", None).await.status, 200);
    server.stop().await;
}

/// Names of a `{rooms, next}` page.
fn page_names(page: &Value) -> Vec<String> {
    page["rooms"]
        .as_array()
        .unwrap_or_else(|| panic!("no rooms in {page}"))
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn room_lists_are_paged(backend: Backend) {
    // Issue 14, item 7: one user's 5,000 rooms made every user's list 1.9 MB. Lists are
    // pages now, and a user's own list holds only the rooms they belong to.
    let server = TestServer::start_with(backend, |s| {
        s.room_create_burst = 1000.0;
    })
    .await;
    let addr = server.addr;
    let spammer = server.user("spammer").await;
    let bob = server.user("bob").await;
    let total = 250;
    for i in 0..total {
        let name = format!("spam-{i:03}");
        let r = http::post(addr, "/api/rooms", Some(&spammer), &json!({"name": name})).await;
        assert_eq!(r.status, 201, "{name}: {}", r.body);
    }
    let r = http::post(
        addr,
        "/api/rooms",
        Some(&bob),
        &json!({"name": "bobs-den", "kind": "private"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);

    // Bob's sidebar: his one room, whatever anyone else created.
    let r = http::get(addr, "/api/me/rooms", Some(&bob)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mine = r.json();
    assert_eq!(page_names(&mine), vec!["bobs-den"]);
    assert_eq!(mine["rooms"][0]["role"], "owner");
    assert!(mine["next"].is_null());
    assert!(r.body.len() < 1024, "{} bytes", r.body.len());

    // The directory: 100 rooms a page by default, then `next` onwards; every public room
    // exactly once, no private one.
    let r = http::get(addr, "/api/rooms", Some(&bob)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let first = r.json();
    assert_eq!(page_names(&first).len(), 100);
    assert_eq!(first["next"], "spam-099");
    let mut seen = Vec::new();
    let mut path = "/api/rooms?limit=60".to_owned();
    loop {
        let page = http::get(addr, &path, Some(&bob)).await.json();
        let names = page_names(&page);
        assert!(names.len() <= 60);
        seen.extend(names);
        match page["next"].as_str() {
            Some(next) => path = format!("/api/rooms?limit=60&after={next}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..total).map(|i| format!("spam-{i:03}")).collect();
    assert_eq!(seen, expected);
    // Sizes are clamped to 1..=200.
    let page = http::get(addr, "/api/rooms?limit=100000", Some(&bob))
        .await
        .json();
    assert_eq!(page_names(&page).len(), 200);
    let page = http::get(addr, "/api/rooms?limit=0", Some(&spammer))
        .await
        .json();
    assert_eq!(page_names(&page), vec!["spam-000"]);
    assert_eq!(page["rooms"][0]["role"], "owner");
    // The spammer's own list is paged like any other.
    let page = http::get(addr, "/api/me/rooms?after=spam-199", Some(&spammer))
        .await
        .json();
    assert_eq!(page_names(&page).len(), 50);
    assert!(page["next"].is_null());
    // A name prefix narrows the directory (case-insensitively, as names are).
    let page = http::get(addr, "/api/rooms?q=SPAM-24&limit=5", Some(&bob))
        .await
        .json();
    assert_eq!(
        page_names(&page),
        vec!["spam-240", "spam-241", "spam-242", "spam-243", "spam-244"]
    );
    let page = http::get(
        addr,
        &format!(
            "/api/rooms?q=spam-24&limit=5&after={}",
            page["next"].as_str().unwrap()
        ),
        Some(&bob),
    )
    .await
    .json();
    assert_eq!(page_names(&page).len(), 5);
    assert!(page["next"].is_null());
    let unique: HashSet<String> = seen.into_iter().collect();
    assert_eq!(unique.len(), total);
    // Bad parameters are refused with a code, not ignored.
    for bad in [
        "q=no%20spaces",
        "after=-x",
        "limit=-1",
        "limit=many",
        "page=2",
    ] {
        let r = http::get(addr, &format!("/api/rooms?{bad}"), Some(&bob)).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (400, "invalid_field"),
            "{bad}: {}",
            r.body
        );
    }
    server.stop().await;
}
