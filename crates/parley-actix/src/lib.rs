//! # parley-actix
//!
//! Parley's transport: the REST API and the chat WebSocket over actix-web and actix-ws, in
//! front of a [`parley_core::Engine`] and a [`parley_auth::Auth`]. A thin adapter: handlers
//! parse, call the engine's rooms service or auth, and map the error's code to a status
//! ([`status_of`]); who may do what, and everything a socket does after its handshake, is
//! `parley-core`'s. Two ways to run it:
//! - [`serve`] (what the binary, `bins/parley-server`, uses): a complete server on a listener.
//!   WebSocket upgrades leave actix-http's HTTP/1 dispatcher through its upgrade hook and run
//!   on the TCP stream directly (no per-connection HTTP buffers, several frames per `writev`),
//!   with frames parsed by actix-http's WebSocket codec.
//! - [`configure`]: mount the same routes on an application's own `App`/`HttpServer`
//!   (wrapped in [`middleware::request_id`]); there the chat socket runs on actix-ws.
//!
//! ## Routes
//! - `/api/...`: the REST API ([`rest`]-module handlers; see `docs/api.md`), JSON in and out,
//!   errors as `{"error": {"code", "message"}}` with a matching status, CORS per
//!   [`HttpConfig::cors_origins`].
//! - `/ws` and `/ws/chat/{room}`: the WebSocket (`ws`); the access token comes as
//!   `Authorization: Bearer` or `?token=`, checked with the origin before the upgrade.
//! - `/healthz` (the process answers) and `/readyz` (the store and the layer answer).
//! - `/` and every file of `web/` at its path (`/app.css`, `/js/main.js`, ...): the web client,
//!   compiled in with `include_dir!` (`assets`); other paths are the JSON 404.
//!
//! ## Layout
//! - [`AppState`], [`Authenticated`] (`state`): shared state and the bearer-token extractor.
//! - [`ApiError`] (`error`): the one error type; it carries the socket's
//!   [`parley_domain::protocol::ErrorCode`], and [`status_of`] maps a code to its status.
//! - [`HttpConfig`] (`config`): origins, CORS, body limit, heartbeats, frame limits.
//! - [`middleware`]: request ids and the access log.
//! - [`serve`], [`ServeOptions`] (`server`): the server with the lean socket.
//! - `conn_limit`: what [`serve`] adds to actix-http against slow and idle clients (request,
//!   idle and write deadlines; connections per address).
//! - `ws`: the chat socket: admission (origin, token), the path's dialect, two
//!   [`parley_core::Socket`]s for [`parley_core::Connection`] to run — actix-ws's and the
//!   taken-over stream's (`ws::raw`) — and the frame limit checked at the frame header
//!   (`ws::frame_limit`).
//!
//! ## Runtimes
//! actix runs handlers on single-thread worker runtimes, where the store must not run (a
//! SQLite query dropped unfinished — a client hanging up — blocks in place, which panics
//! there; see `parley-store`). Handlers therefore hand engine and auth calls to the
//! application's multi-thread runtime ([`AppState::offload`]), and actix-ws sockets hand
//! their frames over ([`parley_core::Connection::handled_on`]); the taken-over socket runs
//! on that runtime outright.
//!
//! ## Must not depend on
//! `parley-store`, a database driver or Redis: it reaches them through the engine and auth
//! crates (`cargo tree -e normal -p parley-actix --depth 1` lists no store), and the binary
//! picks the backends.

mod assets;
mod config;
mod conn_limit;
mod endpoint;
mod error;
mod limit;
pub mod middleware;
mod rest;
mod server;
mod state;
mod ws;

pub use config::HttpConfig;
pub use error::status_of;
pub use error::{ApiError, Result};
pub use parley_core::{CLOSE_PING_TIMEOUT, CLOSE_SLOW_CONSUMER};
pub use server::{ServeOptions, serve};
pub use state::{AppState, Authenticated};

use actix_cors::Cors;
use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, web};
use parley_domain::protocol::ErrorCode;

/// Mounts every route, the JSON limits and the state on a worker's `App`:
/// `App::new().wrap(from_fn(middleware::request_id)).configure(configure(state.clone()))`.
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let limit = state.config.json_limit;
        let cors = cors(&state.config);
        cfg.app_data(web::Data::new(state))
            .app_data(
                web::JsonConfig::default()
                    .limit(limit)
                    .error_handler(move |e, _| json_error(e, limit).into()),
            )
            .app_data(web::QueryConfig::default().error_handler(|e, _| query_error(e).into()))
            .app_data(web::PathConfig::default().error_handler(|e, _| {
                ApiError::new(ErrorCode::InvalidField, format!("bad path: {e}")).into()
            }))
            .service(endpoint::endpoint("/healthz").get(healthz).done())
            .service(endpoint::endpoint("/readyz").get(readyz).done())
            .service(web::scope("/api").wrap(cors).configure(rest::routes))
            .configure(ws::routes)
            .configure(assets::routes)
            .default_service(web::to(not_found));
    }
}

fn cors(config: &HttpConfig) -> Cors {
    let any = config.cors_origins.iter().any(|o| o == "*");
    let listed: Vec<String> = config
        .cors_origins
        .iter()
        .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
        .collect();
    let cors = if any {
        Cors::default().allow_any_origin()
    } else {
        // Same-origin pages send `Origin` too (on POSTs): always accept the server's own.
        Cors::default().allowed_origin_fn(move |origin, head| {
            let Ok(origin) = origin.to_str() else {
                return false;
            };
            let origin = origin.trim_end_matches('/').to_ascii_lowercase();
            if listed.contains(&origin) {
                return true;
            }
            let host = head
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok());
            let authority = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
        })
    };
    cors.allowed_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .expose_headers([middleware::REQUEST_ID, header::RETRY_AFTER])
        .max_age(3600)
}

fn json_error(e: JsonPayloadError, limit: usize) -> ApiError {
    match e {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::new(
                ErrorCode::TooLarge,
                format!("request body too large (at most {limit} bytes)"),
            )
        }
        JsonPayloadError::ContentType => ApiError::new(
            ErrorCode::InvalidContentType,
            ErrorCode::InvalidContentType.default_message(),
        ),
        JsonPayloadError::Deserialize(e) => {
            let message = e.to_string();
            let code = if e.is_syntax() || e.is_eof() {
                ErrorCode::InvalidJson
            } else if message.starts_with("unknown field") {
                ErrorCode::UnknownField
            } else if message.starts_with("missing field") {
                ErrorCode::MissingField
            } else {
                ErrorCode::InvalidField
            };
            ApiError::new(code, message)
        }
        other => ApiError::new(ErrorCode::InvalidJson, other.to_string()),
    }
}

fn query_error(e: QueryPayloadError) -> ApiError {
    ApiError::new(ErrorCode::InvalidField, format!("bad query string: {e}"))
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    use actix_web::ResponseError;
    ApiError::not_found(format!("no route for {} {}", req.method(), req.path())).error_response()
}

/// `GET /healthz`: the process is up.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: the store and the channel layer answer (503 otherwise).
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse> {
    let engine = state.engine.clone();
    match state.offload(async move { engine.ready().await }).await? {
        Ok(()) => Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready"}))),
        Err(e) => Err(ApiError::Unavailable(format!("not ready: {e}"))),
    }
}
