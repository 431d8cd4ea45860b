//! The Lua scripts: each operation is one atomic round trip per host. They keep
//! channels_redis's data semantics (the same trims, counts, scores and TTLs).

use redis::Script;
use std::sync::LazyLock;

/// Send to one channel key. KEYS[1] channel key; ARGV: member, score (now), key TTL,
/// capacity, expiry cutoff. Drops expired messages, refuses when the queue holds `capacity`
/// messages (returns 0), else adds the message and refreshes the TTL (returns 1).
pub(crate) static SEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[5])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
",
    )
});

/// The members of a group after dropping those older than the group expiry. KEYS[1] group
/// key; ARGV[1] cutoff.
pub(crate) static GROUP_MEMBERS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
",
    )
});

/// Fan one message out to the channel keys of one host. KEYS: channel keys; ARGV: one member
/// per key, then capacity, score (now), key TTL, expiry cutoff. Returns the 1-based indexes of
/// the keys that were full.
pub(crate) static GROUP_SEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = #KEYS
local capacity = tonumber(ARGV[n + 1])
local now = ARGV[n + 2]
local ttl = ARGV[n + 3]
local cutoff = ARGV[n + 4]
local full = {}
for i = 1, n do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, cutoff)
  if redis.call('ZCARD', KEYS[i]) < capacity then
    redis.call('ZADD', KEYS[i], now, ARGV[i])
    redis.call('EXPIRE', KEYS[i], ttl)
  else
    full[#full + 1] = i
  end
end
return full
",
    )
});

/// Add a channel to a group. KEYS[1] group key; ARGV: channel, score (now), group TTL.
pub(crate) static GROUP_ADD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
",
    )
});

/// Delete every key matching ARGV[1], in batches (channels_redis's flush script).
pub(crate) static FLUSH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local keys = redis.call('keys', ARGV[1])
for i = 1, #keys, 5000 do
  redis.call('del', unpack(keys, i, math.min(i + 4999, #keys)))
end
return #keys
",
    )
});
