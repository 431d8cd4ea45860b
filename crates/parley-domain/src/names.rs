//! Validated names and short texts.
//!
//! Rules, chosen so every name is safe in a URL path segment, in a Channels group name
//! (`chat_{room}`: ASCII letters, digits, `-`, `_`, `.`, under 100 characters) and in a log
//! line, and so two names that look alike to a person are the same name:
//!
//! | type | length | characters | normalization |
//! |---|---|---|---|
//! | [`UserName`] | 3–32 | ASCII letters, digits, `_`, `-`, `.`; starts with a letter | lower-cased |
//! | [`RoomName`] | 1–64 | ASCII letters, digits, `_`, `-`, `.`; starts with a letter or digit | lower-cased |
//! | [`Email`] | 3–254 | one `@` with text on both sides, no whitespace or control characters | trimmed |
//! | [`Topic`] | 0–256 characters | no control characters | trimmed |
//! | [`Reason`] | 1–500 characters | no control characters | trimmed |
//! | [`DisplayName`] | 1–64 characters | no control characters | trimmed |
//!
//! Room names beginning with `dm.` are reserved for direct rooms ([`crate::DirectKey`]).

use crate::error::{DomainError, Result};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::str::FromStr;

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The validated text, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }

        /// A string on the wire; its rule is in the type's documentation (`docs/protocol.md`).
        #[cfg(feature = "schema")]
        impl schemars::JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string" })
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A user's login and display handle: 3–32 ASCII letters, digits, `_`, `-`, `.`, starting
/// with a letter; stored lower-case so `Alice` and `alice` are one account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserName(String);

impl UserName {
    /// Shortest allowed name.
    pub const MIN_LEN: usize = 3;
    /// Longest allowed name.
    pub const MAX_LEN: usize = 32;

    /// Validates and normalizes `raw` (surrounding whitespace is not accepted).
    pub fn parse(raw: &str) -> Result<Self> {
        let len = raw.chars().count();
        if len < Self::MIN_LEN {
            return Err(DomainError::InvalidUserName(
                "must be at least 3 characters",
            ));
        }
        if len > Self::MAX_LEN {
            return Err(DomainError::InvalidUserName(
                "must be at most 32 characters",
            ));
        }
        if !raw.chars().all(is_name_char) {
            return Err(DomainError::InvalidUserName(
                "may contain only ASCII letters, digits, '_', '-' and '.'",
            ));
        }
        if !raw.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(DomainError::InvalidUserName("must start with a letter"));
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    /// Validates a new account's name: as [`UserName::parse`], and not starting with
    /// [`UserName::GUEST_PREFIX`], so no account can take (or later claim) a guest's name,
    /// nor with [`UserName::DELETED_PREFIX`] (deleted accounts').
    pub fn parse_account(raw: &str) -> Result<Self> {
        let name = Self::parse(raw)?;
        if name.is_guest_name() {
            return Err(DomainError::InvalidUserName(
                "names starting with 'guest.' are reserved for guests",
            ));
        }
        if name.is_deleted_name() {
            return Err(DomainError::InvalidUserName(
                "names starting with 'deleted.' are reserved for deleted accounts",
            ));
        }
        Ok(name)
    }

    /// True for the name a deleted account is left with ([`UserName::deleted`]).
    pub fn is_deleted_name(&self) -> bool {
        self.0.starts_with(Self::DELETED_PREFIX)
    }

    /// The name an account deleted by staff is left with, `deleted.{id}`: its messages stay
    /// and show this as their author.
    pub fn deleted(id: crate::UserId) -> Self {
        Self(format!("{}{}", Self::DELETED_PREFIX, id.get()))
    }

    /// True for a name in the guests' reserved space.
    pub fn is_guest_name(&self) -> bool {
        self.0.starts_with(Self::GUEST_PREFIX)
    }

    /// The user name of a guest who chose `display` (a valid name of at most
    /// [`UserName::GUEST_DISPLAY_MAX`] characters) with a random `tag` of
    /// [`UserName::GUEST_TAG_LEN`] characters from the name alphabet that keeps two guests
    /// choosing the same name apart: `guest.{display}.{tag}`.
    pub fn guest(display: &UserName, tag: &str) -> Result<Self> {
        if display.0.chars().count() > Self::GUEST_DISPLAY_MAX {
            return Err(DomainError::InvalidUserName(
                "a guest's name must be at most 20 characters",
            ));
        }
        if tag.chars().count() != Self::GUEST_TAG_LEN || !tag.chars().all(is_name_char) {
            return Err(DomainError::InvalidUserName(
                "a guest tag must be 5 name characters",
            ));
        }
        Self::parse(&format!("{}{}.{tag}", Self::GUEST_PREFIX, display.0))
    }

    /// The name a guest chose (the part between the prefix and the tag); `None` for an
    /// account's name.
    pub fn guest_display(&self) -> Option<&str> {
        let rest = self.0.strip_prefix(Self::GUEST_PREFIX)?;
        rest.rsplit_once('.').map(|(display, _)| display)
    }
}
string_newtype!(UserName);

impl UserName {
    /// Prefix reserved for guests' user names; registration refuses it.
    pub const GUEST_PREFIX: &'static str = "guest.";
    /// Prefix reserved for deleted accounts' names (`deleted.{id}`); registration refuses it.
    pub const DELETED_PREFIX: &'static str = "deleted.";
    /// Longest name a guest may choose (the prefix and tag take the other 12 characters).
    pub const GUEST_DISPLAY_MAX: usize = 20;
    /// Length of the random tag that ends a guest's user name.
    pub const GUEST_TAG_LEN: usize = 5;
}

/// A room's name: 1–64 ASCII letters, digits, `_`, `-`, `.`, starting with a letter or
/// digit, lower-cased. Names starting with `dm.` belong to direct rooms.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoomName(String);

impl RoomName {
    /// Longest allowed name (so `chat_{name}` stays a valid Channels group name).
    pub const MAX_LEN: usize = 64;
    /// Prefix reserved for direct rooms.
    pub const DIRECT_PREFIX: &'static str = "dm.";

    /// Validates and normalizes any room name, direct ones included.
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.is_empty() {
            return Err(DomainError::InvalidRoomName("must not be empty"));
        }
        if raw.chars().count() > Self::MAX_LEN {
            return Err(DomainError::InvalidRoomName(
                "must be at most 64 characters",
            ));
        }
        if !raw.chars().all(is_name_char) {
            return Err(DomainError::InvalidRoomName(
                "may contain only ASCII letters, digits, '_', '-' and '.'",
            ));
        }
        if !raw.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(DomainError::InvalidRoomName(
                "must start with a letter or digit",
            ));
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    /// Validates a name for a new group room: as [`RoomName::parse`], and not a direct-room name.
    pub fn parse_group(raw: &str) -> Result<Self> {
        let name = Self::parse(raw)?;
        if name.is_direct() {
            return Err(DomainError::InvalidRoomName(
                "names starting with 'dm.' are reserved for direct rooms",
            ));
        }
        Ok(name)
    }

    /// True for the name of a direct (1:1) room.
    pub fn is_direct(&self) -> bool {
        self.0.starts_with(Self::DIRECT_PREFIX)
    }

    /// Builds a name already known to be valid (used by [`crate::DirectKey`]).
    pub(crate) fn from_valid(name: String) -> Self {
        Self(name)
    }
}
string_newtype!(RoomName);

/// An e-mail address, checked only for shape (one `@`, text on both sides, no spaces).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Validates `raw` after trimming surrounding whitespace.
    pub fn parse(raw: &str) -> Result<Self> {
        let s = raw.trim();
        if s.len() < 3 || s.len() > 254 {
            return Err(DomainError::InvalidEmail("must be 3 to 254 characters"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(DomainError::InvalidEmail(
                "must not contain spaces or control characters",
            ));
        }
        match s.split_once('@') {
            Some((local, domain))
                if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
            {
                Ok(Self(s.to_owned()))
            }
            _ => Err(DomainError::InvalidEmail("must look like name@domain")),
        }
    }
}
string_newtype!(Email);

/// A room's topic line: at most 256 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Topic(String);

impl Topic {
    /// Longest allowed topic, in characters.
    pub const MAX_CHARS: usize = 256;

    /// Validates `raw` after trimming surrounding whitespace.
    pub fn parse(raw: &str) -> Result<Self> {
        let s = raw.trim();
        if s.chars().count() > Self::MAX_CHARS {
            return Err(DomainError::InvalidTopic("must be at most 256 characters"));
        }
        if s.chars().any(char::is_control) {
            return Err(DomainError::InvalidTopic(
                "must not contain control characters",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}
string_newtype!(Topic);

/// The name a person shows beside their user name (issue 15): 1–64 characters after
/// trimming, no control characters, any script. Unlike a [`UserName`] it is not unique and
/// not lower-cased: it is for people to read, never to address a user. An empty text means
/// "no display name" and is refused here; callers clear it with `null` / `""` instead.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DisplayName(String);

impl DisplayName {
    /// Longest allowed display name, in characters.
    pub const MAX_CHARS: usize = 64;

    /// Validates `raw` after trimming surrounding whitespace.
    pub fn parse(raw: &str) -> Result<Self> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(DomainError::InvalidDisplayName("must not be empty"));
        }
        if s.chars().count() > Self::MAX_CHARS {
            return Err(DomainError::InvalidDisplayName(
                "must be at most 64 characters",
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(DomainError::InvalidDisplayName(
                "must not contain control characters",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// Like [`DisplayName::parse`], but an empty (or all-blank) text is no display name
    /// (`None`): how a request clears it.
    pub fn parse_optional(raw: &str) -> Result<Option<Self>> {
        if raw.trim().is_empty() {
            Ok(None)
        } else {
            Self::parse(raw).map(Some)
        }
    }
}
string_newtype!(DisplayName);

/// Why staff or a room owner did something (a ban, a deactivation), as kept in the audit
/// log: 1–500 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reason(String);

impl Reason {
    /// Longest allowed reason, in characters.
    pub const MAX_CHARS: usize = 500;

    /// Validates `raw` after trimming surrounding whitespace.
    pub fn parse(raw: &str) -> Result<Self> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(DomainError::InvalidReason("must not be empty"));
        }
        if s.chars().count() > Self::MAX_CHARS {
            return Err(DomainError::InvalidReason("must be at most 500 characters"));
        }
        if s.chars().any(char::is_control) {
            return Err(DomainError::InvalidReason(
                "must not contain control characters",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}
string_newtype!(Reason);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_short_single_lines() {
        assert_eq!(Reason::parse("  spam ").unwrap().as_str(), "spam");
        assert!(Reason::parse("   ").is_err());
        assert!(Reason::parse("two\nlines").is_err());
        assert!(Reason::parse(&"x".repeat(Reason::MAX_CHARS)).is_ok());
        assert!(Reason::parse(&"x".repeat(Reason::MAX_CHARS + 1)).is_err());
    }

    #[test]
    fn user_names_follow_the_rules() {
        assert_eq!(UserName::parse("Alice_1").unwrap().as_str(), "alice_1");
        for bad in [
            "",
            "ab",
            "1abc",
            "_abc",
            "has space",
            "émile",
            "a".repeat(33).as_str(),
            "bob\0",
        ] {
            assert!(UserName::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(UserName::parse(&"a".repeat(32)).is_ok());
    }

    #[test]
    fn guest_names_live_in_a_space_accounts_cannot_register() {
        let display = UserName::parse("Anonymous").unwrap();
        let guest = UserName::guest(&display, "a1b2c").unwrap();
        assert_eq!(guest.as_str(), "guest.anonymous.a1b2c");
        assert!(guest.is_guest_name());
        assert_eq!(guest.guest_display(), Some("anonymous"));
        // The longest display name still fits.
        let longest = UserName::parse(&"g".repeat(UserName::GUEST_DISPLAY_MAX)).unwrap();
        assert!(UserName::guest(&longest, "zzzzz").is_ok());
        let too_long = UserName::parse(&"g".repeat(UserName::GUEST_DISPLAY_MAX + 1)).unwrap();
        assert!(UserName::guest(&too_long, "zzzzz").is_err());
        assert!(UserName::guest(&display, "abc").is_err());
        assert!(UserName::guest(&display, "ab/cd").is_err());
        // Accounts may not take the prefix, in any case.
        for reserved in ["guest.anonymous.a1b2c", "Guest.x", "GUEST.anything"] {
            assert!(UserName::parse_account(reserved).is_err(), "{reserved}");
        }
        for fine in ["guest", "guests", "guest_1", "guest-x", "alice"] {
            let name = UserName::parse_account(fine).unwrap();
            assert!(!name.is_guest_name());
            assert_eq!(name.guest_display(), None);
        }
    }

    #[test]
    fn room_names_follow_the_rules() {
        assert_eq!(RoomName::parse("Lobby").unwrap().as_str(), "lobby");
        assert!(RoomName::parse("42").is_ok());
        for bad in ["", "-x", ".x", "a b", "a/b", "ü", &"r".repeat(65)] {
            assert!(RoomName::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(RoomName::parse("dm.1.2").unwrap().is_direct());
        assert!(RoomName::parse_group("dm.1.2").is_err());
        assert!(RoomName::parse_group("dmz").is_ok());
    }

    #[test]
    fn names_deserialize_through_validation() {
        let ok: std::result::Result<RoomName, _> = serde_json::from_str("\"General\"");
        assert_eq!(ok.unwrap().as_str(), "general");
        let bad: std::result::Result<UserName, _> = serde_json::from_str("\"x\"");
        assert!(bad.is_err());
    }

    #[test]
    fn emails_and_topics() {
        assert!(Email::parse(" a@b.c ").is_ok());
        for bad in ["a", "@b", "a@", "a b@c", "a@b@c"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(Topic::parse("  hello ").unwrap().as_str(), "hello");
        assert!(Topic::parse("line\nbreak").is_err());
        assert!(Topic::parse(&"t".repeat(257)).is_err());
    }
}
