//! The one error type of this crate.

use crate::names::ChannelName;

/// What a channel-layer operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The channel holds as many undelivered messages as its capacity allows.
    #[error("channel {0} is full")]
    ChannelFull(ChannelName),
    /// A channel or group name that Channels would refuse.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        /// `channel` or `group`.
        kind: &'static str,
        /// The rejected name.
        name: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// A message that is not a map with a string `type` key, or cannot be encoded.
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// The layer was closed or its backend is gone for good.
    #[error("channel layer closed")]
    Closed,
    /// The backend (e.g. Redis) could not be reached or answered with an error. Transient:
    /// the operation may succeed when retried.
    #[error("channel layer backend unavailable: {0}")]
    Unavailable(String),
}

/// `Result` with [`LayerError`].
pub type Result<T, E = LayerError> = std::result::Result<T, E>;
