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
//! - `/api/...`: the REST API (`rest`-module handlers; see `docs/api.md`), JSON in and out,
//!   errors as `{"error": {"code", "message"}}` with a matching status, CORS per
//!   [`HttpConfig::cors_origins`].
//! - `/api/auth/oidc/...` (the `oidc` feature, which parley-server turns on): OpenID Connect
//!   sign-in (`oidc`): the provider list, the browser flow and native apps' ID tokens. The
//!   feature brings parley-auth's `oidc-http` and so an HTTP client (reqwest); without it
//!   the routes are absent and nothing of it is built.
//! - `/ws` and `/ws/chat/{room}`: the WebSocket (`ws`); the access token comes as
//!   `Authorization: Bearer` or `?token=`, checked with the origin before the upgrade.
//! - `/healthz` (the process answers) and `/readyz` (the store and the layer answer).
//! - `/api/openapi.json`: the OpenAPI 3.1 document of all of these ([`openapi()`]).
//! - `/` and every file of `web/` at its path (`/app.css`, `/js/main.js`, ...): the web client,
//!   compiled in with `include_dir!` (`assets`); other paths are the JSON 404.
//!
//! ## The route table and the OpenAPI document
//! Every route is mounted through one table (`routes` here, `rest::routes`, `ws::routes`,
//! `assets::routes`): `Routes::at(path).get(handler, doc)` takes each method's handler
//! *and* its description, and the same calls either mount and describe (on an actix
//! `ServiceConfig`, [`configure`]) or only describe ([`openapi()`], served at
//! `GET /api/openapi.json`). So a route cannot be mounted undescribed, nor described and not
//! mounted; tests hold the two against each other and against actix's router, check that only
//! `endpoint.rs` hands actix a route, and the e2e suite asks the real server for every
//! described operation. No Swagger UI: the document is JSON for tools (and no asset is fetched
//! from outside).
//!
//! What the document says is derived where it can be: the schemas from the types
//! (`utoipa::ToSchema`), the path parameters from the path template, the refusals' statuses
//! from [`status_of`] with one `Error` schema (the `ErrorBody` the responses are built
//! from), and the codes a JSON body, a query string or authentication can answer from those
//! inputs. An operation states the rest: summary, successful answers, the codes its rules can
//! answer. The records' schemas are *derived* in their own crates, behind an `openapi` feature
//! of parley-domain, -core and -auth that this crate turns on — not written here by hand —
//! because a derive sits beside the fields it describes: a field added to `Room` is in the
//! document without anyone remembering to add it, where a hand-written schema here would
//! drift. utoipa brings no I/O (a data model and derive macros), so the domain crate's rule
//! holds. The names' rules (length, characters) are the one hand-written part, in
//! parley-domain, from the types' own constants.
//!
//! ## Layout
//! - `endpoint`: the route table (`Routes`, `Endpoint`): one resource per path, 405 with
//!   `Allow` for other methods, `HEAD` for every `GET`, each method with its description.
//! - `openapi`: descriptions (`Doc`) to the document, and its handler.
//! - [`AppState`], [`Authenticated`] (`state`): shared state and the bearer-token extractor.
//! - [`ApiError`] (`error`): the one error type; it carries the socket's
//!   [`parley_domain::protocol::ErrorCode`], and [`status_of`] maps a code to its status.
//! - [`HttpConfig`] (`config`): origins, CORS, body limit, heartbeats, frame limits.
//! - [`TrustedProxies`] (`client`): the client address of a request, behind reverse proxies
//!   or not (every per-address limit and the access log use it).
//! - [`middleware`]: request ids and the access log.
//! - `moderation`: the room moderation routes (bans, mutes), mounted by `rest::routes`.
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

mod admin;
mod assets;
mod client;
mod config;
mod conn_limit;
mod endpoint;
mod error;
mod limit;
pub mod middleware;
mod moderation;
#[cfg(feature = "oidc")]
mod oidc;
mod openapi;
mod profile;
mod rest;
mod server;
mod state;
mod ws;

pub use client::TrustedProxies;
pub use config::HttpConfig;
pub use error::status_of;
pub use error::{ApiError, Result};
pub use parley_core::{CLOSE_PING_TIMEOUT, CLOSE_SLOW_CONSUMER};
pub use server::{ServeOptions, serve};
pub use state::{AppState, Authenticated};

use actix_cors::Cors;
use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use endpoint::Routes;
use openapi::{Doc, Table, Tag};
use parley_domain::protocol::ErrorCode;
use serde::Serialize;
use utoipa::ToSchema;

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
            }));
        mount(cfg, Some(cors));
    }
}

/// The OpenAPI 3.1 document of every route [`configure`] (and so [`serve`]) mounts, as
/// `GET /api/openapi.json` serves it: generated from the same route table that mounts them.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut table = Table::default();
    routes(&mut Routes::describe(&mut table), None);
    table.into_openapi()
}

/// Mounts every route on `cfg`, `/api` behind `cors` when given, and the JSON 404 for any
/// other path; the table says what was mounted.
fn mount(cfg: &mut web::ServiceConfig, cors: Option<Cors>) -> Table {
    let mut table = Table::default();
    routes(&mut Routes::mount(cfg, &mut table), cors);
    cfg.default_service(web::to(not_found));
    table
}

/// The route table: every route the server has, each with its description, in the order
/// they are matched.
fn routes(r: &mut Routes<'_>, cors: Option<Cors>) {
    r.at("/healthz")
        .get(
            healthz,
            Doc::new(Tag::Service, "healthz", "The process answers")
                .describe("For liveness checks: touches neither the database nor the layer.")
                .reply::<Health>(StatusCode::OK, "`{\"status\": \"ok\"}`."),
        )
        .done();
    r.at("/readyz")
        .get(
            readyz,
            Doc::new(
                Tag::Service,
                "readyz",
                "The database and the channel layer answer",
            )
            .describe("For readiness checks (a load balancer's).")
            .reply::<Health>(StatusCode::OK, "`{\"status\": \"ready\"}`.")
            .refuses(&[ErrorCode::Unavailable, ErrorCode::Internal]),
        )
        .done();
    r.scope("/api", cors, rest::routes);
    ws::routes(r);
    assets::routes(r);
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

pub(crate) fn json_error(e: JsonPayloadError, limit: usize) -> ApiError {
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

/// The answer of the health checks.
#[derive(Serialize, ToSchema)]
struct Health {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    status: &'static str,
}

/// `GET /healthz`: the process is up.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// `GET /readyz`: the store and the channel layer answer (503 otherwise).
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse> {
    let engine = state.engine.clone();
    match state.offload(async move { engine.ready().await }).await? {
        Ok(()) => Ok(HttpResponse::Ok().json(Health { status: "ready" })),
        Err(e) => Err(ApiError::Unavailable(format!("not ready: {e}"))),
    }
}
