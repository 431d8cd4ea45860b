//! The engine against a real store (SQLite and PostgreSQL) and a real layer (in-memory and
//! Redis at `REDIS_URL`): every case runs on each combination listed at the bottom.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

use parley_core::{CloseReason, Engine, EngineConfig, Outbound, RateLimit, Session};
use parley_domain::protocol::{ErrorCode, PresenceEvent, ServerFrame};
use parley_domain::{RoomKind, RoomName, Topic, User, UserName};
use parley_layer::{ChannelLayer, GroupName, InMemoryLayer, LayerConfig, Message};
use parley_redis::{RedisLayer, RedisLayerConfig};
use parley_store::testing::TestDb;
use parley_store::{NewRoom, NewUser};
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
                password_hash: "x".into(),
                is_staff: false,
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

    async fn session(&self, user: &User) -> Session {
        self.engine.connect(user.clone()).await.unwrap()
    }
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

/// Asserts nothing is delivered to `s` right now (after letting in-flight events land).
async fn assert_quiet(s: &mut Session) {
    tokio::task::yield_now().await;
    if let Ok(inbound) = timeout(Duration::from_millis(200), s.recv()).await
        && let Some(out) = s.on_inbound(inbound).await
    {
        panic!("unexpected delivery: {out:?}");
    }
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
                // The sender's own connection gets the ack only, not an echo.
                loop {
                    match timeout(Duration::from_millis(200), a.recv()).await {
                        Err(_) => break,
                        Ok(inbound) => match a.on_inbound(inbound).await {
                            Some(Outbound::Text(t)) => {
                                let f = ServerFrame::from_json(&t).unwrap();
                                assert!(matches!(f, ServerFrame::Presence(_)), "unexpected echo {f:?}");
                            }
                            Some(other) => panic!("{other:?}"),
                            None => {}
                        },
                    }
                }

                // A retry with the same client id is acknowledged with the first message, and not re-broadcast.
                let retry = ask(&mut a, json!({"type": "send", "room": "lobby", "body": "hi bob", "client_id": "c-1"})).await;
                let ServerFrame::Message(again) = retry else { panic!("{retry:?}") };
                assert_eq!(again.message.id, posted.message.id);
                assert_quiet(&mut b).await;

                // History holds it once.
                let ServerFrame::History(page) = ask(&mut b, json!({"type": "history", "room": "lobby"})).await else { panic!() };
                assert_eq!(page.messages.iter().filter(|m| m.id == posted.message.id).count(), 1);
                a.close().await;
                b.close().await;
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
                assert_quiet(&mut b).await; // second tab still open: no "left"
                a2.close().await;
                let ServerFrame::Presence(p) = next_frame(&mut b).await else { panic!() };
                assert_eq!((p.user.as_str(), p.event), ("alice", PresenceEvent::Left));
                assert_eq!(p.online, vec![UserName::parse("bob").unwrap()]);
                b.close().await;
                assert_eq!(w.engine.local_connections(), 0);
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
                assert_eq!(j.online.len(), 3, "joined still lists everyone");
                assert_quiet(&mut b).await; // 3 online: over the limit
                assert_quiet(&mut a).await;
                assert_eq!(w.engine.online(&lobby).len(), 3);
                c.close().await;
                assert_quiet(&mut b).await; // the room was over the limit when carol left
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
                assert_quiet(&mut a).await; // no echo to the typist
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
                assert_quiet(&mut b).await;
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
