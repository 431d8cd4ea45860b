//! # parley-redis
//!
//! A Redis channel layer for Parley, wire-compatible with channels_redis 4.x's
//! `RedisChannelLayer` (checked against channels_redis 4.3.0's `core.py`, `utils.py` and
//! `serializers.py`): Rust and Django Channels processes can share one Redis and exchange
//! channel and group messages both ways.
//!
//! ## Layout
//! - [`RedisLayer`] (`layer.rs`): the [`parley_layer::ChannelLayer`] implementation.
//! - [`RedisLayerConfig`] (`config.rs`): hosts (or Sentinels), prefix, capacity/expiry,
//!   encryption keys.
//! - `scripts.rs`: the Lua scripts, one atomic round trip per operation and host.
//! - `pool.rs`: the bounded pool (deadpool-redis's manager, no `PING` on a hot connection) and
//!   where connections go (a fixed address or the primary the Sentinels name).
//! - `pump.rs`: receive loops (blocking pops on a dedicated connection per key).
//! - `mailbox.rs`: process-local per-channel buffers the loops fill and `receive` drains.
//! - `codec.rs`, `fernet.rs`: channels_redis's msgpack envelope and Fernet encryption.
//! - `hash.rs`: channels_redis's consistent hash for sharding.
//!
//! ## What is matched, exactly
//! - **Keys**, under the configurable `prefix` (default `asgi`), with no separator:
//!   a channel's queue is `<prefix><channel>`; a process-specific channel
//!   `specific.<process>!<suffix>` is queued on its process's key `<prefix>specific.<process>!`;
//!   a group is `<prefix>:group:<group>`.
//! - **Queues** are sorted sets scored by send time (Unix seconds, float). Before a send,
//!   members with score ≤ `int(now) - expiry` are removed; a queue holding `capacity` members
//!   refuses the send (`ChannelFull`); after it, the key's TTL is set to `expiry` seconds.
//!   Receives pop the lowest score (`BZPOPMIN`, timeout `block_timeout` = `brpop_timeout`).
//! - **Groups** are sorted sets of channel names scored by join time, TTL `group_expiry`;
//!   `group_send` first drops members older than `group_expiry`.
//! - **Messages**: 12 random bytes, then the msgpack map of the message (Fernet-encrypted when
//!   `symmetric_encryption_keys` are set: keys derived as `urlsafe_b64encode(sha256(key))`,
//!   the first encrypts, any decrypts, tokens accepted for `expiry + 10` s). A message for a
//!   process-specific channel carries `__asgi_channel__`: the channel name from `send`, the
//!   list of that process's member channels from `group_send` (one stored message per
//!   process key, as channels_redis does). msgpack binary values decode to arrays of bytes.
//! - **Sharding**: channels_redis's consistent hash (CRC-32 & 0xFFF over the ring) of the
//!   group name for groups and of the non-local name `specific.<process>!` for
//!   process-specific channels.
//!
//! ## Where it differs (better mechanics, same data)
//! - Each send is one Lua script (trim, capacity check, `ZADD`, `EXPIRE`): one round trip,
//!   atomic, so concurrent senders cannot overshoot the capacity as channels_redis's four
//!   separate commands can (and the pool skips deadpool-redis's checkout `PING` on a
//!   connection used within the last second, which would add a round trip). A group send is one script to read the group, then one script per
//!   host holding member queues (channels_redis: four or more round trips per host).
//! - **Direct-send routing.** channels_redis 4.3.0 routes `send` to a process-specific channel
//!   by hashing the *full* channel name, while its receiver (and `group_send`) use the
//!   non-local name: with several hosts a message can land on a host its receiver never reads.
//!   Normal channels are sent and read round-robin. Here every process-specific channel is
//!   routed by its non-local name and every normal channel by its name, for send, group send
//!   and receive alike. With a single host (the usual deployment) both agree.
//! - **Capacity** is counted per Redis key, as channels_redis does: a process's channels
//!   share its process key, so a remote sender sees `ChannelFull` once `capacity` messages
//!   wait there (its receive loop normally drains the key at once). A send or group send to a
//!   channel of the *sending* instance's own process skips Redis and goes straight into the
//!   channel's mailbox, where the capacity holds per channel (Redis would only hand the
//!   message back to us; no other process reads our key, so nothing is visible on the wire).
//! - A full channel is counted ([`LayerStats::full`]) and logged, never dropped silently;
//!   `group_send` reports full members in its [`parley_layer::GroupSendReport`].
//! - One receive loop per process key (and per received normal channel), on its own
//!   connection outside the pool; it reconnects by itself with a capped backoff. After a
//!   blocking pop it takes what else waits, up to 64 messages per round trip (one pop per
//!   round trip drained a process key too slowly in bursts, and senders met its capacity),
//!   and puts what it popped into local mailboxes before popping more, so a Redis restart
//!   loses nothing already popped. (The only window left is a reply lost on the wire while
//!   the connection dies; channels_redis's in-flight set narrows but does not close it either.)
//! - `receive` on a process-specific name this instance did not create reads that name's
//!   process key, as a channels_redis layer with that client prefix would (channels_redis
//!   refuses). Never do it for a live process: two readers of one key steal its messages.
//! - Expired messages are also dropped at receive time (channels_redis leaves a TODO there).
//! - **While Redis is unreachable** the layer keeps going for this process: it keeps its own
//!   group memberships beside Redis, a group send that cannot read its members from Redis
//!   reaches this process's members from there (the report's `local_only` says so), a
//!   `group_add` holds locally and a `group_discard` is queued. When a receive loop
//!   reconnects, the queued discards are removed from Redis and every membership is written
//!   again, then [`parley_layer::ChannelLayer::outages`] moves. Nothing different goes over
//!   the wire: the same scripts and keys, only replayed.
//! - Local mailboxes are bounded by `capacity`; when a consumer stops reading, the oldest
//!   message goes (as channels_redis's `BoundedQueue`), counted and logged.
//! - `close_channel` drops the local mailbox, deletes a normal channel's queue and leaves
//!   the groups joined through this instance.
//! - Not supported: per-channel capacities (`channel_capacity`), the JSON serializer,
//!   several Sentinel-managed shards (one is).
//!
//! ## Redis Sentinel
//! With [`RedisLayerConfig::sentinel`] ([`SentinelConfig`]: Sentinel addresses, the
//! monitored `master_name`, an optional Sentinel password) the layer follows a
//! Sentinel-managed primary, as channels_redis does with a host entry
//! `{"sentinels": [...], "master_name": ..., "sentinel_kwargs": {...}}`. Keys and messages do
//! not change. Every new connection, pooled or a receive loop's, asks the Sentinels for the
//! primary first (redis's `SentinelClient`, which checks the answer with `ROLE`); connections
//! in use are never re-checked, so steady state costs what it costs without Sentinel. A
//! failover surfaces as a failed operation (Sentinel closes the demoted primary's clients; a
//! killed primary drops them; a write to a replica fails with `READONLY`): the pool discards
//! that connection and the receive loop reconnects, both to the primary named then. During
//! the window the layer is in its outage mode above (local delivery continues, memberships
//! are restored on the new primary, [`parley_layer::ChannelLayer::outages`] moves).
//! deadpool-redis's own Sentinel manager is not used: it opens connections with redis's
//! default 500 ms response timeout, too short for a large group send.
//!
//! ## Must not depend on
//! A database, an HTTP framework or `parley-domain`: it moves opaque messages.

mod codec;
mod config;
mod error;
mod fernet;
mod hash;
mod layer;
mod mailbox;
mod pool;
mod pump;
mod scripts;

pub use config::{RedisLayerConfig, SentinelConfig};
pub use error::{Error, Result};
pub use layer::{LayerStats, RedisLayer};
