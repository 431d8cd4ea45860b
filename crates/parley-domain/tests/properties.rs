//! Properties of the protocol and the validated names, checked on generated inputs.

// Strategies and helpers outside `#[test]` functions unwrap too: a panic is a failed case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use parley_domain::protocol::*;
use parley_domain::{
    ClientMsgId, Email, Message, MessageBody, MessageId, RoomId, RoomKind, RoomName, Timestamp,
    Topic, UserId, UserName,
};
use proptest::prelude::*;
use serde_json::Value;

// --- strategies for valid values ---------------------------------------------------------

fn room() -> impl Strategy<Value = RoomName> {
    "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}".prop_map(|s| RoomName::parse(&s).unwrap())
}

fn user() -> impl Strategy<Value = UserName> {
    "[a-zA-Z][a-zA-Z0-9_.-]{2,31}".prop_map(|s| UserName::parse(&s).unwrap())
}

fn body() -> impl Strategy<Value = MessageBody> {
    // Anything but NUL, with at least one visible character; whitespace is kept as sent.
    "[^\u{0}]{0,30}[a-zé😀]".prop_map(|s| MessageBody::parse(&s).unwrap())
}

fn message_id() -> impl Strategy<Value = MessageId> {
    (1..=i64::MAX).prop_map(MessageId)
}

fn reference() -> impl Strategy<Value = Option<FrameRef>> {
    proptest::option::of("[^\\p{Cc}]{1,64}".prop_map(|s| FrameRef::parse(&s).unwrap()))
}

fn call_id() -> impl Strategy<Value = Option<CallId>> {
    proptest::option::of("[a-zA-Z0-9-]{1,64}".prop_map(|s| CallId::parse(&s).unwrap()))
}

fn client_id() -> impl Strategy<Value = Option<ClientMsgId>> {
    proptest::option::of("[A-Za-z0-9_.:-]{1,64}".prop_map(|s| ClientMsgId::parse(&s).unwrap()))
}

/// Any JSON value without floats (whose text form need not round-trip bit for bit).
fn payload() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        room().prop_map(|room| ClientFrame::Join(JoinRoom { room })),
        room().prop_map(|room| ClientFrame::Leave(LeaveRoom { room })),
        (room(), body(), client_id()).prop_map(|(room, body, client_id)| {
            ClientFrame::Send(SendMessage {
                room,
                body,
                client_id,
                reply_to: None,
            })
        }),
        (room(), any::<bool>())
            .prop_map(|(room, active)| ClientFrame::Typing(SetTyping { room, active })),
        (
            room(),
            proptest::option::of(message_id()),
            proptest::option::of(message_id()),
            proptest::option::of(any::<u32>())
        )
            .prop_map(|(room, before, after, limit)| {
                ClientFrame::History(FetchHistory {
                    room,
                    before,
                    after,
                    limit,
                })
            }),
        (message_id(), body())
            .prop_map(|(message_id, body)| ClientFrame::Edit(EditMessage { message_id, body })),
        message_id().prop_map(|message_id| ClientFrame::Delete(DeleteMessage { message_id })),
        (room(), message_id())
            .prop_map(|(room, message_id)| ClientFrame::Read(MarkRead { room, message_id })),
        // A null payload means "missing"; every other value is relayed as is.
        (
            user(),
            payload().prop_filter("payload is required", |v| !v.is_null()),
            call_id()
        )
            .prop_map(|(to, payload, call_id)| ClientFrame::Signal(SendSignal {
                to,
                payload,
                call_id
            })),
        Just(ClientFrame::Ping),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        (any::<i64>(), any::<i64>(), room(), any::<i64>(), user()),
        (
            ".{0,40}",
            client_id(),
            any::<i64>(),
            proptest::option::of(any::<i64>()),
            proptest::option::of(any::<i64>()),
        ),
    )
        .prop_map(
            |(
                (id, room_id, room, sender_id, sender),
                (body, client_id, created, edited, deleted),
            )| Message {
                id: MessageId(id),
                room_id: RoomId(room_id),
                room,
                sender_id: UserId(sender_id),
                sender,
                sender_display_name: None,
                body,
                client_id,
                created_at: Timestamp(created),
                edited_at: edited.map(Timestamp),
                deleted_at: deleted.map(Timestamp),
                guest: false,
                reply_to: None,
                reactions: Vec::new(),
                mentions: Vec::new(),
            },
        )
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    let kind = prop_oneof![
        Just(RoomKind::Public),
        Just(RoomKind::Private),
        Just(RoomKind::Direct)
    ];
    let users = || proptest::collection::vec(user(), 0..4);
    let messages = || proptest::collection::vec(message(), 0..3);
    let code = proptest::sample::select(ErrorCode::ALL.to_vec());
    prop_oneof![
        (
            room(),
            any::<i64>(),
            kind,
            messages(),
            users(),
            any::<u32>(),
            reference()
        )
            .prop_map(
                |(room, room_id, kind, history, online, online_count, reference)| {
                    ServerFrame::Joined(Joined {
                        room,
                        room_id: RoomId(room_id),
                        kind,
                        history,
                        online,
                        online_count: online_count as usize,
                        reference,
                    })
                }
            ),
        (room(), reference())
            .prop_map(|(room, reference)| ServerFrame::Left(Left { room, reference })),
        (message(), reference()).prop_map(|(message, reference)| {
            ServerFrame::Message(Posted {
                message,
                reference,
                tutorial: None,
            })
        }),
        (room(), user(), any::<bool>(), users()).prop_map(|(room, user, joined, online)| {
            let event = if joined {
                PresenceEvent::Joined
            } else {
                PresenceEvent::Left
            };
            // A folded frame lists its changes; a single change lists none.
            let changes = if online.len() > 1 {
                online
                    .iter()
                    .map(|u| PresenceChange {
                        user: u.clone(),
                        event,
                    })
                    .collect()
            } else {
                Vec::new()
            };
            ServerFrame::Presence(Presence {
                room,
                user,
                event,
                online,
                changes,
            })
        }),
        (room(), user(), any::<bool>())
            .prop_map(|(room, user, active)| ServerFrame::Typing(Typing { room, user, active })),
        (room(), messages(), any::<bool>(), reference()).prop_map(
            |(room, messages, has_more, reference)| {
                ServerFrame::History(HistoryPage {
                    room,
                    messages,
                    has_more,
                    reference,
                })
            }
        ),
        (message(), reference())
            .prop_map(|(message, reference)| ServerFrame::Edited(Edited { message, reference })),
        (room(), message_id(), any::<i64>(), reference()).prop_map(
            |(room, message_id, at, reference)| {
                ServerFrame::Deleted(Deleted {
                    room,
                    message_id,
                    deleted_at: Timestamp(at),
                    reference,
                })
            }
        ),
        (room(), user(), message_id(), reference()).prop_map(
            |(room, user, message_id, reference)| {
                ServerFrame::Read(ReadMarker {
                    room,
                    user,
                    message_id,
                    reference,
                })
            }
        ),
        (user(), payload(), call_id()).prop_map(|(from, payload, call_id)| ServerFrame::Signal(
            RelayedSignal {
                from,
                payload,
                call_id
            }
        )),
        (code, ".{0,40}", reference())
            .prop_map(|(code, message, reference)| ServerFrame::error(code, message, reference)),
        reference().prop_map(|reference| ServerFrame::Pong(Pong { reference })),
    ]
}

/// Text that is often almost a valid frame: a real frame's JSON with one field replaced by
/// a random value, added, or removed, so the decoder's field checks get exercised.
fn near_frame() -> impl Strategy<Value = String> {
    (
        client_frame(),
        reference(),
        ".{0,12}",
        payload(),
        any::<bool>(),
    )
        .prop_map(|(frame, reference, key, value, remove)| {
            let mut obj = serde_json::to_value(ClientEnvelope::new(frame, reference)).unwrap();
            if let Value::Object(map) = &mut obj {
                let victim = if remove {
                    map.keys().next().cloned()
                } else {
                    None
                };
                match victim {
                    Some(k) => {
                        map.remove(&k);
                    }
                    None => {
                        map.insert(key, value);
                    }
                }
            }
            obj.to_string()
        })
}

// --- properties -------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decode_never_panics_on_arbitrary_text(text in ".{0,200}") {
        let _ = ClientFrame::decode(&text, &DecodeLimits::default());
    }

    #[test]
    fn decode_never_panics_on_arbitrary_json(value in payload()) {
        let _ = ClientFrame::decode(&value.to_string(), &DecodeLimits::default());
    }

    #[test]
    fn decode_never_panics_on_near_frames(text in near_frame()) {
        let tight = DecodeLimits { max_frame_bytes: 256, max_body_chars: 8 };
        let _ = ClientFrame::decode(&text, &DecodeLimits::default());
        let _ = ClientFrame::decode(&text, &tight);
    }

    #[test]
    fn client_frames_round_trip(frame in client_frame(), reference in reference()) {
        let envelope = ClientEnvelope::new(frame, reference);
        let json = envelope.to_json().unwrap();
        prop_assert_eq!(ClientFrame::decode(&json, &DecodeLimits::default()), Ok(envelope));
    }

    #[test]
    fn server_frames_round_trip(frame in server_frame()) {
        let json = frame.to_json();
        prop_assert_eq!(ServerFrame::from_json(&json).unwrap(), frame);
    }

    #[test]
    fn errors_keep_a_readable_ref(frame in client_frame(), reference in reference(), key in "[a-z]{1,8}x") {
        // Add a field no frame defines: the frame is refused, and the ref survives.
        let mut obj = serde_json::to_value(ClientEnvelope::new(frame, reference.clone())).unwrap();
        if let Value::Object(map) = &mut obj {
            map.insert(key, Value::Bool(true));
        }
        let err = ClientFrame::decode(&obj.to_string(), &DecodeLimits::default()).unwrap_err();
        prop_assert_eq!(err.code(), ErrorCode::UnknownField);
        prop_assert_eq!(err.reference(), reference.as_ref());
    }

    #[test]
    fn accepted_names_revalidate_to_themselves(raw in "\\PC{0,70}|[a-zA-Z0-9_.@ -]{0,70}") {
        if let Ok(n) = UserName::parse(&raw) {
            prop_assert_eq!(UserName::parse(n.as_str()), Ok(n.clone()));
            prop_assert_eq!(n.as_str(), raw.to_ascii_lowercase());
        }
        if let Ok(n) = RoomName::parse(&raw) {
            prop_assert_eq!(RoomName::parse(n.as_str()), Ok(n.clone()));
            if RoomName::parse_group(&raw).is_ok() {
                prop_assert!(!n.is_direct());
            }
        }
        if let Ok(e) = Email::parse(&raw) {
            prop_assert_eq!(Email::parse(e.as_str()), Ok(e.clone()));
        }
        if let Ok(t) = Topic::parse(&raw) {
            prop_assert_eq!(Topic::parse(t.as_str()), Ok(t.clone()));
        }
        if let Ok(b) = MessageBody::parse(&raw) {
            prop_assert_eq!(b.as_str(), raw.as_str());
        }
        if let Ok(c) = ClientMsgId::parse(&raw) {
            prop_assert_eq!(ClientMsgId::parse(c.as_str()), Ok(c.clone()));
        }
        if let Ok(r) = FrameRef::parse(&raw) {
            prop_assert_eq!(FrameRef::parse(r.as_str()), Ok(r.clone()));
        }
        if let Ok(c) = CallId::parse(&raw) {
            prop_assert_eq!(CallId::parse(c.as_str()), Ok(c.clone()));
        }
    }

    #[test]
    fn validators_never_panic_on_any_text(raw in any::<String>()) {
        let _ = UserName::parse(&raw);
        let _ = RoomName::parse(&raw);
        let _ = RoomName::parse_group(&raw);
        let _ = Email::parse(&raw);
        let _ = Topic::parse(&raw);
        let _ = MessageBody::parse_with_limit(&raw, 3);
        let _ = ClientMsgId::parse(&raw);
        let _ = FrameRef::parse(&raw);
        let _ = CallId::parse(&raw);
    }
}
