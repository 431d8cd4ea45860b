//! Throwaway PostgreSQL and Redis servers for fault tests: each test starts its own on a
//! free port (never the shared ones), stops and restarts them at will, and a `Drop` guard
//! stops them even when the test panics.
//!
//! Binaries: `PARLEY_PG_BIN` (a directory with `initdb`/`pg_ctl`, exported by
//! scripts/test.sh; else `/usr/lib/postgresql/*/bin`) and `PARLEY_REDIS_SERVER` (else
//! `redis-server` on the `PATH`). Missing binaries fail the test, naming what to install.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A port on 127.0.0.1 for a server a test starts, free when drawn.
///
/// Drawn at random below the kernel's ephemeral range (32768–60999 by default): `bind(0)` and
/// the local end of every outgoing connection of the tests running in parallel take ports
/// from that range, so one of them could take a port drawn there before the server binds it
/// (CI once saw a Sentinel's port answered by another test's redis-server), or while a
/// stopped server waits to be resumed on it.
pub fn free_port() -> u16 {
    const SERVER_PORTS: std::ops::Range<u16> = 20_000..32_000;
    let span = u128::from(SERVER_PORTS.end - SERVER_PORTS.start);
    for _ in 0..1_000 {
        let offset = u16::try_from(uuid::Uuid::new_v4().as_u128() % span).unwrap_or(0);
        let port = SERVER_PORTS.start + offset;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {SERVER_PORTS:?} on 127.0.0.1");
}

/// Where throwaway data directories go: `target/test-services/` of this workspace.
fn services_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/test-services")
        .canonicalize()
        .unwrap_or_else(|_| std::env::temp_dir());
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn wait_for_port(port: u16, what: &str) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not start listening on port {port}");
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PostgreSQL cluster of its own (initdb in `target/test-services/`), trust auth, fsync off.
pub struct ThrowawayPostgres {
    bin: PathBuf,
    dir: PathBuf,
    /// The port it listens on (kept across restarts).
    pub port: u16,
    as_postgres: bool,
    running: bool,
}

impl ThrowawayPostgres {
    fn find_bin() -> PathBuf {
        if let Ok(dir) = std::env::var("PARLEY_PG_BIN")
            && !dir.is_empty()
        {
            return PathBuf::from(dir);
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.path().join("bin"))
                    .filter(|p| p.join("initdb").exists())
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found.pop().unwrap_or_else(|| {
            panic!("no PostgreSQL binaries: install postgresql or set PARLEY_PG_BIN")
        })
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            // initdb and postgres refuse to run as root.
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// Creates and starts a fresh cluster.
    pub fn start() -> Self {
        let bin = Self::find_bin();
        let port = free_port();
        let dir = services_dir().join(format!("fault-pg-{port}-{}", crate::unique()));
        std::fs::create_dir_all(&dir).expect("data dir");
        let as_postgres = is_root();
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(&dir)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "chown {} to postgres", dir.display());
        }
        let mut pg = Self {
            bin,
            dir,
            port,
            as_postgres,
            running: false,
        };
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(pg.dir.join("data"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.resume();
        pg
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the (stopped) cluster again on the same port and data.
    pub fn resume(&mut self) {
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .arg("-o")
            .arg(format!(
                "-h 127.0.0.1 -p {} -k {} -c fsync=off -c full_page_writes=off -c max_connections=50",
                self.port,
                self.dir.display()
            ))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .status()
            .expect("run pg_ctl start");
        assert!(
            status.success(),
            "pg_ctl start failed (see {})",
            self.dir.display()
        );
        self.running = true;
        wait_for_port(self.port, "PostgreSQL");
    }

    /// Stops the cluster at once (`-m immediate`: like a crash, connections cut).
    pub fn stop(&mut self) {
        if self.running {
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            self.running = false;
        }
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A redis-server of its own, without persistence: a restart loses every key, the hardest
/// case for the layer (group memberships must be rebuilt by the servers).
pub struct ThrowawayRedis {
    child: Option<Child>,
    /// The port it listens on (kept across restarts).
    pub port: u16,
}

impl ThrowawayRedis {
    /// Starts one on a free port.
    pub fn start() -> Self {
        let mut redis = Self {
            child: None,
            port: free_port(),
        };
        redis.resume();
        redis
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it again (empty) on the same port.
    pub fn resume(&mut self) {
        let bin = std::env::var("PARLEY_REDIS_SERVER")
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "redis-server".to_owned());
        let child = Command::new(&bin)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} (install redis-server or set PARLEY_REDIS_SERVER): {e}")
            });
        self.child = Some(child);
        wait_for_port(self.port, "redis-server");
    }

    /// Kills it (SIGKILL: no goodbye to clients).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Resident set size of this process, in KiB (Linux `/proc/self/status`).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .expect("VmRSS in /proc/self/status")
}
