//! # parley-domain
//!
//! The vocabulary every other Parley crate speaks: typed ids, validated names, room kinds,
//! message bodies, the records the store returns, and the JSON wire protocol a client and
//! the server exchange over the WebSocket.
//!
//! ## Layout
//! - [`ids`]: `UserId`, `RoomId`, `MessageId` and [`Timestamp`] (milliseconds since the epoch).
//! - [`names`]: [`UserName`], [`RoomName`], [`Email`], [`Topic`] and the rules they enforce.
//! - [`room`]: [`RoomKind`], [`Role`] and [`DirectKey`], the canonical key of a 1:1 room.
//! - [`message`]: [`MessageBody`] and [`ClientMsgId`].
//! - [`reaction`]: [`Emoji`], [`ReactionSummary`] and [`ReplyPreview`], what replies and
//!   reactions add to a message (issue 17).
//! - [`audit`]: [`AuditEntry`] and [`AuditAction`], what the audit log keeps of each staff and
//!   owner action.
//! - [`moderation`]: [`Mute`], [`RoomBan`], [`RoomMute`]: room bans and mutes.
//! - [`model`]: the records (`User`, `Room`, `Message`, ...) shared by store, engine and transport.
//! - [`protocol`]: client and server frames, tagged by `"type"`, and the typed error frame.
//! - [`redact_url`] (`redact`): the one way a URL's password is hidden from logs.
//!
//! - `schema` (feature `openapi`): the OpenAPI schemas of the names; the records, ids and
//!   [`protocol::ErrorCode`] derive theirs (`utoipa::ToSchema`).
//!
//! - `protocol::protocol_schema` (feature `schema`): the JSON Schema of the frames, for
//!   `clients/js` (schemars: derive macros and a data model, no I/O).
//!
//! ## Must not depend on
//! Any I/O: no async runtime, no database, no network, no HTTP framework. Only `serde`,
//! `serde_json` and `thiserror` — and, with the `openapi` feature (which parley-actix turns
//! on for its `/api/openapi.json`), `utoipa`: a data model and derive macros, no I/O. The
//! schemas are derived here, beside the types, so that a new field shows up in the document
//! without anyone remembering to add it. Everything here is pure and cheap to test.

pub mod audit;
mod error;
pub mod ids;
pub mod message;
pub mod model;
pub mod moderation;
pub mod names;
pub mod protocol;
pub mod reaction;
mod redact;
pub mod room;
#[cfg(feature = "openapi")]
mod schema;

pub use audit::{AuditAction, AuditEntry, AuditTarget};
pub use error::{DomainError, Result};
pub use ids::{MessageId, RoomId, Timestamp, UserId};
pub use message::{ClientMsgId, MessageBody};
pub use model::{LastMessage, Membership, Message, Room, RoomSummary, User};
pub use moderation::{Mute, RoomBan, RoomMute};
pub use names::{DisplayName, Email, Reason, RoomName, Topic, UserName};
pub use reaction::{Emoji, ReactionSummary, ReplyPreview};
pub use redact::redact_url;
pub use room::{DirectKey, Role, RoomKind};
