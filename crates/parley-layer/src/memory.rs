//! [`InMemoryLayer`]: the channel layer for one process, with the semantics of Django Channels'
//! `InMemoryChannelLayer` and mechanics fit for 10,000 connections.
//!
//! ## Semantics (as Channels)
//! - `new_channel()` returns `specific.inmemory!<20 random ASCII letters and digits>`
//!   (≈ 119 random bits, so names never collide in practice; Channels uses
//!   `"{prefix}.inmemory!{12 letters}"`).
//! - Sending to a channel nobody created yet creates its queue; every queue is bounded by
//!   `capacity`, and a send to a full one fails with [`LayerError::ChannelFull`].
//! - A message not received within `expiry` is dropped. It no longer counts against capacity.
//! - A channel added to a group leaves it `group_expiry` after its last `group_add`.
//! - `group_send` skips full channels; the other members still get the message.
//!
//! Unlike Channels, a channel whose message expired is *not* removed from its groups: the
//! Redis layer does not do that either, and the conformance suite holds both to the same
//! rules. Connections call [`ChannelLayer::close_channel`] when they end instead.
//!
//! ## Mechanics
//! - Channels live in [`SHARDS`] shards, each a `HashMap` under its own mutex, so senders and
//!   receivers of different channels rarely meet on a lock. A group send delivers shard by
//!   shard: one lock per shard, not one per member.
//! - Each mailbox has a [`Notify`]; a receiver registers itself under the shard lock before it
//!   waits, and a send wakes it only when one is registered, so an undrained channel costs no
//!   wake-ups. A message leaves its queue only under the lock, in the same step in which
//!   `receive` returns it: dropping a `receive` future loses nothing.
//! - A mailbox exists only while it holds messages or has a waiting receiver. Expired
//!   messages are dropped lazily (on send, receive, group send) and by a sweep of the shard at
//!   most once per `expiry`, so channels nobody reads from do not accumulate.
//! - Groups map `group → {channel → membership deadline}`, with a reverse index
//!   `channel → groups` so that `close_channel` touches only that channel's groups. Stale
//!   members are skipped and pruned on `group_send`, and swept on `group_add` at most once
//!   per `group_expiry`. A group without members is removed.
//! - Messages are `Arc`-backed: a group send to 10,000 channels bumps a reference count
//!   10,000 times and copies nothing else.

use crate::config::LayerConfig;
use crate::error::{LayerError, Result};
use crate::layer::{ChannelLayer, GroupSendReport};
use crate::message::Message;
use crate::names::{ChannelName, GroupName};
use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use rand::distr::{Alphanumeric, SampleString};
use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How many independently locked parts the channel table is split into.
pub const SHARDS: usize = 32;

/// Below this group size a group send delivers member by member instead of sorting the
/// members by shard first.
const BATCH_THRESHOLD: usize = 8;

/// How many full channels a `group_send` warning names (it always gives the count).
const LOGGED_FULL_CHANNELS: usize = 5;

/// The prefix of every name [`InMemoryLayer::new_channel`] returns.
pub const CHANNEL_PREFIX: &str = "specific.inmemory!";

/// A channel layer living in this process's memory. See the [module docs](self).
///
/// `Send + Sync`; share it as `Arc<InMemoryLayer>` or `Arc<dyn ChannelLayer>`.
pub struct InMemoryLayer {
    /// Capacity and expiry, fixed at construction.
    config: LayerConfig,
    /// The channel table, split by the hash of the channel name.
    shards: Box<[Mutex<Shard>]>,
    /// Picks a channel's shard; randomly seeded so names cannot be chosen to pile on one shard.
    shard_hasher: RandomState,
    /// Group memberships. A read lock for `group_send` (many at once), a write lock to change.
    groups: RwLock<Groups>,
}

/// Counts of what an [`InMemoryLayer`] holds, for tests (no leaks) and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InMemoryStats {
    /// Mailboxes: channels with queued messages or a waiting receiver.
    pub channels: usize,
    /// Groups with at least one member (stale members not yet pruned count).
    pub groups: usize,
    /// Channels in the reverse index (member of at least one group).
    pub channels_in_groups: usize,
}

/// One part of the channel table.
struct Shard {
    /// Mailboxes by channel name.
    channels: HashMap<ChannelName, Mailbox>,
    /// When to next drop every expired message of this shard and its emptied mailboxes.
    next_sweep: Instant,
}

/// One channel's queue and the means to wake its receiver.
struct Mailbox {
    /// `(deadline, message)`, oldest first. Every message gets the same expiry, so the
    /// deadlines are sorted and expired messages are always at the front.
    queue: VecDeque<(Instant, Message)>,
    /// Wakes a receiver waiting on this channel.
    notify: Arc<Notify>,
    /// Receivers inside `receive` on this channel. While non-zero the mailbox is never
    /// removed, so a waiting receiver and later senders always meet on the same `Notify`.
    receivers: usize,
}

/// Group memberships, both ways.
#[derive(Default)]
struct Groups {
    /// Members of each group with the deadline of their membership.
    members: HashMap<GroupName, HashMap<ChannelName, Instant>>,
    /// Groups of each channel, so closing a channel does not scan every group.
    memberships: HashMap<ChannelName, HashSet<GroupName>>,
    /// When to next prune stale members of every group (`None`: not scheduled yet).
    next_sweep: Option<Instant>,
}

impl Mailbox {
    fn new() -> Self {
        Self {
            queue: VecDeque::new(),
            notify: Arc::new(Notify::new()),
            receivers: 0,
        }
    }

    /// Drops the messages whose deadline has passed.
    fn purge(&mut self, now: Instant) {
        while self
            .queue
            .front()
            .is_some_and(|(deadline, _)| *deadline <= now)
        {
            self.queue.pop_front();
        }
    }

    /// Queues `message` unless the mailbox is full; false when it is.
    fn push(&mut self, now: Instant, config: &LayerConfig, message: Message) -> bool {
        self.purge(now);
        if self.queue.len() >= config.capacity {
            return false;
        }
        self.queue.push_back((now + config.expiry, message));
        if self.receivers > 0 {
            // Stores a permit if the receiver has not started waiting yet: no lost wake-up.
            self.notify.notify_one();
        }
        true
    }

    /// Nothing queued and nobody waiting: the mailbox can go.
    fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.receivers == 0
    }
}

impl Shard {
    /// Drops expired messages and idle mailboxes of the whole shard, at most once per
    /// `expiry`, so channels nobody reads from do not keep their mailboxes forever.
    fn maybe_sweep(&mut self, now: Instant, config: &LayerConfig) {
        if now >= self.next_sweep {
            self.sweep(now, config);
        }
    }

    fn sweep(&mut self, now: Instant, config: &LayerConfig) {
        self.channels.retain(|_, mailbox| {
            mailbox.purge(now);
            !mailbox.is_idle()
        });
        self.next_sweep = now + config.expiry;
    }

    /// Queues `message` on `channel`, creating its mailbox if needed.
    fn deliver(
        &mut self,
        now: Instant,
        config: &LayerConfig,
        channel: &ChannelName,
        message: Message,
    ) -> bool {
        if let Some(mailbox) = self.channels.get_mut(channel) {
            return mailbox.push(now, config, message);
        }
        let mut mailbox = Mailbox::new();
        let queued = mailbox.push(now, config, message);
        if queued {
            self.channels.insert(channel.clone(), mailbox);
        }
        queued
    }
}

impl Groups {
    /// Removes `channel` from `group` in both maps, and the group or index entry it emptied.
    fn remove_member(&mut self, group: &GroupName, channel: &ChannelName) {
        if let Some(members) = self.members.get_mut(group) {
            members.remove(channel);
            if members.is_empty() {
                self.members.remove(group);
            }
        }
        if let Some(groups) = self.memberships.get_mut(channel) {
            groups.remove(group);
            if groups.is_empty() {
                self.memberships.remove(channel);
            }
        }
    }

    /// Removes the members of `group` whose membership deadline has passed.
    fn prune_group(&mut self, group: &GroupName, now: Instant) {
        let stale: Vec<ChannelName> = match self.members.get(group) {
            Some(members) => members
                .iter()
                .filter(|(_, d)| **d <= now)
                .map(|(c, _)| c.clone())
                .collect(),
            None => return,
        };
        for channel in &stale {
            self.remove_member(group, channel);
        }
    }

    /// Prunes every group, at most once per `group_expiry`.
    fn maybe_sweep(&mut self, now: Instant, config: &LayerConfig) {
        match self.next_sweep {
            None => self.next_sweep = Some(now + config.group_expiry),
            Some(at) if now >= at => self.sweep(now, config),
            Some(_) => {}
        }
    }

    /// Removes every stale member, and the groups that leaves empty.
    fn sweep(&mut self, now: Instant, config: &LayerConfig) {
        let stale: Vec<(GroupName, ChannelName)> = self
            .members
            .iter()
            .flat_map(|(g, members)| {
                members
                    .iter()
                    .filter(|(_, d)| **d <= now)
                    .map(move |(c, _)| (g.clone(), c.clone()))
            })
            .collect();
        for (group, channel) in &stale {
            self.remove_member(group, channel);
        }
        self.next_sweep = Some(now + config.group_expiry);
    }
}

/// Counts a receiver in its mailbox for as long as it waits; uncounts it however `receive`
/// ends (message, or the future dropped), removing the mailbox if that left it idle.
struct ReceiverGuard<'a> {
    shard: &'a Mutex<Shard>,
    channel: &'a ChannelName,
}

impl Drop for ReceiverGuard<'_> {
    fn drop(&mut self) {
        let mut shard = self.shard.lock();
        // The mailbox cannot have gone: it is never removed while `receivers > 0`.
        if let Some(mailbox) = shard.channels.get_mut(self.channel) {
            mailbox.receivers = mailbox.receivers.saturating_sub(1);
            if mailbox.is_idle() {
                shard.channels.remove(self.channel);
            }
        }
    }
}

impl InMemoryLayer {
    /// An empty layer with these settings.
    pub fn new(config: LayerConfig) -> Self {
        let now = Instant::now();
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    channels: HashMap::new(),
                    next_sweep: now + config.expiry,
                })
            })
            .collect();
        Self {
            config,
            shards,
            shard_hasher: RandomState::new(),
            groups: RwLock::new(Groups::default()),
        }
    }

    /// The settings this layer was built with.
    pub fn config(&self) -> &LayerConfig {
        &self.config
    }

    /// What the layer holds now. After every channel has been closed (or its messages
    /// received and its groups left), everything is zero: the layer does not leak.
    pub fn stats(&self) -> InMemoryStats {
        let channels = self.shards.iter().map(|s| s.lock().channels.len()).sum();
        let groups = self.groups.read();
        InMemoryStats {
            channels,
            groups: groups.members.len(),
            channels_in_groups: groups.memberships.len(),
        }
    }

    /// Drops every expired message, idle mailbox and stale group member now, rather than
    /// lazily. Not needed for correctness or bounded memory (the layer sweeps by itself at
    /// most once per expiry period); for tests and for an operator's periodic task.
    pub fn purge_expired(&self) {
        let now = Instant::now();
        for shard in self.shards.iter() {
            shard.lock().sweep(now, &self.config);
        }
        self.groups.write().sweep(now, &self.config);
    }

    fn shard_index(&self, channel: &ChannelName) -> usize {
        // `% SHARDS` of a 64-bit hash: the truncation is the point.
        (self.shard_hasher.hash_one(channel.as_str()) % SHARDS as u64) as usize
    }

    fn shard(&self, channel: &ChannelName) -> &Mutex<Shard> {
        &self.shards[self.shard_index(channel)]
    }

    /// Delivers `message` to `members`, shard by shard, recording full channels in `report`.
    fn fan_out<'a>(
        &self,
        now: Instant,
        members: impl Iterator<Item = &'a ChannelName>,
        count: usize,
        message: &Message,
        report: &mut GroupSendReport,
    ) {
        let mut deliver = |shard: &mut Shard, channel: &ChannelName| {
            if shard.deliver(now, &self.config, channel, message.clone()) {
                report.delivered += 1;
            } else {
                report.full.push(channel.clone());
            }
        };
        if count <= BATCH_THRESHOLD {
            for channel in members {
                let mut shard = self.shard(channel).lock();
                shard.maybe_sweep(now, &self.config);
                deliver(&mut shard, channel);
            }
            return;
        }
        let mut by_shard: Vec<(usize, &ChannelName)> =
            members.map(|c| (self.shard_index(c), c)).collect();
        by_shard.sort_unstable_by_key(|(index, _)| *index);
        for run in by_shard.chunk_by(|a, b| a.0 == b.0) {
            let mut shard = self.shards[run[0].0].lock();
            shard.maybe_sweep(now, &self.config);
            for (_, channel) in run {
                deliver(&mut shard, channel);
            }
        }
    }
}

impl Default for InMemoryLayer {
    fn default() -> Self {
        Self::new(LayerConfig::default())
    }
}

impl std::fmt::Debug for InMemoryLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryLayer")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish()
    }
}

#[async_trait]
impl ChannelLayer for InMemoryLayer {
    async fn new_channel(&self) -> Result<ChannelName> {
        let suffix = Alphanumeric.sample_string(&mut rand::rng(), 20);
        ChannelName::parse(&format!("{CHANNEL_PREFIX}{suffix}"))
    }

    async fn send(&self, channel: &ChannelName, message: Message) -> Result<()> {
        let now = Instant::now();
        let mut shard = self.shard(channel).lock();
        shard.maybe_sweep(now, &self.config);
        if shard.deliver(now, &self.config, channel, message) {
            Ok(())
        } else {
            Err(LayerError::ChannelFull(channel.clone()))
        }
    }

    async fn receive(&self, channel: &ChannelName) -> Result<Message> {
        let shard = self.shard(channel);
        let mut guard: Option<ReceiverGuard<'_>> = None;
        loop {
            let notify = {
                let now = Instant::now();
                let mut state = shard.lock();
                let mailbox = match state.channels.entry(channel.clone()) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => e.insert(Mailbox::new()),
                };
                mailbox.purge(now);
                if let Some((_, message)) = mailbox.queue.pop_front() {
                    if let Some(g) = guard.take() {
                        // Uncount ourselves here, under the lock we hold, not in `Drop`.
                        std::mem::forget(g);
                        mailbox.receivers -= 1;
                    }
                    if mailbox.is_idle() {
                        state.channels.remove(channel);
                    }
                    return Ok(message);
                }
                if guard.is_none() {
                    mailbox.receivers += 1;
                    guard = Some(ReceiverGuard { shard, channel });
                }
                mailbox.notify.clone()
            };
            // A send after we released the lock sees `receivers > 0` and leaves a permit,
            // so this cannot miss it. Wake-ups may be spurious: the loop re-checks the queue.
            notify.notified().await;
        }
    }

    async fn group_add(&self, group: &GroupName, channel: &ChannelName) -> Result<()> {
        let now = Instant::now();
        let mut groups = self.groups.write();
        groups.maybe_sweep(now, &self.config);
        let deadline = now + self.config.group_expiry;
        groups
            .members
            .entry(group.clone())
            .or_default()
            .insert(channel.clone(), deadline);
        groups
            .memberships
            .entry(channel.clone())
            .or_default()
            .insert(group.clone());
        Ok(())
    }

    async fn group_discard(&self, group: &GroupName, channel: &ChannelName) -> Result<()> {
        self.groups.write().remove_member(group, channel);
        Ok(())
    }

    async fn group_send(&self, group: &GroupName, message: Message) -> Result<GroupSendReport> {
        let now = Instant::now();
        let mut report = GroupSendReport::default();
        let stale = {
            let groups = self.groups.read();
            let Some(members) = groups.members.get(group) else {
                return Ok(report);
            };
            let live = members
                .iter()
                .filter(|(_, deadline)| **deadline > now)
                .map(|(c, _)| c);
            let stale = members
                .values()
                .filter(|deadline| **deadline <= now)
                .count();
            self.fan_out(now, live, members.len() - stale, &message, &mut report);
            stale
        };
        if stale > 0 {
            self.groups.write().prune_group(group, now);
        }
        if !report.full.is_empty() {
            let sample = &report.full[..report.full.len().min(LOGGED_FULL_CHANNELS)];
            tracing::warn!(
                group = %group,
                full = report.full.len(),
                delivered = report.delivered,
                sample = ?sample,
                "group_send skipped channels at capacity"
            );
        }
        Ok(report)
    }

    async fn close_channel(&self, channel: &ChannelName) -> Result<()> {
        {
            let mut shard = self.shard(channel).lock();
            if let Some(mailbox) = shard.channels.get_mut(channel) {
                mailbox.queue.clear();
                // A receiver still waiting keeps the mailbox; it goes when the receiver does.
                if mailbox.is_idle() {
                    shard.channels.remove(channel);
                }
            }
        }
        let mut groups = self.groups.write();
        if let Some(member_of) = groups.memberships.remove(channel) {
            for group in &member_of {
                groups.remove_member(group, channel);
            }
        }
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        {
            let mut groups = self.groups.write();
            groups.members.clear();
            groups.memberships.clear();
        }
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            shard.channels.retain(|_, mailbox| {
                mailbox.queue.clear();
                mailbox.receivers > 0
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A channel nobody reads from goes with the first operation on its shard after the
    /// sweep time, without `purge_expired`.
    #[tokio::test(start_paused = true)]
    async fn unread_channels_are_swept_by_later_traffic_on_their_shard() {
        let config = LayerConfig {
            expiry: Duration::from_secs(10),
            ..LayerConfig::default()
        };
        let layer = InMemoryLayer::new(config);
        let unread = ChannelName::parse("test.unread").unwrap();
        let shard = layer.shard_index(&unread);
        let neighbour = (0..)
            .map(|i| ChannelName::parse(&format!("test.n{i}")).unwrap())
            .find(|c| layer.shard_index(c) == shard)
            .unwrap();
        layer
            .send(&unread, Message::new("test.message", Default::default()))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            layer.stats().channels,
            1,
            "nothing is swept without traffic"
        );
        layer
            .send(&neighbour, Message::new("test.message", Default::default()))
            .await
            .unwrap();
        layer.receive(&neighbour).await.unwrap();
        assert_eq!(layer.stats().channels, 0);
    }
}
