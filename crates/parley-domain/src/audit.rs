//! The audit log's records: who (staff or a room owner) did what to whom, when and why.
//!
//! Every staff and owner action is recorded once, by the engine, as it happens; the names of
//! actions and target kinds below are the strings stored and shown by `GET /api/admin/audit`.

use crate::ids::{Timestamp, UserId};
use crate::names::{Reason, RoomName, UserName};
use serde::{Deserialize, Serialize};

/// What was done. Stored and sent as its `snake_case` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// A user was made staff.
    PromoteStaff,
    /// A user's staff flag was removed.
    DemoteStaff,
    /// An account was deactivated: no logins, tokens revoked, sockets closed.
    DeactivateUser,
    /// A deactivated account was reactivated.
    ReactivateUser,
    /// Staff set a new password for a user.
    ResetPassword,
    /// An account was deleted.
    DeleteUser,
    /// A guest name was banned.
    BanGuestName,
    /// A guest name's ban was lifted.
    UnbanGuestName,
    /// A member was removed from a room.
    RemoveMember,
    /// A user was banned from a room.
    BanFromRoom,
    /// A user's ban from a room was lifted.
    UnbanFromRoom,
    /// A member was muted in a room.
    MuteInRoom,
    /// A member's mute was lifted.
    UnmuteInRoom,
    /// A member's role changed (owner ↔ member).
    ChangeRole,
    /// A room was made read-only, or writable again.
    SetReadOnly,
    /// Someone else's message was deleted.
    DeleteMessage,
    /// A room was deleted.
    DeleteRoom,
    /// Guests were turned on or off at run time.
    SetGuests,
    /// A room was renamed (`detail`: its old name).
    RenameRoom,
    /// A room's topic changed.
    SetTopic,
    /// A room was made public or private (`detail`: which).
    SetVisibility,
}

impl AuditAction {
    /// The stored name (`promote_staff`, ...), as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PromoteStaff => "promote_staff",
            Self::DemoteStaff => "demote_staff",
            Self::DeactivateUser => "deactivate_user",
            Self::ReactivateUser => "reactivate_user",
            Self::ResetPassword => "reset_password",
            Self::DeleteUser => "delete_user",
            Self::BanGuestName => "ban_guest_name",
            Self::UnbanGuestName => "unban_guest_name",
            Self::RemoveMember => "remove_member",
            Self::BanFromRoom => "ban_from_room",
            Self::UnbanFromRoom => "unban_from_room",
            Self::MuteInRoom => "mute_in_room",
            Self::UnmuteInRoom => "unmute_in_room",
            Self::ChangeRole => "change_role",
            Self::SetReadOnly => "set_read_only",
            Self::DeleteMessage => "delete_message",
            Self::DeleteRoom => "delete_room",
            Self::SetGuests => "set_guests",
            Self::RenameRoom => "rename_room",
            Self::SetTopic => "set_topic",
            Self::SetVisibility => "set_visibility",
        }
    }

    /// Every action, for parsing a stored name back.
    pub const ALL: [Self; 21] = [
        Self::PromoteStaff,
        Self::DemoteStaff,
        Self::DeactivateUser,
        Self::ReactivateUser,
        Self::ResetPassword,
        Self::DeleteUser,
        Self::BanGuestName,
        Self::UnbanGuestName,
        Self::RemoveMember,
        Self::BanFromRoom,
        Self::UnbanFromRoom,
        Self::MuteInRoom,
        Self::UnmuteInRoom,
        Self::ChangeRole,
        Self::SetReadOnly,
        Self::DeleteMessage,
        Self::DeleteRoom,
        Self::SetGuests,
        Self::RenameRoom,
        Self::SetTopic,
        Self::SetVisibility,
    ];

    /// The action stored as `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// What an action was done to. Kept as text, so an entry outlives the user or room it names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditTarget {
    /// A user's name (`user` targets, and the member of a room action).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserName>,
    /// A room's name (room actions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<RoomName>,
    /// Anything else the action names: a message id, a guest name, `on`/`off`, a role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl AuditTarget {
    /// A user.
    pub fn user(user: &UserName) -> Self {
        Self {
            user: Some(user.clone()),
            room: None,
            detail: None,
        }
    }

    /// A room.
    pub fn room(room: &RoomName) -> Self {
        Self {
            user: None,
            room: Some(room.clone()),
            detail: None,
        }
    }

    /// A member of a room.
    pub fn member(room: &RoomName, user: &UserName) -> Self {
        Self {
            user: Some(user.clone()),
            room: Some(room.clone()),
            detail: None,
        }
    }

    /// Adds the detail (a message id, a role, `on`/`off`).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// One recorded staff or owner action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Position in the log; newer entries have larger ids.
    pub id: i64,
    /// Who acted (none once that account is deleted).
    pub actor_id: Option<UserId>,
    /// Who acted, by name (kept when the account is gone).
    pub actor: UserName,
    /// What they did.
    pub action: AuditAction,
    /// To whom or what.
    #[serde(flatten)]
    pub target: AuditTarget,
    /// Why, if they said.
    pub reason: Option<Reason>,
    /// When.
    pub at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_parses_back_from_its_stored_name() {
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(action));
            let json = serde_json::to_value(action).unwrap();
            assert_eq!(json, serde_json::json!(action.as_str()));
        }
        assert_eq!(AuditAction::parse("nope"), None);
    }
}
