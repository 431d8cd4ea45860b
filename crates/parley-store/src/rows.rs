//! Rows as diesel reads them, and their conversion into the domain records. Stored strings
//! were validated on the way in; one that no longer parses is reported as `Internal`.

use crate::error::{Result, StoreError};
use crate::schema::{memberships, messages, rooms, users};
use diesel::prelude::*;
use parley_domain::{
    ClientMsgId, DisplayName, Email, Membership, Message, MessageId, ReplyPreview, Role, Room,
    RoomId, RoomKind, RoomName, Timestamp, Topic, User, UserId, UserName,
};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub(crate) struct UserRow {
    pub id: i64,
    pub username: String,
    pub email: Option<String>,
    pub is_staff: bool,
    pub created_at: i64,
    pub last_login: Option<i64>,
    pub is_guest: bool,
    pub is_active: bool,
    pub token_epoch: i64,
    pub display_name: Option<String>,
}

impl UserRow {
    pub fn into_user(self) -> Result<User> {
        Ok(User {
            id: UserId(self.id),
            username: UserName::parse(&self.username)
                .map_err(|e| StoreError::corrupt("user name", e))?,
            email: self
                .email
                .as_deref()
                .map(Email::parse)
                .transpose()
                .map_err(|e| StoreError::corrupt("email", e))?,
            display_name: display_name(self.display_name.as_deref())?,
            is_staff: self.is_staff,
            joined_at: Timestamp(self.created_at),
            last_login: self.last_login.map(Timestamp),
            is_guest: self.is_guest,
            is_active: self.is_active,
            token_epoch: self.token_epoch,
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = rooms)]
pub(crate) struct RoomRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub creator_id: Option<i64>,
    pub topic: String,
    pub created_at: i64,
    pub read_only: bool,
}

impl RoomRow {
    pub fn into_room(self) -> Result<Room> {
        Ok(Room {
            id: RoomId(self.id),
            name: RoomName::parse(&self.name).map_err(|e| StoreError::corrupt("room name", e))?,
            kind: self
                .kind
                .parse::<RoomKind>()
                .map_err(|e| StoreError::corrupt("room kind", e))?,
            creator: self.creator_id.map(UserId),
            topic: Topic::parse(&self.topic).map_err(|e| StoreError::corrupt("topic", e))?,
            created_at: Timestamp(self.created_at),
            read_only: self.read_only,
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = memberships)]
pub(crate) struct MembershipRow {
    pub room_id: i64,
    pub user_id: i64,
    pub role: String,
    pub joined_at: i64,
    pub last_read: Option<i64>,
}

impl MembershipRow {
    pub fn into_membership(self) -> Result<Membership> {
        Ok(Membership {
            room_id: RoomId(self.room_id),
            user_id: UserId(self.user_id),
            role: parse_role(&self.role)?,
            joined_at: Timestamp(self.joined_at),
            last_read: self.last_read.map(MessageId),
        })
    }
}

pub(crate) fn parse_role(raw: &str) -> Result<Role> {
    raw.parse::<Role>()
        .map_err(|e| StoreError::corrupt("role", e))
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = messages)]
pub(crate) struct MessageRow {
    pub id: i64,
    pub room_id: i64,
    pub sender_id: i64,
    pub body: String,
    pub client_id: Option<String>,
    pub created_at: i64,
    pub edited_at: Option<i64>,
    pub deleted_at: Option<i64>,
    pub reply_to: Option<i64>,
}

impl MessageRow {
    pub fn into_message(
        self,
        room: RoomName,
        sender: UserName,
        sender_display_name: Option<DisplayName>,
        guest: bool,
    ) -> Result<Message> {
        Ok(Message {
            id: MessageId(self.id),
            room_id: RoomId(self.room_id),
            room,
            sender_id: UserId(self.sender_id),
            sender,
            sender_display_name,
            body: self.body,
            client_id: self
                .client_id
                .as_deref()
                .map(ClientMsgId::parse)
                .transpose()
                .map_err(|e| StoreError::corrupt("client id", e))?,
            created_at: Timestamp(self.created_at),
            edited_at: self.edited_at.map(Timestamp),
            deleted_at: self.deleted_at.map(Timestamp),
            guest,
            // Filled in by `Store::decorate` where the record is served.
            reply_to: self.reply_to.map(|id| ReplyPreview::pending(MessageId(id))),
            reactions: Vec::new(),
            mentions: Vec::new(),
        })
    }
}

/// A message row joined with its room's name, its author's name, guest flag and display
/// name.
pub(crate) type FullMessageRow = (MessageRow, String, String, bool, Option<String>);

pub(crate) fn full_message(row: FullMessageRow) -> Result<Message> {
    let (row, room, sender, guest, display) = row;
    let room = RoomName::parse(&room).map_err(|e| StoreError::corrupt("room name", e))?;
    let sender = UserName::parse(&sender).map_err(|e| StoreError::corrupt("user name", e))?;
    row.into_message(room, sender, display_name(display.as_deref())?, guest)
}

/// A stored display name, parsed (NULL: none).
pub(crate) fn display_name(raw: Option<&str>) -> Result<Option<DisplayName>> {
    raw.map(DisplayName::parse)
        .transpose()
        .map_err(|e| StoreError::corrupt("display name", e))
}
