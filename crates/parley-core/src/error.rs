//! The one error type of this crate.

use parley_auth::AuthError;
use parley_domain::protocol::{ErrorCode, ErrorFrame, FrameRef};
use parley_layer::LayerError;
use parley_store::StoreError;
use std::time::Duration;

/// What an engine operation can fail with, for a socket's frames and the rooms service
/// alike. [`EngineError::code`] is the wire code a client sees (in an `error` frame or a REST
/// error body); [`EngineError::public_message`] the text it may see.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// An invalid setting, named in the text.
    #[error("invalid engine configuration: {0}")]
    Config(String),
    /// The user already holds as many connections as allowed.
    #[error("too many connections for this user (at most {0})")]
    TooManyConnections(usize),
    /// The request is refused: not allowed, about something that does not exist, or
    /// invalid. `code` says which (`not_member`, `forbidden`, `not_found`, `invalid_field`,
    /// `not_joined`, `too_many_rooms`, ...); the message is for people.
    #[error("{message}")]
    Refused {
        /// Why, for programs.
        code: ErrorCode,
        /// Why, for people.
        message: String,
    },
    /// Too many requests of one kind; retry after the delay.
    #[error("too many {what}; retry in {} ms", retry_after.as_millis())]
    RateLimited {
        /// What was limited ("messages", "joins", ...).
        what: &'static str,
        /// How long until the next one is allowed.
        retry_after: Duration,
    },
    /// A token presented on the socket (`renew`) was refused, or signing out failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The channel layer failed.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// The engine is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl EngineError {
    /// A refusal with `code`.
    pub fn refused(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Refused {
            code,
            message: message.into(),
        }
    }

    /// The wire error code a client sees for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Config(_) => ErrorCode::Internal,
            Self::TooManyConnections(_) | Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Refused { code, .. } => *code,
            Self::Auth(e) => e.code(),
            Self::Store(e) => e.code(),
            Self::Layer(LayerError::ChannelFull(_)) => ErrorCode::SlowConsumer,
            Self::Layer(LayerError::Unavailable(_) | LayerError::Closed) => ErrorCode::Unavailable,
            Self::Layer(LayerError::InvalidName { .. } | LayerError::InvalidMessage(_)) => {
                ErrorCode::Internal
            }
            Self::ShuttingDown => ErrorCode::Unavailable,
        }
    }

    /// The text a client may see: everything but internal details, which go to the log
    /// (once, here) instead.
    pub fn public_message(&self) -> String {
        match self.code() {
            ErrorCode::Internal => {
                tracing::error!(error = %self, "internal error");
                ErrorCode::Internal.default_message().to_owned()
            }
            ErrorCode::Unavailable => {
                tracing::warn!(error = %self, "backing service unavailable");
                match self {
                    Self::Store(_) | Self::Auth(AuthError::Store(_)) => {
                        "the database is unavailable; try again".to_owned()
                    }
                    Self::Layer(_) => "the message bus is unavailable; try again".to_owned(),
                    other => other.to_string(),
                }
            }
            _ => self.to_string(),
        }
    }

    /// How long the client should wait before retrying, when the error says.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            Self::TooManyConnections(_) => Some(Duration::from_secs(5)),
            _ => None,
        }
    }

    /// The `error` frame answering the request that carried `reference`.
    pub fn to_frame(&self, reference: Option<FrameRef>) -> ErrorFrame {
        ErrorFrame::new(self.code(), self.public_message(), reference)
    }
}

/// `Result` with [`EngineError`].
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
