//! Helpers shared by the integration tests: the Redis under test and unique prefixes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use parley_layer::{ChannelLayer, ChannelName, LayerConfig, Message};
use parley_redis::{RedisLayer, RedisLayerConfig};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The Redis the tests use (`REDIS_URL`, exported by scripts/test.sh). Tests fail, never
/// skip, when it is unreachable.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A prefix no other test (or deployment) shares. Ends with `:` so no prefix is a prefix of
/// another.
pub fn unique_prefix(test: &str) -> String {
    format!("parley-test-{test}-{}:", uuid::Uuid::new_v4().simple())
}

pub fn config(prefix: &str, layer: LayerConfig) -> RedisLayerConfig {
    RedisLayerConfig::new(redis_url())
        .with_prefix(prefix)
        .with_layer(layer)
}

pub async fn layer(prefix: &str) -> RedisLayer {
    layer_with(config(prefix, LayerConfig::default())).await
}

pub async fn layer_with(config: RedisLayerConfig) -> RedisLayer {
    RedisLayer::connect(config).await.unwrap_or_else(|e| {
        panic!(
            "Redis must be running at {} (scripts/test.sh starts one): {e}",
            redis_url()
        )
    })
}

pub fn msg(value: Value) -> Message {
    Message::from_value(value).unwrap()
}

/// The next message on `channel`, or `None` after `wait` (a bound, not a timing assertion).
pub async fn receive_within(
    layer: &RedisLayer,
    channel: &ChannelName,
    wait: Duration,
) -> Option<Message> {
    tokio::time::timeout(wait, layer.receive(channel))
        .await
        .ok()
        .map(|r| r.unwrap())
}

/// Long enough for anything that should arrive to arrive on a loaded test machine.
pub const ARRIVES: Duration = Duration::from_secs(10);

/// Proves nothing is queued on `channel` ahead of now, without waiting for nothing: `via`
/// sends a sentinel there and it must be the next message `layer` receives on it (a channel
/// is first in, first out, so anything sent to it before would come first, however slowly).
/// `via` must be another layer instance than `layer`: a layer hands a message for one of its
/// own process's channels straight to the mailbox, which would overtake what is in Redis.
pub async fn assert_next_is_sentinel(via: &RedisLayer, layer: &RedisLayer, channel: &ChannelName) {
    assert!(
        !std::ptr::eq(via, layer),
        "the sentinel must go through Redis"
    );
    let sentinel = uuid::Uuid::new_v4().simple().to_string();
    via.send(
        channel,
        msg(serde_json::json!({"type": "sentinel", "id": sentinel})),
    )
    .await
    .unwrap();
    let got = receive_within(layer, channel, ARRIVES)
        .await
        .expect("the sentinel never arrived");
    assert_eq!(
        (got.kind(), got.get("id")),
        ("sentinel", Some(&Value::from(sentinel))),
        "something came before the sentinel: {got:?}"
    );
}

pub fn channel(name: &str) -> ChannelName {
    ChannelName::parse(name).unwrap()
}

/// A port for a server a test starts, free when drawn.
///
/// Drawn at random below the kernel's ephemeral range (32768–60999 by default): `bind(0)` and
/// the local end of every outgoing connection of the tests running in parallel take ports
/// from that range, so one of them could take a port drawn there before the server binds it
/// (CI once saw a Sentinel's port answered by another test's redis-server), or while a
/// stopped server waits to be restarted on it. (`parley_e2e::services::free_port` follows the
/// same rule for the end-to-end tests.)
pub fn server_port() -> u16 {
    const SERVER_PORTS: std::ops::Range<u16> = 20_000..32_000;
    let span = u128::from(SERVER_PORTS.end - SERVER_PORTS.start);
    for _ in 0..1_000 {
        let offset = u16::try_from(uuid::Uuid::new_v4().as_u128() % span).unwrap_or(0);
        let port = SERVER_PORTS.start + offset;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {SERVER_PORTS:?} on 127.0.0.1");
}

/// A redis-server on a free port with append-only persistence, killed on drop.
pub struct Throwaway {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl Throwaway {
    pub fn start() -> Self {
        let port = server_port();
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

    pub fn spawn(&mut self) {
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
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The keys on this server matching `pattern`.
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let client = redis::Client::open(self.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    pub async fn connected_clients(&self) -> i64 {
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

/// channels_redis's consistent hash, written out independently of the crate's.
pub fn shard_of(value: &str, ring_size: usize) -> usize {
    let bigval = crc32fast::hash(value.as_bytes()) & 0xFFF;
    (f64::from(bigval) / (4096.0 / ring_size as f64)) as usize
}
