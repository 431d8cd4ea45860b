//! Issue 14, item 2, against the real binary under a 1,024-descriptor limit (a common service
//! default): thousands of clients from one address that send a request body a byte a second
//! and reconnect when cut off, while a bystander from another address checks `/healthz` and
//! logs in. The bystander must be answered throughout (within a second on a quiet machine;
//! the test's bound is looser, see `BOUND`), the server must never run out of descriptors,
//! and every trickling connection must be closed by the server.
//! Before the fix the trickling connections stayed open and took every descriptor: `/healthz`
//! and login timed out and the log filled with "Too many open files".
//!
//! All settings are the defaults (`http_request_timeout_secs` 10,
//! `http_max_connections_per_address` 256). Alone in its test binary: it measures latency.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion
#![allow(clippy::print_stderr)] // the figures quoted in docs/reliability.md

use parley_e2e::raw::connect_from;
use parley_e2e::{Backend, account};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

use common::Process;

/// The server's descriptor limit.
const NOFILE: u64 = 1024;
/// Trickling clients, all from 127.0.0.1.
const TRICKLERS: usize = 3000;
/// How long they keep reconnecting.
const ATTACK: Duration = Duration::from_secs(20);
/// After the attack, how long the server has to close the trickling connections still open:
/// the request timeout (10 s) and a margin.
const DRAIN: Duration = Duration::from_secs(20);
/// The bystander's bound: a starved request is never answered (before the fix every one timed
/// out at 5 s), a served one in milliseconds on a quiet machine (docs/reliability.md). The
/// issue's 1 s target is a figure printed below, not asserted: CI saw one answer take 1.02 s
/// while the whole suite and a release build shared the two cores.
const BOUND: Duration = Duration::from_secs(3);

const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const BYSTANDER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// What the trickling clients saw, all of them together.
#[derive(Default)]
struct Tally {
    /// Connections established.
    connected: AtomicUsize,
    /// Connections open now.
    open: AtomicUsize,
    /// Connections the server closed (it answered and closed, or reset).
    closed_by_server: AtomicUsize,
    /// ...of which with a 429 at once (over the per-address cap).
    refused: AtomicUsize,
    /// ...of which with a 408 (the request deadline).
    timed_out: AtomicUsize,
    /// Connection attempts that failed.
    connect_failed: AtomicUsize,
}

/// One trickling client: connects, sends a login request head announcing a body just under
/// the JSON limit (a larger one is refused at once with 413), then one byte a second until
/// the server closes; reconnects a second later, until `stop`.
async fn trickler(addr: SocketAddr, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let head = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{{"
    );
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = connect_from(ATTACKER, addr).await else {
            tally.connect_failed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        tally.connected.fetch_add(1, Ordering::Relaxed);
        tally.open.fetch_add(1, Ordering::Relaxed);
        let mut answer = Vec::new();
        let mut closed = stream.write_all(head.as_bytes()).await.is_err();
        // Trickle until the server closes; after `stop`, keep trickling (the server must
        // close these too) but do not reconnect.
        while !closed {
            let mut buf = [0u8; 512];
            match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => closed = true,
                Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
                Err(_) => closed = stream.write_all(b" ").await.is_err(),
            }
        }
        tally.open.fetch_sub(1, Ordering::Relaxed);
        tally.closed_by_server.fetch_add(1, Ordering::Relaxed);
        if answer.starts_with(b"HTTP/1.1 429 ") {
            tally.refused.fetch_add(1, Ordering::Relaxed);
        } else if answer.starts_with(b"HTTP/1.1 408 ") {
            tally.timed_out.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One request from the bystander's address on a fresh connection: the status line and how
/// long the whole answer took (`None` if none came within 5 s).
async fn bystander_request(addr: SocketAddr, raw: &[u8]) -> (Option<String>, Duration) {
    let started = Instant::now();
    let exchange = async {
        let mut stream = connect_from(BYSTANDER, addr).await.ok()?;
        stream.write_all(raw).await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        answer.lines().next().map(str::to_owned)
    };
    let status = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten();
    (status, started.elapsed())
}

/// The attack's own descriptors come from this process's limit (20,000 on the development
/// machines; `scripts/test.sh` raises the soft limit to the hard one).
fn own_nofile_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_clients_are_cut_off_and_others_served_under_1024_descriptors() {
    let own = own_nofile_limit();
    assert!(
        own >= TRICKLERS as u64 + 1000,
        "this test opens {TRICKLERS} connections: raise the open-files limit (ulimit -n; it is {own})"
    );
    let db = Backend::Sqlite.database().await;
    let server = Process::start_with_nofile(
        &std::env::temp_dir(),
        &[
            ("DATABASE_URL", db.url().to_owned()),
            (
                "PARLEY_SECRET",
                "slow-clients-secret-slow-clients-secret".to_owned(),
            ),
        ],
        NOFILE,
    );
    assert_eq!(server.nofile_limit(), NOFILE);
    let addr = server.addr;
    account(addr, "bystander").await;
    let login_body = r#"{"username":"bystander","password":"password-bystander"}"#;
    let login = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{login_body}",
        login_body.len()
    );
    let healthz = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let fds_idle = server.open_fds();
    let rss_idle = server.rss_kib();

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tricklers = Vec::with_capacity(TRICKLERS);
    for i in 0..TRICKLERS {
        tricklers.push(tokio::spawn(trickler(addr, tally.clone(), stop.clone())));
        // Spread the first connections over about a second and a half.
        if i % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // The bystander: /healthz every 200 ms, a login every second, each on a new connection.
    let mut worst_healthz = Duration::ZERO;
    let mut worst_login = Duration::ZERO;
    let mut failures = Vec::new();
    let (mut healthz_count, mut login_count) = (0, 0);
    let mut max_fds = 0;
    let mut max_rss = rss_idle;
    let mut max_open = 0;
    let mut tick = 0u32;
    while started.elapsed() < ATTACK {
        tokio::time::sleep(Duration::from_millis(200)).await;
        tick += 1;
        let (status, took) = if tick.is_multiple_of(5) {
            login_count += 1;
            let (status, took) = bystander_request(addr, login.as_bytes()).await;
            worst_login = worst_login.max(took);
            (status, took)
        } else {
            healthz_count += 1;
            let (status, took) = bystander_request(addr, healthz.as_bytes()).await;
            worst_healthz = worst_healthz.max(took);
            (status, took)
        };
        let at = started.elapsed().as_secs_f64();
        if status.as_deref() != Some("HTTP/1.1 200 OK") || took >= BOUND {
            failures.push(format!("at {at:.1} s: {status:?} after {took:?}"));
        }
        max_fds = max_fds.max(server.open_fds());
        max_rss = max_rss.max(server.rss_kib());
        max_open = max_open.max(tally.open.load(Ordering::Relaxed));
    }

    // The attack stops reconnecting; what is open keeps trickling and must be closed.
    stop.store(true, Ordering::Relaxed);
    let open_at_stop = tally.open.load(Ordering::Relaxed);
    let drain_started = Instant::now();
    let mut remaining = tricklers.len();
    for t in tricklers {
        let left = DRAIN.saturating_sub(drain_started.elapsed());
        if tokio::time::timeout(left, t).await.is_ok() {
            remaining -= 1;
        }
    }
    let drained_in = drain_started.elapsed();
    let still_open = tally.open.load(Ordering::Relaxed);
    let fds_after = server.open_fds();
    let emfile = server.logged("Too many open files");
    eprintln!(
        "slow clients: {TRICKLERS} trickling clients from one address for {} s against a server limited to {NOFILE} descriptors: {} connections, {} refused with 429, {} cut with 408, {} connect failures; at most {max_open} open at once on the client side, {open_at_stop} when the attack stopped, {still_open} of them still open {:.1} s later",
        ATTACK.as_secs(),
        tally.connected.load(Ordering::Relaxed),
        tally.refused.load(Ordering::Relaxed),
        tally.timed_out.load(Ordering::Relaxed),
        tally.connect_failed.load(Ordering::Relaxed),
        drained_in.as_secs_f64(),
    );
    eprintln!(
        "slow clients: server descriptors {fds_idle} idle, at most {max_fds} during the attack, {fds_after} after; RSS {:.1} -> peak {:.1} MiB; \"Too many open files\" logged: {emfile}",
        rss_idle as f64 / 1024.0,
        max_rss as f64 / 1024.0,
    );
    eprintln!(
        "slow clients: bystander from {BYSTANDER}: {healthz_count} /healthz, worst {worst_healthz:?}; {login_count} logins, worst {worst_login:?}; {} failed or slower than {BOUND:?}",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "the bystander was not answered within {BOUND:?}: {failures:#?}"
    );
    assert!(
        (max_fds as u64) < NOFILE,
        "the server used {max_fds} of its {NOFILE} descriptors"
    );
    assert!(!emfile, "the server ran out of descriptors");
    assert_eq!(
        (remaining, still_open),
        (0, 0),
        "trickling clients not done, connections still open, {} s after the attack stopped",
        DRAIN.as_secs()
    );
}
