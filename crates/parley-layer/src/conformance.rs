//! The conformance suite: the behaviour every [`ChannelLayer`] must show, as one test per case.
//!
//! ## Use
//! In an integration test of the backend (e.g. `tests/conformance.rs`), with `parley-layer`
//! as a dev-dependency with the `testing` feature:
//!
//! ```
//! use parley_layer::{InMemoryLayer, LayerConfig};
//!
//! // A backend sharing a server would connect here, with a prefix unique to this call.
//! async fn make_layer(config: LayerConfig) -> InMemoryLayer {
//!     InMemoryLayer::new(config)
//! }
//!
//! parley_layer::conformance_tests!(make_layer);
//! # fn main() {}
//! ```
//!
//! The argument is anything callable as `Fn(LayerConfig) -> impl Future<Output = L>` where
//! `L: ChannelLayer` — an `async fn`, or a closure returning an `async` block. `L` may be the
//! backend type itself or an `Arc<dyn ChannelLayer>`. **Every call must return a fresh layer
//! isolated from every other call** (its own key prefix for a shared server): the cases run
//! in parallel and each may `flush`.
//!
//! The macro expands to a module `conformance` holding one `#[test]` per case (e.g.
//! `conformance::messages_expire`), so a failure names its case and `cargo test conformance`
//! selects the suite. To run it twice in one file (say, for two configurations of a
//! backend), name the modules: `conformance_tests!(plain => make_plain)`.
//!
//! Each test builds its own multi-threaded Tokio runtime (two workers), so the calling crate
//! needs no Tokio macros; nothing pauses time, because a backend like Redis keeps real time.
//! The two expiry cases sleep real seconds (2.1 s and 3.1 s, in parallel with the rest).
//! Every receive is bounded by a timeout, so a bug fails a case, never hangs. Where a case
//! must show a channel holds nothing more, it sends a sentinel and expects it next rather
//! than waiting out a timeout, which keeps the suite fast (≈ 3.5 s on two cores).
//!
//! The case functions are public too, for a backend that wants to run one case by hand.

// A test suite: a panic here is a failed assertion, as in any test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::{ChannelLayer, ChannelName, GroupName, LayerConfig, LayerError, Message};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{sleep, timeout};

/// How long a receive that must succeed may take before the case fails.
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a receive that must find nothing is given to prove it.
pub const QUIET: Duration = Duration::from_millis(300);

/// Runs the suite against the layers `make` builds: one `#[test]` per case, in a module
/// named `conformance` (or the name given before `=>`). See the
/// [module docs](crate::conformance).
#[macro_export]
macro_rules! conformance_tests {
    ($module:ident => $make:expr) => {
        $crate::__conformance_cases!($module, $make;
            send_then_receive,
            receive_waits_for_a_later_send,
            channels_are_isolated,
            per_channel_order_is_kept,
            group_send_fans_out,
            group_send_to_an_unknown_group_delivers_nothing,
            group_discard_stops_delivery,
            capacity_is_enforced,
            group_send_reports_full_channels,
            group_send_all_keeps_order_and_adds_up,
            messages_expire,
            group_membership_expires,
            flush_drops_everything,
            concurrent_senders_keep_per_sender_order,
            many_groups,
            close_channel_forgets_messages_and_groups,
            receive_is_cancel_safe,
            new_channel_names_are_valid_and_unique,
            invalid_names_are_refused,
            message_content_survives,
        );
    };
    ($make:expr) => {
        $crate::conformance_tests!(conformance => $make);
    };
}

/// The expansion of [`conformance_tests!`]; not for direct use.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($module:ident, $make:expr; $($case:ident),* $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $case() {
                    $crate::conformance::run($crate::conformance::$case($make));
                }
            )*
        }
    };
}

/// Something that builds a fresh, isolated layer from a configuration: any
/// `Fn(LayerConfig) -> impl Future<Output = impl ChannelLayer>`.
pub trait MakeLayer {
    /// The layer built.
    type Layer: ChannelLayer;
    /// Builds one.
    fn make(&self, config: LayerConfig) -> impl Future<Output = Self::Layer>;
}

impl<F, Fut, L> MakeLayer for F
where
    F: Fn(LayerConfig) -> Fut,
    Fut: Future<Output = L>,
    L: ChannelLayer,
{
    type Layer = L;
    fn make(&self, config: LayerConfig) -> impl Future<Output = L> {
        self(config)
    }
}

/// Runs one case on a fresh two-worker Tokio runtime.
pub fn run(case: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime")
        .block_on(case);
}

// ---- helpers ---------------------------------------------------------------------------

async fn layer<M: MakeLayer>(make: &M, config: LayerConfig) -> Arc<M::Layer> {
    Arc::new(make.make(config).await)
}

fn channel(name: &str) -> ChannelName {
    ChannelName::parse(name).expect("a valid channel name")
}

fn group(name: &str) -> GroupName {
    GroupName::parse(name).expect("a valid group name")
}

/// A message of type `test.message` with the fields of `fields` (a JSON object).
fn message(fields: Value) -> Message {
    match fields {
        Value::Object(map) => Message::new("test.message", map),
        other => panic!("test messages are built from objects, not {other}"),
    }
}

fn numbered(n: usize) -> Message {
    message(json!({ "n": n }))
}

fn number_of(m: &Message) -> u64 {
    m.get("n")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no number in {m:?}"))
}

async fn fresh_channel<L: ChannelLayer + ?Sized>(layer: &L) -> ChannelName {
    layer.new_channel().await.expect("new_channel")
}

async fn send<L: ChannelLayer + ?Sized>(layer: &L, ch: &ChannelName, m: Message) {
    if let Err(e) = layer.send(ch, m).await {
        panic!("send to {ch} failed: {e}");
    }
}

/// The next message on `ch`; fails the case after [`RECEIVE_TIMEOUT`].
async fn receive<L: ChannelLayer + ?Sized>(layer: &L, ch: &ChannelName) -> Message {
    match timeout(RECEIVE_TIMEOUT, layer.receive(ch)).await {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => panic!("receive on {ch} failed: {e}"),
        Err(_) => panic!("nothing received on {ch} within {RECEIVE_TIMEOUT:?}"),
    }
}

/// Proves nothing is queued on `ch` without waiting: sends a sentinel and expects it to be
/// the next message received. (The channel must have room for one more.)
async fn assert_drained<L: ChannelLayer + ?Sized>(layer: &L, ch: &ChannelName) {
    send(layer, ch, message(json!({"sentinel": true}))).await;
    let got = receive(layer, ch).await;
    assert_eq!(
        got.get("sentinel"),
        Some(&json!(true)),
        "unexpected message left on {ch}: {got:?}"
    );
}

/// Fails the case if `ch` yields a message within [`QUIET`].
async fn assert_nothing<L: ChannelLayer + ?Sized>(layer: &L, ch: &ChannelName) {
    if let Ok(got) = timeout(QUIET, layer.receive(ch)).await {
        panic!("expected nothing on {ch}, got {got:?}");
    }
}

async fn group_add<L: ChannelLayer + ?Sized>(layer: &L, g: &GroupName, ch: &ChannelName) {
    layer.group_add(g, ch).await.expect("group_add");
}

async fn group_send<L: ChannelLayer + ?Sized>(
    layer: &L,
    g: &GroupName,
    m: Message,
) -> crate::GroupSendReport {
    layer.group_send(g, m).await.expect("group_send")
}

fn with_capacity(capacity: usize) -> LayerConfig {
    LayerConfig {
        capacity,
        ..LayerConfig::default()
    }
}

// ---- cases -----------------------------------------------------------------------------

/// A message sent to a channel (named by hand, never created) is received from it.
pub async fn send_then_receive(make: impl MakeLayer) {
    let layer = layer(&make, LayerConfig::default()).await;
    let ch = channel("test.plain-channel_1");
    send(&*layer, &ch, message(json!({"text": "hello"}))).await;
    let got = receive(&*layer, &ch).await;
    assert_eq!(got.kind(), "test.message");
    assert_eq!(got.get("text"), Some(&json!("hello")));
    assert_drained(&*layer, &ch).await;
}

/// A receive started on an empty channel wakes up for a later send.
pub async fn receive_waits_for_a_later_send(make: impl MakeLayer) {
    let layer = layer(&make, LayerConfig::default()).await;
    let ch = fresh_channel(&*layer).await;
    let receiver = {
        let (layer, ch) = (layer.clone(), ch.clone());
        tokio::spawn(async move { receive(&*layer, &ch).await })
    };
    sleep(Duration::from_millis(100)).await;
    send(&*layer, &ch, numbered(7)).await;
    let got = receiver.await.expect("receiver task");
    assert_eq!(number_of(&got), 7);
}

/// A message goes to its channel only.
pub async fn channels_are_isolated(make: impl MakeLayer) {
    let layer = layer(&make, LayerConfig::default()).await;
    let a = fresh_channel(&*layer).await;
    let b = fresh_channel(&*layer).await;
    send(&*layer, &a, numbered(1)).await;
    assert_drained(&*layer, &b).await;
    assert_eq!(number_of(&receive(&*layer, &a).await), 1);
}

/// Messages on one channel are received in the order they were sent.
pub async fn per_channel_order_is_kept(make: impl MakeLayer) {
    let layer = layer(&make, LayerConfig::default()).await;
    let ch = fresh_channel(&*layer).await;
    for n in 0..50 {
        send(&*layer, &ch, numbered(n)).await;
    }
    for n in 0..50 {
        assert_eq!(number_of(&receive(&*layer, &ch).await), n);
    }
}

/// A group send reaches every member once, even one added twice.
pub async fn group_send_fans_out(make: impl MakeLayer) {
    let layer = layer(&make, LayerConfig::default()).await;
    let g = group("test.fan-out");
    let mut members = Vec::new();
    for _ in 0..60 {
        let ch = fresh_channel(&*layer).await;
        group_add(&*layer, &g, &ch).await;
        members.push(ch);
    }
    group_add(&*layer, &g, &members[0]).await;
    let report = group_send(&*layer, &g, message(json!({"text": "to all"}))).await;
    assert_eq!(report.delivered, 60);
    assert!(report.full.is_empty(), "{report:?}");
    for ch in &members {
        assert_eq!(
            receive(&*layer, ch).await.get("text"),
            Some(&json!("to all"))
        );
    }
    assert_drained(&*layer, &members[0]).await;
}

/// A group nobody joined is empty, not an error.
pub async fn group_send_to_an_unknown_group_delivers_nothing(make: impl MakeLayer) {
    let layer = layer(&make, LayerConfig::default()).await;
    let report = group_send(&*layer, &group("test.nobody-here"), numbered(1)).await;
    assert_eq!(report, crate::GroupSendReport::default());
}

/// A discarded channel no longer gets the group's messages; the others still do. Discarding
/// a non-member, or from an unknown group, is not an error.
pub async fn group_discard_stops_delivery(make: impl MakeLayer) {
    let layer = layer(&make, LayerConfig::default()).await;
    let g = group("test.discard");
    let stays = fresh_channel(&*layer).await;
    let leaves = fresh_channel(&*layer).await;
    group_add(&*layer, &g, &stays).await;
    group_add(&*layer, &g, &leaves).await;
    layer
        .group_discard(&g, &leaves)
        .await
        .expect("group_discard");
    layer
        .group_discard(&g, &leaves)
        .await
        .expect("second group_discard");
    layer
        .group_discard(&group("test.unknown"), &stays)
        .await
        .expect("discard from an unknown group");
    let report = group_send(&*layer, &g, numbered(1)).await;
    assert_eq!(report.delivered, 1);
    assert_eq!(number_of(&receive(&*layer, &stays).await), 1);
    assert_drained(&*layer, &leaves).await;
    layer
        .group_discard(&g, &stays)
        .await
        .expect("group_discard");
    assert_eq!(group_send(&*layer, &g, numbered(2)).await.delivered, 0);
    assert_drained(&*layer, &stays).await;
}

/// A channel takes exactly `capacity` undelivered messages; the next send fails with
/// `ChannelFull` naming it, and a receive makes room again.
pub async fn capacity_is_enforced(make: impl MakeLayer) {
    let layer = layer(&make, with_capacity(3)).await;
    let ch = fresh_channel(&*layer).await;
    for n in 0..3 {
        send(&*layer, &ch, numbered(n)).await;
    }
    match layer.send(&ch, numbered(3)).await {
        Err(LayerError::ChannelFull(full)) => assert_eq!(full, ch),
        other => panic!("expected ChannelFull at capacity, got {other:?}"),
    }
    assert_eq!(number_of(&receive(&*layer, &ch).await), 0);
    send(&*layer, &ch, numbered(4)).await;
    for n in [1, 2, 4] {
        assert_eq!(number_of(&receive(&*layer, &ch).await), n);
    }
    assert_drained(&*layer, &ch).await;
}

/// A group send skips a full member, reports it, and still reaches the others.
pub async fn group_send_reports_full_channels(make: impl MakeLayer) {
    let layer = layer(&make, with_capacity(2)).await;
    let g = group("test.full");
    let full = fresh_channel(&*layer).await;
    let open = fresh_channel(&*layer).await;
    group_add(&*layer, &g, &full).await;
    group_add(&*layer, &g, &open).await;
    send(&*layer, &full, numbered(1)).await;
    send(&*layer, &full, numbered(2)).await;
    let report = group_send(&*layer, &g, numbered(3)).await;
    assert_eq!(report.delivered, 1, "{report:?}");
    assert_eq!(report.full, vec![full.clone()]);
    assert_eq!(number_of(&receive(&*layer, &open).await), 3);
    assert_eq!(number_of(&receive(&*layer, &full).await), 1);
    assert_eq!(number_of(&receive(&*layer, &full).await), 2);
    assert_drained(&*layer, &full).await;
}

/// `group_send_all` gives every member the messages in order; a member that fills up gets
/// the ones before, is listed once as full, and the others still get everything; the report
/// counts deliveries. An empty run sends nothing.
pub async fn group_send_all_keeps_order_and_adds_up(make: impl MakeLayer) {
    let layer = layer(&make, with_capacity(3)).await;
    let g = group("test.all");
    let roomy = fresh_channel(&*layer).await;
    let tight = fresh_channel(&*layer).await;
    group_add(&*layer, &g, &roomy).await;
    group_add(&*layer, &g, &tight).await;
    send(&*layer, &tight, numbered(1)).await;
    send(&*layer, &tight, numbered(2)).await;
    let report = layer
        .group_send_all(&g, vec![numbered(10), numbered(11), numbered(12)])
        .await
        .expect("group_send_all");
    assert_eq!(report.delivered, 4, "{report:?}");
    assert_eq!(report.full, vec![tight.clone()]);
    for n in [10, 11, 12] {
        assert_eq!(number_of(&receive(&*layer, &roomy).await), n);
    }
    for n in [1, 2, 10] {
        assert_eq!(number_of(&receive(&*layer, &tight).await), n);
    }
    assert_drained(&*layer, &roomy).await;
    assert_drained(&*layer, &tight).await;
    let empty = layer
        .group_send_all(&g, Vec::new())
        .await
        .expect("an empty run");
    assert_eq!(empty, crate::GroupSendReport::default());
    assert_drained(&*layer, &roomy).await;
}

/// A message not received within `expiry` is gone and no longer takes up capacity. (Sleeps
/// `expiry + 1.1 s`, so a backend counting whole seconds passes too.)
pub async fn messages_expire(make: impl MakeLayer) {
    let config = LayerConfig {
        capacity: 1,
        expiry: Duration::from_secs(1),
        ..LayerConfig::default()
    };
    let layer = layer(&make, config).await;
    let ch = fresh_channel(&*layer).await;
    send(&*layer, &ch, numbered(1)).await;
    assert!(
        matches!(
            layer.send(&ch, numbered(2)).await,
            Err(LayerError::ChannelFull(_))
        ),
        "capacity 1 must refuse a second message"
    );
    sleep(Duration::from_millis(2100)).await;
    send(&*layer, &ch, numbered(3)).await;
    assert_eq!(
        number_of(&receive(&*layer, &ch).await),
        3,
        "the expired message must be gone"
    );
    assert_drained(&*layer, &ch).await;
}

/// A member not re-added within `group_expiry` leaves the group; re-adding restarts the
/// clock. (group_expiry 2 s: the stale member was added 3.1 s before the send, the refreshed
/// one 1.1 s before, so a backend counting whole seconds passes too.)
pub async fn group_membership_expires(make: impl MakeLayer) {
    let config = LayerConfig {
        group_expiry: Duration::from_secs(2),
        ..LayerConfig::default()
    };
    let layer = layer(&make, config).await;
    let g = group("test.expiring");
    let refreshed = fresh_channel(&*layer).await;
    let stale = fresh_channel(&*layer).await;
    group_add(&*layer, &g, &refreshed).await;
    group_add(&*layer, &g, &stale).await;
    sleep(Duration::from_millis(2000)).await;
    group_add(&*layer, &g, &refreshed).await;
    sleep(Duration::from_millis(1100)).await;
    let report = group_send(&*layer, &g, numbered(1)).await;
    assert_eq!(report.delivered, 1, "{report:?}");
    assert_eq!(number_of(&receive(&*layer, &refreshed).await), 1);
    assert_drained(&*layer, &stale).await;
}

/// `flush` drops queued messages and groups, and the layer works on afterwards.
pub async fn flush_drops_everything(make: impl MakeLayer) {
    let layer = layer(&make, LayerConfig::default()).await;
    let g = group("test.flushed");
    let ch = fresh_channel(&*layer).await;
    group_add(&*layer, &g, &ch).await;
    send(&*layer, &ch, numbered(1)).await;
    send(&*layer, &channel("test.flushed-plain"), numbered(2)).await;
    layer.flush().await.expect("flush");
    assert_nothing(&*layer, &ch).await;
    assert_drained(&*layer, &channel("test.flushed-plain")).await;
    assert_eq!(group_send(&*layer, &g, numbered(3)).await.delivered, 0);
    send(&*layer, &ch, numbered(4)).await;
    assert_eq!(number_of(&receive(&*layer, &ch).await), 4);
}

/// 8 tasks each send 250 messages to one channel while it is drained: all 2,000 arrive,
/// each sender's in its order.
pub async fn concurrent_senders_keep_per_sender_order(make: impl MakeLayer) {
    const SENDERS: u64 = 8;
    const EACH: u64 = 250;
    let layer = layer(&make, with_capacity((SENDERS * EACH) as usize)).await;
    let ch = fresh_channel(&*layer).await;
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let (layer, ch) = (layer.clone(), ch.clone());
        senders.push(tokio::spawn(async move {
            for seq in 0..EACH {
                send(&*layer, &ch, message(json!({"sender": sender, "seq": seq}))).await;
            }
        }));
    }
    let mut next: HashMap<u64, u64> = HashMap::new();
    for _ in 0..SENDERS * EACH {
        let m = receive(&*layer, &ch).await;
        let sender = m.get("sender").and_then(Value::as_u64).expect("sender");
        let seq = m.get("seq").and_then(Value::as_u64).expect("seq");
        let expected = next.entry(sender).or_insert(0);
        assert_eq!(seq, *expected, "sender {sender}: out of order or lost");
        *expected += 1;
    }
    for task in senders {
        task.await.expect("sender task");
    }
    assert!(next.values().all(|n| *n == EACH), "{next:?}");
    assert_drained(&*layer, &ch).await;
}

/// 100 groups, each with its own member plus one channel in all of them: every send reaches
/// exactly its group.
pub async fn many_groups(make: impl MakeLayer) {
    const GROUPS: usize = 100;
    let layer = layer(&make, with_capacity(2 * GROUPS)).await;
    let hub = fresh_channel(&*layer).await;
    let mut own = Vec::new();
    for i in 0..GROUPS {
        let g = group(&format!("test.many-{i}"));
        let ch = fresh_channel(&*layer).await;
        group_add(&*layer, &g, &ch).await;
        group_add(&*layer, &g, &hub).await;
        own.push(ch);
    }
    for i in 0..GROUPS {
        let report = group_send(&*layer, &group(&format!("test.many-{i}")), numbered(i)).await;
        assert_eq!(report.delivered, 2, "group {i}: {report:?}");
    }
    for (i, ch) in own.iter().enumerate() {
        assert_eq!(number_of(&receive(&*layer, ch).await), i as u64);
        assert_drained(&*layer, ch).await;
    }
    for i in 0..GROUPS {
        assert_eq!(number_of(&receive(&*layer, &hub).await), i as u64);
    }
    assert_drained(&*layer, &hub).await;
}

/// `close_channel` drops the channel's queued messages and all its memberships, leaves the
/// other members alone, and the name can be used again.
pub async fn close_channel_forgets_messages_and_groups(make: impl MakeLayer) {
    let layer = layer(&make, LayerConfig::default()).await;
    let (g1, g2) = (group("test.close-1"), group("test.close-2"));
    let closed = fresh_channel(&*layer).await;
    let other = fresh_channel(&*layer).await;
    group_add(&*layer, &g1, &closed).await;
    group_add(&*layer, &g2, &closed).await;
    group_add(&*layer, &g1, &other).await;
    send(&*layer, &closed, numbered(1)).await;
    send(&*layer, &closed, numbered(2)).await;
    layer.close_channel(&closed).await.expect("close_channel");
    layer
        .close_channel(&channel("test.never-used"))
        .await
        .expect("closing an unknown channel");
    assert_eq!(group_send(&*layer, &g1, numbered(3)).await.delivered, 1);
    assert_eq!(group_send(&*layer, &g2, numbered(4)).await.delivered, 0);
    assert_eq!(number_of(&receive(&*layer, &other).await), 3);
    assert_drained(&*layer, &closed).await;
    send(&*layer, &closed, numbered(5)).await;
    assert_eq!(number_of(&receive(&*layer, &closed).await), 5);
}

/// Receives cancelled by a timeout lose nothing: first one on an empty channel, then many
/// cut short at random points while a sender keeps sending.
pub async fn receive_is_cancel_safe(make: impl MakeLayer) {
    const MESSAGES: usize = 200;
    let layer = layer(&make, with_capacity(MESSAGES)).await;
    let ch = fresh_channel(&*layer).await;
    assert!(
        timeout(Duration::from_millis(50), layer.receive(&ch))
            .await
            .is_err()
    );
    send(&*layer, &ch, numbered(1_000)).await;
    assert_eq!(number_of(&receive(&*layer, &ch).await), 1_000);

    let sender = {
        let (layer, ch) = (layer.clone(), ch.clone());
        tokio::spawn(async move {
            for n in 0..MESSAGES {
                send(&*layer, &ch, numbered(n)).await;
                if n % 10 == 0 {
                    sleep(Duration::from_millis(2)).await;
                }
            }
        })
    };
    // Cancel points from "before anything happened" to "well into a round trip".
    let budgets = [0, 1, 3, 7, 15, 30].map(Duration::from_millis);
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for attempt in 0.. {
        if got.len() == MESSAGES {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {MESSAGES} received",
            got.len()
        );
        if let Ok(result) = timeout(budgets[attempt % budgets.len()], layer.receive(&ch)).await {
            got.push(number_of(&result.expect("receive")));
        }
    }
    sender.await.expect("sender task");
    let expected: Vec<u64> = (0..MESSAGES as u64).collect();
    assert_eq!(
        got, expected,
        "messages lost, duplicated or reordered by cancelled receives"
    );
    assert_drained(&*layer, &ch).await;
}

/// `new_channel` returns valid names, distinct from each other, that work as channels.
pub async fn new_channel_names_are_valid_and_unique(make: impl MakeLayer) {
    let layer = layer(&make, LayerConfig::default()).await;
    let mut names = BTreeSet::new();
    for _ in 0..200 {
        let ch = fresh_channel(&*layer).await;
        assert_eq!(ChannelName::parse(ch.as_str()).expect("a valid name"), ch);
        assert!(names.insert(ch.clone()), "{ch} returned twice");
    }
    let ch = names.first().expect("a name").clone();
    send(&*layer, &ch, numbered(1)).await;
    assert_eq!(number_of(&receive(&*layer, &ch).await), 1);
}

/// Names Channels refuses cannot be built, so no layer call can receive them; the longest
/// valid names work end to end.
pub async fn invalid_names_are_refused(make: impl MakeLayer) {
    for bad in [
        "",
        "has space",
        "a!b!c",
        "!suffix-only",
        "ünïcode",
        "tab\there",
        &"c".repeat(100),
    ] {
        assert!(
            matches!(
                ChannelName::parse(bad),
                Err(LayerError::InvalidName {
                    kind: "channel",
                    ..
                })
            ),
            "channel name {bad:?} accepted"
        );
    }
    for bad in ["", "a!b", "has space", "slash/no", &"g".repeat(100)] {
        assert!(
            matches!(
                GroupName::parse(bad),
                Err(LayerError::InvalidName { kind: "group", .. })
            ),
            "group name {bad:?} accepted"
        );
    }
    let layer = layer(&make, LayerConfig::default()).await;
    let long_channel = channel(&format!("test.{}", "c".repeat(94)));
    let long_specific = channel(&format!("test.specific!{}", "s".repeat(85)));
    let long_group = group(&format!("test.{}", "g".repeat(94)));
    for ch in [&long_channel, &long_specific] {
        group_add(&*layer, &long_group, ch).await;
    }
    assert_eq!(
        group_send(&*layer, &long_group, numbered(1))
            .await
            .delivered,
        2
    );
    for ch in [&long_channel, &long_specific] {
        assert_eq!(number_of(&receive(&*layer, ch).await), 1);
    }
}

/// Nested maps, arrays, integers at the edges, floats, strings, booleans and null come back
/// exactly as sent, through `send` and through `group_send`.
pub async fn message_content_survives(make: impl MakeLayer) {
    let layer = layer(&make, LayerConfig::default()).await;
    let content = json!({
        "text": "héllo ✓ \"quoted\" \\ \n new line",
        "empty": "",
        "small": -42,
        "zero": 0,
        "min": i64::MIN,
        "max": u64::MAX,
        "float": 1.5,
        "negative_float": -1234.0625,
        "yes": true,
        "no": false,
        "nothing": null,
        "list": [1, "two", [3.25, null], {"k": "v"}],
        "empty_list": [],
        "empty_map": {},
        "nested": {"a": {"b": {"c": [true, false, {"d": "deep"}]}}},
    });
    let sent = message(content);
    let ch = fresh_channel(&*layer).await;
    send(&*layer, &ch, sent.clone()).await;
    let got = receive(&*layer, &ch).await;
    assert_eq!(got, sent, "through send");
    assert_eq!(got.kind(), "test.message");

    let g = group("test.content");
    group_add(&*layer, &g, &ch).await;
    group_send(&*layer, &g, sent.clone()).await;
    assert_eq!(receive(&*layer, &ch).await, sent, "through group_send");
}
