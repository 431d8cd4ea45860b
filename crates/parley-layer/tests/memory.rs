//! What only the in-memory layer promises (the shared behaviour is in `conformance.rs`):
//! exact expiry under paused time, shared payloads, waiting receivers surviving
//! `close_channel`/`flush`, and no leaks.

// Test helpers too may unwrap: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use parley_layer::{
    ChannelLayer, ChannelName, GroupName, InMemoryLayer, InMemoryStats, LayerConfig, Message,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{advance, timeout};

fn channel(name: &str) -> ChannelName {
    ChannelName::parse(name).unwrap()
}

fn group(name: &str) -> GroupName {
    GroupName::parse(name).unwrap()
}

fn numbered(n: u64) -> Message {
    let Value::Object(map) = json!({ "n": n }) else {
        unreachable!()
    };
    Message::new("test.message", map)
}

fn number_of(m: &Message) -> u64 {
    m.get("n").and_then(Value::as_u64).unwrap()
}

async fn receive(layer: &InMemoryLayer, ch: &ChannelName) -> Message {
    timeout(Duration::from_secs(5), layer.receive(ch))
        .await
        .expect("a message in time")
        .unwrap()
}

fn config(capacity: usize, expiry: u64, group_expiry: u64) -> LayerConfig {
    LayerConfig {
        capacity,
        expiry: Duration::from_secs(expiry),
        group_expiry: Duration::from_secs(group_expiry),
    }
}

const EMPTY: InMemoryStats = InMemoryStats {
    channels: 0,
    groups: 0,
    channels_in_groups: 0,
};

#[tokio::test(start_paused = true)]
async fn a_message_expires_exactly_after_expiry_and_frees_capacity() {
    let layer = InMemoryLayer::new(config(2, 10, 86_400));
    let ch = channel("test.expiry");
    layer.send(&ch, numbered(1)).await.unwrap();
    advance(Duration::from_secs(5)).await;
    layer.send(&ch, numbered(2)).await.unwrap();
    assert!(layer.send(&ch, numbered(3)).await.is_err(), "capacity 2");
    advance(Duration::from_secs(5)).await;
    // Message 1 is 10 s old: gone, and its place is free again.
    layer.send(&ch, numbered(4)).await.unwrap();
    assert_eq!(number_of(&receive(&layer, &ch).await), 2);
    advance(Duration::from_millis(9_999)).await;
    // Message 4 is 9.999 s old: still there.
    assert_eq!(number_of(&receive(&layer, &ch).await), 4);
    assert_eq!(layer.stats(), EMPTY);
}

#[tokio::test(start_paused = true)]
async fn group_membership_expires_and_a_refresh_restarts_it() {
    let layer = InMemoryLayer::new(config(100, 60, 100));
    let g = group("test.group-expiry");
    let (refreshed, stale) = (channel("test.refreshed"), channel("test.stale"));
    layer.group_add(&g, &refreshed).await.unwrap();
    layer.group_add(&g, &stale).await.unwrap();
    advance(Duration::from_secs(60)).await;
    layer.group_add(&g, &refreshed).await.unwrap();
    advance(Duration::from_secs(39)).await;
    assert_eq!(
        layer.group_send(&g, numbered(1)).await.unwrap().delivered,
        2
    );
    advance(Duration::from_secs(1)).await;
    assert_eq!(
        layer.group_send(&g, numbered(2)).await.unwrap().delivered,
        1
    );
    // The stale member was pruned from both maps by that send.
    assert_eq!(layer.stats().channels_in_groups, 1);
    advance(Duration::from_secs(60)).await;
    assert_eq!(
        layer.group_send(&g, numbered(3)).await.unwrap().delivered,
        0
    );
    assert_eq!(
        layer.stats().groups,
        0,
        "a group whose members all expired is removed"
    );
    layer.close_channel(&refreshed).await.unwrap();
    layer.close_channel(&stale).await.unwrap();
    assert_eq!(layer.stats(), EMPTY);
}

#[tokio::test(start_paused = true)]
async fn stale_members_of_groups_never_sent_to_are_swept() {
    let layer = InMemoryLayer::new(config(100, 60, 100));
    for i in 0..50 {
        layer
            .group_add(
                &group(&format!("test.idle-{i}")),
                &channel(&format!("test.c{i}")),
            )
            .await
            .unwrap();
    }
    advance(Duration::from_secs(101)).await;
    // Any group_add past the sweep time prunes every group.
    layer
        .group_add(&group("test.other"), &channel("test.other"))
        .await
        .unwrap();
    // Only the new member's channel is left (a group member stays in the table).
    assert_eq!(
        layer.stats(),
        InMemoryStats {
            channels: 1,
            groups: 1,
            channels_in_groups: 1
        }
    );
}

#[tokio::test(start_paused = true)]
async fn purge_expired_drops_channels_nobody_reads() {
    let layer = InMemoryLayer::new(config(100, 10, 100));
    for i in 0..100 {
        layer
            .send(&channel(&format!("test.unread-{i}")), numbered(i))
            .await
            .unwrap();
    }
    layer
        .group_add(&group("test.g"), &channel("test.unread-0"))
        .await
        .unwrap();
    assert_eq!(
        layer.stats(),
        InMemoryStats {
            channels: 100,
            groups: 1,
            channels_in_groups: 1
        }
    );
    advance(Duration::from_secs(10)).await;
    layer.purge_expired();
    // The group member's channel stays (empty) until its membership lapses.
    assert_eq!(
        layer.stats(),
        InMemoryStats {
            channels: 1,
            groups: 1,
            channels_in_groups: 1
        }
    );
    advance(Duration::from_secs(90)).await;
    layer.purge_expired();
    assert_eq!(layer.stats(), EMPTY);
}

#[tokio::test]
async fn group_send_shares_one_payload() {
    let layer = InMemoryLayer::default();
    let g = group("test.shared");
    let members: Vec<_> = (0..20).map(|i| channel(&format!("test.m{i}"))).collect();
    for ch in &members {
        layer.group_add(&g, ch).await.unwrap();
    }
    let sent = numbered(1);
    assert_eq!(
        layer.group_send(&g, sent.clone()).await.unwrap().delivered,
        20
    );
    for ch in &members {
        assert!(
            Message::ptr_eq(&receive(&layer, ch).await, &sent),
            "a copy, not the shared payload"
        );
    }
}

#[tokio::test]
async fn group_send_to_thousands_of_full_channels_reports_them_all() {
    let layer = InMemoryLayer::new(config(1, 60, 86_400));
    let g = group("test.all-full");
    for i in 0..2_000 {
        let ch = channel(&format!("test.full-{i}"));
        layer.send(&ch, numbered(0)).await.unwrap();
        layer.group_add(&g, &ch).await.unwrap();
    }
    let report = layer.group_send(&g, numbered(1)).await.unwrap();
    assert_eq!((report.delivered, report.full.len()), (0, 2_000));
}

#[tokio::test]
async fn a_waiting_receiver_survives_close_channel_and_flush() {
    let layer = Arc::new(InMemoryLayer::default());
    let ch = channel("test.waiting");
    for reset in ["close", "flush"] {
        let receiver = {
            let (layer, ch) = (layer.clone(), ch.clone());
            tokio::spawn(async move { receive(&layer, &ch).await })
        };
        // Wait until the receiver is waiting (its channel is in the table), bounded.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while layer.stats().channels == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the receiver never waited"
            );
            tokio::task::yield_now().await;
        }
        if reset == "close" {
            layer.close_channel(&ch).await.unwrap();
        } else {
            layer.flush().await.unwrap();
        }
        layer.send(&ch, numbered(9)).await.unwrap();
        assert_eq!(number_of(&receiver.await.unwrap()), 9, "after {reset}");
    }
    assert_eq!(layer.stats(), EMPTY);
}

#[tokio::test]
async fn a_cancelled_receive_leaves_nothing_behind() {
    let layer = InMemoryLayer::default();
    let ch = channel("test.cancelled");
    assert!(
        timeout(Duration::from_millis(10), layer.receive(&ch))
            .await
            .is_err()
    );
    assert_eq!(layer.stats(), EMPTY);
}

/// Hundreds of receivers waiting while group sends run from several tasks: every receiver
/// gets every message of every sender, in each sender's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_group_sends_reach_concurrent_receivers() {
    const RECEIVERS: usize = 300;
    const SENDERS: u64 = 4;
    const EACH: u64 = 50;
    let layer = Arc::new(InMemoryLayer::new(config(1_000, 60, 86_400)));
    let g = group("test.busy");
    let mut receivers = Vec::new();
    for i in 0..RECEIVERS {
        let ch = channel(&format!("test.r{i}"));
        layer.group_add(&g, &ch).await.unwrap();
        let layer = layer.clone();
        receivers.push(tokio::spawn(async move {
            let mut next = [0u64; SENDERS as usize];
            for _ in 0..SENDERS * EACH {
                let m = receive(&layer, &ch).await;
                let sender = m.get("sender").and_then(Value::as_u64).unwrap() as usize;
                assert_eq!(number_of(&m), next[sender]);
                next[sender] += 1;
            }
            layer.close_channel(&ch).await.unwrap();
        }));
    }
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let (layer, g) = (layer.clone(), g.clone());
            tokio::spawn(async move {
                for n in 0..EACH {
                    let Value::Object(map) = json!({"sender": sender, "n": n}) else {
                        unreachable!()
                    };
                    let report = layer
                        .group_send(&g, Message::new("test.message", map))
                        .await
                        .unwrap();
                    assert!(report.full.is_empty());
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for task in senders.into_iter().chain(receivers) {
        task.await.unwrap();
    }
    assert_eq!(layer.stats(), EMPTY);
}

/// Channels created, joined to groups, sent to, received from, waited on and abandoned, then
/// closed: the layer's maps end empty.
#[tokio::test]
async fn nothing_leaks_once_every_channel_is_closed() {
    let layer = Arc::new(InMemoryLayer::default());
    let groups: Vec<_> = (0..10).map(|i| group(&format!("test.leak-{i}"))).collect();
    let mut channels = Vec::new();
    for i in 0..200 {
        let ch = layer.new_channel().await.unwrap();
        for g in groups.iter().skip(i % 3).step_by(3) {
            layer.group_add(g, &ch).await.unwrap();
        }
        channels.push(ch);
    }
    for g in &groups {
        layer.group_send(g, numbered(1)).await.unwrap();
    }
    // Some channels drained, some with a receive cut short, some left with messages.
    for ch in channels.iter().step_by(2) {
        while timeout(Duration::from_millis(1), layer.receive(ch))
            .await
            .is_ok()
        {}
    }
    // Discards, including the last member of a group, remove what they empty.
    for ch in &channels {
        layer.group_discard(&groups[0], ch).await.unwrap();
    }
    assert_eq!(layer.stats().groups, 9);
    let before = layer.stats();
    assert!(
        before.channels > 0 && before.channels_in_groups > 0,
        "{before:?}"
    );
    for ch in &channels {
        layer.close_channel(ch).await.unwrap();
    }
    assert_eq!(layer.stats(), EMPTY);
}

/// Joins, leaves, sends, group sends, receives cut short and closes, all at once on a few
/// channels and groups: nothing panics, deadlocks or leaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_churn_leaves_nothing_behind() {
    use rand::Rng;
    let layer = Arc::new(InMemoryLayer::new(config(5, 60, 86_400)));
    let channels: Arc<Vec<_>> = Arc::new(
        (0..40)
            .map(|i| channel(&format!("test.churn-{i}")))
            .collect(),
    );
    let groups: Arc<Vec<_>> = Arc::new((0..5).map(|i| group(&format!("test.churn-{i}"))).collect());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (layer, channels, groups) = (layer.clone(), channels.clone(), groups.clone());
            tokio::spawn(async move {
                for _ in 0..2_000 {
                    let (op, c, g) = {
                        let mut rng = rand::rng();
                        (
                            rng.random_range(0..6),
                            rng.random_range(0..channels.len()),
                            rng.random_range(0..groups.len()),
                        )
                    };
                    let (ch, g) = (&channels[c], &groups[g]);
                    match op {
                        0 => layer.group_add(g, ch).await.unwrap(),
                        1 => layer.group_discard(g, ch).await.unwrap(),
                        2 => drop(layer.send(ch, numbered(1)).await),
                        3 => drop(layer.group_send(g, numbered(2)).await.unwrap()),
                        4 => drop(timeout(Duration::from_micros(200), layer.receive(ch)).await),
                        _ => layer.close_channel(ch).await.unwrap(),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        timeout(Duration::from_secs(60), task)
            .await
            .expect("no deadlock")
            .unwrap();
    }
    for ch in channels.iter() {
        layer.close_channel(ch).await.unwrap();
    }
    assert_eq!(layer.stats(), EMPTY);
}
