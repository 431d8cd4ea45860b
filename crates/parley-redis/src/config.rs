//! Settings of a [`crate::RedisLayer`], named and defaulted as channels_redis's
//! `RedisChannelLayer` arguments.

use parley_layer::LayerConfig;
use std::time::Duration;

/// How to reach Redis and how to lay data out there. Field names follow channels_redis's
/// `CONFIG` so a deployment can share one configuration with Django.
#[derive(Clone)]
pub struct RedisLayerConfig {
    /// Redis URLs, one per shard (`hosts`). Groups and process-specific channels are spread
    /// over them by channels_redis's consistent hash; every node must list them in the same
    /// order.
    pub hosts: Vec<String>,
    /// Prepended to every key (`prefix`, default `asgi`). Deployments sharing one Redis must
    /// use prefixes where neither is a prefix of the other (`flush` deletes `<prefix>*`).
    pub prefix: String,
    /// Capacity, message expiry and group expiry (`capacity`, `expiry`, `group_expiry`).
    /// Redis keeps whole seconds: expiries round up to at least one second.
    pub layer: LayerConfig,
    /// Keys for Fernet encryption of stored messages (`symmetric_encryption_keys`): the first
    /// encrypts, any decrypts. Empty: messages are stored in clear.
    pub symmetric_encryption_keys: Vec<Vec<u8>>,
    /// Random bytes before each stored message (`random_prefix_length`, 12).
    pub random_prefix_length: usize,
    /// Connections per host in the bounded pool used for sends and group operations.
    pub pool_size: usize,
    /// How long one blocking pop waits before it is re-issued (`brpop_timeout`, 5 s). Also
    /// bounds how long a dead connection goes unnoticed by a receive loop.
    pub block_timeout: Duration,
    /// How long an operation waits for a pooled connection (or to open one) before failing
    /// with `Unavailable`.
    pub connect_timeout: Duration,
    /// Follow a Sentinel-managed primary instead of a fixed address. Then `hosts` holds one
    /// URL whose host is ignored: only its username, password and database apply to the
    /// primary.
    pub sentinel: Option<SentinelConfig>,
}

/// Where the Sentinels are and which primary they manage (channels_redis's host entry
/// `{"sentinels": [...], "master_name": ..., "sentinel_kwargs": {"password": ...}}`).
#[derive(Clone)]
pub struct SentinelConfig {
    /// Sentinel addresses, `host:port` or `redis://host:port`; asked in order.
    pub sentinels: Vec<String>,
    /// The monitored primary's name (`master_name`, Sentinel's `<master-name>`).
    pub master_name: String,
    /// The Sentinels' own password (`sentinel_kwargs={"password": ...}`), if they need one.
    pub sentinel_password: Option<String>,
}

impl SentinelConfig {
    /// Sentinels without a password.
    pub fn new(sentinels: Vec<String>, master_name: impl Into<String>) -> Self {
        Self {
            sentinels,
            master_name: master_name.into(),
            sentinel_password: None,
        }
    }
}

impl std::fmt::Debug for SentinelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelConfig")
            .field("sentinels", &self.sentinels)
            .field("master_name", &self.master_name)
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

impl RedisLayerConfig {
    /// channels_redis's defaults with one host.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            hosts: vec![url.into()],
            prefix: "asgi".to_owned(),
            layer: LayerConfig::default(),
            symmetric_encryption_keys: Vec::new(),
            random_prefix_length: 12,
            pool_size: 16,
            block_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            sentinel: None,
        }
    }

    /// channels_redis's defaults with the primary the Sentinels name. The primary gets no
    /// credentials; for some, set `hosts` to one URL carrying them (its host is ignored),
    /// e.g. `redis://:password@localhost/2`.
    pub fn with_sentinel(sentinel: SentinelConfig) -> Self {
        Self {
            sentinel: Some(sentinel),
            ..Self::new("redis://localhost")
        }
    }

    /// Sets the key prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets capacity and expiries.
    pub fn with_layer(mut self, layer: LayerConfig) -> Self {
        self.layer = layer;
        self
    }

    /// Sets the encryption keys (as strings, like channels_redis's settings).
    pub fn with_encryption_keys<K: AsRef<[u8]>>(mut self, keys: &[K]) -> Self {
        self.symmetric_encryption_keys = keys.iter().map(|k| k.as_ref().to_vec()).collect();
        self
    }
}

impl std::fmt::Debug for RedisLayerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLayerConfig")
            .field("hosts", &self.hosts)
            .field("prefix", &self.prefix)
            .field("layer", &self.layer)
            .field(
                "symmetric_encryption_keys",
                &format_args!("[{} hidden]", self.symmetric_encryption_keys.len()),
            )
            .field("random_prefix_length", &self.random_prefix_length)
            .field("pool_size", &self.pool_size)
            .field("block_timeout", &self.block_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("sentinel", &self.sentinel)
            .finish()
    }
}
