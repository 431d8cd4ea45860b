//! Room moderation records: bans and mutes, as the store keeps them and moderators list them.

use crate::ids::{Timestamp, UserId};
use crate::names::{Reason, UserName};
use serde::{Deserialize, Serialize};

/// A mute of one user in one room: they may read it, not post in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mute {
    /// When it ends by itself; `None`: when it is lifted.
    pub until: Option<Timestamp>,
}

impl Mute {
    /// Whether the mute still holds at `now` (an expired mute holds nothing: no background
    /// job removes it, every reader compares its end with the clock).
    pub fn holds_at(&self, now: Timestamp) -> bool {
        self.until.is_none_or(|until| now < until)
    }
}

/// A user banned from a room, as listed to its owners and staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomBan {
    /// The banned user's id.
    pub user_id: UserId,
    /// The banned user's name.
    pub username: UserName,
    /// Why, if the banner said.
    pub reason: Option<Reason>,
    /// Who banned them (none once that account is deleted).
    pub banned_by: Option<UserName>,
    /// When.
    pub created_at: Timestamp,
}

/// A user muted in a room, as listed to its owners and staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomMute {
    /// The muted user's id.
    pub user_id: UserId,
    /// The muted user's name.
    pub username: UserName,
    /// When the mute ends by itself; none (`null`): when it is lifted.
    pub until: Option<Timestamp>,
    /// Why, if the moderator said.
    pub reason: Option<Reason>,
    /// Who muted them (none once that account is deleted).
    pub muted_by: Option<UserName>,
    /// When.
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mute_holds_until_its_end() {
        let forever = Mute { until: None };
        assert!(forever.holds_at(Timestamp(i64::MAX)));
        let timed = Mute {
            until: Some(Timestamp(1_000)),
        };
        assert!(timed.holds_at(Timestamp(999)));
        assert!(!timed.holds_at(Timestamp(1_000)));
    }
}
