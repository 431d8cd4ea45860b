//! Every row of `docs/protocol.md`'s "Limits" table against the real server: the table is the
//! engine's defaults, and for each client frame type a flood from one user, spread over two
//! of their sockets, is answered with `rate_limited` past one budget (per user, not per
//! socket) while another user in the room sees no more of it than the budget let through.

use parley_core::{Budget, EngineConfig};
use parley_domain::protocol::FrameType;
use parley_e2e::{Backend, TestServer, WsClient, unique};
use serde_json::{Value, json};
use std::time::Instant;
use tokio_tungstenite::tungstenite::Message;

crate::on_both!(
    every_frame_type_has_a_per_user_limit,
    room_creation_is_limited_per_user,
    asking_for_direct_rooms_does_not_list_the_users
);

const PROTOCOL_DOC: &str = include_str!("../../docs/protocol.md");

/// One row of the table: a frame type and its default rate and burst.
#[derive(Debug)]
struct Row {
    frame: FrameType,
    per_second: f64,
    burst: f64,
}

/// The rows of the "Limits" table.
fn table() -> Vec<Row> {
    let section = PROTOCOL_DOC
        .split("\n## Limits\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("docs/protocol.md has a Limits section");
    section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`');
            let frame = FrameType::parse(name).unwrap_or_else(|| panic!("no frame type {name}"));
            let (rate, burst) = cells[3].split_once(',').expect("`rate, burst`");
            Row {
                frame,
                per_second: rate.trim().parse().expect("rate"),
                burst: burst.trim().parse().expect("burst"),
            }
        })
        .collect()
}

#[test]
fn the_limits_table_is_the_engines_defaults_and_has_every_frame_type() {
    let rows = table();
    let config = EngineConfig::default();
    for frame in FrameType::ALL {
        let row = rows
            .iter()
            .find(|r| r.frame == frame)
            .unwrap_or_else(|| panic!("docs/protocol.md's Limits table has no `{frame}` row"));
        let limit = Budget::of(frame).limit(&config);
        assert_eq!(
            (row.per_second, row.burst),
            (limit.per_second, limit.burst),
            "`{frame}`: the table says {row:?}, the engine {limit:?}"
        );
    }
    assert_eq!(rows.len(), FrameType::ALL.len(), "one row per frame type");
}

/// A frame and the ref it carries.
fn with_ref(mut frame: Value, reference: String) -> Value {
    frame["ref"] = Value::from(reference);
    frame
}

/// Sends `frames` on a socket in one go, then a sentinel frame (of another budget) and
/// returns every frame that came back up to the sentinel's reply.
async fn flood(ws: &mut WsClient, frames: Vec<Value>, sentinel: Value) -> Vec<Value> {
    let messages = frames
        .into_iter()
        .chain([with_ref(sentinel, "sentinel".into())])
        .map(|f| Message::text(f.to_string()));
    ws.send_together(messages).await;
    let mut replies = Vec::new();
    loop {
        let v = ws.next_json().await;
        if v["ref"] == "sentinel" {
            assert_ne!(v["type"], "error", "the sentinel was refused: {v}");
            return replies;
        }
        replies.push(v);
    }
}

/// Sends a marker message from `o` and returns what `b` received before it.
async fn settle(o: &mut WsClient, b: &mut WsClient, room: &str) -> Vec<Value> {
    let marker = o
        .ask(json!({"type": "send", "room": room, "body": "marker"}), "m")
        .await;
    assert_eq!(marker["type"], "message", "{marker}");
    let mut seen = Vec::new();
    loop {
        let v = b.next_json().await;
        if v["type"] == "message" && v["id"] == marker["id"] {
            return seen;
        }
        seen.push(v);
    }
}

async fn every_frame_type_has_a_per_user_limit(backend: Backend) {
    let server = TestServer::start(backend).await;
    for row in table() {
        let frame_type = row.frame;
        let tag = unique();
        let room = format!("lim-{tag}");
        // Fresh users for every row: fresh budgets.
        let owner = server.user(&format!("o{tag}")).await;
        let mut o = WsClient::connect(server.addr, &owner).await;
        server.create_room(&owner, &room).await;
        let (flooder, bystander) = (format!("f{tag}"), format!("b{tag}"));
        let f_token = server.user(&flooder).await;
        let b_token = server.user(&bystander).await;
        let mut f1 = WsClient::connect(server.addr, &f_token).await;
        let mut f2 = WsClient::connect(server.addr, &f_token).await;
        let mut b = WsClient::connect(server.addr, &b_token).await;
        for ws in [&mut o, &mut b, &mut f1] {
            let joined = ws.ask(json!({"type": "join", "room": room}), "j").await;
            assert_eq!(joined["type"], "joined", "{joined}");
        }
        // The bystander sees the flooder arrive before anything is counted: presence frames
        // may be folded and come up to 100 ms later (docs/protocol.md, `presence`).
        loop {
            let v = b.next_json().await;
            let online = v["online"].as_array().cloned().unwrap_or_default();
            if v["type"] == "presence" && online.iter().any(|u| u.as_str() == Some(&flooder)) {
                break;
            }
        }
        // A message to read, and one of the flooder's own to edit and delete.
        let theirs = o
            .ask(json!({"type": "send", "room": room, "body": "hello"}), "m")
            .await;
        let own = f1
            .ask(json!({"type": "send", "room": room, "body": "mine"}), "m")
            .await;
        assert_eq!(own["type"], "message", "{own}");
        let flood_frame = match frame_type {
            FrameType::Join => json!({"type": "join", "room": room}),
            FrameType::Leave => json!({"type": "leave", "room": room}),
            FrameType::Send => json!({"type": "send", "room": room, "body": "flood"}),
            FrameType::Edit => json!({"type": "edit", "message_id": own["id"], "body": "flood"}),
            FrameType::Delete => json!({"type": "delete", "message_id": own["id"]}),
            FrameType::Typing => json!({"type": "typing", "room": room}),
            FrameType::History => json!({"type": "history", "room": room}),
            FrameType::Read => json!({"type": "read", "room": room, "message_id": theirs["id"]}),
            FrameType::Signal => {
                json!({"type": "signal", "to": bystander, "payload": {"sdp": "x"}})
            }
            FrameType::Ping => json!({"type": "ping"}),
            FrameType::Renew => json!({"type": "renew", "token": f_token}),
            FrameType::React => json!({"type": "react", "message_id": theirs["id"], "emoji": "👍"}),
            FrameType::Unreact => {
                json!({"type": "unreact", "message_id": theirs["id"], "emoji": "👍"})
            }
        };
        // A frame of another budget, always answered, marks the end of each socket's flood.
        let sentinel = if frame_type == FrameType::Ping {
            json!({"type": "history", "room": room})
        } else {
            json!({"type": "ping"})
        };
        // Leave the room for good only after the flood: `f2` joins too, then both flood.
        if frame_type != FrameType::Join {
            let joined = f2.ask(json!({"type": "join", "room": room}), "j").await;
            assert_eq!(joined["type"], "joined", "{joined}");
        }
        // The bystander has read everything so far: what it gets from here on is the flood's.
        settle(&mut o, &mut b, &room).await;
        let n = row.burst as usize + 20;
        // Alternate frames between the user's two sockets: one budget for both.
        let mut halves: (Vec<Value>, Vec<Value>) = (Vec::new(), Vec::new());
        for i in 0..n {
            let frame = with_ref(flood_frame.clone(), format!("f{i}"));
            if i % 2 == 0 {
                halves.0.push(frame);
            } else {
                halves.1.push(frame);
            }
        }
        let started = Instant::now();
        let (r1, r2) = tokio::join!(
            flood(&mut f1, halves.0, sentinel.clone()),
            flood(&mut f2, halves.1, sentinel.clone())
        );
        let elapsed = started.elapsed().as_secs_f64();
        let answers: Vec<&Value> = r1
            .iter()
            .chain(&r2)
            .filter(|v| v["ref"].as_str().is_some_and(|r| r.starts_with('f')))
            .collect();
        let refused = answers
            .iter()
            .filter(|v| v["type"] == "error" && v["code"] == "rate_limited")
            .count();
        let let_through = n - refused;
        // One budget for both sockets: at most the burst, plus what refilled meanwhile (the
        // set-up above drew on some budgets too, which only lowers this).
        let allowance = row.burst + row.per_second * elapsed + 1.0;
        assert!(
            refused > 0,
            "`{frame_type}`: a flood of {n} was never refused"
        );
        assert!(
            (let_through as f64) <= allowance,
            "`{frame_type}`: {let_through} of {n} let through over two sockets, allowance {allowance:.1}"
        );
        // What the other user saw of it, up to a marker sent after the flood was answered.
        let seen = settle(&mut o, &mut b, &room).await;
        let from_flooder = |kind: &str| {
            seen.iter()
                .filter(|v| {
                    v["type"] == kind
                        && [&v["sender"], &v["user"], &v["from"]]
                            .iter()
                            .any(|who| who.as_str() == Some(flooder.as_str()))
                })
                .count()
        };
        let successes = answers.iter().filter(|v| v["type"] != "error").count();
        let effects = match frame_type {
            // Each accepted message, edit or signal reaches the bystander once, no more.
            FrameType::Send => from_flooder("message"),
            FrameType::Edit => from_flooder("edited"),
            FrameType::Signal => from_flooder("signal"),
            FrameType::Typing => from_flooder("typing"),
            // A tombstone and a read marker move once; repeats are not broadcast.
            FrameType::Delete => seen.iter().filter(|v| v["type"] == "deleted").count(),
            FrameType::Read => from_flooder("read"),
            FrameType::React | FrameType::Unreact => from_flooder("reaction"),
            FrameType::Join | FrameType::Leave => from_flooder("presence"),
            FrameType::History | FrameType::Ping | FrameType::Renew => seen.len(),
        };
        let most = match frame_type {
            // Fire-and-forget: nothing comes back on success, so count what was not refused.
            FrameType::Typing | FrameType::Signal => let_through,
            FrameType::Send | FrameType::Edit => successes,
            // A reaction is added once; removing one that is not there changes nothing.
            FrameType::Delete | FrameType::Read | FrameType::React => 1,
            FrameType::Unreact => 0,
            FrameType::Join | FrameType::Leave => 1,
            FrameType::History | FrameType::Ping | FrameType::Renew => 0,
        };
        assert!(
            effects <= most,
            "`{frame_type}`: the bystander saw {effects} effects of the flood, at most {most} expected: {seen:?}"
        );
        if matches!(
            frame_type,
            FrameType::Send | FrameType::Edit | FrameType::Signal
        ) {
            assert_eq!(
                effects, most,
                "`{frame_type}`: every accepted frame reaches the bystander once"
            );
        }
        // Everyone is still connected and answered.
        for ws in [&mut f1, &mut f2, &mut b] {
            let probe = if frame_type == FrameType::Ping {
                json!({"type": "history", "room": room})
            } else {
                json!({"type": "ping"})
            };
            assert_ne!(ws.ask(probe, "alive").await["type"], "error");
        }
        for ws in [f1, f2, b, o] {
            ws.close().await;
        }
    }
    server.stop().await;
}

/// Ten rooms at once, then one every ten seconds (the defaults), however they are created:
/// over REST or by the tutorial endpoint's first connection to a room that does not exist.
async fn room_creation_is_limited_per_user(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let tag = unique();
    for i in 0..9 {
        server.create_room(&alice, &format!("r{i}-{tag}")).await;
    }
    let mut tutorial = WsClient::try_connect(
        server.addr,
        &format!("/ws/chat/t-{tag}?token={alice}&frames=all"),
        &[],
    )
    .await
    .expect("tutorial socket");
    assert_eq!(tutorial.next_json().await["type"], "joined");
    let r = parley_e2e::http::post(
        server.addr,
        "/api/rooms",
        Some(&alice),
        &json!({"name": format!("one-too-many-{tag}")}),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (429, "rate_limited"),
        "{}",
        r.body
    );
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    // The tutorial endpoint creates nothing more either: the socket says why and closes.
    let mut refused =
        WsClient::try_connect(server.addr, &format!("/ws/chat/u-{tag}?token={alice}"), &[])
            .await
            .expect("tutorial socket");
    let error = refused.next_json().await;
    assert_eq!(error["code"], "rate_limited", "{error}");
    assert_eq!(refused.closed().await.0, 1008);
    // Another user has a budget of their own; joining existing rooms costs nothing of it.
    let bob = server.user("bob").await;
    server.create_room(&bob, &format!("bob-{tag}")).await;
    server.stop().await;
}

/// `POST /api/direct/{name}` answers 404 for a name that is nobody's: asking name after name
/// would list the accounts. A new direct room and an unknown name both cost a room creation,
/// so past the burst every new name is 429 alike, while a direct room that exists opens free.
async fn asking_for_direct_rooms_does_not_list_the_users(backend: Backend) {
    let server = TestServer::start(backend).await;
    let tag = unique();
    let mallory = server.user(&format!("m{tag}")).await;
    let friend = format!("f{tag}");
    server.user(&friend).await;
    let post = |path: String| {
        let token = mallory.clone();
        async move { parley_e2e::http::post(server.addr, &path, Some(&token), &json!({})).await }
    };
    let r = post(format!("/api/direct/{friend}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Nine more names that are nobody's: the burst of ten is spent.
    for i in 0..9 {
        let r = post(format!("/api/direct/nobody{i}{tag}")).await;
        assert_eq!(r.status, 404, "{}", r.body);
    }
    // Now an account and a non-account look the same.
    let real = format!("r{tag}");
    server.user(&real).await;
    for name in [real.as_str(), "nobody-else"] {
        let r = post(format!("/api/direct/{name}")).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (429, "rate_limited"),
            "{name}: {}",
            r.body
        );
    }
    // The direct room that exists still opens.
    let r = post(format!("/api/direct/{friend}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    server.stop().await;
}
