//! The one error type of this crate: every REST failure, with the same typed code the socket
//! uses ([`ErrorCode`]), mapped once to a status and a `{"error": {"code", "message"}}` body.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use parley_auth::AuthError;
use parley_core::EngineError;
use parley_domain::protocol::ErrorCode;
use serde::Serialize;
use std::time::Duration;
use utoipa::ToSchema;

/// A failed REST request (or a refused WebSocket handshake). The code picks the status
/// ([`status_of`]); the message is for people.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Refused with a code: bad input, no credentials, not allowed, not found, a conflict.
    #[error("{message}")]
    Refused {
        /// Machine-readable code.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
    },
    /// 429: slow down; retry after the given delay (sent as `Retry-After`).
    #[error("{message}")]
    RateLimited {
        /// Human-readable detail.
        message: String,
        /// Sent as `Retry-After` (whole seconds, at least 1).
        retry_after: Duration,
    },
    /// 503: a backing service is down (the detail is logged, the client gets a generic
    /// message and `Retry-After`).
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or an unexpected failure; details stay in the log.
    #[error("internal server error")]
    Internal(String),
}

/// The HTTP status of each code: the one place codes meet statuses.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        FrameTooLarge | InvalidJson | NotAnObject | MissingType | UnknownType | MissingField
        | InvalidField | UnknownField | InvalidRoomName | BodyTooLong | BinaryNotSupported
        | WeakPassword | InvalidContentType | NotAWebsocket | InvalidDisplayName => {
            StatusCode::BAD_REQUEST
        }
        Unauthorized | InvalidCredentials | TokenExpired | TokenInvalid | TokenRevoked
        | WrongTokenType => StatusCode::UNAUTHORIZED,
        Forbidden | NotMember | OriginNotAllowed | GuestNotAllowed | AccountDisabled | Banned
        | Muted | ReadOnly => StatusCode::FORBIDDEN,
        NotFound => StatusCode::NOT_FOUND,
        NotJoined | Conflict | UsernameTaken | TooManyReactions | EmailTaken => {
            StatusCode::CONFLICT
        }
        TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        RateLimited | TooManyRooms => StatusCode::TOO_MANY_REQUESTS,
        Unavailable | SlowConsumer | ProviderUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    /// A refusal with `code` (its status comes from [`status_of`]).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Refused {
            code,
            message: message.into(),
        }
    }

    /// 404 for something that does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// The code of the body.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Refused { code, .. } => *code,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// The body of every refusal, REST or handshake: `{"error": {"code", "message"}}`. The one
/// definition of that shape: responses are built from it and the OpenAPI document's `Error`
/// schema is derived from it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub(crate) struct ErrorBody<'a> {
    /// Why the request was refused.
    error: ErrorDetail<'a>,
}

/// The `error` of an error body.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorDetail<'a> {
    /// Stable and machine-readable: branch on it (its HTTP status is always the same).
    code: ErrorCode,
    /// For people; the wording may change.
    message: &'a str,
}

/// The JSON body of an error response.
pub(crate) fn error_body(code: ErrorCode, message: &str) -> ErrorBody<'_> {
    ErrorBody {
        error: ErrorDetail { code, message },
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(self.code())
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Internal(detail) => tracing::error!(%detail, "internal error"),
            Self::Unavailable(detail) => tracing::warn!(%detail, "service unavailable"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Refused { code, .. } if status_of(*code) == StatusCode::UNAUTHORIZED => {
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

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e.code() {
            ErrorCode::Internal => Self::Internal(e.to_string()),
            ErrorCode::Unavailable => Self::Unavailable(e.to_string()),
            code => match e.retry_after() {
                Some(retry_after) => Self::RateLimited {
                    message: e.public_message(),
                    retry_after,
                },
                None => Self::new(code, e.public_message()),
            },
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        if status_of(e.code()) == StatusCode::UNAUTHORIZED {
            // By reason (a code): never the user's name.
            metrics::counter!("parley_auth_failures_total", "reason" => e.code().as_str())
                .increment(1);
        }
        match e.code() {
            ErrorCode::Internal => Self::Internal(e.to_string()),
            ErrorCode::Unavailable => Self::Unavailable(e.to_string()),
            code => Self::new(code, e.to_string()),
        }
    }
}

/// `Result` with [`ApiError`].
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_client_or_server_error_status() {
        for code in ErrorCode::ALL {
            let status = status_of(code);
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{code}: {status}"
            );
        }
        assert_eq!(status_of(ErrorCode::NotMember), StatusCode::FORBIDDEN);
        assert_eq!(status_of(ErrorCode::TokenExpired), StatusCode::UNAUTHORIZED);
        assert_eq!(status_of(ErrorCode::UsernameTaken), StatusCode::CONFLICT);
    }

    /// docs/api.md's status table: every code a row names is answered with that row's status.
    #[test]
    fn the_status_table_in_the_api_docs_is_status_of() {
        let doc = include_str!("../../../docs/api.md");
        let table = doc
            .lines()
            .skip_while(|l| *l != "| status | codes |")
            .skip(2)
            .take_while(|l| l.starts_with('|'));
        let mut statuses = std::collections::BTreeSet::new();
        for line in table {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let status: u16 = cells[1]
                .parse()
                .unwrap_or_else(|_| panic!("a status: {line}"));
            let codes: Vec<ErrorCode> = cells[2]
                .split('`')
                .skip(1)
                .step_by(2)
                .filter_map(|name| serde_json::from_value(serde_json::Value::from(name)).ok())
                .collect();
            assert!(!codes.is_empty(), "the {status} row names no code: {line}");
            for code in codes {
                assert_eq!(
                    status_of(code).as_u16(),
                    status,
                    "`{code}` in the {status} row"
                );
            }
            statuses.insert(status);
        }
        // One row for every status a code can be answered with: none left out.
        let answered: std::collections::BTreeSet<u16> = ErrorCode::ALL
            .iter()
            .map(|&code| status_of(code).as_u16())
            .collect();
        assert_eq!(statuses, answered, "the statuses of the table's rows");
    }

    /// A 500 tells the client nothing of what went wrong (the detail is only logged), and a
    /// 503 says when to come back.
    #[tokio::test]
    async fn internal_details_stay_out_of_the_response() {
        let detail = "relation \"messages\" does not exist at postgres://user:pw@db/parley";
        let response = ApiError::Internal(detail.into()).error_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let Ok(body) = actix_web::body::to_bytes(response.into_body()).await else {
            panic!("the body is in memory")
        };
        let body = String::from_utf8_lossy(&body);
        assert!(
            !body.contains("postgres") && !body.contains("relation"),
            "{body}"
        );
        assert!(body.contains(r#""code":"internal""#), "{body}");
        let response = ApiError::Unavailable("down".into()).error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
    }
}
