//! What an idle connection costs: the spawned connection loop is held for as long as the
//! socket is open, so its size is paid once per idle connection (docs/benchmarks.md,
//! scenario 4). A regression test: the opening handshake's state, awaited inline in
//! `Connection::run`, once made that future 4.7 KiB instead of 1.5 KiB.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

use parley_core::{
    ClientMessage, CloseReason, Connection, ConnectionConfig, Engine, EngineConfig, Gone,
    ReadError, Socket,
};
use parley_domain::UserName;
use parley_layer::{ChannelLayer, InMemoryLayer, LayerConfig};
use parley_store::NewUser;
use parley_store::testing::TestDb;
use std::future::Future;
use std::sync::Arc;

/// The most bytes the spawned `Connection::run` future may take (measured 1,520 in a release
/// build and about as much in a debug one, with a socket that holds nothing).
const MAX_CONNECTION_FUTURE: usize = 2048;

/// A client that never sends and never goes; the transport's own state is not counted.
struct Quiet;

impl Socket for Quiet {
    fn recv(&mut self) -> impl Future<Output = Option<Result<ClientMessage, ReadError>>> {
        std::future::pending()
    }
    async fn send_text(&mut self, _frames: &[Arc<str>]) -> Result<(), Gone> {
        Ok(())
    }
    async fn ping(&mut self, _payload: &[u8]) -> Result<(), Gone> {
        Ok(())
    }
    async fn pong(&mut self, _payload: &[u8]) -> Result<(), Gone> {
        Ok(())
    }
    async fn close(self, _reason: CloseReason) {}
}

#[tokio::test]
async fn the_connection_loop_future_stays_small() {
    let db = TestDb::sqlite().await.unwrap();
    let layer: Arc<dyn ChannelLayer> = Arc::new(InMemoryLayer::new(LayerConfig::default()));
    let engine = Engine::start(db.store().clone(), layer, EngineConfig::default())
        .await
        .unwrap();
    let user = db
        .create_user(&NewUser {
            username: UserName::parse("idle").unwrap(),
            email: None,
            display_name: None,
            password_hash: "x".into(),
            is_staff: false,
            is_guest: false,
        })
        .await
        .unwrap();
    let session = engine.connect(user).await.unwrap();
    let run = Connection::new(session, ConnectionConfig::default()).run(Quiet);
    let size = std::mem::size_of_val(&run);
    assert!(
        size <= MAX_CONNECTION_FUTURE,
        "Connection::run's future is {size} bytes (at most {MAX_CONNECTION_FUTURE}): box the \
         state of whatever was added to it"
    );
    drop(run);
}
