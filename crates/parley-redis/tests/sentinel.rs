//! The `parley-layer` conformance suite against a layer that finds its Redis through Sentinel:
//! one throwaway `redis-server` and one `redis-sentinel` (Debian's; `PARLEY_REDIS_SERVER` /
//! `PARLEY_REDIS_SENTINEL`, exported by scripts/test.sh) on free ports, shared by the cases
//! of this test binary and stopped when it exits. The failover itself is tested with server
//! processes in bins/parley-server/tests/sentinel.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use parley_layer::LayerConfig;
use parley_redis::{RedisLayer, RedisLayerConfig, SentinelConfig};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn bin(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The Sentinel's port and the primary's name. The servers run under a shell that waits on
/// its stdin (held by the static child): when this test binary exits, the pipe closes and the
/// shell stops them and removes their directory.
fn sentinel() -> &'static (Child, u16, String) {
    static SENTINEL: OnceLock<(Child, u16, String)> = OnceLock::new();
    SENTINEL.get_or_init(|| {
        let redis_port = free_port();
        let sentinel_port = free_port();
        let master = format!("parley-conformance-{}", uuid::Uuid::new_v4().simple());
        let dir = std::env::temp_dir().join(format!("parley-sentinel-{sentinel_port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {master} 127.0.0.1 {redis_port} 1\n",
                dir.display()
            ),
        )
        .unwrap();
        let script = r#"
            "$1" --bind 127.0.0.1 --port "$2" --save '' --appendonly no --dir "$4" >/dev/null & r=$!
            "$3" "$5" >/dev/null & s=$!
            read _ignored
            kill "$r" "$s"; wait; rm -rf "$4"
        "#;
        let child = Command::new("sh")
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
            .expect("sh with redis-server and redis-sentinel");
        (child, sentinel_port, master)
    })
}

async fn make_layer(config: LayerConfig) -> RedisLayer {
    let (_, port, master) = sentinel();
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
