//! `parley-bench hostile`: hostile clients against a running server, one probe after
//! another, while bystanders chat in a room (see `bystander`).
//!
//! Each probe runs for a fixed time. During it the server's resident memory and open
//! descriptors are sampled every 50 ms from `/proc/<pid>` (start, peak, end one second after
//! the flood stopped), and the flood's outcome is counted: frames sent, answered,
//! `rate_limited`, other error codes, connections the server closed (by close code or HTTP
//! status) or refused. One JSON line per probe goes to stdout as it completes; a markdown
//! table follows with `--table`.
//!
//! Who connects from where (all on loopback): the bystanders from 127.0.0.1, frame floods
//! and raw sockets from 127.0.0.2, the right-password logins of the failed-login probe's
//! victim from 127.0.0.4 (where it also registered and first logged in: the server knows the
//! address as the owner's), its attackers from 127.0.3.1–250, each connection probe from an
//! address of its own (127.0.0.3 and .5–.8), and provisioning account i from 127.0.4.i (so the per-address register/login
//! budget is never the one a probe measures by accident). The server's limits are whatever it
//! was started with: `scripts/hostile.sh` starts it with the shipped defaults.
//!
//! Everything is bounded: each probe stops at its deadline, connections are capped, and the
//! run ends after the last probe (or the first probe after which the server is gone: the
//! rest are reported as not run, exit code 4).

mod bystander;
pub(crate) mod wire;

use crate::http::HttpClient;
use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

/// The password of every account the probes create.
const PASSWORD: &str = "hostile-password-1";
/// The bystanders' room.
const ROOM: &str = "hostile-lobby";

/// Every probe, in the order they run: name and what it does.
pub const PROBES: &[(&str, &str)] = &[
    ("quiet", "no flood: the bystanders alone"),
    (
        "join",
        "`join`/`leave` of the bystanders' room, alternating, over 16 sockets of one user (each join broadcasts presence)",
    ),
    (
        "send",
        "`send` to the bystanders' room over 4 sockets of one user",
    ),
    ("edit", "`edit` of the flooder's own message over 4 sockets"),
    (
        "delete",
        "`delete` of the flooder's own message, again and again, over 4 sockets",
    ),
    (
        "typing",
        "`typing` in the bystanders' room over 16 sockets of one user",
    ),
    (
        "history",
        "`history` of the bystanders' room (limit 100) over 4 sockets",
    ),
    (
        "read",
        "the same `read` marker again and again over 4 sockets",
    ),
    (
        "signal",
        "small `signal`s to the receiving bystander over 4 sockets",
    ),
    ("renew", "`renew` with a valid token over 4 sockets"),
    ("ping", "`ping` frames over 4 sockets"),
    (
        "edit-delete-unknown",
        "`edit`/`delete` of message ids the flooder does not own or that do not exist (ids spread over 1..1,000,000)",
    ),
    (
        "signal-large",
        "`signal`s of ≈15 KB payloads to the receiving bystander over 4 sockets",
    ),
    (
        "oversized-frame",
        "3 sockets each send a frame header declaring 2^40 bytes, then stream the payload (≈ 1 MiB/s each)",
    ),
    (
        "unfinished-message",
        "3 sockets each start a fragmented message and send 64 KiB continuations that never finish it (≈ 1 MiB/s each)",
    ),
    (
        "ping-no-read",
        "16 sockets of one user with a 4 KiB receive buffer send WebSocket pings (125-byte payloads) as fast as the server takes them and never read; runs `--long-secs` (the server's bound on a write is its 60 s ping timeout)",
    ),
    (
        "connection-flood",
        "1,000 TCP connections held open from one address, saying nothing (reopened a second after the server closes one)",
    ),
    (
        "handshake-flood",
        "WebSocket upgrades with a bad token, a new connection each, from one address",
    ),
    (
        "room-create",
        "`POST /api/rooms` with new names as fast as allowed (4 keep-alive connections)",
    ),
    (
        "login-victim",
        "wrong-password logins for one user from 250 addresses (20/s); the user logs in with the right password every second from its own address",
    ),
    (
        "slow-headers",
        "1,000 connections from one address each sending a request head a byte a second",
    ),
    (
        "slow-body",
        "1,000 connections from one address each sending a login head announcing 60,000 bytes, then a byte a second",
    ),
    (
        "idle-keepalive",
        "1,000 connections from one address that ask `/healthz` once and then stay idle",
    ),
];

/// What to run.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct Plan {
    /// Server address (`127.0.0.1:8080`). Loopback only. Required unless `--list`.
    #[arg(long, default_value = "")]
    pub server: String,
    /// The server's process id, for memory and descriptors (`/proc/<pid>`). Required unless
    /// `--list`.
    #[arg(long, default_value_t = 0)]
    pub pid: u32,
    /// Print the probe names, comma-separated, in the order they run, and exit.
    #[arg(long)]
    pub list: bool,
    /// Seconds each probe floods.
    #[arg(long, default_value_t = 20.0)]
    pub secs: f64,
    /// Seconds the `ping-no-read` probe runs (the time to fill the buffers plus the server's
    /// 60 s ping timeout, which bounds a write to a client that does not read; 0: `--secs`).
    #[arg(long, default_value_t = 80.0)]
    pub long_secs: f64,
    /// Frames per second a frame flood sends, summed over its sockets (0: as fast as the
    /// sockets take them). Also the pace of the handshake flood (÷ 4) and the room-creation
    /// flood (÷ 4).
    #[arg(long, default_value_t = 2000.0)]
    pub flood_rate: f64,
    /// Probes to run, comma-separated (default: all, in the documented order).
    #[arg(long, value_delimiter = ',')]
    pub probes: Vec<String>,
    /// Probes to leave out, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub skip: Vec<String>,
    /// Label copied into every JSON line (e.g. `before`, `after`).
    #[arg(long, default_value = "")]
    pub label: String,
    /// Account name prefix (accounts are created, or reused when they exist).
    #[arg(long, default_value = "h")]
    pub user_prefix: String,
    /// Print a markdown table of the run after the JSON lines.
    #[arg(long)]
    pub table: bool,
}

/// Counts of what a flood got.
#[derive(Default)]
struct Tally {
    /// Frames, requests or connections sent or opened.
    sent: AtomicU64,
    /// Bytes sent (raw probes).
    bytes: AtomicU64,
    /// Replies that were not errors.
    answered: AtomicU64,
    /// `rate_limited` error frames.
    rate_limited: AtomicU64,
    /// Other error frames, by code.
    codes: Mutex<BTreeMap<String, u64>>,
    /// Connections that ended, by how (close code, `eof`, `reset`, HTTP status).
    closed: Mutex<BTreeMap<String, u64>>,
    /// HTTP statuses (and handshake statuses), by code.
    statuses: Mutex<BTreeMap<String, u64>>,
    /// Probe-specific facts.
    notes: Mutex<Vec<String>>,
    /// Connections open now / at most (connection probes).
    open: AtomicU64,
    /// The most connections open at once.
    max_open: AtomicU64,
}

fn bump(map: &Mutex<BTreeMap<String, u64>>, key: &str) {
    *map.lock().entry(key.to_owned()).or_default() += 1;
}

impl Tally {
    fn opened(&self) {
        let n = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_open.fetch_max(n, Ordering::SeqCst);
    }
    fn closed_one(&self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
    fn note(&self, s: String) {
        self.notes.lock().push(s);
    }
    /// Counts one server frame of a frame flood.
    fn frame(&self, text: &str) {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            bump(&self.codes, "unparsable frame");
            return;
        };
        if v["type"] == "error" {
            let code = v["code"].as_str().unwrap_or("?");
            if code == "rate_limited" {
                self.rate_limited.fetch_add(1, Ordering::Relaxed);
            } else {
                bump(&self.codes, code);
            }
        } else if v.get("ref").is_some() || v["type"] == "pong" {
            self.answered.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Server memory and descriptors over one probe.
#[derive(Debug, Default, Serialize, Clone, Copy)]
pub struct Gauge {
    /// At the start of the probe.
    pub start: u64,
    /// The highest sample.
    pub peak: u64,
    /// One second after the flood stopped.
    pub end: u64,
}

/// One probe's result: one JSON line.
#[derive(Debug, Serialize)]
pub struct ProbeReport {
    /// `--label`.
    pub label: String,
    /// Probe name.
    pub probe: String,
    /// What it does.
    pub what: String,
    /// False when the server did not understand the probe (e.g. a frame type it lacks).
    pub supported: bool,
    /// False when the probe could not run (setup failed; see `error`).
    pub ran: bool,
    /// Why it could not run.
    pub error: Option<String>,
    /// Seconds it flooded.
    pub secs: f64,
    /// Frames, requests or connections sent or opened.
    pub sent: u64,
    /// Bytes sent (raw probes).
    pub bytes: u64,
    /// Replies that were not errors.
    pub answered: u64,
    /// `rate_limited` answers.
    pub rate_limited: u64,
    /// Other error codes.
    pub codes: BTreeMap<String, u64>,
    /// How the flood's connections ended.
    pub closed: BTreeMap<String, u64>,
    /// HTTP statuses.
    pub statuses: BTreeMap<String, u64>,
    /// Most flood connections open at once (connection probes).
    pub max_open: u64,
    /// Flood connections still open when the probe ended.
    pub open_at_end: u64,
    /// Probe-specific facts.
    pub notes: Vec<String>,
    /// One line: what the flood achieved.
    pub achieved: String,
    /// The bystanders.
    pub bystander: bystander::Outcome,
    /// Server resident memory, KiB.
    pub rss_kb: Gauge,
    /// Server open descriptors.
    pub fds: Gauge,
    /// The server process still runs after the probe.
    pub server_alive: bool,
    /// `/healthz` answered 200 after the probe (five tries of 2 s each).
    pub healthz: bool,
    /// `/proc/loadavg` (1, 5, 15 min) at the end of the probe: how busy the machine was.
    pub load: String,
}

/// Accounts and tokens.
struct Accounts {
    tokens: BTreeMap<String, String>,
}

impl Accounts {
    fn token(&self, name: &str) -> Result<&str> {
        self.tokens
            .get(name)
            .map(String::as_str)
            .with_context(|| format!("no token for {name}"))
    }
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}
const BYSTANDER_IP: [u8; 4] = [127, 0, 0, 1];
const FLOOD_IP: [u8; 4] = [127, 0, 0, 2];
const VICTIM_IP: [u8; 4] = [127, 0, 0, 4];
fn at(a: [u8; 4]) -> IpAddr {
    ip(a[0], a[1], a[2], a[3])
}

/// Runs the plan; returns false when the server died (the remaining probes did not run).
pub async fn run(plan: Plan) -> Result<bool> {
    if plan.list {
        println!(
            "{}",
            PROBES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(",")
        );
        return Ok(true);
    }
    if plan.server.is_empty() || plan.pid == 0 {
        bail!("--server and --pid are required");
    }
    let selected: Vec<(&str, &str)> = PROBES
        .iter()
        .copied()
        .filter(|(n, _)| plan.probes.is_empty() || plan.probes.iter().any(|p| p == n))
        .filter(|(n, _)| !plan.skip.iter().any(|p| p == n))
        .collect();
    for p in plan.probes.iter().chain(&plan.skip) {
        if !PROBES.iter().any(|(n, _)| n == p) {
            bail!(
                "no probe {p:?}; probes: {}",
                PROBES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let mut names: Vec<String> = (0..bystander::SENDERS)
        .map(|k| format!("{}s{k}", plan.user_prefix))
        .collect();
    names.push(format!("{}rcv", plan.user_prefix));
    names.push(format!("{}victim", plan.user_prefix));
    for (p, _) in &selected {
        names.push(flooder(&plan, p));
    }
    let accounts = provision(&plan.server, &names).await?;
    // The room, created by the first sender.
    let mut http = HttpClient::new(&plan.server);
    let r = http
        .post(
            "/api/rooms",
            &format!(r#"{{"name":"{ROOM}"}}"#),
            Some(accounts.token(&names[0])?),
        )
        .await?;
    if r.status != 201 && r.status != 409 {
        bail!("creating {ROOM}: {} {}", r.status, r.body);
    }
    let mut reports = Vec::new();
    let mut alive = true;
    for (name, what) in &selected {
        if !alive {
            break;
        }
        eprintln!("[hostile] probe {name}: {what}");
        let report = probe(&plan, &accounts, name, what).await;
        alive = report.server_alive;
        println!("{}", serde_json::to_string(&report)?);
        eprintln!(
            "[hostile]   {} | bystander p50 {:.1} p99 {:.1} max {:.1} ms | RSS peak {:.1} MiB | fds peak {} | alive {}",
            report.achieved,
            report.bystander.latency_ms.p50,
            report.bystander.latency_ms.p99,
            report.bystander.latency_ms.max,
            report.rss_kb.peak as f64 / 1024.0,
            report.fds.peak,
            report.server_alive
        );
        reports.push(report);
    }
    if plan.table {
        println!();
        print_table(&reports);
    }
    Ok(alive)
}

fn flooder(plan: &Plan, probe: &str) -> String {
    // User names: 3–32 of [a-z0-9_.-], starting with a letter.
    let mut n = format!("{}f-{probe}", plan.user_prefix);
    n.truncate(32);
    n
}

/// Registers (or reuses) and logs in every account, account i from 127.0.4.(i+1), the
/// victim from its own address.
async fn provision(server: &str, names: &[String]) -> Result<Accounts> {
    // Four at a time: each register and login costs the server a bcrypt hash.
    let sem = Arc::new(tokio::sync::Semaphore::new(4));
    let mut handles = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let sem = sem.clone();
        let server = server.to_owned();
        let name = name.clone();
        // The failed-login probe's victim logs in where it always does (an address the
        // server then knows as the owner's); everyone else from an address of their own.
        let local = if name.ends_with("victim") {
            at(VICTIM_IP)
        } else {
            ip(127, 0, 4, (i % 250 + 1) as u8)
        };
        handles.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await?;
            let mut http = HttpClient::new(&server).bound_to(local);
            let creds = format!(r#"{{"username":"{name}","password":"{PASSWORD}"}}"#);
            let r = http.post("/api/auth/register", &creds, None).await?;
            if r.status != 201 && r.status != 409 {
                bail!("register {name}: {} {}", r.status, r.body);
            }
            let r = http.post("/api/auth/login", &creds, None).await?;
            if r.status != 200 {
                bail!("login {name}: {} {}", r.status, r.body);
            }
            let v: Value = serde_json::from_str(&r.body)?;
            let token = v["access"].as_str().context("no access token")?.to_owned();
            Ok::<_, anyhow::Error>((name, token))
        }));
    }
    let mut tokens = BTreeMap::new();
    for h in handles {
        let (n, t) = h.await??;
        tokens.insert(n, t);
    }
    Ok(Accounts { tokens })
}

/// True while `pid` runs (exists and is not a zombie).
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Samples `/proc/<pid>` every 50 ms on a thread of its own until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, u64)>,
}

fn rss_kb(pid: u32) -> u64 {
    crate::procfs::rss(pid).now_kb
}

fn fd_count(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

impl Sampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut rss, mut fds) = (0, 0);
            while !s.load(Ordering::SeqCst) {
                rss = rss.max(rss_kb(pid));
                fds = fds.max(fd_count(pid));
                std::thread::sleep(Duration::from_millis(50));
            }
            (rss, fds)
        });
        Self { stop, thread }
    }
    fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or((0, 0))
    }
}

/// CPU time the process has used, in clock ticks (`utime + stime` of `/proc/<pid>/stat`).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Waits (at most 60 s) until the server has used under 20% of a core for half a second,
/// so that work a probe left behind (password hashes still queued, connections still being
/// cut) does not land in the next probe's figures. Returns the seconds waited.
async fn settle(pid: u32) -> f64 {
    let started = Instant::now();
    // Clock ticks are 1/100 s on Linux.
    while started.elapsed() < Duration::from_secs(60) {
        let Some(before) = cpu_ticks(pid) else {
            break;
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Some(after) = cpu_ticks(pid) else {
            break;
        };
        if after.saturating_sub(before) <= 10 {
            break;
        }
    }
    started.elapsed().as_secs_f64()
}

/// Runs one probe with the bystanders and the sampler around it.
async fn probe(plan: &Plan, accounts: &Accounts, name: &str, what: &str) -> ProbeReport {
    let settled = settle(plan.pid).await;
    let tally = Arc::new(Tally::default());
    if settled > 1.0 {
        tally.note(format!(
            "(waited {settled:.0} s for the server to go quiet after the previous probe)"
        ));
    }
    let rss_start = rss_kb(plan.pid);
    let fds_start = fd_count(plan.pid);
    let by_cfg = match bystander_config(plan, accounts) {
        Ok(c) => c,
        Err(e) => return failed(plan, name, what, e, &tally),
    };
    let deadline = Duration::from_secs_f64(if name == "ping-no-read" && plan.long_secs > 0.0 {
        plan.long_secs
    } else {
        plan.secs
    });
    let stop = Arc::new(AtomicBool::new(false));
    // Set up the flood first (connections, joins), so only the flood itself is measured.
    let flood = match setup(plan, accounts, name, tally.clone(), stop.clone()).await {
        Ok(f) => f,
        Err(e) => return failed(plan, name, what, e, &tally),
    };
    let sampler = Sampler::start(plan.pid);
    let bystanders = match bystander::start(by_cfg) {
        Ok(b) => b,
        Err(e) => {
            stop.store(true, Ordering::SeqCst);
            let _ = sampler.finish();
            return failed(plan, name, what, e, &tally);
        }
    };
    let started = Instant::now();
    let flood_task = tokio::spawn(flood.run(deadline));
    tokio::time::sleep(deadline).await;
    stop.store(true, Ordering::SeqCst);
    let by = tokio::task::spawn_blocking(move || bystanders.finish()).await;
    let flood_result = tokio::time::timeout(Duration::from_secs(10), flood_task).await;
    let secs = started.elapsed().as_secs_f64();
    // Let the server notice the closed connections.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_peak, fds_peak) = sampler.finish();
    let rss_end = rss_kb(plan.pid);
    let fds_end = fd_count(plan.pid);
    let alive = process_alive(plan.pid);
    let mut healthz = false;
    for _ in 0..5 {
        if !alive || wire::healthz(&plan.server).await {
            healthz = alive;
            break;
        }
    }
    let mut error = None;
    match flood_result {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => error = Some(format!("flood: {e:#}")),
        Ok(Err(e)) => error = Some(format!("flood task: {e}")),
        Err(_) => error = Some("the flood did not stop within 10 s of its deadline".into()),
    }
    let bystander = match by {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            error.get_or_insert(format!("bystanders: {e:#}"));
            bystander::Outcome::default()
        }
        Err(e) => {
            error.get_or_insert(format!("bystanders: {e}"));
            bystander::Outcome::default()
        }
    };
    let codes = tally.codes.lock().clone();
    let answered = tally.answered.load(Ordering::Relaxed);
    let supported = !(codes.contains_key("unknown_type") && answered == 0);
    let mut report = ProbeReport {
        label: plan.label.clone(),
        probe: name.to_owned(),
        what: what.to_owned(),
        supported,
        ran: true,
        error,
        secs,
        sent: tally.sent.load(Ordering::Relaxed),
        bytes: tally.bytes.load(Ordering::Relaxed),
        answered,
        rate_limited: tally.rate_limited.load(Ordering::Relaxed),
        codes,
        closed: tally.closed.lock().clone(),
        statuses: tally.statuses.lock().clone(),
        max_open: tally.max_open.load(Ordering::SeqCst),
        open_at_end: tally.open.load(Ordering::SeqCst),
        notes: tally.notes.lock().clone(),
        achieved: String::new(),
        bystander,
        rss_kb: Gauge {
            start: rss_start,
            peak: rss_peak.max(rss_start),
            end: rss_end,
        },
        fds: Gauge {
            start: fds_start,
            peak: fds_peak.max(fds_start),
            end: fds_end,
        },
        server_alive: alive,
        healthz,
        load: std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
    };
    report.achieved = achieved(&report);
    report
}

fn failed(plan: &Plan, name: &str, what: &str, e: anyhow::Error, tally: &Tally) -> ProbeReport {
    let alive = process_alive(plan.pid);
    let mut r = ProbeReport {
        label: plan.label.clone(),
        probe: name.to_owned(),
        what: what.to_owned(),
        supported: true,
        ran: false,
        error: Some(format!("{e:#}")),
        secs: 0.0,
        sent: tally.sent.load(Ordering::Relaxed),
        bytes: 0,
        answered: 0,
        rate_limited: 0,
        codes: tally.codes.lock().clone(),
        closed: tally.closed.lock().clone(),
        statuses: tally.statuses.lock().clone(),
        max_open: 0,
        open_at_end: 0,
        notes: tally.notes.lock().clone(),
        achieved: String::new(),
        bystander: bystander::Outcome::default(),
        rss_kb: Gauge::default(),
        fds: Gauge::default(),
        server_alive: alive,
        healthz: false,
        load: String::new(),
    };
    r.achieved = format!("not run: {}", r.error.as_deref().unwrap_or(""));
    r
}

fn bystander_config(plan: &Plan, accounts: &Accounts) -> Result<bystander::Config> {
    let senders = (0..bystander::SENDERS)
        .map(|k| {
            accounts
                .token(&format!("{}s{k}", plan.user_prefix))
                .map(str::to_owned)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(bystander::Config {
        server: plan.server.clone(),
        room: ROOM.to_owned(),
        senders,
        receiver: accounts
            .token(&format!("{}rcv", plan.user_prefix))?
            .to_owned(),
        local: at(BYSTANDER_IP),
        names: (0..bystander::SENDERS)
            .map(|k| format!("{}s{k}", plan.user_prefix))
            .chain([format!("{}rcv", plan.user_prefix)])
            .collect(),
    })
}

fn map_text(m: &BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} ×{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One line for the table.
fn achieved(r: &ProbeReport) -> String {
    if !r.supported {
        return format!(
            "not supported by this build (answered {})",
            map_text(&r.codes)
        );
    }
    let mut parts = Vec::new();
    match r.probe.as_str() {
        "quiet" => parts.push("no flood".to_owned()),
        "oversized-frame" | "unfinished-message" | "ping-no-read" => {
            parts.push(format!(
                "{} sockets, {:.1} MiB sent, {} still open at the end",
                r.sent,
                r.bytes as f64 / 1048576.0,
                r.open_at_end
            ));
        }
        "connection-flood" | "slow-headers" | "slow-body" | "idle-keepalive"
        | "handshake-flood" => {
            parts.push(format!(
                "{} connections opened, at most {} open at once, {} open at the end",
                r.sent, r.max_open, r.open_at_end
            ));
        }
        "room-create" | "login-victim" => parts.push(format!("{} requests", r.sent)),
        _ => parts.push(format!(
            "{} frames: {} answered, {} rate_limited",
            r.sent, r.answered, r.rate_limited
        )),
    }
    if !r.codes.is_empty() {
        parts.push(format!("errors: {}", map_text(&r.codes)));
    }
    if !r.statuses.is_empty() {
        parts.push(format!("HTTP: {}", map_text(&r.statuses)));
    }
    if !r.closed.is_empty() {
        parts.push(format!("closed by the server: {}", map_text(&r.closed)));
    }
    if !r.bystander.flood_frames_at_receiver.is_empty() {
        parts.push(format!(
            "reached the bystander: {}",
            map_text(&r.bystander.flood_frames_at_receiver)
        ));
    }
    if !r.bystander.closed.is_empty() {
        parts.push(format!(
            "**bystander sockets closed: {}**",
            map_text(&r.bystander.closed)
        ));
    }
    if r.bystander.lost > 0 {
        parts.push(format!(
            "**bystander lost {} of {} messages**",
            r.bystander.lost, r.bystander.sent
        ));
    }
    if !r.bystander.errors.is_empty() {
        parts.push(format!(
            "bystander errors: {}",
            map_text(&r.bystander.errors)
        ));
    }
    parts.extend(r.notes.iter().cloned());
    if let Some(e) = &r.error {
        parts.push(format!("({e})"));
    }
    parts.join("; ")
}

/// The markdown table of one run.
pub fn print_table(reports: &[ProbeReport]) {
    println!(
        "| probe | what the flood achieved | bystander p50 / p99 / max (ms) | RSS peak (MB) | fds peak | server alive |"
    );
    println!("|---|---|--:|--:|--:|---|");
    for r in reports {
        let l = &r.bystander.latency_ms;
        println!(
            "| {} | {} | {:.1} / {:.1} / {:.1} | {:.1} | {} | {} |",
            r.probe,
            r.achieved.replace('|', "/"),
            l.p50,
            l.p99,
            l.max,
            r.rss_kb.peak as f64 / 1024.0,
            r.fds.peak,
            match (r.server_alive, r.healthz) {
                (true, true) => "yes",
                (true, false) => "yes, but `/healthz` did not answer within 10 s",
                (false, _) => "**no: died**",
            }
        );
    }
}

/// A flood, set up and ready to run until its deadline.
enum Flood {
    /// Nothing (the quiet baseline).
    Quiet,
    /// Frames on open WebSockets.
    Frames(FrameFlood),
    /// Raw sockets after the handshake: an oversized frame, an unfinished message, or
    /// pings never read.
    Raw(RawFlood),
    /// Connections: held, trickled, or handshakes.
    Conns(ConnFlood),
    /// Room creation over REST.
    Rooms {
        server: String,
        token: String,
        rate: f64,
        tally: Arc<Tally>,
        stop: Arc<AtomicBool>,
    },
    /// Failed logins against a victim.
    Logins {
        server: String,
        victim: String,
        tally: Arc<Tally>,
        stop: Arc<AtomicBool>,
    },
}

impl Flood {
    async fn run(self, secs: Duration) -> Result<()> {
        match self {
            Flood::Quiet => Ok(()),
            Flood::Frames(f) => f.run(secs).await,
            Flood::Raw(f) => f.run().await,
            Flood::Conns(f) => f.run().await,
            Flood::Rooms {
                server,
                token,
                rate,
                tally,
                stop,
            } => room_flood(server, token, rate, tally, stop).await,
            Flood::Logins {
                server,
                victim,
                tally,
                stop,
            } => login_flood(server, victim, tally, stop).await,
        }
    }
}

type FrameFn = Arc<dyn Fn(u64) -> String + Send + Sync>;

struct FrameFlood {
    sockets: Vec<bystander_ws::Ws>,
    make: FrameFn,
    rate: f64,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
}

mod bystander_ws {
    /// An open client WebSocket.
    pub type Ws = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;
}

impl FrameFlood {
    async fn run(self, secs: Duration) -> Result<()> {
        let n = self.sockets.len().max(1);
        let per_socket = self.rate / n as f64;
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (i, ws) in self.sockets.into_iter().enumerate() {
            let (mut sink, mut stream) = ws.split();
            let tally = self.tally.clone();
            let closing = self.stop.clone();
            let reader = tokio::spawn(async move {
                // Once the probe is over the flood closes its sockets itself: only what the
                // server closed before counts.
                while let Some(frame) = stream.next().await {
                    match frame {
                        Ok(Message::Text(t)) => tally.frame(t.as_str()),
                        Ok(Message::Close(c)) => {
                            if !closing.load(Ordering::SeqCst) {
                                let code = c.map_or("no code".to_owned(), |c| {
                                    u16::from(c.code).to_string()
                                });
                                bump(&tally.closed, &code);
                            }
                            break;
                        }
                        Ok(_) => {}
                        Err(_) => {
                            if !closing.load(Ordering::SeqCst) {
                                bump(&tally.closed, "reset");
                            }
                            break;
                        }
                    }
                }
            });
            let tally = self.tally.clone();
            let make = self.make.clone();
            let stop = self.stop.clone();
            tasks.push(tokio::spawn(async move {
                let mut sent = 0u64;
                let mut seq = i as u64;
                let mut tick = tokio::time::interval(Duration::from_millis(10));
                'outer: while !stop.load(Ordering::SeqCst) && start.elapsed() < secs {
                    let target = if per_socket > 0.0 {
                        tick.tick().await;
                        (start.elapsed().as_secs_f64() * per_socket) as u64
                    } else {
                        sent + 64
                    };
                    let mut batch = 0;
                    while sent < target && batch < 1000 {
                        if sink.feed(Message::text(make(seq))).await.is_err() {
                            break 'outer;
                        }
                        seq += n as u64;
                        sent += 1;
                        batch += 1;
                        tally.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    if sink.flush().await.is_err() {
                        break;
                    }
                    if per_socket <= 0.0 {
                        tokio::task::yield_now().await;
                    }
                }
                // Let the last answers arrive, then close.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
                let mut reader = reader;
                if tokio::time::timeout(Duration::from_secs(2), &mut reader)
                    .await
                    .is_err()
                {
                    reader.abort();
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    }
}

/// Raw-socket floods.
struct RawFlood {
    kind: RawKind,
    /// Pings a second, summed over the sockets (`PingNoRead`).
    rate: f64,
    streams: Vec<tokio::net::TcpStream>,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RawKind {
    Oversized,
    Unfinished,
    PingNoRead,
}

impl RawFlood {
    async fn run(self) -> Result<()> {
        let mut tasks = Vec::new();
        let per_socket = self.rate / self.streams.len().max(1) as f64;
        for stream in self.streams {
            let tally = self.tally.clone();
            let stop = self.stop.clone();
            let kind = self.kind;
            tasks.push(tokio::spawn(async move {
                tally.opened();
                let (mut r, mut w) = stream.into_split();
                let ended = Arc::new(Mutex::new(None::<String>));
                let reader = {
                    let ended = ended.clone();
                    let read = !matches!(kind, RawKind::PingNoRead);
                    tokio::spawn(async move {
                        if read {
                            let how = wire::read_until_close(&mut r).await;
                            *ended.lock() = Some(how);
                        } else {
                            // Never read; keep the read half alive.
                            let _r = r;
                            std::future::pending::<()>().await;
                        }
                    })
                };
                // 1 MiB/s per socket in 64 KiB writes (16 a second); pings at `per_socket`
                // a second, in batches every 10 ms.
                let chunk = vec![b'x'; 64 * 1024];
                let ping = wire::frame(true, wire::PING, &[b'p'; 125]);
                let started = Instant::now();
                let mut pings_sent = 0u64;
                let mut batch = Vec::new();
                let first = match kind {
                    RawKind::Oversized => wire::frame_header(true, wire::TEXT, 1 << 40),
                    RawKind::Unfinished => wire::frame(false, wire::TEXT, &[b'x'; 1024]),
                    RawKind::PingNoRead => Vec::new(),
                };
                let mut result = "open at the end".to_owned();
                if w.write_all(&first).await.is_err() {
                    result = "write refused".to_owned();
                }
                tally.bytes.fetch_add(first.len() as u64, Ordering::Relaxed);
                let cont = wire::frame(false, wire::CONTINUATION, &chunk);
                let mut tick = tokio::time::interval(Duration::from_millis(62));
                let mut ping_tick = tokio::time::interval(Duration::from_millis(10));
                while result == "open at the end"
                    && !stop.load(Ordering::SeqCst)
                    && ended.lock().is_none()
                {
                    let data: &[u8] = match kind {
                        RawKind::Oversized => {
                            tick.tick().await;
                            &chunk
                        }
                        RawKind::Unfinished => {
                            tick.tick().await;
                            &cont
                        }
                        RawKind::PingNoRead => {
                            // Unpaced (rate 0): 200 pings a write, as fast as the socket
                            // takes them, so the kernel buffers fill within seconds.
                            let due = if per_socket > 0.0 {
                                ping_tick.tick().await;
                                (started.elapsed().as_secs_f64() * per_socket) as u64
                            } else {
                                pings_sent + 200
                            };
                            batch.clear();
                            while pings_sent < due && batch.len() < 200 * ping.len() {
                                batch.extend_from_slice(&ping);
                                pings_sent += 1;
                            }
                            &batch
                        }
                    };
                    // A write the server does not take within a second is a stalled socket;
                    // try again (the deadline bounds it).
                    match tokio::time::timeout(Duration::from_secs(1), w.write_all(data)).await {
                        Ok(Ok(())) => {
                            tally.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                        }
                        Ok(Err(_)) => result = "reset (write failed)".to_owned(),
                        Err(_) => {}
                    }
                }
                // For readers, give the close a moment to arrive.
                for _ in 0..20 {
                    if ended.lock().is_some() || matches!(kind, RawKind::PingNoRead) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let how = ended.lock().clone().unwrap_or(result);
                reader.abort();
                if how != "open at the end" {
                    tally.closed_one();
                    bump(&tally.closed, &how);
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    }
}

/// Connection floods.
struct ConnFlood {
    kind: ConnKind,
    /// The one address the flood comes from.
    local: IpAddr,
    server: String,
    conns: usize,
    rate: f64,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ConnKind {
    /// Connect and say nothing.
    Silent,
    /// A request head, a byte a second.
    SlowHead,
    /// A login head announcing 60,000 bytes, then a byte a second.
    SlowBody,
    /// One `/healthz`, then idle.
    IdleKeepAlive,
    /// WebSocket upgrades with a bad token, one per connection.
    Handshakes,
}

impl ConnFlood {
    async fn run(self) -> Result<()> {
        if self.kind == ConnKind::Handshakes {
            return handshake_flood(self).await;
        }
        let mut tasks = Vec::new();
        for slot in 0..self.conns {
            let server = self.server.clone();
            let tally = self.tally.clone();
            let stop = self.stop.clone();
            let kind = self.kind;
            let local = self.local;
            // 200 new connections a second at most.
            let delay = Duration::from_millis((slot as u64 * 1000) / 200);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                while !stop.load(Ordering::SeqCst) {
                    let how = one_slow_connection(&server, local, kind, &tally, &stop).await;
                    if let Some(how) = how {
                        bump(&tally.closed, &how);
                    } else {
                        break;
                    }
                    // Reconnect a second after being cut off.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    }
}

/// One connection of a slow-client probe: returns how the server ended it, or None when the
/// probe ended first (the connection was still open).
async fn one_slow_connection(
    server: &str,
    local: IpAddr,
    kind: ConnKind,
    tally: &Tally,
    stop: &AtomicBool,
) -> Option<String> {
    let Ok(stream) = wire::connect_from(server, local).await else {
        bump(&tally.statuses, "connect failed");
        return Some("connect failed".to_owned());
    };
    tally.sent.fetch_add(1, Ordering::Relaxed);
    tally.opened();
    let (mut r, mut w) = stream.into_split();
    let head: Vec<u8> = match kind {
        ConnKind::SlowHead => format!("GET /healthz HTTP/1.1\r\nHost: {server}\r\nX-Slow: ").into_bytes(),
        ConnKind::SlowBody => format!(
            "POST /api/auth/login HTTP/1.1\r\nHost: {server}\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n"
        )
        .into_bytes(),
        ConnKind::IdleKeepAlive => format!("GET /healthz HTTP/1.1\r\nHost: {server}\r\n\r\n").into_bytes(),
        ConnKind::Silent | ConnKind::Handshakes => Vec::new(),
    };
    // The head of a slow head goes a byte a second from its first byte; the others at once.
    let (at_once, trickle): (&[u8], bool) = match kind {
        ConnKind::SlowHead => (&head[..0], true),
        ConnKind::SlowBody => (&head[..], true),
        _ => (&head[..], false),
    };
    if !at_once.is_empty() && w.write_all(at_once).await.is_err() {
        tally.closed_one();
        return Some("reset at the head".to_owned());
    }
    let reader = async {
        use tokio::io::AsyncReadExt;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut answered: Option<u16> = None;
        loop {
            match r.read(&mut chunk).await {
                Ok(0) | Err(_) => return answered,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    // Count each response head once; idle keep-alive expects a 200 first.
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let status = wire::status_of(&buf[..end]).unwrap_or(0);
                        bump(&tally.statuses, &status.to_string());
                        answered = Some(status);
                        // Drop the head and a Content-Length body (healthz bodies are small
                        // and arrive with the head).
                        buf.clear();
                    }
                }
            }
        }
    };
    let writer = async {
        let mut i = 0usize;
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            if trickle {
                let byte: &[u8] = match kind {
                    ConnKind::SlowHead => {
                        let h = &head[..];
                        if i < h.len() { &h[i..=i] } else { b"a" }
                    }
                    _ => b"x",
                };
                if w.write_all(byte).await.is_err() {
                    std::future::pending::<()>().await;
                }
                i += 1;
            }
        }
    };
    tokio::select! {
        answered = reader => {
            tally.closed_one();
            Some(match answered { Some(s) => format!("closed after {s}"), None => "closed without an answer".to_owned() })
        }
        () = writer => {
            None
        }
    }
}

async fn handshake_flood(f: ConnFlood) -> Result<()> {
    let per_sec = if f.rate > 0.0 { f.rate } else { 500.0 };
    let start = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(256));
    let mut n = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while !f.stop.load(Ordering::SeqCst) {
        tick.tick().await;
        let target = (start.elapsed().as_secs_f64() * per_sec) as u64;
        while n < target {
            let Ok(permit) = sem.clone().try_acquire_owned() else {
                bump(&f.tally.statuses, "skipped (256 in flight)");
                n += 1;
                continue;
            };
            n += 1;
            let tally = f.tally.clone();
            let server = f.server.clone();
            let local = f.local;
            tokio::spawn(async move {
                let _permit = permit;
                tally.sent.fetch_add(1, Ordering::Relaxed);
                tally.opened();
                let r = tokio::time::timeout(
                    Duration::from_secs(5),
                    wire::ws_handshake(&server, local, "not-a-token", false),
                )
                .await;
                let how = match r {
                    Ok(Ok((_, status))) => status.to_string(),
                    Ok(Err(_)) => "reset".to_owned(),
                    Err(_) => "no answer in 5 s".to_owned(),
                };
                bump(&tally.statuses, &how);
                tally.open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    }
    // Wait for those in flight.
    let _ = tokio::time::timeout(Duration::from_secs(6), sem.acquire_many(256)).await;
    Ok(())
}

async fn room_flood(
    server: String,
    token: String,
    rate: f64,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let workers = 4usize;
    let per = if rate > 0.0 {
        rate / workers as f64
    } else {
        0.0
    };
    let start = Instant::now();
    let mut tasks = Vec::new();
    for wk in 0..workers {
        let (server, token, tally, stop) =
            (server.clone(), token.clone(), tally.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut http = HttpClient::new(&server).bound_to(at(FLOOD_IP));
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                if per > 0.0 {
                    let due = start + Duration::from_secs_f64(i as f64 / per);
                    tokio::time::sleep_until(due.into()).await;
                }
                let body = format!(r#"{{"name":"flood-{wk}-{i}"}}"#);
                i += 1;
                tally.sent.fetch_add(1, Ordering::Relaxed);
                match tokio::time::timeout(
                    Duration::from_secs(5),
                    http.post("/api/rooms", &body, Some(&token)),
                )
                .await
                {
                    Ok(Ok(r)) => bump(&tally.statuses, &r.status.to_string()),
                    Ok(Err(_)) => bump(&tally.statuses, "failed"),
                    Err(_) => bump(&tally.statuses, "no answer in 5 s"),
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let created = tally.statuses.lock().get("201").copied().unwrap_or(0);
    tally.note(format!("{created} rooms created"));
    Ok(())
}

async fn login_flood(
    server: String,
    victim: String,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    // The victim: the right password every second from its own address.
    let victim_results = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let v = {
        let (server, victim, stop, results) = (
            server.clone(),
            victim.clone(),
            stop.clone(),
            victim_results.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let mut http = HttpClient::new(&server).bound_to(at(VICTIM_IP));
                let creds = format!(r#"{{"username":"{victim}","password":"{PASSWORD}"}}"#);
                let r = tokio::time::timeout(
                    Duration::from_secs(5),
                    http.post("/api/auth/login", &creds, None),
                )
                .await;
                let key = match r {
                    Ok(Ok(r)) => r.status.to_string(),
                    Ok(Err(_)) => "failed".to_owned(),
                    Err(_) => "no answer in 5 s".to_owned(),
                };
                bump(&results, &key);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    // The attackers: 20 wrong logins a second, each from the next of 250 addresses.
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let start = Instant::now();
    let mut n = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        let target = (start.elapsed().as_secs_f64() * 20.0) as u64;
        while n < target {
            n += 1;
            let Ok(permit) = sem.clone().try_acquire_owned() else {
                bump(&tally.statuses, "skipped (64 in flight)");
                continue;
            };
            let (server, victim, tally) = (server.clone(), victim.clone(), tally.clone());
            let local = ip(127, 0, 3, (n % 250 + 1) as u8);
            tokio::spawn(async move {
                let _permit = permit;
                tally.sent.fetch_add(1, Ordering::Relaxed);
                let mut http = HttpClient::new(&server).bound_to(local);
                let creds = format!(r#"{{"username":"{victim}","password":"wrong-password-{n}"}}"#);
                let r = tokio::time::timeout(
                    Duration::from_secs(5),
                    http.post("/api/auth/login", &creds, None),
                )
                .await;
                let key = match r {
                    Ok(Ok(r)) => r.status.to_string(),
                    Ok(Err(_)) => "failed".to_owned(),
                    Err(_) => "no answer in 5 s".to_owned(),
                };
                bump(&tally.statuses, &key);
            });
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(6), sem.acquire_many(64)).await;
    let _ = v.await;
    let results = victim_results.lock().clone();
    let ok = results.get("200").copied().unwrap_or(0);
    let total: u64 = results.values().sum();
    tally.note(format!(
        "**the victim's right password: {ok} of {total} logins succeeded** ({})",
        map_text(&results)
    ));
    Ok(())
}

/// Opens `n` sockets of `token` from the flood address, each joined to the room.
async fn flood_sockets(server: &str, token: &str, n: usize) -> Result<Vec<bystander_ws::Ws>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(
            wire::open_joined(server, at(FLOOD_IP), token, ROOM, Duration::from_secs(20)).await?,
        );
    }
    Ok(v)
}

/// Sends one frame on `ws` and waits for the reply with `ref`: returns it.
async fn ask(ws: &mut bystander_ws::Ws, frame: Value) -> Result<Value> {
    let reference = frame["ref"].as_str().unwrap_or("").to_owned();
    ws.send(Message::text(frame.to_string())).await?;
    let wait = async {
        while let Some(m) = ws.next().await {
            if let Message::Text(t) = m? {
                let v: Value = serde_json::from_str(t.as_str())?;
                if v["ref"] == reference.as_str() {
                    return Ok(v);
                }
            }
        }
        bail!("closed before the reply")
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .context("no reply in 10 s")?
}

/// Prepares probe `name`: connections, joins, the frame to flood.
async fn setup(
    plan: &Plan,
    accounts: &Accounts,
    name: &str,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) -> Result<Flood> {
    let server = plan.server.clone();
    let me = flooder(plan, name);
    let token = accounts.token(&me)?.to_owned();
    let receiver = format!("{}rcv", plan.user_prefix);
    let rate = plan.flood_rate;
    let frames = |sockets: Vec<bystander_ws::Ws>, make: FrameFn| {
        Ok(Flood::Frames(FrameFlood {
            sockets,
            make,
            rate,
            tally: tally.clone(),
            stop: stop.clone(),
        }))
    };
    match name {
        "quiet" => Ok(Flood::Quiet),
        "join" => {
            let s = flood_sockets(&server, &token, 16).await?;
            frames(
                s,
                Arc::new(|n| {
                    // Frame n goes to socket n mod 16: each socket alternates.
                    let t = if (n / 16) % 2 == 0 { "leave" } else { "join" };
                    format!(r#"{{"type":"{t}","room":"{ROOM}","ref":"f{n}"}}"#)
                }),
            )
        }
        "send" => {
            let s = flood_sockets(&server, &token, 4).await?;
            frames(
                s,
                Arc::new(|n| {
                    format!(r#"{{"type":"send","room":"{ROOM}","body":"flood {n}","ref":"f{n}"}}"#)
                }),
            )
        }
        "edit" | "delete" | "read" => {
            let mut s = flood_sockets(&server, &token, 4).await?;
            let m = ask(
                &mut s[0],
                json!({"type":"send","room":ROOM,"body":"target","ref":"t"}),
            )
            .await?;
            let id = m["id"]
                .as_i64()
                .with_context(|| format!("no message id in {m}"))?;
            let make: FrameFn = match name {
                "edit" => Arc::new(move |n| {
                    format!(
                        r#"{{"type":"edit","message_id":{id},"body":"flood {n}","ref":"f{n}"}}"#
                    )
                }),
                "delete" => Arc::new(move |n| {
                    format!(r#"{{"type":"delete","message_id":{id},"ref":"f{n}"}}"#)
                }),
                _ => Arc::new(move |n| {
                    format!(r#"{{"type":"read","room":"{ROOM}","message_id":{id},"ref":"f{n}"}}"#)
                }),
            };
            frames(s, make)
        }
        "typing" => {
            let s = flood_sockets(&server, &token, 16).await?;
            frames(
                s,
                Arc::new(|n| {
                    format!(r#"{{"type":"typing","room":"{ROOM}","active":true,"ref":"f{n}"}}"#)
                }),
            )
        }
        "history" => {
            let s = flood_sockets(&server, &token, 4).await?;
            frames(
                s,
                Arc::new(|n| {
                    format!(r#"{{"type":"history","room":"{ROOM}","limit":100,"ref":"f{n}"}}"#)
                }),
            )
        }
        "signal" | "signal-large" => {
            let s = flood_sockets(&server, &token, 4).await?;
            let pad = if name == "signal" {
                "x".to_owned()
            } else {
                "x".repeat(15_000)
            };
            frames(
                s,
                Arc::new(move |n| {
                    format!(
                        r#"{{"type":"signal","to":"{receiver}","payload":{{"sdp":"{pad}"}},"call_id":"c{n}","ref":"f{n}"}}"#
                    )
                }),
            )
        }
        "renew" => {
            let s = flood_sockets(&server, &token, 4).await?;
            let t = token.clone();
            frames(
                s,
                Arc::new(move |n| format!(r#"{{"type":"renew","token":"{t}","ref":"f{n}"}}"#)),
            )
        }
        "ping" => {
            let s = flood_sockets(&server, &token, 4).await?;
            frames(
                s,
                Arc::new(|n| format!(r#"{{"type":"ping","ref":"f{n}"}}"#)),
            )
        }
        "edit-delete-unknown" => {
            let s = flood_sockets(&server, &token, 4).await?;
            frames(
                s,
                Arc::new(|n| {
                    let id = (n * 7919) % 1_000_000 + 1;
                    if n % 2 == 0 {
                        format!(r#"{{"type":"edit","message_id":{id},"body":"x","ref":"f{n}"}}"#)
                    } else {
                        format!(r#"{{"type":"delete","message_id":{id},"ref":"f{n}"}}"#)
                    }
                }),
            )
        }
        "oversized-frame" | "unfinished-message" | "ping-no-read" => {
            let (kind, n) = match name {
                "oversized-frame" => (RawKind::Oversized, 3),
                "unfinished-message" => (RawKind::Unfinished, 3),
                _ => (RawKind::PingNoRead, 16),
            };
            let mut streams = Vec::new();
            for _ in 0..n {
                let (s, status) =
                    wire::ws_handshake(&server, at(FLOOD_IP), &token, kind == RawKind::PingNoRead)
                        .await?;
                if status != 101 {
                    bail!("handshake answered {status}");
                }
                tally.sent.fetch_add(1, Ordering::Relaxed);
                streams.push(s);
            }
            // Pings are not paced: the point is to fill the buffers of a client that does not
            // read, which at a few thousand a second takes minutes.
            Ok(Flood::Raw(RawFlood {
                kind,
                rate: 0.0,
                streams,
                tally,
                stop,
            }))
        }
        "connection-flood" | "slow-headers" | "slow-body" | "idle-keepalive"
        | "handshake-flood" => {
            // Each from an address of its own (ports in TIME_WAIT are per address).
            let (kind, last) = match name {
                "connection-flood" => (ConnKind::Silent, 3),
                "slow-headers" => (ConnKind::SlowHead, 5),
                "slow-body" => (ConnKind::SlowBody, 6),
                "idle-keepalive" => (ConnKind::IdleKeepAlive, 7),
                _ => (ConnKind::Handshakes, 8),
            };
            let local = ip(127, 0, 0, last);
            Ok(Flood::Conns(ConnFlood {
                kind,
                local,
                server,
                conns: 1000,
                rate: plan.flood_rate / 4.0,
                tally,
                stop,
            }))
        }
        "room-create" => Ok(Flood::Rooms {
            server,
            token,
            rate: plan.flood_rate / 4.0,
            tally,
            stop,
        }),
        "login-victim" => Ok(Flood::Logins {
            server,
            victim: format!("{}victim", plan.user_prefix),
            tally,
            stop,
        }),
        other => bail!("no probe {other}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic in a test is a failed assertion
mod tests {
    use super::*;

    #[test]
    fn flood_frames_are_counted_by_kind() {
        let t = Tally::default();
        t.frame(r#"{"type":"error","code":"rate_limited","message":"wait","ref":"f1"}"#);
        t.frame(r#"{"type":"error","code":"conflict","message":"x","ref":"f2"}"#);
        t.frame(r#"{"type":"pong","ref":"f3"}"#);
        t.frame(r#"{"type":"typing","room":"r","user":"u","active":true}"#);
        assert_eq!(t.rate_limited.load(Ordering::Relaxed), 1);
        assert_eq!(t.answered.load(Ordering::Relaxed), 1);
        assert_eq!(t.codes.lock().get("conflict"), Some(&1));
    }

    #[test]
    fn every_probe_name_makes_a_valid_user_name() {
        let plan = Plan {
            server: "127.0.0.1:1".into(),
            pid: 1,
            secs: 1.0,
            long_secs: 0.0,
            flood_rate: 1.0,
            probes: vec![],
            skip: vec![],
            label: String::new(),
            user_prefix: "h".into(),
            table: false,
            list: false,
        };
        for (p, _) in PROBES {
            let n = flooder(&plan, p);
            assert!((3..=32).contains(&n.len()), "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{n}"
            );
        }
    }
}
