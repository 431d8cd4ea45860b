//! Room moderation by a room's owners and staff: bans, mutes and read-only rooms (the rules
//! are in [`crate::RoomAccess`]; this is who may set them and what follows on open sockets).
//! Every action is recorded in the audit log by the method that performs it.
//!
//! What follows, on every process sharing the layer: a ban sends the banned user's sockets
//! the same "leave this room" a removal does (they answer `left`); a mute, an unmute, a role
//! change and a read-only switch send the user (for a switch: every member) a standing
//! change that their joined sockets apply to what they may post.

use crate::access::RoomAccess;
use crate::engine::{Engine, Inner};
use crate::error::{EngineError, Result};
use crate::events::{self, StandingChange};
use crate::rooms::Rooms;
use parley_domain::protocol::{Deleted, ErrorCode, ServerFrame};
use parley_domain::{
    AuditAction, AuditEntry, AuditTarget, MessageId, Mute, Reason, Role, Room, RoomBan, RoomKind,
    RoomMute, RoomName, Timestamp, User, UserId, UserName,
};
use parley_layer::ChannelName;
use parley_store::StoreError;
use std::sync::Arc;
use std::time::Duration;

/// The longest mute with an end: a year. Longer is refused (`invalid_field`); a mute
/// without an end lasts until lifted.
pub const MAX_MUTE: Duration = Duration::from_secs(365 * 24 * 3600);

impl Inner {
    /// Records an owner's or staff member's action (see [`Engine::audit`]).
    pub(crate) async fn audit(
        self: &Arc<Self>,
        actor: &User,
        action: AuditAction,
        target: AuditTarget,
        reason: Option<&Reason>,
    ) -> Result<AuditEntry> {
        let engine = Engine {
            inner: Arc::clone(self),
        };
        engine.audit(actor, action, target, reason).await
    }

    /// Deletes message `id` of `room` as `user`, leaving a tombstone: the one rule for the
    /// socket's `delete` and the REST route. `manager` says `user` manages the room (an owner
    /// or staff: anyone's message); otherwise only the author (the store checks it:
    /// `forbidden`). A deletion of someone else's message is recorded in the audit log. The
    /// room's sockets hear `deleted` (all but `origin`, the deleting socket, which gets the
    /// returned frame as its answer).
    pub(crate) async fn delete_message(
        self: &Arc<Self>,
        user: &User,
        room: &RoomName,
        id: MessageId,
        manager: bool,
        origin: Option<&ChannelName>,
    ) -> Result<ServerFrame> {
        let message = self.store.delete_message_as(id, user.id, manager).await?;
        if message.sender_id != user.id {
            let target = AuditTarget::member(room, &message.sender)
                .with_detail(message.id.get().to_string());
            self.audit(user, AuditAction::DeleteMessage, target, None)
                .await?;
        }
        let frame = ServerFrame::Deleted(Deleted {
            room: room.clone(),
            message_id: message.id,
            deleted_at: message.deleted_at.unwrap_or_else(Timestamp::now),
            reference: None,
        });
        self.broadcast_event(room, &frame, origin).await;
        Ok(frame)
    }

    /// Tells `user`'s sockets, on every process, that their standing in `room` changed; a
    /// failure is logged (the store holds the truth: the next join reads it).
    pub(crate) async fn tell_standing(
        &self,
        user: UserId,
        room: &RoomName,
        change: StandingChange,
    ) {
        let sent = match self.groups.user(user) {
            Ok(group) => self
                .layer
                .group_send(&group, events::standing(room, change))
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, %room, "could not tell a member's sockets of a moderation change");
        }
    }
}

fn cannot_moderate_self() -> EngineError {
    EngineError::refused(ErrorCode::InvalidField, "you cannot ban or mute yourself")
}

fn owners_are_not_moderated() -> EngineError {
    EngineError::refused(
        ErrorCode::Conflict,
        "owners are not banned or muted: make them a member first",
    )
}

impl Rooms {
    /// The checks every moderation action starts with: `user` manages `room` (owner or
    /// staff), it is a group room, and `target` exists and is not `user`. The room and the
    /// target.
    async fn moderation(
        &self,
        user: &User,
        room: &RoomName,
        target: &UserName,
    ) -> Result<(RoomAccess, User)> {
        let access = self.access(user, room).await?;
        access.require_manage()?;
        if access.room().kind == RoomKind::Direct {
            return Err(EngineError::refused(
                ErrorCode::InvalidField,
                "a direct room has no moderation: leave it or block the user",
            ));
        }
        let target = self.inner.store.user_by_name(target).await?;
        if target.id == user.id {
            return Err(cannot_moderate_self());
        }
        Ok((access, target))
    }

    /// Bans `target` from `room` (owner or staff), with an optional reason: they stop being
    /// a member, their sockets leave the room on every process (`left`), and they may not
    /// join, read, post in or be added to it until unbanned (`banned`). Works on a
    /// non-member too (a public room's would-be joiner). An owner must be made a member
    /// first (`conflict`). Banning again is no error (the first ban's reason stays).
    pub async fn ban(
        &self,
        user: &User,
        room: &RoomName,
        target: &UserName,
        reason: Option<&Reason>,
    ) -> Result<()> {
        let (access, target) = self.moderation(user, room, target).await?;
        let store = &self.inner.store;
        let room = access.room();
        if store.membership(room.id, target.id).await?.map(|m| m.role) == Some(Role::Owner) {
            return Err(owners_are_not_moderated());
        }
        store
            .ban_from_room(room.id, target.id, user.id, reason)
            .await?;
        self.kick(target.id, &room.name).await;
        let audit = AuditTarget::member(&room.name, &target.username);
        self.inner
            .audit(user, AuditAction::BanFromRoom, audit, reason)
            .await?;
        Ok(())
    }

    /// Lifts `target`'s ban from `room` (owner or staff; `not_found` if they were not
    /// banned). They may join again; they are not made a member.
    pub async fn unban(&self, user: &User, room: &RoomName, target: &UserName) -> Result<()> {
        let (access, target) = self.moderation(user, room, target).await?;
        let room = access.room();
        if !self.inner.store.unban_from_room(room.id, target.id).await? {
            return Err(EngineError::refused(
                ErrorCode::NotFound,
                format!("{} is not banned from room {}", target.username, room.name),
            ));
        }
        let audit = AuditTarget::member(&room.name, &target.username);
        self.inner
            .audit(user, AuditAction::UnbanFromRoom, audit, None)
            .await?;
        Ok(())
    }

    /// The users banned from `room`, newest first (owner or staff).
    pub async fn bans(&self, user: &User, room: &RoomName) -> Result<Vec<RoomBan>> {
        let access = self.access(user, room).await?;
        access.require_manage()?;
        Ok(self.inner.store.room_bans(access.room().id).await?)
    }

    /// Mutes `target` in `room` (owner or staff) for `duration` (`None`: until unmuted), with
    /// an optional reason: they read as before but may not post or edit there (`muted`),
    /// from now on, on every process. Replaces an earlier mute. An owner must be made a
    /// member first (`conflict`); a duration of zero or past [`MAX_MUTE`] is
    /// `invalid_field`.
    pub async fn mute(
        &self,
        user: &User,
        room: &RoomName,
        target: &UserName,
        duration: Option<Duration>,
        reason: Option<&Reason>,
    ) -> Result<Mute> {
        let until = match duration {
            None => None,
            Some(d) if d.is_zero() || d > MAX_MUTE => {
                return Err(EngineError::refused(
                    ErrorCode::InvalidField,
                    format!(
                        "a mute lasts from 1 second to {} seconds, or until lifted",
                        MAX_MUTE.as_secs()
                    ),
                ));
            }
            Some(d) => {
                let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                Some(Timestamp(Timestamp::now().millis().saturating_add(ms)))
            }
        };
        let (access, target) = self.moderation(user, room, target).await?;
        let store = &self.inner.store;
        let room = access.room();
        if store.membership(room.id, target.id).await?.map(|m| m.role) == Some(Role::Owner) {
            return Err(owners_are_not_moderated());
        }
        let mute = store
            .mute_in_room(room.id, target.id, until, user.id, reason)
            .await?;
        let change = StandingChange {
            mute: Some(Some(mute)),
            ..StandingChange::default()
        };
        self.inner
            .tell_standing(target.id, &room.name, change)
            .await;
        let mut audit = AuditTarget::member(&room.name, &target.username);
        if let Some(until) = until {
            audit = audit.with_detail(format!("until {}", until.millis()));
        }
        self.inner
            .audit(user, AuditAction::MuteInRoom, audit, reason)
            .await?;
        Ok(mute)
    }

    /// Lifts `target`'s mute in `room` (owner or staff; `not_found` if they were not muted,
    /// or their mute had ended).
    pub async fn unmute(&self, user: &User, room: &RoomName, target: &UserName) -> Result<()> {
        let (access, target) = self.moderation(user, room, target).await?;
        let room = access.room();
        if !self.inner.store.unmute_in_room(room.id, target.id).await? {
            return Err(EngineError::refused(
                ErrorCode::NotFound,
                format!("{} is not muted in room {}", target.username, room.name),
            ));
        }
        let change = StandingChange {
            mute: Some(None),
            ..StandingChange::default()
        };
        self.inner
            .tell_standing(target.id, &room.name, change)
            .await;
        let audit = AuditTarget::member(&room.name, &target.username);
        self.inner
            .audit(user, AuditAction::UnmuteInRoom, audit, None)
            .await?;
        Ok(())
    }

    /// Deletes message `id` of `room` (REST): its author may (where they may read the room),
    /// and so may the room's owners and staff, anyone's (recorded in the audit log). Others:
    /// `forbidden` (`not_member`/`banned` if they may not see the room). A message that is
    /// not in `room` is `not_found`; one deleted already is `conflict`. The room's sockets
    /// hear `deleted`, on every process.
    pub async fn delete_message(&self, user: &User, room: &RoomName, id: MessageId) -> Result<()> {
        let access = self.access(user, room).await?;
        access.require_see()?;
        let message = self.inner.store.message_by_id(id).await?;
        if message.room_id != access.room().id {
            return Err(StoreError::NotFound("message").into());
        }
        if message.sender_id == user.id {
            access.require_read()?;
        } else {
            access.require_manage()?;
        }
        self.inner
            .delete_message(user, &access.room().name, id, access.can_manage(), None)
            .await?;
        Ok(())
    }

    /// The users muted in `room` now, newest first (owner or staff).
    pub async fn mutes(&self, user: &User, room: &RoomName) -> Result<Vec<RoomMute>> {
        let access = self.access(user, room).await?;
        access.require_manage()?;
        Ok(self
            .inner
            .store
            .room_mutes(access.room().id, Timestamp::now())
            .await?)
    }

    /// Makes a managed group room read-only (only owners and staff post) or writable again;
    /// every member's sockets apply it at once, on every process. Recorded when it changes.
    pub(crate) async fn switch_read_only(
        &self,
        user: &User,
        access: &RoomAccess,
        read_only: bool,
    ) -> Result<Room> {
        let room = access.room();
        if room.kind == RoomKind::Direct {
            return Err(EngineError::refused(
                ErrorCode::InvalidField,
                "a direct room cannot be made read-only",
            ));
        }
        if room.read_only == read_only {
            return Ok(room.clone());
        }
        let store = &self.inner.store;
        let changed = store.set_read_only(room.id, read_only).await?;
        let change = StandingChange {
            read_only: Some(read_only),
            ..StandingChange::default()
        };
        // Per member rather than on the room's event group: a socket joining right now
        // subscribes to the room after reading the flag, but its user group is older.
        for m in store.members(room.id).await? {
            self.inner
                .tell_standing(m.user_id, &room.name, change)
                .await;
        }
        let audit = AuditTarget::room(&room.name).with_detail(if read_only { "on" } else { "off" });
        self.inner
            .audit(user, AuditAction::SetReadOnly, audit, None)
            .await?;
        Ok(changed)
    }
}
