//! The axum example, serving: `PARLEY_SECRET=<32 bytes or more> cargo run -p parley-axum-example`.
//!
//! SQLite in `./axum-chat.sqlite3`, the in-memory channel layer (one process), on
//! `127.0.0.1:3000` unless `PARLEY_BIND` says otherwise. Register and log in with
//! `POST /api/auth/register` and `POST /api/auth/login`, then open
//! `ws://127.0.0.1:3000/ws?token=<access>` and speak `docs/protocol.md` (rooms are created with
//! the reference server's REST API, or `Engine::rooms`, on the same database).

use anyhow::Context;
use parley_auth::AuthConfig;
use parley_axum_example::{Chat, router};
use parley_layer::InMemoryLayer;
use parley_store::Store;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let secret = std::env::var("PARLEY_SECRET").context("set PARLEY_SECRET (32 bytes or more)")?;
    let bind = std::env::var("PARLEY_BIND").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());

    let store = Store::connect("sqlite://axum-chat.sqlite3", &Default::default())?;
    store.migrate().await?;
    let layer = Arc::new(InMemoryLayer::default());
    let chat = Chat::start(store, layer, &AuthConfig::hs256(secret)).await?;

    let listener = tokio::net::TcpListener::bind(&bind).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router(chat)).await?;
    Ok(())
}
