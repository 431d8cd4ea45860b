//! The scale run (issue 19, item 3): many server processes on one Redis and one database,
//! tens of thousands of authenticated sockets held by several generator processes, and the
//! checks that say the cluster is right, not merely up.
//!
//! Layout:
//! - `layout`: who is in which room and on which server (the same arithmetic everywhere);
//! - `worker`: one generator process (`parley-bench scale-worker`), its clients, senders and
//!   read-backs, driven by JSON lines on stdin;
//! - this module: the *conductor* (`parley-bench scale`), which starts the generators (each
//!   from its own loopback address: 127.0.0.2, 127.0.0.3, …, so each has its own ephemeral
//!   ports and, being its own process, its own descriptor limit), runs the phases and reports.
//!
//! The phases, each a check that can fail:
//! 1. **connect**: every client authenticates and joins its room (rooms created once by the
//!    conductor, accounts provisioned by the generators in parallel over every server);
//! 2. **memory**: the servers' summed RSS with every socket open, minus before, per socket;
//! 3. **presence**: `GET /api/rooms/{room}/online` on every server, for every room, equals the
//!    members the generators hold joined (polled until it does, or the wait runs out);
//! 4. **delivery**: member 0 of each probed room (every room spans every server) sends
//!    numbered messages; every member must get each exactly once;
//! 5. **rolling restart**: senders on every server send with `client_id`s; one server gets
//!    SIGTERM; its clients move to the others and re-send what was not acknowledged; every
//!    acknowledged message must then be in its room's history, once. If a supervisor starts
//!    the process again (as `scripts/scale.sh` does), presence and delivery are checked again
//!    with it back in the cluster.
//!
//! The conductor signals server processes (SIGTERM through `kill`), nothing else; servers,
//! Redis and the database are the caller's (`scripts/scale.sh`).

mod layout;
pub mod worker;

use crate::http::HttpClient;
use crate::procfs::rss;
use anyhow::{Context, Result, bail};
pub use layout::Layout;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use worker::{Command, Connected, PASSWORD, ProbeCount, Status, Verified};

/// The memory goal per socket, bytes (issue 19: ≤ 10 KB).
const MEMORY_GOAL_BYTES: u64 = 10_000;

/// What to run.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct Plan {
    /// Who is where.
    #[command(flatten)]
    pub layout: Layout,
    /// Per server, in `--server` order: a file holding its process id (re-read at every
    /// reading: a supervisor that restarts the process writes the new one).
    #[arg(long = "pid-file", required = true)]
    pub pid_files: Vec<PathBuf>,
    /// Other processes whose memory is reported apart (say, `redis=1234`).
    #[arg(long = "also-pid", value_parser = parse_named_pid)]
    pub also_pids: Vec<(String, u32)>,
    /// Generator processes (each needs a descriptor per client it holds).
    #[arg(long, default_value_t = 8)]
    pub generators: usize,
    /// The first generator's source address; generator j uses this + j.
    #[arg(long, default_value = "127.0.0.2")]
    pub first_source_addr: Ipv4Addr,
    /// Connections opened at once, per generator.
    #[arg(long, default_value_t = 32)]
    pub connect_concurrency: usize,
    /// Keep-alive HTTP connections provisioning accounts, per generator.
    #[arg(long, default_value_t = 8)]
    pub http_workers: usize,
    /// Longest connect phase, seconds.
    #[arg(long, default_value_t = 1800.0)]
    pub connect_secs: f64,
    /// Seconds between the last `joined` and the memory reading.
    #[arg(long, default_value_t = 10.0)]
    pub settle_secs: f64,
    /// Longest wait for `/online` to equal the truth, seconds.
    #[arg(long, default_value_t = 120.0)]
    pub presence_wait_secs: f64,
    /// Rooms probed in the delivery check (each spans every server).
    #[arg(long, default_value_t = 20)]
    pub probe_rooms: usize,
    /// Messages per probed room.
    #[arg(long, default_value_t = 5)]
    pub probe_messages: u32,
    /// Rooms with senders in the rolling restart (one sender per server in each).
    #[arg(long, default_value_t = 20)]
    pub sender_rooms: usize,
    /// Messages per second per sender (one in flight at a time).
    #[arg(long, default_value_t = 1.0)]
    pub send_rate: f64,
    /// The server (index) stopped in the rolling restart; default the last.
    #[arg(long)]
    pub restart: Option<usize>,
    /// Skip the rolling restart.
    #[arg(long)]
    pub no_restart: bool,
    /// Seconds of sending before the SIGTERM.
    #[arg(long, default_value_t = 5.0)]
    pub send_before_secs: f64,
    /// Seconds of sending after every client is back.
    #[arg(long, default_value_t = 5.0)]
    pub send_after_secs: f64,
    /// Longest wait for the stopped server's clients to be back, seconds.
    #[arg(long, default_value_t = 600.0)]
    pub reconnect_wait_secs: f64,
}

fn parse_named_pid(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s.split_once('=').ok_or("expected NAME=PID")?;
    Ok((name.to_owned(), pid.parse().map_err(|e| format!("{e}"))?))
}

/// A check's verdict with its figures.
#[derive(Debug, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it held.
    pub ok: bool,
    /// What was measured, as text.
    pub detail: String,
}

/// Memory readings.
#[derive(Debug, Default, Serialize)]
pub struct Memory {
    /// Summed server RSS before any socket, KiB.
    pub before_kb: u64,
    /// Summed server RSS with the first half of the sockets open, KiB.
    pub half_kb: u64,
    /// Sockets open at that reading.
    pub half_sockets: usize,
    /// Summed server RSS with every socket open and idle, KiB.
    pub connected_kb: u64,
    /// (connected − before) / sockets, bytes.
    pub bytes_per_socket: u64,
    /// (connected − half) / sockets of the second half, bytes.
    pub marginal_bytes_per_socket: u64,
    /// Per server: sockets on it and its RSS before and connected, KiB.
    pub per_server: Vec<(usize, u64, u64)>,
    /// Other processes (`--also-pid`): name, RSS before and connected, KiB.
    pub others: Vec<(String, u64, u64)>,
    /// Summed server RSS at the end of the run, KiB.
    pub end_kb: u64,
    /// Each server's RSS at the end of the run (a restarted one holds no socket), KiB.
    pub end_per_server_kb: Vec<u64>,
}

/// A presence comparison.
#[derive(Debug, Default, Serialize)]
pub struct Presence {
    /// When it was taken.
    pub phase: String,
    /// Servers asked.
    pub servers: usize,
    /// `GET /online` answers compared (rooms × servers), in the last pass.
    pub compared: usize,
    /// Answers that differed from the truth in the last pass.
    pub mismatches: usize,
    /// Seconds until every answer equalled the truth (or the wait ran out).
    pub secs: f64,
    /// Passes made.
    pub passes: usize,
    /// Per server asked: (index, answers that differed in the last pass).
    pub per_server: Vec<(usize, usize)>,
    /// A few of the differences.
    pub examples: Vec<String>,
}

/// A delivery probe.
#[derive(Debug, Default, Serialize)]
pub struct Delivery {
    /// When it was taken.
    pub phase: String,
    /// Rooms probed.
    pub rooms: usize,
    /// Messages per room.
    pub messages: u32,
    /// Members of the probed rooms.
    pub members: usize,
    /// Deliveries expected: members × messages (the sender's own copy included).
    pub expected: u64,
    /// First copies received.
    pub received: u64,
    /// Copies a member already had.
    pub duplicates: u64,
    /// Probe copies of another round.
    pub strays: u64,
    /// The fewest server processes one probed room's members were on.
    pub min_servers_spanned: u32,
    /// Seconds from the first probe sent to the last delivery (or the wait's end).
    pub secs: f64,
    /// Members still missing a message (a few).
    pub incomplete: Vec<usize>,
}

/// The rolling restart.
#[derive(Debug, Default, Serialize)]
pub struct Restart {
    /// Index of the server stopped.
    pub server: usize,
    /// Clients on it when it was stopped.
    pub clients_on_it: usize,
    /// Clients whose socket dropped.
    pub dropped_clients: usize,
    /// Seconds from the SIGTERM to the last of them joined elsewhere.
    pub reconnect_secs: f64,
    /// Seconds from the SIGTERM to the process's exit (seen within the reconnect wait).
    pub exit_secs: Option<f64>,
    /// Seconds from the SIGTERM until the restarted process answered (when a supervisor
    /// restarted it).
    pub back_secs: Option<f64>,
    /// Joined clients per server after the move.
    pub per_server_after: Vec<usize>,
    /// What the senders' messages became.
    pub messages: Verified,
    /// Error frames the clients received over the run, by code.
    pub error_codes: std::collections::BTreeMap<String, u64>,
}

/// What a scale run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The plan, as run.
    pub plan: Plan,
    /// Every check held.
    pub ok: bool,
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// Seconds to create the rooms.
    pub rooms_secs: f64,
    /// Seconds for the generators to provision their accounts (the slowest).
    pub provision_secs: f64,
    /// Sockets joined after the connect phase.
    pub joined: usize,
    /// Seconds from `connect` to the last generator's last join.
    pub connect_secs: f64,
    /// Per client connect-to-joined ms, worst generator: p50, p99, max.
    pub connect_ms: [f64; 3],
    /// Failed connection attempts during the connect phase (each retried).
    pub connect_failures: u64,
    /// Joined sockets per server after connecting.
    pub per_server: Vec<usize>,
    /// Memory.
    pub memory: Memory,
    /// Presence comparisons.
    pub presence: Vec<Presence>,
    /// Delivery probes.
    pub delivery: Vec<Delivery>,
    /// The rolling restart, if run.
    pub restart: Option<Restart>,
    /// Seconds the whole run took.
    pub total_secs: f64,
}

#[allow(clippy::print_stderr)]
fn progress(msg: &str) {
    eprintln!("[scale {}] {msg}", clock());
}

/// `HH:MM:SS` UTC, for the progress lines.
fn clock() -> String {
    let s = now_ms() / 1000;
    format!("{:02}:{:02}:{:02}", (s / 3600) % 24, (s / 60) % 60, s % 60)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One generator process and its pipes.
struct Generator {
    index: usize,
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Generator {
    async fn tell(&mut self, command: &Command) -> Result<()> {
        let mut line = serde_json::to_string(command)?;
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .with_context(|| format!("generator {} is gone", self.index))?;
        self.stdin.flush().await?;
        Ok(())
    }

    async fn answer<T: DeserializeOwned>(&mut self, wait: Duration) -> Result<T> {
        let line = tokio::time::timeout(wait, self.lines.next_line())
            .await
            .with_context(|| format!("generator {} did not answer in {wait:?}", self.index))??;
        let Some(line) = line else {
            let status = self.child.try_wait().ok().flatten();
            bail!("generator {} exited ({status:?})", self.index);
        };
        serde_json::from_str(&line)
            .with_context(|| format!("generator {} answered {line:?}", self.index))
    }
}

/// Tells every generator `command` and collects one answer from each.
async fn all<T: DeserializeOwned>(
    gens: &mut [Generator],
    command: &Command,
    wait: Duration,
) -> Result<Vec<T>> {
    for g in gens.iter_mut() {
        g.tell(command).await?;
    }
    let mut out = Vec::with_capacity(gens.len());
    for g in gens.iter_mut() {
        out.push(g.answer(wait).await?);
    }
    Ok(out)
}

/// Runs the whole scale plan and reports.
pub async fn run(plan: Plan) -> Result<Report> {
    let t_run = Instant::now();
    let layout = &plan.layout;
    for s in &layout.servers {
        if !s.starts_with("127.") {
            bail!("{s}: only loopback servers are allowed");
        }
    }
    if plan.pid_files.len() != layout.servers.len() {
        bail!(
            "{} --pid-file for {} --server: give one per server, in the same order",
            plan.pid_files.len(),
            layout.servers.len()
        );
    }
    if layout.clients == 0 || layout.rooms == 0 || plan.generators == 0 {
        bail!("--clients, --rooms and --generators must be at least 1");
    }
    let servers = layout.servers.len();
    if servers > 64 {
        bail!("at most 64 servers");
    }
    let restart = (!plan.no_restart).then(|| plan.restart.unwrap_or(servers - 1));
    if restart.is_some_and(|r| r >= servers) || (restart.is_some() && servers < 2) {
        bail!("--restart names no server, or there is no other server to move to");
    }
    let probe_rooms = plan.probe_rooms.min(layout.rooms);
    let mut checks = Vec::new();

    // Rooms, once, by the conductor's own account.
    let t = Instant::now();
    let admin = admin_token(layout).await?;
    create_rooms(layout, &admin).await?;
    let rooms_secs = t.elapsed().as_secs_f64();
    progress(&format!("{} rooms ready in {rooms_secs:.1}s", layout.rooms));

    // Generators: each provisions its slice's accounts, then waits.
    let mut gens = spawn_generators(&plan)?;
    let t = Instant::now();
    let mut provision_secs: f64 = 0.0;
    for g in gens.iter_mut() {
        let ready: serde_json::Value = g.answer(Duration::from_secs(7200)).await?;
        provision_secs = provision_secs.max(ready["provision_secs"].as_f64().unwrap_or(0.0));
    }
    progress(&format!(
        "{} accounts ready in {:.1}s ({} generators)",
        layout.clients,
        t.elapsed().as_secs_f64(),
        gens.len()
    ));

    tokio::time::sleep(Duration::from_secs(2)).await;
    let before: Vec<u64> = server_rss(&plan)?;
    let others_before: Vec<u64> = plan.also_pids.iter().map(|(_, p)| rss(*p).now_kb).collect();

    // 1. Connect, in two halves with a memory reading between them: the second half's cost
    // per socket is the marginal one, free of start-up costs (pools, arenas, caches).
    let connect = |fraction: f64| Command::Connect {
        secs: plan.connect_secs,
        fraction,
    };
    let wait = Duration::from_secs_f64(plan.connect_secs + 60.0);
    progress(&format!(
        "connecting {} clients (first half)",
        layout.clients
    ));
    let halfway: Vec<Connected> = all(&mut gens, &connect(0.5), wait).await?;
    let half_secs = halfway.iter().map(|c| c.secs).fold(0.0, f64::max);
    progress(&format!(
        "{} joined in {half_secs:.1}s",
        halfway.iter().map(|c| c.joined).sum::<usize>()
    ));
    tokio::time::sleep(Duration::from_secs_f64(plan.settle_secs)).await;
    let half_sockets: usize = sum_per_server(&statuses(&mut gens).await?, servers)
        .iter()
        .sum();
    let half_kb: u64 = server_rss(&plan)?.iter().sum();
    progress("connecting the second half");
    let connected: Vec<Connected> = all(&mut gens, &connect(1.0), wait).await?;
    let joined: usize = connected.iter().map(|c| c.joined).sum();
    let connect_secs = half_secs + connected.iter().map(|c| c.secs).fold(0.0, f64::max);
    let connect_failures: u64 = connected.iter().map(|c| c.failures).sum();
    let worst = |i: usize| {
        connected
            .iter()
            .map(|c| c.connect_ms[i])
            .fold(0.0, f64::max)
    };
    let connect_ms = [worst(0), worst(1), worst(2)];
    let errors: Vec<&String> = connected.iter().flat_map(|c| &c.errors).take(5).collect();
    progress(&format!(
        "{joined} of {} joined in {connect_secs:.1}s ({connect_failures} failed attempts{})",
        layout.clients,
        if errors.is_empty() {
            String::new()
        } else {
            format!("; first: {errors:?}")
        }
    ));
    checks.push(Check {
        name: "every socket authenticated and joined".into(),
        ok: joined == layout.clients,
        detail: format!(
            "{joined} of {} in {connect_secs:.1}s; {connect_failures} failed attempts (retried){}",
            layout.clients,
            if errors.is_empty() {
                String::new()
            } else {
                format!("; first errors: {errors:?}")
            }
        ),
    });

    // 2. Memory, idle.
    tokio::time::sleep(Duration::from_secs_f64(plan.settle_secs)).await;
    let status0 = statuses(&mut gens).await?;
    let per_server = sum_per_server(&status0, servers);
    let connected_rss = server_rss(&plan)?;
    let sockets: usize = per_server.iter().sum();
    let (sum_before, sum_connected): (u64, u64) = (before.iter().sum(), connected_rss.iter().sum());
    let bytes_per_socket = sum_connected.saturating_sub(sum_before) * 1024 / sockets.max(1) as u64;
    let marginal_bytes_per_socket = sum_connected.saturating_sub(half_kb) * 1024
        / sockets.saturating_sub(half_sockets).max(1) as u64;
    let mut memory = Memory {
        before_kb: sum_before,
        half_kb,
        half_sockets,
        connected_kb: sum_connected,
        bytes_per_socket,
        marginal_bytes_per_socket,
        per_server: (0..servers)
            .map(|s| (per_server[s], before[s], connected_rss[s]))
            .collect(),
        others: plan
            .also_pids
            .iter()
            .zip(others_before)
            .map(|((name, pid), b)| (name.clone(), b, rss(*pid).now_kb))
            .collect(),
        end_kb: 0,
        end_per_server_kb: Vec::new(),
    };
    progress(&format!(
        "memory: {sum_before} KiB before, {half_kb} KiB with {half_sockets} sockets, {sum_connected} KiB with {sockets}: {bytes_per_socket} bytes per socket ({marginal_bytes_per_socket} marginal over the second half)"
    ));
    checks.push(Check {
        name: format!("memory per socket ≤ {MEMORY_GOAL_BYTES} bytes"),
        ok: bytes_per_socket <= MEMORY_GOAL_BYTES,
        detail: format!(
            "{bytes_per_socket} bytes on average ({sum_before} KiB → {sum_connected} KiB over {servers} processes, {sockets} sockets); {marginal_bytes_per_socket} bytes marginal over the second half"
        ),
    });

    // 3. Presence, every room on every server.
    let all_servers: Vec<usize> = (0..servers).collect();
    let mut presence = Vec::new();
    let p = check_presence(&plan, &admin, &status0, &all_servers, "connected").await?;
    checks.push(presence_check(&p));
    presence.push(p);

    // 4. Delivery in rooms spanning every server.
    let mut delivery = Vec::new();
    let d = probe(&mut gens, 1, probe_rooms, plan.probe_messages, "connected").await?;
    checks.push(delivery_check(&d, servers));
    delivery.push(d);

    // 5. Rolling restart.
    let mut restart_report = None;
    if let Some(victim) = restart {
        let r = rolling_restart(&plan, &mut gens, victim, &status0).await?;
        let m = &r.messages;
        checks.push(Check {
            name: "rolling restart: no acknowledged message lost".into(),
            ok: m.missing_count == 0 && m.stored_twice == 0 && m.acknowledged > 0,
            detail: format!(
                "{} acknowledged, {} found in history, {} missing {:?}, {} stored twice, {} never acknowledged, {} acknowledged on a retry",
                m.acknowledged,
                m.found,
                m.missing_count,
                m.missing,
                m.stored_twice,
                m.unacknowledged,
                m.retried
            ),
        });
        checks.push(Check {
            name: "rolling restart: the stopped server's clients, and only they, moved".into(),
            ok: r.dropped_clients == r.clients_on_it
                && r.per_server_after.get(victim) == Some(&0)
                && r.per_server_after.iter().sum::<usize>() == layout.clients,
            detail: format!(
                "{} on server {victim}, {} dropped, all back in {:.1}s; per server after: {:?}",
                r.clients_on_it, r.dropped_clients, r.reconnect_secs, r.per_server_after
            ),
        });
        // After the move, with the restarted process back if a supervisor restarted it.
        let status1 = statuses(&mut gens).await?;
        let asked: Vec<usize> = if r.back_secs.is_some() {
            all_servers.clone()
        } else {
            all_servers
                .iter()
                .copied()
                .filter(|&s| s != victim)
                .collect()
        };
        let p = check_presence(&plan, &admin, &status1, &asked, "after the restart").await?;
        // Apart: the restarted process holds no socket at all, so everything it knows of
        // presence comes from the other processes.
        let (on_victim, on_others): (Vec<_>, Vec<_>) =
            p.per_server.iter().partition(|(s, _)| *s == victim);
        let differing = |v: &[&(usize, usize)]| v.iter().map(|(_, n)| n).sum::<usize>();
        checks.push(Check {
            name: "presence (after the restart): /online equals the truth on the processes holding the sockets".into(),
            ok: differing(&on_others) == 0,
            detail: format!(
                "{} answers from {} servers, {} differing after {:.1}s",
                layout.rooms * on_others.len(),
                on_others.len(),
                differing(&on_others),
                p.secs
            ),
        });
        if !on_victim.is_empty() {
            checks.push(Check {
                name: "presence (after the restart): /online equals the truth on the restarted process (no socket on it)".into(),
                ok: differing(&on_victim) == 0,
                detail: format!(
                    "{} answers, {} differing after {:.1}s{}",
                    layout.rooms,
                    differing(&on_victim),
                    p.secs,
                    if p.examples.is_empty() {
                        String::new()
                    } else {
                        format!("; e.g. {:?}", p.examples)
                    }
                ),
            });
        }
        presence.push(p);
        let d = probe(
            &mut gens,
            2,
            probe_rooms,
            plan.probe_messages,
            "after the restart",
        )
        .await?;
        checks.push(delivery_check(&d, servers - 1));
        delivery.push(d);
        restart_report = Some(r);
    }
    memory.end_per_server_kb = server_rss(&plan)?;
    memory.end_kb = memory.end_per_server_kb.iter().sum();

    for g in gens.iter_mut() {
        let _ = g.tell(&Command::Quit).await;
    }
    for g in gens.iter_mut() {
        let _ = tokio::time::timeout(Duration::from_secs(10), g.child.wait()).await;
    }
    Ok(Report {
        ok: checks.iter().all(|c| c.ok),
        checks,
        rooms_secs,
        provision_secs,
        joined,
        connect_secs,
        connect_ms,
        connect_failures,
        per_server,
        memory,
        presence,
        delivery,
        restart: restart_report,
        total_secs: t_run.elapsed().as_secs_f64(),
        plan,
    })
}

fn presence_check(p: &Presence) -> Check {
    Check {
        name: format!("presence ({}): /online equals the truth", p.phase),
        ok: p.mismatches == 0,
        detail: format!(
            "{} answers from {} servers, {} differing after {:.1}s ({} passes){}",
            p.compared,
            p.servers,
            p.mismatches,
            p.secs,
            p.passes,
            if p.examples.is_empty() {
                String::new()
            } else {
                format!("; e.g. {:?}", p.examples)
            }
        ),
    }
}

fn delivery_check(d: &Delivery, want_servers: usize) -> Check {
    Check {
        name: format!(
            "delivery ({}): every member of rooms spanning {want_servers} processes got every message once",
            d.phase
        ),
        ok: d.received == d.expected
            && d.duplicates == 0
            && d.strays == 0
            && d.expected > 0
            && d.min_servers_spanned as usize >= want_servers,
        detail: format!(
            "{} rooms × {} messages, {} members on ≥ {} processes each: {} of {} received, {} duplicates, {} strays, in {:.2}s{}",
            d.rooms,
            d.messages,
            d.members,
            d.min_servers_spanned,
            d.received,
            d.expected,
            d.duplicates,
            d.strays,
            d.secs,
            if d.incomplete.is_empty() {
                String::new()
            } else {
                format!("; incomplete members {:?}", d.incomplete)
            }
        ),
    }
}

/// The conductor's own account (it reads `/online` and creates the rooms).
async fn admin_token(layout: &Layout) -> Result<String> {
    let mut http = HttpClient::new(&layout.servers[0]);
    let creds = format!(
        r#"{{"username":"{}admin","password":"{PASSWORD}"}}"#,
        layout.prefix
    );
    let r = http.post("/api/auth/register", &creds, None).await?;
    if r.status != 201 && r.status != 409 {
        bail!("register the conductor's account: {} {}", r.status, r.body);
    }
    let r = http.post("/api/auth/login", &creds, None).await?;
    if r.status != 200 {
        bail!("log in the conductor's account: {} {}", r.status, r.body);
    }
    let v: serde_json::Value = serde_json::from_str(&r.body)?;
    Ok(v["access"].as_str().context("no access token")?.to_owned())
}

/// Creates every room (an existing one is reused), spread over the servers.
async fn create_rooms(layout: &Layout, token: &str) -> Result<()> {
    let servers = layout.servers.len();
    let mut handles = Vec::new();
    for s in 0..servers {
        let layout = layout.clone();
        let token = token.to_owned();
        handles.push(tokio::spawn(async move {
            let mut http = HttpClient::new(&layout.servers[s]);
            for r in (s..layout.rooms).step_by(servers) {
                let body = format!(r#"{{"name":"{}"}}"#, layout.room_name(r));
                let resp = http.post("/api/rooms", &body, Some(&token)).await?;
                if resp.status != 201 && resp.status != 409 {
                    bail!(
                        "create room {}: {} {}",
                        layout.room_name(r),
                        resp.status,
                        resp.body
                    );
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for h in handles {
        h.await??;
    }
    Ok(())
}

fn spawn_generators(plan: &Plan) -> Result<Vec<Generator>> {
    let exe = std::env::current_exe().context("finding parley-bench itself")?;
    let layout = &plan.layout;
    let mut gens = Vec::with_capacity(plan.generators);
    for j in 0..plan.generators {
        let addr = Ipv4Addr::from(u32::from(plan.first_source_addr) + j as u32);
        if !addr.is_loopback() {
            bail!("generator {j}'s source address {addr} is not a loopback address");
        }
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.arg("scale-worker");
        for s in &layout.servers {
            cmd.arg("--server").arg(s);
        }
        cmd.args([
            "--clients",
            &layout.clients.to_string(),
            "--rooms",
            &layout.rooms.to_string(),
            "--prefix",
            &layout.prefix,
            "--generator",
            &j.to_string(),
            "--generators",
            &plan.generators.to_string(),
            "--source-addr",
            &IpAddr::V4(addr).to_string(),
            "--connect-concurrency",
            &plan.connect_concurrency.to_string(),
            "--http-workers",
            &plan.http_workers.to_string(),
            "--sender-rooms",
            &plan.sender_rooms.to_string(),
            "--senders-per-room",
            &layout.servers.len().to_string(),
            "--send-rate",
            &plan.send_rate.to_string(),
        ]);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting generator {j}"))?;
        let stdin = child.stdin.take().context("generator stdin")?;
        let stdout = child.stdout.take().context("generator stdout")?;
        gens.push(Generator {
            index: j,
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        });
    }
    Ok(gens)
}

/// Each server's RSS now, KiB (0 for a process that is gone).
fn server_rss(plan: &Plan) -> Result<Vec<u64>> {
    plan.pid_files
        .iter()
        .map(|f| Ok(rss(read_pid(f)?).now_kb))
        .collect()
}

fn read_pid(file: &PathBuf) -> Result<u32> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {file:?}"))?;
    text.trim()
        .parse()
        .with_context(|| format!("{file:?} holds no process id"))
}

async fn statuses(gens: &mut [Generator]) -> Result<Vec<Status>> {
    all(gens, &Command::Status, Duration::from_secs(60)).await
}

fn sum_per_server(statuses: &[Status], servers: usize) -> Vec<usize> {
    let mut out = vec![0; servers];
    for s in statuses {
        for (i, n) in s.per_server.iter().enumerate().take(servers) {
            out[i] += n;
        }
    }
    out
}

/// Asks every server in `asked` for every room's online users until all equal the members
/// the generators hold joined (per `status`), or the wait runs out.
async fn check_presence(
    plan: &Plan,
    token: &str,
    status: &[Status],
    asked: &[usize],
    phase: &str,
) -> Result<Presence> {
    let layout = &plan.layout;
    let absent: HashSet<usize> = status
        .iter()
        .flat_map(|s| s.not_joined.iter().copied())
        .collect();
    let truth: Arc<Vec<HashSet<String>>> = Arc::new(
        (0..layout.rooms)
            .map(|r| {
                layout
                    .members(r)
                    .filter(|g| !absent.contains(g))
                    .map(|g| layout.user(g))
                    .collect()
            })
            .collect(),
    );
    let t = Instant::now();
    let deadline = t + Duration::from_secs_f64(plan.presence_wait_secs);
    let mut passes = 0;
    loop {
        passes += 1;
        let mut handles = Vec::new();
        for &s in asked {
            let layout = layout.clone();
            let token = token.to_owned();
            let truth = truth.clone();
            handles.push(tokio::spawn(async move {
                let mut http = HttpClient::new(&layout.servers[s]);
                let mut differing = Vec::new();
                for (r, want) in truth.iter().enumerate() {
                    let path = format!("/api/rooms/{}/online", layout.room_name(r));
                    let resp = http.get(&path, Some(&token)).await?;
                    if resp.status != 200 {
                        // A busy server may answer 503 (its database pool timed out): a wrong
                        // answer for this pass, asked again in the next.
                        differing.push(format!(
                            "server {s} room {r}: {} {}",
                            resp.status,
                            resp.body.chars().take(120).collect::<String>()
                        ));
                        continue;
                    }
                    let v: serde_json::Value = serde_json::from_str(&resp.body)?;
                    let got: HashSet<String> = v["online"]
                        .as_array()
                        .context("no online list")?
                        .iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect();
                    if &got != want {
                        let missing = want.difference(&got).count();
                        let extra: Vec<&String> = got.difference(want).take(3).collect();
                        differing.push(format!(
                            "server {s} room {r}: {} online, {} expected, {missing} missing, extra {extra:?}",
                            got.len(),
                            want.len()
                        ));
                    }
                }
                Ok::<_, anyhow::Error>(differing)
            }));
        }
        let mut differing = Vec::new();
        let mut per_server = Vec::new();
        for (h, &s) in handles.into_iter().zip(asked) {
            let here = h.await??;
            per_server.push((s, here.len()));
            differing.extend(here);
        }
        let secs = t.elapsed().as_secs_f64();
        if differing.is_empty() || Instant::now() >= deadline {
            progress(&format!(
                "presence ({phase}): {} of {} answers differ after {secs:.1}s",
                differing.len(),
                layout.rooms * asked.len()
            ));
            return Ok(Presence {
                phase: phase.into(),
                servers: asked.len(),
                compared: layout.rooms * asked.len(),
                mismatches: differing.len(),
                secs,
                passes,
                per_server,
                examples: differing.into_iter().take(5).collect(),
            });
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Member 0 of each of the first `rooms` rooms sends `messages` numbered messages; waits until
/// every member has every one (or 60 s), then a moment more for duplicates.
async fn probe(
    gens: &mut [Generator],
    round: u32,
    rooms: usize,
    messages: u32,
    phase: &str,
) -> Result<Delivery> {
    let wait = Duration::from_secs(60);
    let _: Vec<serde_json::Value> = all(gens, &Command::Arm { round }, wait).await?;
    let t = Instant::now();
    let _: Vec<serde_json::Value> = all(
        gens,
        &Command::Probe {
            round,
            rooms,
            messages,
        },
        wait,
    )
    .await?;
    let deadline = t + wait;
    let mut done_at = None;
    loop {
        let counts: Vec<ProbeCount> = all(gens, &Command::ProbeCount { rooms }, wait).await?;
        let members: usize = counts.iter().map(|c| c.members).sum();
        let received: u64 = counts.iter().map(|c| c.received).sum();
        let expected = members as u64 * u64::from(messages.min(64));
        if received >= expected && done_at.is_none() {
            done_at = Some(t.elapsed().as_secs_f64());
            // Duplicates and strays still on their way.
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        if done_at.is_some() || Instant::now() >= deadline {
            let mut spans = vec![0u64; rooms];
            for c in &counts {
                for (r, bits) in c.servers_by_room.iter().enumerate().take(rooms) {
                    spans[r] |= bits;
                }
            }
            let d = Delivery {
                phase: phase.into(),
                rooms,
                messages,
                members,
                expected,
                received,
                duplicates: counts.iter().map(|c| c.duplicates).sum(),
                strays: counts.iter().map(|c| c.strays).sum(),
                min_servers_spanned: spans.iter().map(|b| b.count_ones()).min().unwrap_or(0),
                secs: done_at.unwrap_or_else(|| t.elapsed().as_secs_f64()),
                incomplete: counts
                    .iter()
                    .flat_map(|c| c.incomplete.iter().copied())
                    .take(10)
                    .collect(),
            };
            progress(&format!(
                "delivery ({phase}): {} of {} in {:.2}s, {} duplicates, rooms on ≥ {} processes",
                d.received, d.expected, d.secs, d.duplicates, d.min_servers_spanned
            ));
            return Ok(d);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Senders on; SIGTERM to server `victim`; wait for its clients to be back elsewhere (and for
/// a supervisor to restart it, if there is one); senders off; every acknowledged message
/// looked up in history.
async fn rolling_restart(
    plan: &Plan,
    gens: &mut [Generator],
    victim: usize,
    before: &[Status],
) -> Result<Restart> {
    let layout = &plan.layout;
    let servers = layout.servers.len();
    let wait = Duration::from_secs(60);
    let _: Vec<serde_json::Value> = all(gens, &Command::Send { on: true }, wait).await?;
    progress(&format!(
        "senders on ({} rooms × {servers}, {} msg/s each)",
        plan.sender_rooms.min(layout.rooms),
        plan.send_rate
    ));
    tokio::time::sleep(Duration::from_secs_f64(plan.send_before_secs)).await;
    let clients_on_it = sum_per_server(&statuses(gens).await?, servers)[victim];
    let pid = read_pid(&plan.pid_files[victim])?;
    let t_kill = now_ms();
    let t = Instant::now();
    progress(&format!(
        "SIGTERM to server {victim} (pid {pid}, {clients_on_it} clients)"
    ));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .context("running kill")?;
    if !killed.success() {
        bail!("kill -TERM {pid} failed: server {victim} was not running");
    }
    let deadline = t + Duration::from_secs_f64(plan.reconnect_wait_secs);
    let mut exit_secs = None;
    let mut back_secs = None;
    let expected_drops: usize = before.iter().map(|s| s.dropped_clients).sum();
    let status = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if exit_secs.is_none() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            exit_secs = Some(t.elapsed().as_secs_f64());
        }
        if back_secs.is_none() && exit_secs.is_some() {
            back_secs = restarted(plan, victim, pid)
                .await
                .then(|| t.elapsed().as_secs_f64());
        }
        let status = statuses(gens).await?;
        let joined: usize = status.iter().map(|s| s.joined).sum();
        let dropped: usize = status.iter().map(|s| s.dropped_clients).sum();
        if (joined == layout.clients && dropped >= expected_drops + clients_on_it)
            || Instant::now() >= deadline
        {
            break status;
        }
    };
    let last_rejoin = status.iter().map(|s| s.last_rejoin_ms).max().unwrap_or(0);
    let reconnect_secs = last_rejoin.saturating_sub(t_kill) as f64 / 1000.0;
    let dropped_clients = status.iter().map(|s| s.dropped_clients).sum::<usize>() - expected_drops;
    let per_server_after = sum_per_server(&status, servers);
    progress(&format!(
        "{dropped_clients} clients dropped, every client joined again {reconnect_secs:.1}s after the SIGTERM; per server {per_server_after:?}"
    ));
    tokio::time::sleep(Duration::from_secs_f64(plan.send_after_secs)).await;
    let _: Vec<serde_json::Value> = all(gens, &Command::Send { on: false }, wait).await?;
    // A restarted process may still be coming up: give it until the end of this phase.
    let back_deadline = Instant::now() + Duration::from_secs(30);
    while back_secs.is_none() && Instant::now() < back_deadline {
        if restarted(plan, victim, pid).await {
            back_secs = Some(t.elapsed().as_secs_f64());
        } else {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let reader = (victim + 1) % servers;
    let verified: Vec<Verified> = all(
        gens,
        &Command::Verify { server: reader },
        Duration::from_secs(600),
    )
    .await?;
    let mut messages = Verified::default();
    for v in verified {
        messages.acknowledged += v.acknowledged;
        messages.found += v.found;
        messages.missing_count += v.missing_count;
        messages.missing.extend(v.missing.into_iter().take(5));
        messages.stored_twice += v.stored_twice;
        messages.unacknowledged += v.unacknowledged;
        messages.retried += v.retried;
        messages.history_read += v.history_read;
    }
    progress(&format!(
        "messages: {} acknowledged, {} found in history, {} missing, {} stored twice",
        messages.acknowledged, messages.found, messages.missing_count, messages.stored_twice
    ));
    let last = statuses(gens).await?;
    let mut error_codes = std::collections::BTreeMap::new();
    for s in &last {
        for (code, n) in &s.error_codes {
            *error_codes.entry(code.clone()).or_insert(0) += n;
        }
    }
    Ok(Restart {
        server: victim,
        clients_on_it,
        dropped_clients,
        reconnect_secs,
        exit_secs,
        back_secs,
        per_server_after,
        messages,
        error_codes,
    })
}

/// Whether server `victim` runs again under a new process id and answers.
async fn restarted(plan: &Plan, victim: usize, old_pid: u32) -> bool {
    let Ok(pid) = read_pid(&plan.pid_files[victim]) else {
        return false;
    };
    if pid == old_pid || !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        return false;
    }
    let mut http = HttpClient::new(&plan.layout.servers[victim]);
    matches!(http.get("/readyz", None).await, Ok(r) if r.status == 200)
}
