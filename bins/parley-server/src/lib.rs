//! # parley-server
//!
//! The reference chat server: Parley's engine with a store, a channel layer and the actix
//! transport, configured from `parley.toml` and `PARLEY_*` variables. With no configuration
//! at all it serves on `127.0.0.1:8080` with SQLite in `./parley.sqlite3`, the in-memory
//! layer and a generated development secret.
//!
//! The library part lets tests and embedders start the real server in-process:
//! `Application::build(settings).await?` binds (port 0 works), `app.port()`,
//! `app.shutdown_handle()`, `app.run_until_stopped().await`.
//!
//! ## Layout
//! - [`Settings`] (`settings`): every setting, loading (figment) and validation.
//! - [`Application`], [`Shutdown`] (`app`): wiring and the HTTP server.
//! - [`telemetry`]: tracing subscriber (pretty or JSON).
//! - `secret`: the development secret.
//! - `main.rs`: the command line (`serve`, `migrate`, `create-user`, `check-config`).
//!
//! ## Must not depend on
//! Nothing is off limits here: this is the one crate that picks backends.

mod app;
mod error;
mod secret;
mod settings;
pub mod telemetry;

pub use app::{Application, Shutdown, auth_config, open_layer, open_store, operator_engine};
pub use error::{Result, ServerError};
pub use parley_domain::redact_url;
pub use settings::{
    DEFAULT_CONFIG_FILE, LayerKind, LogFormat, OidcProviderSettings, Settings, WsCarrier,
    oidc_secret_variable,
};
