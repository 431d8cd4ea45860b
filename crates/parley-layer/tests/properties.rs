//! The in-memory layer against a model, on generated operation sequences: per-channel FIFO,
//! capacity never exceeded (a send to a full channel fails and changes nothing), one copy
//! per group member per group send, discarded members get nothing, full members are
//! reported, and nothing is left behind once every channel is drained and closed.

// Strategies and helpers may unwrap too: a panic is a failed case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use parley_layer::{
    ChannelLayer, ChannelName, GroupName, InMemoryLayer, LayerConfig, LayerError, Message,
};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

const CHANNELS: usize = 4;
const GROUPS: usize = 2;

#[derive(Debug, Clone)]
enum Op {
    Send(usize),
    GroupAdd(usize, usize),
    GroupDiscard(usize, usize),
    GroupSend(usize),
    Receive(usize),
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..CHANNELS).prop_map(Op::Send),
        3 => (0..GROUPS, 0..CHANNELS).prop_map(|(g, c)| Op::GroupAdd(g, c)),
        1 => (0..GROUPS, 0..CHANNELS).prop_map(|(g, c)| Op::GroupDiscard(g, c)),
        3 => (0..GROUPS).prop_map(Op::GroupSend),
        4 => (0..CHANNELS).prop_map(Op::Receive),
        1 => Just(Op::Flush),
    ]
}

fn channel(i: usize) -> ChannelName {
    ChannelName::parse(&format!("prop.channel{i}")).unwrap()
}

fn group(i: usize) -> GroupName {
    GroupName::parse(&format!("prop-group{i}")).unwrap()
}

fn numbered(n: u64) -> Message {
    let Value::Object(map) = json!({"type": "prop.m", "n": n}) else {
        unreachable!()
    };
    Message::from_map(map).unwrap()
}

/// What the layer should hold.
#[derive(Default)]
struct Model {
    queues: HashMap<usize, VecDeque<u64>>,
    groups: HashMap<usize, BTreeSet<usize>>,
}

fn run(ops: Vec<Op>, capacity: usize) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        // Expiries far beyond the paused clock's travel in one case.
        let layer = InMemoryLayer::new(LayerConfig {
            capacity,
            expiry: Duration::from_secs(365 * 86_400),
            group_expiry: Duration::from_secs(365 * 86_400),
        });
        let mut model = Model::default();
        let mut next = 0u64;
        for op in ops {
            match op {
                Op::Send(c) => {
                    next += 1;
                    let q = model.queues.entry(c).or_default();
                    match layer.send(&channel(c), numbered(next)).await {
                        Ok(()) => {
                            prop_assert!(q.len() < capacity, "accepted past capacity");
                            q.push_back(next);
                        }
                        Err(LayerError::ChannelFull(_)) => {
                            prop_assert_eq!(q.len(), capacity, "refused below capacity");
                        }
                        Err(e) => return Err(TestCaseError::fail(format!("send: {e}"))),
                    }
                }
                Op::GroupAdd(g, c) => {
                    layer.group_add(&group(g), &channel(c)).await.unwrap();
                    model.groups.entry(g).or_default().insert(c);
                }
                Op::GroupDiscard(g, c) => {
                    layer.group_discard(&group(g), &channel(c)).await.unwrap();
                    model.groups.entry(g).or_default().remove(&c);
                }
                Op::GroupSend(g) => {
                    next += 1;
                    let report = layer.group_send(&group(g), numbered(next)).await.unwrap();
                    let members = model.groups.get(&g).cloned().unwrap_or_default();
                    let mut full = BTreeSet::new();
                    for c in &members {
                        let q = model.queues.entry(*c).or_default();
                        if q.len() < capacity {
                            q.push_back(next);
                        } else {
                            full.insert(channel(*c).to_string());
                        }
                    }
                    let reported: BTreeSet<String> =
                        report.full.iter().map(ToString::to_string).collect();
                    prop_assert_eq!(reported, full);
                    prop_assert_eq!(report.delivered + report.full.len(), members.len());
                }
                Op::Receive(c) => {
                    let got =
                        tokio::time::timeout(Duration::from_millis(10), layer.receive(&channel(c)))
                            .await;
                    let want = model.queues.entry(c).or_default().pop_front();
                    match (got, want) {
                        (Ok(Ok(m)), Some(n)) => {
                            prop_assert_eq!(m.get("n").and_then(Value::as_u64), Some(n));
                        }
                        (Err(_), None) => {}
                        (got, want) => {
                            return Err(TestCaseError::fail(format!(
                                "receive on {c}: got {got:?}, model has {want:?}"
                            )));
                        }
                    }
                }
                Op::Flush => {
                    layer.flush().await.unwrap();
                    model = Model::default();
                }
            }
        }
        // Drain what the model still holds, in order, then close everything: no leftovers.
        for c in 0..CHANNELS {
            let q = model.queues.remove(&c).unwrap_or_default();
            for n in q {
                let m = tokio::time::timeout(Duration::from_millis(10), layer.receive(&channel(c)))
                    .await
                    .expect("a queued message")
                    .unwrap();
                prop_assert_eq!(m.get("n").and_then(Value::as_u64), Some(n));
            }
            for g in 0..GROUPS {
                layer.group_discard(&group(g), &channel(c)).await.unwrap();
            }
            layer.close_channel(&channel(c)).await.unwrap();
        }
        let stats = layer.stats();
        prop_assert_eq!(
            (stats.channels, stats.groups, stats.channels_in_groups),
            (0, 0, 0),
            "left behind: {:?}",
            stats
        );
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn in_memory_layer_matches_the_model(ops in prop::collection::vec(op(), 0..80), capacity in 1usize..5) {
        run(ops, capacity)?;
    }
}
