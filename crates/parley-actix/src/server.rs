//! [`serve`]: the reference server's HTTP server. actix-web's `HttpServer` with one addition,
//! actix-http's upgrade hook, so WebSocket connections leave the HTTP/1 dispatcher for the
//! lean socket of `ws::raw` (see there for why).

use crate::state::AppState;
use crate::{configure, middleware};
use actix_http::{HttpService, KeepAlive};
use actix_service::{fn_service, map_config};
use actix_web::App;
use actix_web::dev::{AppConfig, Server};
use actix_web::middleware::from_fn;
use std::net::TcpListener;
use std::time::Duration;

/// How [`serve`] runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Worker threads (each a single-thread runtime); `None`: one per core.
    pub workers: Option<usize>,
    /// Seconds a graceful stop waits for open connections before dropping them.
    pub shutdown_timeout_secs: u64,
    /// How long an idle HTTP keep-alive connection stays open.
    pub keep_alive: Duration,
    /// How long a client has to send a request's head.
    pub client_request_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            workers: None,
            shutdown_timeout_secs: 30,
            keep_alive: Duration::from_secs(5),
            client_request_timeout: Duration::from_secs(5),
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
    Ok(builder
        .listen("parley", listener, move || {
            let app_state = state.clone();
            let ws_state = state.clone();
            let app = App::new()
                .wrap(from_fn(middleware::request_id))
                .configure(configure(app_state));
            HttpService::build()
                .keep_alive(KeepAlive::Timeout(options.keep_alive))
                .client_request_timeout(options.client_request_timeout)
                .client_disconnect_timeout(Duration::from_secs(1))
                // Chat frames are small and latency-bound: never wait for Nagle.
                .tcp_nodelay(true)
                .local_addr(addr)
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
                .finish(map_config(app, |_| AppConfig::default()))
                .tcp()
        })?
        .run())
}
