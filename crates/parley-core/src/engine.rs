//! The engine: shared state of one server process (node) and its background presence task.

use crate::config::EngineConfig;
use crate::error::{EngineError, Result};
use crate::events::{self, Groups};
use crate::limits::{self, Budget, Budgets};
use crate::metrics::METRICS;
use crate::presence::{Fold, PresenceBook, PresenceFolding};
use crate::rooms::Rooms;
use crate::session::Session;
use parking_lot::Mutex;
use parley_auth::Auth;
use parley_domain::protocol::{Dialect, Presence, PresenceEvent, ServerFrame};
use parley_domain::{
    AuditAction, AuditTarget, ClientMsgId, RoomId, RoomName, User, UserId, UserName,
};
use parley_layer::{ChannelLayer, ChannelName, Message};
use parley_store::{AppendBatcher, Appended, NewMessage, Store};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// The chat engine of one server process. Cheap to clone; all clones share one state.
///
/// Start it with [`Engine::start`], then call [`Engine::connect`] for each authenticated
/// connection and drive the returned [`Session`] (or hand it to a [`crate::Connection`]);
/// [`Engine::rooms`] is everything else a user may do with rooms. Call
/// [`Engine::shutdown`] to close every session with "going away".
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    /// Group commit for `send` (see [`EngineConfig::group_commit`]); its writer tasks stop
    /// once this, the only handle, is dropped with the engine's last clone and session,
    /// after storing (and answering) every append already queued.
    batcher: Option<AppendBatcher>,
    pub(crate) layer: Arc<dyn ChannelLayer>,
    /// Checks `renew` tokens and logs out ([`Engine::use_auth`]); unset, sockets cannot
    /// renew on the socket.
    pub(crate) auth: OnceLock<Auth>,
    pub(crate) config: EngineConfig,
    pub(crate) groups: Groups,
    /// This node's own channel: receives other nodes' presence snapshots (see `node_channel`).
    pub(crate) node: ChannelName,
    pub(crate) state: Mutex<State>,
    /// Wakes the node task when a room's snapshot becomes due ([`State::announce_due`]).
    pub(crate) announce_wake: Arc<Notify>,
    /// Set while the heartbeat's search indexing runs (see [`Inner::index_for_search`]).
    pub(crate) indexing: Arc<std::sync::atomic::AtomicBool>,
    pub(crate) shutdown: watch::Sender<bool>,
    /// The layer's outage count ([`ChannelLayer::outages`]) whose memberships were last
    /// re-checked against the store (see `outage.rs`).
    pub(crate) outages_handled: AtomicU64,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) presence: PresenceBook,
    /// Local connections per room, for deliveries that must reach only this node's clients.
    pub(crate) local_rooms: HashMap<RoomName, HashMap<ChannelName, UserName>>,
    /// Each local connection's kill switch (fired when its mailbox overflows) and user (whose
    /// group it is restored to if the layer loses it).
    pub(crate) connections: HashMap<ChannelName, (Arc<Notify>, UserId)>,
    /// Per-user connection counts and message buckets (shared by the user's connections).
    pub(crate) users: HashMap<UserId, UserState>,
    /// Rooms whose presence snapshot is due to the other nodes at the next flush (see
    /// [`ANNOUNCE_COALESCE`]).
    pub(crate) announce_due: HashSet<RoomName>,
    /// When this node's `presence` frames to clients go (at once, or folded at the next flush).
    pub(crate) presence_frames: PresenceFolding,
    /// The connections asked to re-check their standing after a layer outage, each with
    /// where to say that it is done (see `outage.rs`).
    pub(crate) rechecks: HashMap<ChannelName, tokio::sync::oneshot::Sender<bool>>,
}

/// How long a changed room's presence snapshot may wait for more changes before it goes to
/// the other nodes. A join storm (every client of a restarted server back at once) changes a
/// room's presence once per client: one snapshot per change was a node message per join
/// (5,000 in a few seconds), which overflowed the node channels (node events dropped) and
/// queued ahead of chat. Coalesced, every room changed within an interval goes in one
/// message, with its latest users.
pub(crate) const ANNOUNCE_COALESCE: Duration = Duration::from_millis(100);

pub(crate) struct UserState {
    pub(crate) connections: usize,
    /// The user's flood budgets, kept a while after the last connection closed (see
    /// `limits::keep_after_last_connection`).
    pub(crate) budgets: Budgets,
    /// Set when the last connection closed: the entry goes once this has passed.
    pub(crate) forget_at: Option<Instant>,
    /// Sends whose commit may have happened though its answer was lost (the store became
    /// unavailable under it), by room and `client_id`: their retry, which finds the message
    /// stored, broadcasts it (nobody saw it live). At most [`UNSURE_SENDS`].
    pub(crate) unsure: VecDeque<(RoomId, ClientMsgId)>,
}

/// How many unsure sends a user's state remembers (a client retries soon, or not at all).
const UNSURE_SENDS: usize = 32;

impl Engine {
    /// Validates the configuration, opens this node's channel and starts its presence task
    /// and, with [`EngineConfig::group_commit`], the group-commit writer tasks.
    pub async fn start(
        store: Store,
        layer: Arc<dyn ChannelLayer>,
        config: EngineConfig,
    ) -> Result<Self> {
        config.validate()?;
        let node = node_channel(layer.as_ref()).await?;
        let (shutdown, _) = watch::channel(false);
        let batcher = config
            .group_commit
            .map(|opts| AppendBatcher::spawn(store.clone(), opts));
        let inner = Arc::new(Inner {
            batcher,
            store,
            groups: Groups::new(&config.room_group_pattern),
            config,
            node: node.clone(),
            state: Mutex::new(State::default()),
            announce_wake: Arc::new(Notify::new()),
            indexing: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            shutdown,
            outages_handled: AtomicU64::new(layer.outages()),
            layer: layer.clone(),
            auth: OnceLock::new(),
        });
        tokio::spawn(node_task(Arc::downgrade(&inner), layer, node));
        tokio::spawn(guest_task(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    /// Opens a session for an authenticated user, speaking Parley's own protocol: a layer
    /// channel of its own, membership of the user's personal group. Fails with
    /// `TooManyConnections` past the per-user limit.
    pub async fn connect(&self, user: User) -> Result<Session> {
        self.connect_with(user, Dialect::Parley).await
    }

    /// [`Engine::connect`] for a connection speaking `dialect` (the Django tutorial's on
    /// `/ws/chat/{room}`; its room is joined by [`Session::on_open`]).
    pub async fn connect_with(&self, user: User, dialect: Dialect) -> Result<Session> {
        if *self.inner.shutdown.borrow() {
            return Err(EngineError::ShuttingDown);
        }
        // A guest's token outlives a switch to `guests` off by at most its lifetime; its
        // sockets are refused from the switch on.
        if user.is_guest {
            if !self.guests_enabled().await? {
                return Err(crate::access::guest_refused(
                    "guests are not allowed on this server",
                ));
            }
            if let Some(name) = user.username.guest_display()
                && self.inner.store.guest_name_banned(name).await?
            {
                return Err(crate::access::guest_refused("this guest name is banned"));
            }
        }
        {
            let mut state = self.inner.state.lock();
            let limit = self.inner.config.max_connections_per_user;
            let entry = state.users.entry(user.id).or_insert_with(|| UserState {
                connections: 0,
                budgets: Budgets::new(&self.inner.config, user.is_guest),
                forget_at: None,
                unsure: VecDeque::new(),
            });
            entry.forget_at = None;
            if entry.connections >= limit {
                return Err(EngineError::TooManyConnections(limit));
            }
            entry.connections += 1;
        }
        match self.open_channel(&user).await {
            Ok((channel, kill)) => {
                METRICS.sockets_open.increment(1.0);
                Ok(Session::new(
                    self.inner.clone(),
                    user,
                    channel,
                    kill,
                    dialect,
                ))
            }
            Err(e) => {
                self.inner.release_user(user.id);
                Err(e)
            }
        }
    }

    async fn open_channel(&self, user: &User) -> Result<(ChannelName, Arc<Notify>)> {
        let channel = self.inner.layer.new_channel().await?;
        self.inner
            .layer
            .group_add(&self.inner.groups.user(user.id)?, &channel)
            .await?;
        let kill = Arc::new(Notify::new());
        self.inner
            .state
            .lock()
            .connections
            .insert(channel.clone(), (kill.clone(), user.id));
        Ok((channel, kill))
    }

    /// Lets sockets renew their authorization with a fresh access token (`renew`), checked by
    /// `auth`, and logs out through [`Engine::logout`]. Set once; later calls are ignored.
    pub fn use_auth(&self, auth: Auth) {
        if self.inner.auth.set(auth).is_err() {
            tracing::warn!("Engine::use_auth called twice: the first account service stays");
        }
    }

    /// Logs out the login of `refresh` (its token family is revoked: see
    /// [`Auth::logout`]) and closes every socket that login authorized, on every process.
    /// Done once the revocation is stored: when the layer is down, the sockets close at the
    /// re-check after the outage (see `outage.rs`), not at once.
    pub async fn logout(&self, refresh: &str) -> Result<()> {
        let auth = self.inner.auth.get().ok_or_else(|| {
            EngineError::Config("Engine::logout needs Engine::use_auth".to_owned())
        })?;
        let claims = auth.logout(refresh).await?;
        if let Err(e) = self.sign_out(claims.user_id()?, Some(&claims.family)).await {
            tracing::warn!(error = %e, "could not sign a logged-out login's sockets out now: the re-check after the layer outage will");
        }
        Ok(())
    }

    /// Closes `user`'s sockets on every process sharing the layer: those authorized by the
    /// login `family`, or all of them (`None`: a password change, a deactivation).
    pub async fn sign_out(&self, user: UserId, family: Option<&str>) -> Result<()> {
        self.inner
            .layer
            .group_send(&self.inner.groups.user(user)?, events::sign_out(family))
            .await?;
        Ok(())
    }

    /// Bans the guest name `name` (staff only; `forbidden` otherwise): no guest may sign in
    /// under it, and the sockets of guests using it close on every process and are refused
    /// from then on. Returns how many guests were using it.
    pub async fn ban_guest_name(&self, staff: &User, name: &UserName) -> Result<usize> {
        require_staff(staff)?;
        let store = &self.inner.store;
        store.ban_guest_name(name).await?;
        let guests = store.guests_named(name).await?;
        for &guest in &guests {
            self.sign_out(guest, None).await?;
        }
        let target = AuditTarget::default().with_detail(name.as_str());
        self.audit(staff, AuditAction::BanGuestName, target, None)
            .await?;
        Ok(guests.len())
    }

    /// Lifts the ban of the guest name `name` (staff only; `not_found` if it was not banned).
    pub async fn unban_guest_name(&self, staff: &User, name: &UserName) -> Result<()> {
        require_staff(staff)?;
        if self.inner.store.unban_guest_name(name).await? {
            let target = AuditTarget::default().with_detail(name.as_str());
            self.audit(staff, AuditAction::UnbanGuestName, target, None)
                .await?;
            Ok(())
        } else {
            Err(EngineError::refused(
                parley_domain::protocol::ErrorCode::NotFound,
                format!("the guest name {name} is not banned"),
            ))
        }
    }

    /// The rooms service: listing, creating, changing and reading rooms as one user, with
    /// the access policy applied.
    pub fn rooms(&self) -> Rooms {
        self.inner.rooms()
    }

    /// Who is online in `room`, across every node sharing the layer (no access check: see
    /// [`Rooms::online`] for a user's view).
    pub fn online(&self, room: &RoomName) -> Vec<UserName> {
        self.inner.online(room)
    }

    /// Tells every connection of `user` to leave `room` (after the user was removed from it,
    /// or the room was deleted). The connections answer their clients with `left`.
    pub async fn kick(&self, user: UserId, room: &RoomName) -> Result<()> {
        self.inner.kick(user, room).await
    }

    /// Checks that the store and the layer answer.
    pub async fn ready(&self) -> Result<()> {
        self.inner.store.ping().await?;
        // A send to this node's canary group: the layer must look the group up where it
        // keeps groups (Redis), where a send to the node's own channel would be handed to the
        // local mailbox without touching Redis and so prove nothing.
        let canary = self.inner.groups.canary(&self.inner.node)?;
        let report = self
            .inner
            .layer
            .group_send(&canary, events::canary())
            .await?;
        if report.local_only {
            // Delivered to this node's own members only: Redis is down.
            return Err(parley_layer::LayerError::Unavailable(
                "the channel layer's backend is unreachable".to_owned(),
            )
            .into());
        }
        Ok(())
    }

    /// The channel layer the engine fans out through.
    pub fn layer(&self) -> &Arc<dyn ChannelLayer> {
        &self.inner.layer
    }

    /// What a signed-in client is told at `GET /api/config`: the ICE servers for calls, with
    /// TURN credentials minted for `user` (see [`crate::ice`]).
    pub fn client_config(&self, user: &parley_domain::User) -> crate::ice::ClientConfig {
        self.inner
            .config
            .ice
            .client_config(user, std::time::SystemTime::now())
    }

    /// The engine's settings.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Starts shutting down: new connections are refused and every session's
    /// [`Session::recv`] yields [`crate::Inbound::ShuttingDown`].
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Whether [`Engine::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        *self.inner.shutdown.borrow()
    }

    /// Local connections (for metrics and tests).
    pub fn local_connections(&self) -> usize {
        self.inner.state.lock().connections.len()
    }
}

impl Inner {
    pub(crate) fn rooms(self: &Arc<Self>) -> Rooms {
        Rooms::new(Arc::clone(self))
    }

    pub(crate) fn online(&self, room: &RoomName) -> Vec<UserName> {
        self.state.lock().presence.online(room)
    }

    pub(crate) async fn kick(&self, user: UserId, room: &RoomName) -> Result<()> {
        self.layer
            .group_send(&self.groups.user(user)?, events::kick(room))
            .await?;
        Ok(())
    }

    /// Stores sent messages: through the group-commit batcher when configured, else with a
    /// statement of their own. Same contract either way (idempotent on the client id; the
    /// result arrives once the message is committed, or the store's error).
    ///
    /// Several messages are stored in their order, together (one connection's consecutive
    /// sends): one result per message.
    pub(crate) async fn append_all(
        &self,
        new: Vec<NewMessage>,
    ) -> Vec<parley_store::Result<Appended>> {
        match &self.batcher {
            Some(batcher) => batcher.append_all(new).await,
            None => self.store.append_messages(&new).await,
        }
    }

    pub(crate) fn release_user(&self, user: UserId) {
        let mut state = self.state.lock();
        if let Some(entry) = state.users.get_mut(&user) {
            entry.connections = entry.connections.saturating_sub(1);
            if entry.connections == 0 {
                // Kept until the budgets have refilled: reconnecting must not refill them.
                entry.forget_at = Some(limits::forget_at(&self.config));
            }
        }
    }

    /// Takes one token of `user`'s `budget`; on refusal, the error to answer with. A user
    /// without a connection (a REST call) gets budgets too, forgotten once refilled.
    pub(crate) fn take_token(&self, user: &User, budget: Budget) -> Result<()> {
        let mut state = self.state.lock();
        let entry = state.users.entry(user.id).or_insert_with(|| UserState {
            connections: 0,
            budgets: Budgets::new(&self.config, user.is_guest),
            forget_at: Some(limits::forget_at(&self.config)),
            unsure: VecDeque::new(),
        });
        entry.budgets.take(budget).map_err(|retry_after| {
            METRICS.rate_limited(budget);
            EngineError::RateLimited {
                what: budget.what(),
                retry_after,
            }
        })
    }

    /// Remembers a send of `user` whose outcome is unknown (see [`UserState::unsure`]).
    pub(crate) fn remember_unsure(&self, user: UserId, room: RoomId, client_id: ClientMsgId) {
        let mut state = self.state.lock();
        if let Some(entry) = state.users.get_mut(&user) {
            if entry.unsure.contains(&(room, client_id.clone())) {
                return;
            }
            if entry.unsure.len() >= UNSURE_SENDS {
                entry.unsure.pop_front();
            }
            entry.unsure.push_back((room, client_id));
        }
    }

    /// Whether `user`'s send `client_id` in `room` was unsure (and forgets it): its retry
    /// broadcasts the stored message.
    pub(crate) fn take_unsure(&self, user: UserId, room: RoomId, client_id: &ClientMsgId) -> bool {
        let mut state = self.state.lock();
        let Some(entry) = state.users.get_mut(&user) else {
            return false;
        };
        match entry
            .unsure
            .iter()
            .position(|(r, c)| *r == room && c == client_id)
        {
            Some(at) => {
                entry.unsure.remove(at);
                true
            }
            None => false,
        }
    }

    /// Forgets users whose last connection closed long enough ago.
    fn forget_idle_users(&self) {
        let now = Instant::now();
        self.state
            .lock()
            .users
            .retain(|_, entry| entry.forget_at.is_none_or(|at| at > now));
    }

    /// Fires the kill switch of every local channel a group send found full.
    pub(crate) fn kill_full(&self, full: &[ChannelName]) {
        if full.is_empty() {
            return;
        }
        let state = self.state.lock();
        for channel in full {
            if let Some((kill, _)) = state.connections.get(channel) {
                tracing::warn!(%channel, "client reads too slowly: disconnecting it");
                kill.notify_one();
            }
        }
    }

    /// A local connection entered `room`: update presence, tell the room and the other nodes.
    pub(crate) async fn room_entered(
        &self,
        room: &RoomName,
        user: &UserName,
        channel: &ChannelName,
    ) {
        let (snapshot_changed, online) = {
            let mut state = self.state.lock();
            let change = state.presence.local_join(room, user);
            state
                .local_rooms
                .entry(room.clone())
                .or_default()
                .insert(channel.clone(), user.clone());
            // Large rooms: no presence frames, and other nodes learn at the next heartbeat
            // (see `presence_fanout_limit`); the list is not even built.
            let small =
                state.presence.online_upper_bound(room) <= self.config.presence_fanout_limit;
            let online = (change.everywhere && small)
                .then(|| {
                    let fold = state.presence_frames.change(
                        room,
                        user,
                        PresenceEvent::Joined,
                        Some(channel),
                        Instant::now(),
                    );
                    self.now_or_folded(fold, || state.presence.online(room))
                })
                .flatten();
            (change.here, online)
        };
        if snapshot_changed {
            self.announce_soon(room);
        }
        if let Some(online) = online {
            let frame = ServerFrame::Presence(Presence {
                room: room.clone(),
                user: user.clone(),
                event: PresenceEvent::Joined,
                online,
                changes: Vec::new(),
            });
            // The joiner learns the list from its `joined` reply; no echo of its own arrival.
            self.broadcast_event(room, &frame, Some(channel)).await;
        }
    }

    /// A local connection left `room` (or closed).
    pub(crate) async fn room_exited(
        &self,
        room: &RoomName,
        user: &UserName,
        channel: &ChannelName,
    ) {
        let (snapshot_changed, online) = {
            let mut state = self.state.lock();
            let change = state.presence.local_leave(room, user);
            if let Some(here) = state.local_rooms.get_mut(room) {
                here.remove(channel);
                if here.is_empty() {
                    state.local_rooms.remove(room);
                }
            }
            // The size before this user left decides, as for joins.
            let small = state.presence.online_upper_bound(room) < self.config.presence_fanout_limit;
            let online = (change.everywhere && small)
                .then(|| {
                    let fold = state.presence_frames.change(
                        room,
                        user,
                        PresenceEvent::Left,
                        None,
                        Instant::now(),
                    );
                    self.now_or_folded(fold, || state.presence.online(room))
                })
                .flatten();
            (change.here, online)
        };
        if snapshot_changed {
            self.announce_soon(room);
        }
        if let Some(online) = online {
            let frame = ServerFrame::Presence(Presence {
                room: room.clone(),
                user: user.clone(),
                event: PresenceEvent::Left,
                online,
                changes: Vec::new(),
            });
            self.broadcast_event(room, &frame, None).await;
        }
    }

    /// Marks `room`'s snapshot due: the node task sends it within [`ANNOUNCE_COALESCE`],
    /// once for every change made meanwhile.
    fn announce_soon(&self, room: &RoomName) {
        let first_due = {
            let mut state = self.state.lock();
            let first_due = state.announce_due.is_empty();
            state.announce_due.insert(room.clone());
            first_due
        };
        if first_due {
            self.announce_wake.notify_one();
        }
    }

    /// Indexes the messages stored since the last heartbeat for search, on a task of its own
    /// (the store's batches interleave with sends; presence does not wait), one at a time.
    fn index_for_search(&self) {
        use std::sync::atomic::Ordering;
        if self.indexing.swap(true, Ordering::AcqRel) {
            return;
        }
        let store = self.store.clone();
        let indexing = self.indexing.clone();
        tokio::spawn(async move {
            if let Err(e) = store.catch_up_search_index().await {
                tracing::warn!(error = %e, "indexing new messages for search failed; the next heartbeat retries");
            }
            indexing.store(false, Ordering::Release);
        });
    }

    /// Sends the rooms made due by [`Inner::announce_soon`] to the other nodes (one
    /// message), and the folded `presence` frames waiting (see [`PresenceFolding`]).
    async fn announce_due(&self) {
        let due = std::mem::take(&mut self.state.lock().announce_due);
        if !due.is_empty() {
            self.announce(Some(&due), false).await;
        }
        self.send_folded_presence().await;
    }

    /// The online list for a presence change's frame sent now, or `None` when the change
    /// waits to be folded (the first waiting one wakes the node task to flush them).
    fn now_or_folded(
        &self,
        fold: Fold,
        online: impl FnOnce() -> Vec<UserName>,
    ) -> Option<Vec<UserName>> {
        match fold {
            Fold::SendNow => Some(online()),
            Fold::Wait { first } => {
                if first {
                    self.announce_wake.notify_one();
                }
                None
            }
        }
    }

    /// Sends each room's folded `presence` frame: the latest change as `user` and `event`,
    /// every change in `changes` (when there are several), the online list as it is now.
    async fn send_folded_presence(&self) {
        let frames: Vec<(RoomName, ServerFrame, Option<ChannelName>)> = {
            let mut state = self.state.lock();
            let due = state.presence_frames.take_due(Instant::now());
            due.into_iter()
                .filter_map(|(room, mut changes, joiner)| {
                    // A room that grew past the limit meanwhile sends none (see `room_entered`).
                    if state.presence.online_upper_bound(&room) > self.config.presence_fanout_limit
                    {
                        return None;
                    }
                    let latest = changes.last()?.clone();
                    if changes.len() == 1 {
                        changes.clear();
                    }
                    let frame = ServerFrame::Presence(Presence {
                        room: room.clone(),
                        user: latest.user,
                        event: latest.event,
                        online: state.presence.online(&room),
                        changes,
                    });
                    Some((room, frame, joiner))
                })
                .collect()
        };
        for (room, frame, joiner) in &frames {
            self.broadcast_event(room, frame, joiner.as_ref()).await;
        }
    }

    /// Sends this node's users to the other nodes, in one message: in the `changed` rooms, or
    /// in every room it has users in (a full snapshot) when `None`. `reply` asks each node
    /// for its full snapshot back (at start).
    ///
    /// One message per node, never one per room: at 1,000 rooms per process a snapshot per
    /// room made every heartbeat 6,000 messages into each of 7 processes' node channels (of
    /// capacity 100), which dropped nearly all of them, and presence across processes was
    /// wrong. Changes go only while another node is known: alone, the message would only
    /// come back to this node's own channel; a node that starts later asks for this one's
    /// full snapshot.
    async fn announce(&self, changed: Option<&HashSet<RoomName>>, reply: bool) {
        let rooms: Vec<(RoomName, Vec<UserName>)> = {
            let state = self.state.lock();
            match changed {
                Some(changed) => {
                    if !state.presence.has_other_nodes() {
                        return;
                    }
                    changed
                        .iter()
                        .map(|room| (room.clone(), state.presence.local_users(room)))
                        .collect()
                }
                None => state.presence.local_snapshot(),
            }
        };
        let Ok(group) = self.groups.nodes() else {
            return;
        };
        let snapshot =
            events::node_presence(&self.node, &rooms, changed.is_none(), self.ttl_ms(), reply);
        self.log_layer(self.layer.group_send(&group, snapshot).await.map(|_| ()));
    }

    /// How long the other nodes count this node's snapshots.
    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.config.presence_ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// Joins the nodes group (renewing its expiry) and sends this node's full snapshot: at
    /// start, asking the others for theirs; at every heartbeat, as this node's sign of life.
    async fn announce_all(&self, reply: bool) {
        if let Ok(group) = self.groups.nodes() {
            self.log_layer(self.layer.group_add(&group, &self.node).await);
        }
        self.announce(None, reply).await;
    }

    /// Puts a room event on the room's event group; kills local channels found full.
    pub(crate) async fn broadcast_event(
        &self,
        room: &RoomName,
        frame: &ServerFrame,
        origin: Option<&ChannelName>,
    ) {
        let Ok(group) = self.groups.events(room) else {
            return;
        };
        match self
            .layer
            .group_send(&group, events::room_event(frame, origin))
            .await
        {
            Ok(report) => self.kill_full(&report.full),
            Err(e) => {
                METRICS.layer_failures_event.increment(1);
                tracing::warn!(error = %e, %room, "room event not broadcast");
            }
        }
    }

    /// Re-adds every local connection to its user's group and its rooms' groups when the
    /// layer has lost them: after Redis restarts without persistence, its clients would
    /// otherwise hear nothing until they rejoin, and miss "you were removed" kicks. One probe per heartbeat through a canary group holding only this
    /// node's channel; found empty, the canary and every membership are added again (which
    /// also renews them before `group_expiry`, as the canary is never newer than they are).
    async fn restore_groups(&self) {
        let Ok(canary) = self.groups.canary(&self.node) else {
            return;
        };
        match self.layer.group_send(&canary, events::canary()).await {
            // Local only: the layer is down (see below).
            Ok(report) if report.delivered > 0 || report.local_only => return,
            Ok(_) => {}
            // The layer is down: nothing to restore yet; the next heartbeat probes again.
            Err(_) => return,
        }
        let (members, users) = {
            let state = self.state.lock();
            (
                state
                    .local_rooms
                    .iter()
                    .map(|(room, here)| (room.clone(), here.keys().cloned().collect()))
                    .collect::<Vec<(RoomName, Vec<ChannelName>)>>(),
                state
                    .connections
                    .iter()
                    .map(|(channel, (_, user))| (channel.clone(), *user))
                    .collect::<Vec<(ChannelName, UserId)>>(),
            )
        };
        // User groups first: they carry "you were removed from this room" kicks.
        let mut failed = 0usize;
        for (channel, user) in &users {
            let Ok(group) = self.groups.user(*user) else {
                continue;
            };
            if self.layer.group_add(&group, channel).await.is_err() {
                failed += 1;
            }
        }
        let mut restored = 0usize;
        for (room, channels) in &members {
            let (Ok(chat), Ok(events)) = (self.groups.chat(room), self.groups.events(room)) else {
                continue;
            };
            for channel in channels {
                if self.layer.group_add(&chat, channel).await.is_ok()
                    && self.layer.group_add(&events, channel).await.is_ok()
                {
                    restored += 1;
                }
            }
        }
        // Last: if a re-add failed, the canary stays missing and the next heartbeat retries.
        if failed == 0 && restored == members.iter().map(|(_, c)| c.len()).sum::<usize>() {
            self.log_layer(self.layer.group_add(&canary, &self.node).await);
        }
        if !users.is_empty() {
            tracing::info!(
                connections = users.len(),
                room_memberships = restored,
                "group memberships restored in the channel layer"
            );
        }
    }

    fn log_layer(&self, result: parley_layer::Result<()>) {
        if let Err(e) = result {
            tracing::warn!(error = %e, "channel layer operation failed");
        }
    }

    /// Takes the nodes silent for longer than their time to live out of the nodes group: a
    /// crashed process's channel would otherwise stay a member until the group expires (a day
    /// by default) and fill up, every snapshot to it refused and logged. A node that was only
    /// cut off adds itself again at its next heartbeat.
    async fn discard_silent_nodes(&self) {
        let silent = self.state.lock().presence.expire_nodes(Instant::now());
        let Ok(group) = self.groups.nodes() else {
            return;
        };
        for node in silent {
            if let Ok(channel) = ChannelName::parse(&node) {
                tracing::info!(%channel, "a silent node left the nodes group");
                self.log_layer(self.layer.group_discard(&group, &channel).await);
            }
        }
    }

    /// Handles a message on this node's channel: another node's presence snapshot.
    async fn on_node_message(&self, message: Message) {
        let Some((snapshot, ttl_ms, wants_reply)) =
            events::parse_node_presence(&message, &self.node)
        else {
            return;
        };
        let from = ChannelName::parse(&snapshot.node);
        // The sender told its own clients about joins and leaves; this node only records them.
        self.state
            .lock()
            .presence
            .apply_node(snapshot, Instant::now() + Duration::from_millis(ttl_ms));
        if wants_reply && let Ok(to) = from {
            let mine = self.state.lock().presence.local_snapshot();
            let reply = events::node_presence(&self.node, &mine, true, self.ttl_ms(), false);
            self.log_layer(self.layer.send(&to, reply).await);
        }
    }

    /// Periodic: re-announce every local room, and drop dead nodes' users (telling local
    /// clients who left).
    async fn heartbeat(self: &Arc<Self>) {
        self.forget_idle_users();
        // Also forgets the rooms whose presence went quiet.
        self.send_folded_presence().await;
        self.index_for_search();
        self.restore_groups().await;
        self.recheck_after_outage().await;
        self.announce_all(false).await;
        self.discard_silent_nodes().await;
        let (expired, targets) = {
            let mut state = self.state.lock();
            let expired = state.presence.expire(Instant::now());
            let targets: Vec<(RoomName, Vec<ChannelName>, Vec<UserName>)> = expired
                .iter()
                .map(|(room, _)| {
                    let channels = state
                        .local_rooms
                        .get(room)
                        .map(|m| m.keys().cloned().collect())
                        .unwrap_or_default();
                    (room.clone(), channels, state.presence.online(room))
                })
                .collect();
            (expired, targets)
        };
        for ((room, change), (_, channels, online)) in expired.iter().zip(targets) {
            if online.len() + change.left.len() > self.config.presence_fanout_limit {
                continue;
            }
            for user in &change.left {
                tracing::info!(%room, %user, "presence of a silent node expired");
                let frame = ServerFrame::Presence(Presence {
                    room: room.clone(),
                    user: user.clone(),
                    event: PresenceEvent::Left,
                    online: online.clone(),
                    changes: Vec::new(),
                });
                let event = events::room_event(&frame, None);
                for channel in &channels {
                    self.log_layer(self.layer.send(channel, event.clone()).await);
                }
            }
        }
    }
}

/// A name for this node's own channel: a *normal* channel (`parley.node.{unique}`), which has
/// its own queue and capacity in Redis. A process-specific channel (`specific.…!…`, what
/// `new_channel` gives) shares its process's queue and capacity with every chat delivery to
/// the process's sockets, so a burst of chat could push presence snapshots out (issue 19:
/// node events are never dropped); the other way round as well.
async fn node_channel(layer: &dyn ChannelLayer) -> Result<ChannelName> {
    let unique = layer.new_channel().await?;
    let tag = unique
        .as_str()
        .rsplit('!')
        .next()
        .unwrap_or(unique.as_str());
    Ok(ChannelName::parse(&format!("parley.node.{tag}"))?)
}

/// The node's background task: answers presence snapshots and sends heartbeats until the
/// engine is dropped or shut down.
/// Clears away stale guests every [`Auth::GUEST_PRUNE_INTERVAL`] (whether or not guests are
/// on now: those of an earlier run go too), once the engine has its [`Auth`]. Every node
/// does it; the deletes are idempotent.
async fn guest_task(engine: Weak<Inner>) {
    // Ends at shutdown, or when the engine is dropped (the sender with it), not a tick later.
    let Some(mut shutdown) = engine.upgrade().map(|inner| inner.shutdown.subscribe()) else {
        return;
    };
    let mut ticker = tokio::time::interval(Auth::GUEST_PRUNE_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
                continue;
            }
        }
        let Some(inner) = engine.upgrade() else { break };
        if *inner.shutdown.borrow() {
            break;
        }
        let Some(auth) = inner.auth.get().cloned() else {
            continue;
        };
        drop(inner);
        if let Err(e) = auth.prune_guests(parley_domain::Timestamp::now()).await {
            tracing::warn!(error = %e, "could not clear away stale guests; trying again later");
        }
    }
}

pub(crate) fn require_staff(user: &User) -> Result<()> {
    if user.is_staff {
        Ok(())
    } else {
        Err(EngineError::refused(
            parley_domain::protocol::ErrorCode::Forbidden,
            "only staff may do that",
        ))
    }
}

async fn node_task(engine: Weak<Inner>, layer: Arc<dyn ChannelLayer>, node: ChannelName) {
    let interval = match engine.upgrade() {
        Some(inner) => inner.config.presence_interval,
        None => return,
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The task holds the engine weakly (it stops when the engine is dropped): only the
    // signal is held here.
    let wake = match engine.upgrade() {
        Some(inner) => inner.announce_wake.clone(),
        None => return,
    };
    // Set while snapshots are due: when they go (see `ANNOUNCE_COALESCE`).
    let mut flush_at: Option<tokio::time::Instant> = None;
    // Known to the other nodes at once, and knowing theirs: `/online` is right on a process
    // that just started, whatever rooms its own clients are in.
    match engine.upgrade() {
        Some(inner) => inner.announce_all(true).await,
        None => return,
    }
    loop {
        let flush = async {
            match flush_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = wake.notified(), if flush_at.is_none() => {
                flush_at = Some(tokio::time::Instant::now() + ANNOUNCE_COALESCE);
            }
            () = flush => {
                flush_at = None;
                let Some(inner) = engine.upgrade() else { break };
                inner.announce_due().await;
            }
            received = layer.receive(&node) => {
                let Some(inner) = engine.upgrade() else { break };
                match received {
                    Ok(message) => inner.on_node_message(message).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "node channel receive failed; retrying");
                        drop(inner);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
            _ = ticker.tick() => {
                let Some(inner) = engine.upgrade() else { break };
                if *inner.shutdown.borrow() {
                    break;
                }
                inner.heartbeat().await;
            }
        }
    }
    // Out of the nodes group at once: the others stop sending to a channel nobody reads.
    if let Ok(group) = Groups::nodes_group()
        && let Err(e) = layer.group_discard(&group, &node).await
    {
        tracing::debug!(error = %e, "leaving the nodes group failed");
    }
    if let Err(e) = layer.close_channel(&node).await {
        tracing::debug!(error = %e, "closing the node channel failed");
    }
}
