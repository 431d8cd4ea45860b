//! The store's one error type. Each variant is a different answer for the caller, with its
//! wire code ([`StoreError::code`]): `NotFound`, `Conflict`, `Forbidden`, `Invalid`,
//! `Unavailable` (try again), `Internal`. HTTP mapping itself lives in the transport crate.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use parley_domain::protocol::ErrorCode;

/// What went wrong in a store operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist (a user, room, message, membership...).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The write clashes with what is stored, e.g. a user or room name already taken.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The actor may not do this (e.g. edit someone else's message without being staff).
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The request itself is wrong (e.g. a direct room through `create_room`).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The database cannot be reached right now (connection refused, pool timeout, broken
    /// connection, SQLite busy): the caller may retry later; readiness checks report it.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug, a corrupt row, a failed migration.
    #[error("internal store error: {0}")]
    Internal(String),
}

/// `Result` with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// True for [`StoreError::Unavailable`]: the operation may succeed if retried later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// The wire code a client sees for this error (socket and REST alike).
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::Invalid(_) => ErrorCode::InvalidField,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    pub(crate) fn corrupt(what: &str, err: impl std::fmt::Display) -> Self {
        Self::Internal(format!("stored {what} is invalid: {err}"))
    }
}

impl From<DieselError> for StoreError {
    fn from(err: DieselError) -> Self {
        match err {
            DieselError::NotFound => Self::NotFound("row"),
            DieselError::DatabaseError(kind, info) => match kind {
                DatabaseErrorKind::UniqueViolation => {
                    Self::Conflict(info.constraint_name().unwrap_or(info.message()).to_owned())
                }
                DatabaseErrorKind::ForeignKeyViolation => Self::NotFound("referenced row"),
                DatabaseErrorKind::ClosedConnection => Self::Unavailable(info.message().to_owned()),
                // diesel-async reports a PostgreSQL connection that broke under a query (the
                // server restarted, the network dropped) as "unable to send command", with
                // tokio-postgres's text; other causes of that kind (a parameter that would not
                // serialize) are bugs and stay `Internal`.
                DatabaseErrorKind::UnableToSendCommand if is_connection_lost(info.message()) => {
                    Self::Unavailable(info.message().to_owned())
                }
                DatabaseErrorKind::CheckViolation | DatabaseErrorKind::NotNullViolation => {
                    Self::Invalid(info.message().to_owned())
                }
                // SQLite reports a lock it waited `busy_timeout` for as a plain error.
                _ if is_busy(info.message()) => Self::Unavailable(info.message().to_owned()),
                _ => Self::Internal(info.message().to_owned()),
            },
            DieselError::BrokenTransactionManager => Self::Unavailable(err.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// tokio-postgres's texts for a connection that is gone or cannot be made.
fn is_connection_lost(message: &str) -> bool {
    [
        "connection closed",
        "error communicating with the server",
        "error connecting to server",
        "timeout waiting for server",
        "error performing TLS handshake",
    ]
    .iter()
    .any(|m| message.starts_with(m))
}

fn is_busy(message: &str) -> bool {
    message.contains("database is locked") || message.contains("database is busy")
}

impl From<diesel::ConnectionError> for StoreError {
    fn from(err: diesel::ConnectionError) -> Self {
        Self::Unavailable(err.to_string())
    }
}

impl From<diesel_async::pooled_connection::PoolError> for StoreError {
    fn from(err: diesel_async::pooled_connection::PoolError) -> Self {
        use diesel_async::pooled_connection::PoolError;
        match err {
            PoolError::ConnectionError(e) => e.into(),
            PoolError::QueryError(e) => match StoreError::from(e) {
                // A failed ping or setup query means the connection is unusable.
                StoreError::Internal(m) => StoreError::Unavailable(m),
                other => other,
            },
        }
    }
}

impl From<deadpool::managed::PoolError<diesel_async::pooled_connection::PoolError>> for StoreError {
    fn from(err: deadpool::managed::PoolError<diesel_async::pooled_connection::PoolError>) -> Self {
        use deadpool::managed::PoolError;
        match err {
            PoolError::Backend(e) => e.into(),
            PoolError::Timeout(kind) => {
                Self::Unavailable(format!("connection pool timed out ({kind:?})"))
            }
            PoolError::Closed => Self::Unavailable("connection pool closed".to_owned()),
            PoolError::PostCreateHook(e) => Self::Unavailable(e.to_string()),
            PoolError::NoRuntimeSpecified => {
                Self::Internal("pool has no runtime for timeouts".to_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unable_to_send(message: &str) -> StoreError {
        DieselError::DatabaseError(
            DatabaseErrorKind::UnableToSendCommand,
            Box::new(message.to_owned()),
        )
        .into()
    }

    #[test]
    fn a_lost_connection_is_unavailable_and_other_send_failures_internal() {
        assert!(unable_to_send("connection closed").is_unavailable());
        assert!(
            unable_to_send("error communicating with the server: broken pipe").is_unavailable()
        );
        assert!(unable_to_send("error connecting to server: refused").is_unavailable());
        assert!(matches!(
            unable_to_send("error serializing parameter 0"),
            StoreError::Internal(_)
        ));
    }
}
