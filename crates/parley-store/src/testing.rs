//! Throwaway databases for tests (feature `testing`), shared with the engine's and the
//! end-to-end suites.
//!
//! - [`TestDb::postgres`]: a fresh schema on the server at `DATABASE_URL` (default
//!   `postgres://postgres@127.0.0.1:5432/test`), migrated, and used through
//!   `search_path`; dropped when the `TestDb` is dropped. Schemas are cheap to create and
//!   migrate, and independent, so tests run in parallel.
//! - [`TestDb::sqlite`]: a migrated SQLite file in its own temporary directory, removed on drop.
//!
//! Neither skips: if PostgreSQL is unreachable, `postgres()` fails.
//!
//! [`plain_user`], [`public_room`] and [`plain_message`] make the rows most tests start from;
//! [`TestDb::lock_table`] makes a PostgreSQL database answer slowly, for fault tests.

use crate::error::{Result, StoreError};
use crate::store::{Backend, Store, StoreOptions};
use crate::{NewMessage, NewRoom, NewUser};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use parley_domain::{MessageBody, Room, RoomKind, RoomName, Topic, User, UserName};
use std::path::PathBuf;

/// Creates `name`: not staff, not a guest, no e-mail, a password hash that matches nothing.
pub async fn plain_user(store: &Store, name: &str) -> Result<User> {
    store
        .create_user(&NewUser {
            username: UserName::parse(name)
                .map_err(|e| StoreError::Invalid(format!("test user name: {e}")))?,
            email: None,
            display_name: None,
            password_hash: "x".to_owned(),
            is_staff: false,
            is_guest: false,
        })
        .await
}

/// Creates the public room `name`, with `creator` its owner.
pub async fn public_room(store: &Store, name: &str, creator: &User) -> Result<Room> {
    store
        .create_room(&NewRoom {
            name: RoomName::parse(name)
                .map_err(|e| StoreError::Invalid(format!("test room name: {e}")))?,
            kind: RoomKind::Public,
            creator: creator.id,
            topic: Topic::default(),
        })
        .await
}

/// A message from `sender` to `room` with no client id, reply or mention.
pub fn plain_message(room: &Room, sender: &User, body: &str) -> Result<NewMessage> {
    Ok(NewMessage {
        room_id: room.id,
        room: room.name.clone(),
        sender_id: sender.id,
        sender: sender.username.clone(),
        sender_display_name: None,
        sender_is_guest: sender.is_guest,
        body: MessageBody::parse(body)
            .map_err(|e| StoreError::Invalid(format!("test message body: {e}")))?,
        client_id: None,
        reply_to: None,
        mentions: Vec::new(),
    })
}

/// The PostgreSQL server tests use: `DATABASE_URL`, else the local default.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

enum Cleanup {
    PgSchema { admin_url: String, schema: String },
    SqliteDir(PathBuf),
}

/// A migrated, private database for one test. Derefs to its [`Store`].
pub struct TestDb {
    /// The store over the test's database.
    store: Store,
    /// The URL the store was opened with (includes the schema's `search_path` on PostgreSQL).
    url: String,
    /// What to remove on drop.
    cleanup: Option<Cleanup>,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb").field("url", &self.url).finish()
    }
}

fn unique_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl TestDb {
    /// A fresh, migrated schema on the PostgreSQL server at [`database_url`].
    pub async fn postgres() -> Result<Self> {
        Self::postgres_with(&StoreOptions {
            max_connections: 8,
            ..StoreOptions::default()
        })
        .await
    }

    /// Like [`TestDb::postgres`], with pool options (e.g. a bigger pool for a benchmark).
    pub async fn postgres_with(opts: &StoreOptions) -> Result<Self> {
        let admin_url = database_url();
        let schema = format!("parley_test_{}", unique_suffix());
        let mut admin = AsyncPgConnection::establish(&admin_url).await?;
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot create test schema: {e}")))?;
        drop(admin);
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options=-c%20search_path%3D{schema}");
        let db = Self {
            store: Store::connect(&url, opts)?,
            url,
            cleanup: Some(Cleanup::PgSchema { admin_url, schema }),
        };
        db.store.migrate().await?;
        Ok(db)
    }

    /// A fresh, migrated SQLite database in a temporary file.
    pub async fn sqlite() -> Result<Self> {
        Self::sqlite_with(&StoreOptions::default()).await
    }

    /// Like [`TestDb::sqlite`], with pool options.
    pub async fn sqlite_with(opts: &StoreOptions) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("parley-test-{}", unique_suffix()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| StoreError::Internal(format!("temp dir: {e}")))?;
        let url = format!("sqlite://{}", dir.join("parley.sqlite3").display());
        let db = Self {
            store: Store::connect(&url, opts)?,
            url,
            cleanup: Some(Cleanup::SqliteDir(dir)),
        };
        db.store.migrate().await?;
        Ok(db)
    }

    /// The store over this database (clone it freely).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The URL the store was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// A PostgreSQL table locked by a transaction of its own ([`TestDb::lock_table`]): every read
/// and write of it waits, as behind a long migration. Given back by [`TableLock::release`],
/// or when dropped (its connection closes, which rolls the transaction back).
pub struct TableLock(AsyncPgConnection);

impl TestDb {
    /// Locks `table` (PostgreSQL only) until the returned guard is released: a database that
    /// answers slowly, as a fault to test against.
    pub async fn lock_table(&self, table: &str) -> Result<TableLock> {
        if self.store.backend() != Backend::Postgres {
            return Err(StoreError::Invalid(
                "lock_table needs PostgreSQL (SQLite readers do not wait for writers)".into(),
            ));
        }
        let mut conn = AsyncPgConnection::establish(&self.url).await?;
        conn.batch_execute(&format!(
            "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
        ))
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot lock {table}: {e}")))?;
        Ok(TableLock(conn))
    }
}

impl TableLock {
    /// Ends the locking transaction: whoever waited goes on.
    pub async fn release(mut self) -> Result<()> {
        self.0
            .batch_execute("COMMIT")
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot release a table lock: {e}")))
    }
}

impl std::ops::Deref for TestDb {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match self.cleanup.take() {
            Some(Cleanup::PgSchema { admin_url, schema }) => {
                // Drop is synchronous and may run on a runtime thread: do the async cleanup on
                // a thread of its own with a small runtime.
                let done = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    rt.block_on(async {
                        let mut conn = AsyncPgConnection::establish(&admin_url).await.ok()?;
                        conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                            .await
                            .ok()
                    })
                })
                .join();
                if !matches!(done, Ok(Some(()))) {
                    tracing::warn!("could not drop a test schema");
                }
            }
            Some(Cleanup::SqliteDir(dir)) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            None => {}
        }
    }
}
