//! The auth crate's one error type. Every rejection has its own variant so the transport can
//! answer precisely (and tests can check each one).

use parley_domain::protocol::ErrorCode;
use parley_store::StoreError;

/// Why an auth operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The configuration is unusable (e.g. an HS256 secret shorter than 32 bytes, a bad PEM).
    #[error("auth configuration: {0}")]
    Config(String),
    /// The token's `exp` has passed.
    #[error("token expired")]
    Expired,
    /// Not a valid token: malformed, bad signature, wrong key, `alg: none`, another
    /// algorithm than configured, tampered payload, missing claims.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// An access token where a refresh token was expected, or the reverse.
    #[error("wrong token type: expected a {expected} token")]
    WrongTokenType {
        /// What the operation needed.
        expected: crate::TokenType,
    },
    /// The refresh token was revoked (logged out, already rotated, or its family revoked
    /// after a reuse).
    #[error("token revoked")]
    Revoked,
    /// The token's user no longer exists.
    #[error("the token's user does not exist")]
    UnknownUser,
    /// The account was deactivated by staff: no login, refresh or token is accepted.
    #[error("this account is deactivated")]
    AccountDisabled,
    /// Wrong user name or password (deliberately not saying which).
    #[error("invalid user name or password")]
    InvalidCredentials,
    /// The password breaks a rule.
    #[error("password rejected: {0}")]
    WeakPassword(&'static str),
    /// Registration with a name already taken.
    #[error("user name is taken")]
    UsernameTaken,
    /// A guest sign-in under a name staff have banned.
    #[error("this guest name is banned")]
    GuestNameBanned,
    /// A malformed input (e.g. an invalid user name or email at registration).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A display name that breaks the rules of [`parley_domain::DisplayName`].
    #[error("{0}")]
    InvalidDisplayName(String),
    /// `PATCH /api/me` with an e-mail address another account uses.
    #[error("another account uses this e-mail address")]
    EmailTaken,
    /// Deleting an account without a password needs a fresh sign-in: an access token
    /// issued in the last [`crate::Auth::FRESH_SIGN_IN_SECS`] seconds.
    #[error("sign in again (within the last 5 minutes) to do this")]
    StaleSignIn,
    /// No OpenID Connect provider of this name is configured.
    #[error("no sign-in provider named {0:?}")]
    UnknownProvider(String),
    /// An OpenID Connect provider could not be reached, or answered with something unusable
    /// (its discovery document, keys or token endpoint): try again later.
    #[error("sign-in provider unavailable: {0}")]
    ProviderUnavailable(String),
    /// The store failed; `StoreError::Unavailable` means "try again later".
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else (a failed hashing task, an unsignable token).
    #[error("internal auth error: {0}")]
    Internal(String),
}

impl AuthError {
    /// The wire code a client sees for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Expired => ErrorCode::TokenExpired,
            Self::InvalidToken(_) => ErrorCode::TokenInvalid,
            Self::WrongTokenType { .. } => ErrorCode::WrongTokenType,
            Self::Revoked => ErrorCode::TokenRevoked,
            Self::UnknownUser => ErrorCode::Unauthorized,
            Self::AccountDisabled => ErrorCode::AccountDisabled,
            Self::InvalidCredentials => ErrorCode::InvalidCredentials,
            Self::WeakPassword(_) => ErrorCode::WeakPassword,
            Self::Invalid(_) => ErrorCode::InvalidField,
            Self::UsernameTaken => ErrorCode::UsernameTaken,
            Self::GuestNameBanned => ErrorCode::GuestNotAllowed,
            Self::UnknownProvider(_) => ErrorCode::NotFound,
            Self::InvalidDisplayName(_) => ErrorCode::InvalidDisplayName,
            Self::EmailTaken => ErrorCode::EmailTaken,
            Self::StaleSignIn => ErrorCode::Forbidden,
            Self::ProviderUnavailable(_) => ErrorCode::ProviderUnavailable,
            Self::Store(e) => e.code(),
            Self::Config(_) | Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// `Result` with [`AuthError`].
pub type Result<T, E = AuthError> = std::result::Result<T, E>;
