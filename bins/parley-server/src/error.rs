//! The one error type of the server library.

/// Why the server could not start or a command failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A setting is invalid; the text names it.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An entry of `trusted_proxies` is neither an IP address nor a network.
    #[error(
        "invalid configuration: trusted_proxies: {entry:?} is not an IP address or a network (want 10.0.0.1, 10.0.0.0/8 or fd00::/8)"
    )]
    TrustedProxy {
        /// The entry as written.
        entry: String,
    },
    /// The database failed.
    #[error("database: {0}")]
    Store(#[from] parley_store::StoreError),
    /// The channel layer failed.
    #[error("channel layer: {0}")]
    Layer(String),
    /// The engine refused to start.
    #[error("engine: {0}")]
    Engine(#[from] parley_core::EngineError),
    /// Accounts and tokens.
    #[error("auth: {0}")]
    Auth(#[from] parley_auth::AuthError),
    /// A service the server needs does not answer.
    #[error("cannot reach {what} at {address}: {cause}")]
    Unreachable {
        /// Which service.
        what: &'static str,
        /// Where it was looked for.
        address: String,
        /// Why it does not answer.
        cause: String,
    },
    /// Binding the listener or another I/O failure.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        source: std::io::Error,
    },
}

impl ServerError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

/// `Result` with [`ServerError`].
pub type Result<T, E = ServerError> = std::result::Result<T, E>;
