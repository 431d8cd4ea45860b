//! The real `parley-server` binary: zero-configuration start, configuration errors,
//! `create-user`, graceful shutdown on SIGTERM (exit 0, sockets closed with 1001), and two
//! server processes on one Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

use parley_e2e::{Backend, WAIT, WsClient, account, http, redis_url, unique};
use serde_json::json;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

mod common;

use common::{Process, WorkDir, command};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_configuration_start_and_graceful_sigterm() {
    let dir = WorkDir::new();
    let server = Process::start(&dir.0, &[]);
    // SQLite file and a private development secret in the working directory, with a warning.
    assert!(dir.0.join("parley.sqlite3").exists());
    let secret = dir.0.join(".parley-secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(std::fs::read_to_string(&secret).unwrap().trim().len() >= 64);
    assert!(server.logged("DEVELOPMENT SECRET"));

    let addr = server.addr;
    assert_eq!(http::get(addr, "/healthz", None).await.status, 200);
    assert_eq!(http::get(addr, "/readyz", None).await.status, 200);
    let token = account(addr, "alice").await;
    // The token in the query string (as browsers send it) must not reach the logs.
    let mut ws = WsClient::try_connect(addr, &format!("/ws?token={token}"), &[])
        .await
        .unwrap();
    assert_eq!(ws.ask(json!({"type": "ping"}), "p").await["type"], "pong");

    // SIGTERM: the socket is told "going away", the process exits 0.
    let waiter = tokio::spawn(async move { ws.closed().await });
    let (status, logs) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    let (code, _) = tokio::time::timeout(WAIT, waiter).await.unwrap().unwrap();
    assert_eq!(code, 1001);
    let logs = logs.join("\n");
    assert!(
        logs.contains("\"path\":\"/ws\""),
        "requests are logged: {logs}"
    );
    assert!(logs.contains("request_id"), "{logs}");
    assert!(!logs.contains(&token), "the access token was logged");
    let secret = std::fs::read_to_string(&secret).unwrap();
    assert!(!logs.contains(secret.trim()), "the secret was logged");
}

#[test]
fn invalid_configuration_fails_naming_the_setting() {
    let dir = WorkDir::new();
    for (key, value, name) in [
        ("PARLEY_BIND", "not-an-address", "bind"),
        ("PARLEY_SECRET", "short", "secret"),
        ("PARLEY_LAYER", "carrier-pigeon", "layer"),
        ("DATABASE_URL", "mysql://x", "database_url"),
        (
            "PARLEY_WS_PING_TIMEOUT_SECS",
            "soon",
            "WS_PING_TIMEOUT_SECS",
        ),
        (
            "PARLEY_HTTP_REQUEST_TIMEOUT_SECS",
            "0",
            "http_request_timeout_secs",
        ),
    ] {
        let out = command(&dir.0)
            .arg("check-config")
            .env(key, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{key}={value} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(
            stderr.contains(&name.to_lowercase()),
            "{key}={value}: {stderr}"
        );
    }
    // A misspelt key in the file is refused, naming it.
    std::fs::write(dir.0.join("parley.toml"), "bnid = \"127.0.0.1:9999\"\n").unwrap();
    let out = command(&dir.0).arg("check-config").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bnid"));
    // A config file works, and check-config hides secrets.
    std::fs::write(
        dir.0.join("parley.toml"),
        "bind = \"127.0.0.1:9999\"\nsecret = \"0123456789abcdef0123456789abcdef-hidden\"\n",
    )
    .unwrap();
    let out = command(&dir.0).arg("check-config").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("127.0.0.1:9999"), "{stdout}");
    assert!(!stdout.contains("hidden"), "secret printed: {stdout}");
    // Environment beats the file.
    let out = command(&dir.0)
        .arg("check-config")
        .env("PARLEY_BIND", "127.0.0.1:7777")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.1:7777"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_user_then_login() {
    let dir = WorkDir::new();
    let mut child = command(&dir.0)
        .args(["create-user", "root", "--staff", "--password-stdin"])
        .env("PARLEY_BCRYPT_COST", "4")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a-strong-password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("staff"));

    let server = Process::start(&dir.0, &[]);
    let r = http::post(
        server.addr,
        "/api/auth/login",
        None,
        &json!({"username": "root", "password": "a-strong-password"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["user"]["is_staff"], true);
}

/// Two real server processes on one Redis and one database.
async fn two_processes(backend: Backend) {
    let db = backend.database().await;
    let dir = WorkDir::new();
    let env = vec![
        ("DATABASE_URL", db.url().to_owned()),
        ("REDIS_URL", redis_url()),
        ("PARLEY_REDIS_PREFIX", format!("parley-bin-{}:", unique())),
        (
            "PARLEY_SECRET",
            "binary-test-secret-binary-test-secret".to_owned(),
        ),
        ("PARLEY_PRESENCE_INTERVAL_MS", "500".to_owned()),
        ("PARLEY_PRESENCE_TTL_MS", "2000".to_owned()),
    ];
    let one = Process::start(&dir.0, &env);
    let two = Process::start(&dir.0, &env);
    let alice = account(one.addr, "alice").await;
    let bob = account(two.addr, "bob").await;
    let room = format!("procs-{}", unique());
    let r = http::post(one.addr, "/api/rooms", Some(&alice), &json!({"name": room})).await;
    assert_eq!(r.status, 201);

    let mut a = WsClient::connect(one.addr, &alice).await;
    let mut b = WsClient::connect(two.addr, &bob).await;
    a.ask(json!({"type": "join", "room": room}), "j").await;
    b.ask(json!({"type": "join", "room": room}), "j").await;
    a.ask(
        json!({"type": "send", "room": room, "body": "across processes"}),
        "s",
    )
    .await;
    assert_eq!(b.next_of("message").await["body"], "across processes");

    // Presence is the union on both processes.
    for (addr, token) in [(one.addr, &alice), (two.addr, &bob)] {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let r = http::get(addr, &format!("/api/rooms/{room}/online"), Some(token)).await;
            let online = r.json()["online"].clone();
            if online == json!(["alice", "bob"]) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{addr}: {online}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    drop((one, two));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_redis_sqlite() {
    two_processes(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_redis_postgres() {
    two_processes(Backend::Postgres).await;
}
