//! Channel and group names, validated as Django Channels validates them.
//!
//! - A group name: 1–99 ASCII letters, digits, `-`, `_`, `.` (Channels' `group_name_regex`
//!   and `MAX_NAME_LENGTH` of 100, which a name must stay under).
//! - A channel name: the same, optionally followed by `!` and a suffix of the same characters
//!   (a *process-specific* channel, `specific.<process>!<suffix>`).

use crate::error::{LayerError, Result};
use std::fmt;
use std::sync::Arc;

/// Names must be shorter than this, as in Channels.
pub const MAX_NAME_LENGTH: usize = 100;

fn valid_part(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn check_length(kind: &'static str, raw: &str) -> Result<()> {
    if raw.is_empty() {
        return Err(LayerError::InvalidName {
            kind,
            name: raw.to_owned(),
            reason: "must not be empty",
        });
    }
    if raw.len() >= MAX_NAME_LENGTH {
        return Err(LayerError::InvalidName {
            kind,
            name: raw.to_owned(),
            reason: "must be shorter than 100 characters",
        });
    }
    Ok(())
}

/// A channel (one consumer's mailbox) name. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(Arc<str>);

impl ChannelName {
    /// Validates `raw`.
    pub fn parse(raw: &str) -> Result<Self> {
        check_length("channel", raw)?;
        let (head, tail) = match raw.split_once('!') {
            Some((h, t)) => (h, Some(t)),
            None => (raw, None),
        };
        if head.is_empty() || !valid_part(head) || !tail.is_none_or(valid_part) {
            return Err(LayerError::InvalidName {
                kind: "channel",
                name: raw.to_owned(),
                reason: "only ASCII letters, digits, '-', '_' and '.', optionally followed by '!' and a suffix",
            });
        }
        Ok(Self(Arc::from(raw)))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For a process-specific name `specific.abc!xyz`, the part up to and including `!`
    /// (`specific.abc!`), which routes it to its process.
    pub fn non_local_prefix(&self) -> Option<&str> {
        self.0.find('!').map(|i| &self.0[..=i])
    }
}

/// A group (named set of channels) name. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupName(Arc<str>);

impl GroupName {
    /// Validates `raw`.
    pub fn parse(raw: &str) -> Result<Self> {
        check_length("group", raw)?;
        if !valid_part(raw) {
            return Err(LayerError::InvalidName {
                kind: "group",
                name: raw.to_owned(),
                reason: "only ASCII letters, digits, '-', '_' and '.'",
            });
        }
        Ok(Self(Arc::from(raw)))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! name_impls {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }
        impl std::str::FromStr for $t {
            type Err = LayerError;
            fn from_str(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}
name_impls!(ChannelName);
name_impls!(GroupName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names() {
        assert!(ChannelName::parse("chat.abc-1_2").is_ok());
        let specific = ChannelName::parse("specific.p1!x9").unwrap();
        assert_eq!(specific.non_local_prefix(), Some("specific.p1!"));
        assert!(ChannelName::parse("specific.p1!").is_ok());
        for bad in ["", "a b", "a!b!c", "!x", "ü", &"c".repeat(100)] {
            assert!(ChannelName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ChannelName::parse(&"c".repeat(99)).is_ok());
    }

    #[test]
    fn group_names() {
        assert!(GroupName::parse("chat_lobby").is_ok());
        for bad in ["", "a!b", "a b", &"g".repeat(100)] {
            assert!(GroupName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
