//! # parley-core
//!
//! The chat engine: what a Django Channels consumer does, as a library. Given an
//! authenticated user and the text frames their client sends, it persists, authorizes and
//! fans out, and produces the frames the client receives — without knowing about HTTP, so any
//! Rust service can embed it behind any transport.
//!
//! ## Layout
//! - [`Engine`] (`engine`): one per server process; shared state (presence, connection
//!   registry, per-user limits) and a background task exchanging presence with other
//!   processes over the channel layer.
//! - [`Session`] (`session`): one per connection; join/leave, send (persist, then fan out),
//!   typing, history, edit/delete, read markers, call signalling. Frames that arrive together
//!   go in together ([`Session::on_texts`]): a run of sends is stored with one commit, in
//!   order, and the replies keep frame order.
//! - `events`: the layer messages and group names, Django-compatible on the chat group.
//! - [`presence`]: per-user presence across nodes, with expiry of dead nodes.
//! - [`rate`]: token buckets for flood limits.
//! - [`EngineConfig`]: the limits.
//!
//! ## Must not depend on
//! An HTTP framework (actix), Redis or a specific database driver: it talks to
//! `parley-layer`'s trait and `parley-store`'s `Store`, and the binary picks the backends.

mod config;
mod engine;
mod error;
mod events;
pub mod presence;
pub mod rate;
mod session;

pub use config::EngineConfig;
pub use engine::Engine;
pub use error::{EngineError, Result, store_code};
pub use events::{CHAT_MESSAGE, Groups};
pub use rate::RateLimit;
pub use session::{CloseReason, Inbound, Outbound, Session};
