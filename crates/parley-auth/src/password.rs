//! Passwords: a newtype that never prints, the rules a new password must meet, and bcrypt
//! hashing and verification on tokio's blocking pool (a login storm must not stall the
//! executor that carries WebSocket traffic).

use crate::error::{AuthError, Result};
use parley_domain::UserName;

/// A plain-text password. Its `Debug` prints `Password(***)`, so it never reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Fewest characters accepted.
    pub const MIN_CHARS: usize = 8;
    /// Most bytes accepted: bcrypt only reads the first 72 bytes, so longer passwords are
    /// refused rather than silently truncated (two passwords sharing a 72-byte prefix
    /// would otherwise both open the account).
    pub const MAX_BYTES: usize = 72;

    /// Wraps a password as typed (no trimming: spaces are part of it).
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    /// The password itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Checks the rules for a new password: at least 8 characters, at most 72 bytes, not
    /// only whitespace, and not the user name (case-insensitive).
    pub fn check_rules(&self, username: &UserName) -> Result<()> {
        if self.0.chars().count() < Self::MIN_CHARS {
            return Err(AuthError::WeakPassword("must be at least 8 characters"));
        }
        if self.0.len() > Self::MAX_BYTES {
            return Err(AuthError::WeakPassword("must be at most 72 bytes"));
        }
        if self.0.trim().is_empty() {
            return Err(AuthError::WeakPassword("must not be only spaces"));
        }
        if self.0.eq_ignore_ascii_case(username.as_str())
            || self.0.to_lowercase() == username.as_str()
        {
            return Err(AuthError::WeakPassword("must not be the user name"));
        }
        Ok(())
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Hashes `password` with bcrypt at `cost`, off the async executor.
pub async fn hash_password(password: &Password, cost: u32) -> Result<String> {
    let raw = password.0.clone();
    tokio::task::spawn_blocking(move || bcrypt::hash(raw, cost))
        .await
        .map_err(|e| AuthError::Internal(format!("hashing task failed: {e}")))?
        .map_err(|e| AuthError::Internal(format!("bcrypt: {e}")))
}

/// Checks `password` against a bcrypt `hash` (constant-time comparison inside bcrypt), off
/// the async executor.
pub async fn verify_password(password: &Password, hash: &str) -> Result<bool> {
    let raw = password.0.clone();
    let hash = hash.to_owned();
    tokio::task::spawn_blocking(move || bcrypt::verify(raw, &hash))
        .await
        .map_err(|e| AuthError::Internal(format!("hashing task failed: {e}")))?
        .map_err(|e| AuthError::Internal(format!("bcrypt: {e}")))
}
