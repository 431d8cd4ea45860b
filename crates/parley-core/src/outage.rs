//! After a channel-layer outage: what other processes published meanwhile never reached this
//! one, so the changes those messages carried are re-read from the store and applied here:
//! memberships ("you were removed from this room", a ban), and each connection's own standing
//! — its account deactivated or deleted (closed with 4005), signed out by a password reset
//! (4004), made staff or not, muted or unmuted, made owner or member, read-only switched.
//!
//! The layer counts the outages it has come back from ([`ChannelLayer::outages`]); the
//! node's heartbeat compares that count with the last one it handled and, when it moved,
//! checks every local connection's rooms against the store. A connection whose user is no
//! longer a member (or whose room is gone) gets the same `parley.kick` a live removal sends,
//! straight to its own channel, and leaves the room as it would have.
//!
//! The standing re-checks are paced: at most [`RECHECKS_AT_ONCE`] connections are asked at a
//! time, and each reads the store in a join's turn ([`Store::join_turn`]). Asked all at
//! once, the thousands of connections of a loaded process queued for pooled connections past
//! the pool's acquire timeout, and a re-check that failed changed nothing (24,751 failures
//! logged in one storm benchmark: the lost events stayed lost). A re-check the store could
//! not answer is asked again, up to [`RECHECK_ATTEMPTS`] times.
//!
//! [`ChannelLayer::outages`]: parley_layer::ChannelLayer::outages
//! [`Store::join_turn`]: parley_store::Store::join_turn

use crate::engine::Inner;
use crate::events;
use parley_domain::{RoomName, UserId};
use parley_layer::ChannelName;
use parley_store::StoreError;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// Connections re-checking their standing at once after an outage (see the module doc).
/// Each holds a join's turn only while it reads, so this bounds how long one waits for a
/// turn (and its mailbox meanwhile), not the store's load.
pub(crate) const RECHECKS_AT_ONCE: usize = 64;

/// Times one connection is asked to re-check when the store could not answer it.
pub(crate) const RECHECK_ATTEMPTS: u32 = 5;

/// How long a connection's re-check may take before its place goes to the next: the request
/// can be lost (the layer down again), or wait behind a full mailbox. It is then asked again.
const RECHECK_WAIT: Duration = Duration::from_secs(30);

/// Pause before asking again a connection whose re-check the store could not answer.
const RECHECK_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// How one connection's re-check ended, as the pacer sees it.
enum RecheckEnd {
    /// Read and applied, or the connection is gone.
    Done,
    /// The store could not answer, or no answer came in time: ask again.
    Again,
}

impl Inner {
    /// Re-checks local memberships once per outage the layer came back from (see the module
    /// documentation). Called by the heartbeat; cheap when nothing happened (one load).
    pub(crate) async fn recheck_after_outage(self: &Arc<Self>) {
        let outages = self.layer.outages();
        if outages == self.outages_handled.load(Ordering::Relaxed) {
            return;
        }
        if self.recheck_memberships().await {
            let channels: Vec<ChannelName> =
                self.state.lock().connections.keys().cloned().collect();
            tokio::spawn(pace_rechecks(Arc::downgrade(self), channels));
            self.outages_handled.store(outages, Ordering::Relaxed);
        }
    }

    /// Called by a connection when its standing re-check is over: `answered` is false when
    /// the store could not answer (it is then asked again).
    pub(crate) fn recheck_finished(&self, channel: &ChannelName, answered: bool) {
        if let Some(waiting) = self.state.lock().rechecks.remove(channel) {
            // The pacer may have stopped waiting (`RECHECK_WAIT`): nothing to tell then.
            let _ = waiting.send(answered);
        }
    }

    /// Kicks every local connection from the rooms the store says its user left. `false` if
    /// the store could not answer (the next heartbeat tries again).
    async fn recheck_memberships(&self) -> bool {
        let rooms: Vec<(RoomName, Vec<(ChannelName, UserId)>)> = {
            let state = self.state.lock();
            state
                .local_rooms
                .iter()
                .map(|(room, here)| {
                    let channels = here
                        .keys()
                        .filter_map(|channel| {
                            state
                                .connections
                                .get(channel)
                                .map(|(_, user)| (channel.clone(), *user))
                        })
                        .collect();
                    (room.clone(), channels)
                })
                .collect()
        };
        let mut kicked = 0usize;
        for (room, channels) in &rooms {
            let id = match self.store.room_by_name(room).await {
                Ok(found) => Some(found.id),
                Err(StoreError::NotFound(_)) => None,
                Err(e) => {
                    tracing::warn!(error = %e, %room, "re-checking memberships after a layer outage failed");
                    return false;
                }
            };
            let mut member: HashMap<UserId, bool> = HashMap::new();
            for (channel, user) in channels {
                let still = match (id, member.get(user)) {
                    (None, _) => false,
                    (Some(_), Some(&known)) => known,
                    (Some(id), None) => match self.store.is_member(id, *user).await {
                        Ok(is) => *member.entry(*user).or_insert(is),
                        Err(e) => {
                            tracing::warn!(error = %e, %room, "re-checking memberships after a layer outage failed");
                            return false;
                        }
                    },
                };
                if !still {
                    kicked += 1;
                    // The connection's own channel: delivered here even if the layer is down
                    // again.
                    if let Err(e) = self.layer.send(channel, events::kick(room)).await {
                        tracing::warn!(error = %e, %room, %channel, "kick after a layer outage not delivered");
                    }
                }
            }
        }
        tracing::info!(
            rooms = rooms.len(),
            kicked,
            "memberships re-checked against the store after a channel-layer outage"
        );
        true
    }
}

/// Asks each of `channels` to read its account and its joined rooms' standing from the store
/// again (see `Session::recheck`), [`RECHECKS_AT_ONCE`] at a time, through its own channel,
/// which reaches it even if the layer's backend is down again. Stops early if the engine
/// does.
async fn pace_rechecks(engine: Weak<Inner>, channels: Vec<ChannelName>) {
    let asked = channels.len();
    let mut queue: VecDeque<(ChannelName, u32)> = channels.into_iter().map(|c| (c, 1)).collect();
    let mut running: JoinSet<(ChannelName, u32, RecheckEnd)> = JoinSet::new();
    let mut given_up = 0usize;
    loop {
        if running.len() >= RECHECKS_AT_ONCE || (queue.is_empty() && !running.is_empty()) {
            if let Some(Ok((channel, attempt, RecheckEnd::Again))) = running.join_next().await {
                if attempt < RECHECK_ATTEMPTS {
                    queue.push_back((channel, attempt + 1));
                } else {
                    given_up += 1;
                    tracing::warn!(%channel, "a socket's standing could not be re-checked after a layer outage");
                }
            }
            continue;
        }
        let Some((channel, attempt)) = queue.pop_front() else {
            break;
        };
        let Some(inner) = engine.upgrade() else {
            return;
        };
        let (tell, told) = oneshot::channel();
        {
            let mut state = inner.state.lock();
            if !state.connections.contains_key(&channel) {
                continue;
            }
            state.rechecks.insert(channel.clone(), tell);
        }
        if let Err(e) = inner.layer.send(&channel, events::recheck()).await {
            tracing::warn!(error = %e, %channel, "standing re-check after a layer outage not delivered");
            inner.state.lock().rechecks.remove(&channel);
            running.spawn(async move {
                tokio::time::sleep(RECHECK_RETRY_PAUSE).await;
                (channel, attempt, RecheckEnd::Again)
            });
            continue;
        }
        drop(inner);
        running.spawn(async move {
            let end = match tokio::time::timeout(RECHECK_WAIT, told).await {
                Ok(Ok(true)) => RecheckEnd::Done,
                // Dropped unanswered: the connection closed.
                Ok(Err(_)) => RecheckEnd::Done,
                Ok(Ok(false)) => {
                    tokio::time::sleep(RECHECK_RETRY_PAUSE).await;
                    RecheckEnd::Again
                }
                Err(_) => RecheckEnd::Again,
            };
            (channel, attempt, end)
        });
    }
    tracing::info!(
        asked,
        given_up,
        "sockets' standing re-checked against the store after a channel-layer outage"
    );
}
