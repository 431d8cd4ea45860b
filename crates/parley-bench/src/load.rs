//! The load: provisioning, connecting, sending under a window, tracking every delivery.
//!
//! Every message body is `~<µs since start>~<sender index>~<sequence>~`: the receiver reads
//! the time the message was due from it (one clock, one process) and records the end-to-end
//! latency. Every client, the sender included, must receive every message of its room once,
//! and a sender's messages in the order it sent them: `track` follows each (member, message)
//! pair while the message is in flight, so losses, duplicates and order violations are
//! counted member by member (never from totals) and each fails the run.
//!
//! The sender's own copy is reported apart from the other members' (*fan-out*) deliveries:
//! for Parley it is the acknowledgement (sent once the message is stored), for Django and the
//! bare reference the broadcast's echo. Throughput and the main latency figures are fan-out
//! only, so both kinds of server are measured on the same work.
//!
//! The send window is end to end and the same for every target: a message stays in its
//! sender's window until every member of the room (the sender included) has received it
//! (duplicates do not count). No target can be driven past the pace of its slowest receiver,
//! and every server queue stays bounded by senders × window per room.
//!
//! Paced runs (`--rate`) give each message a due time (start + sequence / rate) and measure
//! latency from it, not from when the window let it go: a server that stalls the window is
//! charged for the messages it held back (no coordinated omission). Unpaced runs send each
//! message as soon as the window allows and measure from then.

mod track;

use crate::http::HttpClient;
use crate::procfs::{Rss, rss_sum};
use anyhow::{Context, Result, bail};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use track::{Arrival, Tracker};

/// The password of every benchmark account.
const PASSWORD: &str = "bench-password-1";
/// Latency histograms are sharded so receivers on different threads rarely meet on a lock.
const SHARDS: usize = 16;
/// Highest latency recorded, µs (longer ones are clamped): one minute.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Which server and protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Parley: accounts and tokens, `/ws` with `join` and `send` frames.
    Parley,
    /// The Django Channels tutorial protocol: `{"message","username"}` on `/ws/chat/{room}/`.
    Django,
    /// The bare fan-out reference (same frames as Django).
    Bare,
    /// Parley's Django-tutorial endpoint: accounts and tokens like `parley`, then
    /// `/ws/chat/{room}/?token=…&frames=all` (connected once `joined` arrives) and the
    /// tutorial's frames; the first client of a room creates it (provisioning creates none).
    Tutorial,
}

/// How clients are spread over rooms and who sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `rooms` public rooms; client i in room i mod rooms; clients 0..senders send.
    Fanout,
    /// Pairs of clients in direct (1:1) rooms; every client sends.
    Direct,
}

/// What to run.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct Plan {
    /// Scenario label (copied into the report).
    #[arg(long, default_value = "adhoc")]
    pub scenario: String,
    /// Server protocol.
    #[arg(long, value_enum, default_value = "parley")]
    pub target: Target,
    /// Server addresses (`127.0.0.1:8080`); clients are split across them round-robin.
    /// Provisioning goes to the first. Loopback only.
    #[arg(long = "server", required = true)]
    pub servers: Vec<String>,
    /// Server process ids, for memory (`/proc/<pid>/status`).
    #[arg(long = "pid")]
    pub pids: Vec<u32>,
    /// WebSocket clients.
    #[arg(long, default_value_t = 200)]
    pub clients: usize,
    /// Rooms (fanout layout; the direct layout has clients / 2).
    #[arg(long, default_value_t = 20)]
    pub rooms: usize,
    /// Room layout.
    #[arg(long, value_enum, default_value = "fanout")]
    pub layout: Layout,
    /// Senders (fanout layout; the direct layout makes everyone a sender). 0: idle.
    #[arg(long, default_value_t = 20)]
    pub senders: usize,
    /// Messages per sender.
    #[arg(long, default_value_t = 500)]
    pub messages: usize,
    /// Messages a sender may have in flight (sent, not yet received by every room member).
    #[arg(long, default_value_t = 8)]
    pub window: usize,
    /// Messages per second per sender (0: as fast as the window allows).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Longest sending phase, seconds: senders stop early if it runs out.
    #[arg(long, default_value_t = 60.0)]
    pub max_send_secs: f64,
    /// Longest wait for the last deliveries after sending stops, seconds.
    #[arg(long, default_value_t = 20.0)]
    pub drain_secs: f64,
    /// Longest connect phase (all clients), seconds.
    #[arg(long, default_value_t = 300.0)]
    pub connect_secs: f64,
    /// Connections opened at once.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Seconds to wait after connecting before measuring idle memory and sending.
    #[arg(long, default_value_t = 2.0)]
    pub settle_secs: f64,
    /// Account name prefix (Parley); accounts `<prefix><i>` are created or reused.
    #[arg(long, default_value = "bench")]
    pub user_prefix: String,
    /// Parley: open authenticated connections without joining a room (idle memory of the
    /// connection alone).
    #[arg(long)]
    pub no_join: bool,
    /// Account name offset: client i is user `<prefix><i + offset>`.
    #[arg(long, default_value_t = 0)]
    pub user_offset: usize,
    /// Open every connection in one burst (a reconnect storm: with `--connect-concurrency`
    /// at least `--clients`, all at once) instead of two halves with a memory reading
    /// between them; sending starts `--settle-secs` after the last connection is open.
    #[arg(long)]
    pub one_burst: bool,
    /// Times a client tries its handshake again after a refusal for want of capacity (HTTP
    /// 503 or 408) or a failed connection, waiting as the web and JavaScript clients do: a
    /// delay drawn between half and all of a ceiling that doubles from
    /// [`RETRY_MIN`] to [`RETRY_MAX`]. A client still refused after these, or after the connect
    /// phase's end, counts as failed. 0: never retry.
    #[arg(long, default_value_t = 8)]
    pub connect_retries: u32,
    /// Local addresses the clients connect from (loopback addresses such as 127.0.0.2),
    /// client i from the (i mod n)-th: each address has its own ~28,000 ephemeral ports, which a
    /// storm of retried handshakes can use up (their ports wait in TIME_WAIT). Repeat the flag
    /// for several; none: the system's choice.
    #[arg(long = "source-addr")]
    pub source_addrs: Vec<std::net::IpAddr>,
}

/// What a run measured. One JSON line of it is the machine-readable output.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The plan, as run.
    pub plan: Plan,
    /// True when nothing was lost, duplicated, late or unexpected, no client failed and no
    /// error frame arrived.
    pub ok: bool,
    /// Seconds spent creating accounts, tokens and rooms (untimed for the figures).
    pub provision_secs: f64,
    /// Seconds to open every connection (and join, for Parley).
    pub connect_secs: f64,
    /// Per-connection open time, ms (TCP + handshake + join): p50, p99, max.
    pub connect_ms: [f64; 3],
    /// Connections that failed to open (after their retries).
    pub connect_failures: usize,
    /// Handshakes tried again (see `--connect-retries`), all clients together.
    pub connect_retries: u64,
    /// Clients that needed at least one retry, connected in the end or not.
    pub clients_retried: u64,
    /// Why handshakes were retried: (HTTP 503, HTTP 408, connection failed).
    pub retry_causes: RetryCauses,
    /// Messages sent.
    pub sent: u64,
    /// Fan-out deliveries expected: Σ sent × (room size − 1), the sender's own copy apart.
    pub expected: u64,
    /// Fan-out deliveries received (first copies only).
    pub received: u64,
    /// Fan-out deliveries that never came, member by member.
    pub lost: u64,
    /// Senders' own copies received (Parley: acknowledgements; Django and bare: the echo),
    /// one expected per message sent.
    pub acks: u64,
    /// Messages whose sender never got its own copy back.
    pub acks_lost: u64,
    /// Copies of a message a member already had (own copies and fan-out alike).
    pub duplicates: u64,
    /// First copies that reached a member after a later message of the same sender.
    pub order_violations: u64,
    /// Message frames that were no message this run sent to that member.
    pub unexpected: u64,
    /// Error frames received (Parley), or connections that broke during the run.
    pub errors: u64,
    /// Seconds from the first send to the last delivery.
    pub elapsed_secs: f64,
    /// Fan-out deliveries per second over `elapsed_secs`.
    pub deliveries_per_sec: f64,
    /// Messages sent per second.
    pub messages_per_sec: f64,
    /// What latency is measured from: `send` (when the window let the message go) or `due`
    /// (paced runs: when the message was due).
    pub latency_from: &'static str,
    /// Fan-out latency, ms: p50, p90, p99, p99.9, max, mean.
    pub latency_ms: Latency,
    /// Latency of the sender's own copy, ms.
    pub ack_latency_ms: Latency,
    /// Fan-out p99, ms, of the messages sent in each second of the send phase (index 0: the
    /// first second): how long a backlog from the connect phase lasts.
    pub p99_by_second_ms: Vec<f64>,
    /// Seconds from the first send until the fan-out p99 stays at or under
    /// [`RECOVERED_P99_MS`] for every later second; `None` if it never does.
    pub recovery_secs: Option<u64>,
    /// Server memory before the WebSocket clients connected, KiB (summed over pids).
    pub rss_before_kb: u64,
    /// Server memory with every client connected and idle, KiB.
    pub rss_connected_kb: u64,
    /// (rss_connected − rss_before) / clients, bytes.
    pub bytes_per_connection: u64,
    /// Server memory with the first half of the clients connected, KiB.
    pub rss_half_kb: u64,
    /// (rss_connected − rss_half) / clients of the second half, bytes: the marginal cost of
    /// a connection, without the server's start-up costs.
    pub marginal_bytes_per_connection: u64,
    /// The server's peak resident memory (VmHWM) at the end, KiB.
    pub peak_rss_kb: u64,
    /// What went wrong, if anything.
    pub notes: Vec<String>,
}

/// Why handshakes were tried again.
#[derive(Debug, Default, Serialize)]
pub struct RetryCauses {
    /// `503 Service Unavailable` (the server could not serve it now, e.g. its database pool).
    pub unavailable: u64,
    /// `408 Request Timeout` (not answered within the server's request deadline).
    pub timeout: u64,
    /// The connection failed or was closed before the handshake's answer.
    pub connection: u64,
}

/// First retry ceiling (the JavaScript client's `backoffMinMs`).
pub const RETRY_MIN: Duration = Duration::from_millis(500);
/// Largest retry ceiling (the JavaScript client's `backoffMaxMs`).
pub const RETRY_MAX: Duration = Duration::from_secs(8);

/// The wait before retry `attempt` (0 for the first): between half and all of a ceiling
/// that doubles from [`RETRY_MIN`] up to [`RETRY_MAX`], so that clients refused together do
/// not come back together.
fn retry_delay(attempt: u32) -> Duration {
    let ceiling = RETRY_MIN
        .saturating_mul(1u32 << attempt.min(16))
        .min(RETRY_MAX);
    ceiling / 2 + ceiling.mul_f64(rand::random::<f64>() / 2.0)
}

/// Why a failed handshake may be tried again, if it may: refused for want of capacity or
/// deadline (503, 408), or the connection failed before its answer. Anything else (401, a
/// refused join, a bad URL) is the answer.
fn retry_cause(e: &anyhow::Error) -> Option<Cause> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    if e.downcast_ref::<std::io::Error>().is_some() {
        return Some(Cause::Connection);
    }
    match e.downcast_ref::<WsError>()? {
        WsError::Http(resp) => match resp.status().as_u16() {
            503 => Some(Cause::Unavailable),
            408 => Some(Cause::Timeout),
            _ => None,
        },
        WsError::Io(_)
        | WsError::ConnectionClosed
        | WsError::Protocol(
            ProtocolError::HandshakeIncomplete | ProtocolError::ResetWithoutClosingHandshake,
        ) => Some(Cause::Connection),
        _ => None,
    }
}

/// One cause of [`RetryCauses`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Unavailable,
    Timeout,
    Connection,
}

/// The retries of the connect phase, counted by every client.
#[derive(Debug, Default)]
struct Retries {
    total: AtomicU64,
    clients: AtomicU64,
    unavailable: AtomicU64,
    timeout: AtomicU64,
    connection: AtomicU64,
}

impl Retries {
    fn count(&self, cause: Cause, first: bool) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if first {
            self.clients.fetch_add(1, Ordering::Relaxed);
        }
        let counter = match cause {
            Cause::Unavailable => &self.unavailable,
            Cause::Timeout => &self.timeout,
            Cause::Connection => &self.connection,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn causes(&self) -> RetryCauses {
        RetryCauses {
            unavailable: self.unavailable.load(Ordering::Relaxed),
            timeout: self.timeout.load(Ordering::Relaxed),
            connection: self.connection.load(Ordering::Relaxed),
        }
    }
}

/// The address client `i` connects from: the `--source-addr` list taken in turn.
fn source_addr(addrs: &[std::net::IpAddr], i: usize) -> Option<std::net::IpAddr> {
    (!addrs.is_empty()).then(|| addrs[i % addrs.len()])
}

/// [`open`], tried again after a refusal [`retry_cause`] allows, up to `retries` times and
/// never past `deadline`; each retry counted in `counts`.
#[allow(clippy::too_many_arguments)] // one client's whole connect: all of it is needed
async fn open_retrying(
    target: Target,
    server: &str,
    local: Option<std::net::IpAddr>,
    token: &str,
    room: &str,
    join: bool,
    retries: u32,
    deadline: Instant,
    counts: &Retries,
) -> Result<Ws> {
    let mut attempt = 0;
    loop {
        let e = match open(target, server, local, token, room, join).await {
            Ok(ws) => return Ok(ws),
            Err(e) => e,
        };
        let Some(cause) = retry_cause(&e) else {
            return Err(e);
        };
        let wait = retry_delay(attempt);
        if attempt >= retries || Instant::now() + wait >= deadline {
            return Err(e.context(format!("after {attempt} retries")));
        }
        counts.count(cause, attempt == 0);
        attempt += 1;
        tokio::time::sleep(wait).await;
    }
}

/// The fan-out p99 (ms) under which a second of sending counts as recovered from a storm.
pub const RECOVERED_P99_MS: f64 = 100.0;

/// Shards of the per-second histograms (fewer than [`SHARDS`]: there is one per second).
const SECOND_SHARDS: usize = 4;

/// Latency percentiles, ms.
#[derive(Debug, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// Counters shared by every client task.
struct Shared {
    target: Target,
    t0: Instant,
    errors: AtomicU64,
    /// µs since t0 of the latest first delivery.
    last_delivery_us: AtomicU64,
    /// Who has which message in flight; the counts.
    tracker: Tracker,
    /// Fan-out latency, sharded by receiver.
    hist: Vec<Mutex<Histogram<u64>>>,
    /// Latency of senders' own copies, sharded by sender.
    ack_hist: Vec<Mutex<Histogram<u64>>>,
    /// Fan-out latency by the second (since `t0`) the message was sent in, sharded by
    /// receiver; grown on demand.
    by_second: Vec<Mutex<Vec<Histogram<u64>>>>,
    /// Per client: its send window (senders only use theirs).
    windows: Vec<Arc<Semaphore>>,
}

impl Shared {
    fn new(target: Target, room_of: &[usize], window: usize) -> Result<Self> {
        let histograms = || {
            (0..SHARDS)
                .map(|_| Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).map(Mutex::new))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            target,
            t0: Instant::now(),
            errors: AtomicU64::new(0),
            last_delivery_us: AtomicU64::new(0),
            tracker: Tracker::new(room_of),
            hist: histograms()?,
            ack_hist: histograms()?,
            by_second: (0..SECOND_SHARDS).map(|_| Mutex::new(Vec::new())).collect(),
            windows: room_of
                .iter()
                .map(|_| Arc::new(Semaphore::new(window.max(1))))
                .collect(),
        })
    }

    /// Records a fan-out latency under the second its message was sent in.
    fn record_by_second(&self, me: usize, due_us: u64, latency: u64) {
        let Ok(second) = usize::try_from(due_us / 1_000_000) else {
            return;
        };
        let mut seconds = self.by_second[me % SECOND_SHARDS].lock();
        while seconds.len() <= second {
            // Two significant digits: one histogram per second per shard stays small.
            match Histogram::new_with_bounds(1, MAX_LATENCY_US, 2) {
                Ok(h) => seconds.push(h),
                Err(_) => return,
            }
        }
        let _ = seconds[second].record(latency);
    }

    /// Fan-out p99 (ms) per second of sending, from the second holding `start_us` on.
    fn p99_by_second(&self, start_us: u64) -> Result<Vec<f64>> {
        let first = usize::try_from(start_us / 1_000_000)?;
        let mut merged: Vec<Histogram<u64>> = Vec::new();
        for shard in &self.by_second {
            for (second, h) in shard.lock().iter().enumerate().skip(first) {
                let i = second - first;
                while merged.len() <= i {
                    merged.push(Histogram::new_with_bounds(1, MAX_LATENCY_US, 2)?);
                }
                merged[i].add(h)?;
            }
        }
        Ok(merged
            .iter()
            .map(|h| h.value_at_quantile(0.99) as f64 / 1000.0)
            .collect())
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// One text frame arrived at client `me`; returns true when it completed its message
    /// (every member has it: the sender's window reopens).
    fn on_text(&self, me: usize, text: &str) -> bool {
        if matches!(self.target, Target::Parley | Target::Tutorial)
            && text.starts_with(r#"{"type":"error""#)
        {
            self.errors.fetch_add(1, Ordering::Relaxed);
            tracing_note(text);
            return false;
        }
        if self.target == Target::Parley && !is_message_frame(text) {
            return false;
        }
        let Some((due_us, sender, seq)) = parse_body(text) else {
            return false;
        };
        let Arrival::First { own, complete, .. } = self.tracker.arrived(me, sender, seq) else {
            return false;
        };
        let now = self.now_us();
        let latency = now.saturating_sub(due_us).clamp(1, MAX_LATENCY_US);
        let hist = if own { &self.ack_hist } else { &self.hist };
        let _ = hist[me % SHARDS].lock().record(latency);
        if !own {
            self.record_by_second(me, due_us, latency);
        }
        self.last_delivery_us.fetch_max(now, Ordering::Relaxed);
        if complete && let Some(w) = self.windows.get(sender) {
            w.add_permits(1);
        }
        complete
    }
}

/// Percentiles of the histogram shards merged.
fn latency(shards: &[Mutex<Histogram<u64>>]) -> Result<Latency> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3)?;
    for h in shards {
        hist.add(&*h.lock())?;
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(if hist.is_empty() {
        Latency::default()
    } else {
        Latency {
            p50: ms(hist.value_at_quantile(0.5)),
            p90: ms(hist.value_at_quantile(0.9)),
            p99: ms(hist.value_at_quantile(0.99)),
            p999: ms(hist.value_at_quantile(0.999)),
            max: ms(hist.max()),
            mean: hist.mean() / 1000.0,
        }
    })
}

/// A Parley `message` frame. The sender's own copy is serialized from the frame type (`type`
/// first); fanned-out copies are rendered once from a JSON value, whose keys are sorted
/// (`type` last).
fn is_message_frame(text: &str) -> bool {
    text.starts_with(r#"{"type":"message""#) || text.ends_with(r#""type":"message"}"#)
}

/// Error frames are rare (a failed run); show the first few on stderr.
fn tracing_note(text: &str) {
    static SHOWN: AtomicU64 = AtomicU64::new(0);
    if SHOWN.fetch_add(1, Ordering::Relaxed) < 5 {
        let clipped: String = text.chars().take(300).collect();
        #[allow(clippy::print_stderr)]
        {
            eprintln!("[bench] error frame: {clipped}");
        }
    }
}

/// `(send time µs, sender index, sequence)` from a frame holding `~t~s~n~`.
fn parse_body(text: &str) -> Option<(u64, usize, u64)> {
    let start = text.find('~')? + 1;
    let mut parts = text[start..].splitn(4, '~');
    let t = parts.next()?.parse().ok()?;
    let s = parts.next()?.parse().ok()?;
    let n = parts.next()?.parse().ok()?;
    Some((t, s, n))
}

/// One client's room: its name for this target, and whether the client sends.
struct Seat {
    room: String,
    sender: bool,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[allow(clippy::print_stderr)]
fn progress(msg: &str) {
    eprintln!("[bench] {msg}");
}

/// Runs a plan to the end and reports.
pub async fn run(plan: Plan) -> Result<Report> {
    for s in &plan.servers {
        let host = s.rsplit_once(':').map(|(h, _)| h).unwrap_or(s);
        if !(host.starts_with("127.") || host == "localhost" || host == "[::1]") {
            bail!("{s}: only loopback targets are allowed");
        }
    }
    if plan.clients == 0 {
        bail!("--clients must be at least 1");
    }
    if plan.target == Target::Tutorial && plan.layout == Layout::Direct {
        bail!("the tutorial endpoint has no direct rooms: use --layout fanout");
    }
    let mut notes = Vec::new();
    let n = plan.clients;
    let (room_of, room_count): (Vec<usize>, usize) = match plan.layout {
        Layout::Fanout => {
            let r = plan.rooms.clamp(1, n);
            ((0..n).map(|i| i % r).collect(), r)
        }
        Layout::Direct => ((0..n).map(|i| i / 2).collect(), n.div_ceil(2)),
    };
    let is_sender = |i: usize| match plan.layout {
        Layout::Fanout => i < plan.senders,
        Layout::Direct => plan.senders > 0,
    };

    // Provisioning (untimed).
    let t_prov = Instant::now();
    let (tokens, room_names) = match plan.target {
        Target::Parley | Target::Tutorial => provision(&plan, room_count).await?,
        Target::Django | Target::Bare => {
            let prefix = match plan.layout {
                Layout::Fanout => "bench",
                Layout::Direct => "dm",
            };
            (
                vec![String::new(); n],
                (0..room_count).map(|r| format!("{prefix}{r}")).collect(),
            )
        }
    };
    let provision_secs = t_prov.elapsed().as_secs_f64();
    progress(&format!("provisioned in {provision_secs:.1}s"));
    let seats: Vec<Seat> = (0..n)
        .map(|i| Seat {
            room: room_names[room_of[i]].clone(),
            sender: is_sender(i),
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_sum(&plan.pids);
    let shared = Arc::new(Shared::new(plan.target, &room_of, plan.window)?);

    // Connect phase.
    // In two halves, with the server's memory measured between them: the second half's cost
    // per connection is the marginal one, free of start-up costs (pools, caches, arenas).
    let gate = Arc::new(Semaphore::new(plan.connect_concurrency.max(1)));
    let deadline = Instant::now() + Duration::from_secs_f64(plan.connect_secs);
    let mut sockets: Vec<Option<(Sink, tokio::task::JoinHandle<()>)>> = Vec::with_capacity(n);
    let mut connect_hist = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US * 10, 3)?;
    let mut connect_failures = 0;
    let mut connect_secs = 0.0;
    let mut half = (before, 0usize);
    let retries = Arc::new(Retries::default());
    let halfway = if plan.one_burst { n } else { n / 2 };
    for batch in [0..halfway, halfway..n] {
        if batch.is_empty() {
            continue;
        }
        let t_conn = Instant::now();
        let mut opening = Vec::with_capacity(batch.len());
        let first = batch.start;
        for (i, seat) in seats.iter().enumerate().skip(batch.start).take(batch.len()) {
            let gate = gate.clone();
            let server = plan.servers[i % plan.servers.len()].clone();
            let token = tokens[i].clone();
            let room = seat.room.clone();
            let target = plan.target;
            let join = !plan.no_join;
            let local = source_addr(&plan.source_addrs, i);
            let shared_r = shared.clone();
            let retries = retries.clone();
            let max_retries = plan.connect_retries;
            opening.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await;
                let t = Instant::now();
                let ws = open_retrying(
                    target,
                    &server,
                    local,
                    &token,
                    &room,
                    join,
                    max_retries,
                    deadline,
                    &retries,
                )
                .await;
                let took = t.elapsed();
                // Read from the start: servers ping (daphne closes a socket whose pings go
                // unanswered for 30 s) and a long connect phase must not look like a dead client.
                (ws.map(|ws| start_reader(ws, i, shared_r)), took)
            }));
        }
        for (i, h) in opening.into_iter().enumerate() {
            let i = i + first;
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, h).await {
                Ok(Ok((Ok(ws), took))) => {
                    let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                    let _ = connect_hist.record(us.clamp(1, MAX_LATENCY_US * 10));
                    sockets.push(Some(ws));
                }
                Ok(Ok((Err(e), _))) => {
                    if connect_failures < 3 {
                        notes.push(format!("client {i}: {e:#}"));
                    }
                    connect_failures += 1;
                    sockets.push(None);
                }
                _ => {
                    connect_failures += 1;
                    sockets.push(None);
                }
            }
            if (i + 1) % 5000 == 0 {
                progress(&format!("{} connections open", i + 1));
            }
        }
        connect_secs += t_conn.elapsed().as_secs_f64();
        if first == 0 && !plan.one_burst {
            tokio::time::sleep(Duration::from_secs_f64(plan.settle_secs.max(1.0))).await;
            half = (rss_sum(&plan.pids), sockets.iter().flatten().count());
        }
    }
    if connect_failures > 0 {
        notes.push(format!("{connect_failures} connections failed to open"));
    }
    let connect_retries = retries.total.load(Ordering::Relaxed);
    let clients_retried = retries.clients.load(Ordering::Relaxed);
    if connect_retries > 0 {
        notes.push(format!(
            "{connect_retries} handshakes retried, by {clients_retried} clients"
        ));
    }
    progress(&format!(
        "{} of {n} connected in {connect_secs:.1}s",
        n - connect_failures
    ));

    // Clients: a reader task each, and a sender task for senders.
    let (go_tx, go_rx) = watch::channel(false);
    let mut readers = Vec::with_capacity(n);
    let mut senders = Vec::new();
    let sent = Arc::new(AtomicU64::new(0));
    let send_deadline_after = Duration::from_secs_f64(plan.max_send_secs);
    for (i, (socket, seat)) in sockets.into_iter().zip(seats.iter()).enumerate() {
        let Some((sink, reader)) = socket else {
            continue;
        };
        let window = shared.windows[i].clone();
        readers.push(reader);
        if seat.sender {
            let mut go = go_rx.clone();
            let sent = sent.clone();
            let room = seat.room.clone();
            let plan = plan.clone();
            let shared_s = shared.clone();
            senders.push(tokio::spawn(async move {
                let _ = go.wait_for(|g| *g).await;
                let started = Instant::now();
                let stop = started + send_deadline_after;
                let period = (plan.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / plan.rate));
                for k in 0..plan.messages {
                    // Paced: the message is due at its slot whatever the window does, and its
                    // latency counts from then.
                    let due = period.map(|p| started + p.mul_f64(k as f64));
                    if let Some(due) = due {
                        tokio::time::sleep_until(due.into()).await;
                        if due >= stop {
                            break;
                        }
                    }
                    let left = stop.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(left, window.acquire()).await {
                        Ok(Ok(p)) => p.forget(),
                        _ => break,
                    }
                    let seq = shared_s.tracker.open(i);
                    let stamp = due.unwrap_or_else(Instant::now);
                    let stamp_us =
                        u64::try_from(stamp.saturating_duration_since(shared_s.t0).as_micros())
                            .unwrap_or(u64::MAX);
                    let body = format!("~{stamp_us}~{i}~{seq}~");
                    let frame = frame_for(plan.target, &room, &body, i, &plan.user_prefix);
                    if send(&sink, frame).await.is_err() {
                        shared_s.tracker.unsent(i, seq);
                        break;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }

    tokio::time::sleep(Duration::from_secs_f64(plan.settle_secs)).await;
    let connected = rss_sum(&plan.pids);
    let open_now = n - connect_failures;
    let bytes_per_connection = connected
        .now_kb
        .saturating_sub(before.now_kb)
        .saturating_mul(1024)
        / u64::try_from(open_now).unwrap_or(1).max(1);
    let marginal_bytes_per_connection = connected
        .now_kb
        .saturating_sub(half.0.now_kb)
        .saturating_mul(1024)
        / u64::try_from(open_now.saturating_sub(half.1))
            .unwrap_or(1)
            .max(1);

    // Send phase.
    let start_us = shared.now_us();
    let _ = go_tx.send(true);
    for s in senders {
        let _ = s.await;
    }
    let drain_deadline = Instant::now() + Duration::from_secs_f64(plan.drain_secs);
    while shared.tracker.in_flight() && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A moment more, so that duplicates and strays still on their way are counted. (A
    // benchmark, not a test: a duplicate later than this goes unseen.)
    tokio::time::sleep(Duration::from_millis(200)).await;
    let peak: Rss = rss_sum(&plan.pids);
    for r in &readers {
        r.abort();
    }

    let tally = shared.tracker.tally();
    let errors = shared.errors.load(Ordering::Relaxed);
    let sent = sent.load(Ordering::Relaxed);
    let last = shared.last_delivery_us.load(Ordering::Relaxed);
    let elapsed_secs = if tally.own + tally.fanout > 0 {
        last.saturating_sub(start_us) as f64 / 1e6
    } else {
        0.0
    };
    let expected = tally.fanout + tally.fanout_lost;
    for (count, what) in [
        (tally.fanout_lost, "fan-out deliveries lost"),
        (
            tally.own_lost,
            "messages whose sender never got its own copy",
        ),
        (tally.duplicates, "duplicate deliveries"),
        (tally.late, "deliveries out of their sender's order"),
        (
            tally.unexpected,
            "message frames that match no message sent to that client",
        ),
    ] {
        if count > 0 {
            notes.push(format!("{count} {what}"));
        }
    }
    let planned = (plan.messages as u64) * count_senders(&seats);
    if plan.senders > 0 && sent < planned {
        notes.push(format!(
            "sending stopped at the time limit: {sent} of {planned} messages"
        ));
    }
    let ok = tally.fanout_lost == 0
        && tally.own_lost == 0
        && tally.duplicates == 0
        && tally.late == 0
        && tally.unexpected == 0
        && tally.own == sent
        && connect_failures == 0
        && errors == 0;
    let per_sec = |x: u64| {
        if elapsed_secs > 0.0 {
            x as f64 / elapsed_secs
        } else {
            0.0
        }
    };
    let p99_by_second_ms = shared.p99_by_second(start_us)?;
    let ms = |us: u64| us as f64 / 1000.0;
    let q = |p: f64| ms(connect_hist.value_at_quantile(p));
    Ok(Report {
        connect_ms: [q(0.5), q(0.99), ms(connect_hist.max())],
        ok,
        provision_secs,
        connect_secs,
        connect_failures,
        connect_retries,
        clients_retried,
        retry_causes: retries.causes(),
        sent,
        expected,
        received: tally.fanout,
        lost: tally.fanout_lost,
        acks: tally.own,
        acks_lost: tally.own_lost,
        duplicates: tally.duplicates,
        order_violations: tally.late,
        unexpected: tally.unexpected,
        errors,
        elapsed_secs,
        deliveries_per_sec: per_sec(tally.fanout),
        messages_per_sec: per_sec(sent),
        latency_from: if plan.rate > 0.0 { "due" } else { "send" },
        latency_ms: latency(&shared.hist)?,
        ack_latency_ms: latency(&shared.ack_hist)?,
        recovery_secs: recovery_secs(&p99_by_second_ms),
        p99_by_second_ms,
        rss_before_kb: before.now_kb,
        rss_connected_kb: connected.now_kb,
        bytes_per_connection,
        rss_half_kb: half.0.now_kb,
        marginal_bytes_per_connection,
        peak_rss_kb: peak.peak_kb,
        notes,
        plan,
    })
}

/// Seconds of sending before every later second's p99 is at or under [`RECOVERED_P99_MS`]
/// (seconds in which nothing was sent count as recovered); `None` when the last is not.
fn recovery_secs(p99_by_second_ms: &[f64]) -> Option<u64> {
    let late = p99_by_second_ms
        .iter()
        .rposition(|&p99| p99 > RECOVERED_P99_MS);
    match late {
        None => Some(0),
        Some(i) if i + 1 < p99_by_second_ms.len() => u64::try_from(i + 1).ok(),
        Some(_) => None,
    }
}

/// The sending half of a client, shared by its reader (which keeps it open) and its sender.
type Sink = Arc<tokio::sync::Mutex<SplitSink<Ws, Message>>>;

/// Splits an open client and starts reading it; returns the sending half and the reader.
fn start_reader(ws: Ws, i: usize, shared: Arc<Shared>) -> (Sink, tokio::task::JoinHandle<()>) {
    let (sink, mut stream) = ws.split();
    let sink: Sink = Arc::new(tokio::sync::Mutex::new(sink));
    let keep = sink.clone();
    let reader = tokio::spawn(async move {
        let _keep = keep;
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(Message::Text(text)) => {
                    shared.on_text(i, text.as_str());
                }
                Ok(Message::Close(_)) | Err(_) => {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(_) => {}
            }
        }
    });
    (sink, reader)
}

fn count_senders(seats: &[Seat]) -> u64 {
    seats.iter().filter(|s| s.sender).count() as u64
}

async fn send(
    sink: &tokio::sync::Mutex<SplitSink<Ws, Message>>,
    frame: String,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    sink.lock().await.send(Message::text(frame)).await
}

/// The frame that sends `body` to `room`.
fn frame_for(target: Target, room: &str, body: &str, i: usize, prefix: &str) -> String {
    match target {
        Target::Parley => format!(r#"{{"type":"send","room":"{room}","body":"{body}"}}"#),
        Target::Django | Target::Bare | Target::Tutorial => {
            format!(r#"{{"message": "{body}", "username": "{prefix}{i}"}}"#)
        }
    }
}

/// Opens one client: TCP, WebSocket handshake, and for Parley the `join` (until `joined`).
async fn open(
    target: Target,
    server: &str,
    local: Option<std::net::IpAddr>,
    token: &str,
    room: &str,
    join: bool,
) -> Result<Ws> {
    let url = match target {
        Target::Parley => format!("ws://{server}/ws"),
        Target::Django | Target::Bare => format!("ws://{server}/ws/chat/{room}/"),
        // `frames=all`: the socket hears its `joined`, so a client counts as connected once
        // it is in its room, as with `/ws` and `join`.
        Target::Tutorial => format!("ws://{server}/ws/chat/{room}/?token={token}&frames=all"),
    };
    let mut req = url.as_str().into_client_request()?;
    if target == Target::Parley {
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
    }
    let tcp = match local {
        Some(local) => crate::hostile::wire::connect_from(server, local).await?,
        None => TcpStream::connect(server).await?,
    };
    tcp.set_nodelay(true)?;
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(
        req,
        MaybeTlsStream::Plain(tcp),
        Some(crate::bare::lean_config()),
    )
    .await?;
    if matches!(target, Target::Parley | Target::Tutorial) && join {
        if target == Target::Parley {
            ws.send(Message::text(format!(
                r#"{{"type":"join","room":"{room}"}}"#
            )))
            .await?;
        }
        crate::hostile::wire::await_joined(&mut ws, Duration::from_secs(60)).await?;
    }
    Ok(ws)
}

/// Creates (or reuses) the accounts, logs each in, and creates the rooms. Returns a token
/// per client and the room names.
async fn provision(plan: &Plan, room_count: usize) -> Result<(Vec<String>, Vec<String>)> {
    let n = plan.clients;
    let addr = plan.servers[0].clone();
    let workers = 16usize;
    let names: Arc<Vec<String>> = Arc::new(
        (0..n)
            .map(|i| format!("{}{}", plan.user_prefix, i + plan.user_offset))
            .collect(),
    );
    let mut handles = Vec::new();
    for w in 0..workers {
        let names = names.clone();
        let addr = addr.clone();
        let local = source_addr(&plan.source_addrs, w);
        handles.push(tokio::spawn(async move {
            let mut http = HttpClient::new(&addr);
            if let Some(local) = local {
                http = http.bound_to(local);
            }
            let mut out = Vec::new();
            for i in (w..names.len()).step_by(workers) {
                let creds = format!(r#"{{"username":"{}","password":"{PASSWORD}"}}"#, names[i]);
                let r = http.post("/api/auth/register", &creds, None).await?;
                if r.status != 201 && r.status != 409 {
                    bail!("register {}: {} {}", names[i], r.status, r.body);
                }
                let r = http.post("/api/auth/login", &creds, None).await?;
                if r.status != 200 {
                    bail!("login {}: {} {}", names[i], r.status, r.body);
                }
                let v: serde_json::Value = serde_json::from_str(&r.body)?;
                let token = v["access"].as_str().context("no access token")?.to_owned();
                out.push((i, token));
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut tokens = vec![String::new(); n];
    for h in handles {
        for (i, t) in h.await?? {
            tokens[i] = t;
        }
    }
    progress(&format!("{n} accounts ready"));
    let mut rooms = Vec::with_capacity(room_count);
    if plan.target == Target::Tutorial && plan.layout == Layout::Fanout {
        // The tutorial endpoint creates a room on its first connection (a cold start).
        rooms.extend((0..room_count).map(|r| format!("{}-room{r}", plan.user_prefix)));
        return Ok((tokens, rooms));
    }
    let mut http = HttpClient::new(&addr);
    match plan.layout {
        Layout::Fanout => {
            for r in 0..room_count {
                let name = format!("{}-room{r}", plan.user_prefix);
                let body = format!(r#"{{"name":"{name}"}}"#);
                let resp = http.post("/api/rooms", &body, Some(&tokens[0])).await?;
                if resp.status != 201 && resp.status != 409 {
                    bail!("create room {name}: {} {}", resp.status, resp.body);
                }
                rooms.push(name);
            }
        }
        Layout::Direct => {
            for r in 0..room_count {
                let (a, b) = (2 * r, (2 * r + 1).min(n - 1));
                let resp = http
                    .post(&format!("/api/direct/{}", names[b]), "{}", Some(&tokens[a]))
                    .await?;
                if resp.status != 200 {
                    bail!("direct room {r}: {} {}", resp.status, resp.body);
                }
                let v: serde_json::Value = serde_json::from_str(&resp.body)?;
                rooms.push(v["name"].as_str().context("no room name")?.to_owned());
            }
        }
    }
    Ok((tokens, rooms))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic in a test is a failed assertion
mod tests {
    use super::*;

    #[test]
    fn recovery_is_the_first_second_after_the_last_slow_one() {
        // Slow at the start, a fast second, slow again, then fast to the end: recovered
        // only after the second slow stretch.
        assert_eq!(recovery_secs(&[900.0, 40.0, 150.0, 60.0, 20.0]), Some(3));
        assert_eq!(recovery_secs(&[20.0, 30.0]), Some(0));
        assert_eq!(
            recovery_secs(&[100.0]),
            Some(0),
            "at the bound counts as recovered"
        );
        // Still slow in the last second: never recovered.
        assert_eq!(recovery_secs(&[20.0, 300.0]), None);
        assert_eq!(recovery_secs(&[]), Some(0));
    }

    #[test]
    fn only_refusals_for_want_of_capacity_and_broken_connections_are_retried() {
        use tokio_tungstenite::tungstenite::Error as WsError;
        use tokio_tungstenite::tungstenite::http::Response;
        let http = |status: u16| {
            anyhow::Error::from(WsError::Http(Box::new(
                Response::builder().status(status).body(None).unwrap(),
            )))
        };
        assert_eq!(retry_cause(&http(503)), Some(Cause::Unavailable));
        assert_eq!(retry_cause(&http(408)), Some(Cause::Timeout));
        for final_answer in [401, 403, 429, 400, 500] {
            assert_eq!(retry_cause(&http(final_answer)), None, "{final_answer}");
        }
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            retry_cause(&anyhow::Error::from(refused)),
            Some(Cause::Connection)
        );
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(
            retry_cause(&anyhow::Error::from(WsError::Io(reset)).context("handshake")),
            Some(Cause::Connection)
        );
        assert_eq!(
            retry_cause(&anyhow::anyhow!("join refused: not_member")),
            None
        );
    }

    #[test]
    fn retry_delays_double_with_jitter_up_to_the_ceiling() {
        for _ in 0..100 {
            let first = retry_delay(0);
            assert!(first >= RETRY_MIN / 2 && first <= RETRY_MIN, "{first:?}");
            let third = retry_delay(2);
            assert!(
                third >= RETRY_MIN * 2 && third <= RETRY_MIN * 4,
                "{third:?}"
            );
            let late = retry_delay(40);
            assert!(late >= RETRY_MAX / 2 && late <= RETRY_MAX, "{late:?}");
        }
    }

    #[test]
    fn body_round_trips_through_every_protocol() {
        let body = "~123456~7~42~";
        let parley = r#"{"type":"message","id":1,"room":"bench-room1","sender":"bench7","body":"~123456~7~42~","client_id":null}"#;
        assert_eq!(parse_body(parley), Some((123_456, 7, 42)));
        let django = frame_for(Target::Django, "bench1", body, 7, "bench");
        let v: serde_json::Value = serde_json::from_str(&django).unwrap();
        assert_eq!(v["message"], body);
        assert_eq!(parse_body(&django), Some((123_456, 7, 42)));
        let send = frame_for(Target::Parley, "bench-room1", body, 7, "bench");
        let v: serde_json::Value = serde_json::from_str(&send).unwrap();
        assert_eq!(v["type"], "send");
        assert_eq!(v["body"], body);
        assert_eq!(parse_body(r#"{"type":"message","body":"hi"}"#), None);
    }

    #[test]
    fn only_first_copies_of_message_frames_count_and_the_last_one_reopens_the_window() {
        // Two rooms of three: clients 3 and 5 are with client 1; client 3 sends.
        let room_of = [0, 1, 0, 1, 0, 1];
        let shared = Shared::new(Target::Parley, &room_of, 1).unwrap();
        for w in &shared.windows {
            w.forget_permits(1);
        }
        let seq = shared.tracker.open(3);
        let body = format!("~1~3~{seq}~");
        assert!(!shared.on_text(3, &format!(r#"{{"type":"message","body":"{body}"}}"#)));
        assert!(!shared.on_text(5, &format!(r#"{{"body":"{body}","type":"message"}}"#)));
        // Not message frames: presence, errors; and a duplicate, which never completes it.
        assert!(!shared.on_text(5, r#"{"type":"presence","user":"~1~5~0~"}"#));
        assert!(!shared.on_text(5, r#"{"type":"error","code":"rate_limited"}"#));
        assert!(!shared.on_text(5, &format!(r#"{{"body":"{body}","type":"message"}}"#)));
        // A member of the other room: not its message.
        assert!(!shared.on_text(0, &format!(r#"{{"body":"{body}","type":"message"}}"#)));
        assert_eq!(shared.windows[3].available_permits(), 0);
        assert!(shared.on_text(1, &format!(r#"{{"body":"{body}","type":"message"}}"#)));
        assert_eq!(shared.windows[3].available_permits(), 1);
        assert!(!shared.tracker.in_flight());
        let tally = shared.tracker.tally();
        assert_eq!((tally.own, tally.fanout), (1, 2));
        assert_eq!((tally.duplicates, tally.unexpected), (1, 1));
        assert_eq!(shared.errors.load(Ordering::Relaxed), 1);
        // The own copy went to the acknowledgement histogram, the others to fan-out.
        let count = |h: &[Mutex<Histogram<u64>>]| h.iter().map(|h| h.lock().len()).sum::<u64>();
        assert_eq!((count(&shared.ack_hist), count(&shared.hist)), (1, 2));
        assert!(matches!(
            shared.tracker.arrived(1, 3, seq),
            Arrival::Duplicate
        ));
    }
}
