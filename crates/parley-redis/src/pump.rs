//! Receive loops: one task per Redis key this process reads (its process key, and each
//! normal channel it receives from), doing blocking pops on a dedicated connection (then
//! taking whatever else waits, a batch per round trip) and putting the messages into the
//! local mailboxes before popping more.
//!
//! The loop owns its connection (blocking pops would stall a shared multiplexed one) and
//! reopens it by itself with a capped backoff when Redis goes away; mailboxes outlive
//! connections, so a restart loses nothing that was already popped.

use crate::codec::{DecodeError, Envelope};
use crate::layer::Shared;
use crate::mailbox::{Delivered, unix_now};
use crate::pool::Endpoint;
use parley_layer::Message;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Where a loop's messages go.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// The process key: route by each message's `__asgi_channel__`.
    Process,
    /// A normal channel's own key: everything goes to that channel.
    Channel(String),
}

/// One receive loop's settings.
pub(crate) struct Pump {
    pub(crate) shared: Arc<Shared>,
    /// Where to connect (a fixed address, or the primary the Sentinels name each time).
    pub(crate) client: Endpoint,
    /// The Redis key popped from.
    pub(crate) key: String,
    pub(crate) target: Target,
    pub(crate) block_timeout: Duration,
    pub(crate) connect_timeout: Duration,
}

const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Most messages one non-blocking pop takes after a blocking one (see [`Pump::drain`]).
const DRAIN_BATCH: usize = 64;
/// Sweep stale mailboxes this often (checked when a pop times out or delivers).
const SWEEP_EVERY: Duration = Duration::from_secs(30);

impl Pump {
    /// Runs until the task is aborted (when the layer is closed or dropped).
    pub(crate) async fn run(self) {
        let mut backoff = Duration::from_millis(50);
        let mut lost = false;
        let mut last_sweep = tokio::time::Instant::now();
        loop {
            let mut conn = match self.connect().await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(key = %self.key, error = %e, retry_in = ?backoff, "receive loop cannot reach Redis");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            if lost {
                self.shared.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("parley_redis_reconnects_total").increment(1);
                tracing::info!(key = %self.key, "receive loop reconnected to Redis");
                // Redis is back: the layer restores its memberships there.
                self.shared.reconnected.notify_one();
            }
            backoff = Duration::from_millis(50);
            loop {
                let popped: redis::RedisResult<Option<(String, Vec<u8>, f64)>> =
                    redis::cmd("BZPOPMIN")
                        .arg(&self.key)
                        .arg(self.block_timeout.as_secs_f64())
                        .query_async(&mut conn)
                        .await;
                match popped {
                    Ok(Some((_, member, score))) => {
                        self.dispatch(&member, score);
                        if let Err(e) = self.drain(&mut conn).await {
                            tracing::warn!(key = %self.key, error = %e, "receive loop lost its Redis connection; reconnecting");
                            lost = true;
                            break;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(key = %self.key, error = %e, "receive loop lost its Redis connection; reconnecting");
                        lost = true;
                        break;
                    }
                }
                if last_sweep.elapsed() >= SWEEP_EVERY {
                    last_sweep = tokio::time::Instant::now();
                    let dropped = self.shared.mailboxes.sweep(self.shared.expiry_secs);
                    self.shared
                        .stats
                        .expired
                        .fetch_add(dropped as u64, Ordering::Relaxed);
                }
            }
        }
    }

    /// After a blocking pop delivered: takes what else waits on the key, up to
    /// [`DRAIN_BATCH`] per round trip, until a round finds fewer. One pop per round trip
    /// drained a process key too slowly on a busy box: a burst of group sends (presence in a
    /// join storm over several processes) reached the key's `capacity` and later sends were
    /// refused, though the loop would have caught up within moments.
    async fn drain(&self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        loop {
            let popped: Vec<(Vec<u8>, f64)> = redis::cmd("ZPOPMIN")
                .arg(&self.key)
                .arg(DRAIN_BATCH)
                .query_async(conn)
                .await?;
            let count = popped.len();
            for (member, score) in popped {
                self.dispatch(&member, score);
            }
            if count < DRAIN_BATCH {
                return Ok(());
            }
        }
    }

    async fn connect(&self) -> redis::RedisResult<MultiplexedConnection> {
        // A response may take the whole blocking timeout; allow that plus slack before
        // declaring the connection dead.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.block_timeout + Duration::from_secs(5)));
        self.client.connect(&config).await
    }

    /// Decodes one popped member and puts it into the mailboxes. Nothing is dropped without
    /// a log line and a counter.
    fn dispatch(&self, member: &[u8], score: f64) {
        let stats = &self.shared.stats;
        let (fields, envelope) = match self.shared.codec.decode(member) {
            Ok(decoded) => decoded,
            Err(e) => {
                stats.undecodable.fetch_add(1, Ordering::Relaxed);
                match e {
                    DecodeError::TokenExpired => stats.expired.fetch_add(1, Ordering::Relaxed),
                    _ => 0,
                };
                tracing::error!(key = %self.key, error = %e, "refusing a message popped from Redis");
                return;
            }
        };
        let message = match Message::from_map(fields) {
            Ok(m) => m,
            Err(e) => {
                stats.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::error!(key = %self.key, error = %e, "refusing a message popped from Redis");
                return;
            }
        };
        if crate::mailbox::is_expired(score, unix_now(), self.shared.expiry_secs) {
            stats.expired.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(key = %self.key, "dropping an expired message");
            return;
        }
        let channels = match (&self.target, envelope) {
            (Target::Channel(c), _) => vec![c.clone()],
            (Target::Process, Envelope::One(c)) => vec![c],
            (Target::Process, Envelope::Many(cs)) => cs,
            (Target::Process, Envelope::None) => {
                stats.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::error!(key = %self.key, "refusing a message without __asgi_channel__ on a process key");
                return;
            }
        };
        for channel in channels {
            if self
                .shared
                .mailboxes
                .deliver(&channel, message.clone(), score)
                == Delivered::DroppedOldest
            {
                stats.local_overflow.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%channel, "local mailbox full (its consumer is not reading): dropped its oldest message");
            }
        }
    }
}
