//! Redis Sentinel failover under traffic (issue 19 item 5): a primary, a replica and three
//! Debian `redis-sentinel`s on free ports, two server processes following the primary through
//! the Sentinels, clients chatting across them while the primary is failed over twice
//! (`SENTINEL FAILOVER`, then the primary killed). Every acknowledged message is in history
//! and reaches the other process's member (live, or by catching up from history), none
//! arrives twice, and delivery across processes resumes after each failover.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion
#![allow(clippy::print_stderr)] // the figures quoted in docs/operations.md

use parley_e2e::services::free_port;
use parley_e2e::{Backend, WsClient, account, http, unique};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{Process, WorkDir};

/// The whole test's deadline (generous: the box is shared).
const DEADLINE: Duration = Duration::from_secs(240);

fn redis_server() -> String {
    std::env::var("PARLEY_REDIS_SERVER")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "redis-server".to_owned())
}

fn redis_sentinel() -> String {
    std::env::var("PARLEY_REDIS_SENTINEL")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "redis-sentinel".to_owned())
}

/// One `redis-cli` command against `port`, its output trimmed.
fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli (apt-get install redis-tools)");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Polls until `check` holds, panicking with `what` at the deadline.
fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Redis primary, one replica and three Sentinels, killed on drop.
struct Cluster {
    dir: PathBuf,
    master: String,
    /// redis-server processes by port.
    servers: BTreeMap<u16, Child>,
    sentinels: Vec<(u16, Child)>,
}

impl Cluster {
    fn start(dir: &Path) -> Self {
        let master = format!("parley-{}", unique());
        let mut cluster = Self {
            dir: dir.to_owned(),
            master,
            servers: BTreeMap::new(),
            sentinels: Vec::new(),
        };
        let primary = free_port();
        cluster.server(primary, None);
        let replica = free_port();
        cluster.server(replica, Some(primary));
        for _ in 0..3 {
            let port = free_port();
            let conf = dir.join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                     sentinel monitor {m} 127.0.0.1 {primary} 2\n\
                     sentinel down-after-milliseconds {m} 1000\n\
                     sentinel failover-timeout {m} 10000\n\
                     sentinel parallel-syncs {m} 1\n",
                    dir = dir.display(),
                    m = cluster.master
                ),
            )
            .unwrap();
            let child = Command::new(redis_sentinel())
                .arg(&conf)
                .stdout(Stdio::null())
                .spawn()
                .expect(
                    "redis-sentinel (apt-get install redis-sentinel, or PARLEY_REDIS_SENTINEL)",
                );
            cluster.sentinels.push((port, child));
        }
        cluster.wait_healthy(primary);
        cluster
    }

    fn server(&mut self, port: u16, replica_of: Option<u16>) {
        let mut cmd = Command::new(redis_server());
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null());
        if let Some(primary) = replica_of {
            cmd.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
        }
        let child = cmd
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        self.servers.insert(port, child);
        wait_for(
            "redis-server did not start",
            Duration::from_secs(20),
            || cli(port, &["PING"]) == "PONG",
        );
    }

    fn sentinel_addrs(&self) -> String {
        self.sentinels
            .iter()
            .map(|(p, _)| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The primary's port, as the first Sentinel says.
    fn primary(&self) -> u16 {
        let out = cli(
            self.sentinels[0].0,
            &["SENTINEL", "get-master-addr-by-name", &self.master],
        );
        out.lines()
            .nth(1)
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Until every Sentinel names `primary`, sees the other two, and a replica is in sync.
    fn wait_healthy(&self, primary: u16) {
        wait_for(
            "the Sentinels never agreed on a healthy primary with a synced replica",
            Duration::from_secs(60),
            || {
                self.sentinels.iter().all(|(port, _)| {
                    let named = cli(
                        *port,
                        &["SENTINEL", "get-master-addr-by-name", &self.master],
                    );
                    named.lines().nth(1).map(str::trim) == Some(&primary.to_string())
                        && cli(*port, &["SENTINEL", "CKQUORUM", &self.master])
                            .starts_with("OK 3 usable")
                }) && self
                    .servers
                    .keys()
                    .filter(|p| **p != primary)
                    .any(|p| cli(*p, &["INFO", "replication"]).contains("master_link_status:up"))
            },
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in self.sentinels.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for child in self.servers.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every message of `room` over REST, oldest first.
async fn history(addr: std::net::SocketAddr, token: &str, room: &str) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let query = match before {
            Some(id) => format!("before={id}&limit=100"),
            None => "limit=100".to_owned(),
        };
        let r = http::get(
            addr,
            &format!("/api/rooms/{room}/messages?{query}"),
            Some(token),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let page = r.json();
        let mut messages: Vec<(i64, String)> = page["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| {
                (
                    m["id"].as_i64().unwrap(),
                    m["body"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        if let Some(first) = messages.first() {
            before = Some(first.0);
        }
        messages.extend(out);
        out = messages;
        if page["has_more"] != true {
            return out;
        }
    }
}

/// What each side has acknowledged and received live.
#[derive(Default)]
struct Traffic {
    /// Acknowledged by the sender's process: id → body.
    acked: BTreeMap<i64, String>,
    /// `message` frames received live by the other side's member, in order.
    received: Vec<(i64, String)>,
}

/// Sends one message from `from` (bodies start with `from`'s letter and a colon) and drains
/// what `to` received for `wait`; returns whether `to` received live any message of `from`
/// whose body continues with `tag`. The sender and the receiver are separate sockets: `ask`
/// skips unrelated frames, which must not be lost on the receiving side.
async fn step(
    (from, letter): (&mut WsClient, &str),
    to: &mut WsClient,
    room: &str,
    body: String,
    t: &mut Traffic,
    tag: &str,
    wait: Duration,
) -> bool {
    let body = format!("{letter}:{body}");
    let mine = format!("{letter}:");
    let wanted = format!("{letter}:{tag}");
    let ack = from
        .ask(json!({"type": "send", "room": room, "body": body}), &body)
        .await;
    if ack["type"] == "message" {
        t.acked.insert(ack["id"].as_i64().unwrap(), body.clone());
    }
    let mut crossed = false;
    let _ = tokio::time::timeout(wait, async {
        loop {
            let m: Value = to.next_of("message").await;
            let body = m["body"].as_str().unwrap_or_default().to_owned();
            if body.starts_with(&mine) {
                crossed |= body.starts_with(&wanted);
                t.received.push((m["id"].as_i64().unwrap(), body));
            }
        }
    })
    .await;
    crossed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_mid_traffic_loses_nothing_and_delivery_resumes() {
    let started = Instant::now();
    let work = WorkDir::new();
    let mut cluster = Cluster::start(&work.0);
    let db = Backend::Postgres.database().await;
    let env = vec![
        ("DATABASE_URL", db.url().to_owned()),
        ("PARLEY_REDIS_SENTINELS", cluster.sentinel_addrs()),
        ("PARLEY_REDIS_SENTINEL_MASTER", cluster.master.clone()),
        (
            "PARLEY_REDIS_PREFIX",
            format!("parley-sentinel-{}:", unique()),
        ),
        (
            "PARLEY_SECRET",
            "sentinel-test-secret-sentinel-test-secret".to_owned(),
        ),
    ];
    let one = Process::start(&work.0, &env);
    let two = Process::start(&work.0, &env);
    // Alice sends on process one, Bob receives on two; Dave sends on two, Carol receives on
    // one.
    let alice = account(one.addr, "alice").await;
    let carol = account(one.addr, "carol").await;
    let bob = account(two.addr, "bob").await;
    let dave = account(two.addr, "dave").await;
    let room = format!("sentinel-{}", unique());
    let r = http::post(one.addr, "/api/rooms", Some(&alice), &json!({"name": room})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mut a = WsClient::connect(one.addr, &alice).await;
    let mut c = WsClient::connect(one.addr, &carol).await;
    let mut b = WsClient::connect(two.addr, &bob).await;
    let mut d = WsClient::connect(two.addr, &dave).await;
    for ws in [&mut a, &mut b, &mut c, &mut d] {
        let j = ws.ask(json!({"type": "join", "room": room}), "j").await;
        assert_eq!(j["type"], "joined", "{j}");
    }
    // Alice (process one) → Bob (process two), and back.
    let mut ab = Traffic::default();
    let mut ba = Traffic::default();
    let short = Duration::from_millis(150);
    // Traffic crosses before any fault.
    let mut i = 0;
    loop {
        i += 1;
        if step(
            (&mut a, "a"),
            &mut b,
            &room,
            format!("pre-{i}"),
            &mut ab,
            "pre-",
            short,
        )
        .await
        {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "nothing crossed before the failover"
        );
    }
    for j in 0..5 {
        step(
            (&mut d, "d"),
            &mut c,
            &room,
            format!("pre-b{j}"),
            &mut ba,
            "pre-b",
            short,
        )
        .await;
    }

    for (phase, fault) in ["failover", "kill"].iter().enumerate() {
        let old = cluster.primary();
        assert_ne!(old, 0, "no primary named");
        let tag = format!("{fault}-");
        // A few messages right before the fault, then the fault mid-traffic.
        for j in 0..3 {
            step(
                (&mut a, "a"),
                &mut b,
                &room,
                format!("before-{fault}{j}"),
                &mut ab,
                "",
                short,
            )
            .await;
        }
        let t0 = Instant::now();
        if *fault == "failover" {
            let out = cli(
                cluster.sentinels[phase].0,
                &["SENTINEL", "FAILOVER", &cluster.master],
            );
            assert_eq!(out, "OK", "SENTINEL FAILOVER: {out}");
        } else {
            let mut child = cluster.servers.remove(&old).expect("the primary's process");
            let _ = child.kill();
            let _ = child.wait();
        }
        // Keep sending both ways until the Sentinels name a new primary and a message sent
        // after that crosses live.
        let after = format!("{tag}after-");
        let mut switched = None;
        let mut n = 0;
        let resumed = loop {
            n += 1;
            if switched.is_none() && cluster.primary() != old {
                switched = Some(t0.elapsed());
            }
            let body = match switched {
                Some(_) => format!("{after}{n}"),
                None => format!("{tag}{n}"),
            };
            let crossed = step((&mut a, "a"), &mut b, &room, body, &mut ab, &after, short).await;
            step(
                (&mut d, "d"),
                &mut c,
                &room,
                format!("{tag}b{n}"),
                &mut ba,
                "",
                short,
            )
            .await;
            if crossed {
                break t0.elapsed();
            }
            assert!(
                started.elapsed() < DEADLINE,
                "delivery across processes never resumed after the {fault}"
            );
        };
        eprintln!(
            "sentinel {fault}: the Sentinels named the new primary {:.1} s after the fault",
            switched.unwrap_or_default().as_secs_f64()
        );
        eprintln!(
            "sentinel {fault}: cross-process delivery resumed {:.1} s after the fault",
            resumed.as_secs_f64()
        );
        let new = cluster.primary();
        assert_ne!(new, old, "the Sentinels did not fail {old} over");
        if phase == 0 {
            // The next fault needs a synced replica again (the demoted primary).
            cluster.wait_healthy(new);
        }
    }
    // Both directions after the failovers.
    for (from, to, t, who) in [
        (&mut a, &mut b, &mut ab, "a"),
        (&mut d, &mut c, &mut ba, "d"),
    ] {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut n = 0;
        loop {
            n += 1;
            if step(
                (&mut *from, who),
                &mut *to,
                &room,
                format!("last{n}"),
                t,
                "last",
                short,
            )
            .await
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{who}: nothing crossed at the end"
            );
        }
    }

    // Nothing acknowledged is lost: in history, and at the other side live or by catching up.
    let stored: BTreeMap<i64, String> = history(two.addr, &bob, &room).await.into_iter().collect();
    for (name, t) in [("alice→bob", &ab), ("dave→carol", &ba)] {
        let mut live = BTreeSet::new();
        for (id, body) in &t.received {
            assert!(
                live.insert(*id),
                "{name}: message {id} ({body}) delivered twice"
            );
        }
        let mut caught_up = 0;
        for (id, body) in &t.acked {
            assert_eq!(
                stored.get(id),
                Some(body),
                "{name}: acknowledged message {id} ({body}) is not in history"
            );
            if !live.contains(id) {
                caught_up += 1;
            }
        }
        eprintln!(
            "sentinel failovers, {name}: {} acknowledged, {} live, {caught_up} only from history",
            t.acked.len(),
            live.len()
        );
    }
    drop((a, b, c, d));
    drop(one);
    drop(two);
}
