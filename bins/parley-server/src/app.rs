//! [`Application`]: the store, the layer, the engine, auth and the HTTP server, built from
//! [`Settings`] and bound (port 0 works: tests read the port back).

use crate::error::{Result, ServerError};
use crate::secret;
use crate::settings::{LayerKind, Settings};
use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpResponse, HttpServer, web};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use parley_actix::{AppState, serve};
use parley_auth::{Auth, AuthConfig, SigningKey};
use parley_core::Engine;
use parley_domain::redact_url;
use parley_layer::{ChannelLayer, InMemoryLayer};
use parley_redis::{RedisLayer, RedisLayerConfig, SentinelConfig};
use parley_store::{Store, StoreOptions};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A built, bound server; run it with [`Application::run_until_stopped`].
pub struct Application {
    /// The bound address (the real port when `bind` asked for port 0).
    addr: SocketAddr,
    /// The actix server future.
    server: Server,
    /// Stops the engine and the server.
    shutdown: Shutdown,
}

/// Stops a running [`Application`] gracefully. Cheap to clone.
#[derive(Clone)]
pub struct Shutdown {
    engine: Engine,
    server: ServerHandle,
    /// The metrics listener, when there is one.
    metrics: Option<ServerHandle>,
    /// For waiting on the chat sockets, which close by themselves once the engine stops.
    state: AppState,
    /// How long to wait for them.
    timeout: Duration,
}

impl Shutdown {
    /// Stops accepting connections, closes every WebSocket with 1001 ("going away"), waits
    /// for in-flight requests (up to `shutdown_timeout_secs`), and lets
    /// [`Application::run_until_stopped`] return.
    pub async fn shutdown(&self) {
        tracing::info!("shutting down: closing sockets, finishing in-flight requests");
        self.engine.shutdown();
        // The sockets run in tasks of their own, which the HTTP server's graceful stop does
        // not wait for: wait for their close handshakes first.
        if tokio::time::timeout(self.timeout, self.state.sockets_closed())
            .await
            .is_err()
        {
            let open = self.state.open_sockets();
            tracing::warn!(
                open,
                "sockets still open at the shutdown timeout: dropping them"
            );
        }
        self.server.stop(true).await;
        if let Some(metrics) = &self.metrics {
            metrics.stop(true).await;
        }
    }

    /// Starts the same shutdown without waiting for it (for `Drop` impls and tests).
    pub fn begin(&self) {
        self.engine.shutdown();
        // The command is sent when `stop` is called; the returned future only waits.
        drop(self.server.stop(true));
        if let Some(metrics) = &self.metrics {
            drop(metrics.stop(true));
        }
    }
}

/// Opens the store described by `settings` (not yet migrated).
pub fn open_store(settings: &Settings) -> Result<Store> {
    Ok(Store::connect(
        &settings.database_url,
        &StoreOptions {
            max_connections: settings.db_max_connections,
            account_connections: settings.db_account_connections,
            join_concurrency: settings.db_join_concurrency,
            ..StoreOptions::default()
        },
    )?)
}

/// The auth configuration: keys (generating the development secret if needed), lifetimes,
/// bcrypt cost.
pub fn auth_config(settings: &Settings) -> Result<AuthConfig> {
    let read = |path: &Option<std::path::PathBuf>, setting: &str| -> Result<Vec<u8>> {
        let path = path
            .as_ref()
            .ok_or_else(|| ServerError::Config(format!("{setting}: required")))?;
        std::fs::read(path)
            .map_err(|e| ServerError::Config(format!("{setting}: {}: {e}", path.display())))
    };
    let key = match settings.jwt_algorithm.as_str() {
        "RS256" => SigningKey::Rs256 {
            private_pem: read(&settings.jwt_private_key_file, "jwt_private_key_file")?,
            public_pem: read(&settings.jwt_public_key_file, "jwt_public_key_file")?,
        },
        "EdDSA" => SigningKey::EdDsa {
            private_pem: read(&settings.jwt_private_key_file, "jwt_private_key_file")?,
            public_pem: read(&settings.jwt_public_key_file, "jwt_public_key_file")?,
        },
        _ => SigningKey::Hs256 {
            secret: match &settings.secret {
                Some(s) => s.as_bytes().to_vec(),
                None => secret::development_secret(&settings.secret_file)?,
            },
        },
    };
    let mut config = AuthConfig::with_key(key);
    config.access_ttl = Duration::from_secs(settings.access_token_ttl_secs);
    config.refresh_ttl = Duration::from_secs(settings.refresh_token_ttl_secs);
    config.rotate_refresh = settings.refresh_rotation;
    config.bcrypt_cost = settings.bcrypt_cost;
    Ok(config)
}

/// Connects the channel layer `settings` pick.
pub async fn open_layer(settings: &Settings) -> Result<Arc<dyn ChannelLayer>> {
    Ok(match settings.layer_kind() {
        LayerKind::Memory => Arc::new(InMemoryLayer::new(settings.layer_config())),
        LayerKind::Redis => {
            let base = if settings.redis_sentinels.is_empty() {
                let url = settings
                    .redis_url
                    .clone()
                    .ok_or_else(|| ServerError::Config("redis_url: required".into()))?;
                RedisLayerConfig::new(url)
            } else {
                let mut sentinel = SentinelConfig::new(
                    settings.redis_sentinels.clone(),
                    settings.redis_sentinel_master.clone().unwrap_or_default(),
                );
                sentinel.sentinel_password = settings.redis_sentinel_password.clone();
                let mut config = RedisLayerConfig::with_sentinel(sentinel);
                if let Some(url) = &settings.redis_url {
                    // Only its credentials and database apply (the Sentinels name the host).
                    config.hosts = vec![url.clone()];
                }
                config
            };
            let config = base
                .with_prefix(settings.redis_prefix.clone())
                .with_layer(settings.layer_config())
                .with_encryption_keys(&settings.redis_encryption_keys);
            let layer = RedisLayer::connect(config)
                .await
                .map_err(|e| ServerError::Layer(e.to_string()))?;
            Arc::new(layer)
        }
    })
}

/// An engine for the operator's commands (`parley-server user ...`): the database (migrated),
/// the account service and the channel layer the settings pick, without listening. With a
/// Redis layer, what it publishes (closing a deactivated user's sockets) reaches every
/// running server process at once; with the in-memory layer it reaches none (those sockets
/// are refused at their next `renew` or reconnect). Call [`Engine::shutdown`] when done.
pub async fn operator_engine(settings: &Settings) -> Result<Engine> {
    settings.validate()?;
    let store = open_store(settings)?;
    if let Err(e) = store.ping().await {
        return Err(unreachable_database(&settings.database_url, e).await);
    }
    store.migrate().await?;
    let layer = open_layer(settings).await?;
    let auth_config = auth_config(settings)?;
    let auth = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || Auth::new(store, &auth_config))
            .await
            .map_err(|e| ServerError::Config(format!("auth setup: {e}")))??
    };
    let engine = Engine::start(store, layer, settings.engine_config()).await?;
    engine.use_auth(auth);
    Ok(engine)
}

/// The process's Prometheus recorder, installed on first use: every metric the libraries
/// report from then on is rendered by it.
pub fn prometheus() -> Result<&'static PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle);
    }
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| ServerError::Config(format!("metrics_bind: {e}")))?;
    parley_core::metrics::describe();
    Ok(HANDLE.get_or_init(|| handle))
}

/// Binds `bind` (an address or `host:port`; the first address it resolves to) with an accept
/// queue of `backlog` (see [`Settings::DEFAULT_LISTEN_BACKLOG`]), as std's bind would
/// otherwise (`SO_REUSEADDR` on Unix).
fn listen(bind: &str, backlog: u32) -> std::io::Result<TcpListener> {
    use std::net::ToSocketAddrs;
    let addr = bind.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")
    })?;
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)?.into_std()
}

/// The metrics listener: `GET /metrics` in Prometheus's text format, on `bind`.
fn metrics_server(bind: &str) -> Result<(ServerHandle, SocketAddr)> {
    let handle = prometheus()?;
    let listener = TcpListener::bind(bind).map_err(ServerError::io(format!(
        "cannot listen on {bind} (metrics_bind)"
    )))?;
    let addr = listener
        .local_addr()
        .map_err(ServerError::io("metrics address"))?;
    let server = HttpServer::new(move || {
        App::new().route(
            "/metrics",
            web::get().to(move || async move {
                // Upkeep drains histogram samples into their buckets before the render.
                handle.run_upkeep();
                HttpResponse::Ok()
                    .content_type("text/plain; version=0.0.4")
                    .body(handle.render())
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .map_err(ServerError::io("metrics listener"))?
    .run();
    let server_handle = server.handle();
    tokio::spawn(server);
    Ok((server_handle, addr))
}

/// The URL to open for a server listening on `addr` (a wildcard address is reached on the
/// loopback).
pub fn browser_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/", SocketAddr::new(ip, addr.port()))
}

/// Why the database at `url` does not answer, naming its address: the pool's own error says
/// little more than "error connecting to server", so for PostgreSQL the server's address is
/// tried directly for the cause.
async fn unreachable_database(url: &str, error: parley_store::StoreError) -> ServerError {
    let Some(address) = postgres_address(url) else {
        return error.into();
    };
    let cause = match tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(&address),
    )
    .await
    {
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer within 5 s".to_owned(),
        // The port answers: the database refused us (credentials, database name, ...).
        Ok(Ok(_)) => error.to_string(),
    };
    ServerError::Unreachable {
        what: "PostgreSQL",
        address,
        cause,
    }
}

/// `host:port` of a `postgres://` URL (5432 when the URL names none).
fn postgres_address(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() {
        return None;
    }
    let has_port = host
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    Some(if has_port {
        host.to_owned()
    } else {
        format!("{host}:5432")
    })
}

impl Application {
    /// Binds the listener, reaches the channel layer and the database, then migrates the
    /// database, prepares the signing key and starts the engine. Nothing is written (no
    /// migration, no generated secret) before the port is ours and the services answer. Must
    /// run on a multi-thread tokio runtime (the migration harness blocks).
    pub async fn build(settings: Settings) -> Result<Self> {
        settings.validate()?;
        let listener = listen(&settings.bind, settings.listen_backlog).map_err(ServerError::io(
            format!("cannot listen on {}", settings.bind),
        ))?;
        let addr = listener
            .local_addr()
            .map_err(ServerError::io("local address"))?;
        let metrics = match &settings.metrics_bind {
            Some(bind) => Some(metrics_server(bind)?),
            None => None,
        };
        let layer = open_layer(&settings).await?;
        let store = open_store(&settings)?;
        if let Err(e) = store.ping().await {
            return Err(unreachable_database(&settings.database_url, e).await);
        }
        store.migrate().await?;
        let auth_config = auth_config(&settings)?;
        let auth = {
            let store = store.clone();
            // bcrypt's dummy hash at a production cost takes a while: keep it off the runtime.
            tokio::task::spawn_blocking(move || Auth::new(store, &auth_config))
                .await
                .map_err(|e| ServerError::Config(format!("auth setup: {e}")))??
        };
        let default_rooms = settings.default_rooms()?;
        for room in &default_rooms {
            store.ensure_public_room(room).await?;
        }
        auth.use_default_rooms(default_rooms);
        let engine = Engine::start(store, layer, settings.engine_config()).await?;
        // Sockets renew their authorization on the socket, and logging out closes them.
        engine.use_auth(auth.clone());
        let oidc = parley_auth::OidcProviders::new(settings.oidc_configs()?)
            .map_err(|e| ServerError::Config(e.to_string()))?;
        let state = AppState::new(
            engine.clone(),
            auth,
            settings.http_config(),
            tokio::runtime::Handle::current(),
        )
        .with_oidc(oidc);

        let shutdown_state = state.clone();
        // Signals are handled by the binary, which stops the engine first. Both carriers run
        // under `serve`, and so under its limits on slow and idle HTTP clients.
        let server =
            serve(state, listener, &settings.serve_options()).map_err(ServerError::io("listen"))?;
        let shutdown = Shutdown {
            engine,
            server: server.handle(),
            metrics: metrics.map(|(handle, addr)| {
                tracing::info!(%addr, "metrics at http://{addr}/metrics");
                handle
            }),
            state: shutdown_state,
            timeout: Duration::from_secs(settings.shutdown_timeout_secs),
        };
        tracing::info!(
            %addr,
            database = %redact_url(&settings.database_url),
            layer = settings.layer_kind().as_str(),
            "parley-server ready: open {}",
            browser_url(addr)
        );
        Ok(Self {
            addr,
            server,
            shutdown,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A handle that stops the server gracefully.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Serves until [`Shutdown::shutdown`] is called.
    pub async fn run_until_stopped(self) -> Result<()> {
        self.server.await.map_err(ServerError::io("server"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connections the server has not accepted yet wait in the listener's queue: with the
    /// backlog set, a burst far beyond std's 128 completes its handshakes at once (the kernel
    /// drops the handshakes of a full queue, and they came back seconds later).
    #[tokio::test]
    async fn the_listener_queues_a_burst_beyond_128_connections() {
        let listener = listen("127.0.0.1:0", 1024).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut held = Vec::new();
        for i in 0..600 {
            // Nothing accepts: each handshake completes only if the queue has room.
            let stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                .unwrap_or_else(|e| panic!("connection {i} of a 600-connection burst: {e}"));
            held.push(stream);
        }
        assert_eq!(held.len(), 600);
        drop(listener);
    }

    #[test]
    fn the_backlog_setting_is_validated() {
        let settings = Settings {
            listen_backlog: 0,
            ..Settings::default()
        };
        assert!(
            settings
                .validate()
                .is_err_and(|e| e.to_string().contains("listen_backlog"))
        );
    }
}
