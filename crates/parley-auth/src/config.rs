//! Auth configuration: signing keys, token lifetimes, bcrypt cost.

use std::time::Duration;

/// How tokens are signed and verified.
#[derive(Clone)]
pub enum SigningKey {
    /// HMAC-SHA256 with a shared secret of at least 32 bytes (the default).
    Hs256 {
        /// The secret.
        secret: Vec<u8>,
    },
    /// RSA-SHA256 with a PEM key pair (PKCS#1 or PKCS#8 private key, SPKI public key).
    Rs256 {
        /// PEM private key (signs).
        private_pem: Vec<u8>,
        /// PEM public key (verifies).
        public_pem: Vec<u8>,
    },
    /// Ed25519 with a PEM key pair (PKCS#8 private key, SPKI public key).
    EdDsa {
        /// PEM private key (signs).
        private_pem: Vec<u8>,
        /// PEM public key (verifies).
        public_pem: Vec<u8>,
    },
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Hs256 { .. } => "Hs256(***)",
            Self::Rs256 { .. } => "Rs256(***)",
            Self::EdDsa { .. } => "EdDsa(***)",
        })
    }
}

/// Everything [`crate::Auth`] and [`crate::TokenService`] need.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Signing and verification keys.
    pub key: SigningKey,
    /// Access token lifetime (default 5 minutes, like simplejwt).
    pub access_ttl: Duration,
    /// Refresh token lifetime (default 1 day, like simplejwt).
    pub refresh_ttl: Duration,
    /// bcrypt cost (default 12; tests use 4, the minimum).
    pub bcrypt_cost: u32,
    /// Clock skew tolerated when checking `exp`, in seconds (default 0).
    pub leeway_secs: u64,
    /// When a revoked refresh token is presented again, revoke its whole family (every token
    /// rotated from the same login), assuming it was stolen. Default true.
    pub revoke_family_on_reuse: bool,
    /// Refresh rotates (the default): a refresh revokes the presented refresh token and
    /// answers a new pair. Off (simplejwt's `ROTATE_REFRESH_TOKENS = False`): a refresh
    /// answers a new access token only, and the refresh token stays valid until it expires
    /// or is logged out.
    pub rotate_refresh: bool,
}

impl AuthConfig {
    /// Shortest HS256 secret accepted, in bytes.
    pub const MIN_SECRET_BYTES: usize = 32;

    /// HS256 with `secret` and default lifetimes and cost. The secret's length is checked
    /// when the [`crate::TokenService`] is built.
    pub fn hs256(secret: impl Into<Vec<u8>>) -> Self {
        Self::with_key(SigningKey::Hs256 {
            secret: secret.into(),
        })
    }

    /// `key` with default lifetimes and cost.
    pub fn with_key(key: SigningKey) -> Self {
        Self {
            key,
            access_ttl: Duration::from_secs(5 * 60),
            refresh_ttl: Duration::from_secs(24 * 60 * 60),
            bcrypt_cost: bcrypt::DEFAULT_COST,
            leeway_secs: 0,
            revoke_family_on_reuse: true,
            rotate_refresh: true,
        }
    }
}
