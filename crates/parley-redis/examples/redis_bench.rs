//! Benchmarks `RedisLayer` and, in the same run, channels_redis doing the same from Python:
//! group_send to 1/100/10,000 members, and sends/s from 1 and 64 concurrent tasks.
//!
//! `cargo run --release -p parley-redis --example redis_bench` with `REDIS_URL` (default
//! `redis://127.0.0.1:6379`) and `PARLEY_PYTHON` (the venv of scripts/interop-venv.sh; the
//! Python half is skipped with a note when it is unset). Group members are normal channels
//! (one queue each, the worst case for both); capacity is raised so nothing fills.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use parley_layer::{ChannelLayer, ChannelName, GroupName, LayerConfig, Message};
use parley_redis::{RedisLayer, RedisLayerConfig};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

const GROUP_SIZES: [(usize, usize); 3] = [(1, 2000), (100, 300), (10_000, 10)];
const SENDS_ONE: usize = 5000;
const SENDS_EACH_64: usize = 200;

async fn layer(url: &str, prefix: &str) -> RedisLayer {
    let config = RedisLayerConfig::new(url)
        .with_prefix(prefix)
        .with_layer(LayerConfig {
            capacity: 1_000_000,
            ..LayerConfig::default()
        });
    RedisLayer::connect(config)
        .await
        .expect("Redis reachable at REDIS_URL")
}

fn message() -> Message {
    Message::from_value(json!({"type": "chat.message", "text": "hello, benchmark", "room": 42}))
        .unwrap()
}

async fn group_send(url: &str, prefix: &str, size: usize, rounds: usize) -> f64 {
    let layer = layer(url, prefix).await;
    let group = GroupName::parse("bench-group").unwrap();
    for i in 0..size {
        layer
            .group_add(&group, &ChannelName::parse(&format!("bench.m{i}")).unwrap())
            .await
            .unwrap();
    }
    let start = Instant::now();
    for _ in 0..rounds {
        let report = layer.group_send(&group, message()).await.unwrap();
        assert_eq!(report.delivered, size);
    }
    let rate = rounds as f64 / start.elapsed().as_secs_f64();
    layer.flush().await.unwrap();
    rate
}

async fn sends(url: &str, prefix: &str, tasks: usize, each: usize) -> f64 {
    let layer = Arc::new(layer(url, prefix).await);
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let layer = layer.clone();
            tokio::spawn(async move {
                let channel = ChannelName::parse(&format!("bench.s{t}")).unwrap();
                for _ in 0..each {
                    layer.send(&channel, message()).await.unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let rate = (tasks * each) as f64 / start.elapsed().as_secs_f64();
    layer.flush().await.unwrap();
    rate
}

#[tokio::main]
async fn main() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("parley-bench-{}:", uuid::Uuid::new_v4().simple());
    let mut rust = Vec::new();
    for (size, rounds) in GROUP_SIZES {
        rust.push((
            format!("group_send_{size}"),
            group_send(&url, &prefix, size, rounds).await,
        ));
    }
    rust.push((
        "sends_1".to_owned(),
        sends(&url, &prefix, 1, SENDS_ONE).await,
    ));
    rust.push((
        "sends_64".to_owned(),
        sends(&url, &prefix, 64, SENDS_EACH_64).await,
    ));

    let python = match std::env::var("PARLEY_PYTHON") {
        Ok(python) => {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/bench.py");
            let py_prefix = format!("parley-bench-py-{}:", uuid::Uuid::new_v4().simple());
            let out = std::process::Command::new(python)
                .arg(script)
                .arg(&url)
                .arg(&py_prefix)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "bench.py failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap())
        }
        Err(_) => {
            println!(
                "(PARLEY_PYTHON unset: source scripts/interop-venv.sh for the channels_redis column)"
            );
            None
        }
    };
    println!("| case | parley-redis (ops/s) | channels_redis 4.3.0 (ops/s) | ratio |");
    println!("|---|---:|---:|---:|");
    for (name, rate) in rust {
        let py = python
            .as_ref()
            .and_then(|p| p.get(&name))
            .and_then(|v| v.as_f64());
        match py {
            Some(py) => println!("| {name} | {rate:.0} | {py:.0} | {:.1}× |", rate / py),
            None => println!("| {name} | {rate:.0} | – | – |"),
        }
    }
}
