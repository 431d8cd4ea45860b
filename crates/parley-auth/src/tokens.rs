//! JWTs: claims, signing and verification. Pure (no store): [`crate::Auth`] adds revocation
//! and user checks on top.

use crate::config::{AuthConfig, SigningKey};
use crate::error::{AuthError, Result};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parley_domain::{Timestamp, User, UserId};
use serde::{Deserialize, Serialize};

/// Which kind of token a JWT is (`token_type` claim, as simplejwt names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// Short-lived; authenticates requests and WebSocket connections.
    Access,
    /// Longer-lived; only buys a new pair at the refresh endpoint.
    Refresh,
}

impl std::fmt::Display for TokenType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
        })
    }
}

/// The claims Parley puts in every token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Unique token id (UUID v4): what revocation records.
    pub jti: String,
    /// The user id, as a string (JWT convention).
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Access or refresh.
    pub token_type: TokenType,
    /// The user's name, so a client can show it without a lookup.
    pub username: String,
    /// The login this token descends from: every pair rotated from one login shares it, so
    /// a reused refresh token can take down the whole family.
    pub family: String,
}

impl Claims {
    /// The user id in `sub`.
    pub fn user_id(&self) -> Result<UserId> {
        self.sub
            .parse::<i64>()
            .map(UserId)
            .map_err(|_| AuthError::InvalidToken("subject is not a user id".to_owned()))
    }

    /// When the token expires.
    pub fn expires_at(&self) -> Timestamp {
        Timestamp(self.exp.saturating_mul(1000))
    }
}

/// What a refresh answers: a new access token, and a new refresh token when refresh tokens
/// rotate (`refresh` is absent when they do not, as with simplejwt's
/// `ROTATE_REFRESH_TOKENS = False`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Refreshed {
    /// The new access token.
    pub access: String,
    /// The new refresh token (rotation on); absent when refresh tokens do not rotate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
}

/// An access and a refresh token, as returned by login and refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenPair {
    /// The access token.
    pub access: String,
    /// The refresh token.
    pub refresh: String,
}

/// Signs and verifies Parley's JWTs with the configured algorithm and key.
#[derive(Clone)]
pub struct TokenService {
    /// The one algorithm accepted: a token claiming any other (including `none`) is invalid.
    algorithm: Algorithm,
    /// Signs.
    encoding: EncodingKey,
    /// Verifies.
    decoding: DecodingKey,
    /// `exp` required and checked, algorithm pinned.
    validation: Validation,
    /// Access token lifetime in seconds.
    access_secs: i64,
    /// Refresh token lifetime in seconds.
    refresh_secs: i64,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("algorithm", &self.algorithm)
            .field("access_secs", &self.access_secs)
            .field("refresh_secs", &self.refresh_secs)
            .finish_non_exhaustive()
    }
}

fn pem_error(what: &str) -> impl Fn(jsonwebtoken::errors::Error) -> AuthError + '_ {
    move |e| AuthError::Config(format!("{what}: {e}"))
}

fn now_secs() -> i64 {
    Timestamp::now().millis() / 1000
}

impl TokenService {
    /// Builds the service. Fails with `Config` for an HS256 secret shorter than 32 bytes, an
    /// unreadable PEM key, or a zero lifetime.
    pub fn new(config: &AuthConfig) -> Result<Self> {
        let (algorithm, encoding, decoding) = match &config.key {
            SigningKey::Hs256 { secret } => {
                if secret.len() < AuthConfig::MIN_SECRET_BYTES {
                    return Err(AuthError::Config(format!(
                        "the HS256 secret must be at least {} bytes (got {})",
                        AuthConfig::MIN_SECRET_BYTES,
                        secret.len()
                    )));
                }
                (
                    Algorithm::HS256,
                    EncodingKey::from_secret(secret),
                    DecodingKey::from_secret(secret),
                )
            }
            SigningKey::Rs256 {
                private_pem,
                public_pem,
            } => (
                Algorithm::RS256,
                EncodingKey::from_rsa_pem(private_pem).map_err(pem_error("RS256 private key"))?,
                DecodingKey::from_rsa_pem(public_pem).map_err(pem_error("RS256 public key"))?,
            ),
            SigningKey::EdDsa {
                private_pem,
                public_pem,
            } => (
                Algorithm::EdDSA,
                EncodingKey::from_ed_pem(private_pem).map_err(pem_error("EdDSA private key"))?,
                DecodingKey::from_ed_pem(public_pem).map_err(pem_error("EdDSA public key"))?,
            ),
        };
        let secs = |d: std::time::Duration, what: &str| -> Result<i64> {
            match i64::try_from(d.as_secs()) {
                Ok(s) if s > 0 => Ok(s),
                _ => Err(AuthError::Config(format!(
                    "the {what} token lifetime must be at least a second"
                ))),
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub", "iat", "jti"]);
        validation.leeway = config.leeway_secs;
        validation.validate_exp = true;
        let service = Self {
            algorithm,
            encoding,
            decoding,
            validation,
            access_secs: secs(config.access_ttl, "access")?,
            refresh_secs: secs(config.refresh_ttl, "refresh")?,
        };
        // Prove the key pair works now, not at the first login.
        let probe =
            service.sign(&service.claims(UserId(0), "probe", TokenType::Access, "probe"))?;
        service
            .verify(&probe, TokenType::Access)
            .map_err(|e| AuthError::Config(format!("keys do not match: {e}")))?;
        Ok(service)
    }

    /// The algorithm tokens are signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Refresh token lifetime in seconds.
    pub fn refresh_secs(&self) -> i64 {
        self.refresh_secs
    }

    /// How long after it was issued an access token stops passing [`TokenService::verify`]:
    /// its lifetime plus the clock leeway, in seconds.
    pub fn access_valid_secs(&self) -> i64 {
        let leeway = i64::try_from(self.validation.leeway).unwrap_or(i64::MAX);
        self.access_secs.saturating_add(leeway)
    }

    fn claims(&self, user: UserId, username: &str, token_type: TokenType, family: &str) -> Claims {
        let iat = now_secs();
        let ttl = match token_type {
            TokenType::Access => self.access_secs,
            TokenType::Refresh => self.refresh_secs,
        };
        Claims {
            jti: uuid::Uuid::new_v4().to_string(),
            sub: user.to_string(),
            exp: iat.saturating_add(ttl),
            iat,
            token_type,
            username: username.to_owned(),
            family: family.to_owned(),
        }
    }

    /// Signs `claims` as they are.
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        jsonwebtoken::encode(&Header::new(self.algorithm), claims, &self.encoding)
            .map_err(|e| AuthError::Internal(format!("cannot sign a token: {e}")))
    }

    /// Issues a fresh access/refresh pair for `user`. `family` continues a rotation chain;
    /// `None` starts a new one (a login).
    pub fn issue(&self, user: &User, family: Option<&str>) -> Result<(TokenPair, Claims)> {
        let family = family.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let access = self.claims(user.id, user.username.as_str(), TokenType::Access, &family);
        let refresh = self.claims(user.id, user.username.as_str(), TokenType::Refresh, &family);
        let pair = TokenPair {
            access: self.sign(&access)?,
            refresh: self.sign(&refresh)?,
        };
        Ok((pair, refresh))
    }

    /// Issues an access token alone, for a guest (who gets no refresh token: when it
    /// expires the guest identity is done with).
    pub fn issue_access(&self, user: &User) -> Result<String> {
        let family = uuid::Uuid::new_v4().to_string();
        self.sign(&self.claims(user.id, user.username.as_str(), TokenType::Access, &family))
    }

    /// Issues an access token of the login `family` (a refresh without rotation).
    pub fn issue_access_in(&self, user: &User, family: &str) -> Result<String> {
        self.sign(&self.claims(user.id, user.username.as_str(), TokenType::Access, family))
    }

    /// Signs a short-lived value of another kind than Parley's tokens (an OpenID Connect
    /// sign-in's state, a one-time login code) with the same key. `value` must carry `aud`
    /// (naming its kind, so one kind is never taken for another or for a Parley token) and
    /// `exp`.
    pub fn sign_value<T: Serialize>(&self, value: &T) -> Result<String> {
        jsonwebtoken::encode(&Header::new(self.algorithm), value, &self.encoding)
            .map_err(|e| AuthError::Internal(format!("cannot sign a value: {e}")))
    }

    /// Verifies a value signed by [`TokenService::sign_value`]: signature, algorithm, `exp`
    /// (no leeway) and `aud` equal to `kind`. `Expired` or `InvalidToken` otherwise.
    pub fn verify_value<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        kind: &str,
    ) -> Result<T> {
        let mut validation = Validation::new(self.algorithm);
        validation.set_required_spec_claims(&["exp", "aud"]);
        validation.set_audience(&[kind]);
        validation.leeway = 0;
        jsonwebtoken::decode::<T>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::InvalidToken(format!("{kind}: {e}")),
            })
    }

    /// Verifies a token's signature, algorithm, expiry and type. `Expired`, `InvalidToken`
    /// or `WrongTokenType` otherwise. Does not consult the store (see [`crate::Auth`]).
    pub fn verify(&self, token: &str, expected: TokenType) -> Result<Claims> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidSignature => AuthError::InvalidToken("bad signature".to_owned()),
                ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidAlgorithmName
                | ErrorKind::MissingAlgorithm => {
                    AuthError::InvalidToken("unexpected signing algorithm".to_owned())
                }
                _ => AuthError::InvalidToken(e.to_string()),
            })?;
        let claims = data.claims;
        if claims.token_type != expected {
            return Err(AuthError::WrongTokenType { expected });
        }
        claims.user_id()?;
        Ok(claims)
    }
}
