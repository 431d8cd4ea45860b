//! The WebSocket wire protocol: JSON text frames tagged by `"type"`.
//!
//! A client sends [`ClientFrame`]s (requests), each optionally carrying a `"ref"` token the
//! server echoes in the reply or error so the client can correlate them. The server sends
//! [`ServerFrame`]s: replies, room events, and [`ErrorFrame`]s with a stable [`ErrorCode`].
//! `docs/protocol.md` describes every frame and code with examples.
//!
//! ```
//! use parley_domain::protocol::{ClientFrame, DecodeLimits, ErrorCode, ServerFrame};
//!
//! let limits = DecodeLimits::default();
//! let request = ClientFrame::decode(r#"{"type":"join","room":"Lobby","ref":"r1"}"#, &limits)?;
//! assert_eq!(request.frame.room().map(|r| r.as_str()), Some("lobby"));
//!
//! // A bad frame becomes an error reply that still echoes the client's `ref`.
//! let err = ClientFrame::decode(r#"{"type":"join","room":"a b","ref":"r2"}"#, &limits)
//!     .unwrap_err();
//! assert_eq!(err.code(), ErrorCode::InvalidRoomName);
//! let reply = ServerFrame::from(err).to_json();
//! assert!(reply.starts_with(r#"{"type":"error","code":"invalid_room_name""#));
//! assert!(reply.ends_with(r#""ref":"r2"}"#));
//! # Ok::<(), parley_domain::protocol::FrameError>(())
//! ```
//!
//! ## Layout
//! - `client`: the request frames, [`FrameType`] (the one spelling of each frame type),
//!   [`Dialect`] (Parley's own protocol or the Django tutorial's) and [`ClientFrame::decode`],
//!   which turns untrusted text into a [`ClientEnvelope`] or a [`FrameError`] under
//!   configurable [`DecodeLimits`].
//! - `server`: the frames the server sends, [`ServerFrame::to_json`] and
//!   [`ServerFrame::from_json`].
//! - `codes`: [`ErrorCode`], [`ErrorFrame`], [`FrameError`].
//! - `text`: [`FrameRef`] and [`CallId`], the bounded client-chosen tokens.
//! - `schema` (feature `schema`): `protocol_schema()`, the JSON Schema of every frame, which
//!   the JavaScript client (`clients/js`) is generated from and checked against.

mod client;
mod codes;
#[cfg(feature = "schema")]
mod schema;
mod server;
mod text;

pub use client::{
    ClientEnvelope, ClientFrame, DecodeLimits, DeleteMessage, Dialect, EditMessage, FetchHistory,
    FrameType, JoinRoom, LeaveRoom, MarkRead, RenewAuth, SendMessage, SendSignal, SetReaction,
    SetTyping, TutorialFrames,
};
pub use codes::{ErrorCode, ErrorFrame, FrameError};
pub use server::{
    Deleted, Edited, Expiring, ExternalMessage, HistoryPage, Joined, Left, Mentioned, Pong, Posted,
    Presence, PresenceChange, PresenceEvent, Reacted, ReadMarker, RelayedSignal, Renewed,
    ServerFrame, TutorialFields, Typing,
};
pub use text::{CallId, FrameRef};

#[cfg(feature = "schema")]
pub use schema::protocol_schema;
