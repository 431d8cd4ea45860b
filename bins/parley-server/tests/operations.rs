//! What an operator meets first, on the real binary: a start that says where to go, errors
//! said once and naming what failed, nothing written before the port and the services are
//! there, private files, a backup while running, HEAD and 405.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

mod common;

use common::{Process, WorkDir, command};
use parley_e2e::{account, http};
use std::net::TcpListener;
use std::process::Output;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_port_in_use_stops_the_start_before_anything_is_written() {
    let dir = WorkDir::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = command(&dir.0)
        .env("PARLEY_BIND", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "one error line: {err}");
    assert!(
        errors[0].contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    assert_eq!(
        errors[0].matches("Address already in use").count(),
        1,
        "the cause once: {err}"
    );
    // No database and no development secret were made for a server that could not start.
    assert!(!dir.0.join("parley.sqlite3").exists());
    assert!(!dir.0.join(".parley-secret").exists());
    // And no colour codes into a pipe.
    assert!(!err.contains('\u{1b}'), "ANSI escapes in {err:?}");
}

#[test]
fn an_unreachable_database_is_named_with_the_cause() {
    let dir = WorkDir::new();
    // Nothing listens on port 1.
    let out = command(&dir.0)
        .env("PARLEY_BIND", "127.0.0.1:0")
        .env("DATABASE_URL", "postgres://parley:pw@127.0.0.1:1/chat")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cannot reach PostgreSQL at 127.0.0.1:1: Connection refused"),
        "{err}"
    );
    assert!(!err.contains(":pw@"), "the password is not printed: {err}");
    assert!(!dir.0.join(".parley-secret").exists());
}

#[test]
fn a_misspelt_variable_is_refused_with_the_right_name() {
    let dir = WorkDir::new();
    let out = command(&dir.0)
        .arg("check-config")
        .env("PARLEY_BIDN", "127.0.0.1:9000")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("PARLEY_BIDN: no such setting (did you mean PARLEY_BIND?)"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_says_where_to_go_and_the_files_are_private() {
    let dir = WorkDir::new();
    let server = Process::start(&dir.0, &[]);
    let ready = server
        .startup_lines()
        .iter()
        .find(|l| l.contains("parley-server ready"))
        .cloned()
        .unwrap();
    assert!(
        ready.contains(&format!("open http://{}/", server.addr)),
        "{ready}"
    );
    // The full settings are at debug only: the start-up is short.
    assert!(
        !server
            .startup_lines()
            .iter()
            .any(|l| l.contains("\"settings\"")),
        "{:?}",
        server.startup_lines()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in ["parley.sqlite3", "parley.sqlite3-wal", "parley.sqlite3-shm"] {
            let mode = std::fs::metadata(dir.0.join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }
    // HEAD answers where GET does, with no body; another method is 405 with Allow.
    for path in ["/healthz", "/readyz", "/"] {
        let r = http::request(server.addr, "HEAD", path, None, None, &[]).await;
        assert_eq!(r.status, 200, "HEAD {path}");
        assert!(r.body.is_empty(), "HEAD {path} has a body");
    }
    let r = http::request(server.addr, "DELETE", "/healthz", None, None, &[]).await;
    assert_eq!(
        (r.status, r.header("allow")),
        (405, Some("GET, HEAD")),
        "{}",
        r.body
    );
    assert_eq!(r.error_code(), "method_not_allowed");
    let r = http::request(server.addr, "PUT", "/api/rooms", None, None, &[]).await;
    assert_eq!(
        (r.status, r.header("allow")),
        (405, Some("GET, HEAD, POST"))
    );
    // An unknown path is still 404.
    assert_eq!(http::get(server.addr, "/nowhere", None).await.status, 404);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_copies_the_database_while_the_server_runs() {
    let dir = WorkDir::new();
    let server = Process::start(&dir.0, &[]);
    account(server.addr, "alice").await;
    let copy = dir.0.join("backup.sqlite3");
    let out = command(&dir.0)
        .args(["backup", copy.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The copy is a whole database: alice is in it.
    let store =
        parley_store::Store::connect(&format!("sqlite://{}", copy.display()), &Default::default())
            .unwrap();
    let alice = store
        .user_by_name(&parley_domain::UserName::parse("alice").unwrap())
        .await
        .unwrap();
    assert_eq!(alice.username.as_str(), "alice");
    // A copy never overwrites a file.
    let again = command(&dir.0)
        .args(["backup", copy.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(stderr(&again).contains("exists"), "{}", stderr(&again));
    // PostgreSQL is copied with its own tool, which the command names.
    let pg = command(&dir.0)
        .args(["backup", "x.dump"])
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
        .output()
        .unwrap();
    assert!(!pg.status.success());
    assert!(stderr(&pg).contains("pg_dump"), "{}", stderr(&pg));
    drop(server);
}

#[test]
fn keep_alive_connections_are_closed_once_the_server_stops() {
    use std::io::{Read, Write};
    let dir = WorkDir::new();
    let server = Process::start(&dir.0, &[]);
    let mut conn = std::net::TcpStream::connect(server.addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nhost: parley\r\n\r\n";
    let read_answer = |conn: &mut std::net::TcpStream| {
        let mut buf = [0u8; 4096];
        let n = conn.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).to_lowercase()
    };
    conn.write_all(request).unwrap();
    let first = read_answer(&mut conn);
    assert!(first.starts_with("http/1.1 200"), "{first}");
    assert!(!first.contains("connection: close"), "{first}");
    server.signal_term();
    // The next answer on the same connection says it closes, and it does: the client moves
    // on now, not when the graceful stop times out.
    std::thread::sleep(std::time::Duration::from_millis(200));
    conn.write_all(request).unwrap();
    let last = read_answer(&mut conn);
    assert!(last.contains("connection: close"), "{last}");
    let mut rest = Vec::new();
    let eof = conn.read_to_end(&mut rest);
    assert!(eof.is_ok(), "the server closed the connection: {eof:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_happened_without_names() {
    use parley_e2e::WsClient;
    use serde_json::json;
    let dir = WorkDir::new();
    let server = Process::start(&dir.0, &[("PARLEY_METRICS_BIND", "127.0.0.1:0".to_owned())]);
    let metrics_addr: std::net::SocketAddr = server
        .startup_lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("/metrics"))
        })
        .and_then(|v| v["addr"].as_str().map(str::to_owned))
        .expect("the metrics address is logged")
        .parse()
        .unwrap();
    let alice = account(server.addr, "alice").await;
    let bob = account(server.addr, "bob").await;
    parley_e2e::create_room(server.addr, &alice, "secret-room").await;
    let mut a = WsClient::connect(server.addr, &alice).await;
    let mut b = WsClient::connect(server.addr, &bob).await;
    for ws in [&mut a, &mut b] {
        let joined = ws
            .ask(json!({"type": "join", "room": "secret-room"}), "j")
            .await;
        assert_eq!(joined["type"], "joined");
    }
    for i in 0..3 {
        a.ask(
            json!({"type": "send", "room": "secret-room", "body": format!("m{i}")}),
            "s",
        )
        .await;
        b.next_of("message").await;
    }
    let wrong = http::post(
        server.addr,
        "/api/auth/login",
        None,
        &json!({"username": "alice", "password": "not her password"}),
    )
    .await;
    assert_eq!(wrong.status, 401);

    let text = http::get(metrics_addr, "/metrics", None).await.body;
    let value = |series: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(value("parley_messages_stored_total"), 3.0);
    assert_eq!(value("parley_frames_in_total{type=\"send\"}"), 3.0);
    assert_eq!(value("parley_frames_in_total{type=\"join\"}"), 2.0);
    assert_eq!(value("parley_sockets_open"), 2.0);
    assert!(value("parley_deliveries_total") >= 3.0);
    assert!(value("parley_store_commit_seconds_count") >= 1.0);
    assert_eq!(
        value("parley_auth_failures_total{reason=\"invalid_credentials\"}"),
        1.0
    );
    // Names never become labels.
    for name in ["alice", "bob", "secret-room"] {
        assert!(
            !text.contains(name),
            "{name} appears in the metrics:\n{text}"
        );
    }
    // Not on the public listener.
    assert_eq!(http::get(server.addr, "/metrics", None).await.status, 404);
    drop(server);
}

#[test]
fn the_dashboard_shows_only_documented_metrics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/operations.md")).unwrap();
    let dashboard = std::fs::read_to_string(root.join("deploy/grafana/parley.json")).unwrap();
    let _: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let names = |text: &str| -> std::collections::BTreeSet<String> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("parley_") && w.len() > "parley_".len())
            .map(|w| {
                w.trim_end_matches("_count")
                    .trim_end_matches("_sum")
                    .to_owned()
            })
            .collect()
    };
    let documented = names(&doc);
    let shown = names(&dashboard);
    assert!(shown.len() >= 10, "{shown:?}");
    for name in &shown {
        assert!(
            documented.contains(name),
            "the dashboard shows {name}, which docs/operations.md does not list"
        );
    }
}
