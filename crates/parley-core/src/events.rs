//! The messages the engine puts on the channel layer, and how a connection turns them into
//! the frames its client receives.
//!
//! Groups per room (so a Django consumer sharing the layer is never sent an event type it has
//! no handler for — Channels raises on those):
//! - the *chat group* (`chat_{room}` by default) carries only `chat.message` events, with the
//!   fields a Django tutorial consumer reads (`message`, `username`) beside Parley's own
//!   (`parley`: the full `message` frame; `origin`: the sending connection's channel);
//! - the *event group* (`parley.room.{room}`) carries Parley's other room events
//!   (`parley.event`: presence, typing, edits, deletes, read markers).
//!
//! Per user, `parley.user.{id}` reaches all of one user's connections (`parley.signal`,
//! `parley.kick`, `parley.signout`, `parley.standing`,
//! `parley.notify`). `parley.nodes` reaches one channel per server process (a normal channel,
//! `parley.node.{id}`, with a queue and capacity of its own), for presence snapshots
//! (`parley.presence`: one message per process carrying many rooms, never one per room, so a
//! heartbeat costs each process one message per other process).
//!
//! Every event that carries a client frame stores it pre-serialized-ready as a JSON value
//! under `parley`; the first local recipient renders it to text and the rest reuse that text
//! ([`parley_layer::Message::rendered`]).

use crate::presence::NodeSnapshot;
use parley_domain::protocol::{Dialect, Posted, ServerFrame};
use parley_domain::{
    DisplayName, Message as ChatMessage, Mute, RoomName, Timestamp, UserId, UserName,
};
use parley_layer::{ChannelName, GroupName, Message};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// `type` of a chat message on the chat group (Django's `chat_message` handler).
pub const CHAT_MESSAGE: &str = "chat.message";
/// `type` of Parley's other room events, on the event group.
pub const PARLEY_EVENT: &str = "parley.event";
/// `type` of a signal relayed to one user.
pub const PARLEY_SIGNAL: &str = "parley.signal";
/// `type` of a notification for one user (the `mention` frame), delivered like a signal to
/// every socket of theirs that speaks Parley's protocol, joined to the room or not.
pub const PARLEY_NOTIFY: &str = "parley.notify";
/// `type` of "you were removed from this room", to one user.
pub const PARLEY_KICK: &str = "parley.kick";
/// `type` of "close your sockets" to one user (a login signed out), with the login's
/// `family` when only its sockets close.
pub const PARLEY_SIGNOUT: &str = "parley.signout";
/// `type` of "your profile changed" to one user (issue 15): their sockets take the new
/// `display_name` into the messages they send from then on.
pub const PARLEY_PROFILE: &str = "parley.profile";
/// `type` of "your standing in this room changed" (a mute, a role, read-only), to one user:
/// their joined sockets update what they may post without asking the store.
pub const PARLEY_STANDING: &str = "parley.standing";
/// `type` of a node's presence snapshot, on the nodes group.
pub const PARLEY_PRESENCE: &str = "parley.presence";
/// "Read your standing from the store again", sent by a node to each of its own connections
/// after a channel-layer outage (the changes published meanwhile never arrived).
pub const PARLEY_RECHECK: &str = "parley.recheck";
/// A heartbeat probe a node sends itself through its canary group (ignored on receipt).
pub const PARLEY_CANARY: &str = "parley.canary";

/// The group names of one engine.
#[derive(Debug, Clone)]
pub struct Groups {
    pattern: String,
}

impl Groups {
    /// Groups for a validated chat-group pattern.
    pub fn new(pattern: &str) -> Self {
        Self {
            pattern: pattern.to_owned(),
        }
    }

    /// The room's chat group (shared with Django consumers).
    pub fn chat(&self, room: &RoomName) -> parley_layer::Result<GroupName> {
        GroupName::parse(&self.pattern.replace("{room}", room.as_str()))
    }

    /// The room's Parley-only event group.
    pub fn events(&self, room: &RoomName) -> parley_layer::Result<GroupName> {
        GroupName::parse(&format!("parley.room.{room}"))
    }

    /// The group of every node's own channel (one per server process sharing the layer).
    pub fn nodes(&self) -> parley_layer::Result<GroupName> {
        Self::nodes_group()
    }

    /// [`Groups::nodes`], which depends on no setting.
    pub fn nodes_group() -> parley_layer::Result<GroupName> {
        GroupName::parse("parley.nodes")
    }

    /// A group holding only this node's channel: found empty, the layer lost this node's
    /// memberships (Redis restarted without persistence, or they expired).
    pub fn canary(&self, node: &ChannelName) -> parley_layer::Result<GroupName> {
        let tag: String = node
            .as_str()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(64)
            .collect();
        GroupName::parse(&format!("parley.canary.{tag}"))
    }

    /// All connections of one user.
    pub fn user(&self, user: UserId) -> parley_layer::Result<GroupName> {
        GroupName::parse(&format!("parley.user.{user}"))
    }
}

fn frame_value(frame: &ServerFrame) -> Value {
    serde_json::to_value(frame).unwrap_or(Value::Null)
}

/// A stored chat message, as put on the chat group.
pub fn chat_message(message: &ChatMessage, origin: &ChannelName) -> Message {
    let frame = ServerFrame::Message(Posted::new(message.clone()));
    let mut fields = Map::new();
    fields.insert("message".into(), Value::String(message.body.clone()));
    fields.insert("username".into(), Value::String(message.sender.to_string()));
    fields.insert("room".into(), Value::String(message.room.to_string()));
    fields.insert("origin".into(), Value::String(origin.to_string()));
    fields.insert("parley".into(), frame_value(&frame));
    Message::new(CHAT_MESSAGE, fields)
}

/// A room event for the event group; `origin` (the sender's channel) is skipped on delivery.
pub fn room_event(frame: &ServerFrame, origin: Option<&ChannelName>) -> Message {
    let mut fields = Map::new();
    fields.insert("parley".into(), frame_value(frame));
    if let Some(origin) = origin {
        fields.insert("origin".into(), Value::String(origin.to_string()));
    }
    Message::new(PARLEY_EVENT, fields)
}

/// The canary probe (see [`Groups::canary`]).
pub fn canary() -> Message {
    Message::new(PARLEY_CANARY, Map::new())
}

/// A signal for one user's connections.
pub fn signal(frame: &ServerFrame) -> Message {
    let mut fields = Map::new();
    fields.insert("parley".into(), frame_value(frame));
    Message::new(PARLEY_SIGNAL, fields)
}

/// A notification for one user's connections (see [`PARLEY_NOTIFY`]).
pub fn notify(frame: &ServerFrame) -> Message {
    let mut fields = Map::new();
    fields.insert("parley".into(), frame_value(frame));
    Message::new(PARLEY_NOTIFY, fields)
}

/// "Leave this room": the user was removed from it, or it was deleted.
pub fn kick(room: &RoomName) -> Message {
    let mut fields = Map::new();
    fields.insert("room".into(), Value::String(room.to_string()));
    Message::new(PARLEY_KICK, fields)
}

/// A change of one user's standing in one room; `None` fields are unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StandingChange {
    /// The room became read-only (`true`) or writable again.
    pub read_only: Option<bool>,
    /// The user became an owner (`true`) or a plain member.
    pub owner: Option<bool>,
    /// The user was muted (`Some(mute)`) or unmuted (`None`).
    pub mute: Option<Option<Mute>>,
}

/// "Your standing in `room` changed" (see [`PARLEY_STANDING`]).
pub fn standing(room: &RoomName, change: StandingChange) -> Message {
    let mut fields = Map::new();
    fields.insert("room".into(), Value::String(room.to_string()));
    if let Some(read_only) = change.read_only {
        fields.insert("read_only".into(), Value::Bool(read_only));
    }
    if let Some(owner) = change.owner {
        fields.insert("owner".into(), Value::Bool(owner));
    }
    if let Some(mute) = change.mute {
        fields.insert("muted".into(), Value::Bool(mute.is_some()));
        if let Some(until) = mute.and_then(|m| m.until) {
            fields.insert("muted_until".into(), json!(until.millis()));
        }
    }
    Message::new(PARLEY_STANDING, fields)
}

fn standing_change(message: &Message) -> StandingChange {
    let flag = |name: &str| message.get(name).and_then(Value::as_bool);
    StandingChange {
        read_only: flag("read_only"),
        owner: flag("owner"),
        mute: flag("muted").map(|muted| {
            muted.then(|| Mute {
                until: message
                    .get("muted_until")
                    .and_then(Value::as_i64)
                    .map(Timestamp),
            })
        }),
    }
}

/// "Close these sockets": every socket of the user, or those authorized by one login.
pub fn sign_out(family: Option<&str>) -> Message {
    let mut fields = Map::new();
    if let Some(family) = family {
        fields.insert("family".into(), Value::String(family.to_owned()));
    }
    Message::new(PARLEY_SIGNOUT, fields)
}

/// "Your staff rights changed" (a promotion or a demotion), to one user: a
/// [`PARLEY_STANDING`] message without a room, so every socket of the user applies it at
/// once (what it may manage and post) without asking the store.
pub fn staff(is_staff: bool) -> Message {
    let mut fields = Map::new();
    fields.insert("staff".into(), Value::Bool(is_staff));
    Message::new(PARLEY_STANDING, fields)
}

/// "Read your standing from the store again" (see [`PARLEY_RECHECK`]).
pub fn recheck() -> Message {
    Message::new(PARLEY_RECHECK, Map::new())
}

/// "Close every socket of this user but those of the login `keep`" (a password change:
/// the caller's login goes on).
pub fn sign_out_except(keep: &str) -> Message {
    let mut fields = Map::new();
    fields.insert("except".into(), Value::String(keep.to_owned()));
    Message::new(PARLEY_SIGNOUT, fields)
}

/// "Your display name is now this" (`None`: cleared), see [`PARLEY_PROFILE`].
pub fn profile(display_name: Option<&DisplayName>) -> Message {
    let mut fields = Map::new();
    fields.insert(
        "display_name".into(),
        display_name.map_or(Value::Null, |d| Value::String(d.as_str().to_owned())),
    );
    Message::new(PARLEY_PROFILE, fields)
}

/// "Close every socket of this user: the account was deactivated or deleted" (4005).
pub fn disable() -> Message {
    let mut fields = Map::new();
    fields.insert("disabled".into(), Value::Bool(true));
    Message::new(PARLEY_SIGNOUT, fields)
}

/// A node's presence message: its users in `rooms` (every room it has users in when `full`;
/// an empty list where none are left), valid for `ttl_ms`; `reply` asks every node that hears
/// it to send its own full snapshot straight back (a node that just started).
pub fn node_presence(
    node: &ChannelName,
    rooms: &[(RoomName, Vec<UserName>)],
    full: bool,
    ttl_ms: u64,
    reply: bool,
) -> Message {
    let rooms: Map<String, Value> = rooms
        .iter()
        .map(|(room, users)| (room.to_string(), json!(users)))
        .collect();
    let mut fields = Map::new();
    fields.insert("node".into(), Value::String(node.to_string()));
    fields.insert("rooms".into(), Value::Object(rooms));
    fields.insert("full".into(), Value::Bool(full));
    fields.insert("ttl_ms".into(), json!(ttl_ms));
    fields.insert("reply".into(), Value::Bool(reply));
    Message::new(PARLEY_PRESENCE, fields)
}

/// Another node's presence message ([`node_presence`]), parsed: `None` when it is not one, is
/// malformed, or is `own` (this node's, back through the group; its rooms are not parsed).
/// Returns the snapshot, its time to live in milliseconds and whether it asks for a reply.
pub fn parse_node_presence(
    message: &Message,
    own: &ChannelName,
) -> Option<(NodeSnapshot, u64, bool)> {
    if message.kind() != PARLEY_PRESENCE {
        return None;
    }
    let node = message.get("node")?.as_str()?.to_owned();
    if node == own.as_str() {
        return None;
    }
    let rooms = message
        .get("rooms")?
        .as_object()?
        .iter()
        .filter_map(|(room, users)| {
            let room = RoomName::parse(room).ok()?;
            let users = users
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .filter_map(|u| UserName::parse(u).ok())
                .collect();
            Some((room, users))
        })
        .collect();
    let full = message
        .get("full")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let ttl = message
        .get("ttl_ms")
        .and_then(Value::as_u64)
        .unwrap_or(15_000);
    let reply = message
        .get("reply")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Some((NodeSnapshot { node, rooms, full }, ttl, reply))
}

/// What a connection does with a layer message.
#[derive(Debug)]
pub enum Delivery {
    /// Send this text to the client.
    Text(Arc<str>),
    /// Leave this room (and tell the client).
    Kick(RoomName),
    /// A chat message from a non-Parley sender (a Django consumer) on a room's chat group.
    External {
        /// The room, if the event named it.
        room: Option<RoomName>,
        /// The sender's name as the event gave it (not a Parley account).
        username: String,
        /// The text.
        message: String,
    },
    /// The user's standing in this room changed: update what the socket may post there.
    Standing(RoomName, StandingChange),
    /// The user was made staff (`true`) or stopped being staff: update what the socket may
    /// manage and post in every room.
    Staff(bool),
    /// Close if this connection belongs to the signed-out login (`None`: any login).
    SignOut(Option<String>),
    /// Close unless this connection belongs to this login (a password change).
    SignOutExcept(String),
    /// The user's display name changed (`None`: cleared): send the new one from now on.
    Profile(Option<DisplayName>),
    /// Close: the account was deactivated or deleted (every login).
    Disabled,
    /// Read the account and the joined rooms' standing from the store again (after a
    /// channel-layer outage).
    Recheck,
    /// Nothing for this client (its own echo, or an event it does not handle).
    Skip,
}

fn origin_is(message: &Message, me: &ChannelName) -> bool {
    matches!(message.get("origin"), Some(Value::String(s)) if s == me.as_str())
}

fn render_parley(message: &Message) -> Arc<str> {
    message.rendered(|fields| {
        fields
            .get("parley")
            .map(Value::to_string)
            .unwrap_or_default()
    })
}

/// The rendering slot of chat messages as the tutorial dialect receives them (slot 0 is
/// Parley's own): every tutorial socket of this process shares one rendering.
const TUTORIAL_RENDERING: usize = 1;

/// A chat message's frame with the tutorial's fields (see [`Posted::for_tutorial`]).
fn render_tutorial(message: &Message) -> Arc<str> {
    message.rendered_as(TUTORIAL_RENDERING, |fields| {
        let Some(parley) = fields.get("parley") else {
            return String::new();
        };
        match serde_json::from_value::<Posted>(parley.clone()) {
            Ok(posted) => ServerFrame::Message(posted.for_tutorial()).to_json(),
            // Not a message frame (a newer peer's?): passed on as it came.
            Err(_) => parley.to_string(),
        }
    })
}

/// Turns a layer message received on connection `me`'s channel into what to do; `dialect` is
/// the protocol the connection speaks.
pub fn deliver(message: &Message, me: &ChannelName, dialect: &Dialect) -> Delivery {
    match message.kind() {
        CHAT_MESSAGE => {
            if origin_is(message, me) {
                return Delivery::Skip;
            }
            if message.get("parley").is_some() {
                return Delivery::Text(match dialect {
                    Dialect::Parley => render_parley(message),
                    Dialect::Tutorial { .. } => render_tutorial(message),
                });
            }
            // From a Django consumer sharing the layer: no id, no stored record, and no room
            // unless the sender added one (Django's tutorial events carry only the text and
            // the user name); the connection fills in the room when it can.
            Delivery::External {
                room: message
                    .get("room")
                    .and_then(Value::as_str)
                    .and_then(|r| RoomName::parse(r).ok()),
                username: message
                    .get("username")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                message: message
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            }
        }
        PARLEY_EVENT | PARLEY_SIGNAL | PARLEY_NOTIFY => {
            if origin_is(message, me) || !dialect.receives_room_events() {
                Delivery::Skip
            } else {
                Delivery::Text(render_parley(message))
            }
        }
        PARLEY_SIGNOUT if message.get("disabled") == Some(&Value::Bool(true)) => Delivery::Disabled,
        PARLEY_SIGNOUT if message.get("except").is_some() => Delivery::SignOutExcept(
            message
                .get("except")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        ),
        PARLEY_PROFILE => Delivery::Profile(
            message
                .get("display_name")
                .and_then(Value::as_str)
                .and_then(|d| DisplayName::parse(d).ok()),
        ),
        PARLEY_SIGNOUT => Delivery::SignOut(
            message
                .get("family")
                .and_then(Value::as_str)
                .map(str::to_owned),
        ),
        PARLEY_RECHECK => Delivery::Recheck,
        PARLEY_STANDING if message.get("room").is_none() => {
            match message.get("staff").and_then(Value::as_bool) {
                Some(staff) => Delivery::Staff(staff),
                None => Delivery::Skip,
            }
        }
        PARLEY_STANDING => match message
            .get("room")
            .and_then(Value::as_str)
            .map(RoomName::parse)
        {
            Some(Ok(room)) => Delivery::Standing(room, standing_change(message)),
            _ => Delivery::Skip,
        },
        PARLEY_KICK => match message
            .get("room")
            .and_then(Value::as_str)
            .map(RoomName::parse)
        {
            Some(Ok(room)) => Delivery::Kick(room),
            _ => Delivery::Skip,
        },
        _ => Delivery::Skip,
    }
}
