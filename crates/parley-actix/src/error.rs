//! The one error type of this crate: every REST failure, mapped once to a status and a
//! `{"error": {"code", "message"}}` body.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use parley_auth::AuthError;
use parley_core::EngineError;
use parley_domain::protocol::ErrorCode;
use parley_store::StoreError;
use std::time::Duration;

/// A failed REST request. The variant picks the status; `code` is the stable string clients
/// match on, `message` is for people.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed or invalid input.
    #[error("{message}")]
    BadRequest {
        /// Machine-readable code (`invalid_json`, `unknown_field`, `invalid_field`, ...).
        code: &'static str,
        /// Human-readable detail.
        message: String,
    },
    /// 401: no valid credentials.
    #[error("{message}")]
    Unauthorized {
        /// `unauthorized`, `invalid_credentials`, `token_expired`, `token_invalid`,
        /// `token_revoked`, `wrong_token_type`.
        code: &'static str,
        /// Human-readable detail.
        message: String,
    },
    /// 403: authenticated but not allowed.
    #[error("{message}")]
    Forbidden {
        /// `forbidden`, `not_member` or `origin_not_allowed`.
        code: &'static str,
        /// Human-readable detail.
        message: String,
    },
    /// 404: no such thing (or not visible to this user).
    #[error("{0}")]
    NotFound(String),
    /// 409: conflicts with the current state (a taken name).
    #[error("{message}")]
    Conflict {
        /// `conflict` or `username_taken`.
        code: &'static str,
        /// Human-readable detail.
        message: String,
    },
    /// 413: the body is larger than the server accepts.
    #[error("request body too large (at most {0} bytes)")]
    TooLarge(usize),
    /// 429: slow down; retry after the given delay.
    #[error("{message}")]
    RateLimited {
        /// Human-readable detail.
        message: String,
        /// Sent as `Retry-After` (whole seconds, at least 1).
        retry_after: Duration,
    },
    /// 503: a backing service is down.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or an unexpected failure; details stay in the log.
    #[error("internal server error")]
    Internal(String),
}

impl ApiError {
    /// A 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A 403 with `code`.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            message: message.into(),
        }
    }

    /// A 401 with `code`.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unauthorized {
            code,
            message: message.into(),
        }
    }

    /// The machine-readable code of the body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Unauthorized { code, .. }
            | Self::Forbidden { code, .. }
            | Self::Conflict { code, .. } => code,
            Self::NotFound(_) => "not_found",
            Self::TooLarge(_) => "too_large",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

/// The JSON body of an error response.
pub(crate) fn error_body(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"error": {"code": code, "message": message}})
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Internal(detail) => tracing::error!(%detail, "internal error"),
            Self::Unavailable(detail) => tracing::warn!(%detail, "service unavailable"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Unauthorized { .. } => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            Self::RateLimited { retry_after, .. } => {
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                response.insert_header((header::RETRY_AFTER, HeaderValue::from(secs.max(1))));
            }
            Self::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from(5u32)));
            }
            _ => {}
        }
        response.json(error_body(self.code(), &self.to_string()))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::NotFound(format!("{what} not found")),
            StoreError::Conflict(m) => Self::Conflict {
                code: "conflict",
                message: m,
            },
            StoreError::Forbidden(m) => Self::forbidden("forbidden", m),
            StoreError::Invalid(m) => Self::bad_request("invalid_field", m),
            StoreError::Unavailable(m) => Self::Unavailable(format!("database unavailable: {m}")),
            StoreError::Internal(m) => Self::Internal(m),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let message = e.to_string();
        match e {
            AuthError::Expired => Self::unauthorized("token_expired", message),
            AuthError::InvalidToken(_) => Self::unauthorized("token_invalid", message),
            AuthError::WrongTokenType { .. } => Self::unauthorized("wrong_token_type", message),
            AuthError::Revoked => Self::unauthorized("token_revoked", message),
            AuthError::UnknownUser => Self::unauthorized("unauthorized", message),
            AuthError::InvalidCredentials => Self::unauthorized("invalid_credentials", message),
            AuthError::WeakPassword(_) => Self::bad_request("weak_password", message),
            AuthError::Invalid(_) => Self::bad_request("invalid_field", message),
            AuthError::UsernameTaken => Self::Conflict {
                code: "username_taken",
                message,
            },
            AuthError::Store(e) => e.into(),
            AuthError::Config(m) | AuthError::Internal(m) => Self::Internal(m),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Store(e) => e.into(),
            EngineError::TooManyConnections(n) => Self::RateLimited {
                message: format!("too many connections for this user (at most {n})"),
                retry_after: Duration::from_secs(5),
            },
            EngineError::ShuttingDown => Self::Unavailable("the server is shutting down".into()),
            other => match other.code() {
                ErrorCode::Unavailable => Self::Unavailable(other.to_string()),
                _ => Self::Internal(other.to_string()),
            },
        }
    }
}

/// `Result` with [`ApiError`].
pub type Result<T, E = ApiError> = std::result::Result<T, E>;
