//! Room kinds, membership roles and the canonical key of a direct room.

use crate::error::{DomainError, Result};
use crate::ids::UserId;
use crate::names::RoomName;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Who may see and join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RoomKind {
    /// Listed to everyone; anyone may join.
    Public,
    /// Listed to and joinable by its members only; members are added by the owner.
    Private,
    /// A 1:1 conversation of exactly two users, keyed by [`DirectKey`].
    Direct,
}

impl RoomKind {
    /// The stored and wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
            Self::Direct => "direct",
        }
    }
}

impl FromStr for RoomKind {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "public" => Ok(Self::Public),
            "private" => Ok(Self::Private),
            "direct" => Ok(Self::Direct),
            other => Err(DomainError::UnknownVariant {
                what: "room kind",
                value: other.to_owned(),
            }),
        }
    }
}

impl fmt::Display for RoomKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A member's role in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Created the room (or was made owner): may rename, change the topic, delete, manage members.
    Owner,
    /// An ordinary member.
    Member,
}

impl Role {
    /// The stored and wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Member => "member",
        }
    }
}

impl FromStr for Role {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "owner" => Ok(Self::Owner),
            "member" => Ok(Self::Member),
            other => Err(DomainError::UnknownVariant {
                what: "role",
                value: other.to_owned(),
            }),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The canonical key of the direct room of two users: the smaller id first, so
/// `alice`+`bob` and `bob`+`alice` name the same room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DirectKey {
    low: UserId,
    high: UserId,
}

impl DirectKey {
    /// The key of the two users' direct room, in either order. A user has no room with themself.
    pub fn new(a: UserId, b: UserId) -> Result<Self> {
        match a.cmp(&b) {
            std::cmp::Ordering::Less => Ok(Self { low: a, high: b }),
            std::cmp::Ordering::Greater => Ok(Self { low: b, high: a }),
            std::cmp::Ordering::Equal => Err(DomainError::DirectWithSelf),
        }
    }

    /// The member with the smaller id.
    pub const fn low(self) -> UserId {
        self.low
    }

    /// The member with the larger id.
    pub const fn high(self) -> UserId {
        self.high
    }

    /// True when `user` is one of the two members.
    pub fn contains(self, user: UserId) -> bool {
        self.low == user || self.high == user
    }

    /// The other member, if `user` is one of the two.
    pub fn other(self, user: UserId) -> Option<UserId> {
        if user == self.low {
            Some(self.high)
        } else if user == self.high {
            Some(self.low)
        } else {
            None
        }
    }

    /// The room's name: `dm.{low}.{high}`. Ids, not user names, so renaming a user never
    /// renames the room and the name stays within [`RoomName`]'s rules.
    pub fn room_name(self) -> RoomName {
        RoomName::from_valid(format!(
            "{}{}.{}",
            RoomName::DIRECT_PREFIX,
            self.low,
            self.high
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_key_is_order_independent() {
        let ab = DirectKey::new(UserId(3), UserId(9)).unwrap();
        let ba = DirectKey::new(UserId(9), UserId(3)).unwrap();
        assert_eq!(ab, ba);
        assert_eq!(ab.room_name().as_str(), "dm.3.9");
        assert_eq!(
            RoomName::parse(ab.room_name().as_str()).unwrap(),
            ab.room_name()
        );
        assert_eq!(ab.other(UserId(3)), Some(UserId(9)));
        assert_eq!(ab.other(UserId(4)), None);
        assert_eq!(
            DirectKey::new(UserId(1), UserId(1)),
            Err(DomainError::DirectWithSelf)
        );
    }

    #[test]
    fn kinds_and_roles_round_trip() {
        for k in [RoomKind::Public, RoomKind::Private, RoomKind::Direct] {
            assert_eq!(k.as_str().parse::<RoomKind>().unwrap(), k);
        }
        for r in [Role::Owner, Role::Member] {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("secret".parse::<RoomKind>().is_err());
    }
}
