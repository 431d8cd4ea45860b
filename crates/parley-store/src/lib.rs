//! # parley-store
//!
//! Everything Parley must remember: accounts, rooms, memberships, messages and revoked
//! refresh tokens, on PostgreSQL (production) or embedded SQLite (the zero-setup default).
//!
//! One [`Store`] type, cheap to clone, over an enum of two connection pools: PostgreSQL
//! through `diesel-async` (`AsyncPgConnection` over tokio-postgres, no libpq) and SQLite
//! through diesel-async's `SyncConnectionWrapper` (SQLite bundled; queries run on tokio's
//! blocking pool). Pick one with a URL: [`Store::connect`]`("postgres://...")`,
//! `"sqlite://path"` or `"sqlite::memory:"`, then [`Store::migrate`] (the migrations are
//! embedded in the binary) and [`Store::ping`] for readiness.
//!
//! Every operation is an async method returning [`StoreError`], whose variants are distinct
//! answers: `NotFound`, `Conflict` (a taken name), `Forbidden` (not the author nor staff),
//! `Invalid`, `Unavailable` (the database cannot be reached: try again) and `Internal`.
//!
//! **Run it on a multi-thread runtime.** A SQLite query dropped before it finishes (its caller
//! cancelled, a client hung up) makes diesel-async block in place until the blocking-pool task
//! ends, which panics on a current-thread runtime, such as actix's workers. Embedders on actix
//! hand store work to the application's multi-thread runtime (`parley-actix` does, see its
//! `AppState::offload`).
//!
//! Why this is not solved here: the wait is diesel-async's (`SyncConnectionWrapper` finishes
//! an unfinished blocking task when its future is dropped), and it is what keeps the
//! connection whole — its transaction manager needs sole access to the connection, so a
//! spawner that let the task run on detached (diesel-async's `SpawnBlocking` can be replaced)
//! would let the next transaction on that pooled connection panic while the old statement
//! still runs. Wrapping every operation in a task of its own would cost a spawn per query on
//! the hot path for PostgreSQL too. So the rule stays with the caller: a multi-thread
//! runtime, which an actix application has anyway for the engine's background tasks.
//!
//! **Guests are user rows** (`users.is_guest`, migration `…_guests`), not tokens without a
//! row: a message needs an author (`messages.sender_id` references `users`, and history,
//! edits, deletes and the idempotent `client_id` all key on it), and memberships, budgets
//! and presence key on a user id too, so a row keeps every rule and query as it is. Their
//! names (`guest.{name}.{tag}`) are a space accounts cannot register, they have no usable
//! password, and the flag travels with every message (`Message::guest`) so clients can mark
//! them. Removing a stale guest's row removes its messages and memberships with it
//! (`ON DELETE CASCADE`), as for a deleted account. Guest names staff banned are in
//! `guest_bans`.
//!
//! ## Layout
//! - `store`: [`Store`], [`StoreOptions`], [`Backend`], pools, migrations, readiness.
//! - `ops::users`, `ops::rooms`, `ops::messages`, `ops::tokens`, `ops::audit`, `ops::admin`
//!   (finding accounts, deactivation, erasing an account but keeping its messages, default
//!   rooms, run-time settings): the operations, as
//!   `impl Store` blocks. Each query is written once in diesel's DSL and compiled for both
//!   backends (the `with_conn!` macro). `ops::batch`: [`AppendBatcher`], group commit for
//!   message appends. `ops::moderation`: room bans and mutes, read-only rooms, and a user's
//!   [`Standing`] in a room (membership, ban and mute read together).
//! - `schema`: the diesel `table!`s, one schema for both backends (BIGINT ids and
//!   millisecond timestamps); the SQL is in the workspace's `migrations/postgres` and
//!   `migrations/sqlite`.
//! - `rows`: rows as read, and their conversion into `parley-domain` records.
//! - `testing` (feature `testing`): a throwaway PostgreSQL schema or SQLite file per test.
//!
//! ## Must not depend on
//! Any HTTP framework (actix) or Redis, and never diesel's `postgres` feature (libpq).
//! Password hashing and tokens belong to `parley-auth`; this crate stores hashes and `jti`s.

mod error;
mod ops;
mod rows;
mod schema;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Result, StoreError};
pub use ops::admin::{LinkedIdentity, UserQuery, UserRoom};
pub use ops::audit::{AuditQuery, NewAuditEntry};
pub use ops::batch::{AppendBatcher, BatchOptions};
pub use ops::messages::{Appended, HistoryPage, HistoryQuery, NewMessage};
pub use ops::moderation::Standing;
pub use ops::reactions::ReactionAdded;
pub use ops::rooms::{NewRoom, RoomListQuery, RoomPage, RoomScope};
pub use ops::search::{SearchPage, SearchQuery};
pub use ops::users::{Credentials, EMAIL_TAKEN, NewUser};
pub use store::{Backend, JoinTurn, PG_MIGRATIONS, SQLITE_MIGRATIONS, Store, StoreOptions};
