//! Short client-chosen tokens carried by frames: the request reference and the call id.

use crate::error::{DomainError, Result};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// A client-chosen token attached to a request (`"ref"`) and echoed in the reply or error
/// frame, so a client with several requests in flight knows which one was answered.
///
/// 1–64 characters, no control characters. The server never interprets it; it is checked
/// only so a hostile client cannot make the server echo (and log) unbounded text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct FrameRef(String);

impl FrameRef {
    /// Longest allowed reference, in characters.
    pub const MAX_CHARS: usize = TOKEN_MAX_CHARS;

    /// Validates `raw`.
    pub fn parse(raw: &str) -> Result<Self> {
        check_token(raw)
            .map_err(|reason| DomainError::InvalidToken {
                what: "ref",
                reason,
            })
            .map(|()| Self(raw.to_owned()))
    }

    /// The reference text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Identifies one WebRTC call in `signal` frames so a client taking part in several calls
/// can route offers, answers and candidates. 1–64 characters, no control characters
/// (a UUID fits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct CallId(String);

impl CallId {
    /// Longest allowed id, in characters.
    pub const MAX_CHARS: usize = TOKEN_MAX_CHARS;

    /// Validates `raw`.
    pub fn parse(raw: &str) -> Result<Self> {
        check_token(raw)
            .map_err(|reason| DomainError::InvalidToken {
                what: "call id",
                reason,
            })
            .map(|()| Self(raw.to_owned()))
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The one length limit of both tokens (the error text below spells it out).
const TOKEN_MAX_CHARS: usize = 64;

fn check_token(raw: &str) -> std::result::Result<(), &'static str> {
    if raw.is_empty() {
        return Err("must not be empty");
    }
    // Byte length bounds the character count from above: count only when it could matter.
    if raw.len() > TOKEN_MAX_CHARS && raw.chars().count() > TOKEN_MAX_CHARS {
        return Err("must be at most 64 characters");
    }
    if raw.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(())
}

macro_rules! token_impls {
    ($name:ident) => {
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

        impl std::str::FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self> {
                Self::parse(s)
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
token_impls!(FrameRef);
token_impls!(CallId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bounded() {
        assert!(FrameRef::parse("r-1").is_ok());
        assert!(FrameRef::parse(&"é".repeat(64)).is_ok());
        assert!(FrameRef::parse(&"é".repeat(65)).is_err());
        assert!(FrameRef::parse("").is_err());
        assert!(FrameRef::parse("a\nb").is_err());
        assert!(CallId::parse("6f1c2b0e-6a4e-4e59-9d6c-1f5e2f8c9a10").is_ok());
        assert!(CallId::parse(&"c".repeat(65)).is_err());
    }
}
