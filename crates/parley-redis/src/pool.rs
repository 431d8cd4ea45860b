//! The bounded connection pool: deadpool over deadpool-redis's [`Manager`], minus one round
//! trip.
//!
//! deadpool-redis checks every connection with a `PING` each time it leaves the pool, which
//! would double the round trips of a one-script send. Here a connection handed out less than
//! [`FRESH`] ago skips that check; an older one is checked as before. A connection that
//! failed mid-operation is never put back ([`discard`]), so a dead one is not handed out
//! again inside that window.

use deadpool::managed::{self, Metrics, RecycleResult};
use deadpool_redis::Manager;
use redis::RedisError;
use redis::aio::MultiplexedConnection;
use std::time::Duration;

/// How recently a connection must have been used to skip the `PING` on checkout.
const FRESH: Duration = Duration::from_secs(1);

/// deadpool-redis's manager with a cheaper recycle.
pub(crate) struct LayerManager(pub(crate) Manager);

impl managed::Manager for LayerManager {
    type Type = MultiplexedConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<MultiplexedConnection, RedisError> {
        self.0.create().await
    }

    async fn recycle(
        &self,
        conn: &mut MultiplexedConnection,
        metrics: &Metrics,
    ) -> RecycleResult<RedisError> {
        if metrics.last_used() < FRESH {
            return Ok(());
        }
        self.0.recycle(conn, metrics).await
    }
}

/// The pool of one host.
pub(crate) type Pool = managed::Pool<LayerManager>;

/// A pooled connection.
pub(crate) type Conn = managed::Object<LayerManager>;

/// Keeps a connection that failed out of the pool (it is closed instead of reused).
pub(crate) fn discard(conn: Conn, error: &RedisError) {
    if error.is_io_error()
        || error.is_connection_dropped()
        || error.is_timeout()
        || error.is_unrecoverable_error()
    {
        drop(managed::Object::take(conn));
    }
}
