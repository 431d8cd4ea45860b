//! The engine against a real store (SQLite and PostgreSQL) and a real layer (in-memory and
//! Redis at `REDIS_URL`): every case runs on each combination listed at the bottom.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

use parley_core::{CloseReason, Engine, EngineConfig, Outbound, RateLimit, Session};
use parley_core::{MemberAdded, RoomChanges};
use parley_domain::protocol::{Dialect, ErrorCode, PresenceEvent, ServerFrame, TutorialFrames};
use parley_domain::{Role, RoomKind, RoomName, Topic, User, UserName};
use parley_layer::{ChannelLayer, GroupName, InMemoryLayer, LayerConfig, Message};
use parley_redis::{RedisLayer, RedisLayerConfig};
use parley_store::testing::TestDb;
use parley_store::{BatchOptions, HistoryQuery, NewRoom, NewUser};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

struct World {
    db: TestDb,
    layer: Arc<dyn ChannelLayer>,
    engine: Engine,
}

#[derive(Clone, Copy)]
enum LayerKind {
    Memory,
    Redis,
}

/// `n` layer handles on one backend, as `n` server processes would hold them: the same
/// in-memory layer, or `n` Redis connections under one prefix unique to the test.
async fn layers(kind: LayerKind, config: LayerConfig, n: usize) -> Vec<Arc<dyn ChannelLayer>> {
    match kind {
        LayerKind::Memory => {
            let layer: Arc<dyn ChannelLayer> = Arc::new(InMemoryLayer::new(config));
            vec![layer; n]
        }
        LayerKind::Redis => {
            let url =
                std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
            let prefix = format!("parley-core-test-{}:", uuid::Uuid::new_v4().simple());
            let mut out = Vec::new();
            for _ in 0..n {
                let cfg = RedisLayerConfig::new(url.clone())
                    .with_prefix(prefix.clone())
                    .with_layer(config.clone());
                let layer = RedisLayer::connect(cfg)
                    .await
                    .expect("Redis at REDIS_URL is required for these tests");
                out.push(Arc::new(layer) as Arc<dyn ChannelLayer>);
            }
            out
        }
    }
}

async fn world_on(db: TestDb, layer: Arc<dyn ChannelLayer>, config: EngineConfig) -> World {
    let engine = Engine::start(db.store().clone(), layer.clone(), config)
        .await
        .unwrap();
    World { db, layer, engine }
}

impl World {
    async fn user(&self, name: &str) -> User {
        self.db
            .create_user(&NewUser {
                username: UserName::parse(name).unwrap(),
                email: None,
                display_name: None,
                password_hash: "x".into(),
                is_staff: false,
                is_guest: false,
            })
            .await
            .unwrap()
    }

    async fn room(&self, name: &str, kind: RoomKind, owner: &User) -> RoomName {
        let room = self
            .db
            .create_room(&NewRoom {
                name: RoomName::parse(name).unwrap(),
                kind,
                creator: owner.id,
                topic: Topic::default(),
            })
            .await
            .unwrap();
        room.name
    }

    async fn staff(&self, name: &str) -> User {
        self.db
            .create_user(&NewUser {
                username: UserName::parse(name).unwrap(),
                email: None,
                display_name: None,
                password_hash: "x".into(),
                is_staff: true,
                is_guest: false,
            })
            .await
            .unwrap()
    }

    async fn session(&self, user: &User) -> Session {
        self.engine.connect(user.clone()).await.unwrap()
    }
}

/// A session speaking the Django tutorial's dialect on `room`, receiving `frames`, opened
/// (its room joined): the opening replies are returned beside it.
async fn tutorial_session(
    engine: &Engine,
    user: &User,
    room: &str,
    frames: TutorialFrames,
) -> (Session, Vec<Outbound>) {
    let dialect = Dialect::Tutorial {
        room: RoomName::parse(room).unwrap(),
        frames,
    };
    let mut session = engine.connect_with(user.clone(), dialect).await.unwrap();
    let opening = session.on_open().await;
    (session, opening)
}

/// The JSON of text replies.
fn texts(out: &[Outbound]) -> Vec<Value> {
    out.iter()
        .map(|o| match o {
            Outbound::Text(t) => serde_json::from_str(t).unwrap(),
            Outbound::Close(reason) => json!({"close": reason.code()}),
        })
        .collect()
}

/// The next `message` frame delivered to `s`, as JSON (whatever else arrives first is skipped).
async fn next_message_json(s: &mut Session) -> Value {
    loop {
        let v: Value = serde_json::from_str(&next_text(s).await).unwrap();
        if v["type"] == "message" {
            return v;
        }
    }
}

/// The code of a refused rooms-service call.
fn refusal<T: std::fmt::Debug>(result: parley_core::Result<T>) -> ErrorCode {
    result.expect_err("refused").code()
}

/// Sends `frame` and returns the (single) reply.
async fn ask(s: &mut Session, frame: Value) -> ServerFrame {
    let replies = s.on_text(&frame.to_string()).await;
    assert_eq!(
        replies.len(),
        1,
        "one reply expected to {frame}: {replies:?}"
    );
    match &replies[0] {
        Outbound::Text(t) => {
            ServerFrame::from_json(t).unwrap_or_else(|e| panic!("bad frame {t}: {e}"))
        }
        other => panic!("expected text, got {other:?}"),
    }
}

/// The next text frame delivered to `s` from the layer (skipping nothing-to-send events).
async fn next_text(s: &mut Session) -> String {
    loop {
        let inbound = timeout(WAIT, s.recv())
            .await
            .expect("no frame arrived in time");
        match s.on_inbound(inbound).await {
            Some(Outbound::Text(t)) => return t.to_string(),
            Some(Outbound::Close(reason)) => panic!("closed: {reason:?}"),
            None => {}
        }
    }
}

async fn next_frame(s: &mut Session) -> ServerFrame {
    let t = next_text(s).await;
    ServerFrame::from_json(&t).unwrap_or_else(|e| panic!("bad frame {t}: {e}"))
}

/// Next frame that is not presence (presence frames arrive as others come and go).
async fn next_non_presence(s: &mut Session) -> ServerFrame {
    loop {
        match next_frame(s).await {
            ServerFrame::Presence(_) => continue,
            other => return other,
        }
    }
}

// "Nothing was delivered" is proved with a marker, never by waiting: the engine sends a
// frame's broadcast before its reply, and the layer delivers each channel's messages in the
// order they were sent, so a marker sent after the action under test arrives after anything
// the action delivered, however slowly. The next frame being the marker is the proof; a
// late delivery fails it instead of slipping past a timeout.

/// The next frame delivered to `s` (presence frames skipped when `skip_presence`) must be the
/// marker `is_marker` recognises: anything delivered before it fails the test.
async fn expect_marker(
    s: &mut Session,
    skip_presence: bool,
    is_marker: impl Fn(&ServerFrame) -> bool,
) {
    let frame = if skip_presence {
        next_non_presence(s).await
    } else {
        next_frame(s).await
    };
    assert!(is_marker(&frame), "delivered before the marker: {frame:?}");
}

/// `from` sends a marker message to `room`, and it is the next frame `quiet` gets (presence
/// skipped when `skip_presence`).
async fn nothing_before_marker(
    from: &mut Session,
    quiet: &mut Session,
    room: &RoomName,
    skip_presence: bool,
) {
    let ServerFrame::Message(marker) = ask(
        from,
        json!({"type": "send", "room": room.as_str(), "body": "marker"}),
    )
    .await
    else {
        panic!("the marker was refused")
    };
    let id = marker.message.id;
    expect_marker(
        quiet,
        skip_presence,
        |f| matches!(f, ServerFrame::Message(m) if m.message.id == id),
    )
    .await;
}

/// `from` (user `who`) sends a typing marker to `room` (typing is never stored, so this
/// works with the database gone), and it is the next non-presence frame `quiet` gets.
async fn nothing_before_typing_marker(
    from: &mut Session,
    who: &str,
    quiet: &mut Session,
    room: &RoomName,
) {
    let replies = from
        .on_text(&json!({"type": "typing", "room": room.as_str()}).to_string())
        .await;
    assert!(
        replies.is_empty(),
        "the typing marker was refused: {replies:?}"
    );
    expect_marker(
        quiet,
        true,
        |f| matches!(f, ServerFrame::Typing(t) if t.user.as_str() == who),
    )
    .await;
}

fn error_code(frame: &ServerFrame) -> ErrorCode {
    match frame {
        ServerFrame::Error(e) => e.code,
        other => panic!("expected an error frame, got {other:?}"),
    }
}

async fn join(s: &mut Session, room: &RoomName) -> ServerFrame {
    ask(s, json!({"type": "join", "room": room.as_str()})).await
}

/// Group commit that never takes the direct path, so every send goes through the batcher;
/// small batches, so a burst spans several.
fn always_batched() -> EngineConfig {
    EngineConfig {
        message_rate: RateLimit::new(1000.0, 1000.0),
        group_commit: Some(BatchOptions {
            max_batch: 8,
            direct_below: 0,
            ..parley_store::BatchOptions::default()
        }),
        ..EngineConfig::default()
    }
}

/// Every message of a room, oldest first, read with `after=` cursors.
async fn all_messages(w: &World, room: &RoomName) -> Vec<parley_domain::Message> {
    stored_messages(&w.db, room).await
}

/// [`all_messages`] straight from a database.
async fn stored_messages(db: &TestDb, room: &RoomName) -> Vec<parley_domain::Message> {
    let id = db.room_by_name(room).await.unwrap().id;
    let mut out: Vec<parley_domain::Message> = Vec::new();
    loop {
        let after = Some(out.last().map_or(parley_domain::MessageId(0), |m| m.id));
        let page = db
            .history(
                id,
                &HistoryQuery {
                    after,
                    before: None,
                    limit: Some(100),
                },
            )
            .await
            .unwrap();
        if page.messages.is_empty() {
            return out;
        }
        out.extend(page.messages);
    }
}

/// `SENDERS` sessions each send `EACH` messages into one room at the same time, `window` frames
/// at a time (handed over together, as the transport does with frames that arrived together;
/// 1: each waits for its ack before the next). Every message is acknowledged, in order, with
/// what was sent, stored exactly once, delivered once to every other member in each sender's
/// order, and ids grow with each sender's sends.
async fn concurrent_senders(w: World, window: usize) {
    const SENDERS: usize = 10;
    const EACH: usize = 12;
    let owner = w.user("owner").await;
    let room = w.room("busy", RoomKind::Public, &owner).await;
    let mut sessions = Vec::new();
    for i in 0..SENDERS {
        let user = w.user(&format!("sender{i}")).await;
        let mut s = w.session(&user).await;
        assert!(matches!(join(&mut s, &room).await, ServerFrame::Joined(_)));
        sessions.push(s);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut s) in sessions.into_iter().enumerate() {
        let room = room.clone();
        tasks.spawn(async move {
            let mut acks = Vec::new();
            let sends: Vec<usize> = (0..EACH).collect();
            for chunk in sends.chunks(window) {
                let frames: Vec<String> = chunk.iter().map(|k| json!({"type": "send", "room": room.as_str(), "body": format!("s{i} m{k}"), "client_id": format!("c{i}-{k}"), "ref": format!("r{k}")}).to_string()).collect();
                let replies = s.on_texts(&frames).await;
                assert_eq!(replies.len(), chunk.len(), "one reply per send: {replies:?}");
                for (k, reply) in chunk.iter().zip(replies) {
                    let Outbound::Text(t) = reply else { panic!("send {i}/{k}: {reply:?}") };
                    let Ok(ServerFrame::Message(ack)) = ServerFrame::from_json(&t) else { panic!("send {i}/{k} not acknowledged: {t}") };
                    let body = format!("s{i} m{k}");
                    assert_eq!(ack.reference.as_ref().map(|r| r.as_str().to_owned()), Some(format!("r{k}")), "acks come in frame order");
                    assert_eq!((ack.message.body.as_str(), ack.message.sender.as_str()), (body.as_str(), format!("sender{i}").as_str()), "the ack pairs with its own send");
                    assert_eq!(ack.message.client_id.as_ref().map(|c| c.as_str().to_owned()), Some(format!("c{i}-{k}")));
                    acks.push(ack.message.id);
                }
            }
            (i, s, acks)
        });
    }
    let mut done = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        done.push(joined.unwrap());
    }
    done.sort_by_key(|(i, _, _)| *i);
    for (i, _, acks) in &done {
        assert!(
            acks.windows(2).all(|p| p[0] < p[1]),
            "sender {i}'s ids do not grow with its sends: {acks:?}"
        );
    }
    // Stored exactly once each, in id order, and the acks name exactly the stored messages.
    let stored = all_messages(&w, &room).await;
    assert_eq!(stored.len(), SENDERS * EACH, "every message stored once");
    assert!(
        stored.windows(2).all(|p| p[0].id < p[1].id),
        "ids strictly increasing in history"
    );
    let mut acked: Vec<_> = done
        .iter()
        .flat_map(|(_, _, a)| a.iter().copied())
        .collect();
    acked.sort();
    assert_eq!(acked, stored.iter().map(|m| m.id).collect::<Vec<_>>());
    // Each sender ends with a marker: one connection's messages reach every member in order,
    // so a member holding a sender's marker holds everything that sender's sends delivered.
    for (i, s, _) in &mut done {
        let end = ask(
            s,
            json!({"type": "send", "room": room.as_str(), "body": format!("s{i} end")}),
        )
        .await;
        assert!(matches!(end, ServerFrame::Message(_)), "{end:?}");
    }
    // Every member got every other member's messages, once each and in each sender's order,
    // and nothing else.
    for (i, s, _) in &mut done {
        let mut got: Vec<(String, String)> = Vec::new();
        let mut ends = 0;
        while ends < SENDERS - 1 {
            if let ServerFrame::Message(m) = next_non_presence(s).await {
                ends += usize::from(m.message.body.ends_with(" end"));
                got.push((m.message.sender.as_str().to_owned(), m.message.body.clone()));
            }
        }
        assert!(
            got.iter()
                .all(|(sender, _)| *sender != format!("sender{i}")),
            "no echo to the sender"
        );
        for j in (0..SENDERS).filter(|j| j != i) {
            let from_j: Vec<&str> = got
                .iter()
                .filter(|(sender, _)| *sender == format!("sender{j}"))
                .map(|(_, b)| b.as_str())
                .collect();
            let mut expected: Vec<String> = (0..EACH).map(|k| format!("s{j} m{k}")).collect();
            expected.push(format!("s{j} end"));
            assert_eq!(from_j, expected, "sender{i} got sender{j}'s messages wrong");
        }
    }
    for (_, s, _) in done {
        s.close().await;
    }
}

macro_rules! suite {
    ($name:ident, $backend:ident, $layer:ident) => {
        mod $name {
            use super::*;

            async fn world(db: TestDb, config: EngineConfig) -> World {
                world_with(db, LayerConfig::default(), config).await
            }

            async fn world_with(db: TestDb, layer: LayerConfig, config: EngineConfig) -> World {
                let layer = layers(LayerKind::$layer, layer, 1).await.remove(0);
                world_on(db, layer, config).await
            }

            async fn db() -> TestDb {
                TestDb::$backend().await.expect(concat!("the ", stringify!($backend), " test database is required"))
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn message_reaches_room_and_sender_gets_one_ack() {
                let w = world(db().await, EngineConfig::default()).await;
                let (alice, bob) = (w.user("alice").await, w.user("bob").await);
                let lobby = w.room("lobby", RoomKind::Public, &alice).await;
                let mut a = w.session(&alice).await;
                let mut b = w.session(&bob).await;
                assert!(matches!(join(&mut a, &lobby).await, ServerFrame::Joined(_)));
                let ServerFrame::Joined(joined) = join(&mut b, &lobby).await else { panic!("join failed") };
                assert_eq!(joined.online.len(), 2, "both online: {:?}", joined.online);

                let ack = ask(&mut a, json!({"type": "send", "room": "lobby", "body": "hi bob", "client_id": "c-1", "ref": "r1"})).await;
                let ServerFrame::Message(posted) = ack else { panic!("expected ack, got {ack:?}") };
                assert_eq!(posted.reference.as_ref().map(|r| r.as_str()), Some("r1"));
                assert_eq!(posted.message.body, "hi bob");

                let ServerFrame::Message(got) = next_non_presence(&mut b).await else { panic!("bob got no message") };
                assert_eq!(got.message.id, posted.message.id);
                assert_eq!(got.message.sender.as_str(), "alice");
                assert!(got.reference.is_none(), "the broadcast copy carries no ref");
                // The sender's own connection gets the ack only, not an echo: the next message
                // it gets is Bob's marker.
                nothing_before_marker(&mut b, &mut a, &lobby, true).await;

                // A retry with the same client id is acknowledged with the first message, and not re-broadcast.
                let retry = ask(&mut a, json!({"type": "send", "room": "lobby", "body": "hi bob", "client_id": "c-1"})).await;
                let ServerFrame::Message(again) = retry else { panic!("{retry:?}") };
                assert_eq!(again.message.id, posted.message.id);
                nothing_before_marker(&mut a, &mut b, &lobby, true).await;

                // History holds it once.
                let ServerFrame::History(page) = ask(&mut b, json!({"type": "history", "room": "lobby"})).await else { panic!() };
                assert_eq!(page.messages.iter().filter(|m| m.id == posted.message.id).count(), 1);
                a.close().await;
                b.close().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_senders_through_the_batcher() {
                // Mailboxes large enough that nobody is disconnected for reading after the burst.
                concurrent_senders(world_with(db().await, LayerConfig { capacity: 1000, ..LayerConfig::default() }, always_batched()).await, 1).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pipelined_senders_through_the_batcher() {
                // Each sender's runs of 5 are stored together; batches hold at most 8 messages,
                // so runs of different senders share batches and spill into the next.
                concurrent_senders(world_with(db().await, LayerConfig { capacity: 1000, ..LayerConfig::default() }, always_batched()).await, 5).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn frames_handed_over_together_are_answered_in_frame_order() {
                let w = world(db().await, always_batched()).await;
                let (alice, bob) = (w.user("alice").await, w.user("bob").await);
                let lobby = w.room("lobby", RoomKind::Public, &alice).await;
                let (mut a, mut b) = (w.session(&alice).await, w.session(&bob).await);
                join(&mut a, &lobby).await;
                join(&mut b, &lobby).await;
                let send = |body: &str, client_id: &str, r: &str| json!({"type": "send", "room": "lobby", "body": body, "client_id": client_id, "ref": r}).to_string();
                let frames = [
                    send("one", "k1", "1"),
                    send("one", "k1", "2"), // a retry in the same run
                    "{".to_owned(),
                    send("two", "k2", "4"),
                    json!({"type": "send", "room": "elsewhere", "body": "x", "ref": "5"}).to_string(),
                    json!({"type": "ping", "ref": "6"}).to_string(),
                    send("three", "k3", "7"),
                ];
                let replies: Vec<ServerFrame> = a.on_texts(&frames).await.into_iter().map(|o| match o {
                    Outbound::Text(t) => ServerFrame::from_json(&t).unwrap(),
                    other => panic!("{other:?}"),
                }).collect();
                assert_eq!(replies.len(), 7, "{replies:?}");
                let reference = |f: &ServerFrame| -> Option<String> {
                    let v: Value = serde_json::from_str(&f.to_json()).unwrap();
                    v["ref"].as_str().map(str::to_owned)
                };
                let acked = |f: &ServerFrame| match f {
                    ServerFrame::Message(m) => m.message.clone(),
                    other => panic!("not an ack: {other:?}"),
                };
                let (one, retry) = (acked(&replies[0]), acked(&replies[1]));
                assert_eq!(retry, one, "the retry is answered with the first message");
                assert_eq!(error_code(&replies[2]), ErrorCode::InvalidJson);
                let two = acked(&replies[3]);
                assert_eq!(error_code(&replies[4]), ErrorCode::NotJoined);
                assert!(matches!(replies[5], ServerFrame::Pong(_)));
                let three = acked(&replies[6]);
                assert_eq!(
                    replies.iter().map(reference).collect::<Vec<_>>(),
                    [Some("1"), Some("2"), None, Some("4"), Some("5"), Some("6"), Some("7")].map(|r| r.map(str::to_owned)),
                    "replies in frame order"
                );
                assert_eq!((one.body.as_str(), two.body.as_str(), three.body.as_str()), ("one", "two", "three"));
                assert!(one.id < two.id && two.id < three.id, "ids follow frame order");
                // Bob gets each new message once (the retry is not rebroadcast), in order.
                for expected in [&one, &two, &three] {
                    let ServerFrame::Message(got) = next_non_presence(&mut b).await else { panic!() };
                    assert_eq!(got.message.id, expected.id);
                }
                nothing_before_marker(&mut a, &mut b, &lobby, true).await;
                // One run of sends to two rooms: stored together, broadcast room by room in
                // frame order (members of both get them as sent).
                let side = w.room("side", RoomKind::Public, &alice).await;
                join(&mut a, &side).await;
                join(&mut b, &side).await;
                let run = [
                    send("four", "k4", "8"),
                    json!({"type": "send", "room": "side", "body": "aside", "ref": "9"}).to_string(),
                    send("five", "k5", "10"),
                ];
                let acks: Vec<parley_domain::Message> = a.on_texts(&run).await.into_iter().map(|o| match o {
                    Outbound::Text(t) => acked(&ServerFrame::from_json(&t).unwrap()),
                    other => panic!("{other:?}"),
                }).collect();
                assert_eq!(acks.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["four", "aside", "five"]);
                assert!(acks.windows(2).all(|p| p[0].id < p[1].id), "ids follow frame order");
                for expected in &acks {
                    let ServerFrame::Message(got) = next_non_presence(&mut b).await else { panic!() };
                    assert_eq!((got.message.id, &got.message.room), (expected.id, &expected.room));
                }
                nothing_before_marker(&mut a, &mut b, &lobby, true).await;
                let stored: Vec<String> = all_messages(&w, &lobby).await.into_iter().map(|m| m.body.as_str().to_owned()).collect();
                assert_eq!(stored, ["one", "two", "three", "marker", "four", "five", "marker"]);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_senders_with_default_group_commit() {
                let config = EngineConfig { message_rate: RateLimit::new(1000.0, 1000.0), ..EngineConfig::default() };
                assert!(config.group_commit.is_some(), "group commit is on by default");
                concurrent_senders(world_with(db().await, LayerConfig { capacity: 1000, ..LayerConfig::default() }, config).await, 4).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_senders_without_group_commit() {
                let config = EngineConfig { message_rate: RateLimit::new(1000.0, 1000.0), group_commit: None, ..EngineConfig::default() };
                concurrent_senders(world_with(db().await, LayerConfig { capacity: 1000, ..LayerConfig::default() }, config).await, 3).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn batched_retries_return_the_first_message_and_are_not_rebroadcast() {
                let w = world(db().await, always_batched()).await;
                let (alice, bob) = (w.user("alice").await, w.user("bob").await);
                let lobby = w.room("lobby", RoomKind::Public, &alice).await;
                let mut b = w.session(&bob).await;
                join(&mut b, &lobby).await;
                // Alice in four tabs sends the same message (same client id) at once: the
                // copies meet in one batch or race across batches.
                const TABS: usize = 4;
                let mut tabs = Vec::new();
                for _ in 0..TABS {
                    let mut a = w.session(&alice).await;
                    join(&mut a, &lobby).await;
                    tabs.push(a);
                }
                let mut tasks = tokio::task::JoinSet::new();
                for (t, mut a) in tabs.into_iter().enumerate() {
                    tasks.spawn(async move {
                        let ack = ask(&mut a, json!({"type": "send", "room": "lobby", "body": "once", "client_id": "dup-1", "ref": format!("t{t}")})).await;
                        let ServerFrame::Message(ack) = ack else { panic!("{ack:?}") };
                        assert_eq!(ack.reference.as_ref().map(|r| r.as_str().to_owned()), Some(format!("t{t}")));
                        (ack.message, a)
                    });
                }
                let mut acks = Vec::new();
                while let Some(j) = tasks.join_next().await {
                    acks.push(j.unwrap());
                }
                let first = acks[0].0.clone();
                assert!(acks.iter().all(|(m, _)| *m == first), "every tab got the same message: {:?}", acks.iter().map(|(m, _)| m.id).collect::<Vec<_>>());
                let ServerFrame::Message(got) = next_non_presence(&mut b).await else { panic!() };
                assert_eq!(got.message.id, first.id);
                // Broadcast once, not once per tab: every tab had its ack (sent after its
                // broadcast) before the marker.
                let (_, a) = &mut acks[0];
                nothing_before_marker(a, &mut b, &lobby, true).await;
                // A later retry (another batch) is answered with the same message, silently.
                let retry = ask(a, json!({"type": "send", "room": "lobby", "body": "once", "client_id": "dup-1"})).await;
                let ServerFrame::Message(again) = retry else { panic!("{retry:?}") };
                assert_eq!(again.message, first);
                nothing_before_marker(a, &mut b, &lobby, true).await;
                let stored: Vec<_> = all_messages(&w, &lobby).await.into_iter().filter(|m| m.body != "marker").collect();
                assert_eq!(stored.len(), 1, "stored once: {stored:?}");
                assert_eq!(stored[0].id, first.id);
                // A new client id is a new message, broadcast as usual.
                let ServerFrame::Message(new) = ask(a, json!({"type": "send", "room": "lobby", "body": "twice", "client_id": "dup-2"})).await else { panic!() };
                assert!(new.message.id > first.id);
                let ServerFrame::Message(got) = next_non_presence(&mut b).await else { panic!() };
                assert_eq!(got.message.id, new.message.id);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn joined_lists_at_most_the_presence_limit_and_counts_everyone() {
                let config = EngineConfig { presence_fanout_limit: 3, ..EngineConfig::default() };
                let w = world(db().await, config).await;
                let owner = w.user("owner").await;
                let lobby = w.room("lobby", RoomKind::Public, &owner).await;
                let names = ["erin", "dave", "carol", "bob", "alice"];
                let mut sessions = Vec::new();
                for (n, name) in names.iter().enumerate() {
                    let user = w.user(name).await;
                    let mut s = w.session(&user).await;
                    let ServerFrame::Joined(j) = join(&mut s, &lobby).await else { panic!() };
                    let here = n + 1;
                    assert_eq!(j.online_count, here, "{name} counts everyone online");
                    assert_eq!(j.online[0].as_str(), *name, "the joining user comes first");
                    if here <= 3 {
                        // Under the limit: everyone, by name after the joiner.
                        let mut expected: Vec<&str> = names[..here].to_vec();
                        expected.retain(|u| u != name);
                        expected.sort();
                        expected.insert(0, name);
                        assert_eq!(j.online.iter().map(|u| u.as_str()).collect::<Vec<_>>(), expected);
                    } else {
                        assert_eq!(j.online.len(), 3, "{name}'s list is capped: {:?}", j.online);
                    }
                    sessions.push(s);
                }
                // The fifth: herself, then the first others by name.
                let ServerFrame::Joined(j) = join(&mut sessions[4], &lobby).await else { panic!() };
                assert_eq!(j.online.iter().map(|u| u.as_str()).collect::<Vec<_>>(), ["alice", "bob", "carol"]);
                assert_eq!(j.online_count, 5);
                let raw: Value = serde_json::from_str(&ServerFrame::Joined(j).to_json()).unwrap();
                assert_eq!(raw["online_count"], json!(5), "on the wire: {raw}");
                // The engine's own list is not capped.
                assert_eq!(w.engine.online(&lobby).len(), 5);
                // Two tabs of one user count once.
                let erin2 = w.user("erin2").await;
                let mut e2 = w.session(&erin2).await;
                let ServerFrame::Joined(j) = join(&mut e2, &lobby).await else { panic!() };
                assert_eq!(j.online_count, 6);
                let mut again = w.session(&owner).await;
                let ServerFrame::Joined(j) = join(&mut again, &lobby).await else { panic!() };
                assert_eq!((j.online_count, j.online[0].as_str()), (7, "owner"));
                let mut again2 = w.session(&owner).await;
                let ServerFrame::Joined(j) = join(&mut again2, &lobby).await else { panic!() };
                assert_eq!(j.online_count, 7, "a second tab is not a second user");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn private_and_direct_rooms_are_for_members_only() {
                let w = world(db().await, EngineConfig::default()).await;
                let (alice, bob, eve) = (w.user("alice").await, w.user("bob").await, w.user("eve").await);
                let secret = w.room("secret", RoomKind::Private, &alice).await;
                let dm = w.db.direct_room(alice.id, bob.id).await.unwrap().name;
                let mut e = w.session(&eve).await;
                assert_eq!(error_code(&join(&mut e, &secret).await), ErrorCode::NotMember);
                assert_eq!(error_code(&join(&mut e, &dm).await), ErrorCode::NotMember);
                let hist = ask(&mut e, json!({"type": "history", "room": dm.as_str()})).await;
                assert_eq!(error_code(&hist), ErrorCode::NotMember);
                let send = ask(&mut e, json!({"type": "send", "room": dm.as_str(), "body": "let me in"})).await;
                assert_eq!(error_code(&send), ErrorCode::NotJoined);
                assert_eq!(error_code(&join(&mut e, &RoomName::parse("nowhere").unwrap()).await), ErrorCode::NotFound);
                // The refused connection still works.
                assert!(matches!(ask(&mut e, json!({"type": "ping", "ref": "p"})).await, ServerFrame::Pong(_)));

                let mut b = w.session(&bob).await;
                assert!(matches!(join(&mut b, &dm).await, ServerFrame::Joined(_)));
                assert_eq!(error_code(&join(&mut b, &secret).await), ErrorCode::NotMember);
                // Nothing of the direct room was stored by the refused attempts.
                let page = w.db.history(w.db.room_by_name(&dm).await.unwrap().id, &Default::default()).await.unwrap();
                assert!(page.messages.is_empty());
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn presence_counts_users_not_tabs() {
                let w = world(db().await, EngineConfig::default()).await;
                let (alice, bob) = (w.user("alice").await, w.user("bob").await);
                let lobby = w.room("lobby", RoomKind::Public, &alice).await;
                let mut b = w.session(&bob).await;
                join(&mut b, &lobby).await;
                let mut a1 = w.session(&alice).await;
                let mut a2 = w.session(&alice).await;
                join(&mut a1, &lobby).await;
                let ServerFrame::Presence(p) = next_frame(&mut b).await else { panic!() };
                assert_eq!((p.user.as_str(), p.event), ("alice", PresenceEvent::Joined));
                join(&mut a2, &lobby).await;
                assert_eq!(w.engine.online(&lobby).len(), 2);
                a1.close().await;
                // The second tab is still open: no "left" (nor anything else) before its marker.
                nothing_before_marker(&mut a2, &mut b, &lobby, false).await;
                a2.close().await;
                let ServerFrame::Presence(p) = next_frame(&mut b).await else { panic!() };
                assert_eq!((p.user.as_str(), p.event), ("alice", PresenceEvent::Left));
                assert_eq!(p.online, vec![UserName::parse("bob").unwrap()]);
                b.close().await;
                assert_eq!(w.engine.local_connections(), 0);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_join_storm_reaches_members_as_few_folded_presence_frames() {
                const JOINERS: usize = 30;
                let w = world(db().await, EngineConfig::default()).await;
                let owner = w.user("owner").await;
                let lobby = w.room("lobby", RoomKind::Public, &owner).await;
                let mut watcher = w.session(&owner).await;
                join(&mut watcher, &lobby).await;
                let mut everyone = vec![owner.username.clone()];
                let mut sessions = Vec::new();
                for i in 0..JOINERS {
                    let user = w.user(&format!("joiner{i}")).await;
                    everyone.push(user.username.clone());
                    sessions.push(w.session(&user).await);
                }
                // All at once, as the clients of a restarted server come back.
                let mut joins = tokio::task::JoinSet::new();
                for mut s in sessions {
                    let room = lobby.clone();
                    joins.spawn(async move {
                        assert!(matches!(join(&mut s, &room).await, ServerFrame::Joined(_)));
                        s
                    });
                }
                let joiners = joins.join_all().await;
                // Every join reaches the watcher once, in fewer frames than joins; the last
                // frame's list is everyone.
                let (mut seen, mut frames, mut online) = (Vec::new(), 0, Vec::new());
                while seen.len() < JOINERS {
                    let ServerFrame::Presence(p) = next_frame(&mut watcher).await else { panic!("only presence was due") };
                    frames += 1;
                    if p.changes.is_empty() {
                        seen.push((p.user.clone(), p.event));
                    } else {
                        let latest = p.changes.last().unwrap();
                        assert_eq!((&latest.user, latest.event), (&p.user, p.event), "user and event are the latest change");
                        seen.extend(p.changes.iter().map(|c| (c.user.clone(), c.event)));
                    }
                    online = p.online;
                }
                assert!(seen.iter().all(|(_, event)| *event == PresenceEvent::Joined));
                let mut joined: Vec<UserName> = seen.into_iter().map(|(user, _)| user).collect();
                joined.sort();
                online.sort();
                everyone.sort();
                assert_eq!(joined, everyone[..].iter().filter(|u| **u != owner.username).cloned().collect::<Vec<_>>());
                assert_eq!(online, everyone);
                assert!(frames < JOINERS, "{frames} presence frames for {JOINERS} joins: none folded");
                // Nothing more: the next frame is a marker.
                nothing_before_marker(&mut joiners.into_iter().next().unwrap(), &mut watcher, &lobby, false).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rooms_over_the_presence_limit_get_no_presence_frames() {
                let config = EngineConfig { presence_fanout_limit: 2, ..EngineConfig::default() };
                let w = world(db().await, config).await;
                let (alice, bob, carol) = (w.user("alice").await, w.user("bob").await, w.user("carol").await);
                let lobby = w.room("lobby", RoomKind::Public, &alice).await;
                let mut b = w.session(&bob).await;
                join(&mut b, &lobby).await;
                let mut a = w.session(&alice).await;
                join(&mut a, &lobby).await; // 2 online: at the limit, still announced
                let ServerFrame::Presence(p) = next_frame(&mut b).await else { panic!() };
                assert_eq!((p.user.as_str(), p.event), ("alice", PresenceEvent::Joined));
                let mut c = w.session(&carol).await;
                let ServerFrame::Joined(j) = join(&mut c, &lobby).await else { panic!() };
                assert_eq!((j.online.len(), j.online_count), (2, 3), "joined lists up to the limit, counts everyone");
                // 3 online: over the limit, so carol's arrival is announced to nobody: the
                // first thing either gets is her marker.
                let ServerFrame::Message(marker) = ask(&mut c, json!({"type": "send", "room": "lobby", "body": "marker"})).await else { panic!() };
                for s in [&mut b, &mut a] {
                    expect_marker(s, false, |f| matches!(f, ServerFrame::Message(m) if m.message.id == marker.message.id)).await;
                }
                assert_eq!(w.engine.online(&lobby).len(), 3);
                c.close().await;
                // The room was over the limit when carol left: no "left" before alice's marker.
                nothing_before_marker(&mut a, &mut b, &lobby, false).await;
                a.close().await;
                let ServerFrame::Presence(p) = next_frame(&mut b).await else { panic!() };
                assert_eq!((p.user.as_str(), p.event), ("alice", PresenceEvent::Left));
                b.close().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn typing_goes_to_others_and_is_rate_limited() {
                let config = EngineConfig { typing_rate: RateLimit::new(0.001, 2.0), ..EngineConfig::default() };
                let w = world(db().await, config).await;
                let (alice, bob) = (w.user("alice").await, w.user("bob").await);
                let lobby = w.room("lobby", RoomKind::Public, &alice).await;
                let mut a = w.session(&alice).await;
                let mut b = w.session(&bob).await;
                join(&mut b, &lobby).await;
                join(&mut a, &lobby).await;
                let _ = next_frame(&mut b).await; // alice's presence
                assert!(a.on_text(r#"{"type":"typing","room":"lobby"}"#).await.is_empty());
                let ServerFrame::Typing(t) = next_frame(&mut b).await else { panic!() };
                assert_eq!((t.user.as_str(), t.active), ("alice", true));
                assert!(a.on_text(r#"{"type":"typing","room":"lobby","active":false}"#).await.is_empty());
                let flood = ask(&mut a, json!({"type": "typing", "room": "lobby", "ref": "t3"})).await;
                assert_eq!(error_code(&flood), ErrorCode::RateLimited);
                // No echo to the typist: the first typing frame alice gets is bob's.
                nothing_before_typing_marker(&mut b, "bob", &mut a, &lobby).await;
                // Typing is never stored.
                let page = w.db.history(w.db.room_by_name(&lobby).await.unwrap().id, &Default::default()).await.unwrap();
                assert!(page.messages.is_empty());
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn edit_and_delete_by_author_only_and_broadcast() {
                let w = world(db().await, EngineConfig::default()).await;
                let (alice, bob) = (w.user("alice").await, w.user("bob").await);
                let lobby = w.room("lobby", RoomKind::Public, &alice).await;
                let mut a = w.session(&alice).await;
                let mut b = w.session(&bob).await;
                join(&mut a, &lobby).await;
                join(&mut b, &lobby).await;
                let ServerFrame::Message(m) = ask(&mut a, json!({"type": "send", "room": "lobby", "body": "tpyo"})).await else { panic!() };
                let id = m.message.id.get();
                let _ = next_non_presence(&mut b).await;
                let denied = ask(&mut b, json!({"type": "edit", "message_id": id, "body": "hacked"})).await;
                assert_eq!(error_code(&denied), ErrorCode::Forbidden);
                let ServerFrame::Edited(e) = ask(&mut a, json!({"type": "edit", "message_id": id, "body": "typo", "ref": "e"})).await else { panic!() };
                assert_eq!(e.message.body, "typo");
                let ServerFrame::Edited(seen) = next_non_presence(&mut b).await else { panic!() };
                assert_eq!((seen.message.id.get(), seen.message.body.as_str()), (id, "typo"));
                assert_eq!(error_code(&ask(&mut b, json!({"type": "delete", "message_id": id})).await), ErrorCode::Forbidden);
                assert!(matches!(ask(&mut a, json!({"type": "delete", "message_id": id})).await, ServerFrame::Deleted(_)));
                let ServerFrame::Deleted(d) = next_non_presence(&mut b).await else { panic!() };
                assert_eq!(d.message_id.get(), id);
                let ServerFrame::History(page) = ask(&mut b, json!({"type": "history", "room": "lobby"})).await else { panic!() };
                assert!(page.messages[0].deleted_at.is_some() && page.messages[0].body.is_empty(), "tombstone");
                // A tombstone cannot be deleted again nor edited back to life, and nobody is
                // told twice.
                assert_eq!(error_code(&ask(&mut a, json!({"type": "delete", "message_id": id})).await), ErrorCode::Conflict);
                assert_eq!(error_code(&ask(&mut a, json!({"type": "edit", "message_id": id, "body": "back"})).await), ErrorCode::Conflict);
                nothing_before_marker(&mut a, &mut b, &lobby, true).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_client_id_reused_in_another_room_is_refused() {
                let w = world(db().await, EngineConfig::default()).await;
                let alice = w.user("alice").await;
                let (one, two) = (w.room("one", RoomKind::Public, &alice).await, w.room("two", RoomKind::Public, &alice).await);
                let mut a = w.session(&alice).await;
                join(&mut a, &one).await;
                join(&mut a, &two).await;
                let ServerFrame::Message(first) = ask(&mut a, json!({"type": "send", "room": "one", "body": "x", "client_id": "c-1"})).await else { panic!() };
                // The same send again is a retry: the same message.
                let ServerFrame::Message(retry) = ask(&mut a, json!({"type": "send", "room": "one", "body": "x", "client_id": "c-1"})).await else { panic!() };
                assert_eq!(retry.message.id, first.message.id);
                // The id in another room is no retry: refused, and nothing lands in either room.
                let refused = ask(&mut a, json!({"type": "send", "room": "two", "body": "y", "client_id": "c-1", "ref": "r"})).await;
                assert_eq!(error_code(&refused), ErrorCode::Conflict, "{refused:?}");
                assert_eq!(refused.reference().map(|r| r.as_str()), Some("r"));
                assert!(all_messages(&w, &two).await.is_empty());
                assert_eq!(all_messages(&w, &one).await.len(), 1);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn read_markers_and_signals() {
                let w = world(db().await, EngineConfig::default()).await;
                let (alice, bob, eve) = (w.user("alice").await, w.user("bob").await, w.user("eve").await);
                let dm = w.db.direct_room(alice.id, bob.id).await.unwrap().name;
                let mut a = w.session(&alice).await;
                let mut b = w.session(&bob).await;
                let mut e = w.session(&eve).await;
                join(&mut a, &dm).await;
                join(&mut b, &dm).await;
                let ServerFrame::Message(m) = ask(&mut a, json!({"type": "send", "room": dm.as_str(), "body": "call me"})).await else { panic!() };
                let _ = next_non_presence(&mut b).await;
                let ServerFrame::Read(r) = ask(&mut b, json!({"type": "read", "room": dm.as_str(), "message_id": m.message.id.get()})).await else { panic!() };
                assert_eq!(r.user.as_str(), "bob");
                let ServerFrame::Read(seen) = next_non_presence(&mut a).await else { panic!() };
                assert_eq!(seen.message_id, m.message.id);

                let offer = json!({"sdp": "v=0...", "kind": "offer"});
                assert!(a.on_text(&json!({"type": "signal", "to": "bob", "payload": offer, "call_id": "call-1"}).to_string()).await.is_empty());
                let ServerFrame::Signal(s) = next_non_presence(&mut b).await else { panic!() };
                assert_eq!((s.from.as_str(), &s.payload), ("alice", &offer));
                // Eve shares no room with Bob: she cannot ring him.
                let denied = ask(&mut e, json!({"type": "signal", "to": "bob", "payload": {}})).await;
                assert_eq!(error_code(&denied), ErrorCode::Forbidden);
                // Nothing of eve's reached bob: the next signal he gets is alice's marker.
                let marker = json!({"marker": true});
                assert!(a.on_text(&json!({"type": "signal", "to": "bob", "payload": marker}).to_string()).await.is_empty());
                expect_marker(&mut b, true, |f| matches!(f, ServerFrame::Signal(s) if s.from.as_str() == "alice" && s.payload == marker)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn bad_frames_get_typed_errors_and_the_session_lives_on() {
                let config = EngineConfig { max_frame_bytes: 1024, max_message_chars: 10, ..EngineConfig::default() };
                let w = world(db().await, config).await;
                let alice = w.user("alice").await;
                let lobby = w.room("lobby", RoomKind::Public, &alice).await;
                let mut a = w.session(&alice).await;
                join(&mut a, &lobby).await;
                let cases = [
                    ("{not json".to_owned(), ErrorCode::InvalidJson),
                    ("[1]".to_owned(), ErrorCode::NotAnObject),
                    (r#"{"room":"lobby"}"#.to_owned(), ErrorCode::MissingType),
                    (r#"{"type":"explode"}"#.to_owned(), ErrorCode::UnknownType),
                    (r#"{"type":"send","room":"lobby"}"#.to_owned(), ErrorCode::MissingField),
                    (r#"{"type":"send","room":"lobby","body":"x","color":"red"}"#.to_owned(), ErrorCode::UnknownField),
                    (r#"{"type":"send","room":"lobby","body":12}"#.to_owned(), ErrorCode::InvalidField),
                    (r#"{"type":"send","room":"lobby","body":"much too long text"}"#.to_owned(), ErrorCode::BodyTooLong),
                    (r#"{"type":"join","room":"no spaces allowed"}"#.to_owned(), ErrorCode::InvalidRoomName),
                    (format!(r#"{{"type":"send","room":"lobby","body":"{}"}}"#, "x".repeat(2000)), ErrorCode::FrameTooLarge),
                ];
                for (input, code) in cases {
                    let replies = a.on_text(&input).await;
                    let Outbound::Text(t) = &replies[0] else { panic!() };
                    assert_eq!(error_code(&ServerFrame::from_json(t).unwrap()), code, "for {input}");
                }
                assert!(matches!(ask(&mut a, json!({"type": "send", "room": "lobby", "body": "still ok"})).await, ServerFrame::Message(_)));
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn message_rate_limit_is_per_user() {
                let config = EngineConfig { message_rate: RateLimit::new(0.001, 3.0), ..EngineConfig::default() };
                let w = world(db().await, config).await;
                let alice = w.user("alice").await;
                let lobby = w.room("lobby", RoomKind::Public, &alice).await;
                let mut a1 = w.session(&alice).await;
                let mut a2 = w.session(&alice).await;
                join(&mut a1, &lobby).await;
                join(&mut a2, &lobby).await;
                for i in 0..3 {
                    let s = if i % 2 == 0 { &mut a1 } else { &mut a2 };
                    assert!(matches!(ask(s, json!({"type": "send", "room": "lobby", "body": "m"})).await, ServerFrame::Message(_)));
                }
                let refused = ask(&mut a2, json!({"type": "send", "room": "lobby", "body": "m"})).await;
                assert_eq!(error_code(&refused), ErrorCode::RateLimited, "the bucket is shared by the user's tabs");
                let page = w.db.history(w.db.room_by_name(&lobby).await.unwrap().id, &Default::default()).await.unwrap();
                assert_eq!(page.messages.len(), 3, "the refused message was not stored");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_slow_reader_is_disconnected_and_others_are_not() {
                let config = EngineConfig { message_rate: RateLimit::new(1000.0, 1000.0), ..EngineConfig::default() };
                let w = world_with(db().await, LayerConfig { capacity: 5, ..LayerConfig::default() }, config).await;
                let (alice, bob, carol) = (w.user("alice").await, w.user("bob").await, w.user("carol").await);
                let lobby = w.room("lobby", RoomKind::Public, &alice).await;
                let mut a = w.session(&alice).await;
                let mut slow = w.session(&bob).await;
                let mut c = w.session(&carol).await;
                join(&mut slow, &lobby).await;
                join(&mut c, &lobby).await;
                join(&mut a, &lobby).await;
                for i in 0..10 {
                    assert!(matches!(ask(&mut a, json!({"type": "send", "room": "lobby", "body": format!("m{i}")})).await, ServerFrame::Message(_)));
                    // Carol keeps up.
                    loop {
                        if let ServerFrame::Message(_) = next_frame(&mut c).await { break; }
                    }
                }
                // Bob never read: his next receive reports the overflow, queued frames first or not.
                let mut closed = false;
                for _ in 0..20 {
                    let inbound = timeout(WAIT, slow.recv()).await.unwrap();
                    if let Some(Outbound::Close(reason)) = slow.on_inbound(inbound).await {
                        assert_eq!(reason, CloseReason::SlowConsumer);
                        closed = true;
                        break;
                    }
                }
                assert!(closed, "the slow reader was not told to close");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn two_nodes_on_one_layer_share_messages_and_presence() {
                let mut nodes = layers(LayerKind::$layer, LayerConfig::default(), 2).await;
                let config = EngineConfig { presence_interval: Duration::from_millis(100), presence_ttl: Duration::from_millis(400), ..EngineConfig::default() };
                let w = world_on(db().await, nodes.remove(0), config.clone()).await;
                let node_b = Engine::start(w.db.store().clone(), nodes.remove(0), config).await.unwrap();
                let (alice, bob) = (w.user("alice").await, w.user("bob").await);
                let lobby = w.room("lobby", RoomKind::Public, &alice).await;
                let mut a = w.session(&alice).await;
                let mut b = node_b.connect(bob.clone()).await.unwrap();
                join(&mut a, &lobby).await;
                join(&mut b, &lobby).await;
                // Each node learns of the other's user from its snapshots.
                let deadline = tokio::time::Instant::now() + WAIT;
                while w.engine.online(&lobby).len() < 2 || node_b.online(&lobby).len() < 2 {
                    assert!(tokio::time::Instant::now() < deadline, "the nodes never saw each other's users");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                ask(&mut a, json!({"type": "send", "room": "lobby", "body": "across nodes"})).await;
                let ServerFrame::Message(m) = next_non_presence(&mut b).await else { panic!() };
                assert_eq!(m.message.body, "across nodes");

                // Node B dies without a goodbye: Bob drops out of A's list within the TTL.
                std::mem::forget(b);
                node_b.shutdown();
                drop(node_b);
                loop {
                    let ServerFrame::Presence(p) = next_frame(&mut a).await else { continue };
                    if p.user.as_str() == "bob" && p.event == PresenceEvent::Left {
                        break;
                    }
                }
                assert_eq!(w.engine.online(&lobby), vec![UserName::parse("alice").unwrap()]);
            }

            /// A node with no member in a room still knows who is online there (a REST call
            /// behind a load balancer lands on any process), and a node with users in more
            /// rooms than a channel holds messages tells the others in one message, not one
            /// per room (which overflowed node channels: presence was wrong at scale).
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn every_node_knows_every_rooms_presence_even_with_more_rooms_than_a_channel_holds() {
                const ROOMS: usize = 150;
                let capacity = LayerConfig { capacity: 100, ..LayerConfig::default() };
                assert!(ROOMS > capacity.capacity, "the rooms must outnumber the node channel's capacity");
                let mut nodes = layers(LayerKind::$layer, capacity, 2).await;
                let config = EngineConfig {
                    presence_interval: Duration::from_millis(200),
                    presence_ttl: Duration::from_millis(1000),
                    max_rooms_per_connection: ROOMS,
                    join_rate: RateLimit::new(1000.0, 1000.0),
                    ..EngineConfig::default()
                };
                let w = world_on(db().await, nodes.remove(0), config.clone()).await;
                let node_b = Engine::start(w.db.store().clone(), nodes.remove(0), config).await.unwrap();
                let alice = w.user("alice").await;
                let mut rooms = Vec::new();
                for i in 0..ROOMS {
                    rooms.push(w.room(&format!("room{i}"), RoomKind::Public, &alice).await);
                }
                let mut a = w.session(&alice).await;
                for room in &rooms {
                    assert!(matches!(join(&mut a, room).await, ServerFrame::Joined(_)));
                }
                // Node B holds no socket at all, yet lists Alice in every room.
                let only_alice = vec![alice.username.clone()];
                let deadline = tokio::time::Instant::now() + WAIT;
                loop {
                    let missing = rooms.iter().filter(|r| node_b.online(r) != only_alice).count();
                    if missing == 0 {
                        break;
                    }
                    assert!(tokio::time::Instant::now() < deadline, "node B lists Alice in only {} of {ROOMS} rooms", ROOMS - missing);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                // Leaving one room reaches node B too, and the others stay.
                ask(&mut a, json!({"type": "leave", "room": rooms[7].as_str()})).await;
                let deadline = tokio::time::Instant::now() + WAIT;
                while !node_b.online(&rooms[7]).is_empty() {
                    assert!(tokio::time::Instant::now() < deadline, "node B still lists Alice in the room she left");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                // Past several heartbeats and TTLs, the lists hold.
                tokio::time::sleep(Duration::from_millis(1500)).await;
                assert!(node_b.online(&rooms[7]).is_empty());
                assert!(rooms.iter().enumerate().all(|(i, r)| i == 7 || node_b.online(r) == only_alice));
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn django_events_on_the_chat_group_reach_clients_and_back() {
                let w = world(db().await, EngineConfig::default()).await;
                let alice = w.user("alice").await;
                let lobby = w.room("lobby", RoomKind::Public, &alice).await;
                let mut a = w.session(&alice).await;
                join(&mut a, &lobby).await;
                // What a Django tutorial consumer's group_send puts on the group.
                let mut fields = serde_json::Map::new();
                fields.insert("message".into(), json!("hello from django"));
                fields.insert("username".into(), json!("dj"));
                let group = GroupName::parse("chat_lobby").unwrap();
                w.layer.group_send(&group, Message::new("chat.message", fields)).await.unwrap();
                let text = next_text(&mut a).await;
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v, json!({"type": "external", "room": "lobby", "username": "dj", "message": "hello from django"}));

                // And a Django consumer in the group sees Parley's messages with the fields it reads.
                let django = w.layer.new_channel().await.unwrap();
                w.layer.group_add(&group, &django).await.unwrap();
                ask(&mut a, json!({"type": "send", "room": "lobby", "body": "hi django"})).await;
                let event = timeout(WAIT, w.layer.receive(&django)).await.unwrap().unwrap();
                assert_eq!(event.kind(), "chat.message");
                assert_eq!(event.get("message"), Some(&json!("hi django")));
                assert_eq!(event.get("username"), Some(&json!("alice")));
            }


            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn tutorial_sessions_get_the_tutorial_fields_on_every_copy() {
                let mut nodes = layers(LayerKind::$layer, LayerConfig::default(), 2).await;
                let w = world_on(db().await, nodes.remove(0), EngineConfig::default()).await;
                let node_b = Engine::start(w.db.store().clone(), nodes.remove(0), EngineConfig::default()).await.unwrap();
                let (alice, bob, carol) = (w.user("alice").await, w.user("bob").await, w.user("carol").await);
                // The first tutorial connection creates the room (public, its owner) and joins it;
                // asked for every frame, it says so with `joined`.
                let (mut a, opening) = tutorial_session(&w.engine, &alice, "CaseRoom", TutorialFrames::All).await;
                let opening = texts(&opening);
                assert_eq!(opening.len(), 1, "{opening:?}");
                assert_eq!((opening[0]["type"].as_str(), opening[0]["room"].as_str()), (Some("joined"), Some("caseroom")));
                assert_eq!(opening[0]["kind"], "public");
                // A chat-only one (the default: what a tutorial page shows) opens silently.
                let (mut b, opening) = tutorial_session(&node_b, &bob, "caseroom", TutorialFrames::Chat).await;
                assert!(opening.is_empty(), "{opening:?}");
                // A Parley client in the same room, on alice's node.
                let mut c = w.session(&carol).await;
                join(&mut c, &RoomName::parse("caseroom").unwrap()).await;

                // The tutorial's own frame; its `username` is ignored.
                let ack = texts(&a.on_text(r#"{"message": "hi all", "username": "mallory"}"#).await);
                assert_eq!(ack.len(), 1, "{ack:?}");
                assert_eq!((ack[0]["type"].as_str(), ack[0]["body"].as_str()), (Some("message"), Some("hi all")));
                assert_eq!((ack[0]["message"].as_str(), ack[0]["username"].as_str()), (Some("hi all"), Some("alice")));
                // Another process's tutorial socket: the fields are there too; and, chat-only,
                // it got nothing before it (not carol's arrival).
                let got: Value = serde_json::from_str(&next_text(&mut b).await).unwrap();
                assert_eq!(got["type"], "message", "{got}");
                assert_eq!((got["message"].as_str(), got["username"].as_str()), (Some("hi all"), Some("alice")));
                assert_eq!(got["sender"], "alice");
                // A Parley socket gets Parley's frame, without them.
                let got = next_message_json(&mut c).await;
                assert_eq!(got["body"], "hi all");
                assert!(got.get("message").is_none() && got.get("username").is_none(), "{got}");

                // And back, from the other process, with a typed frame this time.
                b.on_text(r#"{"type": "send", "room": "caseroom", "body": "hi alice"}"#).await;
                let got = next_message_json(&mut a).await;
                assert_eq!((got["message"].as_str(), got["username"].as_str()), (Some("hi alice"), Some("bob")));
                // The chat-only socket got nothing but chat: no presence of carol, no typing.
                c.on_text(r#"{"type": "typing", "room": "caseroom"}"#).await;
                c.on_text(r#"{"type": "send", "room": "caseroom", "body": "from parley"}"#).await;
                let got: Value = serde_json::from_str(&next_text(&mut b).await).unwrap();
                assert_eq!((got["type"].as_str(), got["message"].as_str()), (Some("message"), Some("from parley")), "{got}");
                // The full one got the room's events too.
                let mut kinds = Vec::new();
                loop {
                    let v: Value = serde_json::from_str(&next_text(&mut a).await).unwrap();
                    kinds.push(v["type"].as_str().unwrap().to_owned());
                    if v["type"] == "message" {
                        break;
                    }
                }
                assert!(kinds.contains(&"typing".to_owned()), "{kinds:?}");

                // An empty tutorial message is an error frame; the session goes on.
                let refused = texts(&a.on_text(r#"{"message": ""}"#).await);
                assert_eq!((refused[0]["type"].as_str(), refused[0]["code"].as_str()), (Some("error"), Some("invalid_field")));
                assert_eq!(texts(&a.on_text(r#"{"type": "ping"}"#).await)[0]["type"], "pong");
                // Both messages are stored as their senders' own.
                let stored = all_messages(&w, &RoomName::parse("caseroom").unwrap()).await;
                let senders: Vec<&str> = stored.iter().map(|m| m.sender.as_str()).collect();
                assert_eq!(senders, ["alice", "bob", "carol"]);
                // Removed from its room, a chat-only socket closes; a full one gets `left`.
                w.engine.kick(bob.id, &RoomName::parse("caseroom").unwrap()).await.unwrap();
                w.engine.kick(alice.id, &RoomName::parse("caseroom").unwrap()).await.unwrap();
                let closed = loop {
                    let inbound = timeout(WAIT, b.recv()).await.expect("no close");
                    match b.on_inbound(inbound).await {
                        Some(Outbound::Close(reason)) => break reason,
                        Some(Outbound::Text(t)) => panic!("chat-only socket got {t}"),
                        None => {}
                    }
                };
                assert_eq!((closed, closed.code()), (CloseReason::Removed, 1008));
                assert!(matches!(next_non_presence(&mut a).await, ServerFrame::Left(_)));
                node_b.shutdown();
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_refused_tutorial_join_says_why_then_closes() {
                let w = world(db().await, EngineConfig::default()).await;
                let (alice, bob) = (w.user("alice").await, w.user("bob").await);
                w.room("secret", RoomKind::Private, &alice).await;
                let (_b, opening) = tutorial_session(&w.engine, &bob, "secret", TutorialFrames::Chat).await;
                let opening = texts(&opening);
                assert_eq!(opening.len(), 2, "{opening:?}");
                assert_eq!((opening[0]["type"].as_str(), opening[0]["code"].as_str()), (Some("error"), Some("not_member")));
                assert_eq!(opening[1], json!({"close": 1008}));
                // Parley's own dialect opens with nothing.
                let mut a = w.session(&alice).await;
                assert!(a.on_open().await.is_empty());
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_rooms_service_applies_one_policy() {
                let w = world(db().await, EngineConfig::default()).await;
                let rooms = w.engine.rooms();
                let (alice, bob, carol, sam) = (w.user("alice").await, w.user("bob").await, w.user("carol").await, w.staff("sam").await);
                let public = rooms.create(&alice, RoomName::parse("pub").unwrap(), RoomKind::Public, Topic::default()).await.unwrap();
                let private = rooms.create(&alice, RoomName::parse("priv").unwrap(), RoomKind::Private, Topic::parse("t").unwrap()).await.unwrap();
                let (public, private) = (public.name, private.name);
                assert!(matches!(rooms.add_member(&alice, &private, &bob.username, Role::Member).await.unwrap(), MemberAdded::Added(_)));
                assert_eq!(refusal(rooms.create(&alice, RoomName::parse("pub").unwrap(), RoomKind::Public, Topic::default()).await), ErrorCode::Conflict);
                assert_eq!(refusal(rooms.create(&alice, RoomName::parse("x").unwrap(), RoomKind::Direct, Topic::default()).await), ErrorCode::InvalidField);

                // See: public to all, private to members and staff.
                let details = rooms.details(&carol, &public).await.unwrap();
                assert_eq!((details.role, details.members.len()), (None, 1));
                assert_eq!(refusal(rooms.details(&carol, &private).await), ErrorCode::NotMember);
                assert_eq!(refusal(rooms.online(&carol, &private).await), ErrorCode::NotMember);
                let details = rooms.details(&sam, &private).await.unwrap();
                let names: Vec<&str> = details.members.iter().map(|m| m.username.as_str()).collect();
                assert_eq!(names, ["alice", "bob"]);
                assert_eq!(details.members[0].role, Role::Owner);
                // Read: public to all, private to members only: staff status does not count,
                // on the rooms service and on the socket alike.
                rooms.history(&carol, &public, &Default::default()).await.unwrap();
                rooms.history(&bob, &private, &Default::default()).await.unwrap();
                assert_eq!(refusal(rooms.history(&sam, &private, &Default::default()).await), ErrorCode::NotMember);
                let mut s = w.session(&sam).await;
                assert_eq!(error_code(&join(&mut s, &private).await), ErrorCode::NotMember);
                let hist = ask(&mut s, json!({"type": "history", "room": "priv"})).await;
                assert_eq!(error_code(&hist), ErrorCode::NotMember);
                assert_eq!(refusal(rooms.history(&carol, &RoomName::parse("nowhere").unwrap(), &Default::default()).await), ErrorCode::NotFound);

                // Manage: owners and staff.
                let topic = RoomChanges { topic: Some(Topic::parse("by staff").unwrap()), ..RoomChanges::default() };
                assert_eq!(refusal(rooms.update(&bob, &private, topic.clone()).await), ErrorCode::Forbidden);
                assert_eq!(refusal(rooms.update(&carol, &private, topic.clone()).await), ErrorCode::NotMember);
                assert_eq!(rooms.update(&sam, &private, topic).await.unwrap().topic.as_str(), "by staff");
                assert_eq!(refusal(rooms.set_role(&bob, &private, &bob.username, Role::Owner).await), ErrorCode::Forbidden);
                assert_eq!(refusal(rooms.add_member(&bob, &private, &carol.username, Role::Member).await), ErrorCode::Forbidden);
                assert_eq!(refusal(rooms.delete(&bob, &public).await), ErrorCode::Forbidden);

                // Adding an existing member with another role changes the role.
                // Staff may not make themselves members of a private room (they would read it).
                assert_eq!(refusal(rooms.add_member(&sam, &private, &sam.username, Role::Member).await), ErrorCode::Forbidden);
                assert_eq!(refusal(rooms.history(&sam, &private, &Default::default()).await), ErrorCode::NotMember);
                let again = rooms.add_member(&alice, &private, &bob.username, Role::Owner).await.unwrap();
                assert!(matches!(again, MemberAdded::RoleChanged(ref m) if m.role == Role::Owner), "{again:?}");
                let same = rooms.add_member(&alice, &private, &bob.username, Role::Owner).await.unwrap();
                assert!(matches!(same, MemberAdded::Unchanged(_)), "{same:?}");
                assert_eq!(rooms.details(&bob, &private).await.unwrap().role, Some(Role::Owner));
                assert_eq!(rooms.set_role(&bob, &private, &bob.username, Role::Member).await.unwrap().role, Role::Member);

                // A direct room: its members are fixed; staff may see it but not read it.
                let dm = rooms.direct(&alice, &bob.username).await.unwrap().name;
                assert_eq!(refusal(rooms.direct(&alice, &alice.username).await), ErrorCode::InvalidField);
                assert_eq!(refusal(rooms.add_member(&sam, &dm, &carol.username, Role::Member).await), ErrorCode::InvalidField);
                assert_eq!(refusal(rooms.update(&sam, &dm, RoomChanges { name: Some(RoomName::parse("renamed").unwrap()), ..RoomChanges::default() }).await), ErrorCode::InvalidField);
                rooms.details(&sam, &dm).await.unwrap();
                assert_eq!(refusal(rooms.history(&sam, &dm, &Default::default()).await), ErrorCode::NotMember);

                // Renaming and deleting tell joined sockets to leave; removing a member too.
                let mut b = w.session(&bob).await;
                let mut c = w.session(&carol).await;
                join(&mut b, &private).await;
                join(&mut c, &public).await;
                let renamed = RoomChanges { name: Some(RoomName::parse("priv2").unwrap()), ..RoomChanges::default() };
                assert_eq!(rooms.update(&alice, &private, renamed).await.unwrap().name.as_str(), "priv2");
                let ServerFrame::Left(left) = next_non_presence(&mut b).await else { panic!("bob was not told") };
                assert_eq!(left.room, private);
                rooms.delete(&sam, &public).await.unwrap();
                let ServerFrame::Left(left) = next_non_presence(&mut c).await else { panic!("carol was not told") };
                assert_eq!(left.room, public);
                let private = RoomName::parse("priv2").unwrap();
                join(&mut b, &private).await;
                rooms.remove_member(&bob, &private, &bob.username).await.unwrap();
                let ServerFrame::Left(_) = next_non_presence(&mut b).await else { panic!("bob was not told") };
                assert_eq!(refusal(rooms.remove_member(&bob, &private, &bob.username).await), ErrorCode::NotMember);
                assert_eq!(refusal(rooms.remove_member(&alice, &private, &bob.username).await), ErrorCode::NotFound);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn message_ids_tell_nothing_about_rooms_one_may_not_read() {
                let w = world(db().await, EngineConfig::default()).await;
                let (alice, eve) = (w.user("alice").await, w.user("eve").await);
                let secret = w.room("secret-plans", RoomKind::Private, &alice).await;
                let lobby = w.room("lobby", RoomKind::Public, &alice).await;
                let mut a = w.session(&alice).await;
                join(&mut a, &secret).await;
                join(&mut a, &lobby).await;
                let ServerFrame::Message(hidden) = ask(&mut a, json!({"type": "send", "room": "secret-plans", "body": "x"})).await else { panic!() };
                let ServerFrame::Message(open) = ask(&mut a, json!({"type": "send", "room": "lobby", "body": "y"})).await else { panic!() };
                let mut e = w.session(&eve).await;
                for frame in [json!({"type": "edit", "message_id": hidden.message.id, "body": "z"}), json!({"type": "delete", "message_id": hidden.message.id})] {
                    let refused = ask(&mut e, frame).await;
                    assert_eq!(error_code(&refused), ErrorCode::NotFound);
                    let ServerFrame::Error(err) = refused else { unreachable!() };
                    assert!(!err.message.contains("secret"), "{}", err.message);
                }
                // A message in a room eve could join: she is told to join it first.
                let refused = ask(&mut e, json!({"type": "delete", "message_id": open.message.id})).await;
                assert_eq!(error_code(&refused), ErrorCode::NotJoined);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn kicked_connections_leave_and_limits_hold() {
                let config = EngineConfig { max_connections_per_user: 2, max_rooms_per_connection: 1, ..EngineConfig::default() };
                let w = world(db().await, config).await;
                let alice = w.user("alice").await;
                let lobby = w.room("lobby", RoomKind::Public, &alice).await;
                let other = w.room("other", RoomKind::Public, &alice).await;
                let mut a = w.session(&alice).await;
                let _a2 = w.session(&alice).await;
                assert!(w.engine.connect(alice.clone()).await.is_err(), "third connection refused");
                join(&mut a, &lobby).await;
                assert_eq!(error_code(&join(&mut a, &other).await), ErrorCode::TooManyRooms);
                w.engine.kick(alice.id, &lobby).await.unwrap();
                let ServerFrame::Left(left) = next_non_presence(&mut a).await else { panic!() };
                assert_eq!(left.room, lobby);
                let send = ask(&mut a, json!({"type": "send", "room": "lobby", "body": "x"})).await;
                assert_eq!(error_code(&send), ErrorCode::NotJoined);
            }
        }
    };
}

suite!(sqlite_memory, sqlite, Memory);
suite!(postgres_memory, postgres, Memory);
suite!(sqlite_redis, sqlite, Redis);
suite!(postgres_redis, postgres, Redis);

#[tokio::test]
async fn bad_configuration_is_refused_with_the_setting_named() {
    let db = TestDb::sqlite().await.unwrap();
    let layer: Arc<dyn ChannelLayer> = Arc::new(InMemoryLayer::new(LayerConfig::default()));
    let config = EngineConfig {
        room_group_pattern: "chat room {room}".into(),
        ..EngineConfig::default()
    };
    let err = Engine::start(db.store().clone(), layer, config)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("room_group_pattern"), "{err}");
}

/// A TCP relay to PostgreSQL that can be cut: existing connections drop and new ones are
/// refused, as when the database goes away.
async fn cuttable_proxy(
    target: String,
) -> (std::net::SocketAddr, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (cut, cut_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut accept_cut = cut_rx.clone();
        loop {
            let (mut client, _) = tokio::select! {
                accepted = listener.accept() => accepted.unwrap(),
                _ = accept_cut.changed() => return, // drops the listener: connections refused
            };
            let (target, mut conn_cut) = (target.clone(), cut_rx.clone());
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    _ = conn_cut.changed() => {}
                }
            });
        }
    });
    (addr, cut)
}

/// `url` with its host and port replaced by `addr`; also the original `host:port`.
fn via(url: &str, addr: std::net::SocketAddr) -> (String, String) {
    let start = url.find("://").unwrap() + 3;
    let rest = &url[start..];
    let authority = &rest[..rest.find('/').unwrap()];
    let host = authority.rfind('@').map_or(0, |i| i + 1);
    let rewritten = format!(
        "{}{}{addr}{}",
        &url[..start],
        &authority[..host],
        &rest[authority.len()..]
    );
    (rewritten, authority[host..].to_owned())
}

/// The database going away mid-session: the client's `send` gets the same typed error frame
/// through the batcher as with one commit per message, nothing is broadcast, and the session
/// lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_gives_the_same_error_frame_with_or_without_group_commit() {
    let mut frames = Vec::new();
    for group_commit in [
        None,
        always_batched().group_commit,
        EngineConfig::default().group_commit,
    ] {
        let db = TestDb::postgres().await.unwrap();
        let (_, target) = via(db.url(), "127.0.0.1:1".parse().unwrap());
        let (addr, cut) = cuttable_proxy(target).await;
        let store = store_through(&db, addr);
        let layer: Arc<dyn ChannelLayer> = Arc::new(InMemoryLayer::new(LayerConfig::default()));
        let engine = Engine::start(
            store,
            layer.clone(),
            EngineConfig {
                group_commit,
                ..EngineConfig::default()
            },
        )
        .await
        .unwrap();
        let w = World { db, layer, engine };
        let (alice, bob) = (w.user("alice").await, w.user("bob").await);
        let lobby = w.room("lobby", RoomKind::Public, &alice).await;
        let (mut a, mut b) = (w.session(&alice).await, w.session(&bob).await);
        join(&mut b, &lobby).await;
        join(&mut a, &lobby).await;
        let _ = next_frame(&mut b).await; // alice's presence
        assert!(matches!(
            ask(
                &mut a,
                json!({"type": "send", "room": "lobby", "body": "before"})
            )
            .await,
            ServerFrame::Message(_)
        ));
        let _ = next_non_presence(&mut b).await;

        cut.send_replace(true);
        let reply = a.on_text(&json!({"type": "send", "room": "lobby", "body": "during", "client_id": "c-9", "ref": "r9"}).to_string()).await;
        let [Outbound::Text(t)] = &reply[..] else {
            panic!("{reply:?}")
        };
        let frame = ServerFrame::from_json(t).unwrap();
        assert_eq!(error_code(&frame), ErrorCode::Unavailable, "{t}");
        // Not stored, so not broadcast: the next thing bob gets from alice is her typing.
        nothing_before_typing_marker(&mut a, "alice", &mut b, &lobby).await;
        assert!(
            matches!(
                ask(&mut a, json!({"type": "ping"})).await,
                ServerFrame::Pong(_)
            ),
            "the session lives on"
        );
        // The direct connection (not through the relay) sees only the first message.
        let stored = all_messages(&w, &lobby).await;
        assert_eq!(
            stored.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            ["before"]
        );
        frames.push(t.to_string());
    }
    assert!(
        frames.windows(2).all(|p| p[0] == p[1]),
        "error frames differ: {frames:?}"
    );
}

/// A TCP relay to PostgreSQL that can lose the answer to a commit. Once armed, the next
/// `COMMIT` a client sends (or the next group-commit append, which commits by itself) reaches
/// the database, but nothing the database says afterwards on
/// that connection is relayed; [`CommitTrap::cut`] then drops that connection, so the client
/// sees it die with the commit's outcome unknown. Other and later connections work as usual.
struct CommitTrap {
    armed: std::sync::atomic::AtomicBool,
    /// Set once a commit has been let through and its answer held back.
    sprung: tokio::sync::watch::Sender<bool>,
    /// Bumped to drop the connection whose answer is held back.
    cut: tokio::sync::watch::Sender<u64>,
}

impl CommitTrap {
    fn arm(&self) {
        self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    async fn wait_sprung(&self) {
        let mut sprung = self.sprung.subscribe();
        timeout(WAIT, sprung.wait_for(|s| *s))
            .await
            .expect("no COMMIT went through the relay")
            .unwrap();
    }

    fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

async fn commit_trap_proxy(target: String) -> (std::net::SocketAddr, Arc<CommitTrap>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let trap = Arc::new(CommitTrap {
        armed: AtomicBool::new(false),
        sprung: tokio::sync::watch::channel(false).0,
        cut: tokio::sync::watch::channel(0).0,
    });
    let relay = trap.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                continue;
            };
            let trap = relay.clone();
            tokio::spawn(async move {
                let held = Arc::new(AtomicBool::new(false));
                let (mut client_r, mut client_w) = client.into_split();
                let (mut server_r, mut server_w) = server.into_split();
                let up = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    // The group-commit append is one statement in its own (implicit)
                    // transaction: its commit is its execution, the write after the one that
                    // prepares it.
                    let mut batch_prepared = false;
                    loop {
                        let n = match client_r.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let bytes = &buf[..n];
                        let executes_batch = std::mem::take(&mut batch_prepared);
                        batch_prepared = bytes
                            .windows(26)
                            .any(|w| w == b"WITH locks AS MATERIALIZED");
                        // The simple-query `COMMIT` diesel-async sends to end a transaction,
                        // or the batch append's execution.
                        if (bytes.windows(6).any(|w| w == b"COMMIT") || executes_batch)
                            && trap.armed.swap(false, Ordering::SeqCst)
                        {
                            held.store(true, Ordering::SeqCst);
                            trap.sprung.send_replace(true);
                        }
                        if server_w.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let down = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match server_r.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if !held.load(Ordering::SeqCst)
                            && client_w.write_all(&buf[..n]).await.is_err()
                        {
                            return;
                        }
                    }
                };
                let mut cut = trap.cut.subscribe();
                let cut_here = async {
                    loop {
                        if cut.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                        if held.load(Ordering::SeqCst) {
                            return;
                        }
                    }
                };
                tokio::select! {
                    _ = up => {}
                    _ = down => {}
                    _ = cut_here => {}
                }
            });
        }
    });
    (addr, trap)
}

/// A store on `db` reached through the relay at `addr` (small pool, short timeouts: an outage
/// shows at once).
fn store_through(db: &TestDb, addr: std::net::SocketAddr) -> parley_store::Store {
    let (url, _) = via(db.url(), addr);
    let opts = parley_store::StoreOptions {
        max_connections: 4,
        acquire_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        ..parley_store::StoreOptions::default()
    };
    parley_store::Store::connect(&url, &opts).unwrap()
}

/// The ambiguous case: the database commits a message, and the connection dies before the
/// server hears so. The server cannot tell a lost commit from a lost answer, so the send is
/// refused `unavailable` (never acknowledged) although the message is stored, and it is not
/// broadcast. A retry with the same `client_id` settles it: answered with the stored message,
/// which stays stored once and is broadcast then, once. (docs/reliability.md, "What the
/// server guarantees".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_answer_is_lost_is_refused_and_a_retry_finds_it_stored_once() {
    for group_commit in [None, EngineConfig::default().group_commit] {
        let db = TestDb::postgres().await.unwrap();
        let (_, target) = via(db.url(), "127.0.0.1:1".parse().unwrap());
        let (addr, trap) = commit_trap_proxy(target).await;
        let store = store_through(&db, addr);
        let layer: Arc<dyn ChannelLayer> = Arc::new(InMemoryLayer::new(LayerConfig::default()));
        let config = EngineConfig {
            group_commit,
            ..EngineConfig::default()
        };
        let engine = Engine::start(store, layer.clone(), config).await.unwrap();
        let w = World { db, layer, engine };
        let (alice, bob) = (w.user("alice").await, w.user("bob").await);
        let lobby = w.room("lobby", RoomKind::Public, &alice).await;
        let (mut a, mut b) = (w.session(&alice).await, w.session(&bob).await);
        join(&mut b, &lobby).await;
        join(&mut a, &lobby).await;
        let send = json!({"type": "send", "room": "lobby", "body": "did it?", "client_id": "amb-1", "ref": "r1"});

        trap.arm();
        let sending = tokio::spawn(async move {
            let replies = a.on_text(&send.to_string()).await;
            (a, replies)
        });
        trap.wait_sprung().await;
        // The commit reached the database: the message is there (read directly, not through
        // the relay) while the server still waits for the answer.
        let deadline = tokio::time::Instant::now() + WAIT;
        while !all_messages(&w, &lobby)
            .await
            .iter()
            .any(|m| m.body == "did it?")
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the trapped commit never landed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        trap.cut();
        let (mut a, replies) = timeout(WAIT, sending)
            .await
            .expect("the send never answered")
            .unwrap();
        let [Outbound::Text(t)] = &replies[..] else {
            panic!("{replies:?}")
        };
        let refused = ServerFrame::from_json(t).unwrap();
        assert_eq!(error_code(&refused), ErrorCode::Unavailable, "{t}");
        assert_eq!(refused.reference().map(|r| r.as_str()), Some("r1"));
        // Refused, so not broadcast: the next thing bob gets from alice is her typing.
        nothing_before_typing_marker(&mut a, "alice", &mut b, &lobby).await;

        // The retry (the pool replaces the dead connection by itself; a retry that meets it
        // first is refused `unavailable` again, which is itself safe to retry).
        let retry = json!({"type": "send", "room": "lobby", "body": "did it?", "client_id": "amb-1", "ref": "r2"});
        let deadline = tokio::time::Instant::now() + WAIT;
        let stored = loop {
            match ask(&mut a, retry.clone()).await {
                ServerFrame::Message(m) => break m,
                other => {
                    assert_eq!(error_code(&other), ErrorCode::Unavailable);
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "the retry never succeeded"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let in_db: Vec<_> = all_messages(&w, &lobby)
            .await
            .into_iter()
            .filter(|m| m.body == "did it?")
            .collect();
        assert_eq!(in_db.len(), 1, "stored once: {in_db:?}");
        assert_eq!(
            stored.message.id, in_db[0].id,
            "the retry is answered with the stored message"
        );
        // The retry is the first the room hears of it: broadcast once, then nothing more.
        let ServerFrame::Message(seen) = next_non_presence(&mut b).await else {
            panic!("bob did not get the settled message")
        };
        assert_eq!(seen.message.id, stored.message.id);
        nothing_before_marker(&mut a, &mut b, &lobby, true).await;
        // A retry once more is an ordinary retry: answered, not broadcast again.
        let ServerFrame::Message(again) = ask(&mut a, retry.clone()).await else {
            panic!("the second retry was refused")
        };
        assert_eq!(again.message.id, stored.message.id);
        nothing_before_marker(&mut a, &mut b, &lobby, true).await;
    }
}

/// Shutting down while sends are under way: every acknowledged message is stored, and once the
/// engine and its sessions are gone the group-commit writer tasks (and the presence task) have
/// stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_keeps_acknowledged_messages_and_stops_the_writers() {
    let db = TestDb::sqlite().await.unwrap();
    let layer: Arc<dyn ChannelLayer> = Arc::new(InMemoryLayer::new(LayerConfig {
        capacity: 1000,
        ..LayerConfig::default()
    }));
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let baseline = tasks();
    let config = EngineConfig {
        presence_interval: Duration::from_millis(50),
        presence_ttl: Duration::from_millis(200),
        ..always_batched()
    };
    let writers = config.group_commit.unwrap().writers;
    let w = world_on(db, layer, config).await;
    assert!(
        tasks() > baseline + writers,
        "the writer and presence tasks run"
    );
    let owner = w.user("owner").await;
    let room = w.room("room", RoomKind::Public, &owner).await;
    let mut senders = tokio::task::JoinSet::new();
    for i in 0..6 {
        let user = w.user(&format!("user{i}")).await;
        let mut s = w.session(&user).await;
        join(&mut s, &room).await;
        senders.spawn(async move {
            let mut acked = Vec::new();
            for k in 0..20 {
                match ask(
                    &mut s,
                    json!({"type": "send", "room": "room", "body": format!("{i}/{k}")}),
                )
                .await
                {
                    ServerFrame::Message(m) => acked.push(m.message.id),
                    other => panic!("{other:?}"),
                }
                if k == 5 {
                    tokio::task::yield_now().await;
                }
            }
            s.close().await;
            acked
        });
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    w.engine.shutdown();
    assert!(
        w.engine.connect(owner.clone()).await.is_err(),
        "no new connections"
    );
    let mut acked = Vec::new();
    while let Some(done) = senders.join_next().await {
        acked.extend(done.unwrap());
    }
    let World { db, engine, layer } = w;
    drop((engine, layer));
    let deadline = tokio::time::Instant::now() + WAIT;
    while tasks() > baseline {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} tasks still alive, {baseline} before the engine started",
            tasks()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stored: Vec<_> = stored_messages(&db, &room)
        .await
        .iter()
        .map(|m| m.id)
        .collect();
    acked.sort();
    assert_eq!(acked.len(), 120);
    assert_eq!(acked, stored, "every acknowledged message is stored, once");
}
