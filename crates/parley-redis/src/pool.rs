//! The bounded connection pool: deadpool over deadpool-redis's [`Manager`] (or, following a
//! Sentinel-managed primary, over [`Endpoint::Sentinel`]), minus one round trip.
//!
//! deadpool-redis checks every connection with a `PING` each time it leaves the pool, which
//! would double the round trips of a one-script send. Here a connection handed out less than
//! [`FRESH`] ago skips that check; an older one is checked as before. A connection that
//! failed mid-operation is never put back ([`discard`]), so a dead one is not handed out
//! again inside that window.
//!
//! With Sentinel, every new connection (pooled or a receive loop's) asks the Sentinels for
//! the primary first (redis's [`SentinelClient`], which also checks the answer with `ROLE`).
//! Nothing else changes: an open connection costs what it costs without Sentinel, and a
//! failover reaches us as a failed operation (Sentinel closes the demoted primary's clients;
//! a write to a replica fails with `READONLY`), whose connection is then discarded, so the
//! next one resolves the new primary.

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool_redis::Manager;
use redis::aio::MultiplexedConnection;
use redis::sentinel::SentinelClient;
use redis::{AsyncConnectionConfig, Client, ErrorKind, RedisError, ServerErrorKind};
use std::sync::Arc;
use std::time::Duration;

/// How recently a connection must have been used to skip the `PING` on checkout.
const FRESH: Duration = Duration::from_secs(1);

/// Where a host's connections go.
#[derive(Clone)]
pub(crate) enum Endpoint {
    /// A fixed address.
    Direct(Client),
    /// Whatever primary the Sentinels name at connection time.
    Sentinel(Arc<tokio::sync::Mutex<SentinelClient>>),
}

impl Endpoint {
    /// Opens a connection (asking the Sentinels for the primary first, if any).
    pub(crate) async fn connect(
        &self,
        config: &AsyncConnectionConfig,
    ) -> Result<MultiplexedConnection, RedisError> {
        match self {
            Self::Direct(client) => {
                client
                    .get_multiplexed_async_connection_with_config(config)
                    .await
            }
            Self::Sentinel(sentinel) => {
                let client = sentinel.lock().await.async_get_client().await?;
                client
                    .get_multiplexed_async_connection_with_config(config)
                    .await
            }
        }
    }
}

/// deadpool-redis's manager with a cheaper recycle, or the same over Sentinel.
pub(crate) enum LayerManager {
    /// A fixed address: deadpool-redis's own manager.
    Direct(Manager),
    /// A Sentinel-managed primary. (deadpool-redis's sentinel manager opens connections with
    /// redis's default 500 ms response timeout, too short for a large group send, so the
    /// connection settings are ours.)
    Sentinel {
        endpoint: Endpoint,
        config: AsyncConnectionConfig,
    },
}

impl managed::Manager for LayerManager {
    type Type = MultiplexedConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<MultiplexedConnection, RedisError> {
        match self {
            Self::Direct(manager) => manager.create().await,
            Self::Sentinel { endpoint, config } => endpoint.connect(config).await,
        }
    }

    async fn recycle(
        &self,
        conn: &mut MultiplexedConnection,
        metrics: &Metrics,
    ) -> RecycleResult<RedisError> {
        if metrics.last_used() < FRESH {
            return Ok(());
        }
        match self {
            Self::Direct(manager) => manager.recycle(conn, metrics).await,
            Self::Sentinel { .. } => {
                // deadpool-redis's check: the connection still answers.
                let pong: String = redis::cmd("PING").query_async(conn).await?;
                if pong == "PONG" {
                    Ok(())
                } else {
                    Err(RecycleError::message("unexpected PING reply"))
                }
            }
        }
    }
}

/// The pool of one host.
pub(crate) type Pool = managed::Pool<LayerManager>;

/// A pooled connection.
pub(crate) type Conn = managed::Object<LayerManager>;

/// Keeps a connection that failed out of the pool (it is closed instead of reused). A
/// `READONLY` reply means the server was demoted to a replica (a failover): its connection
/// goes too, so the next one is opened to the primary the Sentinels name now.
pub(crate) fn discard(conn: Conn, error: &RedisError) {
    if error.is_io_error()
        || error.is_connection_dropped()
        || error.is_timeout()
        || error.is_unrecoverable_error()
        || error.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
    {
        drop(managed::Object::take(conn));
    }
}
