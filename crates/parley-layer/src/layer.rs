//! The channel-layer trait.

use crate::error::Result;
use crate::message::Message;
use crate::names::{ChannelName, GroupName};
use async_trait::async_trait;

/// What a [`ChannelLayer::group_send`] did: how many channels took the message and which
/// ones were full. A full channel is never dropped silently: it is counted here and logged
/// by the layer, and the caller may act on it (the engine disconnects a client whose
/// mailbox overflows).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupSendReport {
    /// Channels the message was queued on.
    pub delivered: usize,
    /// Channels that were at capacity and did not get the message.
    pub full: Vec<ChannelName>,
    /// The shared backend could not be reached: only this process's own members of the group
    /// got the message (a layer that keeps local delivery going through an outage, see
    /// [`ChannelLayer::outages`]). Other processes' members missed it.
    pub local_only: bool,
}

impl GroupSendReport {
    /// Adds another send's report to this one (each full channel listed once).
    pub fn merge(&mut self, other: GroupSendReport) {
        self.delivered += other.delivered;
        self.local_only |= other.local_only;
        for channel in other.full {
            if !self.full.contains(&channel) {
                self.full.push(channel);
            }
        }
    }
}

/// A channel layer: mailboxes (channels), named sets of them (groups), and the operations
/// Django Channels defines over them, with the same semantics:
///
/// - **capacity**: a channel holds at most `capacity` undelivered messages; a send to a full
///   channel fails with [`crate::LayerError::ChannelFull`] (never unbounded memory);
/// - **expiry**: a message not received within `expiry` is dropped;
/// - **group expiry**: a channel added to a group and never discarded leaves the group after
///   `group_expiry`;
/// - a group whose last channel leaves is removed.
///
/// `async_trait` rather than native async fn in traits because the server holds the layer as
/// `Arc<dyn ChannelLayer>`, chosen from configuration at run time, and native async trait
/// methods are not object-safe.
#[async_trait]
pub trait ChannelLayer: Send + Sync + 'static {
    /// A new, unique channel name for one consumer (a connection), like Channels'
    /// `new_channel()`. Backends that route by process return process-specific names
    /// (`specific.<process>!<suffix>`).
    async fn new_channel(&self) -> Result<ChannelName>;

    /// Queues `message` on `channel`. Fails with `ChannelFull` when it is at capacity.
    async fn send(&self, channel: &ChannelName, message: Message) -> Result<()>;

    /// Waits for the next message on `channel`. Only one task should receive from a channel at
    /// a time. Cancel-safe: dropping the future loses no message.
    ///
    /// Backends that buffer on the receiving side (Redis) return
    /// [`crate::LayerError::ChannelFull`] once when they had to drop messages for this channel
    /// because its reader fell behind; the next call carries on with what is queued.
    async fn receive(&self, channel: &ChannelName) -> Result<Message>;

    /// Adds `channel` to `group` (or refreshes its membership, restarting its group expiry).
    async fn group_add(&self, group: &GroupName, channel: &ChannelName) -> Result<()>;

    /// Removes `channel` from `group`; removes the group when it becomes empty.
    async fn group_discard(&self, group: &GroupName, channel: &ChannelName) -> Result<()>;

    /// Queues `message` on every channel of `group`. Full channels are skipped, counted in
    /// the report and logged; the other members still get the message.
    async fn group_send(&self, group: &GroupName, message: Message) -> Result<GroupSendReport>;

    /// Queues `messages` on every channel of `group`, in order: each member receives them in
    /// this order. Same rules as [`ChannelLayer::group_send`]; the report adds up the sends
    /// (`delivered` counts deliveries, `full` lists each full channel once). Stops at the
    /// first error, after the messages before it were sent. Backends override it when they
    /// can do better than one `group_send` per message (Redis reads the members once).
    async fn group_send_all(
        &self,
        group: &GroupName,
        messages: Vec<Message>,
    ) -> Result<GroupSendReport> {
        let mut report = GroupSendReport::default();
        for message in messages {
            report.merge(self.group_send(group, message).await?);
        }
        Ok(report)
    }

    /// Forgets a channel for good: its queued messages and its group memberships. Called when
    /// a connection ends, so nothing it owned lingers until expiry. (Not in Channels' API,
    /// where channels only expire.)
    async fn close_channel(&self, channel: &ChannelName) -> Result<()>;

    /// Drops every channel, group and message this layer instance can see (under its prefix,
    /// for shared backends). For tests and operators.
    async fn flush(&self) -> Result<()>;

    /// How many outages of its shared backend this layer has come back from (a count that
    /// moves once each time the backend is reachable again and this instance's group
    /// memberships are restored in it). Whatever other processes published during an outage
    /// did not reach this one: a caller re-checks what such messages would have changed
    /// (the engine re-reads room memberships from the store). `0` for layers without a
    /// shared backend, which cannot have an outage.
    fn outages(&self) -> u64 {
        0
    }
}

/// A shared layer is a layer: lets code generic over `L: ChannelLayer` (the conformance suite,
/// the engine) take an `Arc<dyn ChannelLayer>` chosen at run time.
#[async_trait]
impl<T: ChannelLayer + ?Sized> ChannelLayer for std::sync::Arc<T> {
    async fn new_channel(&self) -> Result<ChannelName> {
        (**self).new_channel().await
    }
    async fn send(&self, channel: &ChannelName, message: Message) -> Result<()> {
        (**self).send(channel, message).await
    }
    async fn receive(&self, channel: &ChannelName) -> Result<Message> {
        (**self).receive(channel).await
    }
    async fn group_add(&self, group: &GroupName, channel: &ChannelName) -> Result<()> {
        (**self).group_add(group, channel).await
    }
    async fn group_discard(&self, group: &GroupName, channel: &ChannelName) -> Result<()> {
        (**self).group_discard(group, channel).await
    }
    async fn group_send(&self, group: &GroupName, message: Message) -> Result<GroupSendReport> {
        (**self).group_send(group, message).await
    }
    async fn group_send_all(
        &self,
        group: &GroupName,
        messages: Vec<Message>,
    ) -> Result<GroupSendReport> {
        (**self).group_send_all(group, messages).await
    }
    async fn close_channel(&self, channel: &ChannelName) -> Result<()> {
        (**self).close_channel(channel).await
    }
    async fn flush(&self) -> Result<()> {
        (**self).flush().await
    }
    fn outages(&self) -> u64 {
        (**self).outages()
    }
}
