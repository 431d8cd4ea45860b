//! The engine's limits and settings.

use crate::error::{EngineError, Result};
use crate::ice::IceConfig;
use crate::rate::RateLimit;
use parley_domain::protocol::DecodeLimits;
use parley_domain::{MessageBody, RoomName};
use parley_layer::GroupName;
use parley_store::BatchOptions;
use std::time::Duration;

/// Limits and settings of one engine. `Default` gives production-sensible values.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Largest client text frame, in bytes; larger ones are refused before parsing.
    pub max_frame_bytes: usize,
    /// Longest message body, in characters.
    pub max_message_chars: usize,
    /// Rooms one connection may have joined at once.
    pub max_rooms_per_connection: usize,
    /// Connections one user may hold on this node at once.
    pub max_connections_per_user: usize,
    /// `send`, `edit` and `delete` frames per user (every budget is per user, shared by all
    /// of their connections on this process: see `limits`).
    pub message_rate: RateLimit,
    /// `typing` frames per user.
    pub typing_rate: RateLimit,
    /// `join` and `leave` frames per user (each may announce presence to a whole room, and
    /// cycling through rooms would scrape them).
    pub join_rate: RateLimit,
    /// `history` frames per user (each a query of up to 100 messages).
    pub history_rate: RateLimit,
    /// `read` frames per user.
    pub read_rate: RateLimit,
    /// `signal` frames per user (call set-up sends a few dozen ICE candidates at once).
    pub signal_rate: RateLimit,
    /// `ping` frames per user.
    pub ping_rate: RateLimit,
    /// Rooms a user may create (REST and the tutorial endpoint alike).
    pub room_create_rate: RateLimit,
    /// `renew` frames per user.
    pub renew_rate: RateLimit,
    /// `react` and `unreact` frames per user (limited like `typing`: each is a database
    /// write and a frame to the whole room).
    pub reaction_rate: RateLimit,
    /// Distinct emoji one message may carry; a reaction with a new one beyond this is
    /// refused (`too_many_reactions`).
    pub max_reactions_per_message: usize,
    /// Distinct `@name`s of one message that are looked up as mentions; further ones stay
    /// plain text (the message is sent all the same). See [`crate::mentions`].
    pub max_mentions_per_message: usize,
    /// How long before a connection's authorization ends it is warned (`expiring`); a token
    /// that lives less than twice this is warned halfway through its life.
    pub expiry_warning: Duration,
    /// Largest `signal` payload, in bytes of JSON (an SDP offer is a few KiB); never more
    /// than `max_frame_bytes`, which bounds the whole frame.
    pub max_signal_bytes: usize,
    /// Messages of history sent with `joined`.
    pub history_on_join: u32,
    /// The layer group a room's chat messages go to, with `{room}` for the room's name.
    /// The default, `chat_{room}`, is the group the Django Channels tutorials use, so a
    /// Django consumer sharing the Redis layer talks to Parley's users.
    pub room_group_pattern: String,
    /// How often this node tells the others who is online here.
    pub presence_interval: Duration,
    /// How long another node's presence report counts; a node silent for this long (it died
    /// or lost the layer) drops out of every online list.
    pub presence_ttl: Duration,
    /// Rooms with more users online than this get no `presence` frames. Each frame carries
    /// the whole online list to every member, so a room filling up (or emptying) costs the
    /// cube of its size: 10,000 joins × up to 10,000 members × lists of up to 10,000 names,
    /// which floods every member's queue (slow-consumer disconnects) long before the room is
    /// full. It also caps the names listed in `joined` (the joining user first), whose
    /// `online_count` still gives the full number; the REST `online` endpoint lists everyone.
    /// Other nodes learn of joins in larger rooms at the next presence heartbeat.
    pub presence_fanout_limit: usize,
    /// Group commit for sent messages: `Some` routes every `send` through a
    /// [`parley_store::AppendBatcher`] started with these options, so messages that arrive
    /// while a write is in flight share one statement and one commit (the commit rate, not
    /// the database, is what caps a busy room); `None` stores each message with its own
    /// statement and commit. Either way a message is acknowledged only once committed, and
    /// retries with the same `client_id` are recognised. The default batches with
    /// [`BatchOptions::default`]. Each writer task holds a pooled database connection while
    /// it writes, so keep `writers` well under the store's pool size.
    pub group_commit: Option<BatchOptions>,
    /// Guests: identities without an account (`POST /api/auth/guest`), off by default.
    pub guests: GuestConfig,
    /// STUN/TURN servers for calls, and TURN credentials (`GET /api/config`).
    pub ice: IceConfig,
}

/// Whether guests are allowed, and their own (stricter) budgets. Guests may join public
/// rooms, read their history and post there, nothing more (see [`crate::RoomAccess`]).
#[derive(Debug, Clone)]
pub struct GuestConfig {
    /// Guests may sign in and connect. Off: the guest route answers 404, the tutorial
    /// endpoint refuses `?guest=`, and a guest's socket is refused (`guest_not_allowed`).
    pub enabled: bool,
    /// A guest's `send`, `edit` and `delete` frames, in place of `message_rate`.
    pub message_rate: RateLimit,
    /// A guest's `join` and `leave` frames, in place of `join_rate`.
    pub join_rate: RateLimit,
}

impl Default for GuestConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            message_rate: RateLimit::new(1.0, 5.0),
            join_rate: RateLimit::new(0.5, 10.0),
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: DecodeLimits::DEFAULT_MAX_FRAME_BYTES,
            max_message_chars: MessageBody::DEFAULT_MAX_CHARS,
            max_rooms_per_connection: 100,
            max_connections_per_user: 16,
            message_rate: RateLimit::new(10.0, 20.0),
            typing_rate: RateLimit::new(2.0, 5.0),
            join_rate: RateLimit::new(5.0, 50.0),
            history_rate: RateLimit::new(5.0, 20.0),
            read_rate: RateLimit::new(5.0, 20.0),
            signal_rate: RateLimit::new(20.0, 60.0),
            ping_rate: RateLimit::new(5.0, 20.0),
            room_create_rate: RateLimit::new(0.1, 10.0),
            renew_rate: RateLimit::new(1.0, 5.0),
            reaction_rate: RateLimit::new(2.0, 10.0),
            max_reactions_per_message: 20,
            max_mentions_per_message: 20,
            expiry_warning: Duration::from_secs(60),
            max_signal_bytes: 16 * 1024,
            history_on_join: 50,
            room_group_pattern: "chat_{room}".to_owned(),
            presence_interval: Duration::from_secs(5),
            presence_ttl: Duration::from_secs(15),
            presence_fanout_limit: 256,
            group_commit: Some(BatchOptions::default()),
            guests: GuestConfig::default(),
            ice: IceConfig::default(),
        }
    }
}

impl EngineConfig {
    /// Checks the settings, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |setting: &'static str, reason: &str| {
            Err(EngineError::Config(format!("{setting}: {reason}")))
        };
        if self.max_frame_bytes < 256 {
            return bad("max_frame_bytes", "must be at least 256");
        }
        if self.max_message_chars == 0 {
            return bad("max_message_chars", "must be at least 1");
        }
        if self.max_rooms_per_connection == 0 || self.max_connections_per_user == 0 {
            return bad(
                "max_rooms_per_connection/max_connections_per_user",
                "must be at least 1",
            );
        }
        for (name, rate) in [
            ("message_rate", self.message_rate),
            ("typing_rate", self.typing_rate),
            ("join_rate", self.join_rate),
            ("history_rate", self.history_rate),
            ("read_rate", self.read_rate),
            ("signal_rate", self.signal_rate),
            ("ping_rate", self.ping_rate),
            ("room_create_rate", self.room_create_rate),
            ("renew_rate", self.renew_rate),
            ("reaction_rate", self.reaction_rate),
            ("guest_message_rate", self.guests.message_rate),
            ("guest_join_rate", self.guests.join_rate),
        ] {
            if !(rate.per_second > 0.0 && rate.burst >= 1.0) {
                return bad(name, "needs a positive rate and a burst of at least 1");
            }
        }
        if let Err(why) = self.ice.validate() {
            return Err(EngineError::Config(why));
        }
        if self.max_mentions_per_message > 1000 {
            return bad("max_mentions_per_message", "must be at most 1000");
        }
        if self.max_reactions_per_message == 0 {
            return bad("max_reactions_per_message", "must be at least 1");
        }
        if self.max_signal_bytes < 256 {
            return bad("max_signal_bytes", "must be at least 256");
        }
        if !self.room_group_pattern.contains("{room}") {
            return bad("room_group_pattern", "must contain {room}");
        }
        // The longest room name must still give a valid group name.
        let longest = "r".repeat(RoomName::MAX_LEN);
        if GroupName::parse(&self.room_group_pattern.replace("{room}", &longest)).is_err() {
            return bad(
                "room_group_pattern",
                "must give a valid Channels group name (ASCII letters, digits, '-', '_', '.'; under 100 characters) for every room",
            );
        }
        if self.presence_ttl <= self.presence_interval {
            return bad("presence_ttl", "must be longer than presence_interval");
        }
        if let Some(batch) = &self.group_commit {
            if batch.max_batch == 0 {
                return bad("group_commit.max_batch", "must be at least 1");
            }
            if batch.writers == 0 {
                return bad("group_commit.writers", "must be at least 1");
            }
            if batch.queue == 0 {
                return bad("group_commit.queue", "must be at least 1");
            }
        }
        Ok(())
    }

    /// The decoder limits these settings imply.
    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_frame_bytes: self.max_frame_bytes,
            max_body_chars: self.max_message_chars,
        }
    }
}
