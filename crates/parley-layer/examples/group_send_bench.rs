//! The cost of `InMemoryLayer::group_send`, for groups of 1, 100 and 10,000 channels.
//!
//! ```text
//! cargo run --release -p parley-layer --example group_send_bench
//! ```
//!
//! Two modes per group size:
//! - `idle`: nobody receives while the sends run (queues fill; they are drained between
//!   batches, untimed). Times the `group_send` calls alone.
//! - `draining`: one task per member waits in `receive` the whole time, so every delivery
//!   also wakes a task. Times from the first send until every receiver has every message.
//!
//! Prints one line per measurement (median of 3 runs), then one JSON line with all of them.

// A command-line report: printing is its job.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use parley_layer::{ChannelLayer, ChannelName, GroupName, InMemoryLayer, LayerConfig, Message};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Deliveries per measurement: enough to dwarf timer noise, small enough for a quick run.
const DELIVERIES: usize = 2_000_000;
const RUNS: usize = 3;

fn chat_message() -> Message {
    let Value::Object(map) = json!({
        "room": "lobby",
        "message": {"id": 123_456, "author": {"id": 7, "username": "alice"}, "text": "hello, world"},
    }) else {
        unreachable!()
    };
    Message::new("chat.message", map)
}

struct Measurement {
    group_size: usize,
    mode: &'static str,
    calls: usize,
    /// Wall time of the measured span, median of `RUNS`.
    elapsed: Duration,
    /// Time spent in the `group_send` loop alone (`draining` only; equals `elapsed` when idle).
    send_loop: Duration,
    full: usize,
}

impl Measurement {
    fn ns_per_call(&self) -> f64 {
        self.send_loop.as_nanos() as f64 / self.calls as f64
    }
    fn ns_per_message(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / (self.calls * self.group_size) as f64
    }
}

async fn setup(
    group_size: usize,
    capacity: usize,
) -> (Arc<InMemoryLayer>, GroupName, Vec<ChannelName>) {
    let layer = Arc::new(InMemoryLayer::new(LayerConfig {
        capacity,
        ..LayerConfig::default()
    }));
    let group = GroupName::parse("bench.room").unwrap();
    let mut members = Vec::with_capacity(group_size);
    for _ in 0..group_size {
        let ch = layer.new_channel().await.unwrap();
        layer.group_add(&group, &ch).await.unwrap();
        members.push(ch);
    }
    (layer, group, members)
}

/// `calls` group sends with nobody receiving, in batches drained (untimed) in between.
async fn idle(group_size: usize, calls: usize) -> (Duration, usize) {
    let batch = calls.min(1_000);
    let (layer, group, members) = setup(group_size, batch).await;
    let message = chat_message();
    let (mut timed, mut full, mut done) = (Duration::ZERO, 0, 0);
    while done < calls {
        let n = batch.min(calls - done);
        let start = Instant::now();
        for _ in 0..n {
            full += layer
                .group_send(&group, message.clone())
                .await
                .unwrap()
                .full
                .len();
        }
        timed += start.elapsed();
        for ch in &members {
            for _ in 0..n {
                layer.receive(ch).await.unwrap();
            }
        }
        done += n;
    }
    (timed, full)
}

/// `calls` group sends while one task per member receives; returns (until all received,
/// send loop alone, full channels met).
async fn draining(group_size: usize, calls: usize) -> (Duration, Duration, usize) {
    let (layer, group, members) = setup(group_size, calls).await;
    let receivers: Vec<_> = members
        .into_iter()
        .map(|ch| {
            let layer = layer.clone();
            tokio::spawn(async move {
                for _ in 0..calls {
                    layer.receive(&ch).await.unwrap();
                }
            })
        })
        .collect();
    // Let every receiver reach its first wait.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let message = chat_message();
    let start = Instant::now();
    let mut full = 0;
    for i in 0..calls {
        full += layer
            .group_send(&group, message.clone())
            .await
            .unwrap()
            .full
            .len();
        // Give the receivers a turn now and then, as a server's other tasks would.
        if i % 64 == 63 {
            tokio::task::yield_now().await;
        }
    }
    let send_loop = start.elapsed();
    for r in receivers {
        r.await.unwrap();
    }
    (start.elapsed(), send_loop, full)
}

fn median(mut runs: Vec<(Duration, Duration, usize)>) -> (Duration, Duration, usize) {
    runs.sort_by_key(|r| r.0);
    runs[runs.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut results = Vec::new();
    for group_size in [1usize, 100, 10_000] {
        let calls = (DELIVERIES / group_size).clamp(200, 200_000);
        let mut runs = Vec::new();
        for _ in 0..RUNS {
            let (t, full) = idle(group_size, calls).await;
            runs.push((t, t, full));
        }
        let (elapsed, send_loop, full) = median(runs);
        results.push(Measurement {
            group_size,
            mode: "idle",
            calls,
            elapsed,
            send_loop,
            full,
        });

        let mut runs = Vec::new();
        for _ in 0..RUNS {
            runs.push(draining(group_size, calls).await);
        }
        let (elapsed, send_loop, full) = median(runs);
        results.push(Measurement {
            group_size,
            mode: "draining",
            calls,
            elapsed,
            send_loop,
            full,
        });
    }

    for m in &results {
        println!(
            "group_send  group={:>6}  {:<8}  calls={:>7}  {:>10.0} ns/call  {:>7.1} ns/delivered message  full={}",
            m.group_size,
            m.mode,
            m.calls,
            m.ns_per_call(),
            m.ns_per_message(),
            m.full
        );
    }
    let json = json!({
        "bench": "in_memory_group_send",
        "threads": 2,
        "runs_per_figure": RUNS,
        "results": results.iter().map(|m| json!({
            "group_size": m.group_size,
            "mode": m.mode,
            "calls": m.calls,
            "ns_per_call": m.ns_per_call().round(),
            "ns_per_delivered_message": (m.ns_per_message() * 10.0).round() / 10.0,
            "total_ms": m.elapsed.as_secs_f64() * 1e3,
            "full": m.full,
        })).collect::<Vec<_>>(),
    });
    println!("{json}");
}
