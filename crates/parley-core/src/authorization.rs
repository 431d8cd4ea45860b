//! How long an open connection stays authorized: as long as the access token it was opened
//! (or last renewed) with. Shortly before the end the client is warned (`expiring`); a
//! `renew` frame with a fresh access token of the same user extends it; otherwise the socket
//! closes (4003). Signing out (logout of the token's login, and later a password change or a
//! deactivation) ends the user's sockets at once, on every process, through the user's group.

use parley_auth::Claims;
use parley_domain::Timestamp;
use std::time::Duration;
use tokio::time::Instant;

/// What a connection was authorized with: until when, and by which login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// When the authorization ends (the access token's expiry).
    pub expires_at: Timestamp,
    /// The login the token descends from (every token rotated from one login shares it):
    /// logging out of it ends this connection. `None`: only a sign-out of every login does.
    pub family: Option<String>,
}

impl Grant {
    /// The grant of a verified access token.
    pub fn from_claims(claims: &Claims) -> Self {
        Self {
            expires_at: claims.expires_at(),
            family: Some(claims.family.clone()),
        }
    }
}

/// A session's current grant and its timers (monotonic clock).
#[derive(Debug)]
pub(crate) struct Authorization {
    pub(crate) grant: Grant,
    /// When the authorization ends.
    pub(crate) ends: Instant,
    /// When the client is warned.
    pub(crate) warn: Instant,
    /// Whether it was.
    pub(crate) warned: bool,
}

impl Authorization {
    /// The timers for `grant`, warning `warning` before the end (or halfway, for a grant
    /// shorter than twice that).
    pub(crate) fn new(grant: Grant, warning: Duration) -> Self {
        let left_ms = grant
            .expires_at
            .millis()
            .saturating_sub(Timestamp::now().millis());
        let left = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
        let now = Instant::now();
        let ends = now + left;
        let warn = ends - warning.min(left / 2);
        Self {
            grant,
            ends,
            warn,
            warned: false,
        }
    }

    /// The next time something is due: the warning, then the end.
    pub(crate) fn deadline(&self) -> Instant {
        if self.warned { self.ends } else { self.warn }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(in_secs: i64) -> Grant {
        Grant {
            expires_at: Timestamp::now().plus_seconds(in_secs),
            family: None,
        }
    }

    #[tokio::test]
    async fn the_warning_comes_a_minute_early_or_halfway() {
        let long = Authorization::new(grant(300), Duration::from_secs(60));
        let before = long.ends - long.warn;
        assert!(
            before >= Duration::from_secs(59) && before <= Duration::from_secs(60),
            "{before:?}"
        );
        assert_eq!(long.deadline(), long.warn);
        let short = Authorization::new(grant(30), Duration::from_secs(60));
        let before = short.ends - short.warn;
        assert!(
            before >= Duration::from_secs(14) && before <= Duration::from_secs(15),
            "{before:?}"
        );
        // An expired grant ends now.
        let gone = Authorization::new(grant(-5), Duration::from_secs(60));
        assert!(gone.ends <= Instant::now());
    }
}
