//! The records Parley keeps, as the store returns them and the engine and transport use them.
//!
//! They serialize to the JSON shapes of the REST API and the wire protocol; secrets (the
//! password hash) are never part of these records.

use crate::ids::{MessageId, RoomId, Timestamp, UserId};
use crate::message::ClientMsgId;
use crate::names::{DisplayName, Email, RoomName, Topic, UserName};
use crate::reaction::{ReactionSummary, ReplyPreview};
use crate::room::{Role, RoomKind};
use serde::{Deserialize, Serialize};

/// A user account, without its password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// Primary key.
    pub id: UserId,
    /// Unique, lower-case handle.
    pub username: UserName,
    /// Optional contact address.
    pub email: Option<Email>,
    /// The name shown beside the user name (issue 15); `null` when the user chose none.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub display_name: Option<DisplayName>,
    /// Staff may edit or delete any message and manage any room.
    pub is_staff: bool,
    /// When the account was created.
    pub joined_at: Timestamp,
    /// When the user last logged in, if ever.
    pub last_login: Option<Timestamp>,
    /// A guest: an identity made by `POST /api/auth/guest` (no password, no refresh token;
    /// its user name starts with [`UserName::GUEST_PREFIX`]). Guests may only read and post
    /// in public rooms.
    #[serde(default)]
    pub is_guest: bool,
    /// False once staff deactivated the account: it cannot log in, and every token of it
    /// is refused.
    #[serde(default = "active")]
    pub is_active: bool,
    /// The account's token generation: copied into each token at issue, raised by a
    /// deactivation or a password reset by staff, which so makes every older token useless.
    /// Not sent to clients.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub token_epoch: i64,
}

fn active() -> bool {
    true
}

/// A room, group or direct.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Room {
    /// Primary key.
    pub id: RoomId,
    /// Unique name; `dm.{low}.{high}` for direct rooms.
    pub name: RoomName,
    /// Who may see and join it.
    pub kind: RoomKind,
    /// The user who created it (none if that account was deleted).
    pub creator: Option<UserId>,
    /// A line describing the room.
    pub topic: Topic,
    /// When it was created.
    pub created_at: Timestamp,
    /// Read-only: only its owners and staff may post (set by an owner or staff).
    #[serde(default)]
    pub read_only: bool,
}

/// A user's membership of a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Membership {
    /// The room.
    pub room_id: RoomId,
    /// The member.
    pub user_id: UserId,
    /// Owner or plain member.
    pub role: Role,
    /// When the user became a member.
    pub joined_at: Timestamp,
    /// The newest message the user has marked read, if any.
    pub last_read: Option<MessageId>,
}

/// A room as listed to one user: the room, whether they belong to it, and how many
/// messages they have not read yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomSummary {
    /// The room itself.
    #[serde(flatten)]
    pub room: Room,
    /// The user's role, if they are a member.
    pub role: Option<Role>,
    /// Messages after the user's read marker (all messages if none is set; 0 for non-members).
    pub unread: i64,
    /// Of those unread messages, how many mention the user (issue 17); 0 for non-members.
    #[serde(default)]
    pub unread_mentions: i64,
    /// The room's newest message that is not deleted, previewed (issue 17); `null` when it
    /// has none.
    #[serde(default)]
    pub last_message: Option<LastMessage>,
}

/// What a room list shows of a room's newest message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LastMessage {
    /// The message.
    pub id: MessageId,
    /// Its author.
    pub sender: UserName,
    /// Its first [`ReplyPreview::EXCERPT_CHARS`] characters.
    pub preview: String,
    /// When it was sent.
    pub created_at: Timestamp,
}

/// A stored message. A deleted message keeps its place in history as a tombstone: its
/// `deleted_at` is set and its body is empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    /// Server-assigned id; orders the room's history.
    pub id: MessageId,
    /// The room it was posted in.
    pub room_id: RoomId,
    /// The room's name, so a client in many rooms knows where it belongs.
    pub room: RoomName,
    /// Author's id.
    pub sender_id: UserId,
    /// Author's handle.
    pub sender: UserName,
    /// Author's display name at the time it was sent (frames) or now (history), beside the
    /// handle (issue 15); absent when the author has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub sender_display_name: Option<DisplayName>,
    /// The text (empty once deleted).
    pub body: String,
    /// The id the client chose for idempotent retries, if it gave one.
    pub client_id: Option<ClientMsgId>,
    /// When the server stored it.
    pub created_at: Timestamp,
    /// When it was last edited.
    pub edited_at: Option<Timestamp>,
    /// When it was deleted.
    pub deleted_at: Option<Timestamp>,
    /// The author is a guest (no account; see [`User::is_guest`]): sent as `"guest": true`,
    /// and absent for an account's message.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guest: bool,
    /// The message this one answers, previewed (issue 17); absent for a message that
    /// answers none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<ReplyPreview>,
    /// Its reactions, one entry per emoji in the order first used (issue 17); absent when
    /// there are none. Always empty in the `message` frame of a new message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<ReactionSummary>,
    /// The users it mentions (`@name`, issue 17): members of the room other than the author,
    /// as the server recognized them when the message was sent (an edit changes nothing
    /// here); absent when it mentions nobody.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<UserName>,
}
