//! The [`Store`] handle: the backend enum, connection pools, migrations and readiness.

use crate::error::{Result, StoreError};
use deadpool::Runtime;
use diesel::SqliteConnection;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{
    AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, SimpleAsyncConnection,
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use std::sync::Arc;
use std::time::Duration;

/// The PostgreSQL migrations, compiled into the binary.
pub const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
/// The SQLite migrations, compiled into the binary.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// The SQLite connection type: diesel's sync connection run on tokio's blocking pool.
pub(crate) type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL through diesel-async (tokio-postgres, no libpq).
    Postgres,
    /// Embedded SQLite (bundled), queries on tokio's blocking pool.
    Sqlite,
}

/// Pool and connection settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most connections open at once. Ignored (forced to 1) for `sqlite::memory:`, where each
    /// connection would otherwise see its own empty database.
    pub max_connections: usize,
    /// Connections of a second, small pool kept for the account read of every authenticated
    /// request and socket handshake ([`Store::account_for_auth`]), beyond `max_connections`.
    /// Without it a handshake queues for a connection behind the room joins, history reads
    /// and writes of the clients already connected, and in a reconnect storm of thousands
    /// it outwaits `acquire_timeout` (the client is refused) or the HTTP request deadline.
    /// 0: account reads share the main pool (as does `sqlite::memory:`, always).
    pub account_connections: usize,
    /// Joins that use the database at once ([`Store::join_turn`]): the others wait for a
    /// turn, in order and with no timeout, instead of queueing for a pooled connection
    /// behind `acquire_timeout`. In a reconnect storm every client joins at once, and past
    /// that timeout the joins were refused (`unavailable`); kept below `max_connections`,
    /// it also leaves connections to sends and requests meanwhile. The engine's re-checks of
    /// every socket after a channel-layer outage, another storm, take the same turns.
    /// 0: no limit.
    pub join_concurrency: usize,
    /// How long an operation waits for a free connection before failing `Unavailable`.
    pub acquire_timeout: Duration,
    /// How long opening a new connection may take before failing `Unavailable`.
    pub connect_timeout: Duration,
    /// SQLite: how long a writer waits for the database lock (`PRAGMA busy_timeout`).
    pub sqlite_busy_timeout: Duration,
    /// PostgreSQL: longest a statement may run before the server cancels it
    /// (`statement_timeout`), so a stuck query cannot hold a pooled connection forever.
    /// `None` leaves the server's setting.
    pub pg_statement_timeout: Option<Duration>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            account_connections: 2,
            join_concurrency: 8,
            acquire_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            sqlite_busy_timeout: Duration::from_secs(5),
            pg_statement_timeout: Some(Duration::from_secs(30)),
        }
    }
}

#[derive(Clone)]
pub(crate) enum Pools {
    Pg(Pool<AsyncPgConnection>),
    Sqlite(Pool<SqliteConn>),
}

/// The handle to Parley's database. Cheap to clone (an `Arc`); every operation is an async
/// method that borrows a pooled connection for its duration.
#[derive(Clone)]
pub struct Store {
    /// The backend's pool.
    pub(crate) pools: Arc<Pools>,
    /// The pool of account reads for authentication ([`StoreOptions::account_connections`]);
    /// the same `Arc` as `pools` when there is no separate one.
    pub(crate) account_pools: Arc<Pools>,
    /// SQLite only: taken around every write (see `with_conn!`).
    pub(crate) sqlite_writer: Arc<tokio::sync::Mutex<()>>,
    /// The history reads of joins not started yet, by (room, page size), each shared by
    /// whoever asks for the same page meanwhile (`Store::join_history`).
    pub(crate) pending_pages: Arc<std::sync::Mutex<PendingPages>>,
    /// The turns of joins ([`StoreOptions::join_concurrency`]); `None`: no limit.
    pub(crate) join_gate: Option<Arc<tokio::sync::Semaphore>>,
}

/// A join's turn at the database ([`Store::join_turn`]), given back when dropped.
#[derive(Debug)]
pub struct JoinTurn(#[allow(dead_code)] Option<tokio::sync::OwnedSemaphorePermit>);

/// See `Store::pending_pages`: the outcome of a read, once it is done.
pub(crate) type PendingPages = std::collections::HashMap<
    (i64, u32),
    tokio::sync::watch::Receiver<Option<Result<crate::HistoryPage>>>,
>;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish()
    }
}

/// Runs `$body` with `$conn` bound to a `&mut` pooled connection of whichever backend the
/// store uses. The body is compiled once per backend, so diesel's DSL is checked against both.
///
/// `write |conn|` marks a body that writes: on SQLite, which allows one writer at a time,
/// writers then queue in FIFO order on the store's write lock instead of in SQLite's busy
/// handler (which polls with growing sleeps: unfair, and seconds of latency under load).
macro_rules! with_conn {
    // A read on one of the store's pools (the arms below pick which).
    (@read $pools:expr, |$conn:ident| $body:expr) => {
        match &*$pools {
            $crate::store::Pools::Pg(pool) => {
                let mut obj = pool.get().await.map_err($crate::error::StoreError::from)?;
                let $conn = &mut *obj;
                $body
            }
            $crate::store::Pools::Sqlite(pool) => {
                let mut obj = pool.get().await.map_err($crate::error::StoreError::from)?;
                let $conn = &mut *obj;
                $body
            }
        }
    };
    ($store:expr, write |$conn:ident| $body:expr) => {
        match &*$store.pools {
            $crate::store::Pools::Pg(pool) => {
                let mut obj = pool.get().await.map_err($crate::error::StoreError::from)?;
                let $conn = &mut *obj;
                $body
            }
            $crate::store::Pools::Sqlite(pool) => {
                let _writer = $store.sqlite_writer.lock().await;
                let mut obj = pool.get().await.map_err($crate::error::StoreError::from)?;
                let $conn = &mut *obj;
                $body
            }
        }
    };
    ($store:expr, |$conn:ident| $body:expr) => {
        with_conn!(@read $store.pools, |$conn| $body)
    };
    // A read on the connections kept for authentication (`Store::account_for_auth`).
    ($store:expr, accounts |$conn:ident| $body:expr) => {
        with_conn!(@read $store.account_pools, |$conn| $body)
    };
}
pub(crate) use with_conn;

/// Creates the empty file `path` with mode 0600 (on Unix).
fn create_private(path: &str) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Invalid(format!("SQLite file {path}: {e}"))),
    }
}

/// Sets `path`'s mode to 0600 (on Unix): for files SQLite created itself.
fn restrict_mode(path: &str) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| StoreError::Invalid(format!("{path}: {e}")))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Where a `sqlite:` URL points.
fn sqlite_path(url: &str) -> Option<&str> {
    if url == "sqlite::memory:" || url == "sqlite://:memory:" {
        return Some(":memory:");
    }
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
}

impl Store {
    /// Opens a pool for `url`: `postgres://...` (or `postgresql://`), `sqlite://path`,
    /// `sqlite:path` or `sqlite::memory:`. No connection is made yet: call [`Store::ping`]
    /// or [`Store::migrate`] to find out whether the database is there.
    pub fn connect(url: &str, opts: &StoreOptions) -> Result<Self> {
        let pools = Arc::new(Self::open_pool(url, opts, opts.max_connections)?);
        let shared = opts.account_connections == 0 || sqlite_path(url) == Some(":memory:");
        let account_pools = if shared {
            pools.clone()
        } else {
            Arc::new(Self::open_pool(url, opts, opts.account_connections)?)
        };
        Ok(Self {
            pools,
            account_pools,
            sqlite_writer: Arc::new(tokio::sync::Mutex::new(())),
            pending_pages: Arc::default(),
            join_gate: (opts.join_concurrency > 0)
                .then(|| Arc::new(tokio::sync::Semaphore::new(opts.join_concurrency))),
        })
    }

    /// One pool of at most `size` connections to `url` (no connection is made yet).
    fn open_pool(url: &str, opts: &StoreOptions, size: usize) -> Result<Pools> {
        let pools = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut config = ManagerConfig::<AsyncPgConnection>::default();
            // `Verified` would add a `SELECT 1` round trip to every checkout; a connection that
            // broke is marked broken by its failing query and dropped on return.
            config.recycling_method = RecyclingMethod::Fast;
            if let Some(timeout) = opts.pg_statement_timeout {
                let ms = timeout.as_millis();
                config.custom_setup = Box::new(move |url| {
                    let url = url.to_owned();
                    Box::pin(async move {
                        let mut conn = AsyncPgConnection::establish(&url).await?;
                        conn.batch_execute(&format!("SET statement_timeout = {ms}"))
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        Ok(conn)
                    })
                });
            }
            let manager = AsyncDieselConnectionManager::new_with_config(url, config);
            let pool = Pool::builder(manager)
                .max_size(size.max(1))
                .wait_timeout(Some(opts.acquire_timeout))
                .create_timeout(Some(opts.connect_timeout))
                .runtime(Runtime::Tokio1)
                .build()
                .map_err(|e| StoreError::Internal(e.to_string()))?;
            Pools::Pg(pool)
        } else if let Some(path) = sqlite_path(url) {
            let memory = path == ":memory:";
            if !memory && !std::path::Path::new(path).exists() {
                // Readable by its owner only (SQLite gives its WAL and shared-memory files
                // the database file's mode): it holds password hashes.
                create_private(path)?;
            }
            let busy_ms = opts.sqlite_busy_timeout.as_millis();
            let mut config = ManagerConfig::<SqliteConn>::default();
            config.recycling_method = RecyclingMethod::Fast;
            config.custom_setup = Box::new(move |path| {
                let path = path.to_owned();
                Box::pin(async move {
                    let mut conn = SqliteConn::establish(&path).await?;
                    // Per connection: readers do not block the writer (WAL), writers queue
                    // for the lock instead of failing at once, and foreign keys are enforced.
                    let journal = if memory {
                        ""
                    } else {
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                    };
                    conn.batch_execute(&format!(
                        "{journal} PRAGMA busy_timeout = {busy_ms}; PRAGMA foreign_keys = ON;"
                    ))
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                    Ok(conn)
                })
            });
            let manager = AsyncDieselConnectionManager::new_with_config(path, config);
            let size = if memory { 1 } else { size.max(1) };
            let pool = Pool::builder(manager)
                .max_size(size)
                .wait_timeout(Some(opts.acquire_timeout))
                .create_timeout(Some(opts.connect_timeout))
                .runtime(Runtime::Tokio1)
                .build()
                .map_err(|e| StoreError::Internal(e.to_string()))?;
            Pools::Sqlite(pool)
        } else {
            return Err(StoreError::Invalid(format!(
                "unsupported database URL (want postgres://... or sqlite://...): {}",
                parley_domain::redact_url(url)
            )));
        };
        Ok(pools)
    }

    /// Waits for a join's turn at the database (see [`StoreOptions::join_concurrency`]);
    /// hold it across a join's reads and writes, not across anything else it waits for.
    pub async fn join_turn(&self) -> JoinTurn {
        match &self.join_gate {
            // Never closed: an error cannot happen, and would mean no limit.
            Some(gate) => JoinTurn(gate.clone().acquire_owned().await.ok()),
            None => JoinTurn(None),
        }
    }

    /// Which backend this store uses.
    pub fn backend(&self) -> Backend {
        match &*self.pools {
            Pools::Pg(_) => Backend::Postgres,
            Pools::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Runs the embedded migrations that have not run yet. Call once at start-up.
    ///
    /// diesel's migration harness is synchronous, so it runs on tokio's blocking pool (never
    /// on a runtime thread); this works on current-thread runtimes too (tested).
    pub async fn migrate(&self) -> Result<()> {
        match &*self.pools {
            Pools::Pg(pool) => run_migrations!(pool.get().await?, PG_MIGRATIONS),
            Pools::Sqlite(pool) => run_migrations!(pool.get().await?, SQLITE_MIGRATIONS),
        }
    }

    /// Copies the database to `path`, which must not exist, while it may be in use: SQLite
    /// writes a consistent copy (`VACUUM INTO`), created readable by its owner only. For
    /// PostgreSQL, `Invalid` with the `pg_dump` command to run instead (a copy belongs to the
    /// database server's own tools).
    pub async fn backup_to(&self, path: &std::path::Path) -> Result<()> {
        if let Pools::Pg(_) = &*self.pools {
            return Err(StoreError::Invalid(
                "a PostgreSQL database is backed up with its own tool: pg_dump --format=custom --file=PATH \"$DATABASE_URL\""
                    .to_owned(),
            ));
        }
        let Some(target) = path.to_str() else {
            return Err(StoreError::Invalid(format!(
                "backup path {} is not UTF-8",
                path.display()
            )));
        };
        if path.exists() {
            return Err(StoreError::Invalid(format!(
                "{} exists: choose a new file",
                path.display()
            )));
        }
        create_private(target)?;
        // VACUUM INTO needs an empty or absent file: the placeholder only fixes its mode.
        std::fs::remove_file(path)
            .map_err(|e| StoreError::Invalid(format!("{}: {e}", path.display())))?;
        let statement = format!("VACUUM INTO '{}'", target.replace('\'', "''"));
        with_conn!(self, |conn| conn
            .batch_execute(&statement)
            .await
            .map_err(StoreError::from))?;
        restrict_mode(target)
    }

    /// A cheap readiness check: one `SELECT 1`. Fails `Unavailable` when the database
    /// cannot be reached.
    pub async fn ping(&self) -> Result<()> {
        with_conn!(self, |conn| {
            conn.batch_execute("SELECT 1")
                .await
                .map_err(|e| match StoreError::from(e) {
                    StoreError::Internal(m) => StoreError::Unavailable(m),
                    other => other,
                })
        })
    }

    /// Pool statistics: (connections open, connections idle).
    pub fn pool_status(&self) -> (usize, usize) {
        let status = match &*self.pools {
            Pools::Pg(pool) => pool.status(),
            Pools::Sqlite(pool) => pool.status(),
        };
        (status.size, status.available)
    }
}

/// Runs `migrations` on a pooled connection on tokio's blocking pool (the harness blocks).
macro_rules! run_migrations {
    ($conn:expr, $migrations:expr) => {{
        let conn = $conn;
        tokio::task::spawn_blocking(move || {
            let mut harness = AsyncMigrationHarness::new(conn);
            let applied = harness
                .run_pending_migrations($migrations)
                .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))?;
            for version in applied {
                tracing::info!(%version, "applied migration");
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Internal(format!("migration task failed: {e}")))?
    }};
}
use run_migrations;

#[cfg(test)]
#[cfg(feature = "testing")]
mod tests {
    use super::*;
    use crate::testing::TestDb;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_connections_carry_the_statement_timeout() {
        // Long enough for the migrations of the test schema on a loaded machine (CI saw one
        // cancelled at 50 ms); far shorter than the sleep below.
        let opts = StoreOptions {
            pg_statement_timeout: Some(Duration::from_secs(2)),
            ..StoreOptions::default()
        };
        let db = TestDb::postgres_with(&opts).await.unwrap();
        let store: &Store = &db;
        let slow: Result<()> = async {
            with_conn!(store, |conn| conn
                .batch_execute("SELECT pg_sleep(30)")
                .await
                .map_err(StoreError::from))
        }
        .await;
        let err = slow.unwrap_err();
        assert!(err.to_string().contains("statement timeout"), "{err:?}");
        // The connection survives a cancelled statement.
        store.ping().await.unwrap();
    }

    /// Every connection of the main pool busy (a storm of joins): the account read of a
    /// handshake is still answered, on its own connections, on both backends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn account_reads_do_not_wait_for_the_main_pool() {
        let opts = StoreOptions {
            max_connections: 2,
            account_connections: 1,
            acquire_timeout: Duration::from_millis(300),
            ..StoreOptions::default()
        };
        for db in [
            TestDb::postgres_with(&opts).await.unwrap(),
            TestDb::sqlite_with(&opts).await.unwrap(),
        ] {
            let store: &Store = &db;
            let user = crate::testing::plain_user(store, "alice").await.unwrap();
            let held = match &*store.pools {
                Pools::Pg(pool) => {
                    let held = (pool.get().await.unwrap(), pool.get().await.unwrap());
                    Box::new(held) as Box<dyn std::any::Any + Send>
                }
                Pools::Sqlite(pool) => {
                    let held = (pool.get().await.unwrap(), pool.get().await.unwrap());
                    Box::new(held) as Box<dyn std::any::Any + Send>
                }
            };
            let starved = store.user_by_id(user.id).await;
            assert!(
                matches!(starved, Err(StoreError::Unavailable(_))),
                "the main pool is exhausted: {starved:?}"
            );
            assert_eq!(store.account_for_auth(user.id).await.unwrap(), user);
            drop(held);
            assert_eq!(store.user_by_id(user.id).await.unwrap(), user);
        }
    }

    /// `account_connections: 0` (and an in-memory SQLite database, always) share the pool.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn account_reads_share_the_pool_when_asked_to() {
        let shared = StoreOptions {
            account_connections: 0,
            ..StoreOptions::default()
        };
        let store = Store::connect("sqlite::memory:", &StoreOptions::default()).unwrap();
        assert!(Arc::ptr_eq(&store.pools, &store.account_pools));
        let db = TestDb::sqlite_with(&shared).await.unwrap();
        assert!(Arc::ptr_eq(&db.pools, &db.account_pools));
        let db = TestDb::sqlite().await.unwrap();
        assert!(!Arc::ptr_eq(&db.pools, &db.account_pools));
    }

    #[test]
    fn sqlite_paths_are_parsed() {
        assert_eq!(sqlite_path("sqlite::memory:"), Some(":memory:"));
        assert_eq!(sqlite_path("sqlite:///tmp/x.db"), Some("/tmp/x.db"));
        assert_eq!(sqlite_path("sqlite:data.db"), Some("data.db"));
        assert_eq!(sqlite_path("postgres://x"), None);
    }
}

/// The two migration sets and `schema.rs` must describe the same tables: compare the live
/// columns (name, type, nullability) on both backends with the `table!`s.
#[cfg(test)]
#[cfg(feature = "testing")]
mod schema_tests {
    use super::*;
    use crate::testing::TestDb;
    use diesel::QueryableByName;
    use diesel::sql_types::{Bool, Text};
    use diesel_async::RunQueryDsl;

    #[derive(QueryableByName, Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct Col {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Text)]
        ty: String,
        #[diesel(sql_type = Bool)]
        nullable: bool,
    }

    /// What `schema.rs` declares, as (table, column, type, nullable). Each listed type is
    /// checked against the `table!` at compile time, and the count against its column list.
    fn declared() -> Vec<(String, String, String, bool)> {
        use crate::schema::*;
        use diesel::Column;
        use diesel::sql_types::{BigInt, Bool, Nullable, Text};
        fn has_type<E: diesel::Expression<SqlType = S>, S>(_: E) {}
        let mut out = Vec::new();
        macro_rules! cols {
            ($table:ident ($n:literal): $($col:ident $st:ty),* $(,)?) => {
                // schema.rs has exactly $n columns: count them in the SQL of `SELECT *`.
                let sql = diesel::debug_query::<diesel::sqlite::Sqlite, _>(
                    &diesel::QueryDsl::select($table::table, $table::all_columns),
                )
                .to_string();
                let select_list = sql.split(" FROM ").next().unwrap_or_default();
                assert_eq!(select_list.matches(&format!("`{}`.", stringify!($table))).count(), $n, "{sql}");
                $(
                    has_type::<_, $st>($table::$col);
                    let ty = stringify!($st).replace(' ', "");
                    let (ty, nullable) = match ty.strip_prefix("Nullable<") {
                        Some(inner) => (inner.trim_end_matches('>').to_owned(), true),
                        None => (ty, false),
                    };
                    out.push((stringify!($table).to_owned(), $table::$col::NAME.to_owned(), ty, nullable));
                )*
                assert_eq!([$(stringify!($col)),*].len(), $n, "{} is not fully listed", stringify!($table));
            };
        }
        cols!(users (11): id BigInt, username Text, email Nullable<Text>, password_hash Text,
            is_staff Bool, created_at BigInt, last_login Nullable<BigInt>, is_guest Bool,
            is_active Bool, token_epoch BigInt, display_name Nullable<Text>);
        cols!(rooms (9): id BigInt, name Text, kind Text, creator_id Nullable<BigInt>, topic Text,
            created_at BigInt, direct_low Nullable<BigInt>, direct_high Nullable<BigInt>,
            read_only Bool);
        cols!(memberships (5): room_id BigInt, user_id BigInt, role Text, joined_at BigInt,
            last_read Nullable<BigInt>);
        cols!(messages (9): id BigInt, room_id BigInt, sender_id BigInt, body Text,
            client_id Nullable<Text>, created_at BigInt, edited_at Nullable<BigInt>,
            deleted_at Nullable<BigInt>, reply_to Nullable<BigInt>);
        cols!(reactions (5): id BigInt, message_id BigInt, user_id BigInt, emoji Text,
            created_at BigInt);
        cols!(mentions (3): user_id BigInt, room_id BigInt, message_id BigInt);
        cols!(revoked_tokens (2): jti Text, expires_at BigInt);
        cols!(external_identities (4): issuer Text, subject Text, user_id BigInt, created_at BigInt);
        cols!(guest_bans (2): name Text, created_at BigInt);
        cols!(audit_log (9): id BigInt, actor_id Nullable<BigInt>, actor_name Text, action Text,
            target_user Nullable<Text>, target_room Nullable<Text>, detail Nullable<Text>,
            reason Nullable<Text>, created_at BigInt);
        cols!(server_settings (3): name Text, value Text, updated_at BigInt);
        cols!(room_bans (5): room_id BigInt, user_id BigInt, reason Nullable<Text>,
            banned_by Nullable<BigInt>, created_at BigInt);
        cols!(room_mutes (6): room_id BigInt, user_id BigInt, until Nullable<BigInt>,
            reason Nullable<Text>, muted_by Nullable<BigInt>, created_at BigInt);
        out.sort();
        out
    }

    fn normalize(ty: &str) -> String {
        match ty.to_ascii_lowercase().as_str() {
            "bigint" | "integer" => "BigInt",
            "text" => "Text",
            "boolean" => "Bool",
            other => other,
        }
        .to_owned()
    }

    async fn live(db: &TestDb) -> Vec<(String, String, String, bool)> {
        let store: &Store = db;
        let cols: Vec<Col> = match &*store.pools {
            Pools::Pg(pool) => {
                let mut conn = pool.get().await.unwrap();
                diesel::sql_query(
                    "SELECT table_name::text AS table_name, column_name::text AS name, data_type::text AS ty, \
                     is_nullable = 'YES' AS nullable FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name <> '__diesel_schema_migrations'",
                )
                .load(&mut *conn)
                .await
                .unwrap()
            }
            Pools::Sqlite(pool) => {
                let mut conn = pool.get().await.unwrap();
                diesel::sql_query(
                    "SELECT m.name AS table_name, p.name AS name, p.type AS ty, \
                     (p.\"notnull\" = 0 AND p.pk = 0) AS nullable \
                     FROM sqlite_master m, pragma_table_info(m.name) p \
                     WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' \
                     AND m.name NOT LIKE 'messages_fts%' \
                     AND m.name <> '__diesel_schema_migrations'",
                )
                .load(&mut *conn)
                .await
                .unwrap()
            }
        };
        let mut out: Vec<_> = cols
            .into_iter()
            .map(|c| (c.table_name, c.name, normalize(&c.ty), c.nullable))
            .collect();
        out.sort();
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_migration_sets_match_schema_rs() {
        let declared = declared();
        assert_eq!(
            live(&TestDb::postgres().await.unwrap()).await,
            declared,
            "migrations/postgres vs schema.rs"
        );
        assert_eq!(
            live(&TestDb::sqlite().await.unwrap()).await,
            declared,
            "migrations/sqlite vs schema.rs"
        );
    }
}
