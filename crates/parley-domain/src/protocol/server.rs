//! Frames the server sends. They derive `Deserialize` too, for test clients and the load
//! generator; unlike client frames they accept unknown fields, so clients keep working when
//! the server adds one.

use super::codes::{ErrorCode, ErrorFrame, FrameError};
use super::text::{CallId, FrameRef};
use crate::ids::{MessageId, RoomId, Timestamp};
use crate::model::Message;
use crate::names::{RoomName, UserName};
use crate::reaction::Emoji;
use crate::room::RoomKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `joined`: the reply to `join`, with the room's recent history and who is online.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Joined {
    /// The room joined.
    pub room: RoomName,
    /// Its id.
    pub room_id: RoomId,
    /// Public, private or direct.
    pub kind: RoomKind,
    /// The newest messages, oldest first.
    pub history: Vec<Message>,
    /// Users with at least one connection in the room: all of them in rooms of up to the
    /// server's presence limit (`presence_fanout_limit`, default 256), else only that many —
    /// this user first, then the others sorted by name. `online_count` tells how many there
    /// are in all.
    pub online: Vec<UserName>,
    /// How many users are online in the room, this user included, whether or not `online`
    /// lists them all. Always sent; a frame without it (from a server that predates it)
    /// decodes as 0, so read `max(online_count, online.len())` when talking to old servers.
    #[serde(default)]
    pub online_count: usize,
    /// The `ref` of the `join`.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<FrameRef>,
}

/// `left`: the reply to `leave`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Left {
    /// The room left.
    pub room: RoomName,
    /// The `ref` of the `leave`.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<FrameRef>,
}

/// `message`: a new message in a joined room. The sender's own copy is the ack of its
/// `send` and carries the `ref` (and `client_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Posted {
    /// The stored message; its fields are inlined in the frame.
    #[serde(flatten)]
    pub message: Message,
    /// The `ref` of the `send`, on the sender's copy only.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<FrameRef>,
    /// On connections speaking the Django tutorial's dialect only: the tutorial's fields,
    /// inlined in the frame.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub tutorial: Option<TutorialFields>,
}

impl Posted {
    /// The frame of a stored message (no `ref`, no tutorial fields).
    pub fn new(message: Message) -> Self {
        Self {
            message,
            reference: None,
            tutorial: None,
        }
    }

    /// The same frame with the Django tutorial's fields added (see [`TutorialFields`]).
    #[must_use]
    pub fn for_tutorial(mut self) -> Self {
        self.tutorial = Some(TutorialFields {
            message: self.message.body.clone(),
            username: self.message.sender.clone(),
        });
        self
    }
}

/// The fields a Django Channels tutorial page reads from every chat frame
/// (`data.username + ': ' + data.message`), added to `message` frames on connections that
/// speak [`crate::protocol::Dialect::Tutorial`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TutorialFields {
    /// The message's body (as `body`).
    pub message: String,
    /// The sender's user name (as `sender`).
    pub username: UserName,
}

/// What happened to a room's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum PresenceEvent {
    /// The user's first connection joined the room.
    Joined,
    /// The user's last connection left the room.
    Left,
}

/// `presence`: a user came online in, or went offline from, a room.
///
/// Changes that follow a room's last frame within 100 ms are folded into one frame sent at the
/// end of that interval (a join storm would otherwise send every member a frame per joining
/// member): `user` and `event` are then the latest change, `changes` lists every change folded
/// in, oldest first, and `online` is, as always, everyone online after them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Presence {
    /// The room.
    pub room: RoomName,
    /// Who came or went (the latest change, when several are folded).
    pub user: UserName,
    /// Came or went.
    pub event: PresenceEvent,
    /// Everyone online in the room after the change.
    pub online: Vec<UserName>,
    /// The changes this frame folds together, oldest first; absent when it carries one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<PresenceChange>,
}

/// One change of a room's presence, in a folded [`Presence`] frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PresenceChange {
    /// Who came or went.
    pub user: UserName,
    /// Came or went.
    pub event: PresenceEvent,
}

/// `typing`: a user started or stopped typing in a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Typing {
    /// The room.
    pub room: RoomName,
    /// Who is typing.
    pub user: UserName,
    /// `true` while typing.
    pub active: bool,
}

/// `history`: the reply to `history`, a page of messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HistoryPage {
    /// The room.
    pub room: RoomName,
    /// The messages, oldest first (tombstones included).
    pub messages: Vec<Message>,
    /// More messages exist beyond this page in the direction asked for.
    pub has_more: bool,
    /// The `ref` of the `history` request.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<FrameRef>,
}

/// `edited`: a message's body changed. The editor's copy carries the `ref` of its `edit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Edited {
    /// The message as it is now; its fields are inlined in the frame.
    #[serde(flatten)]
    pub message: Message,
    /// The `ref` of the `edit`, on the editor's copy only.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<FrameRef>,
}

/// `deleted`: a message became a tombstone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Deleted {
    /// The room it was in.
    pub room: RoomName,
    /// The deleted message.
    pub message_id: MessageId,
    /// When it was deleted.
    pub deleted_at: Timestamp,
    /// The `ref` of the `delete`, on the deleter's copy only.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<FrameRef>,
}

/// `read`: a user's read marker moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ReadMarker {
    /// The room.
    pub room: RoomName,
    /// Whose marker.
    pub user: UserName,
    /// The newest message they have read.
    pub message_id: MessageId,
    /// The `ref` of the `read`, on the reader's copy only.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<FrameRef>,
}

/// `reaction`: a user added (`active: true`) or removed (`active: false`) an emoji reaction
/// on a message. The reactor's copy carries the `ref` of its `react`/`unreact`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Reacted {
    /// The message's room.
    pub room: RoomName,
    /// The message.
    pub message_id: MessageId,
    /// Who reacted.
    pub user: UserName,
    /// The reaction.
    pub emoji: Emoji,
    /// `true`: added; `false`: removed.
    pub active: bool,
    /// How many users now react to the message with this emoji.
    pub count: u32,
    /// The `ref` of the `react` or `unreact`, on the reactor's copy only.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<FrameRef>,
}

/// `mention`: another user mentioned you (`@yourname`) in a message of `room`. Sent to every
/// socket of the mentioned user, on every server process, whether or not any of them has
/// joined the room (issue 17).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Mentioned {
    /// The message's room.
    pub room: RoomName,
    /// The message.
    pub message_id: MessageId,
    /// Who wrote it.
    pub sender: UserName,
    /// Its first [`Mentioned::PREVIEW_CHARS`] characters.
    pub preview: String,
    /// When it was stored.
    pub created_at: Timestamp,
}

impl Mentioned {
    /// Characters of the message kept in `preview`.
    pub const PREVIEW_CHARS: usize = 100;

    /// The `mention` frame of a stored message.
    pub fn of(message: &Message) -> Self {
        let body = message.body.as_str();
        let preview = match body.char_indices().nth(Self::PREVIEW_CHARS) {
            Some((cut, _)) => body[..cut].to_owned(),
            None => body.to_owned(),
        };
        Self {
            room: message.room.clone(),
            message_id: message.id,
            sender: message.sender.clone(),
            preview,
            created_at: message.created_at,
        }
    }
}

/// `signal`: a WebRTC signalling payload relayed from another user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RelayedSignal {
    /// The sender.
    pub from: UserName,
    /// Exactly what the sender put in its `signal` frame.
    pub payload: Value,
    /// The sender's call id, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<CallId>,
}

/// `external`: a chat message put on a room's group by a non-Parley sender — a Django
/// Channels consumer sharing the Redis layer (`group_send("chat_<room>", {"type":
/// "chat.message", "message": ..., "username": ...})`). It has no id and is not stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ExternalMessage {
    /// The room, when the event named it or the connection is in only one room.
    pub room: Option<RoomName>,
    /// The sender's name as the event gave it (not a Parley account).
    pub username: String,
    /// The text.
    pub message: String,
}

/// `expiring`: the connection's authorization (its access token) ends at `expires_at`;
/// send `renew` with a fresh access token before then, or the socket closes (4003).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Expiring {
    /// When the authorization ends.
    pub expires_at: Timestamp,
}

/// `renewed`: the reply to `renew`; the connection is authorized until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Renewed {
    /// When the new authorization ends.
    pub expires_at: Timestamp,
    /// The `ref` of the `renew`.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<FrameRef>,
}

/// `pong`: the reply to `ping`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Pong {
    /// The `ref` of the `ping`.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<FrameRef>,
}

/// A frame from the server, tagged by `"type"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// `joined`
    Joined(Joined),
    /// `left`
    Left(Left),
    /// `message`
    Message(Posted),
    /// `presence`
    Presence(Presence),
    /// `typing`
    Typing(Typing),
    /// `history`
    History(HistoryPage),
    /// `edited`
    Edited(Edited),
    /// `deleted`
    Deleted(Deleted),
    /// `read`
    Read(ReadMarker),
    /// `signal`
    Signal(RelayedSignal),
    /// `external`
    External(ExternalMessage),
    /// `expiring`
    Expiring(Expiring),
    /// `renewed`
    Renewed(Renewed),
    /// `error`
    Error(ErrorFrame),
    /// `pong`
    Pong(Pong),
    /// `reaction`
    Reaction(Reacted),
    /// `mention`
    Mention(Mentioned),
}

/// Sent in place of a frame that could not be serialized (which the types here rule out).
const ENCODE_FAILURE: &str =
    r#"{"type":"error","code":"internal","message":"the server could not encode a frame"}"#;

impl ServerFrame {
    /// Every server frame type, as spelled on the wire.
    pub const TYPES: [&'static str; 17] = [
        "joined", "left", "message", "presence", "typing", "history", "edited", "deleted", "read",
        "signal", "external", "expiring", "renewed", "error", "pong", "reaction", "mention",
    ];

    /// The wire `"type"` of this frame.
    pub const fn type_name(&self) -> &'static str {
        match self {
            Self::Joined(_) => "joined",
            Self::Left(_) => "left",
            Self::Message(_) => "message",
            Self::Presence(_) => "presence",
            Self::Typing(_) => "typing",
            Self::History(_) => "history",
            Self::Edited(_) => "edited",
            Self::Deleted(_) => "deleted",
            Self::Read(_) => "read",
            Self::Signal(_) => "signal",
            Self::External(_) => "external",
            Self::Expiring(_) => "expiring",
            Self::Renewed(_) => "renewed",
            Self::Error(_) => "error",
            Self::Pong(_) => "pong",
            Self::Reaction(_) => "reaction",
            Self::Mention(_) => "mention",
        }
    }

    /// The JSON text to send.
    ///
    /// Serializing these types cannot fail (every map key is a string and no field has a
    /// fallible serializer), so rather than make every caller handle an impossible error, a
    /// failure yields an `internal` error frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| ENCODE_FAILURE.to_owned())
    }

    /// Parses a server frame (for clients: tests, the load generator).
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The `ref` the frame echoes, if any.
    pub fn reference(&self) -> Option<&FrameRef> {
        match self {
            Self::Joined(f) => f.reference.as_ref(),
            Self::Left(f) => f.reference.as_ref(),
            Self::Message(f) => f.reference.as_ref(),
            Self::History(f) => f.reference.as_ref(),
            Self::Edited(f) => f.reference.as_ref(),
            Self::Deleted(f) => f.reference.as_ref(),
            Self::Read(f) => f.reference.as_ref(),
            Self::Renewed(f) => f.reference.as_ref(),
            Self::Error(f) => f.reference.as_ref(),
            Self::Pong(f) => f.reference.as_ref(),
            Self::Reaction(f) => f.reference.as_ref(),
            Self::Presence(_)
            | Self::Typing(_)
            | Self::Signal(_)
            | Self::External(_)
            | Self::Expiring(_)
            | Self::Mention(_) => None,
        }
    }

    /// The same frame echoing `reference`: how the requester's copy of a broadcast (its own
    /// `message`, `edited`, ...) becomes the ack of its request. Frames that are never a
    /// reply (`presence`, `typing`, `signal`) are returned unchanged.
    #[must_use]
    pub fn with_reference(mut self, reference: Option<FrameRef>) -> Self {
        match &mut self {
            Self::Joined(f) => f.reference = reference,
            Self::Left(f) => f.reference = reference,
            Self::Message(f) => f.reference = reference,
            Self::History(f) => f.reference = reference,
            Self::Edited(f) => f.reference = reference,
            Self::Deleted(f) => f.reference = reference,
            Self::Read(f) => f.reference = reference,
            Self::Renewed(f) => f.reference = reference,
            Self::Error(f) => f.reference = reference,
            Self::Pong(f) => f.reference = reference,
            Self::Reaction(f) => f.reference = reference,
            Self::Presence(_)
            | Self::Typing(_)
            | Self::Signal(_)
            | Self::External(_)
            | Self::Expiring(_)
            | Self::Mention(_) => {}
        }
        self
    }

    /// An `error` frame.
    pub fn error(code: ErrorCode, message: impl Into<String>, reference: Option<FrameRef>) -> Self {
        Self::Error(ErrorFrame::new(code, message, reference))
    }
}

impl From<ErrorFrame> for ServerFrame {
    fn from(e: ErrorFrame) -> Self {
        Self::Error(e)
    }
}

impl From<FrameError> for ServerFrame {
    fn from(e: FrameError) -> Self {
        Self::Error(e.into())
    }
}
