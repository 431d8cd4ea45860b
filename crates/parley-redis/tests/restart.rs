//! Surviving a Redis restart, and not leaking connections, on a throwaway Redis started by
//! the test (`PARLEY_REDIS_SERVER`, exported by scripts/test.sh, else `redis-server`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use parley_layer::{ChannelLayer, LayerConfig};
use parley_redis::{RedisLayer, RedisLayerConfig};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A redis-server on a free port with append-only persistence, killed on drop.
struct Throwaway {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Throwaway {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!(
            "parley-redis-restart-{port}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            child: None,
            port,
            dir,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let bin =
            std::env::var("PARLEY_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
        let child = Command::new(&bin)
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "yes",
            ])
            .arg("--appendfsync")
            .arg("always")
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} (install redis-server or set PARLEY_REDIS_SERVER): {e}")
            });
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("throwaway redis-server did not start on port {}", self.port);
    }

    /// Stops the server (its append-only file keeps what it had accepted).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn connected_clients(&self) -> i64 {
        let client = redis::Client::open(self.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let info: String = redis::cmd("INFO")
            .arg("clients")
            .query_async(&mut conn)
            .await
            .unwrap();
        let line = info
            .lines()
            .find(|l| l.starts_with("connected_clients:"))
            .unwrap();
        line["connected_clients:".len()..]
            .trim()
            .parse::<i64>()
            .unwrap()
            - 1
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn throwaway_config(server: &Throwaway) -> RedisLayerConfig {
    let mut cfg = RedisLayerConfig::new(server.url())
        .with_prefix("restart:")
        .with_layer(LayerConfig::default());
    cfg.block_timeout = Duration::from_secs(1);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_redis_restart() {
    let mut server = Throwaway::start();
    let receiver = layer_with(throwaway_config(&server)).await;
    let sender = layer_with(throwaway_config(&server)).await;
    let a = receiver.new_channel().await.unwrap();
    sender.send(&a, msg(json!({"type": "m0"}))).await.unwrap();
    assert_eq!(
        receive_within(&receiver, &a, ARRIVES).await.unwrap().kind(),
        "m0"
    );

    // m1 reaches the receive loop, which puts it in the local mailbox (not yet received);
    // m2 waits in Redis on a normal channel nobody reads yet.
    sender.send(&a, msg(json!({"type": "m1"}))).await.unwrap();
    let jobs = channel("jobs");
    sender
        .send(&jobs, msg(json!({"type": "m2"})))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    server.stop();
    assert!(
        sender.send(&a, msg(json!({"type": "lost"}))).await.is_err(),
        "Redis is down"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.spawn();

    // Nothing accepted is lost, and the layers reconnect by themselves.
    assert_eq!(
        receive_within(&receiver, &a, ARRIVES).await.unwrap().kind(),
        "m1"
    );
    assert_eq!(
        receive_within(&receiver, &jobs, ARRIVES)
            .await
            .unwrap()
            .kind(),
        "m2"
    );
    let mut sent = false;
    for _ in 0..50 {
        // The pools notice the dead connections on first use; no retry loop inside the layer.
        if sender.send(&a, msg(json!({"type": "m3"}))).await.is_ok() {
            sent = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sent, "sends work again after the restart");
    assert_eq!(
        receive_within(&receiver, &a, ARRIVES).await.unwrap().kind(),
        "m3"
    );
    assert!(receiver.stats().reconnects >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_layers_release_their_connections() {
    let server = Throwaway::start();
    let baseline = server.connected_clients().await;
    for _ in 0..20 {
        let layer = RedisLayer::connect(throwaway_config(&server))
            .await
            .unwrap();
        let c = layer.new_channel().await.unwrap();
        layer.send(&c, msg(json!({"type": "t"}))).await.unwrap();
        let worker = channel("w");
        layer
            .send(&worker, msg(json!({"type": "t"})))
            .await
            .unwrap();
        assert!(receive_within(&layer, &c, ARRIVES).await.is_some());
        assert!(receive_within(&layer, &worker, ARRIVES).await.is_some());
        drop(layer);
    }
    // Closing is asynchronous on the server side: wait for the count to settle.
    let mut clients = i64::MAX;
    for _ in 0..100 {
        clients = server.connected_clients().await;
        if clients <= baseline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(clients, baseline, "every layer's connections closed");
}
