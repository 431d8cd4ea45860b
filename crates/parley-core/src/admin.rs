//! Administration: what staff (or the operator's command line) may do to accounts and to
//! the server's run-time settings. Every rule is here; the REST routes under `/api/admin`
//! and `parley-server user ...` only parse and call.
//!
//! The rules:
//! - Only staff ([`Actor::Staff`] with `is_staff`; `forbidden` otherwise) or the command line
//!   ([`Actor::Cli`]: whoever can run the binary against the database) act.
//! - They act on accounts only: guests and deleted accounts are `not_found` here.
//! - Staff cannot demote, deactivate or delete themselves (`conflict`), so a server always
//!   keeps the staff member acting; the command line can do anything.
//! - A deactivation refuses new logins and refreshes (`account_disabled`) and makes every
//!   token of the account useless at once (each is checked at the user lookup every REST
//!   request, socket handshake, `renew` and refresh already makes; no query is added to the
//!   socket's per-message path), and closes the account's sockets on every process sharing
//!   the channel layer with close code 4005. A reactivation does not bring old tokens back.
//! - A password reset by staff refuses every token issued before it and closes the
//!   account's sockets (4004, signed out); the user logs in with the new password.
//! - A deleted account keeps its messages: it is renamed `deleted.{id}` (the author they
//!   then show), leaves every room and loses its e-mail, password, linked sign-ins and staff
//!   flag; its sockets close (4005).
//! - No room is left without an owner by an account going away: when an account that is
//!   the last active owner of a group room is deactivated or deleted, the room's
//!   longest-standing active member (an account, not a guest) is made an owner (recorded as a
//!   `change_role` with detail `owner (hand-over)`; their sockets apply it at once). A
//!   deactivated owner keeps their role (a reactivation finds the room as it left it, now
//!   with a co-owner). A room with no such member stays without one: staff moderate every
//!   group room anyway.
//! - Guests can be turned off at run time (stored, so every process sees it): the `guests`
//!   setting is the upper bound, the stored switch can only turn them off below it.
//! - Every change is recorded in the audit log, with the reason given, if any.

use crate::engine::{Engine, require_staff};
use crate::error::{EngineError, Result};
use crate::events;
use parley_auth::Password;
use parley_domain::protocol::ErrorCode;
use parley_domain::{
    AuditAction, AuditEntry, AuditTarget, Reason, Role, RoomKind, RoomName, Timestamp, User,
    UserId, UserName,
};
use parley_store::{StoreError, UserQuery};
use serde::Serialize;

/// The most accounts one page of the staff user list returns.
pub const USER_PAGE_MAX: i64 = 200;
/// The page size of the staff user list when none is asked for.
pub const USER_PAGE_DEFAULT: i64 = 50;
/// The actor name audit entries made by the command line carry (with no actor id).
pub const CLI_ACTOR: &str = "cli";
/// The run-time setting that turns guests off below the `guests` setting.
const GUESTS_SETTING: &str = "guests";

/// Who performs an administrative action.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// A signed-in user, who must be staff.
    Staff(&'a User),
    /// The operator's command line (`parley-server user ...`): trusted, as whoever runs it
    /// can open the database anyway. Audited as [`CLI_ACTOR`].
    Cli,
}

impl Actor<'_> {
    fn check(self) -> Result<()> {
        match self {
            Self::Staff(user) => require_staff(user),
            Self::Cli => Ok(()),
        }
    }

    fn is(self, target: &User) -> bool {
        matches!(self, Self::Staff(user) if user.id == target.id)
    }
}

/// A page of accounts, in name order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserPage {
    /// The accounts (no guests, no deleted accounts).
    pub users: Vec<User>,
    /// The `after` of the next page; none (`null`) on the last.
    pub next: Option<UserName>,
}

/// A room an account belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserRoom {
    /// The room.
    pub name: RoomName,
    /// Public, private or direct.
    pub kind: RoomKind,
    /// The account's role there.
    pub role: Role,
    /// When the account joined.
    pub joined_at: Timestamp,
}

/// An external (OpenID Connect) sign-in linked to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkedSignIn {
    /// The provider's issuer URL.
    pub issuer: String,
    /// The account's id at that provider.
    pub subject: String,
    /// When it was linked (the first sign-in).
    pub linked_at: Timestamp,
}

/// One account as staff see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserDetails {
    /// The account (`is_staff`, `is_active`, `last_login`, ...).
    pub user: User,
    /// The rooms it belongs to, with its role in each, by name.
    pub rooms: Vec<UserRoom>,
    /// Its linked external sign-ins.
    pub linked_sign_ins: Vec<LinkedSignIn>,
}

/// Whether guests may sign in now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GuestSwitch {
    /// Guests may sign in and connect now.
    pub enabled: bool,
    /// The server's `guests` setting: the upper bound (off, staff cannot turn guests on).
    pub allowed: bool,
}

fn no_such_account(name: &UserName) -> EngineError {
    EngineError::refused(ErrorCode::NotFound, format!("no account named {name}"))
}

fn not_yourself(what: &str) -> EngineError {
    EngineError::refused(
        ErrorCode::Conflict,
        format!("staff cannot {what} themselves"),
    )
}

impl Engine {
    /// A page of accounts in name order (staff): `q` keeps those whose name or e-mail
    /// contains it (case-insensitive), `after` continues a listing, `limit` is clamped to
    /// 1..=[`USER_PAGE_MAX`] (default [`USER_PAGE_DEFAULT`]).
    pub async fn admin_users(
        &self,
        actor: Actor<'_>,
        q: Option<String>,
        after: Option<UserName>,
        limit: Option<i64>,
    ) -> Result<UserPage> {
        actor.check()?;
        let limit = limit.unwrap_or(USER_PAGE_DEFAULT).clamp(1, USER_PAGE_MAX);
        let mut users = self
            .inner
            .store
            .list_users(&UserQuery {
                q,
                after,
                limit: limit + 1,
            })
            .await?;
        let more = users.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        users.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next = more
            .then(|| users.last().map(|u| u.username.clone()))
            .flatten();
        Ok(UserPage { users, next })
    }

    /// The account named `name` (staff): `not_found` for a guest, a deleted account or no
    /// one.
    async fn account(&self, name: &UserName) -> Result<User> {
        match self.inner.store.user_by_name(name).await {
            Ok(user) if !user.is_guest && !user.username.is_deleted_name() => Ok(user),
            Ok(_) | Err(StoreError::NotFound(_)) => Err(no_such_account(name)),
            Err(e) => Err(e.into()),
        }
    }

    /// One account with its rooms (and role in each) and linked sign-ins (staff).
    pub async fn admin_user(&self, actor: Actor<'_>, name: &UserName) -> Result<UserDetails> {
        actor.check()?;
        let user = self.account(name).await?;
        let store = &self.inner.store;
        let rooms = store
            .user_rooms(user.id)
            .await?
            .into_iter()
            .map(|r| UserRoom {
                name: r.name,
                kind: r.kind,
                role: r.role,
                joined_at: r.joined_at,
            })
            .collect();
        let linked_sign_ins = store
            .linked_identities(user.id)
            .await?
            .into_iter()
            .map(|l| LinkedSignIn {
                issuer: l.issuer,
                subject: l.subject,
                linked_at: l.linked_at,
            })
            .collect();
        Ok(UserDetails {
            user,
            rooms,
            linked_sign_ins,
        })
    }

    /// Makes `name` staff, or takes staff rights away (`staff` false). Staff cannot demote
    /// themselves (`conflict`). The user's open sockets apply it at once, on every process
    /// sharing the layer (managing rooms, posting in read-only ones, deleting others'
    /// messages). Recorded when it changes something.
    pub async fn set_staff(
        &self,
        actor: Actor<'_>,
        name: &UserName,
        staff: bool,
        reason: Option<&Reason>,
    ) -> Result<User> {
        actor.check()?;
        let user = self.account(name).await?;
        if !staff && actor.is(&user) {
            return Err(not_yourself("demote"));
        }
        if user.is_staff == staff {
            return Ok(user);
        }
        let user = self.inner.store.set_staff(user.id, staff).await?;
        self.tell_staff(user.id, staff).await;
        let action = if staff {
            AuditAction::PromoteStaff
        } else {
            AuditAction::DemoteStaff
        };
        self.audit_as(actor, action, AuditTarget::user(name), reason)
            .await?;
        Ok(user)
    }

    /// Deactivates `name` (`active` false) or reactivates it. A deactivation refuses new
    /// logins and refreshes (`account_disabled`), makes every token of the account useless
    /// (for good: a reactivation does not bring them back) and closes its sockets on every
    /// process (4005). Staff cannot deactivate themselves (`conflict`). Recorded when it
    /// changes something.
    pub async fn set_active(
        &self,
        actor: Actor<'_>,
        name: &UserName,
        active: bool,
        reason: Option<&Reason>,
    ) -> Result<User> {
        actor.check()?;
        let user = self.account(name).await?;
        if !active && actor.is(&user) {
            return Err(not_yourself("deactivate"));
        }
        if user.is_active == active {
            return Ok(user);
        }
        let user = self.inner.store.set_active(user.id, active).await?;
        let action = if active {
            AuditAction::ReactivateUser
        } else {
            self.close_disabled(user.id).await?;
            self.hand_over_rooms(actor, &user).await?;
            AuditAction::DeactivateUser
        };
        self.audit_as(actor, action, AuditTarget::user(name), reason)
            .await?;
        Ok(user)
    }

    /// Sets a new password for `name` (rules apply: `weak_password`). Every token issued
    /// before is refused from now on and the account's sockets close on every process
    /// (4004, signed out). Needs [`Engine::use_auth`].
    pub async fn reset_password(
        &self,
        actor: Actor<'_>,
        name: &UserName,
        password: &Password,
        reason: Option<&Reason>,
    ) -> Result<User> {
        actor.check()?;
        let auth = self.inner.auth.get().ok_or_else(|| {
            EngineError::Config("Engine::reset_password needs Engine::use_auth".to_owned())
        })?;
        let user = self.account(name).await?;
        let user = auth.reset_password(&user, password).await?;
        // As for a deactivation: stored already; a layer outage's re-check closes what this
        // message could not reach.
        if let Err(e) = self.sign_out(user.id, None).await {
            tracing::warn!(error = %e, "could not sign a reset account's sockets out now: the re-check after the layer outage will");
        }
        self.audit_as(
            actor,
            AuditAction::ResetPassword,
            AuditTarget::user(name),
            reason,
        )
        .await?;
        Ok(user)
    }

    /// Deletes the account `name` but keeps its messages: it is renamed `deleted.{id}` (the
    /// author its messages show from then on), leaves every room, loses its e-mail,
    /// password, linked sign-ins and staff flag, every token of it is refused and its
    /// sockets close on every process (4005). Rooms it created stay. Staff cannot delete
    /// themselves (`conflict`). Returns what is left of the account.
    pub async fn delete_account(
        &self,
        actor: Actor<'_>,
        name: &UserName,
        reason: Option<&Reason>,
    ) -> Result<User> {
        actor.check()?;
        let user = self.account(name).await?;
        if actor.is(&user) {
            return Err(not_yourself("delete"));
        }
        // Before the erasure: it ends the account's memberships, and with them the record of
        // which rooms it owned.
        self.hand_over_rooms(actor, &user).await?;
        let gone = self.inner.store.erase_user(user.id).await?;
        self.close_disabled(user.id).await?;
        self.audit_as(
            actor,
            AuditAction::DeleteUser,
            AuditTarget::user(name),
            reason,
        )
        .await?;
        Ok(gone)
    }

    /// Whether guests may sign in and connect now: the `guests` setting, unless staff
    /// turned them off at run time ([`Engine::set_guests`]). One read of the store.
    pub async fn guests_enabled(&self) -> Result<bool> {
        if !self.inner.config.guests.enabled {
            return Ok(false);
        }
        Ok(self.inner.store.setting(GUESTS_SETTING).await?.as_deref() != Some("off"))
    }

    /// Whether guests may sign in now, and the setting bounding it (staff).
    pub async fn guest_switch(&self, actor: Actor<'_>) -> Result<GuestSwitch> {
        actor.check()?;
        Ok(GuestSwitch {
            enabled: self.guests_enabled().await?,
            allowed: self.inner.config.guests.enabled,
        })
    }

    /// Turns guests on or off at run time, for every process sharing the database (staff).
    /// The `guests` setting is the upper bound: while it is off, guests stay off (turning
    /// them on is `forbidden`). Turning them off closes every guest's socket on every
    /// process (4005); their tokens are refused from then on.
    pub async fn set_guests(
        &self,
        actor: Actor<'_>,
        enabled: bool,
        reason: Option<&Reason>,
    ) -> Result<GuestSwitch> {
        actor.check()?;
        if enabled && !self.inner.config.guests.enabled {
            return Err(EngineError::refused(
                ErrorCode::Forbidden,
                "guests are off in this server's settings (guests.enabled): turn them on there",
            ));
        }
        let store = &self.inner.store;
        store
            .set_setting(GUESTS_SETTING, if enabled { "on" } else { "off" })
            .await?;
        if !enabled {
            for guest in store.guest_ids().await? {
                self.close_disabled(guest).await?;
            }
        }
        let target = AuditTarget::default().with_detail(if enabled { "on" } else { "off" });
        self.audit_as(actor, AuditAction::SetGuests, target, reason)
            .await?;
        self.guest_switch(actor).await
    }

    /// Makes the longest-standing active member an owner of every group room `leaving` is
    /// the last active owner of (see the module documentation).
    async fn hand_over_rooms(&self, actor: Actor<'_>, leaving: &User) -> Result<()> {
        let store = &self.inner.store;
        for owned in store.user_rooms(leaving.id).await? {
            if owned.role != Role::Owner || owned.kind == RoomKind::Direct {
                continue;
            }
            let room = match store.room_by_name(&owned.name).await {
                Ok(room) => room,
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut heir = None;
            let mut owned_still = false;
            // Oldest first: the first eligible member is the longest-standing one.
            for m in store.members(room.id).await? {
                if m.user_id == leaving.id {
                    continue;
                }
                let member = store.user_by_id(m.user_id).await?;
                if !member.is_active || member.is_guest {
                    continue;
                }
                if m.role == Role::Owner {
                    owned_still = true;
                    break;
                }
                if heir.is_none() {
                    heir = Some(member);
                }
            }
            if owned_still {
                continue;
            }
            let Some(heir) = heir else {
                tracing::info!(room = %room.name, "the room's last owner left and no member can take over: staff moderate it");
                continue;
            };
            store.set_role(room.id, heir.id, Role::Owner).await?;
            let change = events::StandingChange {
                owner: Some(true),
                ..events::StandingChange::default()
            };
            self.inner.tell_standing(heir.id, &room.name, change).await;
            let target =
                AuditTarget::member(&room.name, &heir.username).with_detail("owner (hand-over)");
            self.audit_as(actor, AuditAction::ChangeRole, target, None)
                .await?;
        }
        Ok(())
    }

    /// Tells every socket of `user`, on every process, that their staff rights changed (what
    /// they may manage and post follows at once). A failure is logged: the store holds the
    /// truth, and the user's next join or connection reads it.
    async fn tell_staff(&self, user: UserId, staff: bool) {
        let sent = match self.inner.groups.user(user) {
            Ok(group) => self
                .inner
                .layer
                .group_send(&group, events::staff(staff))
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not tell a user's sockets of a staff change");
        }
    }

    /// Closes every socket of `user` on every process with 4005. A layer failure is logged,
    /// not returned: the change is stored (every token is refused already), and a process
    /// that missed the message during a layer outage re-reads the account when the layer is
    /// back (see `outage.rs`).
    pub(crate) async fn close_disabled(&self, user: UserId) -> Result<()> {
        let sent = match self.inner.groups.user(user) {
            Ok(group) => self
                .inner
                .layer
                .group_send(&group, events::disable())
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not close a disabled account's sockets now: the re-check after the layer outage will");
        }
        Ok(())
    }

    /// Records an administrative action: as the staff member, or unattributed as
    /// [`CLI_ACTOR`] for the command line.
    async fn audit_as(
        &self,
        actor: Actor<'_>,
        action: AuditAction,
        target: AuditTarget,
        reason: Option<&Reason>,
    ) -> Result<AuditEntry> {
        match actor {
            Actor::Staff(user) => self.audit(user, action, target, reason).await,
            Actor::Cli => {
                let cli = UserName::parse(CLI_ACTOR)
                    .map_err(|e| EngineError::Config(format!("the cli actor name: {e}")))?;
                let entry = self
                    .inner
                    .store
                    .record_audit_unattributed(&cli, action, &target, reason)
                    .await?;
                tracing::info!(
                    actor = CLI_ACTOR,
                    action = entry.action.as_str(),
                    user = entry.target.user.as_ref().map(|u| u.as_str()),
                    detail = entry.target.detail.as_deref(),
                    "audit"
                );
                Ok(entry)
            }
        }
    }
}
