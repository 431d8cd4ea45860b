//! The rooms service: every room operation a user may ask for outside a socket (the REST API
//! calls these), each checked against the one access policy ([`crate::RoomAccess`]) and
//! followed by what it implies for open sockets (a removed member's sockets leave the room,
//! a renamed or deleted room's sockets get `left`).

use crate::access::{RoomAccess, guest_refused};
use crate::engine::Inner;
use crate::error::{EngineError, Result};
use crate::events::StandingChange;
use crate::limits::Budget;
use parley_domain::protocol::ErrorCode;
use parley_domain::{
    AuditAction, AuditTarget, DirectKey, Membership, Message, Role, Room, RoomKind, RoomName,
    RoomSummary, Timestamp, Topic, User, UserId, UserName,
};
use parley_store::{HistoryQuery, NewRoom, RoomListQuery, StoreError};
use serde::Serialize;
use std::sync::Arc;

/// The rooms service of one engine ([`crate::Engine::rooms`]). Cheap to clone.
///
/// Every method takes the acting user (authenticated by the caller) and answers with the
/// record, or an [`EngineError`] whose [`code`](EngineError::code) tells why not.
#[derive(Clone)]
pub struct Rooms {
    pub(crate) inner: Arc<Inner>,
}

/// What to change in a room (`None`: leave as is).
#[derive(Debug, Clone, Default)]
pub struct RoomChanges {
    /// A new name (group rooms only); joined sockets receive `left` for the old one.
    pub name: Option<RoomName>,
    /// A new topic.
    pub topic: Option<Topic>,
    /// Read-only (only owners and staff post) or writable again (group rooms only).
    pub read_only: Option<bool>,
    /// Public or private (group rooms only). Making a room private ends its guests'
    /// memberships (guests belong to public rooms only): their sockets receive `left`.
    pub kind: Option<RoomKind>,
}

/// One member of a room, as a room's details list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    /// The member's id.
    pub user_id: UserId,
    /// The member's user name.
    pub username: UserName,
    /// Owner or member.
    pub role: Role,
    /// When they became a member.
    pub joined_at: Timestamp,
}

/// A room as shown to someone who may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomDetails {
    /// The room's own fields.
    #[serde(flatten)]
    pub room: Room,
    /// The viewer's role, if they are a member.
    pub role: Option<Role>,
    /// Every member, oldest first.
    pub members: Vec<Member>,
    /// Who is online in it, across every process sharing the layer.
    pub online: Vec<UserName>,
}

/// A page of a room's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomHistory {
    /// The room.
    pub room: RoomName,
    /// The messages, oldest first (tombstones included).
    pub messages: Vec<Message>,
    /// More messages exist beyond this page in the direction asked for.
    pub has_more: bool,
}

/// A page of a room list, in name order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomList {
    /// The rooms, by name, each with the user's role and unread count.
    pub rooms: Vec<RoomSummary>,
    /// Where the next page starts: the `after` of the next page's query; none (`null`) on the
    /// last page.
    pub next: Option<RoomName>,
}

/// What [`Rooms::add_member`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberAdded {
    /// The user was not a member and now is.
    Added(Membership),
    /// The user was a member with another role, which now is the one asked for.
    RoleChanged(Membership),
    /// The user was already a member with that role.
    Unchanged(Membership),
}

impl MemberAdded {
    /// The membership as it now stands.
    pub fn membership(&self) -> &Membership {
        match self {
            Self::Added(m) | Self::RoleChanged(m) | Self::Unchanged(m) => m,
        }
    }
}

fn direct_members_fixed() -> EngineError {
    EngineError::refused(ErrorCode::InvalidField, "a direct room's members are fixed")
}

impl Rooms {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    /// `user`'s standing in `room` (`not_found` if there is no such room).
    pub async fn access(&self, user: &User, room: &RoomName) -> Result<RoomAccess> {
        RoomAccess::of(&self.inner.store, user, room).await
    }

    /// One page of a room list for `user`, by name: the rooms they belong to
    /// ([`crate::RoomScope::Member`], what a client's sidebar shows) or the public directory
    /// ([`crate::RoomScope::Public`], to browse), each with their role and unread count. Any user
    /// may read both; nobody sees a private or direct room they are not in. A page holds
    /// [`RoomListQuery::DEFAULT_LIMIT`] rooms unless asked otherwise, never more than
    /// [`RoomListQuery::MAX_LIMIT`], so no list costs more than that however many rooms
    /// exist; [`RoomList::next`] continues it.
    pub async fn list(&self, user: &User, query: &RoomListQuery) -> Result<RoomList> {
        let page = self.inner.store.room_page(user.id, query).await?;
        Ok(RoomList {
            rooms: page.rooms,
            next: page.next,
        })
    }

    /// Creates a public or private room owned by `user`. `conflict` if the name is taken,
    /// `invalid_field` for a direct kind or a `dm.` name.
    pub async fn create(
        &self,
        user: &User,
        name: RoomName,
        kind: RoomKind,
        topic: Topic,
    ) -> Result<Room> {
        if user.is_guest {
            return Err(guest_refused("guests may not create rooms"));
        }
        if kind == RoomKind::Direct || name.is_direct() {
            return Err(EngineError::refused(
                ErrorCode::InvalidField,
                "direct rooms are made with a direct chat (POST /api/direct/{username}), and 'dm.' names are reserved",
            ));
        }
        self.inner.take_token(user, Budget::RoomCreations)?;
        let new = NewRoom {
            name,
            kind,
            creator: user.id,
            topic,
        };
        Ok(self.inner.store.create_room(&new).await?)
    }

    /// The room with its members and who is online, for a user who may see it.
    pub async fn details(&self, user: &User, room: &RoomName) -> Result<RoomDetails> {
        let access = self.access(user, room).await?;
        access.require_see()?;
        let members = self
            .inner
            .store
            .members_named(access.room().id)
            .await?
            .into_iter()
            .map(|(m, username)| Member {
                user_id: m.user_id,
                username,
                role: m.role,
                joined_at: m.joined_at,
            })
            .collect();
        let online = self.inner.online(&access.room().name);
        let role = access.role();
        Ok(RoomDetails {
            room: access.room().clone(),
            role,
            members,
            online,
        })
    }

    /// Renames a room, changes its topic, makes it public or private, or read-only or writable
    /// (owner or staff); each change is recorded in the audit log. After a rename every
    /// member's sockets leave the old name (they receive `left`) and may join the new one.
    pub async fn update(&self, user: &User, room: &RoomName, changes: RoomChanges) -> Result<Room> {
        let access = self.access(user, room).await?;
        access.require_manage()?;
        let mut room = access.room().clone();
        if changes.name.is_some() && room.kind == RoomKind::Direct {
            return Err(EngineError::refused(
                ErrorCode::InvalidField,
                "direct rooms cannot be renamed",
            ));
        }
        if let Some(kind) = changes.kind
            && (kind == RoomKind::Direct || room.kind == RoomKind::Direct)
        {
            return Err(EngineError::refused(
                ErrorCode::InvalidField,
                "only a group room's visibility changes, to public or private",
            ));
        }
        let store = &self.inner.store;
        if let Some(read_only) = changes.read_only {
            room = self.switch_read_only(user, &access, read_only).await?;
        }
        if let Some(topic) = &changes.topic
            && topic != &room.topic
        {
            room = store.set_topic(room.id, topic).await?;
            self.inner
                .audit(
                    user,
                    AuditAction::SetTopic,
                    AuditTarget::room(&room.name),
                    None,
                )
                .await?;
        }
        if let Some(kind) = changes.kind
            && kind != room.kind
        {
            room = store.set_kind(room.id, kind).await?;
            if kind == RoomKind::Private {
                for guest in store.guest_members(room.id).await? {
                    store.remove_member(room.id, guest).await?;
                    self.kick(guest, &room.name).await;
                }
            }
            let target = AuditTarget::room(&room.name).with_detail(kind.as_str());
            self.inner
                .audit(user, AuditAction::SetVisibility, target, None)
                .await?;
        }
        if let Some(name) = changes.name
            && name != room.name
        {
            let old = room.name.clone();
            room = store.rename_room(room.id, &name).await?;
            self.kick_members(room.id, &old).await?;
            let target = AuditTarget::room(&room.name).with_detail(old.as_str());
            self.inner
                .audit(user, AuditAction::RenameRoom, target, None)
                .await?;
        }
        Ok(room)
    }

    /// Deletes a room (owner or staff); every member's sockets receive `left`.
    pub async fn delete(&self, user: &User, room: &RoomName) -> Result<()> {
        let access = self.access(user, room).await?;
        access.require_manage()?;
        let room = access.room();
        let members = self.inner.store.members(room.id).await?;
        self.inner.store.delete_room(room.id).await?;
        for m in &members {
            self.kick(m.user_id, &room.name).await;
        }
        self.inner
            .audit(
                user,
                AuditAction::DeleteRoom,
                AuditTarget::room(&room.name),
                None,
            )
            .await?;
        Ok(())
    }

    /// Makes `member` a member of `room` with `role` (owner or staff). An existing member's
    /// role is changed to `role` (as [`Rooms::set_role`] does). `invalid_field` for a direct
    /// room, `banned` for a user banned from it.
    pub async fn add_member(
        &self,
        user: &User,
        room: &RoomName,
        member: &UserName,
        role: Role,
    ) -> Result<MemberAdded> {
        let (access, member) = self.members_change(user, room, member).await?;
        guest_member_rule(&access, &member, role)?;
        let store = &self.inner.store;
        let room_id = access.room().id;
        if member.id == user.id && !access.can_read() {
            // Staff manage rooms they do not belong to, but never read them: adding themself
            // would open the conversation (see `RoomAccess`).
            return Err(EngineError::refused(
                ErrorCode::Forbidden,
                "staff may not add themselves to a private conversation",
            ));
        }
        let standing = store.standing(room_id, member.id).await?;
        if let Some(existing) = standing.membership {
            return Ok(if existing.role == role {
                MemberAdded::Unchanged(existing)
            } else {
                MemberAdded::RoleChanged(self.change_role(user, &access, &member, role).await?)
            });
        }
        if standing.banned {
            return Err(EngineError::refused(
                ErrorCode::Banned,
                format!(
                    "{} is banned from room {}: lift the ban first",
                    member.username,
                    access.room().name
                ),
            ));
        }
        let membership = store.add_member(room_id, member.id, role).await?;
        // A concurrent add may have won with another role: answer with what is stored.
        Ok(if membership.role == role {
            MemberAdded::Added(membership)
        } else {
            MemberAdded::RoleChanged(store.set_role(room_id, member.id, role).await?)
        })
    }

    /// Changes a member's role (owner or staff). `not_found` if they are not a member;
    /// `conflict` for making the room's last owner a member (a room keeps an owner: make
    /// another member owner first). Their sockets apply the change at once (an owner posts
    /// in a read-only room), on every process.
    pub async fn set_role(
        &self,
        user: &User,
        room: &RoomName,
        member: &UserName,
        role: Role,
    ) -> Result<Membership> {
        let (access, member) = self.members_change(user, room, member).await?;
        guest_member_rule(&access, &member, role)?;
        self.change_role(user, &access, &member, role).await
    }

    /// Sets a member's role, keeping an owner in the room; tells their sockets and records
    /// it (when done to someone else).
    async fn change_role(
        &self,
        user: &User,
        access: &RoomAccess,
        member: &User,
        role: Role,
    ) -> Result<Membership> {
        let store = &self.inner.store;
        let room = access.room();
        if role == Role::Member
            && store.membership(room.id, member.id).await?.map(|m| m.role) == Some(Role::Owner)
            && store.owner_count(room.id).await? <= 1
        {
            return Err(EngineError::refused(
                ErrorCode::Conflict,
                format!(
                    "{} is the last owner of room {}: make another member owner first",
                    member.username, room.name
                ),
            ));
        }
        let membership = store.set_role(room.id, member.id, role).await?;
        let change = StandingChange {
            owner: Some(role == Role::Owner),
            ..StandingChange::default()
        };
        self.inner
            .tell_standing(member.id, &room.name, change)
            .await;
        if member.id != user.id {
            let target =
                AuditTarget::member(&room.name, &member.username).with_detail(role.as_str());
            self.inner
                .audit(user, AuditAction::ChangeRole, target, None)
                .await?;
        }
        Ok(membership)
    }

    /// The checks of a change to `room`'s members that `user` asks for: they manage the room,
    /// it is a group room, and `member` exists. The room and the member.
    async fn members_change(
        &self,
        user: &User,
        room: &RoomName,
        member: &UserName,
    ) -> Result<(RoomAccess, User)> {
        let access = self.access(user, room).await?;
        access.require_manage()?;
        if access.room().kind == RoomKind::Direct {
            return Err(direct_members_fixed());
        }
        let member = self.inner.store.user_by_name(member).await?;
        Ok((access, member))
    }

    /// Removes `member` from `room` (owner or staff, or the member themself); their sockets
    /// leave the room. `not_found` if they were not a member. A room keeps an owner: the
    /// last owner's removal or leave is `conflict` (make another member owner first, or
    /// delete the room).
    pub async fn remove_member(
        &self,
        user: &User,
        room: &RoomName,
        member: &UserName,
    ) -> Result<()> {
        let access = self.access(user, room).await?;
        access.require_see()?;
        let store = &self.inner.store;
        let member = store.user_by_name(member).await?;
        if member.id != user.id {
            access.require_manage()?;
        }
        if access.room().kind == RoomKind::Direct {
            return Err(direct_members_fixed());
        }
        let room_id = access.room().id;
        if store.membership(room_id, member.id).await?.map(|m| m.role) == Some(Role::Owner)
            && store.owner_count(room_id).await? <= 1
        {
            return Err(EngineError::refused(
                ErrorCode::Conflict,
                format!(
                    "{} is the last owner of room {}: make another member owner first, or \
                     delete the room",
                    member.username,
                    access.room().name
                ),
            ));
        }
        store.remove_member(room_id, member.id).await?;
        self.kick(member.id, &access.room().name).await;
        if member.id != user.id {
            let target = AuditTarget::member(&access.room().name, &member.username);
            self.inner
                .audit(user, AuditAction::RemoveMember, target, None)
                .await?;
        }
        Ok(())
    }

    /// A page of `room`'s history, for a user who may read it.
    pub async fn history(
        &self,
        user: &User,
        room: &RoomName,
        query: &HistoryQuery,
    ) -> Result<RoomHistory> {
        let access = self.access(user, room).await?;
        access.require_read()?;
        let page = self.inner.store.history(access.room().id, query).await?;
        Ok(RoomHistory {
            room: access.room().name.clone(),
            messages: page.messages,
            has_more: page.has_more,
        })
    }

    /// Who is online in `room` across every process, for a user who may see it.
    pub async fn online(&self, user: &User, room: &RoomName) -> Result<Vec<UserName>> {
        let access = self.access(user, room).await?;
        access.require_see()?;
        Ok(self.inner.online(&access.room().name))
    }

    /// The direct (1:1) room of `user` and `other`, created on first use (a new one costs a
    /// room creation, and so does asking for a name that is nobody's).
    pub async fn direct(&self, user: &User, other: &UserName) -> Result<Room> {
        let store = &self.inner.store;
        if user.is_guest {
            return Err(guest_refused("direct chats are for accounts, not guests"));
        }
        if other == &user.username {
            return Err(EngineError::refused(
                ErrorCode::InvalidField,
                "a direct room needs another user",
            ));
        }
        let other = match store.user_by_name(other).await {
            Ok(other) if other.is_guest => {
                return Err(guest_refused("direct chats are for accounts, not guests"));
            }
            Ok(other) => Some(other),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        // Opening an existing direct room is free. A new one, and a name that is nobody's,
        // draw on the room-creation budget before the answer says which it was: asking for
        // name after name tells at most a burst of them whether they exist.
        if let Some(other) = &other
            && let Ok(key) = DirectKey::new(user.id, other.id)
        {
            match store.room_by_name(&key.room_name()).await {
                Ok(room) => return Ok(room),
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.inner.take_token(user, Budget::RoomCreations)?;
        match other {
            Some(other) => Ok(store.direct_room(user.id, other.id).await?),
            None => Err(StoreError::NotFound("user").into()),
        }
    }

    /// For the Django tutorial's endpoint: creates `room` (public, owned by `user`) if it
    /// does not exist, as the tutorial's "any name works" expects. An existing room keeps
    /// its rules; the join that follows checks them.
    pub(crate) async fn open_tutorial_room(&self, user: &User, room: &RoomName) -> Result<()> {
        if room.is_direct() {
            return Ok(());
        }
        let store = &self.inner.store;
        match store.room_by_name(room).await {
            Err(StoreError::NotFound(_)) => {
                if user.is_guest {
                    return Err(guest_refused(
                        "guests may not create rooms; join one that exists",
                    ));
                }
                self.inner.take_token(user, Budget::RoomCreations)?;
                let new = NewRoom {
                    name: room.clone(),
                    kind: RoomKind::Public,
                    creator: user.id,
                    topic: Topic::default(),
                };
                match store.create_room(&new).await {
                    Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    /// Tells every member's sockets to leave `old` (the room's name before a rename).
    async fn kick_members(&self, room: parley_domain::RoomId, old: &RoomName) -> Result<()> {
        for m in self.inner.store.members(room).await? {
            self.kick(m.user_id, old).await;
        }
        Ok(())
    }

    /// Tells `user`'s sockets to leave `room`; a failure is logged (the member can no longer
    /// act in the room anyway once the store says so).
    pub(crate) async fn kick(&self, user: UserId, room: &RoomName) {
        if let Err(e) = self.inner.kick(user, room).await {
            tracing::warn!(error = %e, %room, "could not tell a member's sockets to leave");
        }
    }
}

/// Guests are members of public rooms only, and never owners (an owner manages the room: see
/// `RoomAccess`).
fn guest_member_rule(access: &RoomAccess, member: &User, role: Role) -> Result<()> {
    if !member.is_guest {
        Ok(())
    } else if access.room().kind != RoomKind::Public {
        Err(guest_refused(
            "guests may not be added to private rooms; they join public rooms themselves",
        ))
    } else if role != Role::Member {
        Err(guest_refused(
            "a guest may only be a member, never an owner",
        ))
    } else {
        Ok(())
    }
}
