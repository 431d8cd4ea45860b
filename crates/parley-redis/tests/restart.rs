//! Surviving a Redis restart, not leaking connections, and sharding over two hosts, on
//! throwaway Redis servers started by the test (`PARLEY_REDIS_SERVER`, exported by scripts/test.sh, else `redis-server`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use parley_layer::{ChannelLayer, LayerConfig};
use parley_redis::{RedisLayer, RedisLayerConfig};
use serde_json::json;
use std::time::Duration;

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
    // Wait for the receive loop to take m1 out of Redis (the process's queue key goes).
    let process_key = format!("restart:{}", a.non_local_prefix().unwrap());
    let deadline = tokio::time::Instant::now() + ARRIVES;
    while !server.keys(&process_key).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the receive loop never took m1"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.keys("restart:jobs").await, vec!["restart:jobs"]);

    server.stop();
    assert!(
        sender.send(&a, msg(json!({"type": "lost"}))).await.is_err(),
        "Redis is down"
    );
    // Down for half a second (the fault itself, not a wait for an event).
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
    for i in 0..20 {
        let layer = RedisLayer::connect(throwaway_config(&server))
            .await
            .unwrap();
        let c = layer.new_channel().await.unwrap();
        layer.send(&c, msg(json!({"type": "t"}))).await.unwrap();
        // A worker channel of its own: the dropped layer's blocking pop on the last one may
        // still be waiting in Redis (its task is cancelled asynchronously) and would take a
        // message sent to the same channel (seen under load in CI).
        let worker = channel(&format!("w{i}"));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_over_two_hosts_by_consistent_hash() {
    let (s0, s1) = (Throwaway::start(), Throwaway::start());
    let hosts = vec![s0.url(), s1.url()];
    let sharded = || {
        let mut cfg = RedisLayerConfig::new(String::new()).with_prefix("shard:");
        cfg.hosts = hosts.clone();
        cfg
    };
    let (n1, n2) = (layer_with(sharded()).await, layer_with(sharded()).await);
    let groups: Vec<_> = [
        "lobby", "general", "random", "dev", "ops", "music", "games", "news",
    ]
    .iter()
    .map(|g| parley_layer::GroupName::parse(g).unwrap())
    .collect();
    let (c1, c2) = (
        n1.new_channel().await.unwrap(),
        n2.new_channel().await.unwrap(),
    );
    for g in &groups {
        n1.group_add(g, &c1).await.unwrap();
        n2.group_add(g, &c2).await.unwrap();
    }
    // Each group lives on the host its name hashes to, and only there.
    let servers = [&s0, &s1];
    let mut used = [false, false];
    for g in &groups {
        let home = shard_of(g.as_str(), 2);
        used[home] = true;
        let key = format!("shard::group:{g}");
        assert_eq!(servers[home].keys(&key).await, vec![key.clone()]);
        assert!(servers[1 - home].keys(&key).await.is_empty());
    }
    assert_eq!(used, [true, true], "the test groups cover both hosts");
    for (i, g) in groups.iter().enumerate() {
        let report = n1
            .group_send(g, msg(json!({"type": "m", "i": i})))
            .await
            .unwrap();
        assert_eq!(report.delivered, 2);
        for (node, c) in [(&n1, &c1), (&n2, &c2)] {
            assert_eq!(
                receive_within(node, c, ARRIVES).await.unwrap().get("i"),
                Some(&json!(i))
            );
        }
    }
    // A direct send to a process-specific channel goes to the host of its process key
    // (where that process reads), normal channels to the host of their name.
    let n3 = layer_with(sharded()).await;
    let process_key = format!("shard:{}", c2.non_local_prefix().unwrap());
    let home = shard_of(c2.non_local_prefix().unwrap(), 2);
    n3.send(&c2, msg(json!({"type": "direct"}))).await.unwrap();
    assert!(servers[1 - home].keys(&process_key).await.is_empty());
    assert_eq!(
        receive_within(&n2, &c2, ARRIVES).await.unwrap().kind(),
        "direct"
    );
    let worker = channel("worker-q");
    n3.send(&worker, msg(json!({"type": "job"}))).await.unwrap();
    let key = "shard:worker-q".to_owned();
    assert_eq!(
        servers[shard_of("worker-q", 2)].keys(&key).await,
        vec![key.clone()]
    );
    assert!(
        servers[1 - shard_of("worker-q", 2)]
            .keys(&key)
            .await
            .is_empty()
    );
    assert_eq!(
        receive_within(&n2, &worker, ARRIVES).await.unwrap().kind(),
        "job"
    );
}

/// While Redis is down a group send reaches the sending instance's own members (and says it
/// was local only), a join holds and a leave is queued; when Redis is back (restarted empty)
/// each instance writes its memberships again, applies the queued leave and counts the
/// outage, and group sends cross instances again, each member getting each message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_sends_stay_local_while_redis_is_down_and_memberships_come_back() {
    let mut server = Throwaway::start();
    let one = layer_with(throwaway_config(&server)).await;
    let two = layer_with(throwaway_config(&server)).await;
    let group = parley_layer::GroupName::parse("room").unwrap();
    let (a, leaver, b) = (
        one.new_channel().await.unwrap(),
        one.new_channel().await.unwrap(),
        two.new_channel().await.unwrap(),
    );
    for (layer, channel) in [(&one, &a), (&one, &leaver), (&two, &b)] {
        layer.group_add(&group, channel).await.unwrap();
    }
    let report = one
        .group_send(&group, msg(json!({"type": "m0"})))
        .await
        .unwrap();
    assert_eq!((report.delivered, report.local_only), (3, false));
    for (layer, channel) in [(&one, &a), (&one, &leaver), (&two, &b)] {
        assert_eq!(
            receive_within(layer, channel, ARRIVES)
                .await
                .unwrap()
                .kind(),
            "m0"
        );
    }
    assert_eq!((one.outages(), two.outages()), (0, 0));

    server.stop();
    let report = one
        .group_send(&group, msg(json!({"type": "during"})))
        .await
        .unwrap();
    assert_eq!((report.delivered, report.local_only), (2, true));
    assert_eq!(
        receive_within(&one, &a, ARRIVES).await.unwrap().kind(),
        "during"
    );
    assert_eq!(
        receive_within(&one, &leaver, ARRIVES).await.unwrap().kind(),
        "during"
    );
    let joiner = one.new_channel().await.unwrap();
    one.group_add(&group, &joiner).await.unwrap();
    one.group_discard(&group, &leaver).await.unwrap();
    // Down for half a second (the fault itself, not a wait for an event).
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.spawn();

    let deadline = tokio::time::Instant::now() + ARRIVES;
    while one.outages() == 0 || two.outages() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the layers never restored their memberships"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // From the other instance, through Redis: the members are the ones after the outage.
    let report = two
        .group_send(&group, msg(json!({"type": "after"})))
        .await
        .unwrap();
    assert_eq!((report.delivered, report.local_only), (3, false));
    for (layer, channel) in [(&one, &a), (&one, &joiner), (&two, &b)] {
        assert_eq!(
            receive_within(layer, channel, ARRIVES)
                .await
                .unwrap()
                .kind(),
            "after"
        );
        assert_next_is_sentinel(
            if std::ptr::eq(layer, &one) {
                &two
            } else {
                &one
            },
            layer,
            channel,
        )
        .await;
    }
    // The one that left during the outage got nothing more.
    assert_next_is_sentinel(&two, &one, &leaver).await;
}

/// A group add that fails while Redis is up (no pooled connection free within the timeout,
/// as in a join storm: every receive loop stays connected, so no reconnect ends an outage)
/// still reaches Redis: the layer restores its memberships, and a send from another
/// instance reaches the member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_add_refused_for_want_of_a_connection_still_reaches_redis() {
    let server = Throwaway::start();
    let mut tight = throwaway_config(&server);
    tight.pool_size = 1;
    tight.connect_timeout = Duration::from_millis(50);
    let one = layer_with(tight).await;
    let two = layer_with(throwaway_config(&server)).await;
    let group = parley_layer::GroupName::parse("stormy").unwrap();
    let (a, b) = (
        one.new_channel().await.unwrap(),
        one.new_channel().await.unwrap(),
    );
    // Writes paused for a moment: the first add holds the one pooled connection, the second
    // finds none within 50 ms.
    let mut admin = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(400)
        .arg("WRITE")
        .query_async(&mut admin)
        .await
        .unwrap();
    let (first, second) = tokio::join!(one.group_add(&group, &a), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        one.group_add(&group, &b).await
    });
    first.unwrap();
    second.unwrap();
    let deadline = tokio::time::Instant::now() + ARRIVES;
    while one.outages() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the layer never restored the membership it kept locally"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = two
        .group_send(&group, msg(json!({"type": "m"})))
        .await
        .unwrap();
    assert_eq!((report.delivered, report.local_only), (2, false));
    for channel in [&a, &b] {
        assert_eq!(
            receive_within(&one, channel, ARRIVES).await.unwrap().kind(),
            "m"
        );
    }
}
