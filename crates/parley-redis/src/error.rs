//! The one error type of this crate: building a layer. Operations on a built layer fail with
//! [`parley_layer::LayerError`], the trait's error.

use parley_layer::LayerError;

/// Why a [`crate::RedisLayer`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A host URL Redis cannot use.
    #[error("invalid Redis URL {url:?}: {source}")]
    InvalidUrl {
        /// The URL as configured.
        url: String,
        /// What redis-rs said.
        #[source]
        source: redis::RedisError,
    },
    /// A setting out of range (no hosts, a zero capacity, ...).
    #[error("invalid Redis layer configuration: {0}")]
    InvalidConfig(String),
    /// The connection pool could not be built.
    #[error("cannot build the Redis connection pool: {0}")]
    Pool(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A Redis failure during an operation: transient, the caller may retry.
pub(crate) fn unavailable(e: impl std::fmt::Display) -> LayerError {
    LayerError::Unavailable(e.to_string())
}
