//! Cross-language tests with the real channels_redis (Python, from the pinned virtual
//! environment scripts/test.sh builds: `PARLEY_PYTHON`). Both sides share one Redis under a
//! prefix unique to each test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use parley_layer::{ChannelLayer, GroupName, LayerConfig, LayerError};
use parley_redis::RedisLayer;
use serde_json::{Value, json};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// A Python process running channels_redis's `RedisChannelLayer`, driven by JSON lines
/// (tests/interop/peer.py).
struct PyPeer {
    _child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl PyPeer {
    async fn start(layer_kwargs: Value) -> Self {
        let python = std::env::var("PARLEY_PYTHON").unwrap_or_else(|_| {
            panic!(
                "PARLEY_PYTHON is not set: run the tests with scripts/test.sh, which builds the \
                 channels_redis virtual environment (or `source scripts/interop-venv.sh` first)"
            )
        });
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/peer.py");
        let mut child = Command::new(&python)
            .arg(script)
            .arg(layer_kwargs.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {python} (run scripts/test.sh to build the venv): {e}")
            });
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut peer = Self {
            _child: child,
            stdin,
            stdout,
        };
        assert_eq!(
            peer.answer().await,
            json!({"ok": "ready"}),
            "peer.py did not start"
        );
        peer
    }

    async fn answer(&mut self) -> Value {
        let line = tokio::time::timeout(ARRIVES * 3, self.stdout.next_line())
            .await
            .expect("peer.py answers")
            .unwrap()
            .expect("peer.py exited (see its stderr above)");
        serde_json::from_str(&line).unwrap()
    }

    /// Sends a request; the raw answer (`{"ok": ..}` or `{"error": ..}`).
    async fn request(&mut self, req: Value) -> Value {
        let mut line = req.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
        self.answer().await
    }

    /// A request that must succeed: its result.
    async fn call(&mut self, req: Value) -> Value {
        let answer = self.request(req.clone()).await;
        match answer.get("ok") {
            Some(v) => v.clone(),
            None => panic!("python {req}: {answer}"),
        }
    }

    async fn new_channel(&mut self) -> String {
        self.call(json!({"op": "new_channel"}))
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The message Python receives on `channel` (None on timeout).
    async fn receive(&mut self, channel: &str, timeout_secs: f64) -> Option<Value> {
        let got = self
            .call(json!({"op": "receive", "channel": channel, "timeout": timeout_secs}))
            .await;
        got.get("message").cloned()
    }
}

fn kwargs(prefix: &str, extra: Value) -> Value {
    let mut k = json!({"hosts": [redis_url()], "prefix": prefix});
    if let (Some(k), Value::Object(extra)) = (k.as_object_mut(), extra) {
        k.extend(extra);
    }
    k
}

fn content() -> Value {
    json!({"type": "chat.message", "text": "héllo ✓", "n": -42, "big": 1u64 << 40, "f": 2.5,
           "ok": true, "none": null, "list": [1, "two", {"three": 3}], "map": {"a": {"b": []}}})
}

async fn rust_layer(prefix: &str) -> RedisLayer {
    layer(prefix).await
}

#[tokio::test]
async fn python_group_send_reaches_rust_channels() {
    let prefix = unique_prefix("py-gs");
    let rust = rust_layer(&prefix).await;
    let mut py = PyPeer::start(kwargs(&prefix, json!({}))).await;
    let group = GroupName::parse("lobby").unwrap();
    let (a, b) = (
        rust.new_channel().await.unwrap(),
        rust.new_channel().await.unwrap(),
    );
    let worker = channel("rust-worker");
    for c in [&a, &b, &worker] {
        rust.group_add(&group, c).await.unwrap();
    }
    py.call(json!({"op": "group_send", "group": "lobby", "message": content()}))
        .await;
    for c in [&a, &b, &worker] {
        let got = receive_within(&rust, c, ARRIVES).await.expect("received");
        assert_eq!(Value::Object(got.fields().clone()), content());
    }
    rust.flush().await.unwrap();
}

#[tokio::test]
async fn rust_group_send_reaches_python_channels() {
    let prefix = unique_prefix("rs-gs");
    let rust = rust_layer(&prefix).await;
    let mut py = PyPeer::start(kwargs(&prefix, json!({}))).await;
    let (a, b) = (py.new_channel().await, py.new_channel().await);
    for c in [&a, &b] {
        py.call(json!({"op": "group_add", "group": "lobby", "channel": c}))
            .await;
    }
    let group = GroupName::parse("lobby").unwrap();
    let report = rust.group_send(&group, msg(content())).await.unwrap();
    assert_eq!((report.delivered, report.full.len()), (2, 0));
    for c in [&a, &b] {
        assert_eq!(py.receive(c, 10.0).await, Some(content()));
    }
    rust.flush().await.unwrap();
}

#[tokio::test]
async fn direct_sends_both_ways() {
    let prefix = unique_prefix("direct");
    let rust = rust_layer(&prefix).await;
    let mut py = PyPeer::start(kwargs(&prefix, json!({}))).await;

    let rust_channel = rust.new_channel().await.unwrap();
    py.call(json!({"op": "send", "channel": rust_channel.as_str(), "message": content()}))
        .await;
    let got = receive_within(&rust, &rust_channel, ARRIVES)
        .await
        .expect("received");
    assert_eq!(Value::Object(got.fields().clone()), content());

    let py_channel = py.new_channel().await;
    rust.send(&channel(&py_channel), msg(content()))
        .await
        .unwrap();
    assert_eq!(py.receive(&py_channel, 10.0).await, Some(content()));

    // Normal (non process-specific) channels too.
    py.call(json!({"op": "send", "channel": "jobs-for-rust", "message": content()}))
        .await;
    let got = receive_within(&rust, &channel("jobs-for-rust"), ARRIVES)
        .await
        .expect("received");
    assert_eq!(Value::Object(got.fields().clone()), content());
    rust.send(&channel("jobs-for-python"), msg(content()))
        .await
        .unwrap();
    assert_eq!(py.receive("jobs-for-python", 10.0).await, Some(content()));
    rust.flush().await.unwrap();
}

#[tokio::test]
async fn capacity_matches_channels_redis() {
    let prefix = unique_prefix("cap");
    let capacity = 5;
    let layer_cfg = LayerConfig {
        capacity,
        ..LayerConfig::default()
    };
    let rust = layer_with(config(&prefix, layer_cfg)).await;
    let mut py = PyPeer::start(kwargs(&prefix, json!({"capacity": capacity}))).await;

    // Rust fills a channel Python reads: refused at the same count as Python's own sender.
    let py_channel = py.new_channel().await;
    let mut accepted = 0;
    loop {
        match rust
            .send(
                &channel(&py_channel),
                msg(json!({"type": "fill", "seq": accepted})),
            )
            .await
        {
            Ok(()) => accepted += 1,
            Err(LayerError::ChannelFull(_)) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(accepted <= capacity, "no ChannelFull");
    }
    let other_py_channel = py.new_channel().await;
    // Python's own sender stops at the same count on a fresh key...
    let python_count = py
        .call(json!({"op": "fill", "channel": "py-capacity-probe", "message": {"type": "fill"}, "limit": 50}))
        .await;
    assert_eq!(json!(accepted), python_count);
    assert_eq!(accepted, capacity);
    // ...and finds the Rust-filled process key full, as Rust did: channels_redis counts
    // capacity per Redis key, and a process's channels share one.
    let python_refused = py.call(json!({"op": "fill", "channel": other_py_channel, "message": {"type": "fill"}, "limit": 50})).await;
    assert_eq!(
        python_refused,
        json!(0),
        "the process key is full for Python too"
    );
    assert_eq!(rust.stats().full, 1);
    for seq in 0..capacity {
        let got = py.receive(&py_channel, 10.0).await.expect("queued message");
        assert_eq!(got, json!({"type": "fill", "seq": seq}));
    }

    // And Python filling a Rust channel stops at the same count.
    let rust_channel = rust.new_channel().await.unwrap();
    let python_sent = py
        .call(json!({"op": "fill", "channel": rust_channel.as_str(), "message": {"type": "fill"}, "limit": 50}))
        .await;
    assert_eq!(python_sent, json!(capacity));
    for seq in 0..capacity {
        let got = receive_within(&rust, &rust_channel, ARRIVES)
            .await
            .expect("queued message");
        assert_eq!(got.get("seq"), Some(&json!(seq)));
    }
    rust.flush().await.unwrap();
}

#[tokio::test]
async fn expiry_drops_old_messages_on_both_sides() {
    let prefix = unique_prefix("exp");
    let layer_cfg = LayerConfig {
        expiry: std::time::Duration::from_secs(1),
        ..LayerConfig::default()
    };
    let rust = layer_with(config(&prefix, layer_cfg)).await;
    let mut py = PyPeer::start(kwargs(&prefix, json!({"expiry": 1}))).await;
    let py_channel = py.new_channel().await;
    let rust_channel = rust.new_channel().await.unwrap();
    rust.send(&channel(&py_channel), msg(json!({"type": "old"})))
        .await
        .unwrap();
    py.call(json!({"op": "send", "channel": rust_channel.as_str(), "message": {"type": "old"}}))
        .await;
    // Let both messages age past the expiry (whole seconds, as channels_redis counts): this
    // is the scenario, not a wait for something to happen.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    // A fresh message on each side is the next one received there: the old ones are gone
    // (a channel is first in, first out, so they would have come first).
    rust.send(&channel(&py_channel), msg(json!({"type": "fresh"})))
        .await
        .unwrap();
    assert_eq!(
        py.receive(&py_channel, 10.0).await,
        Some(json!({"type": "fresh"}))
    );
    py.call(json!({"op": "send", "channel": rust_channel.as_str(), "message": {"type": "fresh"}}))
        .await;
    assert_eq!(
        receive_within(&rust, &rust_channel, ARRIVES)
            .await
            .unwrap()
            .kind(),
        "fresh"
    );
    rust.flush().await.unwrap();
}

#[tokio::test]
async fn encryption_both_ways_and_wrong_keys_refused() {
    let prefix = unique_prefix("enc");
    let keys = ["first-secret", "older-secret"];
    let rust =
        layer_with(config(&prefix, LayerConfig::default()).with_encryption_keys(&keys)).await;
    let mut py = PyPeer::start(kwargs(&prefix, json!({"symmetric_encryption_keys": keys}))).await;

    let rust_channel = rust.new_channel().await.unwrap();
    py.call(json!({"op": "send", "channel": rust_channel.as_str(), "message": content()}))
        .await;
    let got = receive_within(&rust, &rust_channel, ARRIVES)
        .await
        .expect("decrypted");
    assert_eq!(Value::Object(got.fields().clone()), content());
    let py_channel = py.new_channel().await;
    rust.send(&channel(&py_channel), msg(content()))
        .await
        .unwrap();
    assert_eq!(py.receive(&py_channel, 10.0).await, Some(content()));
    let group = GroupName::parse("secret-room").unwrap();
    py.call(json!({"op": "group_add", "group": "secret-room", "channel": py_channel}))
        .await;
    rust.group_add(&group, &rust_channel).await.unwrap();
    py.call(json!({"op": "group_send", "group": "secret-room", "message": content()}))
        .await;
    assert!(
        receive_within(&rust, &rust_channel, ARRIVES)
            .await
            .is_some()
    );
    assert_eq!(py.receive(&py_channel, 10.0).await, Some(content()));

    // Different keys: each receiver refuses the message and says so.
    let mut stranger = PyPeer::start(kwargs(
        &prefix,
        json!({"symmetric_encryption_keys": ["not-ours"]}),
    ))
    .await;
    let stranger_channel = stranger.new_channel().await;
    rust.send(&channel(&stranger_channel), msg(content()))
        .await
        .unwrap();
    let refused = stranger
        .request(json!({"op": "receive", "channel": stranger_channel, "timeout": 10.0}))
        .await;
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("InvalidToken")),
        "{refused}"
    );

    let before = rust.stats().undecodable;
    stranger
        .call(json!({"op": "send", "channel": rust_channel.as_str(), "message": content()}))
        .await;
    // Refused, not delivered: the next message received there is one the right keys sent
    // after it (through Redis), by which time the refusal has been counted.
    py.call(
        json!({"op": "send", "channel": rust_channel.as_str(), "message": {"type": "sentinel"}}),
    )
    .await;
    assert_eq!(
        receive_within(&rust, &rust_channel, ARRIVES)
            .await
            .expect("the sentinel never arrived")
            .kind(),
        "sentinel"
    );
    assert_eq!(rust.stats().undecodable, before + 1);
    rust.flush().await.unwrap();
}

/// Two shards shared by both sides: group sends both ways, and Rust sends to Python's
/// process channels, land where the other side reads. (Python's own direct send to a
/// process-specific channel hashes the full channel name — channels_redis's routing bug —
/// so with several hosts it may write where no receiver reads; parley-redis routes by the
/// process key, which is where channels_redis receives.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_shared_with_channels_redis() {
    let (s0, s1) = (Throwaway::start(), Throwaway::start());
    let hosts = vec![s0.url(), s1.url()];
    let mut cfg = config("interop-shards:", LayerConfig::default());
    cfg.hosts = hosts.clone();
    let rust = layer_with(cfg).await;
    let mut py = PyPeer::start(json!({"hosts": hosts, "prefix": "interop-shards:"})).await;
    let groups = ["lobby", "random", "general", "ops"];
    assert!(
        groups.iter().any(|g| shard_of(g, 2) == 0) && groups.iter().any(|g| shard_of(g, 2) == 1)
    );
    let rust_channel = rust.new_channel().await.unwrap();
    let py_channel = py.new_channel().await;
    for g in groups {
        rust.group_add(&GroupName::parse(g).unwrap(), &rust_channel)
            .await
            .unwrap();
        py.call(json!({"op": "group_add", "group": g, "channel": py_channel}))
            .await;
    }
    for (i, g) in groups.iter().enumerate() {
        py.call(json!({"op": "group_send", "group": g, "message": {"type": "from.py", "i": i}}))
            .await;
        let got = receive_within(&rust, &rust_channel, ARRIVES)
            .await
            .expect("python group_send");
        assert_eq!(got.get("i"), Some(&json!(i)));
        assert_eq!(
            py.receive(&py_channel, 10.0).await,
            Some(json!({"type": "from.py", "i": i}))
        );

        let report = rust
            .group_send(
                &GroupName::parse(g).unwrap(),
                msg(json!({"type": "from.rs", "i": i})),
            )
            .await
            .unwrap();
        assert_eq!(report.delivered, 2);
        assert_eq!(
            py.receive(&py_channel, 10.0).await,
            Some(json!({"type": "from.rs", "i": i}))
        );
        assert_eq!(
            receive_within(&rust, &rust_channel, ARRIVES)
                .await
                .unwrap()
                .kind(),
            "from.rs"
        );
    }
    rust.send(&channel(&py_channel), msg(json!({"type": "direct"})))
        .await
        .unwrap();
    assert_eq!(
        py.receive(&py_channel, 10.0).await,
        Some(json!({"type": "direct"}))
    );
}
