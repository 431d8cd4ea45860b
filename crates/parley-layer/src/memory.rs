//! [`InMemoryLayer`]: the channel layer for one process (its docs say how it works).

use crate::config::LayerConfig;
use crate::error::{LayerError, Result};
use crate::layer::{ChannelLayer, GroupSendReport};
use crate::message::Message;
use crate::names::{ChannelName, GroupName};
use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use rand::distr::{Alphanumeric, SampleString};
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How many independently locked parts the channel table is split into.
const SHARDS: usize = 32;

/// How many full channels a `group_send` warning names (it always gives the count).
const LOGGED_FULL_CHANNELS: usize = 5;

/// An emptied queue whose buffer grew beyond this many slots gives the memory back.
const SHRINK_ABOVE: usize = 64;

/// The prefix of every name [`InMemoryLayer::new_channel`] returns.
const CHANNEL_PREFIX: &str = "specific.inmemory!";

/// A channel layer living in this process's memory, with the semantics of Django Channels'
/// `InMemoryChannelLayer` and mechanics fit for 10,000 connections.
///
/// ## Semantics (as Channels)
/// - `new_channel()` returns `specific.inmemory!<20 random ASCII letters and digits>`
///   (≈ 119 random bits, so names never collide in practice; Channels uses
///   `"{prefix}.inmemory!{12 letters}"`).
/// - Sending to a channel nobody created yet creates its queue; every queue is bounded by
///   `capacity`, and a send to a full one fails with [`LayerError::ChannelFull`].
/// - A message not received within `expiry` is dropped. It no longer counts against capacity.
/// - A channel added to a group leaves it `group_expiry` after its last `group_add`.
/// - `group_send` skips full channels; the other members still get the message.
///
/// Unlike Channels, a channel whose message expired is *not* removed from its groups: the
/// Redis layer does not do that either, and the conformance suite holds both to the same
/// rules. Connections call [`ChannelLayer::close_channel`] when they end instead.
///
/// ## Mechanics
/// - Each live channel is an `Arc<Channel>`: its queue and receiver count under the
///   channel's own mutex, and a [`Notify`]. The name → channel table is split into 32
///   independently locked shards, so senders and receivers of different channels rarely meet
///   on a lock.
/// - A group member holds its channel's `Arc`: `group_send` walks the members under a *read*
///   lock of the group table and locks each member's own mutex, with no hashing and no shard
///   lock. Many group sends run at once; nothing global is held exclusively while receivers
///   are woken.
/// - A receiver counts itself in the mailbox before it waits, and a send wakes it only when
///   one is counted, so an undrained channel costs no wake-ups. A message leaves its queue only
///   under the lock, in the same step in which `receive` returns it: dropping a `receive`
///   future loses nothing.
/// - A channel stays in the table only while it holds messages, has a waiting receiver or is
///   in a group. Expired messages are dropped lazily (on send, receive, group send) and by a
///   sweep of a shard at most once per `expiry`, so channels nobody reads do not accumulate.
/// - Groups map `group → {channel → (membership deadline, channel)}`, with a reverse index
///   `channel → groups` so that `close_channel` touches only that channel's groups. Stale
///   members are skipped and pruned on `group_send`, and swept on `group_add` at most once
///   per `group_expiry`. A group without members is removed.
/// - Messages are `Arc`-backed: a group send to 10,000 channels bumps a reference count
///   10,000 times and copies nothing else.
///
/// Lock order, everywhere: group table, then a shard, then a channel's mutex. A channel is
/// removed from its shard only under the shard lock and its own lock, and only when idle (no
/// messages, receivers or memberships); so whoever holds a membership (under the group table
/// lock) or the shard lock can never be pushing into a channel that has left the table.
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
    /// Channels in the table: with queued messages, a waiting receiver or a group.
    pub channels: usize,
    /// Groups with at least one member (stale members not yet pruned count).
    pub groups: usize,
    /// Channels in the reverse index (member of at least one group).
    pub channels_in_groups: usize,
}

/// One part of the channel table.
struct Shard {
    /// Live channels by name.
    channels: HashMap<ChannelName, Arc<Channel>>,
    /// When to next drop every expired message of this shard and its idle channels.
    next_sweep: Instant,
}

/// One channel: its mailbox and the means to wake its receiver.
struct Channel {
    /// The queue and who still needs this channel.
    mailbox: Mutex<Mailbox>,
    /// Wakes a receiver waiting on this channel.
    notify: Notify,
}

/// A channel's state, under its mutex.
struct Mailbox {
    /// `(deadline, message)`, oldest first. Every message gets the same expiry, so the
    /// deadlines are sorted and expired messages are always at the front.
    queue: VecDeque<(Instant, Message)>,
    /// Receivers inside `receive` on this channel.
    receivers: usize,
    /// Groups holding this channel (each holds its `Arc`).
    memberships: usize,
}

/// A channel's place in a group.
struct Member {
    /// When the membership lapses unless the channel is added again.
    deadline: Instant,
    /// The channel itself, so a group send needs no lookup.
    channel: Arc<Channel>,
}

/// Group memberships, both ways.
#[derive(Default)]
struct Groups {
    /// Members of each group.
    members: HashMap<GroupName, HashMap<ChannelName, Member>>,
    /// Groups of each channel, so closing a channel does not scan every group.
    memberships: HashMap<ChannelName, HashSet<GroupName>>,
    /// When to next prune stale members of every group (`None`: not scheduled yet).
    next_sweep: Option<Instant>,
}

impl Channel {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            mailbox: Mutex::new(Mailbox {
                queue: VecDeque::new(),
                receivers: 0,
                memberships: 0,
            }),
            notify: Notify::new(),
        })
    }

    /// Queues `message` unless the channel is full; false when it is.
    fn push(&self, now: Instant, config: &LayerConfig, message: &Message) -> bool {
        let mut mailbox = self.mailbox.lock();
        mailbox.purge(now);
        if mailbox.queue.len() >= config.capacity {
            return false;
        }
        mailbox
            .queue
            .push_back((now + config.expiry, message.clone()));
        if mailbox.receivers > 0 {
            // Stores a permit if the receiver has not started waiting yet: no lost wake-up.
            self.notify.notify_one();
        }
        true
    }

    /// Drops expired messages; true when nothing keeps the channel in the table any more.
    fn purge_and_check_idle(&self, now: Instant) -> bool {
        let mut mailbox = self.mailbox.lock();
        mailbox.purge(now);
        mailbox.is_idle()
    }
}

impl Mailbox {
    /// Drops the messages whose deadline has passed.
    fn purge(&mut self, now: Instant) {
        while self
            .queue
            .front()
            .is_some_and(|(deadline, _)| *deadline <= now)
        {
            self.queue.pop_front();
        }
        self.shrink_if_empty();
    }

    /// Gives back the buffer of an emptied queue that a burst made large.
    fn shrink_if_empty(&mut self) {
        if self.queue.is_empty() && self.queue.capacity() > SHRINK_ABOVE {
            self.queue = VecDeque::new();
        }
    }

    /// No messages, receivers or memberships: the channel can leave the table.
    fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.receivers == 0 && self.memberships == 0
    }
}

impl Shard {
    /// Sweeps the shard if its time has come.
    fn maybe_sweep(&mut self, now: Instant, config: &LayerConfig) {
        if now >= self.next_sweep {
            self.sweep(now, config);
        }
    }

    /// Drops expired messages and idle channels of the whole shard.
    fn sweep(&mut self, now: Instant, config: &LayerConfig) {
        self.channels
            .retain(|_, channel| !channel.purge_and_check_idle(now));
        self.next_sweep = now + config.expiry;
    }

    /// Removes `name` from the table if nothing needs it any more.
    fn remove_if_idle(&mut self, name: &ChannelName) {
        let idle = self
            .channels
            .get(name)
            .is_some_and(|c| c.mailbox.lock().is_idle());
        if idle {
            self.channels.remove(name);
        }
    }
}

/// Counts a receiver in its channel for as long as it waits; uncounts it however `receive`
/// ends (message, or the future dropped), removing the channel if that left it idle.
struct ReceiverGuard<'a> {
    layer: &'a InMemoryLayer,
    name: &'a ChannelName,
}

impl ReceiverGuard<'_> {
    /// For when the receiver uncounted itself already, under a lock it held anyway.
    fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for ReceiverGuard<'_> {
    fn drop(&mut self) {
        let mut shard = self.layer.shard(self.name).lock();
        // The channel cannot have left the table: it never does while `receivers > 0`.
        if let Some(channel) = shard.channels.get(self.name) {
            let mut mailbox = channel.mailbox.lock();
            mailbox.receivers = mailbox.receivers.saturating_sub(1);
        }
        shard.remove_if_idle(self.name);
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
        let groups = self.groups.read();
        let channels = self.shards.iter().map(|s| s.lock().channels.len()).sum();
        InMemoryStats {
            channels,
            groups: groups.members.len(),
            channels_in_groups: groups.memberships.len(),
        }
    }

    /// Drops every expired message, idle channel and stale group member now, rather than
    /// lazily. Not needed for correctness or bounded memory (the layer sweeps by itself at
    /// most once per expiry period); for tests and for an operator's periodic task.
    pub fn purge_expired(&self) {
        let now = Instant::now();
        let mut groups = self.groups.write();
        self.sweep_groups(&mut groups, now);
        for shard in self.shards.iter() {
            shard.lock().sweep(now, &self.config);
        }
    }

    fn shard_index(&self, channel: &ChannelName) -> usize {
        // `% SHARDS` of a 64-bit hash: the truncation is the point.
        (self.shard_hasher.hash_one(channel.as_str()) % SHARDS as u64) as usize
    }

    fn shard(&self, channel: &ChannelName) -> &Mutex<Shard> {
        &self.shards[self.shard_index(channel)]
    }

    /// Removes `name` from `group` in both maps (and the group or index entry that emptied),
    /// then lets the channel go if nothing else needs it.
    fn remove_member(&self, groups: &mut Groups, group: &GroupName, name: &ChannelName) {
        let Some(members) = groups.members.get_mut(group) else {
            return;
        };
        let Some(member) = members.remove(name) else {
            return;
        };
        if members.is_empty() {
            groups.members.remove(group);
        }
        if let Some(member_of) = groups.memberships.get_mut(name) {
            member_of.remove(group);
            if member_of.is_empty() {
                groups.memberships.remove(name);
            }
        }
        let mut shard = self.shard(name).lock();
        let mut mailbox = member.channel.mailbox.lock();
        mailbox.memberships = mailbox.memberships.saturating_sub(1);
        drop(mailbox);
        shard.remove_if_idle(name);
    }

    /// Removes the members of `group` whose membership has lapsed.
    fn prune_group(&self, groups: &mut Groups, group: &GroupName, now: Instant) {
        let stale: Vec<ChannelName> = match groups.members.get(group) {
            Some(members) => members
                .iter()
                .filter(|(_, m)| m.deadline <= now)
                .map(|(c, _)| c.clone())
                .collect(),
            None => return,
        };
        for name in &stale {
            self.remove_member(groups, group, name);
        }
    }

    /// Removes every lapsed membership, and the groups that leaves empty.
    fn sweep_groups(&self, groups: &mut Groups, now: Instant) {
        let stale: Vec<(GroupName, ChannelName)> = groups
            .members
            .iter()
            .flat_map(|(g, members)| {
                members
                    .iter()
                    .filter(|(_, m)| m.deadline <= now)
                    .map(move |(c, _)| (g.clone(), c.clone()))
            })
            .collect();
        for (group, name) in &stale {
            self.remove_member(groups, group, name);
        }
        groups.next_sweep = Some(now + self.config.group_expiry);
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
        // The shard lock is held while pushing, so the channel cannot leave the table under us.
        let queued = match shard.channels.get(channel) {
            Some(existing) => existing.push(now, &self.config, &message),
            None => {
                let created = Channel::new();
                let queued = created.push(now, &self.config, &message);
                if queued {
                    shard.channels.insert(channel.clone(), created);
                }
                queued
            }
        };
        if queued {
            Ok(())
        } else {
            Err(LayerError::ChannelFull(channel.clone()))
        }
    }

    async fn receive(&self, channel: &ChannelName) -> Result<Message> {
        let mut guard: Option<ReceiverGuard<'_>> = None;
        loop {
            let waiting_on = {
                let now = Instant::now();
                let mut shard = self.shard(channel).lock();
                shard.maybe_sweep(now, &self.config);
                // Looked up before inserting: `entry` would clone the name on every receive.
                let entry = match shard.channels.get(channel) {
                    Some(entry) => entry.clone(),
                    None => shard
                        .channels
                        .entry(channel.clone())
                        .or_insert_with(Channel::new)
                        .clone(),
                };
                let mut mailbox = entry.mailbox.lock();
                mailbox.purge(now);
                if let Some((_, message)) = mailbox.queue.pop_front() {
                    if let Some(g) = guard.take() {
                        g.disarm();
                        mailbox.receivers -= 1;
                    }
                    mailbox.shrink_if_empty();
                    let idle = mailbox.is_idle();
                    drop(mailbox);
                    if idle {
                        shard.channels.remove(channel);
                    }
                    return Ok(message);
                }
                if guard.is_none() {
                    mailbox.receivers += 1;
                    guard = Some(ReceiverGuard {
                        layer: self,
                        name: channel,
                    });
                }
                drop(mailbox);
                entry
            };
            // A send after we released the locks sees `receivers > 0` and leaves a permit,
            // so this cannot miss it. Wake-ups may be spurious: the loop re-checks the queue.
            waiting_on.notify.notified().await;
        }
    }

    async fn group_add(&self, group: &GroupName, channel: &ChannelName) -> Result<()> {
        let now = Instant::now();
        let mut groups = self.groups.write();
        match groups.next_sweep {
            Some(at) if now >= at => self.sweep_groups(&mut groups, now),
            Some(_) => {}
            None => groups.next_sweep = Some(now + self.config.group_expiry),
        }
        let deadline = now + self.config.group_expiry;
        if let Some(member) = groups
            .members
            .get_mut(group)
            .and_then(|m| m.get_mut(channel))
        {
            member.deadline = deadline;
            return Ok(());
        }
        let handle = {
            let mut shard = self.shard(channel).lock();
            let handle = shard
                .channels
                .entry(channel.clone())
                .or_insert_with(Channel::new)
                .clone();
            handle.mailbox.lock().memberships += 1;
            handle
        };
        groups.members.entry(group.clone()).or_default().insert(
            channel.clone(),
            Member {
                deadline,
                channel: handle,
            },
        );
        groups
            .memberships
            .entry(channel.clone())
            .or_default()
            .insert(group.clone());
        Ok(())
    }

    async fn group_discard(&self, group: &GroupName, channel: &ChannelName) -> Result<()> {
        let mut groups = self.groups.write();
        self.remove_member(&mut groups, group, channel);
        Ok(())
    }

    async fn group_send(&self, group: &GroupName, message: Message) -> Result<GroupSendReport> {
        let now = Instant::now();
        let mut report = GroupSendReport::default();
        let mut stale = false;
        {
            let groups = self.groups.read();
            let Some(members) = groups.members.get(group) else {
                return Ok(report);
            };
            for (name, member) in members {
                if member.deadline <= now {
                    stale = true;
                } else if member.channel.push(now, &self.config, &message) {
                    report.delivered += 1;
                } else {
                    report.full.push(name.clone());
                }
            }
        }
        if stale {
            let mut groups = self.groups.write();
            self.prune_group(&mut groups, group, now);
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
        let mut groups = self.groups.write();
        let member_of = groups
            .memberships
            .get(channel)
            .map(|g| g.iter().cloned().collect::<Vec<_>>());
        for group in member_of.iter().flatten() {
            self.remove_member(&mut groups, group, channel);
        }
        let mut shard = self.shard(channel).lock();
        if let Some(entry) = shard.channels.get(channel) {
            let mut mailbox = entry.mailbox.lock();
            mailbox.queue.clear();
            mailbox.shrink_if_empty();
        }
        // A receiver still waiting keeps the channel; it goes when the receiver does.
        shard.remove_if_idle(channel);
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        let mut groups = self.groups.write();
        groups.members.clear();
        groups.memberships.clear();
        for shard in self.shards.iter() {
            shard.lock().channels.retain(|_, channel| {
                let mut mailbox = channel.mailbox.lock();
                mailbox.queue.clear();
                mailbox.shrink_if_empty();
                mailbox.memberships = 0;
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
