//! # parley-layer
//!
//! The channel layer of Django Channels, in Rust: the way one part of a chat server talks to
//! the connections it does not own. A *channel* is one connection's mailbox; a *group* is a
//! named set of channels. A server sends to a channel or fans a message out to a group, and
//! each connection receives from its own channel.
//!
//! ## Layout
//! - [`ChannelLayer`]: the trait every backend implements (object-safe: the server picks
//!   the backend from configuration at run time and holds an `Arc<dyn ChannelLayer>`).
//! - [`Message`]: a map with a `"type"` key, shared behind an `Arc` so a group send to
//!   10,000 local channels copies a pointer, not the payload.
//! - [`ChannelName`], [`GroupName`]: names validated as Channels validates them.
//! - [`LayerConfig`]: capacity, message expiry and group expiry.
//! - [`InMemoryLayer`] (`memory.rs`): the backend for one process; [`InMemoryStats`] counts
//!   what it holds.
//! - `conformance` (feature `testing`): the suite every backend runs, with one line:
//!   `parley_layer::conformance_tests!(make_layer);` (see its module docs).
//! - `tests/conformance.rs` runs that suite on the in-memory layer; `tests/memory.rs` holds what
//!   only it promises (paused-time expiry, no leaks, concurrency); `examples/group_send_bench.rs`
//!   measures fan-out (figures in `docs/benchmarks.md`).
//!
//! ## Must not depend on
//! Redis, a database, an HTTP framework, or `parley-domain`: a layer moves opaque messages
//! and knows nothing of chat.

mod config;
mod error;
mod layer;
mod memory;
mod message;
mod names;

#[cfg(feature = "testing")]
pub mod conformance;

pub use config::LayerConfig;
pub use error::{LayerError, Result};
pub use layer::{ChannelLayer, GroupSendReport};
pub use memory::{InMemoryLayer, InMemoryStats};
pub use message::Message;
pub use names::{ChannelName, GroupName, MAX_NAME_LENGTH};
