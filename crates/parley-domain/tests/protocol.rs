//! The wire protocol pinned: one exact JSON text per frame (so an accidental wire change
//! fails here), round trips, and a rejection test for every decode error code.

// Helpers outside `#[test]` functions unwrap too: a panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use parley_domain::protocol::*;
use parley_domain::{
    ClientMsgId, Message, MessageBody, MessageId, RoomId, RoomKind, RoomName, Timestamp, UserId,
    UserName,
};
use serde_json::json;

fn room(s: &str) -> RoomName {
    RoomName::parse(s).unwrap()
}
fn user(s: &str) -> UserName {
    UserName::parse(s).unwrap()
}
fn body(s: &str) -> MessageBody {
    MessageBody::parse(s).unwrap()
}
fn r(s: &str) -> Option<FrameRef> {
    Some(FrameRef::parse(s).unwrap())
}
fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

fn sample_message() -> Message {
    Message {
        id: MessageId(42),
        room_id: RoomId(7),
        room: room("lobby"),
        sender_id: UserId(3),
        sender: user("alice"),
        sender_display_name: None,
        body: "hello".to_owned(),
        client_id: Some(ClientMsgId::parse("c-1").unwrap()),
        created_at: Timestamp(1_700_000_000_000),
        edited_at: None,
        deleted_at: None,
        guest: false,
        reply_to: None,
        reactions: Vec::new(),
        mentions: Vec::new(),
    }
}
const SAMPLE_MESSAGE_JSON: &str = r#""id":42,"room_id":7,"room":"lobby","sender_id":3,"sender":"alice","body":"hello","client_id":"c-1","created_at":1700000000000,"edited_at":null,"deleted_at":null"#;

/// `json` decodes to `expected`, and `expected` encodes to exactly `json`.
fn client_case(json: &str, expected: ClientEnvelope) {
    let decoded = ClientFrame::decode(json, &limits()).unwrap_or_else(|e| panic!("{json}: {e}"));
    assert_eq!(decoded, expected, "decoding {json}");
    assert_eq!(expected.to_json().unwrap(), json, "encoding {expected:?}");
}

/// `frame` encodes to exactly `json`, and `json` parses back to `frame`.
fn server_case(json: &str, frame: ServerFrame) {
    assert_eq!(frame.to_json(), json, "encoding {frame:?}");
    assert_eq!(
        ServerFrame::from_json(json).unwrap(),
        frame,
        "decoding {json}"
    );
}

fn rejected(json: &str) -> FrameError {
    rejected_with(json, &limits())
}

fn rejected_with(json: &str, limits: &DecodeLimits) -> FrameError {
    match ClientFrame::decode(json, limits) {
        Ok(frame) => panic!("{json} should be refused, decoded as {frame:?}"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------
// Client frames
// ---------------------------------------------------------------------------------------

#[test]
fn client_join_and_leave() {
    client_case(
        r#"{"type":"join","room":"lobby","ref":"r1"}"#,
        ClientFrame::Join(JoinRoom {
            room: room("lobby"),
        })
        .with_ref(FrameRef::parse("r1").unwrap()),
    );
    client_case(
        r#"{"type":"leave","room":"lobby"}"#,
        ClientFrame::Leave(LeaveRoom {
            room: room("lobby"),
        })
        .into(),
    );
}

#[test]
fn client_send() {
    client_case(
        r#"{"type":"send","room":"lobby","body":"hello","client_id":"c-1","ref":"r2"}"#,
        ClientEnvelope::new(
            ClientFrame::Send(SendMessage {
                room: room("lobby"),
                body: body("hello"),
                client_id: Some(ClientMsgId::parse("c-1").unwrap()),
                reply_to: None,
            }),
            r("r2"),
        ),
    );
    client_case(
        r#"{"type":"send","room":"lobby","body":"hi"}"#,
        ClientFrame::Send(SendMessage {
            room: room("lobby"),
            body: body("hi"),
            client_id: None,
            reply_to: None,
        })
        .into(),
    );
}

#[test]
fn client_typing_defaults_to_active() {
    client_case(
        r#"{"type":"typing","room":"lobby","active":false}"#,
        ClientFrame::Typing(SetTyping {
            room: room("lobby"),
            active: false,
        })
        .into(),
    );
    let decoded = ClientFrame::decode(r#"{"type":"typing","room":"lobby"}"#, &limits()).unwrap();
    assert_eq!(
        decoded.frame,
        ClientFrame::Typing(SetTyping {
            room: room("lobby"),
            active: true
        })
    );
}

#[test]
fn client_history() {
    client_case(
        r#"{"type":"history","room":"lobby","before":100,"after":50,"limit":20,"ref":"h"}"#,
        ClientEnvelope::new(
            ClientFrame::History(FetchHistory {
                room: room("lobby"),
                before: Some(MessageId(100)),
                after: Some(MessageId(50)),
                limit: Some(20),
            }),
            r("h"),
        ),
    );
    client_case(
        r#"{"type":"history","room":"lobby"}"#,
        ClientFrame::History(FetchHistory {
            room: room("lobby"),
            before: None,
            after: None,
            limit: None,
        })
        .into(),
    );
}

#[test]
fn client_edit_delete_read() {
    client_case(
        r#"{"type":"edit","message_id":42,"body":"fixed"}"#,
        ClientFrame::Edit(EditMessage {
            message_id: MessageId(42),
            body: body("fixed"),
        })
        .into(),
    );
    client_case(
        r#"{"type":"delete","message_id":42,"ref":"d"}"#,
        ClientEnvelope::new(
            ClientFrame::Delete(DeleteMessage {
                message_id: MessageId(42),
            }),
            r("d"),
        ),
    );
    client_case(
        r#"{"type":"read","room":"lobby","message_id":42}"#,
        ClientFrame::Read(MarkRead {
            room: room("lobby"),
            message_id: MessageId(42),
        })
        .into(),
    );
}

#[test]
fn client_signal() {
    client_case(
        r#"{"type":"signal","to":"bob","payload":{"sdp":"v=0","type":"offer"},"call_id":"call-1"}"#,
        ClientFrame::Signal(SendSignal {
            to: user("bob"),
            payload: json!({"sdp": "v=0", "type": "offer"}),
            call_id: Some(CallId::parse("call-1").unwrap()),
        })
        .into(),
    );
    // Any JSON value is an acceptable payload, a bare string included.
    client_case(
        r#"{"type":"signal","to":"bob","payload":"candidate"}"#,
        ClientFrame::Signal(SendSignal {
            to: user("bob"),
            payload: json!("candidate"),
            call_id: None,
        })
        .into(),
    );
}

#[test]
fn client_ping() {
    client_case(r#"{"type":"ping"}"#, ClientFrame::Ping.into());
    client_case(
        r#"{"type":"ping","ref":"p1"}"#,
        ClientFrame::Ping.with_ref(FrameRef::parse("p1").unwrap()),
    );
}

#[test]
fn decoding_is_lenient_where_harmless() {
    // Field order, whitespace and explicit nulls for optional fields do not matter.
    let e = ClientFrame::decode(
        " {\"ref\": null, \"client_id\": null, \"body\": \"hi\", \"room\": \"Lobby\", \"type\": \"send\"}\n",
        &limits(),
    )
    .unwrap();
    assert_eq!(e.reference, None);
    assert_eq!(
        e.frame,
        ClientFrame::Send(SendMessage {
            room: room("lobby"),
            body: body("hi"),
            client_id: None,
            reply_to: None,
        })
    );
    // Room names are normalized to lower case.
    assert_eq!(e.frame.room().unwrap().as_str(), "lobby");
}

// ---------------------------------------------------------------------------------------
// Server frames
// ---------------------------------------------------------------------------------------

#[test]
fn server_joined_and_left() {
    server_case(
        &format!(
            r#"{{"type":"joined","room":"lobby","room_id":7,"kind":"public","history":[{{{SAMPLE_MESSAGE_JSON}}}],"online":["alice","bob"],"online_count":3,"ref":"r1"}}"#
        ),
        ServerFrame::Joined(Joined {
            room: room("lobby"),
            room_id: RoomId(7),
            kind: RoomKind::Public,
            history: vec![sample_message()],
            online: vec![user("alice"), user("bob")],
            online_count: 3,
            reference: r("r1"),
        }),
    );
    // A server that predates `online_count` still decodes (as 0).
    let ServerFrame::Joined(old) = ServerFrame::from_json(
        r#"{"type":"joined","room":"lobby","room_id":7,"kind":"public","history":[],"online":["alice"]}"#,
    )
    .unwrap() else {
        panic!("not joined")
    };
    assert_eq!((old.online.len(), old.online_count), (1, 0));
    server_case(
        r#"{"type":"left","room":"lobby","ref":"r2"}"#,
        ServerFrame::Left(Left {
            room: room("lobby"),
            reference: r("r2"),
        }),
    );
}

#[test]
fn server_message_inlines_the_message() {
    server_case(
        &format!(r#"{{"type":"message",{SAMPLE_MESSAGE_JSON},"ref":"r2"}}"#),
        ServerFrame::Message(Posted {
            message: sample_message(),
            reference: r("r2"),
            tutorial: None,
        }),
    );
    // Other members' copies carry no ref.
    let frame = ServerFrame::Message(Posted::new(sample_message()));
    server_case(
        &format!(r#"{{"type":"message",{SAMPLE_MESSAGE_JSON}}}"#),
        frame.clone(),
    );
    assert_eq!(
        frame.clone().with_reference(r("x")).reference(),
        r("x").as_ref()
    );
}

#[test]
fn server_presence_and_typing() {
    server_case(
        r#"{"type":"presence","room":"lobby","user":"bob","event":"joined","online":["alice","bob"]}"#,
        ServerFrame::Presence(Presence {
            room: room("lobby"),
            user: user("bob"),
            event: PresenceEvent::Joined,
            online: vec![user("alice"), user("bob")],
            changes: Vec::new(),
        }),
    );
    server_case(
        r#"{"type":"presence","room":"lobby","user":"bob","event":"left","online":["alice"]}"#,
        ServerFrame::Presence(Presence {
            room: room("lobby"),
            user: user("bob"),
            event: PresenceEvent::Left,
            online: vec![user("alice")],
            changes: Vec::new(),
        }),
    );
    // Changes folded into one frame (a storm of joins and leaves within 100 ms).
    server_case(
        r#"{"type":"presence","room":"lobby","user":"carol","event":"joined","online":["alice","carol"],"changes":[{"user":"bob","event":"left"},{"user":"carol","event":"joined"}]}"#,
        ServerFrame::Presence(Presence {
            room: room("lobby"),
            user: user("carol"),
            event: PresenceEvent::Joined,
            online: vec![user("alice"), user("carol")],
            changes: vec![
                PresenceChange {
                    user: user("bob"),
                    event: PresenceEvent::Left,
                },
                PresenceChange {
                    user: user("carol"),
                    event: PresenceEvent::Joined,
                },
            ],
        }),
    );
    server_case(
        r#"{"type":"typing","room":"lobby","user":"bob","active":true}"#,
        ServerFrame::Typing(Typing {
            room: room("lobby"),
            user: user("bob"),
            active: true,
        }),
    );
}

#[test]
fn server_history() {
    server_case(
        &format!(
            r#"{{"type":"history","room":"lobby","messages":[{{{SAMPLE_MESSAGE_JSON}}}],"has_more":true,"ref":"h"}}"#
        ),
        ServerFrame::History(HistoryPage {
            room: room("lobby"),
            messages: vec![sample_message()],
            has_more: true,
            reference: r("h"),
        }),
    );
}

#[test]
fn server_edited_and_deleted() {
    let mut edited = sample_message();
    edited.body = "fixed".to_owned();
    edited.edited_at = Some(Timestamp(1_700_000_001_000));
    server_case(
        r#"{"type":"edited","id":42,"room_id":7,"room":"lobby","sender_id":3,"sender":"alice","body":"fixed","client_id":"c-1","created_at":1700000000000,"edited_at":1700000001000,"deleted_at":null}"#,
        ServerFrame::Edited(Edited {
            message: edited,
            reference: None,
        }),
    );
    server_case(
        r#"{"type":"deleted","room":"lobby","message_id":42,"deleted_at":1700000002000,"ref":"d"}"#,
        ServerFrame::Deleted(Deleted {
            room: room("lobby"),
            message_id: MessageId(42),
            deleted_at: Timestamp(1_700_000_002_000),
            reference: r("d"),
        }),
    );
}

#[test]
fn server_read_signal_pong() {
    server_case(
        r#"{"type":"read","room":"lobby","user":"alice","message_id":42}"#,
        ServerFrame::Read(ReadMarker {
            room: room("lobby"),
            user: user("alice"),
            message_id: MessageId(42),
            reference: None,
        }),
    );
    server_case(
        r#"{"type":"signal","from":"alice","payload":{"candidate":"a=1","n":[1,2]},"call_id":"call-1"}"#,
        ServerFrame::Signal(RelayedSignal {
            from: user("alice"),
            payload: json!({"candidate": "a=1", "n": [1, 2]}),
            call_id: Some(CallId::parse("call-1").unwrap()),
        }),
    );
    server_case(
        r#"{"type":"pong","ref":"p1"}"#,
        ServerFrame::Pong(Pong { reference: r("p1") }),
    );
    server_case(r#"{"type":"pong"}"#, ServerFrame::Pong(Pong::default()));
    server_case(
        r#"{"type":"external","room":"lobby","username":"dj","message":"hi"}"#,
        ServerFrame::External(ExternalMessage {
            room: Some(room("lobby")),
            username: "dj".to_owned(),
            message: "hi".to_owned(),
        }),
    );
}

#[test]
fn server_error() {
    server_case(
        r#"{"type":"error","code":"not_member","message":"you are not a member of this room","ref":"r9"}"#,
        ServerFrame::Error(ErrorFrame::from_code(ErrorCode::NotMember, r("r9"))),
    );
    server_case(
        r#"{"type":"error","code":"rate_limited","message":"slow down"}"#,
        ServerFrame::error(ErrorCode::RateLimited, "slow down", None),
    );
}

#[test]
fn server_frames_ignore_unknown_fields() {
    // Forward compatibility: a newer server may add fields; older clients still parse.
    let frame = ServerFrame::from_json(r#"{"type":"pong","ref":"p","server_time":1}"#).unwrap();
    assert_eq!(frame, ServerFrame::Pong(Pong { reference: r("p") }));
    assert!(ServerFrame::from_json(r#"{"type":"nope"}"#).is_err());
}

#[test]
fn type_names_match_the_wire() {
    for frame_type in FrameType::ALL {
        let name = frame_type.as_str();
        let json = match name {
            "join" | "leave" => format!(r#"{{"type":"{name}","room":"a"}}"#),
            "send" => r#"{"type":"send","room":"a","body":"b"}"#.to_owned(),
            "typing" | "history" => format!(r#"{{"type":"{name}","room":"a"}}"#),
            "edit" => r#"{"type":"edit","message_id":1,"body":"b"}"#.to_owned(),
            "delete" => r#"{"type":"delete","message_id":1}"#.to_owned(),
            "read" => r#"{"type":"read","room":"a","message_id":1}"#.to_owned(),
            "signal" => r#"{"type":"signal","to":"bob","payload":1}"#.to_owned(),
            "renew" => r#"{"type":"renew","token":"eyJ.x.y"}"#.to_owned(),
            "react" | "unreact" => format!(r#"{{"type":"{name}","message_id":1,"emoji":"👍"}}"#),
            _ => format!(r#"{{"type":"{name}"}}"#),
        };
        let frame = ClientFrame::decode(&json, &limits()).unwrap().frame;
        assert_eq!(frame.frame_type(), frame_type);
        assert_eq!(FrameType::parse(name), Some(frame_type));
        // Encoding spells the type the same way.
        let encoded: serde_json::Value =
            serde_json::from_str(&ClientEnvelope::from(frame).to_json().unwrap()).unwrap();
        assert_eq!(encoded["type"], name);
    }
}

// ---------------------------------------------------------------------------------------
// Rejections: one test per error code the decoder produces
// ---------------------------------------------------------------------------------------

#[test]
fn oversized_frames_are_refused_before_parsing() {
    let small = DecodeLimits {
        max_frame_bytes: 32,
        ..DecodeLimits::default()
    };
    // Not even JSON: the length check comes first, so the code is frame_too_large.
    let e = rejected_with(&"x".repeat(33), &small);
    assert_eq!(e.code(), ErrorCode::FrameTooLarge);
    assert!(e.message().contains("33"), "{}", e.message());
    // Exactly at the limit is fine.
    let ping = r#"{"type":"ping","ref":"abcdefgh"}"#;
    assert_eq!(ping.len(), 32);
    assert!(ClientFrame::decode(ping, &small).is_ok());
    // The default limit is 64 KiB.
    assert_eq!(DecodeLimits::default().max_frame_bytes, 64 * 1024);
    let big = format!(
        r#"{{"type":"signal","to":"bob","payload":"{}"}}"#,
        "x".repeat(64 * 1024)
    );
    assert_eq!(rejected(&big).code(), ErrorCode::FrameTooLarge);
}

#[test]
fn invalid_json_is_refused() {
    for bad in [
        "",
        "{",
        "{\"type\":\"ping\",}",
        "not json",
        "{\"type\":'ping'}",
        "{\"type\":\"ping\"} x",
    ] {
        assert_eq!(rejected(bad).code(), ErrorCode::InvalidJson, "{bad:?}");
    }
    // Deep nesting is refused by the parser's recursion limit, not by a stack overflow.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(rejected(&deep).code(), ErrorCode::InvalidJson);
}

#[test]
fn non_objects_are_refused() {
    for bad in [
        "[]",
        "[{\"type\":\"ping\"}]",
        "\"ping\"",
        "42",
        "null",
        "true",
    ] {
        assert_eq!(rejected(bad).code(), ErrorCode::NotAnObject, "{bad:?}");
    }
}

#[test]
fn missing_type_is_refused() {
    assert_eq!(rejected("{}").code(), ErrorCode::MissingType);
    assert_eq!(
        rejected(r#"{"room":"lobby"}"#).code(),
        ErrorCode::MissingType
    );
    assert_eq!(rejected(r#"{"type":null}"#).code(), ErrorCode::MissingType);
    // A type that is not a string is a bad field, not a missing one.
    assert_eq!(rejected(r#"{"type":3}"#).code(), ErrorCode::InvalidField);
}

#[test]
fn unknown_type_is_refused() {
    let e = rejected(r#"{"type":"shout","room":"lobby"}"#);
    assert_eq!(e.code(), ErrorCode::UnknownType);
    assert!(e.message().contains("shout"));
    // Types are case-sensitive, and server-only types are not requests.
    assert_eq!(
        rejected(r#"{"type":"Join","room":"a"}"#).code(),
        ErrorCode::UnknownType
    );
    assert_eq!(
        rejected(r#"{"type":"pong"}"#).code(),
        ErrorCode::UnknownType
    );
    // The echoed type is clipped.
    let long = format!(r#"{{"type":"{}"}}"#, "t".repeat(10_000));
    assert!(rejected(&long).message().len() < 300);
}

#[test]
fn missing_fields_are_refused() {
    let cases = [
        (r#"{"type":"join"}"#, "room"),
        (r#"{"type":"send","room":"lobby"}"#, "body"),
        (r#"{"type":"send","body":"hi"}"#, "room"),
        (r#"{"type":"history"}"#, "room"),
        (r#"{"type":"edit","message_id":1}"#, "body"),
        (r#"{"type":"delete"}"#, "message_id"),
        (r#"{"type":"read","room":"lobby"}"#, "message_id"),
        (r#"{"type":"signal","to":"bob"}"#, "payload"),
        (r#"{"type":"signal","to":"bob","payload":null}"#, "payload"),
        (r#"{"type":"join","room":null}"#, "room"),
    ];
    for (json, field) in cases {
        let e = rejected(json);
        assert_eq!(e.code(), ErrorCode::MissingField, "{json}");
        assert!(
            e.message().contains(&format!("`{field}`")),
            "{json}: {}",
            e.message()
        );
    }
}

#[test]
fn wrong_types_are_refused() {
    let cases = [
        (r#"{"type":"join","room":5}"#, "room"),
        (r#"{"type":"send","room":"a","body":["hi"]}"#, "body"),
        (r#"{"type":"typing","room":"a","active":"yes"}"#, "active"),
        (r#"{"type":"history","room":"a","limit":-1}"#, "limit"),
        (
            r#"{"type":"history","room":"a","limit":4294967296}"#,
            "limit",
        ),
        (r#"{"type":"history","room":"a","limit":1.5}"#, "limit"),
        (r#"{"type":"history","room":"a","before":"10"}"#, "before"),
        (r#"{"type":"delete","message_id":0}"#, "message_id"),
        (r#"{"type":"delete","message_id":-3}"#, "message_id"),
        (
            r#"{"type":"read","room":"a","message_id":1e3}"#,
            "message_id",
        ),
        (r#"{"type":"signal","to":"x","payload":1}"#, "to"),
        (
            r#"{"type":"signal","to":"bob","payload":1,"call_id":""}"#,
            "call_id",
        ),
        (
            r#"{"type":"send","room":"a","body":"hi","client_id":"has space"}"#,
            "client_id",
        ),
        (r#"{"type":"send","room":"a","body":"   "}"#, "body"),
        (r#"{"type":"send","room":"a","body":"a\u0000b"}"#, "body"),
    ];
    for (json, field) in cases {
        let e = rejected(json);
        assert_eq!(e.code(), ErrorCode::InvalidField, "{json}: {}", e.message());
        assert!(
            e.message().contains(&format!("`{field}`")),
            "{json}: {}",
            e.message()
        );
    }
    // The message says what was expected, without echoing the client's value.
    let e = rejected(&format!(
        r#"{{"type":"join","room":{{"x":"{}"}}}}"#,
        "y".repeat(1000)
    ));
    assert_eq!(
        e.message(),
        "`join` frame, field `room`: expected a string, found an object"
    );
}

#[test]
fn unknown_fields_are_refused() {
    let e = rejected(r#"{"type":"send","room":"a","bdy":"hi"}"#);
    assert_eq!(e.code(), ErrorCode::UnknownField);
    assert!(e.message().contains("`bdy`"), "{}", e.message());
    assert_eq!(
        rejected(r#"{"type":"ping","extra":1}"#).code(),
        ErrorCode::UnknownField
    );
    assert_eq!(
        rejected(r#"{"type":"join","room":"a","room_id":1}"#).code(),
        ErrorCode::UnknownField
    );
}

#[test]
fn bad_room_names_are_refused() {
    for bad in ["", "-x", "a b", "a/b", "ü", &"r".repeat(65)] {
        let json = serde_json::to_string(&json!({"type": "join", "room": bad})).unwrap();
        let e = rejected(&json);
        assert_eq!(e.code(), ErrorCode::InvalidRoomName, "{bad:?}");
        assert!(e.message().contains("invalid room name"), "{}", e.message());
    }
}

#[test]
fn body_length_limit_is_the_configured_one() {
    let at_default = "é".repeat(MessageBody::DEFAULT_MAX_CHARS);
    let send = |text: &str| {
        serde_json::to_string(&json!({"type": "send", "room": "a", "body": text})).unwrap()
    };
    assert!(ClientFrame::decode(&send(&at_default), &limits()).is_ok());
    let e = rejected(&send(&format!("{at_default}x")));
    assert_eq!(e.code(), ErrorCode::BodyTooLong);
    assert!(e.message().contains("4001"), "{}", e.message());
    // A server configured with a higher limit accepts longer bodies...
    let roomy = DecodeLimits {
        max_body_chars: 10_000,
        ..DecodeLimits::default()
    };
    assert!(ClientFrame::decode(&send(&"b".repeat(10_000)), &roomy).is_ok());
    // ...and a lower one refuses shorter bodies, in edits too.
    let strict = DecodeLimits {
        max_body_chars: 5,
        ..DecodeLimits::default()
    };
    assert_eq!(
        rejected_with(&send("123456"), &strict).code(),
        ErrorCode::BodyTooLong
    );
    let edit = r#"{"type":"edit","message_id":1,"body":"123456"}"#;
    assert_eq!(rejected_with(edit, &strict).code(), ErrorCode::BodyTooLong);
}

#[test]
fn ref_is_kept_on_errors() {
    let cases = [
        (r#"{"ref":"r1"}"#, ErrorCode::MissingType),
        (r#"{"type":"shout","ref":"r1"}"#, ErrorCode::UnknownType),
        (r#"{"type":"join","ref":"r1"}"#, ErrorCode::MissingField),
        (
            r#"{"type":"join","room":1,"ref":"r1"}"#,
            ErrorCode::InvalidField,
        ),
        (
            r#"{"type":"join","room":"a b","ref":"r1"}"#,
            ErrorCode::InvalidRoomName,
        ),
        (
            r#"{"type":"join","room":"a","x":1,"ref":"r1"}"#,
            ErrorCode::UnknownField,
        ),
    ];
    for (json, code) in cases {
        let e = rejected(json);
        assert_eq!(e.code(), code, "{json}");
        assert_eq!(e.reference(), r("r1").as_ref(), "{json}");
        // The reply frame carries it too.
        let reply = ServerFrame::from(e);
        assert_eq!(reply.reference(), r("r1").as_ref());
        assert!(reply.to_json().contains(r#""ref":"r1""#));
    }
}

#[test]
fn bad_refs_are_refused_and_not_echoed() {
    for bad in [
        r#"{"type":"ping","ref":5}"#,
        r#"{"type":"ping","ref":""}"#,
        r#"{"type":"ping","ref":"a\nb"}"#,
    ] {
        let e = rejected(bad);
        assert_eq!(e.code(), ErrorCode::InvalidField, "{bad}");
        assert_eq!(e.reference(), None);
        assert!(e.message().contains("`ref`"), "{}", e.message());
    }
    let long = format!(r#"{{"type":"ping","ref":"{}"}}"#, "r".repeat(65));
    assert_eq!(rejected(&long).code(), ErrorCode::InvalidField);
    let max = format!(r#"{{"type":"ping","ref":"{}"}}"#, "r".repeat(64));
    assert!(ClientFrame::decode(&max, &limits()).is_ok());
}

#[test]
fn binary_frames_have_their_own_error() {
    let e = FrameError::binary_not_supported();
    assert_eq!(e.code(), ErrorCode::BinaryNotSupported);
    assert_eq!(
        ServerFrame::from(e).to_json(),
        r#"{"type":"error","code":"binary_not_supported","message":"binary frames are not supported; send JSON text frames"}"#
    );
}

#[test]
fn every_error_code_has_a_stable_spelling() {
    let spelled: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        spelled,
        [
            "frame_too_large",
            "invalid_json",
            "not_an_object",
            "missing_type",
            "unknown_type",
            "missing_field",
            "invalid_field",
            "unknown_field",
            "invalid_room_name",
            "body_too_long",
            "binary_not_supported",
            "unauthorized",
            "forbidden",
            "not_found",
            "not_member",
            "not_joined",
            "rate_limited",
            "conflict",
            "too_many_rooms",
            "too_many_reactions",
            "guest_not_allowed",
            "account_disabled",
            "banned",
            "muted",
            "read_only",
            "unavailable",
            "internal",
            "slow_consumer",
            "invalid_credentials",
            "token_expired",
            "token_invalid",
            "token_revoked",
            "wrong_token_type",
            "username_taken",
            "weak_password",
            "invalid_content_type",
            "too_large",
            "origin_not_allowed",
            "not_a_websocket",
            "request_timeout",
            "method_not_allowed",
            "provider_unavailable",
            "invalid_display_name",
            "email_taken",
        ]
    );
    for code in ErrorCode::ALL {
        let frame = ErrorFrame::new(code, "m", None);
        let json = ServerFrame::from(frame.clone()).to_json();
        assert_eq!(
            json,
            format!(r#"{{"type":"error","code":"{code}","message":"m"}}"#)
        );
        assert_eq!(
            ServerFrame::from_json(&json).unwrap(),
            ServerFrame::Error(frame)
        );
    }
}

// ---------------------------------------------------------------------------------------
// docs/protocol.md
// ---------------------------------------------------------------------------------------

const PROTOCOL_DOC: &str = include_str!("../../../docs/protocol.md");

/// The contents of every ```json block in the document.
fn doc_json_blocks() -> Vec<&'static str> {
    PROTOCOL_DOC
        .split("```json\n")
        .skip(1)
        .map(|rest| rest.split("\n```").next().unwrap().trim())
        .collect()
}

#[test]
fn docs_examples_are_valid_frames() {
    let blocks = doc_json_blocks();
    assert!(blocks.len() >= FrameType::ALL.len() + ServerFrame::TYPES.len());
    let (mut client_types, mut server_types) = (Vec::new(), Vec::new());
    let mut tutorial_examples = 0;
    for block in blocks {
        let written: serde_json::Value = serde_json::from_str(block).unwrap();
        // Each example must be a frame that re-encodes to exactly what the page shows (as
        // JSON values: no field dropped, defaulted or renamed).
        if let Ok(envelope) = ClientFrame::decode(block, &limits()) {
            let encoded: serde_json::Value =
                serde_json::from_str(&envelope.to_json().unwrap()).unwrap();
            assert_eq!(encoded, written, "client example {block}");
            client_types.push(envelope.frame.type_name());
        } else if let Ok(envelope) = ClientFrame::decode_in(block, &tutorial("lobby"), &limits()) {
            // The tutorial's untyped frame: a send of its `message` to the socket's room.
            let ClientFrame::Send(send) = envelope.frame else {
                panic!("tutorial example {block} is not a send");
            };
            assert_eq!(send.body.as_str(), written["message"], "{block}");
            tutorial_examples += 1;
        } else {
            let frame = ServerFrame::from_json(block).unwrap_or_else(|e| panic!("{block}: {e}"));
            let encoded: serde_json::Value = serde_json::from_str(&frame.to_json()).unwrap();
            assert_eq!(encoded, written, "server example {block}");
            server_types.push(frame.type_name());
        }
    }
    assert!(
        tutorial_examples > 0,
        "docs/protocol.md has no example of the tutorial's frame"
    );
    for t in FrameType::ALL.map(FrameType::as_str) {
        assert!(
            client_types.contains(&t),
            "docs/protocol.md has no example of the client frame `{t}`"
        );
    }
    for t in ServerFrame::TYPES {
        assert!(
            server_types.contains(&t),
            "docs/protocol.md has no example of the server frame `{t}`"
        );
    }
}

#[test]
fn docs_describe_every_error_code() {
    for code in ErrorCode::ALL {
        assert!(
            PROTOCOL_DOC.contains(&format!("| `{code}` |")),
            "docs/protocol.md does not describe the error code `{code}`"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The Django tutorial's dialect
// ---------------------------------------------------------------------------------------

fn tutorial(room: &str) -> Dialect {
    Dialect::Tutorial {
        room: RoomName::parse(room).unwrap(),
        frames: TutorialFrames::Chat,
    }
}

#[test]
fn tutorial_frames_are_sends_to_the_connections_room() {
    let dialect = tutorial("lobby");
    for text in [
        r#"{"message":"hi"}"#,
        r#"{"message":"hi","username":"whoever typed this"}"#,
        r#"{"username":"x","message":"hi","ref":"t1"}"#,
        r#"{"username":"x","room_name":"lobby","message":"hi"}"#,
        r#"{"username":"x","room_name":"Lobby","message":"hi"}"#,
    ] {
        let envelope = ClientFrame::decode_in(text, &dialect, &limits()).unwrap();
        match envelope.frame {
            ClientFrame::Send(send) => {
                assert_eq!(send.room.as_str(), "lobby");
                assert_eq!(send.body.as_str(), "hi");
                assert_eq!(send.client_id, None);
            }
            other => panic!("{text}: {other:?}"),
        }
    }
    // Typed frames work as on /ws.
    let ping = ClientFrame::decode_in(r#"{"type":"ping"}"#, &dialect, &limits()).unwrap();
    assert_eq!(ping.frame, ClientFrame::Ping);
}

#[test]
fn bad_tutorial_frames_get_typed_errors() {
    let dialect = tutorial("lobby");
    let code = |text: &str| {
        ClientFrame::decode_in(text, &dialect, &limits())
            .unwrap_err()
            .code()
    };
    assert_eq!(code(r#"{"message":""}"#), ErrorCode::InvalidField);
    assert_eq!(code(r#"{"message":5}"#), ErrorCode::InvalidField);
    assert_eq!(
        code(r#"{"message":"hi","username":5}"#),
        ErrorCode::InvalidField
    );
    assert_eq!(
        code(r#"{"message":"hi","room":"x"}"#),
        ErrorCode::UnknownField
    );
    assert_eq!(code(r#"{"username":"x"}"#), ErrorCode::MissingType);
    // `room_name` must be the socket's room.
    let e = ClientFrame::decode_in(
        r#"{"message":"hi","room_name":"elsewhere"}"#,
        &dialect,
        &limits(),
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidField);
    assert!(e.message().contains("room_name"), "{}", e.message());
    assert_eq!(
        code(r#"{"message":"hi","room_name":"no spaces"}"#),
        ErrorCode::InvalidRoomName
    );
    assert_eq!(
        code(r#"{"message":"hi","room_name":7}"#),
        ErrorCode::InvalidField
    );
    let long = format!(
        r#"{{"message":"{}"}}"#,
        "x".repeat(limits().max_body_chars + 1)
    );
    assert_eq!(code(&long), ErrorCode::BodyTooLong);
    // The ref is echoed even when the tutorial frame is refused.
    let e =
        ClientFrame::decode_in(r#"{"message":"","ref":"t9"}"#, &dialect, &limits()).unwrap_err();
    assert_eq!(e.reference().map(|r| r.as_str()), Some("t9"));
    // Parley's own dialect has no untyped frames.
    let e = ClientFrame::decode(r#"{"message":"hi"}"#, &limits()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::MissingType);
}

#[test]
fn tutorial_message_frames_carry_message_and_username() {
    let frame = ServerFrame::Message(Posted::new(sample_message()).for_tutorial());
    let json: serde_json::Value = serde_json::from_str(&frame.to_json()).unwrap();
    assert_eq!(json["message"], json["body"]);
    assert_eq!(json["username"], json["sender"]);
    assert_eq!(ServerFrame::from_json(&frame.to_json()).unwrap(), frame);
    // Parley's own frames do not.
    let plain = ServerFrame::Message(Posted::new(sample_message())).to_json();
    let json: serde_json::Value = serde_json::from_str(&plain).unwrap();
    assert!(
        json.get("message").is_none() && json.get("username").is_none(),
        "{plain}"
    );
    assert_eq!(
        ServerFrame::from_json(&plain).unwrap(),
        ServerFrame::Message(Posted::new(sample_message()))
    );
}

#[test]
fn a_key_given_twice_is_refused_not_last_wins() {
    for text in [
        r#"{"type":"ping","type":"send","room":"a","body":"b"}"#,
        r#"{"type":"send","room":"a","room":"b","body":"c","ref":"r"}"#,
        r#"{"ref":"x","ref":"y","type":"ping"}"#,
    ] {
        let e = ClientFrame::decode(text, &limits()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidJson, "{text}");
        assert!(e.message().contains("appears twice"), "{}", e.message());
    }
    // Nested values are the client's: a signal payload may repeat keys.
    let nested = r#"{"type":"signal","to":"bob","payload":{"a":1,"a":2}}"#;
    assert!(ClientFrame::decode(nested, &limits()).is_ok());
    // Other top-level shapes are still told apart.
    for (text, kind) in [
        ("[1,{}]", "an array"),
        ("\"x\"", "a string"),
        ("null", "null"),
        ("1.5", "a number"),
    ] {
        let e = ClientFrame::decode(text, &limits()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::NotAnObject, "{text}");
        assert!(e.message().ends_with(kind), "{}", e.message());
    }
}

#[test]
fn renew_carries_a_bounded_token_that_never_prints() {
    let envelope = ClientFrame::decode(
        r#"{"type":"renew","token":"abc.def.ghi","ref":"n"}"#,
        &limits(),
    )
    .unwrap();
    let ClientFrame::Renew(renew) = &envelope.frame else {
        panic!("{envelope:?}");
    };
    assert_eq!(renew.token, "abc.def.ghi");
    assert!(
        !format!("{envelope:?}").contains("abc.def.ghi"),
        "the token must not reach a log"
    );
    for bad in [
        r#"{"type":"renew"}"#.to_owned(),
        r#"{"type":"renew","token":""}"#.to_owned(),
        r#"{"type":"renew","token":7}"#.to_owned(),
        format!(
            r#"{{"type":"renew","token":"{}"}}"#,
            "t".repeat(RenewAuth::MAX_TOKEN_BYTES + 1)
        ),
    ] {
        let code = ClientFrame::decode(&bad, &limits()).unwrap_err().code();
        assert!(
            matches!(code, ErrorCode::MissingField | ErrorCode::InvalidField),
            "{bad}: {code}"
        );
    }
}
