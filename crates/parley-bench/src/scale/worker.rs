//! One generator process of a scale run: its slice of the clients, from its own loopback
//! address, driven by the conductor over stdin (one JSON command a line) and answering on
//! stdout (one JSON reply a line, in order).
//!
//! Every client is a task that connects, authenticates, joins its room and then holds the
//! socket, reading everything the server sends. When the server closes the socket (a
//! restarted process closes with 1001) or a connection fails, the client moves on to another
//! server ([`Layout::next_server`]) and joins again, as a real client would. A sender keeps one
//! message in flight at a time with a `client_id`; a message whose acknowledgement did not come
//! before its socket dropped is sent again, with the same `client_id`, once the client is back
//! (so it is stored once however often it is retried). Every acknowledged message is recorded,
//! and [`Command::Verify`] looks each one up in the room's history over REST.

use super::layout::Layout;
use crate::hostile::wire::Ws;
use crate::http::HttpClient;
use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncBufReadExt;
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;

/// The password of every scale account.
pub(super) const PASSWORD: &str = "scale-password-1";
/// `Slot::server` of a client that is not joined anywhere.
const NOWHERE: usize = usize::MAX;
/// How long a client waits for `joined` before giving up on that server.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);
/// A message unacknowledged this long on a socket that stays open is sent again (same
/// `client_id`): the server may have refused it as `unavailable`.
const RESEND_AFTER: Duration = Duration::from_secs(10);

/// What a generator is told at start (the rest comes as commands).
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// The run's layout (the conductor passes its own).
    #[command(flatten)]
    pub layout: Layout,
    /// This generator's index.
    #[arg(long)]
    pub generator: usize,
    /// Generators in the run.
    #[arg(long)]
    pub generators: usize,
    /// Local address every socket of this generator connects from.
    #[arg(long)]
    pub source_addr: IpAddr,
    /// Connections (and reconnections) opened at once by this generator.
    #[arg(long, default_value_t = 32)]
    pub connect_concurrency: usize,
    /// Keep-alive HTTP connections provisioning the accounts.
    #[arg(long, default_value_t = 8)]
    pub http_workers: usize,
    /// Rooms with senders in the rolling-restart phase.
    #[arg(long, default_value_t = 20)]
    pub sender_rooms: usize,
    /// Senders per sender room (the conductor passes the server count: one on each).
    #[arg(long, default_value_t = 1)]
    pub senders_per_room: usize,
    /// Messages per second per sender (one in flight at a time).
    #[arg(long, default_value_t = 2.0)]
    pub send_rate: f64,
}

/// A command from the conductor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Start the clients up to `fraction` of this generator's slice (those not started
    /// yet); answer once every started client is joined or `secs` ran out.
    Connect {
        /// Longest wait.
        secs: f64,
        /// Share of the slice started by the end of this command (1: all).
        fraction: f64,
    },
    /// Where every client is now.
    Status,
    /// Forget earlier probe counts and expect round `round`.
    Arm {
        /// The round about to be sent.
        round: u32,
    },
    /// Member 0 of each of the first `rooms` rooms sends `messages` probe messages.
    Probe {
        /// The round (as armed).
        round: u32,
        /// Rooms probed.
        rooms: usize,
        /// Messages per room.
        messages: u32,
    },
    /// What the members of the first `rooms` rooms received of the armed round.
    ProbeCount {
        /// Rooms probed.
        rooms: usize,
    },
    /// Senders start (`on`) or stop starting new messages (pending ones are still retried).
    Send {
        /// Sending or not.
        on: bool,
    },
    /// Wait for pending messages, then look every acknowledged one up in history (through
    /// server `server`).
    Verify {
        /// Index of a server that is up.
        server: usize,
    },
    /// Close every socket and exit.
    Quit,
}

/// The answer to `Connect`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Connected {
    /// Clients joined when the answer was given.
    pub joined: usize,
    /// Clients of this generator.
    pub clients: usize,
    /// Failed attempts (each retried on another server).
    pub failures: u64,
    /// Seconds from the command to the last join (or the deadline).
    pub secs: f64,
    /// Per client, ms from its first attempt to its `joined`: p50, p99, max.
    pub connect_ms: [f64; 3],
    /// The first few failures, as text.
    pub errors: Vec<String>,
}

/// The answer to `Status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    /// Clients joined now.
    pub joined: usize,
    /// Clients not joined now (global indices).
    pub not_joined: Vec<usize>,
    /// Joined clients per server index.
    pub per_server: Vec<usize>,
    /// Sockets the server closed or that broke, in all.
    pub drops: u64,
    /// Failed connection attempts, in all.
    pub failures: u64,
    /// Unix ms of the earliest drop (0: none).
    pub first_drop_ms: u64,
    /// Unix ms of the latest `joined` of a client that had dropped (0: none).
    pub last_rejoin_ms: u64,
    /// Clients that dropped at least once.
    pub dropped_clients: usize,
    /// Error frames received, by code.
    pub error_codes: BTreeMap<String, u64>,
}

/// The answer to `ProbeCount`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProbeCount {
    /// Members of the probed rooms held here.
    pub members: usize,
    /// Distinct probe messages they received (first copies).
    pub received: u64,
    /// Copies of a probe message a member already had.
    pub duplicates: u64,
    /// Probe copies of another round, or numbered past the round's messages.
    pub strays: u64,
    /// Members still missing at least one probe message (global indices; at most 20).
    pub incomplete: Vec<usize>,
    /// Per probed room, a bit per server index its members here are joined on.
    pub servers_by_room: Vec<u64>,
    /// Probe messages acknowledged to their senders here.
    pub acks: u64,
}

/// The answer to `Verify`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Verified {
    /// Messages acknowledged to this generator's senders.
    pub acknowledged: u64,
    /// Of those, found in their room's history with their body.
    pub found: u64,
    /// Acknowledged and not in history (ids; at most 20).
    pub missing: Vec<i64>,
    /// How many acknowledged messages are missing in all.
    pub missing_count: u64,
    /// Acknowledged bodies stored more than once.
    pub stored_twice: u64,
    /// Messages never acknowledged when sending stopped (given up).
    pub unacknowledged: u64,
    /// Sends answered with the message stored the first time after a retry.
    pub retried: u64,
    /// Messages read back from history.
    pub history_read: u64,
}

/// One client's state, shared between its task and the command loop.
#[derive(Default)]
struct Slot {
    /// Index of the server it is joined on, or [`NOWHERE`].
    server: AtomicUsize,
    /// Bit n: probe message n of the armed round received.
    probe_mask: AtomicU64,
    /// Probe copies it already had.
    probe_dups: AtomicU32,
    /// Times its socket was closed by the server or broke.
    drops: AtomicU32,
    /// Unix ms of its latest `joined`.
    joined_ms: AtomicU64,
    /// Ms from its first attempt to its first `joined` (0: not yet).
    first_join_ms: AtomicU32,
}

/// What every client of a generator shares.
struct Ctx {
    layout: Layout,
    args: WorkerArgs,
    /// Global index of the first client held here.
    first: usize,
    slots: Vec<Slot>,
    gate: Semaphore,
    control: watch::Receiver<Control>,
    failures: AtomicU64,
    errors: Mutex<Vec<String>>,
    error_codes: Mutex<BTreeMap<String, u64>>,
    first_drop_ms: AtomicU64,
    probe_round: AtomicU32,
    probe_messages: AtomicU32,
    probe_strays: AtomicU64,
    probe_acks: AtomicU64,
    /// Acknowledged messages: (room, id, body).
    acked: Mutex<Vec<(usize, i64, String)>>,
    /// Messages sent and not yet acknowledged.
    pending: AtomicUsize,
    /// Retries answered with an acknowledgement.
    retried: AtomicU64,
}

/// What the command loop tells every client at once.
#[derive(Debug, Clone, Default)]
struct Control {
    /// Senders start new messages.
    sending: bool,
    /// A probe to send: (round, rooms, messages).
    probe: Option<(u32, usize, u32)>,
    /// Close and stop.
    stop: bool,
}

impl Ctx {
    fn slot(&self, g: usize) -> &Slot {
        &self.slots[g - self.first]
    }

    fn note_error(&self, what: String) {
        let mut errors = self.errors.lock();
        if errors.len() < 5 {
            errors.push(what);
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn reply<T: Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// Runs a generator until `Quit` or the end of stdin.
pub async fn run(args: WorkerArgs) -> Result<()> {
    let layout = args.layout.clone();
    let range = layout.slice(args.generator, args.generators);
    let t = Instant::now();
    let tokens = provision(&args, range.clone()).await?;
    reply(&serde_json::json!({
        "event": "ready",
        "clients": tokens.len(),
        "provision_secs": t.elapsed().as_secs_f64(),
    }))?;
    let (control_tx, control_rx) = watch::channel(Control::default());
    let ctx = Arc::new(Ctx {
        slots: range
            .clone()
            .map(|_| Slot {
                server: AtomicUsize::new(NOWHERE),
                ..Slot::default()
            })
            .collect(),
        first: range.start,
        gate: Semaphore::new(args.connect_concurrency.max(1)),
        control: control_rx,
        failures: AtomicU64::new(0),
        errors: Mutex::new(Vec::new()),
        error_codes: Mutex::new(BTreeMap::new()),
        first_drop_ms: AtomicU64::new(0),
        probe_round: AtomicU32::new(0),
        probe_messages: AtomicU32::new(0),
        probe_strays: AtomicU64::new(0),
        probe_acks: AtomicU64::new(0),
        acked: Mutex::new(Vec::new()),
        pending: AtomicUsize::new(0),
        retried: AtomicU64::new(0),
        layout,
        args,
    });
    let mut tokens = tokens;
    // Clients below this index are started.
    let mut started = 0usize;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let command: Command =
            serde_json::from_str(&line).with_context(|| format!("bad command {line:?}"))?;
        match command {
            Command::Connect { secs, fraction } => {
                let upto = (tokens.len() as f64 * fraction.clamp(0.0, 1.0)).ceil() as usize;
                let upto = upto.clamp(started, tokens.len());
                let batch: Vec<(usize, String)> = (started..upto)
                    .map(|i| (i, std::mem::take(&mut tokens[i])))
                    .collect();
                started = upto;
                reply(&connect(&ctx, batch, started, secs).await)?;
            }
            Command::Status => reply(&status(&ctx))?,
            Command::Arm { round } => {
                for slot in &ctx.slots {
                    slot.probe_mask.store(0, Ordering::Relaxed);
                    slot.probe_dups.store(0, Ordering::Relaxed);
                }
                ctx.probe_strays.store(0, Ordering::Relaxed);
                ctx.probe_acks.store(0, Ordering::Relaxed);
                ctx.probe_round.store(round, Ordering::Relaxed);
                reply(&serde_json::json!({ "event": "armed" }))?;
            }
            Command::Probe {
                round,
                rooms,
                messages,
            } => {
                ctx.probe_messages
                    .store(messages.min(64), Ordering::Relaxed);
                control_tx.send_modify(|c| c.probe = Some((round, rooms, messages.min(64))));
                reply(&serde_json::json!({ "event": "probing" }))?;
            }
            Command::ProbeCount { rooms } => reply(&probe_count(&ctx, rooms))?,
            Command::Send { on } => {
                control_tx.send_modify(|c| c.sending = on);
                reply(&serde_json::json!({ "event": "sending", "on": on }))?;
            }
            Command::Verify { server } => reply(&verify(&ctx, server).await?)?,
            Command::Quit => break,
        }
    }
    control_tx.send_modify(|c| c.stop = true);
    // Give the clients a moment to send their close frames; the process exits regardless.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

/// Registers (or finds) and logs in every account of the slice, spread over every server.
async fn provision(args: &WorkerArgs, range: std::ops::Range<usize>) -> Result<Vec<String>> {
    let workers = args.http_workers.max(1);
    let layout = Arc::new(args.layout.clone());
    let mut handles = Vec::new();
    for w in 0..workers {
        let layout = layout.clone();
        let range = range.clone();
        let local = args.source_addr;
        let server = layout.servers[(args.generator + w) % layout.servers.len()].clone();
        handles.push(tokio::spawn(async move {
            let mut http = HttpClient::new(&server).bound_to(local);
            let mut out = Vec::new();
            for g in range.skip(w).step_by(workers) {
                let creds = format!(
                    r#"{{"username":"{}","password":"{PASSWORD}"}}"#,
                    layout.user(g)
                );
                let r = http.post("/api/auth/register", &creds, None).await?;
                if r.status != 201 && r.status != 409 {
                    bail!("register {}: {} {}", layout.user(g), r.status, r.body);
                }
                let r = http.post("/api/auth/login", &creds, None).await?;
                if r.status != 200 {
                    bail!("login {}: {} {}", layout.user(g), r.status, r.body);
                }
                let v: serde_json::Value = serde_json::from_str(&r.body)?;
                let token = v["access"].as_str().context("no access token")?.to_owned();
                out.push((g, token));
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut tokens = vec![String::new(); range.len()];
    for h in handles {
        for (g, t) in h.await?? {
            tokens[g - range.start] = t;
        }
    }
    Ok(tokens)
}

/// Starts the clients of `batch` (slice index, token) and waits until every client below
/// `started` is joined or `secs` ran out.
async fn connect(
    ctx: &Arc<Ctx>,
    batch: Vec<(usize, String)>,
    started: usize,
    secs: f64,
) -> Connected {
    let t = Instant::now();
    for (i, token) in batch {
        tokio::spawn(client(ctx.clone(), ctx.first + i, token));
    }
    let deadline = t + Duration::from_secs_f64(secs);
    let joined = || {
        ctx.slots[..started]
            .iter()
            .filter(|s| s.first_join_ms.load(Ordering::Relaxed) > 0)
            .count()
    };
    let mut shown = Instant::now();
    while joined() < started && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if shown.elapsed() >= Duration::from_secs(15) {
            shown = Instant::now();
            eprintln!(
                "[generator {}] {} of {} joined after {:.0}s, {} failed attempts",
                ctx.args.generator,
                joined(),
                started,
                t.elapsed().as_secs_f64(),
                ctx.failures.load(Ordering::Relaxed)
            );
        }
    }
    let mut ms: Vec<u32> = ctx
        .slots
        .iter()
        .map(|s| s.first_join_ms.load(Ordering::Relaxed))
        .filter(|&m| m > 0)
        .collect();
    ms.sort_unstable();
    let q = |p: f64| {
        ms.get(((ms.len() as f64 - 1.0) * p).round() as usize)
            .map_or(0.0, |&m| f64::from(m))
    };
    Connected {
        joined: ms.len(),
        clients: started,
        failures: ctx.failures.load(Ordering::Relaxed),
        secs: t.elapsed().as_secs_f64(),
        connect_ms: [q(0.5), q(0.99), q(1.0)],
        errors: ctx.errors.lock().clone(),
    }
}

fn status(ctx: &Ctx) -> Status {
    let servers = ctx.layout.servers.len();
    let mut s = Status {
        per_server: vec![0; servers],
        failures: ctx.failures.load(Ordering::Relaxed),
        first_drop_ms: ctx.first_drop_ms.load(Ordering::Relaxed),
        error_codes: ctx.error_codes.lock().clone(),
        ..Status::default()
    };
    for (i, slot) in ctx.slots.iter().enumerate() {
        let on = slot.server.load(Ordering::Relaxed);
        let drops = slot.drops.load(Ordering::Relaxed);
        s.drops += u64::from(drops);
        if drops > 0 {
            s.dropped_clients += 1;
        }
        if on < servers {
            s.joined += 1;
            s.per_server[on] += 1;
            if drops > 0 {
                s.last_rejoin_ms = s.last_rejoin_ms.max(slot.joined_ms.load(Ordering::Relaxed));
            }
        } else {
            s.not_joined.push(ctx.first + i);
        }
    }
    s
}

fn probe_count(ctx: &Ctx, rooms: usize) -> ProbeCount {
    let messages = ctx.probe_messages.load(Ordering::Relaxed);
    let full = if messages >= 64 {
        u64::MAX
    } else {
        (1u64 << messages) - 1
    };
    let mut c = ProbeCount {
        servers_by_room: vec![0; rooms],
        strays: ctx.probe_strays.load(Ordering::Relaxed),
        acks: ctx.probe_acks.load(Ordering::Relaxed),
        ..ProbeCount::default()
    };
    for (i, slot) in ctx.slots.iter().enumerate() {
        let g = ctx.first + i;
        let room = ctx.layout.room_of(g);
        if room >= rooms {
            continue;
        }
        c.members += 1;
        let mask = slot.probe_mask.load(Ordering::Relaxed);
        c.received += u64::from(mask.count_ones());
        c.duplicates += u64::from(slot.probe_dups.load(Ordering::Relaxed));
        if mask != full && c.incomplete.len() < 20 {
            c.incomplete.push(g);
        }
        let on = slot.server.load(Ordering::Relaxed);
        if on < 64 {
            c.servers_by_room[room] |= 1 << on;
        }
    }
    c
}

/// One sender's message in flight.
struct Pending {
    client_id: String,
    body: String,
    sent: Instant,
    /// Sent again after a drop or a refusal.
    retried: bool,
}

/// How a session on one socket ended.
enum End {
    /// The server closed the socket, or it broke: go elsewhere.
    Dropped,
    /// The run is over.
    Stop,
}

/// One client for the whole run: connect, join, hold; on a drop, go to another server.
async fn client(ctx: Arc<Ctx>, g: usize, token: String) {
    let layout = &ctx.layout;
    let room = layout.room_name(layout.room_of(g));
    let sender = layout.is_sender(g, ctx.args.sender_rooms, ctx.args.senders_per_room);
    let mut control = ctx.control.clone();
    let mut server = layout.home(g);
    // The server that last dropped (or first refused) this client: retries go round the
    // others, never back to it while it may still be stopping.
    let mut left = server;
    let mut attempt = 0usize;
    let mut pending: Option<Pending> = None;
    let mut seq = 0u64;
    let mut probed = 0u32;
    let started = Instant::now();
    let slot = ctx.slot(g);
    loop {
        if control.borrow().stop {
            return;
        }
        let opened = {
            let _permit = ctx.gate.acquire().await;
            crate::hostile::wire::open_joined(
                &layout.servers[server],
                ctx.args.source_addr,
                &token,
                &room,
                JOIN_TIMEOUT,
            )
            .await
        };
        let mut ws = match opened {
            Ok(ws) => ws,
            Err(e) => {
                ctx.failures.fetch_add(1, Ordering::Relaxed);
                ctx.note_error(format!(
                    "{} → {}: {e:#}",
                    layout.user(g),
                    layout.servers[server]
                ));
                attempt += 1;
                server = layout.next_server(g, left, attempt);
                // Spread retries out: thousands of clients of one refusing server must not
                // come back in lockstep.
                let jitter = (g as u64 * 7919 + attempt as u64 * 104_729) % 500;
                tokio::time::sleep(Duration::from_millis(250 + jitter)).await;
                continue;
            }
        };
        attempt = 0;
        slot.joined_ms.store(now_ms(), Ordering::Relaxed);
        if slot.first_join_ms.load(Ordering::Relaxed) == 0 {
            let ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
            slot.first_join_ms.store(ms.max(1), Ordering::Relaxed);
        }
        slot.server.store(server, Ordering::Relaxed);
        // A message whose acknowledgement was lost with the last socket: the same
        // `client_id` again, so it is stored once.
        if let Some(p) = pending.as_mut() {
            p.retried = true;
            p.sent = Instant::now();
            if send_message(&mut ws, &room, p).await.is_err() {
                slot.server.store(NOWHERE, Ordering::Relaxed);
                continue;
            }
        }
        let end = session(
            &ctx,
            g,
            &room,
            sender,
            &mut ws,
            &mut control,
            &mut pending,
            &mut seq,
            &mut probed,
        )
        .await;
        slot.server.store(NOWHERE, Ordering::Relaxed);
        match end {
            End::Stop => {
                let _ = ws.close(None).await;
                return;
            }
            End::Dropped => {
                slot.drops.fetch_add(1, Ordering::Relaxed);
                let _ = ctx.first_drop_ms.compare_exchange(
                    0,
                    now_ms(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                left = server;
                server = layout.next_server(g, left, 0);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)] // one client's state, threaded through its sessions
async fn session(
    ctx: &Ctx,
    g: usize,
    room: &str,
    sender: bool,
    ws: &mut Ws,
    control: &mut watch::Receiver<Control>,
    pending: &mut Option<Pending>,
    seq: &mut u64,
    probed: &mut u32,
) -> End {
    let period = Duration::from_secs_f64(1.0 / ctx.args.send_rate.max(0.01));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // A probe armed while this client was elsewhere (or before it joined) still goes out.
        let probe = control.borrow().probe;
        if let Some((round, rooms, messages)) = probe
            && round != *probed
            && ctx.layout.is_prober(g, rooms)
        {
            *probed = round;
            for n in 0..messages {
                let frame = format!(
                    r#"{{"type":"send","room":"{room}","body":"probe~{round}~{n}~","ref":"p{round}-{n}"}}"#
                );
                if ws.send(Message::text(frame)).await.is_err() {
                    return End::Dropped;
                }
            }
        }
        let sending = sender && control.borrow().sending;
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => on_text(ctx, g, text.as_str(), pending),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return End::Dropped,
                Some(Ok(_)) => {}
            },
            changed = control.changed() => {
                if changed.is_err() || control.borrow().stop {
                    return End::Stop;
                }
            }
            _ = tick.tick(), if sender => {
                let resend = pending.as_ref().is_some_and(|p| p.sent.elapsed() > RESEND_AFTER);
                if pending.is_none() && sending {
                    let p = Pending {
                        client_id: format!("s{g}-{}", *seq),
                        body: format!("scale~{g}~{}~", *seq),
                        sent: Instant::now(),
                        retried: false,
                    };
                    *seq += 1;
                    ctx.pending.fetch_add(1, Ordering::Relaxed);
                    *pending = Some(p);
                } else if resend {
                    if let Some(p) = pending.as_mut() {
                        p.retried = true;
                        p.sent = Instant::now();
                    }
                } else {
                    continue;
                }
                if let Some(p) = pending.as_ref()
                    && send_message(ws, room, p).await.is_err()
                {
                    return End::Dropped;
                }
            }
        }
    }
}

async fn send_message(ws: &mut Ws, room: &str, p: &Pending) -> Result<()> {
    let frame = format!(
        r#"{{"type":"send","room":"{room}","body":"{}","client_id":"{}","ref":"{}"}}"#,
        p.body, p.client_id, p.client_id
    );
    ws.send(Message::text(frame)).await?;
    Ok(())
}

/// A frame from the server.
fn on_text(ctx: &Ctx, g: usize, text: &str, pending: &mut Option<Pending>) {
    if text.starts_with(r#"{"type":"error""#) {
        let code = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "?".into());
        *ctx.error_codes.lock().entry(code).or_default() += 1;
        return;
    }
    // Own copies (acknowledgements) are serialized `type` first and carry the `ref`;
    // fanned-out copies are rendered from a JSON value with sorted keys (`type` last).
    let own = text.starts_with(r#"{"type":"message""#);
    if !own && !text.ends_with(r#""type":"message"}"#) {
        return;
    }
    if let Some(at) = text.find("\"body\":\"probe~") {
        on_probe(ctx, g, &text[at + 14..], own);
        return;
    }
    if !own {
        return;
    }
    let Some(p) = pending.as_ref() else {
        return;
    };
    if !text.contains(&format!(r#""ref":"{}""#, p.client_id)) {
        return;
    }
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    let (Some(id), Some(body)) = (v["id"].as_i64(), v["body"].as_str()) else {
        return;
    };
    if body != p.body {
        ctx.note_error(format!("acknowledged {body:?} for {:?}", p.body));
        return;
    }
    if p.retried {
        ctx.retried.fetch_add(1, Ordering::Relaxed);
    }
    ctx.acked
        .lock()
        .push((ctx.layout.room_of(g), id, p.body.clone()));
    ctx.pending.fetch_sub(1, Ordering::Relaxed);
    *pending = None;
}

/// A probe copy: `rest` starts after `"body":"probe~`, at `<round>~<n>~`.
fn on_probe(ctx: &Ctx, g: usize, rest: &str, own: bool) {
    let mut parts = rest.splitn(3, '~');
    let round: Option<u32> = parts.next().and_then(|s| s.parse().ok());
    let n: Option<u32> = parts.next().and_then(|s| s.parse().ok());
    let (Some(round), Some(n)) = (round, n) else {
        ctx.probe_strays.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if round != ctx.probe_round.load(Ordering::Relaxed)
        || n >= ctx.probe_messages.load(Ordering::Relaxed)
    {
        ctx.probe_strays.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if own {
        ctx.probe_acks.fetch_add(1, Ordering::Relaxed);
    }
    let slot = ctx.slot(g);
    let bit = 1u64 << n;
    if slot.probe_mask.fetch_or(bit, Ordering::Relaxed) & bit != 0 {
        slot.probe_dups.fetch_add(1, Ordering::Relaxed);
    }
}

/// Waits (up to a minute) for every pending message, then reads the history of every room
/// with an acknowledged message and looks each one up.
async fn verify(ctx: &Ctx, server: usize) -> Result<Verified> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while ctx.pending.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let acked = ctx.acked.lock().clone();
    let mut v = Verified {
        acknowledged: acked.len() as u64,
        unacknowledged: ctx.pending.load(Ordering::Relaxed) as u64,
        retried: ctx.retried.load(Ordering::Relaxed),
        ..Verified::default()
    };
    let mut by_room: BTreeMap<usize, Vec<(i64, String)>> = BTreeMap::new();
    for (room, id, body) in acked {
        by_room.entry(room).or_default().push((id, body));
    }
    let addr = ctx
        .layout
        .servers
        .get(server)
        .context("no such server")?
        .clone();
    let mut http = HttpClient::new(&addr).bound_to(ctx.args.source_addr);
    // Any account may read a public room's history: log in as this generator's first client.
    let creds = format!(
        r#"{{"username":"{}","password":"{PASSWORD}"}}"#,
        ctx.layout.user(ctx.first)
    );
    let r = http.post("/api/auth/login", &creds, None).await?;
    if r.status != 200 {
        bail!("login for history: {} {}", r.status, r.body);
    }
    let login: serde_json::Value = serde_json::from_str(&r.body)?;
    let token = login["access"]
        .as_str()
        .context("no access token")?
        .to_owned();
    for (room, messages) in by_room {
        let history = read_history(&mut http, &token, &ctx.layout.room_name(room)).await?;
        v.history_read += history.len() as u64;
        let mut bodies: HashMap<&str, u32> = HashMap::new();
        for body in history.values() {
            *bodies.entry(body.as_str()).or_default() += 1;
        }
        for (id, body) in &messages {
            if history.get(id) == Some(body) {
                v.found += 1;
            } else {
                v.missing_count += 1;
                if v.missing.len() < 20 {
                    v.missing.push(*id);
                }
            }
            if bodies.get(body.as_str()).copied().unwrap_or(0) > 1 {
                v.stored_twice += 1;
            }
        }
    }
    Ok(v)
}

/// Every message of `room` (id → body), newest page first, back to the oldest.
async fn read_history(
    http: &mut HttpClient,
    token: &str,
    room: &str,
) -> Result<BTreeMap<i64, String>> {
    let mut out = BTreeMap::new();
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            None => format!("/api/rooms/{room}/messages?limit=100"),
            Some(b) => format!("/api/rooms/{room}/messages?limit=100&before={b}"),
        };
        let r = http.get(&path, Some(token)).await?;
        if r.status != 200 {
            bail!("GET {path}: {} {}", r.status, r.body);
        }
        let page: serde_json::Value = serde_json::from_str(&r.body)?;
        let messages = page["messages"].as_array().context("no messages")?;
        for m in messages {
            if let (Some(id), Some(body)) = (m["id"].as_i64(), m["body"].as_str()) {
                out.insert(id, body.to_owned());
            }
        }
        let oldest = messages.iter().filter_map(|m| m["id"].as_i64()).min();
        match (page["has_more"].as_bool(), oldest) {
            (Some(true), Some(oldest)) => before = Some(oldest),
            _ => return Ok(out),
        }
    }
}
