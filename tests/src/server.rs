//! The real server, in-process.

use parley_server::{Application, Settings, Shutdown};
use parley_store::testing::TestDb;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A temporary SQLite file.
    Sqlite,
    /// A fresh schema on the PostgreSQL at `DATABASE_URL`.
    Postgres,
}

impl Backend {
    /// A fresh, migrated database (fails, never skips, when PostgreSQL is unreachable).
    pub async fn database(self) -> TestDb {
        match self {
            Self::Sqlite => TestDb::sqlite().await.expect("SQLite test database"),
            Self::Postgres => TestDb::postgres().await.unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL test database at {}: {e}",
                    parley_store::testing::database_url()
                )
            }),
        }
    }
}

/// `REDIS_URL`, or the local default.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A unique suffix for names (users, rooms, Redis prefixes).
pub fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// A running server; stopped (gracefully) by [`TestServer::stop`] or aborted on drop.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The database it uses (shared by servers started with [`TestServer::start_on`]).
    pub db: Arc<TestDb>,
    shutdown: Shutdown,
    task: Option<JoinHandle<parley_server::Result<()>>>,
}

impl TestServer {
    /// Settings every test server starts from: port 0, one worker, a fixed secret, the
    /// cheapest bcrypt cost.
    pub fn settings(db: &TestDb) -> Settings {
        Settings {
            bind: "127.0.0.1:0".into(),
            workers: Some(1),
            database_url: db.url().to_owned(),
            db_max_connections: 8,
            secret: Some("e2e-secret-e2e-secret-e2e-secret-e2e-secret".into()),
            bcrypt_cost: 4,
            // Each test logs in a handful of times from 127.0.0.1; the limit has its own test.
            auth_burst: 100.0,
            ..Settings::default()
        }
    }

    /// A server on a fresh database of `backend`.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    /// A server on a fresh database, with settings adjusted by `tweak`.
    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Self {
        let db = Arc::new(backend.database().await);
        Self::start_on(db, tweak).await
    }

    /// A server on an existing database (several servers may share one).
    pub async fn start_on(db: Arc<TestDb>, tweak: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = Self::settings(&db);
        tweak(&mut settings);
        let app = Application::build(settings)
            .await
            .unwrap_or_else(|e| panic!("server did not start: {e}"));
        let addr = app.addr();
        let shutdown = app.shutdown_handle();
        let task = tokio::spawn(app.run_until_stopped());
        Self {
            addr,
            db,
            shutdown,
            task: Some(task),
        }
    }

    /// `http://addr`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops gracefully and waits for the server to finish.
    pub async fn stop(mut self) {
        self.shutdown.shutdown().await;
        if let Some(task) = self.task.take() {
            tokio::time::timeout(crate::WAIT, task)
                .await
                .expect("server did not stop in time")
                .expect("server task panicked")
                .expect("server returned an error");
        }
    }

    /// Registers `name` (password `password-<name>`) and logs in; returns the access token.
    pub async fn user(&self, name: &str) -> String {
        account(self.addr, name).await
    }

    /// Creates the public room `name` as the owner of `token` (asserting 201).
    pub async fn create_room(&self, token: &str, name: &str) {
        create_room(self.addr, token, name).await;
    }

    /// Logs `name` in; the whole login response.
    pub async fn login(&self, name: &str) -> serde_json::Value {
        login(self.addr, name).await
    }
}

/// Creates the public room `name` on the server at `addr` as the owner of `token` (asserting
/// 201). For tests that start the server themselves (e.g. the real binary).
pub async fn create_room(addr: std::net::SocketAddr, token: &str, name: &str) {
    let r = crate::http::post(
        addr,
        "/api/rooms",
        Some(token),
        &serde_json::json!({"name": name}),
    )
    .await;
    assert_eq!(r.status, 201, "create room {name}: {}", r.body);
}

/// Registers `name` (password `password-<name>`) on the server at `addr` and logs in; returns
/// the access token. For tests that start the server themselves (e.g. the real binary).
pub async fn account(addr: std::net::SocketAddr, name: &str) -> String {
    let password = format!("password-{name}");
    let r = crate::http::post(
        addr,
        "/api/auth/register",
        None,
        &serde_json::json!({"username": name, "password": password}),
    )
    .await;
    assert_eq!(r.status, 201, "register {name}: {}", r.body);
    login(addr, name).await["access"]
        .as_str()
        .expect("access token")
        .to_owned()
}

/// Logs `name` (password `password-<name>`) in; the whole login response.
pub async fn login(addr: std::net::SocketAddr, name: &str) -> serde_json::Value {
    let r = crate::http::post(
        addr,
        "/api/auth/login",
        None,
        &serde_json::json!({"username": name, "password": format!("password-{name}")}),
    )
    .await;
    assert_eq!(r.status, 200, "login {name}: {}", r.body);
    r.json()
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Stops the worker threads too (aborting the task alone would leave them running).
        if self.task.is_some() {
            self.shutdown.begin();
        }
    }
}
