//! Calls across networks (issue 17): the ICE servers a browser's `RTCPeerConnection` uses,
//! and TURN credentials minted per user under the TURN REST convention that coturn
//! implements (`use-auth-secret` with `static-auth-secret`): the username is
//! `<expiry unix seconds>:<user id>` and the password is
//! `base64(HMAC-SHA1(shared secret, username))`. The TURN server recomputes the password
//! from the username and its copy of the secret, and refuses it once the expiry has passed;
//! Parley and the TURN server share nothing else.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use parley_domain::User;
use serde::Serialize;
use sha1::Sha1;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The TURN shared secret. Never printed (`Debug` hides it).
#[derive(Clone, PartialEq, Eq)]
pub struct TurnSecret(String);

impl TurnSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }
}

impl std::fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TurnSecret(***)")
    }
}

/// Which STUN and TURN servers clients use, and how TURN credentials are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceConfig {
    /// `stun:`, `turn:` and `turns:` URLs (RFC 7064/7065), e.g. `stun:stun.example.org:3478`,
    /// `turn:turn.example.org:3478?transport=udp`. Empty (the default): no ICE servers, so
    /// calls connect only when both sides reach each other directly (the same network).
    pub servers: Vec<String>,
    /// The secret shared with the TURN server (coturn's `static-auth-secret`). Without it
    /// TURN URLs are served without credentials (useful only for a TURN server that needs
    /// none).
    pub turn_secret: Option<TurnSecret>,
    /// How long a minted TURN credential is valid.
    pub turn_ttl: Duration,
}

impl Default for IceConfig {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            turn_secret: None,
            turn_ttl: Duration::from_secs(Self::DEFAULT_TURN_TTL_SECS),
        }
    }
}

/// One entry of `RTCConfiguration.iceServers`, as a browser takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IceServer {
    /// The server's URLs.
    pub urls: Vec<String>,
    /// TURN only: the minted username, `<expiry unix seconds>:<user id>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN only: `base64(HMAC-SHA1(secret, username))`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// What `GET /api/config` tells a signed-in client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClientConfig {
    /// For `new RTCPeerConnection({ iceServers })`.
    pub ice_servers: Vec<IceServer>,
    /// When the TURN credentials expire (unix seconds); `null` when none were minted. Ask
    /// again before then (the web client asks before every call).
    pub ice_expires_at: Option<u64>,
}

impl IceConfig {
    /// The default lifetime of a TURN credential: a day, as coturn's documentation suggests.
    pub const DEFAULT_TURN_TTL_SECS: u64 = 86_400;

    /// Checks the URLs and the lifetime, naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        for url in &self.servers {
            let scheme = url.split(':').next().unwrap_or("");
            if !matches!(scheme, "stun" | "stuns" | "turn" | "turns")
                || url.len() <= scheme.len() + 1
                || url.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(format!(
                    "ice_servers: {url:?} is not a stun:, stuns:, turn: or turns: URL"
                ));
            }
        }
        if self.turn_ttl.is_zero() {
            return Err("turn_ttl_secs: must be at least 1".to_owned());
        }
        if self.turn_secret.as_ref().is_some_and(|s| s.0.is_empty()) {
            return Err("turn_secret: must not be empty".to_owned());
        }
        Ok(())
    }

    /// The ICE servers for `user` at `now`: STUN URLs as they are, TURN URLs with a credential
    /// minted for this user (when a secret is configured).
    pub fn client_config(&self, user: &User, now: SystemTime) -> ClientConfig {
        let is_turn = |u: &&String| u.starts_with("turn:") || u.starts_with("turns:");
        let stun: Vec<String> = self
            .servers
            .iter()
            .filter(|u| !is_turn(u))
            .cloned()
            .collect();
        let turn: Vec<String> = self.servers.iter().filter(is_turn).cloned().collect();
        let mut ice_servers = Vec::new();
        let mut ice_expires_at = None;
        if !stun.is_empty() {
            ice_servers.push(IceServer {
                urls: stun,
                username: None,
                credential: None,
            });
        }
        if !turn.is_empty() {
            let (username, credential) = match &self.turn_secret {
                Some(secret) => {
                    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
                    let expiry = now.saturating_add(self.turn_ttl.as_secs());
                    ice_expires_at = Some(expiry);
                    let username = format!("{expiry}:{}", user.id.get());
                    let credential = turn_credential(secret, &username);
                    (Some(username), Some(credential))
                }
                None => (None, None),
            };
            ice_servers.push(IceServer {
                urls: turn,
                username,
                credential,
            });
        }
        ClientConfig {
            ice_servers,
            ice_expires_at,
        }
    }
}

/// `base64(HMAC-SHA1(secret, username))`: the password coturn expects for `username`.
pub fn turn_credential(secret: &TurnSecret, username: &str) -> String {
    // HMAC takes a key of any length, so this cannot fail; an empty MAC would only make the
    // TURN server refuse the credential.
    match Hmac::<Sha1>::new_from_slice(secret.0.as_bytes()) {
        Ok(mut mac) => {
            mac.update(username.as_bytes());
            STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_matches_rfc_2202s_hmac_sha1_vector() {
        // RFC 2202, test case 2: key "Jefe", data "what do ya want for nothing?",
        // HMAC-SHA1 effcdf6ae5eb2fa2d27416d5f184df9c259a7c79, here in base64.
        assert_eq!(
            turn_credential(&TurnSecret::new("Jefe"), "what do ya want for nothing?"),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
    }

    #[test]
    fn bad_urls_are_refused() {
        for bad in ["http://x", "stun:", "turn:a b", "x"] {
            let c = IceConfig {
                servers: vec![bad.to_owned()],
                ..IceConfig::default()
            };
            assert!(c.validate().is_err(), "{bad}");
        }
    }
}
