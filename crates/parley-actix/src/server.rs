//! [`serve`]: the reference server's HTTP server. actix-web's `HttpServer` with two additions:
//! every accepted stream is put under the connection limits of `conn_limit` (request, idle
//! and write deadlines, connections per address), and actix-http's upgrade hook lets WebSocket
//! connections leave the HTTP/1 dispatcher for the lean socket of `ws::raw` (see there for
//! why; `ServeOptions::direct_websocket`).

use crate::conn_limit::{ConnectionLimits, LimitsConfig};
use crate::state::AppState;
use crate::{configure, middleware};
use actix_http::error::DispatchError;
use actix_http::{HttpService, KeepAlive, Protocol};
use actix_service::{ServiceFactoryExt as _, boxed, fn_service, map_config};
use actix_web::App;
use actix_web::dev::{AppConfig, Server};
use actix_web::middleware::from_fn;
use actix_web::rt::net::TcpStream;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

/// How [`serve`] runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Worker threads (each a single-thread runtime); `None`: one per core.
    pub workers: Option<usize>,
    /// Seconds a graceful stop waits for open connections before dropping them.
    pub shutdown_timeout_secs: u64,
    /// How long an idle HTTP keep-alive connection stays open (zero: no keep-alive).
    pub keep_alive: Duration,
    /// How long a client has to send the head of a connection's first request (408 after).
    pub client_request_timeout: Duration,
    /// From a request's first byte (any request, head and body) until the server starts its
    /// answer; a slower request gets 408 and its connection is closed. Also how long a write
    /// to a client that does not read may stall.
    pub request_timeout: Duration,
    /// HTTP connections one IPv4 address (or IPv6 /64) may hold open; more are answered 429
    /// and closed at once. 0: no limit. WebSocket connections are not counted once upgraded.
    pub max_connections_per_address: usize,
    /// `true`: the chat socket leaves actix-http's dispatcher for the taken-over TCP stream
    /// (`ws::raw`). `false`: it runs on actix-ws inside the dispatcher, as when the routes
    /// are mounted with [`configure`] on an application's own server.
    pub direct_websocket: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            workers: None,
            shutdown_timeout_secs: 30,
            keep_alive: Duration::from_secs(5),
            client_request_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_connections_per_address: 256,
            direct_websocket: true,
        }
    }
}

/// Serves the REST API, the web client and the chat socket on `listener` (the routes of
/// [`configure`], behind [`middleware::request_id`]); the chat socket runs on the taken-over
/// TCP stream. OS signals are left to the caller: stop it with the returned server's handle.
pub fn serve(
    state: AppState,
    listener: TcpListener,
    options: &ServeOptions,
) -> std::io::Result<Server> {
    let mut builder = Server::build()
        .disable_signals()
        .shutdown_timeout(options.shutdown_timeout_secs);
    if let Some(workers) = options.workers {
        builder = builder.workers(workers);
    }
    let addr = listener.local_addr()?;
    let options = options.clone();
    let limits = Arc::new(ConnectionLimits::new(
        LimitsConfig {
            request_timeout: options.request_timeout,
            keep_alive: options.keep_alive,
            max_per_address: options.max_connections_per_address,
        },
        state.config.trusted_proxies.clone(),
    ));
    Ok(builder
        .listen("parley", listener, move || {
            let app_state = state.clone();
            let ws_state = state.clone();
            let app = App::new()
                .wrap(from_fn(middleware::request_id))
                .configure(configure(app_state));
            let http = HttpService::build()
                .keep_alive(match options.keep_alive.is_zero() {
                    true => KeepAlive::Disabled,
                    false => KeepAlive::Timeout(options.keep_alive),
                })
                .client_request_timeout(options.client_request_timeout)
                .client_disconnect_timeout(Duration::from_secs(1))
                .local_addr(addr);
            let http = match options.direct_websocket {
                false => boxed::factory(http.finish(map_config(app, app_config))),
                true => boxed::factory(http
                .upgrade(fn_service(move |(req, framed)| {
                    let state = ws_state.clone();
                    async move {
                        if let Some((connection, socket)) =
                            crate::ws::raw::accept(req, framed, state.clone()).await
                        {
                            // Its own task, on the application runtime (see
                            // `RawSocket::moved_to_current_runtime`), and actix-http's
                            // connection task ends here: that task is sized for any HTTP
                            // request (≈ 8 KiB), this one only for the socket.
                            // [`AppState::sockets_closed`] lets a graceful stop wait for it.
                            let connection = connection.holding(state.socket_opened());
                            let moved = {
                                let _app_runtime = state.runtime.enter();
                                socket.moved_to_current_runtime()
                            };
                            match moved {
                                Ok(socket) => {
                                    state.runtime.spawn(connection.run(socket));
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "could not move a socket to the application runtime");
                                    state.runtime.spawn(connection.abandon());
                                }
                            }
                        }
                        Ok::<_, actix_web::Error>(())
                    }
                }))
                .finish(map_config(app, app_config))),
            };
            let limits = Arc::clone(&limits);
            // What `HttpService::tcp` does, with the stream under the connection limits.
            fn_service(move |io: TcpStream| {
                let admitted = limits.admit(io).map(|io| {
                    // Chat frames are small and latency-bound: never wait for Nagle.
                    let _ = io.set_nodelay(true);
                    let peer = io.peer_addr();
                    (io, Protocol::Http1, peer)
                });
                // A refused connection was answered and closed; actix-server drops the error.
                std::future::ready(admitted.ok_or(DispatchError::InternalError))
            })
            .and_then(http)
        })?
        .run())
}

/// The `App`'s configuration for actix-http's connection-level `()` (a function, not a
/// closure: both arms of [`serve`] must name the same service type).
fn app_config((): ()) -> AppConfig {
    AppConfig::default()
}
