//! The WebSocket wire protocol: JSON text frames tagged by `"type"`.
//!
//! A client sends [`ClientFrame`]s (requests), each optionally carrying a `"ref"` token the
//! server echoes in the reply or error so the client can correlate them. The server sends
//! [`ServerFrame`]s: replies, room events, and [`ErrorFrame`]s with a stable [`ErrorCode`].
//! `docs/protocol.md` describes every frame and code with examples.
//!
//! ## Layout
//! - `client`: the request frames and [`ClientFrame::decode`], which turns untrusted text into
//!   a [`ClientEnvelope`] or a [`FrameError`] under configurable [`DecodeLimits`].
//! - `server`: the frames the server sends, [`ServerFrame::to_json`] and
//!   [`ServerFrame::from_json`].
//! - `codes`: [`ErrorCode`], [`ErrorFrame`], [`FrameError`].
//! - `text`: [`FrameRef`] and [`CallId`], the bounded client-chosen tokens.

mod client;
mod codes;
mod server;
mod text;

pub use client::{
    ClientEnvelope, ClientFrame, DecodeLimits, DeleteMessage, EditMessage, FetchHistory, JoinRoom,
    LeaveRoom, MarkRead, SendMessage, SendSignal, SetTyping,
};
pub use codes::{ErrorCode, ErrorFrame, FrameError};
pub use server::{
    Deleted, Edited, HistoryPage, Joined, Left, Pong, Posted, Presence, PresenceEvent, ReadMarker,
    RelayedSignal, ServerFrame, Typing,
};
pub use text::{CallId, FrameRef};
