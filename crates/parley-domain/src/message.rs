//! Message bodies and client-chosen message ids.

use crate::error::{DomainError, Result};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// A chat message's text: not blank, no NUL (PostgreSQL refuses it in `text`), and at most
/// a configured number of characters ([`MessageBody::DEFAULT_MAX_CHARS`] unless the server
/// says otherwise). The text is kept exactly as sent, whitespace included.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct MessageBody(String);

impl MessageBody {
    /// The default limit, in characters (Unicode scalar values).
    pub const DEFAULT_MAX_CHARS: usize = 4000;

    /// Validates `raw` against the default limit.
    pub fn parse(raw: &str) -> Result<Self> {
        Self::parse_with_limit(raw, Self::DEFAULT_MAX_CHARS)
    }

    /// Validates `raw` against `max_chars`.
    pub fn parse_with_limit(raw: &str, max_chars: usize) -> Result<Self> {
        if raw.trim().is_empty() {
            return Err(DomainError::InvalidBody("must not be empty"));
        }
        if raw.contains('\0') {
            return Err(DomainError::InvalidBody("must not contain NUL characters"));
        }
        // Cheap check first: a string has at least len/4 characters.
        if raw.len() > max_chars {
            let len = raw.chars().count();
            if len > max_chars {
                return Err(DomainError::BodyTooLong {
                    len,
                    max: max_chars,
                });
            }
        }
        Ok(Self(raw.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl<'de> Deserialize<'de> for MessageBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for MessageBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An id the client picks for a message it sends, so that a retry after a lost ack is
/// recognized and answered with the first message instead of stored twice. Unique per
/// sender. 1–64 characters of ASCII letters, digits, `_`, `-`, `.`, `:` (a UUID fits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct ClientMsgId(String);

impl ClientMsgId {
    /// Longest allowed id.
    pub const MAX_LEN: usize = 64;

    /// Validates `raw`.
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(DomainError::InvalidClientId("must be 1 to 64 characters"));
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        {
            return Err(DomainError::InvalidClientId(
                "may contain only ASCII letters, digits, '_', '-', '.' and ':'",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ClientMsgId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ClientMsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_checked() {
        assert_eq!(MessageBody::parse("  hi  ").unwrap().as_str(), "  hi  ");
        assert!(MessageBody::parse("   \n").is_err());
        assert!(MessageBody::parse("a\0b").is_err());
        assert_eq!(
            MessageBody::parse_with_limit("héllo", 4),
            Err(DomainError::BodyTooLong { len: 5, max: 4 })
        );
        // Multi-byte characters count once each.
        assert!(MessageBody::parse_with_limit("ééé", 3).is_ok());
    }

    #[test]
    fn client_ids_are_checked() {
        assert!(ClientMsgId::parse("6f1c2b0e-6a4e-4e59-9d6c-1f5e2f8c9a10").is_ok());
        assert!(ClientMsgId::parse("").is_err());
        assert!(ClientMsgId::parse("has space").is_err());
        assert!(ClientMsgId::parse(&"x".repeat(65)).is_err());
    }
}
