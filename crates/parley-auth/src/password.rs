//! Passwords: a newtype that never prints, the rules a new password must meet, and bcrypt
//! hashing and verification on tokio's blocking pool, a few at a time (a login storm must
//! not stall the executor that carries WebSocket traffic, nor take every core from it).

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

/// How many bcrypt hashes run at once in this process: half the cores, at least one.
///
/// Off the executor is not enough: each hash is ≈ 0.25 s of a core at the default cost, and
/// ten of them at once (one account's failed-login burst, found by `parley-bench hostile`)
/// took both cores of a 2-core server from the threads that carry the WebSockets for over a
/// second (other users' messages 280 ms late). Hashes past the cap wait their turn, so logins
/// slow down under a login storm while chat keeps at least half the machine.
pub fn hashing_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// The permits for [`hashing_concurrency`].
fn hashing_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| tokio::sync::Semaphore::new(hashing_concurrency()))
}

/// Hashes running now, and the most at once (for the test of the cap).
#[cfg(test)]
static RUNNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
#[cfg(test)]
static MOST_RUNNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Runs `work` (a bcrypt call) on tokio's blocking pool once a hashing permit is free; the
/// permit is held until the hash is done, even if the caller stops waiting for it.
async fn on_hashing_pool<T: Send + 'static>(
    work: impl FnOnce() -> std::result::Result<T, bcrypt::BcryptError> + Send + 'static,
) -> Result<T> {
    let permit = hashing_permits()
        .acquire()
        .await
        .map_err(|e| AuthError::Internal(format!("hashing permits closed: {e}")))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        #[cfg(test)]
        {
            use std::sync::atomic::Ordering;
            let n = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
            MOST_RUNNING.fetch_max(n, Ordering::SeqCst);
        }
        let out = work();
        #[cfg(test)]
        RUNNING.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        out
    })
    .await
    .map_err(|e| AuthError::Internal(format!("hashing task failed: {e}")))?
    .map_err(|e| AuthError::Internal(format!("bcrypt: {e}")))
}

/// Hashes `password` with bcrypt at `cost`, off the async executor, at most
/// [`hashing_concurrency`] at once.
pub async fn hash_password(password: &Password, cost: u32) -> Result<String> {
    let raw = password.0.clone();
    on_hashing_pool(move || bcrypt::hash(raw, cost)).await
}

/// Checks `password` against a bcrypt `hash` (constant-time comparison inside bcrypt), off
/// the async executor, at most [`hashing_concurrency`] at once.
pub async fn verify_password(password: &Password, hash: &str) -> Result<bool> {
    let raw = password.0.clone();
    let hash = hash.to_owned();
    on_hashing_pool(move || bcrypt::verify(raw, &hash)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_hashes_run_at_once_than_the_cap() {
        // Sixteen checks at once (cost 8: a few ms each, long enough to overlap when
        // nothing holds them back).
        let hash = bcrypt::hash("right-password", 8).map_err(|e| e.to_string());
        let hash = std::sync::Arc::new(hash.unwrap_or_default());
        let checks: Vec<_> = (0..16)
            .map(|i| {
                let hash = hash.clone();
                tokio::spawn(async move {
                    let password = Password::new(if i % 2 == 0 {
                        "right-password"
                    } else {
                        "wrong"
                    });
                    verify_password(&password, &hash).await
                })
            })
            .collect();
        let mut right = 0;
        for c in checks {
            if matches!(c.await, Ok(Ok(true))) {
                right += 1;
            }
        }
        assert_eq!(right, 8, "every check ran, and gave the right answer");
        let most = MOST_RUNNING.load(std::sync::atomic::Ordering::SeqCst);
        assert!(most >= 1);
        assert!(
            most <= hashing_concurrency(),
            "{most} hashes ran at once, over the cap of {}",
            hashing_concurrency()
        );
    }
}
