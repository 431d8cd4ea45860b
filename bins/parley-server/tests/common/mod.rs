//! What the binary's test files share: a clean working directory, the binary with a clean
//! environment, and a running server process that is killed on drop.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // each test file uses a part

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_parley-server");

/// The binary the tests start: [`BIN`], or `PARLEY_TEST_SERVER_BIN` when set (another build:
/// an older one to measure a fix against, or a copy when a shared target directory may be
/// rebuilt while the tests run).
pub fn bin() -> String {
    std::env::var("PARLEY_TEST_SERVER_BIN").unwrap_or_else(|_| BIN.to_owned())
}

/// A fresh working directory, removed on drop.
pub struct WorkDir(pub PathBuf);

impl WorkDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("parley-bin-{}", parley_e2e::unique()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary with a clean `PARLEY_*`/`DATABASE_URL`/`REDIS_URL` environment.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("PARLEY_")
            || key == "DATABASE_URL"
            || key == "REDIS_URL"
            || key == "RUST_LOG"
        {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// A running server process, killed on drop if still running.
pub struct Process {
    child: Child,
    pub addr: SocketAddr,
    /// Log lines up to the "ready" line.
    startup: Vec<String>,
    /// Log lines after it.
    logs: mpsc::Receiver<String>,
}

impl Process {
    /// Starts `serve` with JSON logs on port 0 and waits for the "ready" line.
    pub fn start(dir: &Path, env: &[(&str, String)]) -> Self {
        Self::spawn(command(dir), env)
    }

    /// [`Process::start`] under a file-descriptor limit of `nofile` (soft and hard), set by
    /// util-linux's `prlimit`, which then runs the binary in its own place (same process).
    pub fn start_with_nofile(dir: &Path, env: &[(&str, String)], nofile: u64) -> Self {
        let mut cmd = command(dir);
        let mut limited = Command::new("prlimit");
        limited
            .arg(format!("--nofile={nofile}:{nofile}"))
            .arg(cmd.get_program())
            .current_dir(dir);
        for (key, value) in cmd.get_envs() {
            match value {
                Some(value) => limited.env(key, value),
                None => limited.env_remove(key),
            };
        }
        cmd = limited;
        Self::spawn(cmd, env)
    }

    fn spawn(mut cmd: Command, env: &[(&str, String)]) -> Self {
        cmd.env("PARLEY_BIND", "127.0.0.1:0")
            .env("PARLEY_LOG_FORMAT", "json")
            .env("PARLEY_BCRYPT_COST", "4")
            .env("PARLEY_WORKERS", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn parley-server");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut startup = Vec::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("parley-server did not report its address"));
            startup.push(line.clone());
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("parley-server ready: open http://"))
            {
                break v["addr"].as_str().unwrap().parse().unwrap();
            }
        };
        Self {
            child,
            addr,
            startup,
            logs: rx,
        }
    }

    /// Sends SIGTERM and waits for the exit status; also every log line.
    pub fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut logs = std::mem::take(&mut self.startup);
                // The reader thread ends with the process's stderr.
                while let Ok(line) = self.logs.recv_timeout(Duration::from_secs(5)) {
                    logs.push(line);
                }
                return (status, logs);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's resident set size, KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    /// File descriptors the server holds open now.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .count()
    }

    /// The server's soft limit on open files, from `/proc/<pid>/limits`.
    pub fn nofile_limit(&self) -> u64 {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.child.id())).unwrap();
        limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    /// SIGKILL: no shutdown, no goodbye.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Whether a log line so far contains `text`.
    /// Sends SIGTERM without waiting for the exit.
    pub fn signal_term(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// The log lines up to the "ready" line.
    pub fn startup_lines(&self) -> &[String] {
        &self.startup
    }

    /// The next log line (after those already read) that `matches`, waiting up to `within`;
    /// `None` if none came. Lines read on the way are consumed.
    pub fn next_log(&self, within: Duration, matches: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self.logs.recv_timeout(left).ok()?;
            if matches(&line) {
                return Some(line);
            }
        }
    }

    pub fn logged(&self, text: &str) -> bool {
        self.startup.iter().any(|l| l.contains(text))
            || self.logs.try_iter().any(|l| l.contains(text))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
