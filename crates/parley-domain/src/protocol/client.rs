//! Frames a client sends, and the decoder that turns untrusted text into them.
//!
//! Decoding is hand-written over a parsed [`serde_json::Value`] rather than derived, so that
//! every failure gets its own [`ErrorCode`], names the frame type and field, still carries
//! the frame's `ref`, never echoes unbounded client text, and so the message length limit
//! can be the server's configured one instead of a compile-time default.

use super::codes::{ErrorCode, FrameError};
use super::text::{CallId, FrameRef};
use crate::ids::MessageId;
use crate::message::{ClientMsgId, MessageBody};
use crate::names::{RoomName, UserName};
use crate::reaction::Emoji;
use serde::Serialize;
use serde_json::{Map, Value};

/// Limits the decoder enforces. The server builds one from its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Longest accepted text frame, in bytes, checked before any parsing so an oversized
    /// frame costs nothing to refuse.
    pub max_frame_bytes: usize,
    /// Longest accepted message body, in characters (`send` and `edit`).
    pub max_body_chars: usize,
}

impl DecodeLimits {
    /// The default frame limit: 64 KiB, the default of the WebSocket layer too.
    pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: Self::DEFAULT_MAX_FRAME_BYTES,
            max_body_chars: MessageBody::DEFAULT_MAX_CHARS,
        }
    }
}

/// `join`: subscribe this connection to a room's events and get its recent history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JoinRoom {
    /// The room to join.
    pub room: RoomName,
}

/// `leave`: stop receiving a room's events on this connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LeaveRoom {
    /// The room to leave.
    pub room: RoomName,
}

/// `send`: post a message to a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SendMessage {
    /// The room to post in.
    pub room: RoomName,
    /// The text.
    pub body: MessageBody,
    /// Makes the send idempotent: a retry with the same id returns the first message
    /// instead of storing a second one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<ClientMsgId>,
    /// The message this one answers: a message of the same room (else `not_found`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageId>,
}

/// `react` (add) or `unreact` (remove): one emoji reaction of this user on a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SetReaction {
    /// The message reacted to.
    pub message_id: MessageId,
    /// The reaction (see [`Emoji`] for the rule).
    pub emoji: Emoji,
}

/// `typing`: tell the room this user started (or stopped) typing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SetTyping {
    /// The room being typed in.
    pub room: RoomName,
    /// `true` while typing (the default when omitted), `false` to clear.
    // Optional in the schema: the decoder reads a missing `active` as `true`.
    #[cfg_attr(feature = "schema", schemars(skip_serializing_if = "is_active"))]
    pub active: bool,
}

/// `typing`'s `active` may be left out when it is `true`. Named by the schema attribute above,
/// which reads only that the field is optional and never calls it.
#[cfg(feature = "schema")]
#[allow(dead_code)]
fn is_active(active: &bool) -> bool {
    *active
}

/// `history`: a page of a room's messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FetchHistory {
    /// The room.
    pub room: RoomName,
    /// Only messages with a smaller id (page backwards).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<MessageId>,
    /// Only messages with a larger id (catch up after a reconnect).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<MessageId>,
    /// At most this many messages; the server clamps it to its own maximum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `edit`: replace the body of one of the user's messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EditMessage {
    /// The message to edit.
    pub message_id: MessageId,
    /// The new text.
    pub body: MessageBody,
}

/// `delete`: turn one of the user's messages into a tombstone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DeleteMessage {
    /// The message to delete.
    pub message_id: MessageId,
}

/// `read`: move the user's read marker in a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MarkRead {
    /// The room.
    pub room: RoomName,
    /// The newest message the user has seen.
    pub message_id: MessageId,
}

/// `signal`: relay an opaque WebRTC signalling payload to one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SendSignal {
    /// The recipient.
    pub to: UserName,
    /// Offer, answer or ICE candidate; the server never looks inside.
    pub payload: Value,
    /// Which call the payload belongs to, if the client tracks several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<CallId>,
}

/// `renew`: keep the connection authorized past its access token's expiry with a fresh
/// access token of the same user (obtained with the refresh token).
#[derive(Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RenewAuth {
    /// The new access token.
    pub token: String,
}

impl std::fmt::Debug for RenewAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RenewAuth { token: *** }")
    }
}

impl RenewAuth {
    /// Longest token accepted, in bytes (a Parley JWT is a few hundred).
    pub const MAX_TOKEN_BYTES: usize = 4096;
}

/// A request from a client, tagged by `"type"` (spelled by [`FrameType::as_str`]). Its `ref`
/// travels beside it in [`ClientEnvelope`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// `join`
    Join(JoinRoom),
    /// `leave`
    Leave(LeaveRoom),
    /// `send`
    Send(SendMessage),
    /// `typing`
    Typing(SetTyping),
    /// `history`
    History(FetchHistory),
    /// `edit`
    Edit(EditMessage),
    /// `delete`
    Delete(DeleteMessage),
    /// `read`
    Read(MarkRead),
    /// `signal`
    Signal(SendSignal),
    /// `renew`
    Renew(RenewAuth),
    /// `ping`: answered with `pong`.
    Ping,
    /// `react`
    React(SetReaction),
    /// `unreact`
    Unreact(SetReaction),
}

/// The type of a client frame: the one place its wire name (`"type"`) is spelled. The
/// decoder, the encoder, limits and documentation all name frame types through this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FrameType {
    /// `join`
    Join,
    /// `leave`
    Leave,
    /// `send`
    Send,
    /// `typing`
    Typing,
    /// `history`
    History,
    /// `edit`
    Edit,
    /// `delete`
    Delete,
    /// `read`
    Read,
    /// `signal`
    Signal,
    /// `renew`
    Renew,
    /// `ping`
    Ping,
    /// `react`
    React,
    /// `unreact`
    Unreact,
}

impl FrameType {
    /// Every client frame type, in the order the documentation lists them.
    pub const ALL: [Self; 13] = [
        Self::Join,
        Self::Leave,
        Self::Send,
        Self::Typing,
        Self::History,
        Self::Edit,
        Self::Delete,
        Self::Read,
        Self::Signal,
        Self::Renew,
        Self::Ping,
        Self::React,
        Self::Unreact,
    ];

    /// The wire spelling, e.g. `"join"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Join => "join",
            Self::Leave => "leave",
            Self::Send => "send",
            Self::Typing => "typing",
            Self::History => "history",
            Self::Edit => "edit",
            Self::Delete => "delete",
            Self::Read => "read",
            Self::Signal => "signal",
            Self::Renew => "renew",
            Self::Ping => "ping",
            Self::React => "react",
            Self::Unreact => "unreact",
        }
    }

    /// The type spelled `name` on the wire (case-sensitive), if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The fields a frame of this type may carry besides `type` and `ref`.
    const fn fields(self) -> &'static [&'static str] {
        match self {
            Self::Join | Self::Leave => &["room"],
            Self::Send => &["room", "body", "client_id", "reply_to"],
            Self::Typing => &["room", "active"],
            Self::History => &["room", "before", "after", "limit"],
            Self::Edit => &["message_id", "body"],
            Self::Delete => &["message_id"],
            Self::Read => &["room", "message_id"],
            Self::Signal => &["to", "payload", "call_id"],
            Self::Renew => &["token"],
            Self::Ping => &[],
            Self::React | Self::Unreact => &["message_id", "emoji"],
        }
    }
}

impl std::fmt::Display for FrameType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which protocol a connection speaks. Both decode into the same [`ClientFrame`]s; they
/// differ in the frames a client may send without a `type`, in the fields the server adds and
/// in which of the room's frames the connection receives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Dialect {
    /// Parley's own frames (`/ws`).
    #[default]
    Parley,
    /// The Django Channels tutorial's (`/ws/chat/{room}`): the connection lives in `room`,
    /// joined on connect; a frame without a `type` holding `"message"` (and optionally
    /// `"username"`, which is ignored: messages are always the signed-in user's, and
    /// `"room_name"`, which must name `room`) is a `send` to `room`; every `message` frame the connection receives also carries the tutorial's
    /// `"message"` and `"username"` fields. Frames with a `type` work as in `Parley`, and
    /// their replies come back as usual.
    Tutorial {
        /// The connection's room.
        room: RoomName,
        /// Which of the room's frames the connection receives unasked.
        frames: TutorialFrames,
    },
}

/// Which frames a [`Dialect::Tutorial`] connection receives without asking: a tutorial page
/// shows every frame it gets as `username: message`, so by default it gets only frames that
/// have both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TutorialFrames {
    /// Only chat: `message` frames (and `external` ones from Django processes). No `joined`
    /// on connect, none of the room's other events, no call signals; being removed from the
    /// room closes the socket. What a Django tutorial page expects.
    #[default]
    Chat,
    /// Everything a `Parley` connection in the room gets: `joined` on connect, presence,
    /// typing, edits, deletes, read markers, signals, `left` when removed.
    All,
}

impl TutorialFrames {
    /// The spelling of the `frames` query parameter (`chat`, `all`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::All => "all",
        }
    }

    /// The setting spelled `raw`, if any.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Chat, Self::All]
            .into_iter()
            .find(|f| f.as_str() == raw)
    }
}

impl Dialect {
    /// The tutorial room, for [`Dialect::Tutorial`].
    pub fn tutorial_room(&self) -> Option<&RoomName> {
        match self {
            Self::Parley => None,
            Self::Tutorial { room, .. } => Some(room),
        }
    }

    /// Whether the connection receives Parley's own frames beyond chat messages (every
    /// dialect but a chat-only tutorial connection).
    pub fn receives_room_events(&self) -> bool {
        !matches!(
            self,
            Self::Tutorial {
                frames: TutorialFrames::Chat,
                ..
            }
        )
    }
}

/// A decoded client frame and the `ref` it carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientEnvelope {
    /// The request.
    #[serde(flatten)]
    pub frame: ClientFrame,
    /// The client's correlation token, to echo in the reply or error.
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<FrameRef>,
}

impl ClientEnvelope {
    /// Wraps a frame with an optional `ref`.
    pub fn new(frame: ClientFrame, reference: Option<FrameRef>) -> Self {
        Self { frame, reference }
    }

    /// The JSON text a client sends. Serializing these types cannot fail in practice (every
    /// map key is a string, no custom serializer errors); the `Result` keeps that honest.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

impl From<ClientFrame> for ClientEnvelope {
    fn from(frame: ClientFrame) -> Self {
        Self::new(frame, None)
    }
}

impl ClientFrame {
    /// This frame's type.
    pub const fn frame_type(&self) -> FrameType {
        match self {
            Self::Join(_) => FrameType::Join,
            Self::Leave(_) => FrameType::Leave,
            Self::Send(_) => FrameType::Send,
            Self::Typing(_) => FrameType::Typing,
            Self::History(_) => FrameType::History,
            Self::Edit(_) => FrameType::Edit,
            Self::Delete(_) => FrameType::Delete,
            Self::Read(_) => FrameType::Read,
            Self::Signal(_) => FrameType::Signal,
            Self::Renew(_) => FrameType::Renew,
            Self::Ping => FrameType::Ping,
            Self::React(_) => FrameType::React,
            Self::Unreact(_) => FrameType::Unreact,
        }
    }

    /// The wire `"type"` of this frame.
    pub const fn type_name(&self) -> &'static str {
        self.frame_type().as_str()
    }

    /// The room the request is about, if it names one.
    pub fn room(&self) -> Option<&RoomName> {
        match self {
            Self::Join(f) => Some(&f.room),
            Self::Leave(f) => Some(&f.room),
            Self::Send(f) => Some(&f.room),
            Self::Typing(f) => Some(&f.room),
            Self::History(f) => Some(&f.room),
            Self::Read(f) => Some(&f.room),
            Self::Edit(_)
            | Self::Delete(_)
            | Self::Signal(_)
            | Self::Renew(_)
            | Self::Ping
            | Self::React(_)
            | Self::Unreact(_) => None,
        }
    }

    /// Wraps the frame with a `ref`.
    pub fn with_ref(self, reference: FrameRef) -> ClientEnvelope {
        ClientEnvelope::new(self, Some(reference))
    }

    /// Decodes one text frame from a client speaking Parley's own protocol.
    ///
    /// Checks, in order: raw length (`frame_too_large`), JSON syntax (`invalid_json`), object
    /// shape (`not_an_object`), the `ref` (`invalid_field`), the `type` (`missing_type`,
    /// `invalid_field`, `unknown_type`), unknown fields (`unknown_field`), then each field
    /// (`missing_field`, `invalid_field`, `invalid_room_name`, `body_too_long`). Every error
    /// after the `ref` check carries the `ref`.
    pub fn decode(text: &str, limits: &DecodeLimits) -> Result<ClientEnvelope, FrameError> {
        Self::decode_in(text, &Dialect::Parley, limits)
    }

    /// Decodes one text frame from a client speaking `dialect`: as [`ClientFrame::decode`],
    /// and in the tutorial dialect a frame without `type` is the tutorial's `send` (see
    /// [`Dialect::Tutorial`]; it may carry only `message`, `username`, `room_name` (which must
    /// be the socket's room) and `ref`).
    pub fn decode_in(
        text: &str,
        dialect: &Dialect,
        limits: &DecodeLimits,
    ) -> Result<ClientEnvelope, FrameError> {
        if text.len() > limits.max_frame_bytes {
            return Err(FrameError::new(
                ErrorCode::FrameTooLarge,
                format!(
                    "the frame is {} bytes; at most {} are accepted",
                    text.len(),
                    limits.max_frame_bytes
                ),
                None,
            ));
        }
        let top: TopLevel = serde_json::from_str(text).map_err(|e| {
            FrameError::new(
                ErrorCode::InvalidJson,
                format!("the frame is not valid JSON: {e}"),
                None,
            )
        })?;
        let mut map = match top {
            TopLevel::Object(map) => map,
            TopLevel::Other(kind) => {
                return Err(FrameError::new(
                    ErrorCode::NotAnObject,
                    format!("the frame must be a JSON object, not {kind}"),
                    None,
                ));
            }
        };
        let reference = match map.remove("ref") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(FrameRef::parse(&s).map_err(|e| {
                FrameError::new(ErrorCode::InvalidField, format!("field `ref`: {e}"), None)
            })?),
            Some(other) => {
                return Err(FrameError::new(
                    ErrorCode::InvalidField,
                    format!("field `ref` must be a string, not {}", kind_of(&other)),
                    None,
                ));
            }
        };
        let frame = match dialect.tutorial_room() {
            Some(room) if matches!(map.get("type"), None | Some(Value::Null)) => {
                tutorial_send(map, room, limits)
            }
            _ => decode_frame(map, limits),
        }
        .map_err(|e| e.with_reference(reference.clone()))?;
        Ok(ClientEnvelope { frame, reference })
    }
}

/// A frame's top-level JSON value. An object with a key twice is refused: serde_json would
/// keep the last, so `{"type":"ping","type":"send",...}` would be read as whichever came last
/// while a proxy or log reader may see the first (REST bodies refuse duplicates too). Keys of
/// nested values (a `signal`'s payload) are the client's business.
enum TopLevel {
    /// An object, each key once.
    Object(Map<String, Value>),
    /// Anything else, by kind ("an array", "a string", ...).
    Other(&'static str),
}

impl<'de> serde::Deserialize<'de> for TopLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TopLevelVisitor)
    }
}

struct TopLevelVisitor;

impl<'de> serde::de::Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<TopLevel, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "the key `{}` appears twice",
                    clip(&key)
                )));
            }
            let value: Value = access.next_value()?;
            map.insert(key, value);
        }
        Ok(TopLevel::Object(map))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<TopLevel, A::Error> {
        // Read as values, not skipped: the parser's nesting limit then refuses a deep one.
        while seq.next_element::<Value>()?.is_some() {}
        Ok(TopLevel::Other("an array"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a string"))
    }

    fn visit_unit<E>(self) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("null"))
    }
}

/// The Django tutorial's `{"message": ..., "username": ...}`: a `send` to `room`.
fn tutorial_send(
    map: Map<String, Value>,
    room: &RoomName,
    limits: &DecodeLimits,
) -> Result<ClientFrame, FrameError> {
    if !map.contains_key("message") {
        return Err(FrameError::new(
            ErrorCode::MissingType,
            "the frame has no \"type\" field (nor the tutorial's \"message\")",
            None,
        ));
    }
    let mut f = Fields::new("message", map, &["message", "username", "room_name"])?;
    // Checked for shape only: the sender is always the signed-in user.
    let _: Option<String> = f.optional("username", string)?;
    // The simplest tutorial apps name the room in every frame: it must be this socket's.
    if let Some(named) = f.optional("room_name", self::room)?
        && &named != room
    {
        return Err(FrameError::new(
            ErrorCode::InvalidField,
            format!(
                "`message` frame, field `room_name`: this socket is room {room}'s, not {named}'s; open /ws/chat/{named}/ to post there"
            ),
            None,
        ));
    }
    Ok(ClientFrame::Send(SendMessage {
        room: room.clone(),
        body: f.required("message", |v| body(v, limits.max_body_chars))?,
        client_id: None,
        reply_to: None,
    }))
}

/// Reads `type` and the fields of the frame it names from what is left of the object.
fn decode_frame(
    mut map: Map<String, Value>,
    limits: &DecodeLimits,
) -> Result<ClientFrame, FrameError> {
    let type_name = match map.remove("type") {
        None | Some(Value::Null) => {
            return Err(FrameError::new(
                ErrorCode::MissingType,
                "the frame has no \"type\" field",
                None,
            ));
        }
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(FrameError::new(
                ErrorCode::InvalidField,
                format!("field `type` must be a string, not {}", kind_of(&other)),
                None,
            ));
        }
    };
    let Some(frame_type) = FrameType::parse(&type_name) else {
        let known: Vec<&str> = FrameType::ALL.iter().map(|t| t.as_str()).collect();
        return Err(FrameError::new(
            ErrorCode::UnknownType,
            format!(
                "unknown frame type `{}`; expected one of: {}",
                clip(&type_name),
                known.join(", ")
            ),
            None,
        ));
    };
    let mut f = Fields::new(frame_type.as_str(), map, frame_type.fields())?;
    let body_rule = |v| body(v, limits.max_body_chars);
    Ok(match frame_type {
        FrameType::Join => ClientFrame::Join(JoinRoom {
            room: f.required("room", room)?,
        }),
        FrameType::Leave => ClientFrame::Leave(LeaveRoom {
            room: f.required("room", room)?,
        }),
        FrameType::Send => ClientFrame::Send(SendMessage {
            room: f.required("room", room)?,
            body: f.required("body", body_rule)?,
            client_id: f.optional("client_id", client_id)?,
            reply_to: f.optional("reply_to", message_id)?,
        }),
        FrameType::Typing => ClientFrame::Typing(SetTyping {
            room: f.required("room", room)?,
            active: f.optional("active", boolean)?.unwrap_or(true),
        }),
        FrameType::History => ClientFrame::History(FetchHistory {
            room: f.required("room", room)?,
            before: f.optional("before", message_id)?,
            after: f.optional("after", message_id)?,
            limit: f.optional("limit", count)?,
        }),
        FrameType::Edit => ClientFrame::Edit(EditMessage {
            message_id: f.required("message_id", message_id)?,
            body: f.required("body", body_rule)?,
        }),
        FrameType::Delete => ClientFrame::Delete(DeleteMessage {
            message_id: f.required("message_id", message_id)?,
        }),
        FrameType::Read => ClientFrame::Read(MarkRead {
            room: f.required("room", room)?,
            message_id: f.required("message_id", message_id)?,
        }),
        FrameType::Signal => ClientFrame::Signal(SendSignal {
            to: f.required("to", user_name)?,
            payload: f.required("payload", Ok)?,
            call_id: f.optional("call_id", call_id)?,
        }),
        FrameType::Renew => ClientFrame::Renew(RenewAuth {
            token: f.required("token", token)?,
        }),
        FrameType::Ping => ClientFrame::Ping,
        FrameType::React => ClientFrame::React(SetReaction {
            message_id: f.required("message_id", message_id)?,
            emoji: f.required("emoji", emoji)?,
        }),
        FrameType::Unreact => ClientFrame::Unreact(SetReaction {
            message_id: f.required("message_id", message_id)?,
            emoji: f.required("emoji", emoji)?,
        }),
    })
}

/// Serializes with `"type"` spelled by [`FrameType::as_str`] and the frame's fields beside it.
impl Serialize for ClientFrame {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Tagged<'a, T: Serialize> {
            #[serde(rename = "type")]
            kind: &'static str,
            #[serde(flatten)]
            fields: &'a T,
        }
        /// `ping` has no fields.
        #[derive(Serialize)]
        struct NoFields {}
        fn tagged<S: serde::Serializer, T: Serialize>(
            s: S,
            kind: FrameType,
            fields: &T,
        ) -> Result<S::Ok, S::Error> {
            Tagged {
                kind: kind.as_str(),
                fields,
            }
            .serialize(s)
        }
        let kind = self.frame_type();
        match self {
            Self::Join(f) => tagged(s, kind, f),
            Self::Leave(f) => tagged(s, kind, f),
            Self::Send(f) => tagged(s, kind, f),
            Self::Typing(f) => tagged(s, kind, f),
            Self::History(f) => tagged(s, kind, f),
            Self::Edit(f) => tagged(s, kind, f),
            Self::Delete(f) => tagged(s, kind, f),
            Self::Read(f) => tagged(s, kind, f),
            Self::Signal(f) => tagged(s, kind, f),
            Self::Renew(f) => tagged(s, kind, f),
            Self::Ping => tagged(s, kind, &NoFields {}),
            Self::React(f) => tagged(s, kind, f),
            Self::Unreact(f) => tagged(s, kind, f),
        }
    }
}

/// Why one field's value was refused: the code and the detail after the field name.
type Refusal = (ErrorCode, String);

/// The fields of one frame, taken out one by one so each error names its field.
struct Fields {
    frame: &'static str,
    map: Map<String, Value>,
}

impl Fields {
    /// Refuses any field not in `allowed` (`type` and `ref` are already removed).
    fn new(
        frame: &'static str,
        map: Map<String, Value>,
        allowed: &[&str],
    ) -> Result<Self, FrameError> {
        if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            let expected = if allowed.is_empty() {
                "it has none besides `type` and `ref`".to_owned()
            } else {
                format!("expected one of: {}", allowed.join(", "))
            };
            return Err(FrameError::new(
                ErrorCode::UnknownField,
                format!(
                    "`{frame}` frame: unknown field `{}`; {expected}",
                    clip(unknown)
                ),
                None,
            ));
        }
        Ok(Self { frame, map })
    }

    /// A field that may be absent; `null` counts as absent.
    fn optional<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(Value) -> Result<T, Refusal>,
    ) -> Result<Option<T>, FrameError> {
        match self.map.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => parse(v).map(Some).map_err(|(code, detail)| {
                FrameError::new(
                    code,
                    format!("`{}` frame, field `{name}`: {detail}", self.frame),
                    None,
                )
            }),
        }
    }

    /// A field that must be present and not `null`.
    fn required<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(Value) -> Result<T, Refusal>,
    ) -> Result<T, FrameError> {
        self.optional(name, parse)?.ok_or_else(|| {
            FrameError::new(
                ErrorCode::MissingField,
                format!("`{}` frame: missing field `{name}`", self.frame),
                None,
            )
        })
    }
}

fn wrong_type(expected: &str, found: &Value) -> Refusal {
    (
        ErrorCode::InvalidField,
        format!("expected {expected}, found {}", kind_of(found)),
    )
}

fn string(v: Value) -> Result<String, Refusal> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(wrong_type("a string", &other)),
    }
}

fn room(v: Value) -> Result<RoomName, Refusal> {
    RoomName::parse(&string(v)?).map_err(|e| (ErrorCode::InvalidRoomName, e.to_string()))
}

fn user_name(v: Value) -> Result<UserName, Refusal> {
    UserName::parse(&string(v)?).map_err(|e| (ErrorCode::InvalidField, e.to_string()))
}

fn body(v: Value, max_chars: usize) -> Result<MessageBody, Refusal> {
    MessageBody::parse_with_limit(&string(v)?, max_chars).map_err(|e| {
        let code = match e {
            crate::DomainError::BodyTooLong { .. } => ErrorCode::BodyTooLong,
            _ => ErrorCode::InvalidField,
        };
        (code, e.to_string())
    })
}

fn token(v: Value) -> Result<String, Refusal> {
    let token = string(v)?;
    if token.is_empty() || token.len() > RenewAuth::MAX_TOKEN_BYTES {
        return Err((
            ErrorCode::InvalidField,
            format!(
                "expected an access token of 1 to {} bytes",
                RenewAuth::MAX_TOKEN_BYTES
            ),
        ));
    }
    Ok(token)
}

fn client_id(v: Value) -> Result<ClientMsgId, Refusal> {
    ClientMsgId::parse(&string(v)?).map_err(|e| (ErrorCode::InvalidField, e.to_string()))
}

fn emoji(v: Value) -> Result<Emoji, Refusal> {
    Emoji::parse(&string(v)?).map_err(|e| (ErrorCode::InvalidField, e.to_string()))
}

fn call_id(v: Value) -> Result<CallId, Refusal> {
    CallId::parse(&string(v)?).map_err(|e| (ErrorCode::InvalidField, e.to_string()))
}

fn boolean(v: Value) -> Result<bool, Refusal> {
    match v {
        Value::Bool(b) => Ok(b),
        other => Err(wrong_type("true or false", &other)),
    }
}

fn message_id(v: Value) -> Result<MessageId, Refusal> {
    match &v {
        Value::Number(n) => match n.as_i64() {
            Some(id) if id > 0 => Ok(MessageId(id)),
            _ => Err((
                ErrorCode::InvalidField,
                "expected a positive integer message id".to_owned(),
            )),
        },
        other => Err(wrong_type("an integer message id", other)),
    }
}

fn count(v: Value) -> Result<u32, Refusal> {
    match &v {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                (
                    ErrorCode::InvalidField,
                    format!("expected an integer from 0 to {}", u32::MAX),
                )
            }),
        other => Err(wrong_type("an integer", other)),
    }
}

/// The JSON kind of a value, for messages ("a string", "an array").
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Client text quoted in an error message, cut so a hostile frame cannot make the reply
/// (or the log line) large.
fn clip(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_cuts_on_character_boundaries() {
        assert_eq!(clip("short"), "short");
        let long = "é😀".repeat(50);
        let clipped = clip(&long);
        assert_eq!(clipped.chars().count(), 41);
        assert!(clipped.ends_with('…'));
        assert_eq!(clip(&"x".repeat(40)), "x".repeat(40));
    }

    #[test]
    fn unknown_field_names_are_clipped() {
        let key = "ü".repeat(5000);
        let text = format!(r#"{{"type":"ping","{key}":1}}"#);
        let err = ClientFrame::decode(&text, &DecodeLimits::default()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::UnknownField);
        assert!(err.message().chars().count() < 200, "{}", err.message());
    }
}
