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
//! [`ChannelLayer::outages`]: parley_layer::ChannelLayer::outages

use crate::engine::Inner;
use crate::events;
use parley_domain::{RoomName, UserId};
use parley_layer::ChannelName;
use parley_store::StoreError;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

impl Inner {
    /// Re-checks local memberships once per outage the layer came back from (see the module
    /// documentation). Called by the heartbeat; cheap when nothing happened (one load).
    pub(crate) async fn recheck_after_outage(&self) {
        let outages = self.layer.outages();
        if outages == self.outages_handled.load(Ordering::Relaxed) {
            return;
        }
        if self.recheck_memberships().await {
            self.recheck_standing();
            self.outages_handled.store(outages, Ordering::Relaxed);
        }
    }

    /// Asks every local connection to read its account and its joined rooms' standing from
    /// the store again (each does, on its own task: see `Session::recheck`), through its own
    /// channel, which reaches it even if the layer's backend is down again.
    fn recheck_standing(&self) {
        let channels: Vec<ChannelName> = self.state.lock().connections.keys().cloned().collect();
        let layer = self.layer.clone();
        tokio::spawn(async move {
            for channel in channels {
                if let Err(e) = layer.send(&channel, events::recheck()).await {
                    tracing::warn!(error = %e, %channel, "standing re-check after a layer outage not delivered");
                }
            }
        });
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
