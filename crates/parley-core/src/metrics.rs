//! What the engine reports, through the `metrics` facade: nothing is recorded until the
//! process installs a recorder (`parley-server` installs a Prometheus one; an embedder may
//! install its own). Handles are made once and kept, so counting on the hot path is one
//! atomic add. Labels are frame types, budgets and reasons — never a user's or a room's name.
//!
//! Names (also in `docs/operations.md`):
//! - `parley_sockets_open` (gauge): sessions open on this process.
//! - `parley_frames_in_total{type}`: client frames handled, by type (`invalid` for frames that
//!   did not decode).
//! - `parley_frames_out_total{type}`: replies the engine made, by frame type.
//! - `parley_deliveries_total`: frames delivered to clients from the layer (fan-out).
//! - `parley_messages_stored_total`: messages newly stored.
//! - `parley_store_commit_seconds` (histogram): storing a run of sends, from the engine's side.
//! - `parley_layer_send_seconds` (histogram), `parley_layer_failures_total{op}`: broadcasts.
//! - `parley_closes_total{reason}`: connections the engine or the loop closed, by reason.
//! - `parley_rate_limited_total{budget}`: frames (and room creations) refused by a budget.
//! - `parley_presence_online` (histogram): users online in a room when someone joins it.

use crate::limits::Budget;
use crate::session::CloseReason;
use metrics::{Counter, Gauge, Histogram};
use parley_domain::protocol::FrameType;
use std::sync::LazyLock;

/// Every handle the engine uses.
pub(crate) struct Metrics {
    pub(crate) sockets_open: Gauge,
    frames_in: Vec<Counter>,
    pub(crate) frames_in_invalid: Counter,
    pub(crate) deliveries: Counter,
    pub(crate) messages_stored: Counter,
    pub(crate) store_commit_seconds: Histogram,
    pub(crate) layer_send_seconds: Histogram,
    pub(crate) layer_failures_broadcast: Counter,
    pub(crate) layer_failures_event: Counter,
    rate_limited: Vec<Counter>,
    closes: Vec<(CloseReason, Counter)>,
    pub(crate) presence_online: Histogram,
    frames_out: Vec<(&'static str, Counter)>,
}

/// Every close reason, for the labels.
const CLOSE_REASONS: [CloseReason; 13] = [
    CloseReason::Normal,
    CloseReason::ShuttingDown,
    CloseReason::ProtocolError,
    CloseReason::InvalidUtf8,
    CloseReason::JoinRefused,
    CloseReason::Removed,
    CloseReason::TooLarge,
    CloseReason::LayerFailed,
    CloseReason::SlowConsumer,
    CloseReason::PingTimeout,
    CloseReason::Expired,
    CloseReason::SignedOut,
    CloseReason::AccountDisabled,
];

/// The label of a close reason.
const fn close_label(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::Normal => "normal",
        CloseReason::ShuttingDown => "shutting_down",
        CloseReason::ProtocolError => "protocol_error",
        CloseReason::InvalidUtf8 => "invalid_utf8",
        CloseReason::JoinRefused => "join_refused",
        CloseReason::Removed => "removed",
        CloseReason::TooLarge => "too_large",
        CloseReason::LayerFailed => "layer_failed",
        CloseReason::SlowConsumer => "slow_consumer",
        CloseReason::PingTimeout => "ping_timeout",
        CloseReason::Expired => "expired",
        CloseReason::SignedOut => "signed_out",
        CloseReason::AccountDisabled => "account_disabled",
    }
}

impl Metrics {
    fn new() -> Self {
        let budget_label = |b: Budget| match b {
            Budget::Messages => "messages",
            Budget::Joins => "joins",
            Budget::Typing => "typing",
            Budget::History => "history",
            Budget::Read => "read",
            Budget::Signals => "signals",
            Budget::Pings => "pings",
            Budget::Renewals => "renewals",
            Budget::Reactions => "reactions",
            Budget::RoomCreations => "room_creations",
        };
        let closes = CLOSE_REASONS
            .iter()
            .map(|&r| {
                (
                    r,
                    metrics::counter!("parley_closes_total", "reason" => close_label(r)),
                )
            })
            .collect();
        Self {
            sockets_open: metrics::gauge!("parley_sockets_open"),
            frames_in: FrameType::ALL
                .iter()
                .map(|t| metrics::counter!("parley_frames_in_total", "type" => t.as_str()))
                .collect(),
            frames_in_invalid: metrics::counter!("parley_frames_in_total", "type" => "invalid"),
            deliveries: metrics::counter!("parley_deliveries_total"),
            messages_stored: metrics::counter!("parley_messages_stored_total"),
            store_commit_seconds: metrics::histogram!("parley_store_commit_seconds"),
            layer_send_seconds: metrics::histogram!("parley_layer_send_seconds"),
            layer_failures_broadcast: metrics::counter!("parley_layer_failures_total", "op" => "broadcast"),
            layer_failures_event: metrics::counter!("parley_layer_failures_total", "op" => "event"),
            rate_limited: Budget::ALL
                .iter()
                .map(|&b| metrics::counter!("parley_rate_limited_total", "budget" => budget_label(b)))
                .collect(),
            closes,
            presence_online: metrics::histogram!("parley_presence_online"),
            frames_out: parley_domain::protocol::ServerFrame::TYPES
                .iter()
                .map(|&t| (t, metrics::counter!("parley_frames_out_total", "type" => t)))
                .collect(),
        }
    }

    /// A client frame of `frame` type was handled.
    pub(crate) fn frame_in(&self, frame: FrameType) {
        if let Some(counter) = FrameType::ALL
            .iter()
            .position(|&t| t == frame)
            .and_then(|i| self.frames_in.get(i))
        {
            counter.increment(1);
        }
    }

    /// A reply of type `kind` (a server frame's `type`) was made.
    pub(crate) fn frame_out(&self, kind: &str) {
        if let Some((_, counter)) = self.frames_out.iter().find(|(t, _)| *t == kind) {
            counter.increment(1);
        }
    }

    /// A frame was refused by `budget`.
    pub(crate) fn rate_limited(&self, budget: Budget) {
        if let Some(counter) = Budget::ALL
            .iter()
            .position(|&b| b == budget)
            .and_then(|i| self.rate_limited.get(i))
        {
            counter.increment(1);
        }
    }

    /// A connection closed for `reason`.
    pub(crate) fn closed(&self, reason: CloseReason) {
        if let Some((_, counter)) = self.closes.iter().find(|(r, _)| *r == reason) {
            counter.increment(1);
        }
    }
}

/// The handles, made at first use: install the recorder before starting the engine.
pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Describes every metric to the installed recorder (its `# HELP` lines). The binary calls
/// it once after installing the recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!("parley_sockets_open", "chat sessions open on this process");
    describe_counter!("parley_frames_in_total", "client frames handled, by type");
    describe_counter!("parley_frames_out_total", "replies made, by frame type");
    describe_counter!(
        "parley_deliveries_total",
        "frames delivered to clients from the channel layer"
    );
    describe_counter!("parley_messages_stored_total", "messages newly stored");
    describe_histogram!(
        "parley_store_commit_seconds",
        metrics::Unit::Seconds,
        "storing a run of sends, seen from the engine"
    );
    describe_histogram!(
        "parley_layer_send_seconds",
        metrics::Unit::Seconds,
        "one broadcast to a room's group"
    );
    describe_counter!(
        "parley_layer_failures_total",
        "channel layer sends that failed"
    );
    describe_counter!("parley_closes_total", "connections closed, by reason");
    describe_counter!(
        "parley_rate_limited_total",
        "frames and room creations refused by a per-user budget"
    );
    describe_histogram!(
        "parley_presence_online",
        "users online in a room when someone joins it"
    );
}
