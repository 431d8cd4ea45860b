//! Process-local mailboxes: where the receive loops put popped messages until `receive`
//! takes them. Once a message is here, a Redis disconnect cannot lose it.

use parking_lot::Mutex;
use parley_layer::Message;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::Notify;

/// One channel's local queue.
#[derive(Default)]
pub(crate) struct Mailbox {
    /// Messages with the score (send time, Unix seconds) Redis stored them under.
    queue: Mutex<VecDeque<(Message, f64)>>,
    /// Wakes the channel's receiver; `notify_one` keeps a permit, so no wake-up is lost
    /// between checking the queue and waiting.
    notify: Notify,
    /// Set when a message was dropped to make room: the next receive reports it (once), so
    /// the consumer learns it fell behind instead of silently missing messages.
    overflowed: AtomicBool,
}

/// The mailbox dropped messages because its consumer did not keep up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overflowed;

impl Mailbox {
    /// The next message not older than `expiry_secs`, waiting for one; `Err(Overflowed)`
    /// once after messages were dropped for room. Cancel-safe: a message leaves the queue only
    /// in the same synchronous step that returns it.
    pub(crate) async fn recv(
        &self,
        expiry_secs: u64,
        expired: &AtomicU64,
    ) -> Result<Message, Overflowed> {
        loop {
            if self.overflowed.swap(false, Ordering::AcqRel) {
                return Err(Overflowed);
            }
            {
                let now = unix_now();
                let mut queue = self.queue.lock();
                while let Some((message, score)) = queue.pop_front() {
                    if !is_expired(score, now, expiry_secs) {
                        return Ok(message);
                    }
                    expired.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.notify.notified().await;
        }
    }
}

/// All local mailboxes of one layer instance, by channel name.
pub(crate) struct Mailboxes {
    map: Mutex<HashMap<String, Arc<Mailbox>>>,
    /// Local queues are bounded by the channel capacity, like channels_redis's BoundedQueue.
    capacity: usize,
}

/// What [`Mailboxes::deliver`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Delivered {
    /// Queued.
    Queued,
    /// Queued, but the queue was full and its oldest message was dropped to make room: the
    /// channel's consumer is not reading.
    DroppedOldest,
}

impl Mailboxes {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The mailbox of `channel`, created when missing.
    pub(crate) fn get(&self, channel: &str) -> Arc<Mailbox> {
        self.map
            .lock()
            .entry(channel.to_owned())
            .or_default()
            .clone()
    }

    /// Queues `message` for `channel` and wakes its receiver.
    pub(crate) fn deliver(&self, channel: &str, message: Message, score: f64) -> Delivered {
        let mailbox = self.get(channel);
        let outcome = {
            let mut queue = mailbox.queue.lock();
            let outcome = if queue.len() >= self.capacity {
                queue.pop_front();
                mailbox.overflowed.store(true, Ordering::Release);
                Delivered::DroppedOldest
            } else {
                Delivered::Queued
            };
            queue.push_back((message, score));
            outcome
        };
        mailbox.notify.notify_one();
        outcome
    }

    /// Queues `message` for `channel` unless it already holds `capacity` unexpired messages
    /// (then gives it back). For sends within this process, which skip Redis.
    pub(crate) fn try_deliver(
        &self,
        channel: &str,
        message: Message,
        score: f64,
        expiry_secs: u64,
    ) -> Result<(), Message> {
        let mailbox = self.get(channel);
        {
            let mut queue = mailbox.queue.lock();
            if queue.len() >= self.capacity {
                let now = unix_now();
                queue.retain(|(_, s)| !is_expired(*s, now, expiry_secs));
                if queue.len() >= self.capacity {
                    return Err(message);
                }
            }
            queue.push_back((message, score));
        }
        mailbox.notify.notify_one();
        Ok(())
    }

    /// Forgets `channel`'s mailbox and what it holds.
    pub(crate) fn remove(&self, channel: &str) {
        self.map.lock().remove(channel);
    }

    /// Forgets every mailbox.
    pub(crate) fn clear(&self) {
        self.map.lock().clear();
    }

    /// Drops mailboxes nobody waits on whose messages have all expired (channels that were
    /// sent to but never received from, or closed without `close_channel`). Returns how many
    /// messages were dropped with them.
    pub(crate) fn sweep(&self, expiry_secs: u64) -> usize {
        let now = unix_now();
        let mut dropped = 0;
        self.map.lock().retain(|_, mailbox| {
            if Arc::strong_count(mailbox) > 1 {
                return true;
            }
            let mut queue = mailbox.queue.lock();
            let before = queue.len();
            queue.retain(|(_, score)| !is_expired(*score, now, expiry_secs));
            dropped += before - queue.len();
            !queue.is_empty()
        });
        dropped
    }

    /// Number of mailboxes (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.lock().len()
    }
}

/// channels_redis's expiry test: a message scored `score` is gone once
/// `score <= int(now) - expiry`.
pub(crate) fn is_expired(score: f64, now: f64, expiry_secs: u64) -> bool {
    score <= now.floor() - expiry_secs as f64
}

/// Now, in Unix seconds, as channels_redis scores messages (`time.time()`).
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    #[tokio::test]
    async fn bounded_expiring_and_swept() {
        let boxes = Mailboxes::new(2);
        let m = |k: &str| Message::new(k, Map::new());
        let now = unix_now();
        assert_eq!(boxes.deliver("a", m("old"), now - 100.0), Delivered::Queued);
        assert_eq!(boxes.deliver("a", m("one"), now), Delivered::Queued);
        assert_eq!(boxes.deliver("a", m("two"), now), Delivered::DroppedOldest);
        let expired = AtomicU64::new(0);
        let mailbox = boxes.get("a");
        assert_eq!(
            mailbox.recv(60, &expired).await.err(),
            Some(Overflowed),
            "the reader hears of the drop first"
        );
        assert_eq!(
            mailbox
                .recv(60, &expired)
                .await
                .map(|m| m.kind().to_owned()),
            Ok("one".into())
        );
        assert_eq!(
            mailbox
                .recv(60, &expired)
                .await
                .map(|m| m.kind().to_owned()),
            Ok("two".into())
        );
        assert_eq!(
            expired.load(Ordering::Relaxed),
            0,
            "the old one was dropped for room"
        );
        drop(mailbox);
        boxes.deliver("b", m("stale"), now - 100.0);
        assert_eq!(boxes.sweep(60), 1);
        assert_eq!(boxes.len(), 0);
    }
}
