//! The one error type of this crate.

use parley_domain::protocol::ErrorCode;
use parley_layer::LayerError;
use parley_store::StoreError;

/// What an engine operation can fail with. Frame-level failures become error frames to the
/// client (see [`EngineError::code`]); these also reach embedders through [`crate::Engine`]'s
/// methods.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// An invalid setting, named in the text.
    #[error("invalid engine configuration: {0}")]
    Config(String),
    /// The user already holds as many connections as allowed.
    #[error("too many connections for this user (at most {0})")]
    TooManyConnections(usize),
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
    /// The wire error code a client sees for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Config(_) => ErrorCode::Internal,
            Self::TooManyConnections(_) => ErrorCode::RateLimited,
            Self::Store(e) => store_code(e),
            Self::Layer(LayerError::ChannelFull(_)) => ErrorCode::SlowConsumer,
            Self::Layer(LayerError::Unavailable(_) | LayerError::Closed) => ErrorCode::Unavailable,
            Self::Layer(LayerError::InvalidName { .. } | LayerError::InvalidMessage(_)) => {
                ErrorCode::Internal
            }
            Self::ShuttingDown => ErrorCode::Unavailable,
        }
    }
}

/// The wire code for a store error.
pub fn store_code(e: &StoreError) -> ErrorCode {
    match e {
        StoreError::NotFound(_) => ErrorCode::NotFound,
        StoreError::Conflict(_) => ErrorCode::Conflict,
        StoreError::Forbidden(_) => ErrorCode::Forbidden,
        StoreError::Invalid(_) => ErrorCode::InvalidField,
        StoreError::Unavailable(_) => ErrorCode::Unavailable,
        StoreError::Internal(_) => ErrorCode::Internal,
    }
}

/// `Result` with [`EngineError`].
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
