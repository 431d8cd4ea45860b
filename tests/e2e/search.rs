//! Message search (issue 17): `GET /api/search` on both databases — results newest first,
//! paging, highlighted snippets, edits and deletes, typed refusals of bad input, and the
//! access cases (private rooms, direct chats, removals, bans, guests).

use parley_e2e::{Backend, TestServer, WsClient, http, unique};
use serde_json::{Value, json};

crate::on_both!(
    search_pages_highlights_and_follows_edits_and_deletes,
    search_never_shows_a_room_the_user_cannot_read
);

async fn search(server: &TestServer, token: &str, query: &str) -> http::Response {
    http::get(server.addr, &format!("/api/search?{query}"), Some(token)).await
}

async fn found(server: &TestServer, token: &str, query: &str) -> Vec<String> {
    let r = search(server, token, query).await;
    assert_eq!(r.status, 200, "{query}: {}", r.body);
    r.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["message"]["body"].as_str().unwrap().to_owned())
        .collect()
}

async fn send(ws: &mut WsClient, room: &str, body: &str) -> Value {
    let m = ws
        .ask(json!({"type": "send", "room": room, "body": body}), "s")
        .await;
    assert_eq!(m["type"], "message", "{m}");
    m
}

async fn joined(server: &TestServer, token: &str, room: &str) -> WsClient {
    let mut ws = WsClient::connect(server.addr, token).await;
    let j = ws.ask(json!({"type": "join", "room": room}), "j").await;
    assert_eq!(j["type"], "joined", "{j}");
    ws
}

async fn search_pages_highlights_and_follows_edits_and_deletes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let room = format!("srch-{}", unique());
    server.create_room(&alice, &room).await;
    let mut a = joined(&server, &alice, &room).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(send(&mut a, &room, &format!("Apple pie number {i}")).await["id"].clone());
    }
    send(&mut a, &room, "nothing to see").await;

    // Newest first, paged by `before`.
    let r = search(&server, &alice, "q=apple&limit=2").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let page = r.json();
    assert_eq!(page["terms"], json!(["apple"]));
    let got: Vec<&Value> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["message"]["id"])
        .collect();
    assert_eq!(got, [&ids[4], &ids[3]], "{page}");
    assert_eq!(page["has_more"], true);
    assert_eq!(page["next_before"], ids[3]);
    let hit = &page["results"][0];
    assert_eq!(hit["message"]["room"], room);
    assert_eq!(hit["message"]["sender"], "alice");
    assert!(hit["message"].get("guest").is_none(), "{hit}");
    // The snippet: text segments, the matching word marked (case kept), nothing else.
    assert_eq!(
        hit["snippet"],
        json!([
            {"text": "Apple", "hit": true},
            {"text": " pie number 4", "hit": false}
        ])
    );
    let r = search(
        &server,
        &alice,
        &format!("q=APPLE&limit=2&before={}", page["next_before"]),
    )
    .await
    .json();
    assert_eq!(r["results"][0]["message"]["id"], ids[2], "{r}");
    let r = search(
        &server,
        &alice,
        &format!("q=apple&limit=2&before={}", ids[1]),
    )
    .await;
    let r = r.json();
    assert_eq!(r["results"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["has_more"], false);
    assert_eq!(r["next_before"], Value::Null);
    // Every word must match (AND), whole words only.
    assert_eq!(
        found(&server, &alice, "q=apple+number+3").await,
        ["Apple pie number 3"]
    );
    assert!(found(&server, &alice, "q=app").await.is_empty());

    // Edited: found by the new text only. Deleted: never.
    let e = a
        .ask(
            json!({"type": "edit", "message_id": ids[0], "body": "banana split"}),
            "e",
        )
        .await;
    assert_eq!(e["type"], "edited", "{e}");
    assert_eq!(found(&server, &alice, "q=banana").await, ["banana split"]);
    assert_eq!(found(&server, &alice, "q=apple&limit=50").await.len(), 4);
    let d = a
        .ask(json!({"type": "delete", "message_id": ids[4]}), "d")
        .await;
    assert_eq!(d["type"], "deleted", "{d}");
    let left = found(&server, &alice, "q=apple").await;
    assert_eq!(
        left,
        [
            "Apple pie number 3",
            "Apple pie number 2",
            "Apple pie number 1"
        ]
    );

    // Query syntax is just separators; only the words count.
    assert_eq!(
        found(
            &server,
            &alice,
            "q=%22apple%22+OR+*+NEAR%28number%29+%26+3%3A"
        )
        .await,
        Vec::<String>::new(),
        "OR and NEAR are words too, so nothing holds them all"
    );
    assert_eq!(
        found(&server, &alice, "q=%22apple%22*+%28number%29+%26+-3%3A").await,
        ["Apple pie number 3"]
    );
    // One room only.
    let other = format!("srch-other-{}", unique());
    server.create_room(&alice, &other).await;
    let mut o = joined(&server, &alice, &other).await;
    send(&mut o, &other, "apple elsewhere").await;
    assert_eq!(found(&server, &alice, "q=apple").await.len(), 4);
    assert_eq!(
        found(&server, &alice, &format!("q=apple&room={other}")).await,
        ["apple elsewhere"]
    );

    // Bad input: typed.
    let seventeen_words = format!(
        "q={}",
        (0..17)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join("+")
    );
    for (query, status, code) in [
        ("q=", 400, "invalid_field"),
        ("q=%2A%3A%26+%22%22", 400, "invalid_field"),
        (&*format!("q={}", "a".repeat(201)), 400, "invalid_field"),
        (&*seventeen_words, 400, "invalid_field"),
        ("q=apple&before=0", 400, "invalid_field"),
        ("q=apple&room=no-such-room", 404, "not_found"),
        ("q=apple&room=Bad%20Name%21", 400, "invalid_room_name"),
    ] {
        let r = search(&server, &alice, query).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (status, code),
            "{query}: {}",
            r.body
        );
    }
    let r = http::get(server.addr, "/api/search?q=apple", None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    // The page size is capped (51 asked, 50 served at most): no error.
    assert_eq!(
        search(&server, &alice, "q=apple&limit=500").await.status,
        200
    );
    server.stop().await;
}

async fn search_never_shows_a_room_the_user_cannot_read(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.guests = true).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let dave = server.user("dave").await;
    let word = format!("secret{}", unique().replace('-', ""));
    let q = format!("q={word}");

    // A private room of alice and bob.
    let private = format!("priv-{}", unique());
    let r = http::post(
        server.addr,
        "/api/rooms",
        Some(&alice),
        &json!({"name": private, "kind": "private"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = http::post(
        server.addr,
        &format!("/api/rooms/{private}/members"),
        Some(&alice),
        &json!({"username": "bob"}),
    )
    .await;
    assert!(r.status < 300, "{}", r.body);
    let mut a = joined(&server, &alice, &private).await;
    send(&mut a, &private, &format!("{word} in private")).await;

    // A direct chat of alice and carol.
    let dm = http::post(server.addr, "/api/direct/carol", Some(&alice), &json!({}))
        .await
        .json();
    let dm = dm["name"].as_str().unwrap().to_owned();
    let mut ad = joined(&server, &alice, &dm).await;
    send(&mut ad, &dm, &format!("{word} in direct")).await;

    // A public room alice owns, where dave will be banned.
    let public = format!("pub-{}", unique());
    server.create_room(&alice, &public).await;
    let mut ap = joined(&server, &alice, &public).await;
    send(&mut ap, &public, &format!("{word} in public")).await;

    let mut all = found(&server, &alice, &q).await;
    all.sort();
    assert_eq!(
        all,
        [
            format!("{word} in direct"),
            format!("{word} in private"),
            format!("{word} in public")
        ]
    );
    let in_private = format!("{word} in private");
    let in_direct = format!("{word} in direct");
    let in_public = format!("{word} in public");
    assert_eq!(
        found(&server, &bob, &q).await,
        [in_public.clone(), in_private.clone()]
    );
    assert_eq!(
        found(&server, &carol, &q).await,
        [in_public.clone(), in_direct.clone()]
    );
    assert_eq!(found(&server, &dave, &q).await, [in_public.as_str()]);
    for (who, room) in [
        (&dave, &private),
        (&dave, &dm),
        (&bob, &dm),
        (&carol, &private),
    ] {
        let r = search(&server, who, &format!("{q}&room={room}")).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (403, "not_member"),
            "{}",
            r.body
        );
    }

    // Removed from the private room: bob finds nothing of it any more.
    let r = http::delete(
        server.addr,
        &format!("/api/rooms/{private}/members/bob"),
        Some(&alice),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(found(&server, &bob, &q).await, [in_public.as_str()]);

    // Banned from the public room: dave finds nothing of it, though anyone else may.
    let r = http::post(
        server.addr,
        &format!("/api/rooms/{public}/bans/dave"),
        Some(&alice),
        &json!({}),
    )
    .await;
    assert!(r.status < 300, "{}", r.body);
    assert!(found(&server, &dave, &q).await.is_empty());
    let r = search(&server, &dave, &format!("{q}&room={public}")).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "banned"),
        "{}",
        r.body
    );

    // A guest reads public rooms only; its own messages carry the guest mark.
    let guest = http::post(
        server.addr,
        "/api/auth/guest",
        None,
        &json!({"name": "visitor"}),
    )
    .await;
    assert_eq!(guest.status, 200, "{}", guest.body);
    let guest = guest.json()["access"].as_str().unwrap().to_owned();
    let mut g = joined(&server, &guest, &public).await;
    send(&mut g, &public, &format!("{word} from a guest")).await;
    let r = search(&server, &guest, &q).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.json()["results"].clone();
    let bodies: Vec<&str> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["message"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, [format!("{word} from a guest"), in_public.clone()]);
    assert_eq!(results[0]["message"]["guest"], true, "{results}");
    // Absent (not `false`) for an account, as in every message record.
    assert!(results[1]["message"].get("guest").is_none(), "{results}");
    let r = search(&server, &guest, &format!("{q}&room={private}")).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "not_member"),
        "{}",
        r.body
    );
    server.stop().await;
}
