//! # parley-core
//!
//! The chat engine: what a Django Channels consumer does, as a library, and the one home of
//! Parley's chat behaviour. Given an authenticated user, it decides what they may do with
//! rooms, persists, authorizes and fans out their frames, and produces the frames their
//! client receives — without knowing about HTTP, so any Rust service can embed it behind any
//! transport. A transport parses, calls the engine and maps its errors; it holds no rule.
//!
//! ## Layout
//! - [`Engine`] (`engine`): one per server process; shared state (presence, connection
//!   registry, per-user limits) and a background task exchanging presence with other
//!   processes over the channel layer.
//! - [`RoomAccess`] (`access`): the one access policy — who may see, read, post in and
//!   manage a room, staff rules included — used by the socket and the rooms service alike.
//! - [`Rooms`] (`rooms`): the rooms service behind the REST API: list, details, create,
//!   rename, topic, delete, members and roles, history, who is online, direct rooms.
//! - `moderation`: the rooms service's bans, mutes and read-only switch for owners and
//!   staff, and how they reach open sockets on every process (the rules: [`RoomAccess`]).
//! - [`Session`] (`session`): one per connection; join/leave, send (persist, then fan out),
//!   typing, history, edit/delete, read markers, call signalling, in Parley's own protocol or
//!   the Django tutorial's ([`parley_domain::protocol::Dialect`]). Frames that arrive together
//!   go in together ([`Session::on_texts`]): a run of sends is stored with one commit, in
//!   order, and the replies keep frame order.
//! - [`Connection`] (`connection`): the loop every transport needs around a session — pings
//!   and timeouts, frames handed over together, back-pressure, several deliveries per write,
//!   close codes ([`CloseReason`]) — over any [`Socket`] (the only trait an embedder
//!   implements).
//! - [`metrics`]: what the engine counts and times, through the `metrics` facade (a no-op
//!   until the process installs a recorder).
//! - `events`: the layer messages and group names, Django-compatible on the chat group.
//! - [`presence`]: per-user presence across nodes, with expiry of dead nodes.
//! - [`Budget`] (`limits`): what each client frame type costs; every budget is per user,
//!   shared by the user's connections. [`rate`]: the token buckets behind them.
//! - `admin`: what staff (or the operator's command line, [`Actor`]) do to accounts —
//!   list, show, promote and demote, deactivate (close code 4005), reset a password, delete
//!   (messages kept) — and the run-time guest switch; the rules are in its module doc.
//! - `audit`: every staff and owner action recorded as it takes effect; staff read the log
//!   with [`Engine::audit_log`].
//! - [`Grant`] (`authorization`): how long a connection stays authorized — its access
//!   token's lifetime, renewed on the socket (`renew`), ended by signing out
//!   ([`Engine::logout`], [`Engine::sign_out`]) on every process.
//! - [`EngineConfig`], [`ConnectionConfig`]: the limits and timings.
//! - [`EngineError`] (`error`): the one error type; its [`EngineError::code`] is the wire
//!   code a client sees, on the socket and in REST answers alike.
//!
//! ## Runtimes
//! Store work needs a multi-thread tokio runtime (see `parley-store`: a SQLite query dropped
//! unfinished blocks in place). Run [`Connection::run`] on one; a loop that must live on a
//! current-thread runtime (actix's workers) hands its frames over with
//! [`Connection::handled_on`].
//!
//! ## Must not depend on
//! An HTTP framework (actix, axum), Redis or a specific database driver: it talks to
//! `parley-layer`'s trait, `parley-store`'s `Store` and `parley-auth`'s `Auth` (to check a
//! token renewed on a socket), and the binary picks the backends. The `openapi` feature
//! (parley-actix turns it on) adds `utoipa`, a data model and derive macros, for the schemas
//! of the answers the REST API returns (`RoomDetails`, `RoomList`, ...).

mod access;
mod admin;
mod audit;
mod authorization;
mod config;
mod connection;
mod engine;
mod error;
mod events;
pub mod ice;
mod limits;
pub mod mentions;
pub mod metrics;
mod moderation;
mod outage;
pub mod presence;
mod profile;
pub mod rate;
mod rooms;
pub mod search;
mod session;

pub use access::{Posting, RoomAccess};
pub use admin::{
    Actor, CLI_ACTOR, GuestSwitch, LinkedSignIn, USER_PAGE_DEFAULT, USER_PAGE_MAX, UserDetails,
    UserPage, UserRoom,
};
pub use audit::AUDIT_PAGE_MAX;
pub use authorization::Grant;
pub use config::{EngineConfig, GuestConfig};
pub use connection::{
    ClientMessage, Connection, ConnectionConfig, Gone, MAX_BATCH, MAX_FRAMES, ReadError, Socket,
};
pub use engine::Engine;
pub use error::{EngineError, Result};
pub use events::{CHAT_MESSAGE, Groups};
pub use ice::{ClientConfig, IceConfig, IceServer, TurnSecret};
pub use limits::Budget;
pub use moderation::MAX_MUTE;
pub use parley_store::{AuditQuery, HistoryQuery, RoomListQuery, RoomScope};
pub use profile::{OwnAccount, OwnSignIn};
pub use rate::RateLimit;
pub use rooms::{Member, MemberAdded, RoomChanges, RoomDetails, RoomHistory, RoomList, Rooms};
pub use search::{
    SEARCH_DEFAULT_LIMIT, SEARCH_MAX_LIMIT, SEARCH_MAX_QUERY_CHARS, SEARCH_MAX_TERMS,
    SNIPPET_CHARS, SearchHit, SearchRequest, SearchResults, SnippetSegment,
};
pub use session::{
    CLOSE_ACCOUNT_DISABLED, CLOSE_EXPIRED, CLOSE_PING_TIMEOUT, CLOSE_SIGNED_OUT,
    CLOSE_SLOW_CONSUMER, CloseReason, Inbound, Outbound, Session,
};
