//! Faults that need real server processes: one killed with SIGKILL while clients are on it,
//! a client that stops reading (the server's memory measured from outside), and the logs
//! of a whole account lifecycle searched for the password.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion
#![allow(clippy::print_stderr)] // the figures quoted in docs/reliability.md

use parley_e2e::{Backend, WAIT, WsClient, WsEvent, account, http, redis_url, unique};
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod common;

use common::Process;

/// Starts a server in the temporary directory with a fixed secret and the given settings.
fn start(env: &[(&str, String)]) -> Process {
    let mut env = env.to_vec();
    env.push((
        "PARLEY_SECRET",
        "faults-test-secret-faults-test-secret".to_owned(),
    ));
    Process::start(&std::env::temp_dir(), &env)
}

async fn online(addr: SocketAddr, token: &str, room: &str) -> Vec<String> {
    let r = http::get(addr, &format!("/api/rooms/{room}/online"), Some(token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_value(r.json()["online"].clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_process_clients_recover_on_another() {
    let db = Backend::Postgres.database().await;
    let ttl_ms = 1500;
    let env = vec![
        ("DATABASE_URL", db.url().to_owned()),
        ("REDIS_URL", redis_url()),
        ("PARLEY_REDIS_PREFIX", format!("parley-kill-{}:", unique())),
        ("PARLEY_PRESENCE_INTERVAL_MS", "300".to_owned()),
        ("PARLEY_PRESENCE_TTL_MS", ttl_ms.to_string()),
    ];
    let mut one = start(&env);
    let two = start(&env);
    let alice = account(one.addr, "alice").await;
    let bob = account(two.addr, "bob").await;
    let carol = account(one.addr, "carol").await;
    let room = format!("kill-{}", unique());
    let r = http::post(one.addr, "/api/rooms", Some(&alice), &json!({"name": room})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mut a = WsClient::connect(one.addr, &alice).await;
    let mut c = WsClient::connect(one.addr, &carol).await;
    let mut b = WsClient::connect(two.addr, &bob).await;
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(
            ws.ask(json!({"type": "join", "room": room}), "j").await["type"],
            "joined"
        );
    }
    let mut last_seen = 0;
    for i in 0..5 {
        let ack = a
            .ask(
                json!({"type": "send", "room": room, "body": format!("a{i}")}),
                &format!("a{i}"),
            )
            .await;
        assert_eq!(ack["type"], "message", "{ack}");
        last_seen = ack["id"].as_i64().unwrap();
    }
    // Everyone is online everywhere before the kill.
    let deadline = Instant::now() + WAIT;
    while online(two.addr, &bob, &room).await != ["alice", "bob", "carol"] {
        assert!(Instant::now() < deadline, "presence never converged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    one.kill();
    let killed = Instant::now();
    // Alice's and Carol's sockets die with the process (after what it had sent: a presence
    // frame may be among them, folded up to 100 ms after the joins).
    loop {
        match a.next_event().await {
            WsEvent::Closed(..) => break,
            WsEvent::Json(v) => assert_eq!(v["type"], "presence", "{v}"),
        }
    }
    // Bob keeps talking on the surviving process while Alice is away.
    let mut sent_meanwhile = Vec::new();
    for i in 0..5 {
        let ack = b
            .ask(
                json!({"type": "send", "room": room, "body": format!("b{i}")}),
                &format!("b{i}"),
            )
            .await;
        assert_eq!(ack["type"], "message", "{ack}");
        sent_meanwhile.push(ack["id"].as_i64().unwrap());
    }
    // Alice reconnects to the other process (same layer, same store) and catches up from
    // the last id she saw: every message, in order, once.
    let mut a = WsClient::connect(two.addr, &alice).await;
    assert_eq!(
        a.ask(json!({"type": "join", "room": room}), "j").await["type"],
        "joined"
    );
    let page = a
        .ask(
            json!({"type": "history", "room": room, "after": last_seen, "limit": 100}),
            "h",
        )
        .await;
    let ids: Vec<i64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, sent_meanwhile);
    // She is live again: Bob's next message reaches her.
    b.ask(
        json!({"type": "send", "room": room, "body": "welcome back"}),
        "w",
    )
    .await;
    assert_eq!(a.next_of("message").await["body"], "welcome back");

    // Carol never came back: the dead node's presence expires after the configured TTL.
    let deadline = killed + Duration::from_millis(ttl_ms) + WAIT;
    let gone_after = loop {
        let now = online(two.addr, &bob, &room).await;
        if !now.contains(&"carol".to_owned()) {
            assert!(
                now.contains(&"alice".to_owned()) && now.contains(&"bob".to_owned()),
                "{now:?}"
            );
            break killed.elapsed();
        }
        assert!(Instant::now() < deadline, "carol never dropped: {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "SIGKILL: dead node's user dropped from presence after {} ms (presence TTL {ttl_ms} ms, interval 300 ms)",
        gone_after.as_millis()
    );
    drop(c);
    drop(two);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_cut_off_and_memory_stays_bounded() {
    const SENT: usize = 1500;
    const BODY: usize = 16_000;
    let db = Backend::Sqlite.database().await;
    let server = start(&[
        ("DATABASE_URL", db.url().to_owned()),
        ("PARLEY_LAYER_CAPACITY", "64".to_owned()),
        ("PARLEY_MAX_MESSAGE_CHARS", BODY.to_string()),
        ("PARLEY_MESSAGE_RATE", "100000".to_owned()),
        ("PARLEY_MESSAGE_BURST", "100000".to_owned()),
    ]);
    let alice = account(server.addr, "alice").await;
    let bob = account(server.addr, "bob").await;
    let carol = account(server.addr, "carol").await;
    let room = format!("slow-{}", unique());
    parley_e2e::create_room(server.addr, &alice, &room).await;
    let mut a = WsClient::connect(server.addr, &alice).await;
    let mut c = WsClient::connect(server.addr, &carol).await;
    for ws in [&mut a, &mut c] {
        ws.ask(json!({"type": "join", "room": room}), "j").await;
    }
    let body = "x".repeat(BODY);
    // Baseline: Carol's latency with nobody stalled (also warms the allocator and buffers).
    let mut baseline = Vec::new();
    for i in 0..200 {
        let t = Instant::now();
        a.ask(
            json!({"type": "send", "room": room, "body": body}),
            &format!("w{i}"),
        )
        .await;
        c.next_of("message").await;
        baseline.push(t.elapsed());
    }
    let mut b = WsClient::connect_slow(server.addr, &bob).await;
    b.ask(json!({"type": "join", "room": room}), "j").await;
    let before = server.rss_kib();
    let mut peak = before;
    // Alice sends; Carol reads everything; Bob reads nothing.
    let mut latencies = Vec::with_capacity(SENT);
    for i in 0..SENT {
        let t = Instant::now();
        let ack = a
            .ask(
                json!({"type": "send", "room": room, "body": body}),
                &format!("s{i}"),
            )
            .await;
        assert_eq!(ack["type"], "message", "{ack}");
        let got = c.next_of("message").await;
        assert_eq!(got["id"], ack["id"], "carol missed or reordered a message");
        latencies.push(t.elapsed());
        if i % 100 == 0 {
            peak = peak.max(server.rss_kib());
        }
    }
    peak = peak.max(server.rss_kib());
    let sent_mib = (SENT * BODY) as f64 / (1024.0 * 1024.0);
    let growth_mib = (peak.saturating_sub(before)) as f64 / 1024.0;
    // Bob reads again: what was queued, then the slow-consumer close.
    let mut received = 0;
    let code = loop {
        match b.next_event().await {
            WsEvent::Json(v) if v["type"] == "message" => received += 1,
            WsEvent::Json(_) => {}
            WsEvent::Closed(code, _) => break code,
        }
    };
    assert_eq!(code, parley_actix::CLOSE_SLOW_CONSUMER, "after {received}");
    latencies.sort();
    baseline.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize].as_micros();
    let base = |q: f64| baseline[((baseline.len() as f64 - 1.0) * q) as usize].as_micros();
    eprintln!(
        "slow consumer: carol's send->receive with nobody stalled p50 {} us, p99 {} us",
        base(0.5),
        base(0.99)
    );
    eprintln!(
        "slow consumer: {sent_mib:.1} MiB sent while bob read nothing; server RSS {} -> peak {} MiB (+{growth_mib:.1} MiB); bob got {received} of {SENT} then close {code}; carol send->receive p50 {} us, p99 {} us, max {} us",
        before / 1024,
        peak / 1024,
        p(0.5),
        p(0.99),
        p(1.0)
    );
    // The bound: far less than what was sent (the queue is capped, the socket write is
    // bounded); unbounded buffering would grow by at least the volume sent.
    assert!(
        growth_mib < sent_mib / 2.0,
        "server RSS grew {growth_mib:.1} MiB while {sent_mib:.1} MiB went to a client that reads nothing"
    );
    assert_eq!(a.ask(json!({"type": "ping"}), "p").await["type"], "pong");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_reach_the_logs() {
    let db = Backend::Sqlite.database().await;
    let server = start(&[
        ("DATABASE_URL", db.url().to_owned()),
        ("PARLEY_LOG_LEVEL", "debug".to_owned()),
        ("PARLEY_AUTH_BURST", "3".to_owned()),
        ("PARLEY_AUTH_RATE", "0.01".to_owned()),
    ]);
    let secret = "Zebra-Quartz-7741-secret";
    let addr = server.addr;
    let register = json!({"username": "victor", "password": secret});
    assert_eq!(
        http::post(addr, "/api/auth/register", None, &register)
            .await
            .status,
        201
    );
    let ok = http::post(addr, "/api/auth/login", None, &register).await;
    assert_eq!(ok.status, 200);
    let wrong = json!({"username": "victor", "password": format!("{secret}-wrong")});
    // Wrong password, then rate-limited (both logged at warn/debug).
    for _ in 0..3 {
        let r = http::post(addr, "/api/auth/login", None, &wrong).await;
        assert!(matches!(r.status, 401 | 429), "{}", r.body);
    }
    let (_, logs) = server.terminate();
    assert!(
        logs.len() > 3,
        "too few log lines to mean anything: {logs:?}"
    );
    for line in &logs {
        assert!(!line.contains(secret), "password in the log: {line}");
        assert!(!line.contains("$2b$"), "password hash in the log: {line}");
    }
}
