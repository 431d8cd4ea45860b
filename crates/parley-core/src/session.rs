//! One client connection: decodes its frames, applies them, and turns layer messages into
//! the frames it receives.

use crate::access::{Posting, RoomAccess};
use crate::authorization::{Authorization, Grant};
use crate::engine::Inner;
use crate::error::{EngineError, Result};
use crate::events::{self, Delivery};
use crate::limits::Budget;
use crate::metrics::METRICS;
#[cfg(doc)]
use parley_domain::protocol::TutorialFrames;
use parley_domain::protocol::{
    ClientEnvelope, ClientFrame, DeleteMessage, Dialect, EditMessage, Edited, ErrorCode, Expiring,
    ExternalMessage, FetchHistory, FrameRef, FrameType, HistoryPage, JoinRoom, Joined, LeaveRoom,
    Left, MarkRead, Pong, Posted, ReadMarker, RelayedSignal, RenewAuth, Renewed, SendMessage,
    SendSignal, ServerFrame, SetTyping, Typing,
};
use parley_domain::protocol::{Mentioned, Reacted, SetReaction};
use parley_domain::{ClientMsgId, MessageId, ReplyPreview, Role, RoomId, RoomName, User, UserId};
use parley_layer::{ChannelName, Message};
use parley_store::ReactionAdded;
use parley_store::{HistoryQuery, NewMessage, StoreError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// Something a session wants its transport to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// Send this text frame.
    Text(Arc<str>),
    /// Close the connection for this reason (after sending any text before it).
    Close(CloseReason),
}

/// Why a connection ends: the engine's verdicts and the socket's own, each with the
/// WebSocket close code a transport sends ([`CloseReason::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed the socket (1000).
    Normal,
    /// The server is shutting down ("going away", 1001).
    ShuttingDown,
    /// The client broke the WebSocket protocol (1002).
    ProtocolError,
    /// A text message that is not UTF-8 (1007).
    InvalidUtf8,
    /// The tutorial endpoint's room could not be joined (policy, 1008).
    JoinRefused,
    /// A chat-only tutorial connection was removed from its room, or the room was deleted
    /// (policy, 1008).
    Removed,
    /// A frame or message larger than the hard limit (1009).
    TooLarge,
    /// The channel layer failed for good (1011).
    LayerFailed,
    /// The client's mailbox overflowed: it reads too slowly (4000).
    SlowConsumer,
    /// Nothing, not even a pong, arrived within the ping timeout (4001).
    PingTimeout,
    /// The connection's authorization (its access token) ended without a `renew` (4003).
    Expired,
    /// The user signed out: the login that authorized the connection was logged out (4004).
    SignedOut,
    /// Staff deactivated or deleted the account, or turned guests off for a guest (4005).
    AccountDisabled,
}

/// Close code: the client reads too slowly (its mailbox overflowed).
pub const CLOSE_SLOW_CONSUMER: u16 = 4000;
/// Close code: nothing (not even a pong) arrived within the ping timeout.
pub const CLOSE_PING_TIMEOUT: u16 = 4001;
/// Close code: the connection's authorization ended (its access token expired, not renewed).
pub const CLOSE_EXPIRED: u16 = 4003;
/// Close code: the login that authorized the connection signed out.
pub const CLOSE_SIGNED_OUT: u16 = 4004;
/// Close code: the account was deactivated or deleted by staff (or, for a guest, guests were
/// turned off).
pub const CLOSE_ACCOUNT_DISABLED: u16 = 4005;

impl CloseReason {
    /// The WebSocket close code.
    pub const fn code(self) -> u16 {
        match self {
            Self::Normal => 1000,
            Self::ShuttingDown => 1001,
            Self::ProtocolError => 1002,
            Self::InvalidUtf8 => 1007,
            Self::JoinRefused | Self::Removed => 1008,
            Self::TooLarge => 1009,
            Self::LayerFailed => 1011,
            Self::SlowConsumer => CLOSE_SLOW_CONSUMER,
            Self::PingTimeout => CLOSE_PING_TIMEOUT,
            Self::Expired => CLOSE_EXPIRED,
            Self::SignedOut => CLOSE_SIGNED_OUT,
            Self::AccountDisabled => CLOSE_ACCOUNT_DISABLED,
        }
    }

    /// A short human reason for the close frame.
    pub const fn text(self) -> &'static str {
        match self {
            Self::Normal => "bye",
            Self::ShuttingDown => "server shutting down",
            Self::ProtocolError => "protocol error",
            Self::InvalidUtf8 => "text frame is not UTF-8",
            Self::JoinRefused => "cannot join this room",
            Self::Removed => "removed from the room",
            Self::TooLarge => "frame too large",
            Self::LayerFailed => "channel layer unavailable",
            Self::SlowConsumer => "slow consumer: too many undelivered frames",
            Self::PingTimeout => "ping timeout",
            Self::Expired => "authorization expired: renew it with a fresh access token",
            Self::SignedOut => "signed out",
            Self::AccountDisabled => "account deactivated",
        }
    }
}

/// What [`Session::recv`] produced; hand it to [`Session::on_inbound`].
#[derive(Debug)]
pub enum Inbound {
    /// A message from the channel layer.
    Layer(Message),
    /// The layer failed to deliver (transient errors are retried inside `recv`).
    LayerError(parley_layer::LayerError),
    /// This connection's mailbox overflowed.
    Overflowed,
    /// The engine is shutting down.
    ShuttingDown,
}

/// A `send` that passed its checks and waits to be stored with its neighbours.
struct PreparedSend {
    message: NewMessage,
    reference: Option<FrameRef>,
    /// The preview of the message answered, for a reply (looked up before storing).
    reply: Option<ReplyPreview>,
}

#[derive(Debug, Clone, Copy)]
struct JoinedRoom {
    id: RoomId,
    /// What the user may post there: read at join, then kept up to date by the standing
    /// changes moderation sends (so a `send` asks no store for it).
    posting: Posting,
    /// The user is an owner of the room (kept beside `posting.manager`, which staff rights
    /// also grant, so a change of either recomputes it).
    owner: bool,
}

/// One authenticated connection to the engine.
///
/// Drive it from two sides (a transport's loop selects over both; [`crate::Connection`] is
/// that loop, ready to use over any [`crate::Socket`]):
/// - [`Session::on_open`] once, first (the tutorial dialect joins its room there);
/// - client text → [`Session::on_texts`] → frames to send back;
/// - [`Session::recv`] (cancel-safe) → [`Session::on_inbound`] → a frame or a close.
///
/// Call [`Session::close`] when the connection ends; dropping an unclosed session schedules
/// the same clean-up on the runtime.
pub struct Session {
    inner: Arc<Inner>,
    user: User,
    channel: ChannelName,
    kill: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
    dialect: Dialect,
    /// Until when the connection is authorized (`None`: no end, the embedder's choice).
    authorization: Option<Authorization>,
    rooms: HashMap<RoomName, JoinedRoom>,
    closed: bool,
}

type Reply = Vec<Outbound>;

fn text(frame: &ServerFrame) -> Outbound {
    METRICS.frame_out(frame.type_name());
    Outbound::Text(Arc::from(frame.to_json()))
}

fn refused(code: ErrorCode, message: impl Into<String>) -> EngineError {
    EngineError::refused(code, message)
}

/// The frame answering a request: its reply, or the error frame carrying its `ref`.
fn answer(result: Result<ServerFrame>, reference: Option<FrameRef>) -> ServerFrame {
    result.unwrap_or_else(|e| ServerFrame::Error(e.to_frame(reference)))
}

impl Session {
    pub(crate) fn new(
        inner: Arc<Inner>,
        user: User,
        channel: ChannelName,
        kill: Arc<Notify>,
        dialect: Dialect,
    ) -> Self {
        let shutdown = inner.shutdown.subscribe();
        Self {
            inner,
            user,
            channel,
            kill,
            shutdown,
            dialect,
            authorization: None,
            rooms: HashMap::new(),
            closed: false,
        }
    }

    /// The authenticated user.
    pub fn user(&self) -> &User {
        &self.user
    }

    /// This connection's layer channel.
    pub fn channel(&self) -> &ChannelName {
        &self.channel
    }

    /// The protocol this connection speaks.
    pub fn dialect(&self) -> &Dialect {
        &self.dialect
    }

    /// Rooms this connection has joined.
    pub fn rooms(&self) -> impl Iterator<Item = &RoomName> {
        self.rooms.keys()
    }

    /// Limits the connection to `grant`: it is warned (`expiring`) shortly before the grant
    /// ends and closed ([`CloseReason::Expired`]) when it does, unless the client sends
    /// `renew`; and it closes when the grant's login signs out. A session without a grant
    /// never expires. [`crate::Connection`] runs the timers; a transport of its own calls
    /// [`Session::on_deadline`] at [`Session::deadline`].
    pub fn authorize(&mut self, grant: Grant) {
        self.authorization = Some(Authorization::new(grant, self.inner.config.expiry_warning));
    }

    /// When [`Session::on_deadline`] is next due (`None`: never).
    pub fn deadline(&self) -> Option<Instant> {
        self.authorization.as_ref().map(Authorization::deadline)
    }

    /// What is due at [`Session::deadline`]: the `expiring` warning, then the close.
    pub fn on_deadline(&mut self) -> Option<Outbound> {
        let authorization = self.authorization.as_mut()?;
        let now = Instant::now();
        if now >= authorization.ends {
            tracing::info!(user = %self.user.username, "authorization expired: closing");
            return Some(Outbound::Close(CloseReason::Expired));
        }
        if !authorization.warned && now >= authorization.warn {
            authorization.warned = true;
            return Some(text(&ServerFrame::Expiring(Expiring {
                expires_at: authorization.grant.expires_at,
            })));
        }
        None
    }

    /// What to send as soon as the socket is open, before any client frame is handled. For
    /// [`Dialect::Tutorial`]: the room is created if missing (public, owned by this user, as
    /// the tutorial's "any name works" expects) and joined; the reply is `joined` (only with
    /// [`TutorialFrames::All`]: a tutorial page would show it as a chat line), or the `error`
    /// frame and a close with [`CloseReason::JoinRefused`]. Nothing for `Parley`.
    pub async fn on_open(&mut self) -> Reply {
        let Some(room) = self.dialect.tutorial_room().cloned() else {
            return Vec::new();
        };
        // The room exists but for the first client of each: join first, and create it only
        // when the join finds none (one store read less per socket in a storm of clients).
        let opened = match self.join(JoinRoom { room: room.clone() }).await {
            Err(EngineError::Store(StoreError::NotFound(_))) => {
                match self
                    .inner
                    .rooms()
                    .open_tutorial_room(&self.user, &room)
                    .await
                {
                    Ok(()) => self.join(JoinRoom { room }).await,
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        match opened {
            Ok(joined) if self.dialect.receives_room_events() => vec![text(&joined)],
            Ok(_) => Vec::new(),
            Err(e) => vec![
                text(&ServerFrame::Error(e.to_frame(None))),
                Outbound::Close(CloseReason::JoinRefused),
            ],
        }
    }

    /// Waits for the next thing to deliver. Cancel-safe.
    pub async fn recv(&self) -> Inbound {
        let mut shutdown = self.shutdown.clone();
        if *shutdown.borrow_and_update() {
            return Inbound::ShuttingDown;
        }
        tokio::select! {
            biased;
            _ = self.kill.notified() => Inbound::Overflowed,
            _ = shutdown.changed() => Inbound::ShuttingDown,
            received = self.inner.layer.receive(&self.channel) => match received {
                Ok(message) => Inbound::Layer(message),
                Err(e) => Inbound::LayerError(e),
            },
        }
    }

    /// Applies something [`Session::recv`] produced.
    pub async fn on_inbound(&mut self, inbound: Inbound) -> Option<Outbound> {
        match inbound {
            Inbound::Layer(message) => self.on_layer_message(&message).await,
            Inbound::Overflowed => Some(Outbound::Close(CloseReason::SlowConsumer)),
            Inbound::ShuttingDown => Some(Outbound::Close(CloseReason::ShuttingDown)),
            Inbound::LayerError(parley_layer::LayerError::Unavailable(e)) => {
                // Transient: the layer reconnects by itself; pause so a dead backend is not spun on.
                tracing::warn!(error = %e, channel = %self.channel, "layer receive failed; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
                None
            }
            // A backend whose mailboxes live on the receiving side (Redis) reports an overflow
            // there, to the reader: the same verdict as a full channel seen by a sender.
            Inbound::LayerError(parley_layer::LayerError::ChannelFull(_)) => {
                tracing::warn!(channel = %self.channel, "client reads too slowly: disconnecting it");
                Some(Outbound::Close(CloseReason::SlowConsumer))
            }
            Inbound::LayerError(e) => {
                tracing::error!(error = %e, channel = %self.channel, "layer receive failed for good");
                Some(Outbound::Close(CloseReason::LayerFailed))
            }
        }
    }

    async fn on_layer_message(&mut self, message: &Message) -> Option<Outbound> {
        match events::deliver(message, &self.channel, &self.dialect) {
            Delivery::Text(t) => {
                METRICS.deliveries.increment(1);
                Some(Outbound::Text(t))
            }
            Delivery::Skip => None,
            Delivery::SignOut(family) => {
                let ours = self
                    .authorization
                    .as_ref()
                    .and_then(|a| a.grant.family.as_deref());
                (family.is_none() || family.as_deref() == ours)
                    .then_some(Outbound::Close(CloseReason::SignedOut))
            }
            Delivery::SignOutExcept(keep) => {
                let ours = self
                    .authorization
                    .as_ref()
                    .and_then(|a| a.grant.family.as_deref());
                (ours != Some(keep.as_str())).then_some(Outbound::Close(CloseReason::SignedOut))
            }
            Delivery::Profile(display_name) => {
                // Messages sent from now on carry the new name (no query per message).
                self.user.display_name = display_name;
                None
            }
            Delivery::Disabled => Some(Outbound::Close(CloseReason::AccountDisabled)),
            Delivery::Recheck => {
                let (outcome, answered) = self.recheck().await;
                self.inner.recheck_finished(&self.channel, answered);
                outcome
            }
            Delivery::Staff(staff) => {
                self.user.is_staff = staff;
                for joined in self.rooms.values_mut() {
                    joined.posting.manager = joined.owner || staff;
                }
                None
            }
            Delivery::Standing(room, change) => {
                if let Some(joined) = self.rooms.get_mut(&room) {
                    let posting = &mut joined.posting;
                    if let Some(read_only) = change.read_only {
                        posting.read_only = read_only;
                    }
                    if let Some(owner) = change.owner {
                        joined.owner = owner;
                        posting.manager = owner || self.user.is_staff;
                    }
                    if let Some(mute) = change.mute {
                        posting.mute = mute;
                    }
                }
                None
            }
            Delivery::Kick(room) => {
                if !self.rooms.contains_key(&room) {
                    return None;
                }
                self.exit_room(&room).await;
                if self.dialect.receives_room_events() {
                    Some(text(&ServerFrame::Left(Left {
                        room,
                        reference: None,
                    })))
                } else {
                    // A chat-only tutorial page has no use for a socket outside its room.
                    Some(Outbound::Close(CloseReason::Removed))
                }
            }
            Delivery::External {
                room,
                username,
                message,
            } => {
                // A Django tutorial event names no room: it can only be placed when this
                // connection is in exactly one room (the `/ws/chat/{room}` style).
                let room = room.or_else(|| {
                    (self.rooms.len() == 1)
                        .then(|| self.rooms.keys().next().cloned())
                        .flatten()
                });
                Some(text(&ServerFrame::External(ExternalMessage {
                    room,
                    username,
                    message,
                })))
            }
        }
    }

    /// After a channel-layer outage (see `outage.rs`): reads the account and the joined rooms'
    /// standing from the store again and applies what changed meanwhile, as the events lost
    /// in the outage would have: a deactivated or deleted account closes (4005), a password
    /// reset or a logout of the socket's own login signs out (4004), and staff rights, roles,
    /// mutes and read-only switches update what the socket may post. (Removals and bans are
    /// the membership re-check's kicks.) A store failure is logged and changes nothing; the
    /// re-check is then asked again (`outage.rs`).
    ///
    /// Returns what to do and whether the store answered every read. The reads wait for a
    /// join's turn (`Store::join_turn`): after an outage every connection of the process
    /// re-checks, and they must not crowd the pool as a storm of joins would.
    async fn recheck(&mut self) -> (Option<Outbound>, bool) {
        let store = &self.inner.store;
        let _turn = store.join_turn().await;
        let user = match store.user_by_id(self.user.id).await {
            Ok(user) => user,
            Err(StoreError::NotFound(_)) => {
                return (Some(Outbound::Close(CloseReason::AccountDisabled)), true);
            }
            Err(e) => {
                tracing::warn!(error = %e, "re-checking a socket's standing after a layer outage failed");
                return (None, false);
            }
        };
        if !user.is_active || user.username.is_deleted_name() {
            return (Some(Outbound::Close(CloseReason::AccountDisabled)), true);
        }
        if user.token_epoch != self.user.token_epoch {
            return (Some(Outbound::Close(CloseReason::SignedOut)), true);
        }
        let mut answered = true;
        // A logout revokes its login's family (`Auth::logout`); its sockets' `parley.signout`
        // was lost with the layer.
        if let Some(family) = self
            .authorization
            .as_ref()
            .and_then(|a| a.grant.family.as_deref())
        {
            match store.is_revoked(family).await {
                Ok(true) => return (Some(Outbound::Close(CloseReason::SignedOut)), true),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "re-checking a socket's login after a layer outage failed");
                    answered = false;
                }
            }
        }
        self.user.is_staff = user.is_staff;
        let rooms: Vec<RoomName> = self.rooms.keys().cloned().collect();
        for room in rooms {
            let access = match RoomAccess::of(store, &self.user, &room).await {
                Ok(access) => access,
                Err(e) => {
                    tracing::warn!(error = %e, %room, "re-checking a socket's standing after a layer outage failed");
                    answered = false;
                    continue;
                }
            };
            if let Some(joined) = self.rooms.get_mut(&room) {
                joined.posting = access.posting();
                joined.owner = access.role() == Some(Role::Owner);
            }
        }
        (None, answered)
    }

    /// Handles one text frame from the client; returns what to send back to it.
    pub async fn on_text(&mut self, text_frame: &str) -> Reply {
        self.on_texts(&[text_frame]).await
    }

    /// Handles text frames that arrived together, in order; returns what to send back, in
    /// the same order as one [`Session::on_text`] per frame would.
    ///
    /// The difference is throughput: consecutive `send` frames are stored together (one
    /// commit, their ids in frame order) before any is broadcast and acknowledged, so a client
    /// with several sends in flight waits for one commit instead of one per message.
    pub async fn on_texts<T: AsRef<str>>(&mut self, frames: &[T]) -> Reply {
        let mut out = Vec::with_capacity(frames.len());
        let mut sends = Vec::new();
        let limits = self.inner.config.decode_limits();
        for frame in frames {
            let envelope = match ClientFrame::decode_in(frame.as_ref(), &self.dialect, &limits) {
                Ok(envelope) => {
                    METRICS.frame_in(envelope.frame.frame_type());
                    envelope
                }
                Err(e) => {
                    METRICS.frames_in_invalid.increment(1);
                    self.commit_sends(&mut sends, &mut out).await;
                    out.push(text(&ServerFrame::from(e)));
                    continue;
                }
            };
            let ClientEnvelope { frame, reference } = envelope;
            match frame {
                ClientFrame::Send(f) => match self.prepare_send(f, reference.clone()).await {
                    Ok(send) => sends.push(send),
                    Err(refusal) => {
                        // Replies keep frame order: the sends before it are answered first.
                        self.commit_sends(&mut sends, &mut out).await;
                        out.push(text(&ServerFrame::Error(refusal.to_frame(reference))));
                    }
                },
                frame => {
                    self.commit_sends(&mut sends, &mut out).await;
                    out.extend(self.on_frame(ClientEnvelope { frame, reference }).await);
                }
            }
        }
        self.commit_sends(&mut sends, &mut out).await;
        out
    }

    /// Handles one decoded frame.
    pub async fn on_frame(&mut self, envelope: ClientEnvelope) -> Reply {
        let r = envelope.reference;
        // Every frame draws on its user's budget before any work (a `send` in
        // `prepare_send`, as `on_texts` calls that directly).
        let frame_type = envelope.frame.frame_type();
        if frame_type != FrameType::Send
            && let Err(refusal) = self.inner.take_token(&self.user, Budget::of(frame_type))
        {
            return vec![text(&ServerFrame::Error(refusal.to_frame(r)))];
        }
        let result = match envelope.frame {
            ClientFrame::Join(f) => self.join(f).await.map(Some),
            ClientFrame::Leave(f) => self.leave(f).await.map(Some),
            ClientFrame::Send(f) => match self.prepare_send(f, r.clone()).await {
                Ok(send) => {
                    let mut out = Vec::with_capacity(1);
                    self.commit_sends(&mut vec![send], &mut out).await;
                    return out;
                }
                Err(refusal) => Err(refusal),
            },
            ClientFrame::Typing(f) => self.typing(f).await.map(|()| None),
            ClientFrame::History(f) => self.history(f).await.map(Some),
            ClientFrame::Edit(f) => self.edit(f).await.map(Some),
            ClientFrame::Delete(f) => self.delete(f).await.map(Some),
            ClientFrame::Read(f) => self.read(f).await.map(Some),
            ClientFrame::Signal(f) => self.signal(f).await.map(|()| None),
            ClientFrame::Renew(f) => self.renew(f).await.map(Some),
            ClientFrame::Ping => Ok(Some(ServerFrame::Pong(Pong::default()))),
            // Boxed, like a reply's lookup: rare frames should not grow every task's future.
            ClientFrame::React(f) => Box::pin(self.react(f, true)).await.map(Some),
            ClientFrame::Unreact(f) => Box::pin(self.react(f, false)).await.map(Some),
        };
        match result.transpose() {
            None => Vec::new(),
            Some(result) => vec![text(&answer(
                result.map(|frame| frame.with_reference(r.clone())),
                r,
            ))],
        }
    }

    fn joined(&self, room: &RoomName) -> Result<JoinedRoom> {
        self.rooms
            .get(room)
            .copied()
            .ok_or_else(|| refused(ErrorCode::NotJoined, format!("join room {room} first")))
    }

    fn joined_by_id(&self, id: RoomId) -> Option<RoomName> {
        self.rooms
            .iter()
            .find(|(_, j)| j.id == id)
            .map(|(name, _)| name.clone())
    }

    async fn join(&mut self, f: JoinRoom) -> Result<ServerFrame> {
        let store = &self.inner.store;
        let room = if self.rooms.contains_key(&f.room) {
            // Already joined here: just the `joined` reply again.
            store.room_by_name(&f.room).await?
        } else {
            if self.rooms.len() >= self.inner.config.max_rooms_per_connection {
                let max = self.inner.config.max_rooms_per_connection;
                return Err(refused(
                    ErrorCode::TooManyRooms,
                    format!("a connection may join at most {max} rooms"),
                ));
            }
            // The access check and the membership wait their turn with the other joins
            // (a storm of them would otherwise time out queueing for the pool).
            let turn = store.join_turn().await;
            let access = RoomAccess::of(store, &self.user, &f.room).await?;
            access.require_read()?;
            if !access.is_member() {
                // Joining a public room makes the user a member: it shows in their room list
                // with unread counts, and lets them call the other members.
                // A ban committed since the access check would otherwise be undone by this
                // membership (the ban removed the old one first): the store looks again, once,
                // right after adding it, and undoes it for a banned user.
                if !store
                    .add_member_unless_banned(access.room(), self.user.id, Role::Member)
                    .await?
                {
                    return Err(crate::access::banned(&f.room));
                }
            }
            drop(turn);
            let room = access.room().clone();
            self.subscribe(&room.name).await?;
            let joined = JoinedRoom {
                id: room.id,
                posting: access.posting(),
                owner: access.role() == Some(Role::Owner),
            };
            self.rooms.insert(room.name.clone(), joined);
            self.inner
                .room_entered(&room.name, &self.user.username, &self.channel)
                .await;
            room
        };
        // Read after subscribing (nothing falls between the page and the live messages),
        // shared with the other joins of the room waiting for a connection meanwhile.
        let history = store
            .join_history(room.id, self.inner.config.history_on_join)
            .await?
            .messages;
        // Capped like presence frames: a big room's every join would otherwise carry
        // thousands of names. The count is exact.
        let (online, online_count) = self.inner.state.lock().presence.online_sample(
            &room.name,
            &self.user.username,
            self.inner.config.presence_fanout_limit,
        );
        METRICS.presence_online.record(online_count as f64);
        Ok(ServerFrame::Joined(Joined {
            room: room.name,
            room_id: room.id,
            kind: room.kind,
            history,
            online,
            online_count,
            reference: None,
        }))
    }

    async fn subscribe(&self, room: &RoomName) -> Result<()> {
        let layer = &self.inner.layer;
        let groups = &self.inner.groups;
        let result = async {
            layer.group_add(&groups.chat(room)?, &self.channel).await?;
            layer.group_add(&groups.events(room)?, &self.channel).await
        }
        .await;
        result.map_err(|e| {
            tracing::warn!(error = %e, %room, "could not subscribe to the room's groups");
            EngineError::Layer(e)
        })
    }

    async fn exit_room(&mut self, room: &RoomName) {
        if self.rooms.remove(room).is_none() {
            return;
        }
        let layer = &self.inner.layer;
        let groups = &self.inner.groups;
        for group in [groups.chat(room), groups.events(room)]
            .into_iter()
            .flatten()
        {
            if let Err(e) = layer.group_discard(&group, &self.channel).await {
                tracing::warn!(error = %e, %room, "group discard failed (group expiry will clean up)");
            }
        }
        self.inner
            .room_exited(room, &self.user.username, &self.channel)
            .await;
    }

    async fn leave(&mut self, f: LeaveRoom) -> Result<ServerFrame> {
        self.joined(&f.room)?;
        self.exit_room(&f.room).await;
        Ok(ServerFrame::Left(Left {
            room: f.room,
            reference: None,
        }))
    }

    /// The checks of a `send` (joined, muted, read-only, message rate; for a reply, that the
    /// message answered is of the same room); the message to store. Only a reply does I/O
    /// here: one lookup of the message it answers.
    async fn prepare_send(&self, f: SendMessage, r: Option<FrameRef>) -> Result<PreparedSend> {
        let joined = self.joined(&f.room)?;
        joined.posting.check(&f.room)?;
        self.inner.take_token(&self.user, Budget::Messages)?;
        // Mentions: nothing (no allocation, no query) for a text without `@`.
        let names = crate::mentions::mentioned_names(
            f.body.as_str(),
            self.inner.config.max_mentions_per_message,
        );
        let mentions = if names.is_empty() {
            Vec::new()
        } else {
            // Boxed like a reply's lookup: only a message with an `@` pays for it.
            Box::pin(
                self.inner
                    .store
                    .mention_targets(joined.id, self.user.id, &names),
            )
            .await?
        };
        let reply = match f.reply_to {
            None => None,
            // Boxed: the lookup's future would otherwise enlarge every connection's task,
            // idle or not, by its size (only a reply pays for the allocation).
            Some(id) => Some(Box::pin(self.reply_preview(joined.id, &f.room, id)).await?),
        };
        Ok(PreparedSend {
            reply,
            message: NewMessage {
                room_id: joined.id,
                room: f.room,
                sender_id: self.user.id,
                sender: self.user.username.clone(),
                sender_display_name: self.user.display_name.clone(),
                sender_is_guest: self.user.is_guest,
                body: f.body,
                client_id: f.client_id,
                reply_to: f.reply_to,
                mentions,
            },
            reference: r,
        })
    }

    /// The preview of message `id` for a reply in `room`: `not_found` unless it is a
    /// message of that room (another room's message is not found either, so its existence
    /// stays secret). A deleted original may be answered; its preview says `deleted`.
    async fn reply_preview(
        &self,
        room: RoomId,
        name: &RoomName,
        id: MessageId,
    ) -> Result<ReplyPreview> {
        let not_found = || {
            refused(
                ErrorCode::NotFound,
                format!("`reply_to`: message {id} is not a message of room {name}"),
            )
        };
        let original = match self.inner.store.message_by_id(id).await {
            Ok(m) => m,
            Err(StoreError::NotFound(_)) => return Err(not_found()),
            Err(e) => return Err(e.into()),
        };
        if original.room_id != room {
            return Err(not_found());
        }
        Ok(ReplyPreview::of(
            original.id,
            original.sender,
            &original.body,
            original.deleted_at.is_some(),
        ))
    }

    /// `react` (`add`) or `unreact`: a reaction on a message of a room joined here. Guests
    /// may not; a deleted message is a `conflict`; a new emoji beyond the message's limit is
    /// `too_many_reactions`. The room hears of a change, not of a repeat.
    async fn react(&mut self, f: SetReaction, add: bool) -> Result<ServerFrame> {
        if self.user.is_guest {
            return Err(crate::access::guest_refused(
                "reactions are for accounts, not guests",
            ));
        }
        let room = self.changeable_message_room(f.message_id).await?;
        let store = &self.inner.store;
        let (changed, count) = if add {
            let max = self.inner.config.max_reactions_per_message;
            match store
                .add_reaction(f.message_id, self.user.id, &f.emoji, max)
                .await?
            {
                ReactionAdded::Added { count } => (true, count),
                ReactionAdded::Unchanged { count } => (false, count),
                ReactionAdded::TooMany => {
                    return Err(refused(
                        ErrorCode::TooManyReactions,
                        format!(
                            "message {} already has {max} different reactions; add to one of them",
                            f.message_id
                        ),
                    ));
                }
            }
        } else {
            store
                .remove_reaction(f.message_id, self.user.id, &f.emoji)
                .await?
        };
        let frame = ServerFrame::Reaction(Reacted {
            room: room.clone(),
            message_id: f.message_id,
            user: self.user.username.clone(),
            emoji: f.emoji,
            active: add,
            count,
            reference: None,
        });
        if changed {
            self.inner
                .broadcast_event(&room, &frame, Some(&self.channel))
                .await;
        }
        Ok(frame)
    }

    /// Stores `sends` together and in order, then broadcasts each stored one and appends the
    /// acknowledgements (or errors) to `out`, in order. Leaves `sends` empty.
    async fn commit_sends(&self, sends: &mut Vec<PreparedSend>, out: &mut Reply) {
        if sends.is_empty() {
            return;
        }
        // Replies' previews, set on the stored messages below; nothing (no allocation) when
        // no send is a reply.
        let replies: Vec<Option<ReplyPreview>> = if sends.iter().any(|s| s.reply.is_some()) {
            sends.iter_mut().map(|s| s.reply.take()).collect()
        } else {
            Vec::new()
        };
        // Who each send mentions, for the `mention` frames once stored; nothing (no
        // allocation) when no send mentions anyone.
        let mentioned: Vec<Vec<UserId>> = if sends.iter().any(|s| !s.message.mentions.is_empty()) {
            sends
                .iter()
                .map(|s| s.message.mentions.iter().map(|(id, _)| *id).collect())
                .collect()
        } else {
            Vec::new()
        };
        let (messages, references): (Vec<NewMessage>, Vec<Option<FrameRef>>) = sends
            .drain(..)
            .map(|send| (send.message, send.reference))
            .unzip();
        let keys: Vec<(RoomId, Option<ClientMsgId>)> = messages
            .iter()
            .map(|m| (m.room_id, m.client_id.clone()))
            .collect();
        // Persist first (committed, possibly sharing a commit with concurrent sends): a
        // message the store did not take is never broadcast nor acknowledged.
        let started = Instant::now();
        let mut results = self.inner.append_all(messages).await;
        METRICS
            .store_commit_seconds
            .record(started.elapsed().as_secs_f64());
        for (result, reply) in results.iter_mut().zip(replies) {
            if let Ok(appended) = result
                && reply.is_some()
            {
                appended.message.reply_to = reply;
            }
        }
        // A retry is recognised by its client id alone: one reused for another room is not
        // a retry, and must not be acknowledged with the first room's message.
        for (result, (room, _)) in results.iter_mut().zip(&keys) {
            if let Ok(appended) = result
                && !appended.created
                && appended.message.room_id != *room
            {
                *result = Err(StoreError::Conflict(format!(
                    "client_id already used for a message in room {}",
                    appended.message.room
                )));
            }
        }
        // A send whose answer was lost may have been stored: its retry, which finds it, is
        // the first the room hears of it. Other retries are not broadcast again.
        let mut first_seen = Vec::with_capacity(results.len());
        for (result, (room, client_id)) in results.iter().zip(&keys) {
            first_seen.push(match (result, client_id) {
                (Ok(appended), _) if appended.created => true,
                (Ok(_), Some(client_id)) => self.inner.take_unsure(self.user.id, *room, client_id),
                (Err(e), Some(client_id)) if e.is_unavailable() => {
                    self.inner
                        .remember_unsure(self.user.id, *room, client_id.clone());
                    false
                }
                _ => false,
            });
        }
        // Broadcast the new ones, a stretch of consecutive messages to one room at a time
        // (one layer call each: the Redis layer reads the room's members once for it).
        let mut stretch: Vec<&parley_domain::Message> = Vec::new();
        for (result, first) in results.iter().zip(&first_seen) {
            let Ok(appended) = result else { continue };
            if !first {
                continue;
            }
            if stretch
                .last()
                .is_some_and(|last| last.room != appended.message.room)
            {
                self.broadcast_messages(&stretch).await;
                stretch.clear();
            }
            stretch.push(&appended.message);
        }
        self.broadcast_messages(&stretch).await;
        if !mentioned.is_empty() {
            Box::pin(self.notify_mentions(&results, &first_seen, mentioned)).await;
        }
        let stored = results
            .iter()
            .filter(|r| r.as_ref().is_ok_and(|a| a.created))
            .count();
        METRICS.messages_stored.increment(stored as u64);
        let tutorial = self.dialect.tutorial_room().is_some();
        for (result, r) in results.into_iter().zip(references) {
            out.push(text(&match result {
                Ok(appended) => {
                    let posted = Posted::new(appended.message);
                    let posted = if tutorial {
                        posted.for_tutorial()
                    } else {
                        posted
                    };
                    ServerFrame::Message(posted).with_reference(r)
                }
                Err(e) => ServerFrame::Error(EngineError::from(e).to_frame(r)),
            }));
        }
    }

    /// Sends each mentioned user of each newly stored message a `mention` frame, through
    /// their user group: every socket of theirs on every process, joined to the room or not.
    /// A failure is logged: the message is stored and counted in their `unread_mentions`.
    async fn notify_mentions(
        &self,
        results: &[std::result::Result<parley_store::Appended, StoreError>],
        first_seen: &[bool],
        mentioned: Vec<Vec<UserId>>,
    ) {
        for ((result, first), users) in results.iter().zip(first_seen).zip(mentioned) {
            let Ok(appended) = result else { continue };
            if !*first || users.is_empty() {
                continue;
            }
            let event = events::notify(&ServerFrame::Mention(Mentioned::of(&appended.message)));
            for user in users {
                let Ok(group) = self.inner.groups.user(user) else {
                    continue;
                };
                match self.inner.layer.group_send(&group, event.clone()).await {
                    Ok(report) => self.inner.kill_full(&report.full),
                    Err(e) => {
                        tracing::warn!(error = %e, message = appended.message.id.get(), "mention stored but not sent");
                    }
                }
            }
        }
    }

    /// Sends stored messages, all of one room, to its chat group, in order.
    async fn broadcast_messages(&self, messages: &[&parley_domain::Message]) {
        let Some(first) = messages.first() else {
            return;
        };
        let group = match self.inner.groups.chat(&first.room) {
            Ok(group) => group,
            Err(e) => {
                tracing::error!(error = %e, "invalid chat group name");
                return;
            }
        };
        let events = messages
            .iter()
            .map(|m| events::chat_message(m, &self.channel))
            .collect();
        let started = Instant::now();
        let sent = self.inner.layer.group_send_all(&group, events).await;
        METRICS
            .layer_send_seconds
            .record(started.elapsed().as_secs_f64());
        match sent {
            Ok(report) => self.inner.kill_full(&report.full),
            // Stored and acknowledged: clients that missed the broadcast read it from history.
            Err(e) => {
                METRICS.layer_failures_broadcast.increment(1);
                let ids: Vec<i64> = messages.iter().map(|m| m.id.get()).collect();
                tracing::warn!(error = %e, ?ids, "messages stored but not broadcast");
            }
        }
    }

    async fn typing(&mut self, f: SetTyping) -> Result<()> {
        // Who may not post does not type either: dropped without a word (clients send it
        // as the user types; an error each time would be noise).
        if self.joined(&f.room)?.posting.check(&f.room).is_err() {
            return Ok(());
        }
        let frame = ServerFrame::Typing(Typing {
            room: f.room.clone(),
            user: self.user.username.clone(),
            active: f.active,
        });
        self.inner
            .broadcast_event(&f.room, &frame, Some(&self.channel))
            .await;
        Ok(())
    }

    async fn history(&mut self, f: FetchHistory) -> Result<ServerFrame> {
        let room_id = match self.rooms.get(&f.room) {
            Some(j) => j.id,
            None => {
                // Not joined: allowed for rooms the user may read.
                let access = RoomAccess::of(&self.inner.store, &self.user, &f.room).await?;
                access.require_read()?;
                access.room().id
            }
        };
        let query = HistoryQuery {
            before: f.before,
            after: f.after,
            limit: f.limit,
        };
        let page = self.inner.store.history(room_id, &query).await?;
        Ok(ServerFrame::History(HistoryPage {
            room: f.room,
            messages: page.messages,
            has_more: page.has_more,
            reference: None,
        }))
    }

    /// The joined room of a message about to be edited or deleted, after the checks both
    /// share: the message exists, is not deleted, and its room is joined here.
    /// (Author-or-staff is the store's check.) A message in a room the user may not read is
    /// `not_found`, as if it did not exist: its room's name and its id stay secret.
    async fn changeable_message_room(&self, id: MessageId) -> Result<RoomName> {
        let original = self.inner.store.message_by_id(id).await?;
        let deleted = original.deleted_at.is_some();
        let Some(room) = self.joined_by_id(original.room_id) else {
            let readable = match RoomAccess::of(&self.inner.store, &self.user, &original.room).await
            {
                Ok(access) => access.can_read(),
                Err(_) => false,
            };
            return Err(if readable {
                refused(
                    ErrorCode::NotJoined,
                    format!("join room {} first", original.room),
                )
            } else {
                EngineError::Store(StoreError::NotFound("message"))
            });
        };
        if deleted {
            return Err(refused(
                ErrorCode::Conflict,
                format!("message {id} was deleted"),
            ));
        }
        Ok(room)
    }

    async fn edit(&mut self, f: EditMessage) -> Result<ServerFrame> {
        let room = self.changeable_message_room(f.message_id).await?;
        self.joined(&room)?.posting.check(&room)?;
        let message = self
            .inner
            .store
            .edit_message(f.message_id, self.user.id, &f.body)
            .await?;
        let frame = ServerFrame::Edited(Edited {
            message,
            reference: None,
        });
        self.inner
            .broadcast_event(&room, &frame, Some(&self.channel))
            .await;
        Ok(frame)
    }

    async fn delete(&mut self, f: DeleteMessage) -> Result<ServerFrame> {
        let room = self.changeable_message_room(f.message_id).await?;
        // Owners (and staff) delete anyone's message in their room; others their own.
        let manager = self.joined(&room)?.posting.manager;
        self.inner
            .delete_message(
                &self.user,
                &room,
                f.message_id,
                manager,
                Some(&self.channel),
            )
            .await
    }

    async fn read(&mut self, f: MarkRead) -> Result<ServerFrame> {
        let joined = self.joined(&f.room)?;
        let (_, moved) = self
            .inner
            .store
            .set_read_marker(joined.id, self.user.id, f.message_id)
            .await?;
        let frame = ServerFrame::Read(ReadMarker {
            room: f.room.clone(),
            user: self.user.username.clone(),
            message_id: f.message_id,
            reference: None,
        });
        // The room hears of a marker that moved, not of one sent again (or backwards).
        if moved {
            self.inner
                .broadcast_event(&f.room, &frame, Some(&self.channel))
                .await;
        }
        Ok(frame)
    }

    async fn signal(&mut self, f: SendSignal) -> Result<()> {
        if self.user.is_guest {
            return Err(crate::access::guest_refused(
                "calls are for accounts, not guests",
            ));
        }
        let config = &self.inner.config;
        let max = config.max_signal_bytes.min(config.max_frame_bytes);
        let size = serde_json::to_vec(&f.payload).map_or(usize::MAX, |v| v.len());
        if size > max {
            return Err(refused(
                ErrorCode::InvalidField,
                format!("`signal` frame, field `payload`: {size} bytes; at most {max} are relayed"),
            ));
        }
        let target = self.inner.store.user_by_name(&f.to).await?;
        if target.is_guest {
            return Err(crate::access::guest_refused(
                "calls are for accounts, not guests",
            ));
        }
        if target.id == self.user.id {
            return Err(refused(
                ErrorCode::InvalidField,
                "a call needs another user",
            ));
        }
        if !self.shares_room_with(&target).await? {
            return Err(refused(
                ErrorCode::Forbidden,
                format!("you share no room with {}", target.username),
            ));
        }
        let frame = ServerFrame::Signal(RelayedSignal {
            from: self.user.username.clone(),
            payload: f.payload,
            call_id: f.call_id,
        });
        let group = self.inner.groups.user(target.id)?;
        let report = self
            .inner
            .layer
            .group_send(&group, events::signal(&frame))
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "signal not relayed");
                EngineError::Layer(e)
            })?;
        if report.delivered == 0 && report.full.is_empty() {
            return Err(refused(
                ErrorCode::NotFound,
                format!("{} is not online", target.username),
            ));
        }
        self.inner.kill_full(&report.full);
        Ok(())
    }

    /// A fresh access token of the same user extends the connection's authorization.
    async fn renew(&mut self, f: RenewAuth) -> Result<ServerFrame> {
        let Some(auth) = self.inner.auth.get() else {
            return Err(refused(
                ErrorCode::Forbidden,
                "this server does not renew authorization on an open socket",
            ));
        };
        let (claims, user) = auth.authenticate(&f.token).await?;
        if user.id != self.user.id {
            return Err(refused(ErrorCode::Forbidden, "the token is another user's"));
        }
        let grant = Grant::from_claims(&claims);
        let expires_at = grant.expires_at;
        // Staff status and e-mail may have changed since the socket opened.
        self.user = user;
        self.authorize(grant);
        Ok(ServerFrame::Renewed(Renewed {
            expires_at,
            reference: None,
        }))
    }

    /// True when both users are members of one room. Fast path: the target is online in a
    /// room this connection has joined (joining makes a member).
    async fn shares_room_with(&self, target: &User) -> Result<bool> {
        {
            let state = self.inner.state.lock();
            if self
                .rooms
                .keys()
                .any(|room| state.presence.is_online(room, &target.username))
            {
                return Ok(true);
            }
        }
        Ok(self
            .inner
            .store
            .share_a_room(self.user.id, target.id)
            .await?)
    }

    /// Leaves every room, the user's group and the layer; the engine forgets the connection.
    pub async fn close(mut self) {
        self.cleanup().await;
    }

    async fn cleanup(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let rooms: Vec<RoomName> = self.rooms.keys().cloned().collect();
        for room in &rooms {
            self.exit_room(room).await;
        }
        finish(&self.inner, &self.user, &self.channel).await;
    }
}

/// The part of closing that needs no `&mut Session` (also run from `Drop`).
async fn finish(inner: &Arc<Inner>, user: &User, channel: &ChannelName) {
    if let Ok(group) = inner.groups.user(user.id)
        && let Err(e) = inner.layer.group_discard(&group, channel).await
    {
        tracing::debug!(error = %e, "user group discard failed");
    }
    if let Err(e) = inner.layer.close_channel(channel).await {
        tracing::debug!(error = %e, "close_channel failed");
    }
    {
        let mut state = inner.state.lock();
        state.connections.remove(channel);
        state.rechecks.remove(channel);
    }
    inner.release_user(user.id);
    METRICS.sockets_open.decrement(1.0);
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // Not closed by the transport (it panicked or forgot): clean up in the background so
        // the user's presence and the layer's groups do not leak.
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let inner = self.inner.clone();
        let user = self.user.clone();
        let channel = self.channel.clone();
        let rooms: Vec<RoomName> = self.rooms.drain().map(|(name, _)| name).collect();
        handle.spawn(async move {
            for room in &rooms {
                for group in [inner.groups.chat(room), inner.groups.events(room)]
                    .into_iter()
                    .flatten()
                {
                    let _ = inner.layer.group_discard(&group, &channel).await;
                }
                inner.room_exited(room, &user.username, &channel).await;
            }
            finish(&inner, &user, &channel).await;
        });
    }
}
