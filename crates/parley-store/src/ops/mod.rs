//! The store's operations, as `impl Store` blocks by subject.

pub mod audit;
pub mod batch;
pub mod messages;
pub mod reactions;
pub mod rooms;
pub mod tokens;
pub mod users;
