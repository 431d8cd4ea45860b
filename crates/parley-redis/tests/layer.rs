//! `RedisLayer` against a real Redis: channels, groups, capacity, expiry, encryption,
//! several nodes, prefix isolation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use parley_layer::{ChannelLayer, GroupName, LayerConfig, LayerError};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn process_and_normal_channels() {
    let prefix = unique_prefix("channels");
    let layer = layer(&prefix).await;
    let a = layer.new_channel().await.unwrap();
    assert!(
        a.as_str()
            .starts_with(&format!("specific.{}!", layer.client_prefix()))
    );
    layer
        .send(&a, msg(json!({"type": "t.one", "x": 1})))
        .await
        .unwrap();
    layer
        .send(&a, msg(json!({"type": "t.two", "x": 2})))
        .await
        .unwrap();
    assert_eq!(
        receive_within(&layer, &a, ARRIVES).await.unwrap(),
        msg(json!({"type": "t.one", "x": 1}))
    );
    assert_eq!(
        receive_within(&layer, &a, ARRIVES).await.unwrap().kind(),
        "t.two"
    );

    let worker = channel("worker-jobs");
    layer
        .send(&worker, msg(json!({"type": "job", "n": 7})))
        .await
        .unwrap();
    assert_eq!(
        receive_within(&layer, &worker, ARRIVES)
            .await
            .unwrap()
            .get("n"),
        Some(&json!(7))
    );

    let reserved = msg(json!({"type": "t", "__asgi_channel__": "x"}));
    assert!(matches!(
        layer.send(&a, reserved).await,
        Err(LayerError::InvalidMessage(_))
    ));
    layer.flush().await.unwrap();
}

#[tokio::test]
async fn capacity_is_refused_counted_and_reported() {
    let prefix = unique_prefix("capacity");
    let cfg = LayerConfig {
        capacity: 3,
        ..LayerConfig::default()
    };
    let (layer, other) = (
        layer_with(config(&prefix, cfg.clone())).await,
        layer_with(config(&prefix, cfg)).await,
    );

    // Within one process the capacity holds per channel.
    let (a, b) = (
        layer.new_channel().await.unwrap(),
        layer.new_channel().await.unwrap(),
    );
    for i in 0..3 {
        layer
            .send(&a, msg(json!({"type": "t", "i": i})))
            .await
            .unwrap();
    }
    match layer.send(&a, msg(json!({"type": "t", "i": 3}))).await {
        Err(LayerError::ChannelFull(c)) => assert_eq!(c, a),
        other => panic!("expected ChannelFull, got {other:?}"),
    }
    assert_eq!(layer.stats().full, 1);
    let group = GroupName::parse("room").unwrap();
    layer.group_add(&group, &a).await.unwrap();
    layer.group_add(&group, &b).await.unwrap();
    let report = layer
        .group_send(&group, msg(json!({"type": "g"})))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1, "b has room");
    assert_eq!(report.full, vec![a.clone()]);
    assert_eq!(layer.stats().full, 2);
    for i in 0..3 {
        assert_eq!(
            receive_within(&layer, &a, ARRIVES).await.unwrap().get("i"),
            Some(&json!(i))
        );
    }
    assert_eq!(
        receive_within(&layer, &b, ARRIVES).await.unwrap().kind(),
        "g"
    );

    // Across processes it holds per Redis key, as in channels_redis: a process's channels
    // share its key until its receive loop drains it.
    let (x, y) = (
        other.new_channel().await.unwrap(),
        other.new_channel().await.unwrap(),
    );
    for i in 0..3 {
        layer
            .send(&x, msg(json!({"type": "t", "i": i})))
            .await
            .unwrap();
    }
    assert!(matches!(
        layer.send(&x, msg(json!({"type": "t"}))).await,
        Err(LayerError::ChannelFull(_))
    ));
    assert!(matches!(
        layer.send(&y, msg(json!({"type": "t"}))).await,
        Err(LayerError::ChannelFull(_))
    ));
    for i in 0..3 {
        assert_eq!(
            receive_within(&other, &x, ARRIVES).await.unwrap().get("i"),
            Some(&json!(i))
        );
    }
    layer.flush().await.unwrap();
}

#[tokio::test]
async fn groups_across_two_nodes() {
    let prefix = unique_prefix("nodes");
    let (n1, n2) = (layer(&prefix).await, layer(&prefix).await);
    let group = GroupName::parse("chat_lobby").unwrap();
    let (a1, a2, b1) = (
        n1.new_channel().await.unwrap(),
        n1.new_channel().await.unwrap(),
        n2.new_channel().await.unwrap(),
    );
    for c in [&a1, &a2] {
        n1.group_add(&group, c).await.unwrap();
    }
    n2.group_add(&group, &b1).await.unwrap();
    let report = n2
        .group_send(&group, msg(json!({"type": "chat.message", "text": "hi"})))
        .await
        .unwrap();
    assert_eq!((report.delivered, report.full.len()), (3, 0));
    for c in [&a1, &a2] {
        assert_eq!(
            receive_within(&n1, c, ARRIVES).await.unwrap().get("text"),
            Some(&json!("hi"))
        );
    }
    assert_eq!(
        receive_within(&n2, &b1, ARRIVES).await.unwrap().kind(),
        "chat.message"
    );

    // Leaving: discard, and close_channel leaves the groups joined through that node.
    n1.group_discard(&group, &a1).await.unwrap();
    n1.close_channel(&a2).await.unwrap();
    let report = n1
        .group_send(&group, msg(json!({"type": "chat.message", "text": "2"})))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(
        receive_within(&n2, &b1, ARRIVES).await.unwrap().get("text"),
        Some(&json!("2"))
    );
    assert_next_is_sentinel(&n2, &n1, &a1).await;
    n2.group_discard(&group, &b1).await.unwrap();
    assert_eq!(
        n1.group_send(&group, msg(json!({"type": "x"})))
            .await
            .unwrap()
            .delivered,
        0
    );
    n1.flush().await.unwrap();
}

#[tokio::test]
async fn prefixes_isolate_deployments() {
    let (p1, p2) = (unique_prefix("iso1"), unique_prefix("iso2"));
    let (d1, d2) = (layer(&p1).await, layer(&p2).await);
    let group = GroupName::parse("shared-name").unwrap();
    let (c1, c2) = (
        d1.new_channel().await.unwrap(),
        d2.new_channel().await.unwrap(),
    );
    d1.group_add(&group, &c1).await.unwrap();
    d2.group_add(&group, &c2).await.unwrap();
    assert_eq!(
        d1.group_send(&group, msg(json!({"type": "only.d1"})))
            .await
            .unwrap()
            .delivered,
        1
    );
    let worker = channel("jobs");
    d2.send(&worker, msg(json!({"type": "only.d2"})))
        .await
        .unwrap();
    assert_eq!(
        receive_within(&d1, &c1, ARRIVES).await.unwrap().kind(),
        "only.d1"
    );
    // Nothing of d1's reached d2's channel, nor d2's job d1's queue of that name: the next
    // message on each is a sentinel sent after, by another instance of the same deployment.
    let (d1_peer, d2_peer) = (layer(&p1).await, layer(&p2).await);
    assert_next_is_sentinel(&d2_peer, &d2, &c2).await;
    assert_next_is_sentinel(&d1_peer, &d1, &worker).await;
    // Flushing one deployment leaves the other's data.
    d1.flush().await.unwrap();
    assert_eq!(
        receive_within(&d2, &worker, ARRIVES).await.unwrap().kind(),
        "only.d2"
    );
    d2.flush().await.unwrap();
}

#[tokio::test]
async fn expired_messages_are_dropped() {
    let prefix = unique_prefix("expiry");
    let cfg = LayerConfig {
        expiry: Duration::from_secs(1),
        ..LayerConfig::default()
    };
    let layer = layer_with(config(&prefix, cfg.clone())).await;
    let a = layer.new_channel().await.unwrap();
    let worker = channel("slow-worker");
    layer.send(&a, msg(json!({"type": "old"}))).await.unwrap();
    layer
        .send(&worker, msg(json!({"type": "old"})))
        .await
        .unwrap();
    // Let both age past the expiry (whole seconds, as channels_redis counts): the scenario,
    // not a wait for something to happen. Then a fresh message on each is the next one
    // received: the old ones are gone.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let peer = layer_with(config(&prefix, cfg)).await;
    assert_next_is_sentinel(&peer, &layer, &a).await;
    assert_next_is_sentinel(&peer, &layer, &worker).await;
    layer.flush().await.unwrap();
}

#[tokio::test]
async fn encryption_between_nodes() {
    let prefix = unique_prefix("crypto");
    let keyed = |keys: &[&str]| config(&prefix, LayerConfig::default()).with_encryption_keys(keys);
    let sender = layer_with(keyed(&["new-key", "old-key"])).await;
    let rotated = layer_with(keyed(&["old-key"])).await;
    let stranger = layer_with(keyed(&["other"])).await;
    let plain = layer(&prefix).await;

    let c = rotated.new_channel().await.unwrap();
    sender
        .send(&c, msg(json!({"type": "secret", "v": "s"})))
        .await
        .unwrap();
    // Encrypted with "new-key": "rotated" only has "old-key" and must refuse it (counted by
    // the time a sentinel sent after it, under "old-key", arrives).
    assert_next_is_sentinel(&layer_with(keyed(&["old-key"])).await, &rotated, &c).await;
    assert_eq!(rotated.stats().undecodable, 1);
    let ok = layer_with(keyed(&["old-key", "new-key"])).await;
    let c2 = ok.new_channel().await.unwrap();
    sender
        .send(&c2, msg(json!({"type": "secret", "v": "s"})))
        .await
        .unwrap();
    assert_eq!(
        receive_within(&ok, &c2, ARRIVES).await.unwrap().get("v"),
        Some(&json!("s"))
    );

    let stranger_peer = layer_with(keyed(&["other"])).await;
    let plain_peer = layer(&prefix).await;
    for (receiver, peer) in [(&stranger, &stranger_peer), (&plain, &plain_peer)] {
        let c = receiver.new_channel().await.unwrap();
        sender
            .send(&c, msg(json!({"type": "secret"})))
            .await
            .unwrap();
        assert_next_is_sentinel(peer, receiver, &c).await;
        assert_eq!(receiver.stats().undecodable, 1);
    }
    plain.flush().await.unwrap();
}
