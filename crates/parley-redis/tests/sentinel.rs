//! The `parley-layer` conformance suite against a layer that finds its Redis through Sentinel:
//! one throwaway `redis-server` and one `redis-sentinel` (Debian's; `PARLEY_REDIS_SERVER` /
//! `PARLEY_REDIS_SENTINEL`, exported by scripts/test.sh) on free ports, shared by the cases
//! of this test binary, checked to be its own, and stopped when it exits. The failover
//! itself is tested with server processes in bins/parley-server/tests/sentinel.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use parley_layer::LayerConfig;
use parley_redis::{RedisLayer, RedisLayerConfig, SentinelConfig};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

fn bin(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// A throwaway `redis-server` and a `redis-sentinel` watching it. They run under a shell that
/// waits on its stdin (held by `_shell`): when this value is dropped, or the test binary
/// exits, the pipe closes and the shell stops both and removes their directory.
struct SentinelFixture {
    _shell: Child,
    port: u16,
    master: String,
}

impl SentinelFixture {
    /// Starts both and waits until they are provably this fixture's own: the Sentinel names
    /// our primary under our unique master name, and the primary works in our directory. A
    /// server that lost its port to another test's server would fail here, not later in a
    /// conformance case.
    fn start() -> Result<Self, String> {
        let redis_port = common::server_port();
        let sentinel_port = common::server_port();
        let master = format!("parley-conformance-{}", uuid::Uuid::new_v4().simple());
        let dir = std::env::temp_dir().join(format!("parley-sentinel-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {master} 127.0.0.1 {redis_port} 1\n",
                dir.display()
            ),
        )
        .map_err(|e| format!("{}: {e}", conf.display()))?;
        let script = r#"
            "$1" --bind 127.0.0.1 --port "$2" --save '' --appendonly no --dir "$4" >/dev/null & r=$!
            "$3" "$5" >/dev/null & s=$!
            read _ignored
            kill "$r" "$s"; wait; rm -rf "$4"
        "#;
        let shell = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(bin("PARLEY_REDIS_SERVER", "redis-server"))
            .arg(redis_port.to_string())
            .arg(bin("PARLEY_REDIS_SENTINEL", "redis-sentinel"))
            .arg(&dir)
            .arg(&conf)
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("sh with redis-server and redis-sentinel: {e}"))?;
        let fixture = Self {
            _shell: shell,
            port: sentinel_port,
            master,
        };
        let want_dir = dir.canonicalize().unwrap_or(dir);
        let mut last = String::from("never answered");
        // A bound for slow starts, not a timing assertion.
        for _ in 0..100 {
            match fixture.is_ours(redis_port, &want_dir) {
                Ok(()) => return Ok(fixture),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "Sentinel on {sentinel_port}, primary on {redis_port}: {last}"
        ))
    }

    fn is_ours(&self, redis_port: u16, dir: &std::path::Path) -> Result<(), String> {
        let query = |port: u16, cmd: &redis::Cmd| -> Result<redis::Value, String> {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))
                .map_err(|e| e.to_string())?;
            let mut conn = client
                .get_connection_with_timeout(Duration::from_secs(2))
                .map_err(|e| e.to_string())?;
            cmd.query(&mut conn).map_err(|e| e.to_string())
        };
        let named: Vec<String> = redis::from_redis_value(query(
            self.port,
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&self.master),
        )?)
        .map_err(|e| e.to_string())?;
        if named != ["127.0.0.1".to_owned(), redis_port.to_string()] {
            return Err(format!("the Sentinel names {named:?} for {}", self.master));
        }
        let config: Vec<String> = redis::from_redis_value(query(
            redis_port,
            redis::cmd("CONFIG").arg("GET").arg("dir"),
        )?)
        .map_err(|e| e.to_string())?;
        if config.get(1).map(std::path::Path::new) != Some(dir) {
            return Err(format!(
                "the primary works in {config:?}, not {}",
                dir.display()
            ));
        }
        Ok(())
    }
}

/// The fixture shared by the cases of this binary; a start that met another test's server on
/// a drawn port is retried on new ports.
fn sentinel() -> &'static SentinelFixture {
    static SENTINEL: OnceLock<SentinelFixture> = OnceLock::new();
    SENTINEL.get_or_init(|| {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match SentinelFixture::start() {
                Ok(fixture) => return fixture,
                Err(e) => failures.push(e),
            }
        }
        panic!("no Sentinel of this test's own came up: {failures:?}");
    })
}

async fn make_layer(config: LayerConfig) -> RedisLayer {
    let SentinelFixture { port, master, .. } = sentinel();
    let cfg = RedisLayerConfig::with_sentinel(SentinelConfig::new(
        vec![format!("127.0.0.1:{port}")],
        master.clone(),
    ))
    .with_prefix(common::unique_prefix("conformance-sentinel"))
    .with_layer(config);
    // The servers may still be starting (a bound, not a timing assertion).
    let mut last = None;
    for _ in 0..200 {
        match RedisLayer::connect(cfg.clone()).await {
            Ok(layer) => return layer,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no primary through the Sentinel on port {port}: {last:?}");
}

parley_layer::conformance_tests!(make_layer);
