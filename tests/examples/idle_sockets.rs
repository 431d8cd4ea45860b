//! Memory per idle WebSocket connection of the real server.
//!
//! `cargo build -p parley-server [--release]` then
//! `cargo run -p parley-e2e --example idle_sockets -- target/debug/parley-server 5000`
//!
//! Starts the binary (SQLite in a temporary directory, in-memory layer), opens a few warm-up
//! sockets, reads the server's resident memory (`VmRSS`), opens N more authenticated idle
//! sockets (raw TCP handshakes, no client library state to speak of), waits for the server
//! to settle, reads `VmRSS` again and prints the difference per connection.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a measuring tool

use parley_e2e::{http, unique};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

async fn open_socket(addr: SocketAddr, token: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = [0u8; 512];
    let n = tcp.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let bin = args
        .next()
        .expect("usage: idle_sockets <parley-server binary> [N]");
    let bin = std::fs::canonicalize(&bin).unwrap().display().to_string();
    let n: usize = args.next().map(|s| s.parse().unwrap()).unwrap_or(2000);
    let dir = std::env::temp_dir().join(format!("parley-idle-{}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(&bin)
        .current_dir(&dir)
        .env("PARLEY_BIND", "127.0.0.1:0")
        .env("PARLEY_LOG_FORMAT", "json")
        .env("PARLEY_LOG_LEVEL", "warn,parley_server=info")
        .env("PARLEY_BCRYPT_COST", "4")
        .env("PARLEY_MAX_CONNECTIONS_PER_USER", "1000000")
        .env("PARLEY_SECRET", "idle-sockets-idle-sockets-idle-sockets")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().unwrap().unwrap();
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("parley-server ready"))
        {
            break v["addr"].as_str().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let creds = json!({"username": "idle", "password": "idle-password"});
    http::post(addr, "/api/auth/register", None, &creds).await;
    let token = http::post(addr, "/api/auth/login", None, &creds)
        .await
        .json()["access"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut sockets = Vec::new();
    for _ in 0..200 {
        sockets.push(open_socket(addr, &token).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rss_kib(child.id());
    for _ in 0..n {
        sockets.push(open_socket(addr, &token).await);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(child.id());
    let per = (after.saturating_sub(before) as f64) * 1024.0 / n as f64;
    println!(
        "binary {bin}: {n} idle sockets: VmRSS {before} KiB -> {after} KiB, {per:.0} bytes per connection"
    );
    drop(sockets);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
