//! The one access policy: who may see, read, post in and manage a room. The socket
//! (`join`, `history`, `send`) and the rooms service (REST) both ask [`RoomAccess`], so a
//! rule is written once and holds everywhere.
//!
//! | may... | public room | private room | direct room |
//! |---|---|---|---|
//! | **see** it: details, members, who is online | everyone | members, staff | its two members, staff |
//! | **read** it (history) and **join** it | everyone (joining makes a member) | members | its two members |
//! | **post** in it | who joined it on this connection (so: members) | same | same |
//! | **manage** it: rename, topic, delete, members, roles | its owners, staff | its owners, staff | staff may delete it; nobody renames it or changes its members |
//!
//! **Staff** see every room and manage every group room, but staff status never lets anyone
//! *read* a private or direct conversation: history and joining follow membership only, and
//! staff may not make themselves members of a private room (an owner may add them).
//!
//! **Guests** (`User::is_guest`, when `guests` is on) join, read and post in public rooms
//! like anyone, and nothing more: creating a room (REST or the tutorial endpoint's first
//! connection), opening a direct chat, signalling a call, being added to a private room or
//! made an owner answer `guest_not_allowed` ([`guest_refused`]), and so does reacting to a
//! message (`react`, `unreact`). A guest cannot manage a room: it never owns one.
//!
//! A room a user may not see answers `not_member` (not `not_found`), so a client can tell a
//! typo from a closed door; nothing of its content is shown.

use crate::error::{EngineError, Result};
use parley_domain::protocol::ErrorCode;
use parley_domain::{Role, Room, RoomKind, RoomName, User};
use parley_store::Store;

/// One user's standing in one room, and what it allows.
#[derive(Debug, Clone)]
pub struct RoomAccess {
    room: Room,
    role: Option<Role>,
    staff: bool,
}

impl RoomAccess {
    /// Looks up `room` and `user`'s membership of it. `not_found` if there is no such room.
    pub(crate) async fn of(store: &Store, user: &User, room: &RoomName) -> Result<Self> {
        let room = store.room_by_name(room).await?;
        let role = store.membership(room.id, user.id).await?.map(|m| m.role);
        Ok(Self {
            room,
            role,
            staff: user.is_staff,
        })
    }

    /// The room.
    pub fn room(&self) -> &Room {
        &self.room
    }

    /// The user's role in it, if they are a member.
    pub fn role(&self) -> Option<Role> {
        self.role
    }

    /// Whether the user is a member.
    pub fn is_member(&self) -> bool {
        self.role.is_some()
    }

    /// May the user see the room: its details, members and who is online.
    pub fn can_see(&self) -> bool {
        self.room.kind == RoomKind::Public || self.is_member() || self.staff
    }

    /// May the user read the room's messages and join it (staff status does not count).
    pub fn can_read(&self) -> bool {
        self.room.kind == RoomKind::Public || self.is_member()
    }

    /// May the user manage the room (rename, topic, delete, members, roles).
    pub fn can_manage(&self) -> bool {
        self.staff || self.role == Some(Role::Owner)
    }

    /// `not_member` unless the user may see the room.
    pub fn require_see(&self) -> Result<()> {
        if self.can_see() {
            Ok(())
        } else {
            Err(not_member())
        }
    }

    /// `not_member` unless the user may read the room.
    pub fn require_read(&self) -> Result<()> {
        if self.can_read() {
            Ok(())
        } else if self.can_see() {
            Err(EngineError::refused(
                ErrorCode::NotMember,
                format!("room {} is only open to its members", self.room.name),
            ))
        } else {
            Err(not_member())
        }
    }

    /// `forbidden` unless the user may manage the room (`not_member` if they may not even
    /// see it).
    pub fn require_manage(&self) -> Result<()> {
        self.require_see()?;
        if self.can_manage() {
            Ok(())
        } else {
            Err(EngineError::refused(
                ErrorCode::Forbidden,
                "only the room's owner or staff may do that",
            ))
        }
    }
}

fn not_member() -> EngineError {
    EngineError::refused(ErrorCode::NotMember, "you are not a member of this room")
}

/// The refusal of something guests may not do (`guest_not_allowed`).
pub(crate) fn guest_refused(message: &str) -> EngineError {
    EngineError::refused(ErrorCode::GuestNotAllowed, message)
}
