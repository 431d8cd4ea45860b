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
//! **Search** (`GET /api/search`, [`crate::search`]) covers exactly the rooms a user may
//! *read* ([`RoomAccess::can_read`]); the store applies the same rule as the query's filter.
//!
//! A room a user may not see answers `not_member` (not `not_found`), so a client can tell a
//! typo from a closed door; nothing of its content is shown.
//!
//! **Moderation** (issue 16) narrows the table, for any kind of group room:
//! - a user **banned** from a room may not see, read, join or post in it, nor be added to
//!   it: each answers `banned` (staff still *see* and manage it, but never read it while
//!   banned). The public directory leaves the room out for them. A ban ends the membership.
//! - a **muted** member reads as before but may not post or edit (`muted`) until the mute
//!   ends (compared with its stored end: no background job) or is lifted.
//! - in a **read-only** room only its owners and staff post or edit (`read_only`).
//! - owners and staff may delete anyone's message in a room they manage (the author may
//!   delete their own anywhere they can read).
//!
//! What a socket may post is decided from [`Posting`], read with the membership when the
//! room is joined and kept on the socket, then changed by the layer events that bans, mutes,
//! role changes and read-only switches send to the user (on every process): sending a
//! message costs no query for it.

use crate::error::{EngineError, Result};
use parley_domain::protocol::ErrorCode;
use parley_domain::{Mute, Role, Room, RoomKind, RoomName, Timestamp, User};
use parley_store::Store;

/// One user's standing in one room, and what it allows.
#[derive(Debug, Clone)]
pub struct RoomAccess {
    room: Room,
    role: Option<Role>,
    staff: bool,
    banned: bool,
    mute: Option<Mute>,
}

/// What one user may post in one joined room, kept on the socket (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posting {
    /// The room is read-only.
    pub read_only: bool,
    /// The user is an owner of the room, or staff: they post in read-only rooms and delete
    /// anyone's message.
    pub manager: bool,
    /// The user's mute, if any (it may have expired).
    pub mute: Option<Mute>,
}

impl Posting {
    /// `muted` or `read_only` unless the user may post in `room` now. Reads the clock only
    /// for a muted user.
    pub fn check(&self, room: &RoomName) -> Result<()> {
        if let Some(mute) = self.mute
            && mute.holds_at(Timestamp::now())
        {
            return Err(EngineError::refused(
                ErrorCode::Muted,
                match mute.until {
                    Some(until) => format!(
                        "you are muted in room {room} until {} (ms since the epoch)",
                        until.millis()
                    ),
                    None => format!("you are muted in room {room}"),
                },
            ));
        }
        if self.read_only && !self.manager {
            return Err(EngineError::refused(
                ErrorCode::ReadOnly,
                format!("room {room} is read-only: only its owners and staff may post"),
            ));
        }
        Ok(())
    }
}

impl RoomAccess {
    /// Looks up `room` and `user`'s standing in it (membership, ban, mute), in one query.
    /// `not_found` if there is no such room.
    pub(crate) async fn of(store: &Store, user: &User, room: &RoomName) -> Result<Self> {
        let (room, standing) = store.room_and_standing(room, user.id).await?;
        Ok(Self {
            room,
            role: standing.membership.map(|m| m.role),
            staff: user.is_staff,
            banned: standing.banned,
            mute: standing.mute,
        })
    }

    /// Whether the user is banned from the room.
    pub fn is_banned(&self) -> bool {
        self.banned
    }

    /// What the user may post in the room (for a socket that joins it).
    pub fn posting(&self) -> Posting {
        Posting {
            read_only: self.room.read_only,
            manager: self.can_manage(),
            mute: self.mute,
        }
    }

    /// `muted` or `read_only` unless the user may post in the room now.
    pub fn require_post(&self) -> Result<()> {
        self.posting().check(&self.room.name)
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
        self.staff || (!self.banned && (self.room.kind == RoomKind::Public || self.is_member()))
    }

    /// May the user read the room's messages and join it (staff status does not count).
    pub fn can_read(&self) -> bool {
        !self.banned && (self.room.kind == RoomKind::Public || self.is_member())
    }

    /// May the user manage the room (rename, topic, delete, members, roles).
    pub fn can_manage(&self) -> bool {
        self.staff || self.role == Some(Role::Owner)
    }

    /// `not_member` (`banned` for a banned user) unless the user may see the room.
    pub fn require_see(&self) -> Result<()> {
        if self.can_see() {
            Ok(())
        } else if self.banned {
            Err(banned(&self.room.name))
        } else {
            Err(not_member())
        }
    }

    /// `not_member` (`banned` for a banned user) unless the user may read the room.
    pub fn require_read(&self) -> Result<()> {
        if self.banned {
            Err(banned(&self.room.name))
        } else if self.can_read() {
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

/// The refusal of a banned user (`banned`).
pub(crate) fn banned(room: &RoomName) -> EngineError {
    EngineError::refused(
        ErrorCode::Banned,
        format!("you are banned from room {room}"),
    )
}

fn not_member() -> EngineError {
    EngineError::refused(ErrorCode::NotMember, "you are not a member of this room")
}

/// The refusal of something guests may not do (`guest_not_allowed`).
pub(crate) fn guest_refused(message: &str) -> EngineError {
    EngineError::refused(ErrorCode::GuestNotAllowed, message)
}
