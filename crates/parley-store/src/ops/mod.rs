//! The store's operations, as `impl Store` blocks by subject.

pub mod admin;
pub mod audit;
pub mod batch;
pub mod mentions;
pub mod messages;
pub mod moderation;
pub mod reactions;
pub mod rooms;
pub mod search;
pub mod tokens;
pub mod users;
