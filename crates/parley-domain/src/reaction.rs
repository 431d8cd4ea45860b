//! Replies and reactions: what they add to a [`crate::Message`] record (issue 17).
//!
//! A message that answers another carries a [`ReplyPreview`] of the original; a message
//! that people reacted to carries one [`ReactionSummary`] per emoji. Both fields are left out
//! of a message's JSON when empty, so a plain message costs nothing more to encode.

use crate::error::{DomainError, Result};
use crate::ids::MessageId;
use crate::names::UserName;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// A reaction: a short string of emoji or symbol characters.
///
/// The rule: 1 to [`Emoji::MAX_CHARS`] characters (Unicode scalar values, so a flag, a
/// skin-tone or a ZWJ sequence fits) and at most [`Emoji::MAX_BYTES`] bytes, none of them
/// ASCII, a letter or digit of any script, whitespace or a control character. Joiners and
/// variation selectors (format characters) are allowed. The server does not check that the
/// text is a *known* emoji: `★` or `✓` are fine reactions too.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Emoji(String);

impl Emoji {
    /// Most characters in one reaction.
    pub const MAX_CHARS: usize = 8;
    /// Most bytes in one reaction (UTF-8).
    pub const MAX_BYTES: usize = 32;

    /// Validates `raw`.
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.is_empty() {
            return Err(DomainError::InvalidEmoji("must not be empty"));
        }
        if raw.len() > Self::MAX_BYTES || raw.chars().count() > Self::MAX_CHARS {
            return Err(DomainError::InvalidEmoji(
                "must be at most 8 characters (32 bytes)",
            ));
        }
        if raw
            .chars()
            .any(|c| c.is_ascii() || c.is_alphanumeric() || c.is_whitespace() || c.is_control())
        {
            return Err(DomainError::InvalidEmoji(
                "may contain only emoji and symbol characters (no ASCII, letters, digits, spaces or control characters)",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Emoji {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Emoji {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One emoji's reactions on a message: how many people reacted with it, and who.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReactionSummary {
    /// The reaction.
    pub emoji: Emoji,
    /// How many users reacted with it.
    pub count: u32,
    /// Who, oldest reaction first; at most [`ReactionSummary::MAX_USERS`] names (`count` is
    /// exact even when the list stops short).
    pub users: Vec<UserName>,
}

impl ReactionSummary {
    /// Most names listed per emoji.
    pub const MAX_USERS: usize = 50;
}

/// What a reply shows of the message it answers. Computed when the reply is sent (in its
/// `message` frame) and again whenever history is read, so a deleted original reads as
/// `deleted` there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplyPreview {
    /// The original message's id.
    pub id: MessageId,
    /// Its author; `null` when the original no longer exists (its author's account was
    /// deleted, and their messages with it).
    pub sender: Option<UserName>,
    /// Its first [`ReplyPreview::EXCERPT_CHARS`] characters (empty when deleted).
    pub excerpt: String,
    /// The original was deleted (or no longer exists).
    pub deleted: bool,
}

impl ReplyPreview {
    /// Characters of the original kept in `excerpt`.
    pub const EXCERPT_CHARS: usize = 100;

    /// A preview of `id` before the original is known (the store fills it in).
    pub fn pending(id: MessageId) -> Self {
        Self {
            id,
            sender: None,
            excerpt: String::new(),
            deleted: true,
        }
    }

    /// The preview of an original message: its author, the start of its body, deleted or not.
    pub fn of(id: MessageId, sender: UserName, body: &str, deleted: bool) -> Self {
        let excerpt = if deleted {
            String::new()
        } else {
            match body.char_indices().nth(Self::EXCERPT_CHARS) {
                Some((cut, _)) => body[..cut].to_owned(),
                None => body.to_owned(),
            }
        };
        Self {
            id,
            sender: Some(sender),
            excerpt,
            deleted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_rule() {
        for ok in ["👍", "❤️", "🎉", "👩‍💻", "🇫🇷", "👍🏽", "★", "✓"] {
            assert!(Emoji::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            ":+1:",
            "1",
            "👍 ",
            " ",
            "\u{7}",
            "é",
            "字",
            "<",
            "👍👍👍👍👍👍👍👍👍",
        ] {
            assert!(Emoji::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn excerpts_cut_on_characters() {
        let body = "é".repeat(150);
        let p = ReplyPreview::of(MessageId(1), UserName::parse("ann").unwrap(), &body, false);
        assert_eq!(p.excerpt.chars().count(), 100);
        let gone = ReplyPreview::of(MessageId(1), UserName::parse("ann").unwrap(), "x", true);
        assert!(gone.deleted && gone.excerpt.is_empty());
    }
}
