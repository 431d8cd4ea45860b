//! [`RedisLayer`]: the channel-layer trait over Redis, in channels_redis's data layout.

use crate::codec::{Codec, Envelope};
use crate::config::RedisLayerConfig;
use crate::error::{Error, Result, unavailable};
use crate::fernet::MultiFernet;
use crate::hash::consistent_hash;
use crate::mailbox::{Mailboxes, unix_now};
use crate::pool::{Conn, Endpoint, LayerManager, Pool, discard};
use crate::pump::{Pump, Target};
use crate::scripts;
use async_trait::async_trait;
use deadpool_redis::{Manager, Runtime};
use parking_lot::Mutex;
use parley_layer::{ChannelLayer, ChannelName, GroupName, GroupSendReport, LayerError, Message};
use redis::AsyncConnectionConfig;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Counters of what a layer refused or dropped, so nothing is lost silently. Every event
/// counted here is also logged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// Sends (or group-send deliveries) refused because the channel was at capacity.
    pub full: u64,
    /// Popped messages that could not be decoded: wrong encryption keys, not msgpack, no
    /// `type`, or no `__asgi_channel__` on a process key.
    pub undecodable: u64,
    /// Messages dropped because they outlived the expiry before being received.
    pub expired: u64,
    /// Messages dropped from a local mailbox whose consumer stopped reading (the oldest goes,
    /// as in channels_redis).
    pub local_overflow: u64,
    /// Times a receive loop reconnected after losing Redis.
    pub reconnects: u64,
}

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) full: AtomicU64,
    pub(crate) undecodable: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) local_overflow: AtomicU64,
    pub(crate) reconnects: AtomicU64,
}

/// What the receive loops share with the layer.
pub(crate) struct Shared {
    pub(crate) mailboxes: Mailboxes,
    pub(crate) codec: Codec,
    pub(crate) stats: Stats,
    /// Message expiry in whole seconds, as Redis keeps it.
    pub(crate) expiry_secs: u64,
    /// Signalled by a receive loop that reconnected after losing Redis: the layer then
    /// restores its memberships there ([`RedisLayer::restore`]).
    pub(crate) reconnected: tokio::sync::Notify,
    /// Outages come back from (see [`ChannelLayer::outages`]).
    pub(crate) outages: AtomicU64,
    /// Set while Redis is known to be unreachable (a group send fell back to local delivery);
    /// logs the fallback once per outage instead of once per message.
    pub(crate) degraded: AtomicBool,
}

/// This instance's own group memberships, kept here as well as in Redis: while Redis is
/// down, group sends reach this process's members from here, and when it is back the
/// memberships are written to it again.
#[derive(Default)]
struct Local {
    /// Groups joined through this instance, by channel, so `close_channel` can leave them.
    by_channel: HashMap<String, HashSet<String>>,
    /// This instance's channels, by group.
    by_group: HashMap<String, HashSet<String>>,
    /// `(group, channel)` memberships discarded while Redis was down: removed from Redis once
    /// it is back, or other processes' sends would still reach the channel there.
    pending_discards: Vec<(String, String)>,
    /// Memberships whose write to Redis failed (Redis down, or no pooled connection free in
    /// time during a join storm), by group, until the restore writes them. A group send that
    /// reads its members from Redis adds these: their channels are this process's, and they
    /// would miss every message of the group until then (240 deliveries lost in one 19,000
    /// client storm benchmark, whose senders then stalled).
    pending_adds: HashMap<String, HashSet<String>>,
}

impl Local {
    fn add(&mut self, group: &str, channel: &str) {
        self.by_channel
            .entry(channel.to_owned())
            .or_default()
            .insert(group.to_owned());
        self.by_group
            .entry(group.to_owned())
            .or_default()
            .insert(channel.to_owned());
    }

    fn remove(&mut self, group: &str, channel: &str) {
        self.written(group, channel);
        if let Some(groups) = self.by_channel.get_mut(channel) {
            groups.remove(group);
            if groups.is_empty() {
                self.by_channel.remove(channel);
            }
        }
        if let Some(channels) = self.by_group.get_mut(group) {
            channels.remove(channel);
            if channels.is_empty() {
                self.by_group.remove(group);
            }
        }
    }

    /// The membership is in Redis now (or gone): no longer pending.
    fn written(&mut self, group: &str, channel: &str) {
        if let Some(channels) = self.pending_adds.get_mut(group) {
            channels.remove(channel);
            if channels.is_empty() {
                self.pending_adds.remove(group);
            }
        }
    }

    /// This process's members of `group` that Redis does not know of yet.
    fn pending_members(&self, group: &str) -> Vec<String> {
        self.pending_adds
            .get(group)
            .map(|channels| channels.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn contains(&self, group: &str, channel: &str) -> bool {
        self.by_group
            .get(group)
            .is_some_and(|channels| channels.contains(channel))
    }
}

/// A channel layer on Redis, wire-compatible with channels_redis 4.x's `RedisChannelLayer`
/// (see the crate documentation for what exactly is matched). Cheap to clone; the receive
/// loops stop when the last clone is dropped or [`RedisLayer::close`] is called.
#[derive(Clone)]
pub struct RedisLayer {
    inner: Arc<Inner>,
}

struct Inner {
    config: RedisLayerConfig,
    /// One bounded pool per host, for sends and group operations.
    pools: Vec<Pool>,
    /// One endpoint per host, for the receive loops' dedicated connections.
    clients: Vec<Endpoint>,
    shared: Arc<Shared>,
    /// This instance's process name: its channels are `specific.<client_prefix>!<suffix>`.
    client_prefix: String,
    /// `specific.<client_prefix>!`: the non-local name all this process's channels share.
    process_name: String,
    /// Running receive loops, by Redis key.
    pumps: Mutex<HashMap<String, JoinHandle<()>>>,
    /// Group memberships made through this instance.
    local: Mutex<Local>,
    /// Set while `local.pending_adds` may hold a membership (see `RedisLayer::pending_members`).
    any_pending: AtomicBool,
    group_expiry_secs: u64,
    /// The task that restores memberships in Redis after an outage.
    restorer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for (_, pump) in self.pumps.get_mut().drain() {
            pump.abort();
        }
        if let Some(restorer) = self.restorer.get_mut().take() {
            restorer.abort();
        }
    }
}

/// How long the restorer waits before trying again when Redis went away during a restore.
const RESTORE_RETRY: Duration = Duration::from_millis(500);

/// Restores the layer's memberships in Redis each time a receive loop reconnects, then counts
/// the outage as over. Holds the layer only while restoring, so dropping it ends this.
async fn restorer(shared: Arc<Shared>, layer: Weak<Inner>) {
    loop {
        shared.reconnected.notified().await;
        loop {
            let Some(inner) = layer.upgrade() else {
                return;
            };
            let layer = RedisLayer { inner };
            match layer.restore().await {
                Ok(memberships) => {
                    shared.degraded.store(false, Ordering::Relaxed);
                    shared.outages.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        memberships,
                        "Redis is back: this process's group memberships restored"
                    );
                    break;
                }
                Err(e) => {
                    drop(layer);
                    tracing::warn!(error = %e, retry_in = ?RESTORE_RETRY, "restoring group memberships in Redis failed");
                    tokio::time::sleep(RESTORE_RETRY).await;
                }
            }
        }
    }
}

fn whole_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

impl RedisLayer {
    /// Builds the layer and checks that every host answers.
    pub async fn connect(config: RedisLayerConfig) -> Result<Self> {
        if config.hosts.is_empty() {
            return Err(Error::InvalidConfig("at least one host is needed".into()));
        }
        if config.layer.capacity == 0 || config.pool_size == 0 {
            return Err(Error::InvalidConfig(
                "capacity and pool_size must be positive".into(),
            ));
        }
        let conn_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            // A group send to 10,000 members is one script: give it time.
            .set_response_timeout(Some(Duration::from_secs(10)));
        if config.sentinel.is_some() && config.hosts.len() != 1 {
            return Err(Error::InvalidConfig(
                "with Sentinel, hosts holds exactly one URL (the primary's credentials)".into(),
            ));
        }
        let mut pools = Vec::with_capacity(config.hosts.len());
        let mut clients = Vec::with_capacity(config.hosts.len());
        for url in &config.hosts {
            let invalid = |source| Error::InvalidUrl {
                url: url.clone(),
                source,
            };
            let manager = match &config.sentinel {
                None => {
                    clients.push(Endpoint::Direct(
                        redis::Client::open(url.as_str()).map_err(invalid)?,
                    ));
                    LayerManager::Direct(
                        Manager::new_with_config(url.as_str(), conn_config.clone())
                            .map_err(invalid)?,
                    )
                }
                Some(sentinel) => {
                    let endpoint = sentinel_endpoint(sentinel, url)?;
                    clients.push(endpoint.clone());
                    LayerManager::Sentinel {
                        endpoint,
                        config: conn_config.clone(),
                    }
                }
            };
            let pool = Pool::builder(manager)
                .max_size(config.pool_size)
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(config.connect_timeout))
                .create_timeout(Some(config.connect_timeout))
                .recycle_timeout(Some(config.connect_timeout))
                .build()
                .map_err(|e| Error::Pool(e.to_string()))?;
            let mut conn = pool
                .get()
                .await
                .map_err(|e| Error::Pool(format!("{url}: {e}")))?;
            redis::cmd("PING")
                .query_async::<()>(&mut *conn)
                .await
                .map_err(|e| Error::Pool(format!("{url}: {e}")))?;
            pools.push(pool);
        }
        let expiry_secs = whole_secs(config.layer.expiry);
        let crypter = MultiFernet::from_configured_keys(&config.symmetric_encryption_keys);
        let client_prefix = uuid::Uuid::new_v4().simple().to_string();
        let shared = Arc::new(Shared {
            mailboxes: Mailboxes::new(config.layer.capacity),
            codec: Codec::new(config.random_prefix_length, crypter, expiry_secs),
            stats: Stats::default(),
            expiry_secs,
            reconnected: tokio::sync::Notify::new(),
            outages: AtomicU64::new(0),
            degraded: AtomicBool::new(false),
        });
        let inner = Arc::new(Inner {
            process_name: format!("specific.{client_prefix}!"),
            client_prefix,
            group_expiry_secs: whole_secs(config.layer.group_expiry),
            config,
            pools,
            clients,
            shared: shared.clone(),
            pumps: Mutex::new(HashMap::new()),
            local: Mutex::new(Local::default()),
            any_pending: AtomicBool::new(false),
            restorer: Mutex::new(None),
        });
        *inner.restorer.lock() = Some(tokio::spawn(restorer(shared, Arc::downgrade(&inner))));
        Ok(Self { inner })
    }

    /// After an outage: removes from Redis the memberships discarded meanwhile, then writes
    /// every membership of this instance again (Redis may have restarted empty, and those
    /// made during the outage never reached it). Returns how many were written.
    async fn restore(&self) -> parley_layer::Result<usize> {
        let pending = std::mem::take(&mut self.inner.local.lock().pending_discards);
        for (i, (group, channel)) in pending.iter().enumerate() {
            if let Err(e) = self.redis_group_discard(group, channel).await {
                self.inner
                    .local
                    .lock()
                    .pending_discards
                    .extend(pending[i..].iter().cloned());
                return Err(e);
            }
        }
        let memberships: Vec<(String, String)> = {
            let local = self.inner.local.lock();
            local
                .by_group
                .iter()
                .flat_map(|(group, channels)| channels.iter().map(|c| (group.clone(), c.clone())))
                .collect()
        };
        for (group, channel) in &memberships {
            self.redis_group_add(group, channel).await?;
            self.inner.local.lock().written(group, channel);
        }
        // A membership discarded while the loop above ran may have been written again:
        // take it out once more.
        for (group, channel) in &memberships {
            if !self.inner.local.lock().contains(group, channel) {
                self.redis_group_discard(group, channel).await?;
            }
        }
        Ok(memberships.len())
    }

    async fn redis_group_add(&self, group: &str, channel: &str) -> parley_layer::Result<()> {
        let mut conn = self.conn(self.shard(group)).await?;
        let _: i64 = scripts::GROUP_ADD
            .key(self.group_key(group))
            .arg(channel)
            .arg(unix_now())
            .arg(self.inner.group_expiry_secs)
            .invoke_async(&mut *conn)
            .await
            .map_err(|e| failed(conn, e))?;
        Ok(())
    }

    async fn redis_group_discard(&self, group: &str, channel: &str) -> parley_layer::Result<()> {
        let mut conn = self.conn(self.shard(group)).await?;
        // Redis deletes a sorted set when its last member goes: an empty group disappears.
        let _: i64 = redis::cmd("ZREM")
            .arg(self.group_key(group))
            .arg(channel)
            .query_async(&mut *conn)
            .await
            .map_err(|e| failed(conn, e))?;
        Ok(())
    }

    /// Notes that Redis is unreachable (logged once per outage).
    fn note_degraded(&self, group: &GroupName, error: &LayerError) {
        if !self.inner.shared.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(%group, %error, "Redis unreachable: group sends reach this process's own members only until it is back");
        }
    }

    /// A group send while Redis is down: this instance's own members of `group` get
    /// `messages` straight into their mailboxes; the report says it was local only.
    fn send_locally(&self, group: &GroupName, messages: &[Message]) -> GroupSendReport {
        let channels: Vec<String> = self
            .inner
            .local
            .lock()
            .by_group
            .get(group.as_str())
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default();
        let mut report = GroupSendReport {
            local_only: true,
            ..GroupSendReport::default()
        };
        for message in messages {
            for name in &channels {
                let Ok(channel) = ChannelName::parse(name) else {
                    continue;
                };
                match self.send_local(&channel, message.clone()) {
                    Ok(()) => report.delivered += 1,
                    Err(_) => {
                        if !report.full.contains(&channel) {
                            report.full.push(channel);
                        }
                    }
                }
            }
        }
        report
    }

    /// The settings this layer runs with.
    pub fn config(&self) -> &RedisLayerConfig {
        &self.inner.config
    }

    /// This instance's process name (channels_redis's `client_prefix`).
    pub fn client_prefix(&self) -> &str {
        &self.inner.client_prefix
    }

    /// What this layer refused or dropped so far.
    pub fn stats(&self) -> LayerStats {
        let s = &self.inner.shared.stats;
        LayerStats {
            full: s.full.load(Ordering::Relaxed),
            undecodable: s.undecodable.load(Ordering::Relaxed),
            expired: s.expired.load(Ordering::Relaxed),
            local_overflow: s.local_overflow.load(Ordering::Relaxed),
            reconnects: s.reconnects.load(Ordering::Relaxed),
        }
    }

    /// Stops the receive loops and closes the pools (their connections close when returned).
    /// Messages already in local mailboxes stay receivable.
    pub fn close(&self) {
        for (_, pump) in self.inner.pumps.lock().drain() {
            pump.abort();
        }
        if let Some(restorer) = self.inner.restorer.lock().take() {
            restorer.abort();
        }
        for pool in &self.inner.pools {
            pool.close();
        }
    }

    /// The Redis key of a channel's queue: the prefix, then the non-local name (the whole
    /// name for normal channels), with no separator, as channels_redis does.
    fn channel_key(&self, non_local: &str) -> String {
        format!("{}{}", self.inner.config.prefix, non_local)
    }

    fn group_key(&self, group: &str) -> String {
        format!("{}:group:{}", self.inner.config.prefix, group)
    }

    fn shard(&self, value: &str) -> usize {
        consistent_hash(value, self.inner.pools.len())
    }

    async fn conn(&self, shard: usize) -> parley_layer::Result<Conn> {
        match self.inner.pools.get(shard) {
            Some(pool) => pool.get().await.map_err(unavailable),
            None => Err(LayerError::Closed),
        }
    }

    /// Starts the receive loop for `key` on `shard` unless it runs.
    fn ensure_pump(&self, key: String, shard: usize, target: Target) {
        let mut pumps = self.inner.pumps.lock();
        if pumps.get(&key).is_some_and(|p| !p.is_finished()) {
            return;
        }
        let Some(client) = self.inner.clients.get(shard) else {
            return;
        };
        let pump = Pump {
            shared: self.inner.shared.clone(),
            client: client.clone(),
            key: key.clone(),
            target,
            block_timeout: self.inner.config.block_timeout,
            connect_timeout: self.inner.config.connect_timeout,
        };
        pumps.insert(key, tokio::spawn(pump.run()));
    }

    /// A send to one of this process's own channels goes straight into its mailbox: Redis
    /// would only hand it back to us, and the mailbox knows the channel's own count, so the
    /// capacity holds per channel (channels_redis counts it per process key).
    fn send_local(&self, channel: &ChannelName, message: Message) -> parley_layer::Result<()> {
        let shared = &self.inner.shared;
        match shared.mailboxes.try_deliver(
            channel.as_str(),
            message,
            unix_now(),
            shared.expiry_secs,
        ) {
            Ok(()) => Ok(()),
            Err(_) => {
                shared.stats.full.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%channel, "channel full: message refused");
                Err(LayerError::ChannelFull(channel.clone()))
            }
        }
    }

    /// The live members of `group` (expired memberships left out).
    async fn group_members(&self, group: &GroupName) -> parley_layer::Result<Vec<String>> {
        let now = unix_now();
        let mut conn = self.conn(self.shard(group.as_str())).await?;
        scripts::GROUP_MEMBERS
            .key(self.group_key(group.as_str()))
            .arg(Self::expiry_cutoff(now, self.inner.group_expiry_secs))
            .invoke_async(&mut *conn)
            .await
            .map_err(|e| failed(conn, e))
    }

    /// Records a membership of this process whose write to Redis failed: group sends reach it
    /// (see `Local::pending_adds`) until the restore writes it.
    fn keep_pending(&self, group: &str, channel: &str) {
        let mut local = self.inner.local.lock();
        local
            .pending_adds
            .entry(group.to_owned())
            .or_default()
            .insert(channel.to_owned());
        self.inner.any_pending.store(true, Ordering::Relaxed);
    }

    /// This process's members of `group` that Redis does not know of yet; one atomic load
    /// when there are none (every group send asks).
    fn pending_members(&self, group: &str) -> Vec<String> {
        if !self.inner.any_pending.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let local = self.inner.local.lock();
        if local.pending_adds.is_empty() {
            // Set again, under the same lock, by the next `keep_pending`.
            self.inner.any_pending.store(false, Ordering::Relaxed);
        }
        local.pending_members(group)
    }

    /// Queues `message` on each of `members` (channel names of `group`) and on this process's
    /// members Redis does not know of yet (`Local::pending_adds`): this process's own
    /// channels straight into their mailboxes, the others' with one script call per shard.
    async fn send_to_members(
        &self,
        group: &GroupName,
        members: &[String],
        message: &Message,
    ) -> parley_layer::Result<GroupSendReport> {
        let now = unix_now();
        // Channel keys by shard, each with the channels it serves (one message per key, its
        // envelope listing them all, as channels_redis does).
        let mut by_shard: BTreeMap<usize, Vec<(String, Vec<String>)>> = BTreeMap::new();
        let mut key_slot: HashMap<String, (usize, usize)> = HashMap::new();
        let mut report = GroupSendReport::default();
        let pending = self.pending_members(group.as_str());
        let unwritten: Vec<&String> = if pending.is_empty() {
            Vec::new()
        } else {
            let listed: HashSet<&String> = members.iter().collect();
            pending.iter().filter(|m| !listed.contains(m)).collect()
        };
        for member in members.iter().chain(unwritten) {
            if member.starts_with(self.inner.process_name.as_str()) {
                // Our own channels: straight into their mailboxes (see `send_local`).
                let Ok(channel) = ChannelName::parse(member) else {
                    continue;
                };
                match self.send_local(&channel, message.clone()) {
                    Ok(()) => report.delivered += 1,
                    Err(_) => report.full.push(channel),
                }
                continue;
            }
            let non_local = match member.find('!') {
                Some(i) => member[..=i].to_owned(),
                None => member.clone(),
            };
            let key = self.channel_key(&non_local);
            match key_slot.get(&key) {
                Some(&(shard, i)) => {
                    if let Some(entry) = by_shard.get_mut(&shard).and_then(|v| v.get_mut(i)) {
                        entry.1.push(member.clone());
                    }
                }
                None => {
                    let shard = self.shard(&non_local);
                    let keys = by_shard.entry(shard).or_default();
                    key_slot.insert(key.clone(), (shard, keys.len()));
                    keys.push((key, vec![member.clone()]));
                }
            }
        }
        let expiry = self.inner.shared.expiry_secs;
        let cutoff = Self::expiry_cutoff(now, expiry);
        let sends = by_shard.into_iter().map(|(shard, keys)| async move {
            let mut invocation = scripts::GROUP_SEND.prepare_invoke();
            for (key, _) in &keys {
                invocation.key(key);
            }
            for (_, channels) in &keys {
                invocation.arg(
                    self.inner
                        .shared
                        .codec
                        .encode(message.fields(), &Envelope::Many(channels.clone())),
                );
            }
            invocation
                .arg(self.inner.config.layer.capacity)
                .arg(now)
                .arg(expiry)
                .arg(cutoff);
            let mut conn = self.conn(shard).await?;
            let full: Vec<usize> = invocation
                .invoke_async(&mut *conn)
                .await
                .map_err(|e| failed(conn, e))?;
            Ok::<_, LayerError>((keys, full))
        });
        let local_full = report.full.len();
        for result in futures_util::future::join_all(sends).await {
            // Redis went away after the members were read: this process's members have the
            // message; the other processes' could not get it, as during any outage.
            let (keys, full) = match result {
                Ok(sent) => sent,
                Err(e) => {
                    self.note_degraded(group, &e);
                    report.local_only = true;
                    continue;
                }
            };
            let full: HashSet<usize> = full.into_iter().collect();
            for (i, (_, channels)) in keys.into_iter().enumerate() {
                if full.contains(&(i + 1)) {
                    report
                        .full
                        .extend(channels.iter().filter_map(|c| ChannelName::parse(c).ok()));
                } else {
                    report.delivered += channels.len();
                }
            }
        }
        if !report.full.is_empty() {
            self.inner
                .shared
                .stats
                .full
                .fetch_add((report.full.len() - local_full) as u64, Ordering::Relaxed);
            tracing::warn!(%group, full = report.full.len(), delivered = report.delivered, "group send: channels over capacity skipped");
        }
        Ok(report)
    }

    fn expiry_cutoff(now: f64, secs: u64) -> i64 {
        now.floor() as i64 - secs as i64
    }
}

/// `group_send`'s check: the layer's routing key cannot be set by a caller.
fn reject_reserved(message: &Message) -> parley_layer::Result<()> {
    if message.get(crate::codec::CHANNEL_KEY).is_some() {
        return Err(LayerError::InvalidMessage(
            "__asgi_channel__ is reserved".into(),
        ));
    }
    Ok(())
}

#[async_trait]
impl ChannelLayer for RedisLayer {
    async fn new_channel(&self) -> parley_layer::Result<ChannelName> {
        ChannelName::parse(&format!(
            "{}{}",
            self.inner.process_name,
            uuid::Uuid::new_v4().simple()
        ))
    }

    #[tracing::instrument(level = "trace", skip(self, message))]
    async fn send(&self, channel: &ChannelName, message: Message) -> parley_layer::Result<()> {
        if message.get(crate::codec::CHANNEL_KEY).is_some() {
            return Err(LayerError::InvalidMessage(
                "__asgi_channel__ is reserved".into(),
            ));
        }
        // Process-specific channels live on their process's key and shard (the shard of the
        // non-local name, where that process's receive loop reads); normal channels on their
        // own key, on the shard of their name.
        if channel.non_local_prefix() == Some(self.inner.process_name.as_str()) {
            return self.send_local(channel, message);
        }
        let (non_local, envelope) = match channel.non_local_prefix() {
            Some(prefix) => (prefix, Envelope::One(channel.as_str().to_owned())),
            None => (channel.as_str(), Envelope::None),
        };
        let key = self.channel_key(non_local);
        let member = self.inner.shared.codec.encode(message.fields(), &envelope);
        let now = unix_now();
        let expiry = self.inner.shared.expiry_secs;
        let mut conn = self.conn(self.shard(non_local)).await?;
        let queued: i64 = scripts::SEND
            .key(&key)
            .arg(member)
            .arg(now)
            .arg(expiry)
            .arg(self.inner.config.layer.capacity)
            .arg(Self::expiry_cutoff(now, expiry))
            .invoke_async(&mut *conn)
            .await
            .map_err(|e| failed(conn, e))?;
        if queued == 0 {
            self.inner.shared.stats.full.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%channel, "channel full: message refused");
            return Err(LayerError::ChannelFull(channel.clone()));
        }
        Ok(())
    }

    async fn receive(&self, channel: &ChannelName) -> parley_layer::Result<Message> {
        match channel.non_local_prefix() {
            // This process's key (or, when asked for a process-specific name that
            // `new_channel` did not make here, that name's process key: this instance then
            // reads it, as a channels_redis layer with that client prefix would).
            Some(prefix) => {
                let key = self.channel_key(prefix);
                self.ensure_pump(key, self.shard(prefix), Target::Process);
            }
            None => {
                let key = self.channel_key(channel.as_str());
                self.ensure_pump(
                    key,
                    self.shard(channel.as_str()),
                    Target::Channel(channel.to_string()),
                );
            }
        }
        let mailbox = self.inner.shared.mailboxes.get(channel.as_str());
        mailbox
            .recv(
                self.inner.shared.expiry_secs,
                &self.inner.shared.stats.expired,
            )
            .await
            // Messages were dropped because this channel's reader fell behind: say so, so the
            // consumer can act (the engine disconnects such a client) instead of missing them.
            .map_err(|_| LayerError::ChannelFull(channel.clone()))
    }

    async fn group_add(
        &self,
        group: &GroupName,
        channel: &ChannelName,
    ) -> parley_layer::Result<()> {
        self.inner
            .local
            .lock()
            .add(group.as_str(), channel.as_str());
        match self.redis_group_add(group.as_str(), channel.as_str()).await {
            // While Redis is down the membership holds here; it is written to Redis when
            // Redis is back (`restore`). The restore is asked for here too: a failure that
            // breaks no receive loop (no free pooled connection within the timeout, in a join
            // storm) ends no reconnect, and the membership would otherwise never reach Redis.
            Err(LayerError::Unavailable(e)) => {
                tracing::debug!(%group, %channel, error = %e, "group add kept locally until Redis is back");
                self.keep_pending(group.as_str(), channel.as_str());
                self.inner.shared.reconnected.notify_one();
                Ok(())
            }
            Ok(()) => {
                self.inner
                    .local
                    .lock()
                    .written(group.as_str(), channel.as_str());
                Ok(())
            }
            other => other,
        }
    }

    async fn group_discard(
        &self,
        group: &GroupName,
        channel: &ChannelName,
    ) -> parley_layer::Result<()> {
        self.inner
            .local
            .lock()
            .remove(group.as_str(), channel.as_str());
        match self
            .redis_group_discard(group.as_str(), channel.as_str())
            .await
        {
            Err(LayerError::Unavailable(e)) => {
                tracing::debug!(%group, %channel, error = %e, "group discard queued until Redis is back");
                self.inner
                    .local
                    .lock()
                    .pending_discards
                    .push((group.to_string(), channel.to_string()));
                self.inner.shared.reconnected.notify_one();
                Ok(())
            }
            other => other,
        }
    }

    #[tracing::instrument(level = "trace", skip(self, message))]
    async fn group_send(
        &self,
        group: &GroupName,
        message: Message,
    ) -> parley_layer::Result<GroupSendReport> {
        reject_reserved(&message)?;
        let members = match self.group_members(group).await {
            Ok(members) => members,
            Err(e @ LayerError::Unavailable(_)) => {
                self.note_degraded(group, &e);
                return Ok(self.send_locally(group, std::slice::from_ref(&message)));
            }
            Err(e) => return Err(e),
        };
        self.send_to_members(group, &members, &message).await
    }

    /// One read of the group's members for the whole run (a round trip to Redis each
    /// otherwise), then each message in turn, so every member gets them in order.
    #[tracing::instrument(level = "trace", skip(self, messages))]
    async fn group_send_all(
        &self,
        group: &GroupName,
        messages: Vec<Message>,
    ) -> parley_layer::Result<GroupSendReport> {
        for message in &messages {
            reject_reserved(message)?;
        }
        let members = match self.group_members(group).await {
            Ok(members) => members,
            Err(e @ LayerError::Unavailable(_)) => {
                self.note_degraded(group, &e);
                return Ok(self.send_locally(group, &messages));
            }
            Err(e) => return Err(e),
        };
        let mut report = GroupSendReport::default();
        for message in &messages {
            report.merge(self.send_to_members(group, &members, message).await?);
        }
        Ok(report)
    }

    async fn close_channel(&self, channel: &ChannelName) -> parley_layer::Result<()> {
        self.inner.shared.mailboxes.remove(channel.as_str());
        if channel.non_local_prefix().is_none() {
            let key = self.channel_key(channel.as_str());
            if let Some(pump) = self.inner.pumps.lock().remove(&key) {
                pump.abort();
            }
            let mut conn = self.conn(self.shard(channel.as_str())).await?;
            let _: i64 = redis::cmd("DEL")
                .arg(&key)
                .query_async(&mut *conn)
                .await
                .map_err(|e| failed(conn, e))?;
        }
        let groups: Vec<String> = {
            let mut local = self.inner.local.lock();
            let groups: Vec<String> = local
                .by_channel
                .get(channel.as_str())
                .map(|g| g.iter().cloned().collect())
                .unwrap_or_default();
            for group in &groups {
                local.remove(group, channel.as_str());
            }
            groups
        };
        for (i, group) in groups.iter().enumerate() {
            match self.redis_group_discard(group, channel.as_str()).await {
                Ok(()) => {}
                // Left in Redis until it is back (`restore`).
                Err(LayerError::Unavailable(_)) => {
                    self.inner
                        .local
                        .lock()
                        .pending_discards
                        .extend(groups[i..].iter().map(|g| (g.clone(), channel.to_string())));
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn flush(&self) -> parley_layer::Result<()> {
        let pattern = format!("{}*", glob_escape(&self.inner.config.prefix));
        for shard in 0..self.inner.pools.len() {
            let mut conn = self.conn(shard).await?;
            let _: i64 = scripts::FLUSH
                .arg(&pattern)
                .invoke_async(&mut *conn)
                .await
                .map_err(|e| failed(conn, e))?;
        }
        self.inner.shared.mailboxes.clear();
        *self.inner.local.lock() = Local::default();
        Ok(())
    }

    fn outages(&self) -> u64 {
        self.inner.shared.outages.load(Ordering::Relaxed)
    }
}

/// A Redis error during an operation: the connection is dropped if it may be broken, and the
/// caller sees `Unavailable` (transient).
fn failed(conn: Conn, error: redis::RedisError) -> LayerError {
    discard(conn, &error);
    unavailable(error)
}

/// The Sentinel client of `sentinel`, the primary getting `url`'s credentials and database.
fn sentinel_endpoint(sentinel: &crate::SentinelConfig, url: &str) -> Result<Endpoint> {
    use redis::IntoConnectionInfo;
    use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
    if sentinel.sentinels.is_empty() || sentinel.master_name.is_empty() {
        return Err(Error::InvalidConfig(
            "Sentinel needs at least one sentinel address and a master name".into(),
        ));
    }
    let mut nodes = Vec::with_capacity(sentinel.sentinels.len());
    for addr in &sentinel.sentinels {
        let full = if addr.contains("://") {
            addr.clone()
        } else {
            format!("redis://{addr}")
        };
        let mut info =
            full.as_str()
                .into_connection_info()
                .map_err(|source| Error::InvalidUrl {
                    url: addr.clone(),
                    source,
                })?;
        if let Some(password) = &sentinel.sentinel_password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        nodes.push(info);
    }
    let primary = url
        .into_connection_info()
        .map_err(|source| Error::InvalidUrl {
            url: url.to_owned(),
            source,
        })?;
    let node = SentinelNodeConnectionInfo::default()
        .set_redis_connection_info(primary.redis_settings().clone());
    let client = SentinelClient::build(
        nodes,
        sentinel.master_name.clone(),
        Some(node),
        SentinelServerType::Master,
    )
    .map_err(|source| Error::InvalidUrl {
        url: sentinel.sentinels.join(","),
        source,
    })?;
    Ok(Endpoint::Sentinel(Arc::new(tokio::sync::Mutex::new(
        client,
    ))))
}

/// Escapes Redis glob characters so `flush` matches the prefix literally.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::is_expired;

    #[test]
    fn helpers() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        assert_eq!(whole_secs(Duration::from_millis(1500)), 2);
        assert_eq!(whole_secs(Duration::from_millis(10)), 1);
        assert_eq!(whole_secs(Duration::from_secs(60)), 60);
        assert!(is_expired(100.0, 161.5, 60));
        assert!(is_expired(101.0, 161.5, 60));
        assert!(!is_expired(101.5, 161.5, 60));
    }

    async fn next(layer: &RedisLayer, channel: &ChannelName) -> Option<String> {
        tokio::time::timeout(Duration::from_millis(500), layer.receive(channel))
            .await
            .ok()
            .and_then(Result::ok)
            .map(|m| m.kind().to_owned())
    }

    fn message(kind: &str) -> Message {
        Message::new(kind, serde_json::Map::new())
    }

    /// A membership whose write to Redis failed (a join storm left no pooled connection free
    /// in time; the restore writes it later) gets its group's messages meanwhile, once even
    /// when Redis lists it too, and none after it left. (The failure itself is the subject of
    /// `tests/restart.rs`; here it is recorded as `group_add` records it, so that no restore
    /// can write it before the sends.)
    #[tokio::test]
    async fn a_membership_not_yet_in_redis_still_gets_its_groups_messages() {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("parley-test-pending-{}:", uuid::Uuid::new_v4().simple());
        let layer = RedisLayer::connect(RedisLayerConfig::new(url).with_prefix(&prefix))
            .await
            .unwrap();
        let group = GroupName::parse("pending").unwrap();
        let a = layer.new_channel().await.unwrap();
        let b = layer.new_channel().await.unwrap();
        layer.group_add(&group, &a).await.unwrap();
        layer.inner.local.lock().add(group.as_str(), b.as_str());
        layer.keep_pending(group.as_str(), b.as_str());

        let report = layer.group_send(&group, message("m1")).await.unwrap();
        assert_eq!((report.delivered, report.local_only), (2, false));
        assert_eq!(next(&layer, &a).await.as_deref(), Some("m1"));
        assert_eq!(next(&layer, &b).await.as_deref(), Some("m1"));

        // Written to Redis behind the layer's back: listed there and still pending.
        layer
            .redis_group_add(group.as_str(), b.as_str())
            .await
            .unwrap();
        layer.group_send(&group, message("m2")).await.unwrap();
        layer.group_send(&group, message("m3")).await.unwrap();
        assert_eq!(next(&layer, &b).await.as_deref(), Some("m2"));
        assert_eq!(
            next(&layer, &b).await.as_deref(),
            Some("m3"),
            "m2 came twice"
        );

        layer.group_discard(&group, &b).await.unwrap();
        let report = layer.group_send(&group, message("m4")).await.unwrap();
        assert_eq!(report.delivered, 1);
        assert_eq!(next(&layer, &b).await, None);
        layer.flush().await.unwrap();
    }
}
