//! `parley-server user ...` against the real binary while a server process runs, on SQLite
//! and PostgreSQL: every action goes through the engine's rules, is audited as `cli`, and
//! with a Redis layer closes the sockets of a deactivated user at once; with the in-memory
//! layer those sockets are refused at their next `renew`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

use parley_e2e::{Backend, WsClient, account, http, login, redis_url, unique};
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

mod common;

use common::{Process, WorkDir, command};

/// Runs `parley-server user <args>` with `env`, feeding `stdin`.
fn user_cmd(dir: &Path, env: &[(&str, String)], args: &[&str], stdin: &str) -> Output {
    let mut child = command(dir)
        .arg("user")
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(out)
}

async fn user_commands_while_the_server_runs(backend: Backend) {
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
        ("PARLEY_BCRYPT_COST", "4".to_owned()),
    ];
    let server = Process::start(&dir.0, &env);
    let alice = account(server.addr, "alice").await;
    let bob = account(server.addr, "bob").await;
    let mut ws = WsClient::connect(server.addr, &bob).await;
    assert_eq!(ws.ask(json!({"type": "ping"}), "p").await["type"], "pong");

    let listed = ok(&user_cmd(&dir.0, &env, &["list"], ""));
    assert!(
        listed.starts_with("alice\t") && listed.contains("\nbob\t"),
        "{listed}"
    );
    let found = ok(&user_cmd(&dir.0, &env, &["list", "--search", "BO"], ""));
    assert!(!found.contains("alice") && found.contains("bob"), "{found}");
    ok(&user_cmd(
        &dir.0,
        &env,
        &["promote", "alice", "--reason", "first staff"],
        "",
    ));
    // The running server reads the flag on the next request.
    let me = http::get(server.addr, "/api/me", Some(&alice)).await.json();
    assert_eq!(me["is_staff"], true);
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&user_cmd(&dir.0, &env, &["show", "bob"], ""))).unwrap();
    assert_eq!(shown["user"]["is_active"], true);

    // Deactivated from the command line: the socket closes at once (published on Redis).
    ok(&user_cmd(&dir.0, &env, &["deactivate", "bob"], ""));
    assert_eq!(ws.closed().await.0, 4005);
    let r = http::get(server.addr, "/api/me", Some(&bob)).await;
    assert_eq!((r.status, r.error_code()), (403, "account_disabled".into()));
    ok(&user_cmd(&dir.0, &env, &["reactivate", "bob"], ""));
    // A password from standard input; the old one no longer works.
    let out = ok(&user_cmd(
        &dir.0,
        &env,
        &["reset-password", "bob", "--reason", "forgot it"],
        "a fresh password\n",
    ));
    assert!(out.contains("bob"), "{out}");
    let r = http::post(
        server.addr,
        "/api/auth/login",
        None,
        &json!({"username": "bob", "password": "a fresh password"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let weak = user_cmd(&dir.0, &env, &["reset-password", "bob"], "short\n");
    assert!(!weak.status.success());
    // Refusals are said and fail the command.
    let nobody = user_cmd(&dir.0, &env, &["demote", "nobody"], "");
    assert!(!nobody.status.success());
    assert!(
        String::from_utf8_lossy(&nobody.stderr).contains("no account named nobody"),
        "{}",
        String::from_utf8_lossy(&nobody.stderr)
    );
    let out = ok(&user_cmd(&dir.0, &env, &["delete", "bob"], ""));
    assert!(out.contains("deleted."), "{out}");
    assert!(!ok(&user_cmd(&dir.0, &env, &["list"], "")).contains("bob"));

    // Audited as `cli`, without an actor id.
    let log = http::get(server.addr, "/api/admin/audit?actor=cli", Some(&alice))
        .await
        .json();
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "delete_user",
            "reset_password",
            "reactivate_user",
            "deactivate_user",
            "promote_staff"
        ]
    );
    assert_eq!(log[4]["actor_id"], serde_json::Value::Null);
    assert_eq!(log[4]["reason"], "first staff");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_commands_while_the_server_runs_sqlite() {
    user_commands_while_the_server_runs(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_commands_while_the_server_runs_postgres() {
    user_commands_while_the_server_runs(Backend::Postgres).await;
}

/// With the in-memory layer the command line cannot reach the server's sockets: they stay
/// open until their next `renew` (refused), or until their token expires; REST refuses the
/// token at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_in_memory_layer_sockets_are_refused_at_renew() {
    let dir = WorkDir::new();
    let env = vec![("PARLEY_BCRYPT_COST", "4".to_owned())];
    let server = Process::start(&dir.0, &env);
    account(server.addr, "bob").await;
    let session = login(server.addr, "bob").await;
    let access = session["access"].as_str().unwrap().to_owned();
    let mut ws = WsClient::connect(server.addr, &access).await;
    ok(&user_cmd(&dir.0, &env, &["deactivate", "bob"], ""));
    let r = http::get(server.addr, "/api/me", Some(&access)).await;
    assert_eq!((r.status, r.error_code()), (403, "account_disabled".into()));
    let renew = ws.ask(json!({"type": "renew", "token": access}), "r").await;
    assert_eq!(renew["code"], "account_disabled", "{renew}");
    drop(server);
}
