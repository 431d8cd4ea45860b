//! Behind a reverse proxy: `trusted_proxies` on the real binary (forwarded addresses get
//! budgets of their own only from a trusted peer; forged and malformed headers do not escape
//! the sender's budget; a trusted proxy is not held to the per-address connection cap), and
//! Debian's nginx, run with the shipped `deploy/nginx/parley.conf`, in front of two Parley
//! processes on one PostgreSQL database and one Redis: TLS, HTTP → HTTPS, the WebSocket
//! upgrade, chat in both directions between sockets on different processes, and the client's
//! address in the processes' logs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

mod common;

use common::{Process, WorkDir};
use parley_e2e::{WsClient, http, redis_url, unique};
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

const LOCAL: &str = "127.0.0.1";
/// Where the test's clients connect from: another loopback address than nginx's, so the
/// address a process sees forwarded differs from the proxy's own.
const CLIENT: &str = "127.0.0.2";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The message of the per-address account limit's 429.
const ADDRESS_LIMITED: &str = "too many account requests from this address";

/// A login for a fresh (unknown) name from `from` with extra headers: 401 when the
/// per-address limit let it through, 429 when it did not. Fresh names keep the per-account
/// failure limit out of the way.
async fn login_attempt(server: SocketAddr, from: &str, headers: &[(&str, &[u8])]) -> u16 {
    let body = json!({"username": format!("nobody-{}", unique()), "password": "wrong-password"})
        .to_string();
    let mut raw = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    )
    .into_bytes();
    for (name, value) in headers {
        raw.extend_from_slice(name.as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(value);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(body.as_bytes());
    let mut stream = parley_e2e::raw::connect_from(ip(from), server)
        .await
        .unwrap();
    stream.write_all(&raw).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(parley_e2e::WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("no answer")
        .unwrap();
    let r = http::parse(&answer);
    match r.status {
        401 => {}
        429 => assert!(r.body.contains(ADDRESS_LIMITED), "{}", r.body),
        other => panic!("unexpected {other}: {}", r.body),
    }
    r.status
}

/// A server on SQLite with an account limit of two requests per address (no refill to speak
/// of) and `trusted_proxies` as given.
fn limited_server(dir: &WorkDir, trusted: &str) -> Process {
    Process::start(
        &dir.0,
        &[
            ("PARLEY_AUTH_RATE", "0.001".to_owned()),
            ("PARLEY_AUTH_BURST", "2".to_owned()),
            ("PARLEY_TRUSTED_PROXIES", trusted.to_owned()),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_gives_each_forwarded_address_its_own_budget() {
    let dir = WorkDir::new();
    let server = limited_server(&dir, "10.9.0.0/16, 127.0.0.1");
    let from = |client: &'static str| [("X-Forwarded-For", client.as_bytes())];
    for _ in 0..2 {
        assert_eq!(
            login_attempt(server.addr, LOCAL, &from("198.51.100.1")).await,
            401
        );
    }
    assert_eq!(
        login_attempt(server.addr, LOCAL, &from("198.51.100.1")).await,
        429
    );
    // Another client behind the same proxy is untouched, and so is the proxy's own budget.
    assert_eq!(
        login_attempt(server.addr, LOCAL, &from("198.51.100.2")).await,
        401
    );
    assert_eq!(login_attempt(server.addr, LOCAL, &[]).await, 401);
    // A chain: the right-most hop that is not a trusted proxy is the client (10.9.0.0/16 is
    // trusted: an inner proxy), whatever the client put left of it.
    let chain: &[(&str, &[u8])] = &[("X-Forwarded-For", b"198.51.100.9, 198.51.100.1, 10.9.3.4")];
    assert_eq!(login_attempt(server.addr, LOCAL, chain).await, 429);
    // RFC 7239 `Forwarded`, when there is no X-Forwarded-For.
    let forwarded: &[(&str, &[u8])] = &[("Forwarded", b"for=\"[2001:db8::1]:4711\";proto=https")];
    assert_eq!(login_attempt(server.addr, LOCAL, forwarded).await, 401);
    // The forwarded address is the one in the request's log line.
    let line = server
        .next_log(parley_e2e::WAIT, |l| {
            l.contains("\"client\":\"2001:db8::1\"")
        })
        .expect("the forwarded client address in the request log");
    assert!(line.contains("/api/auth/login"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_sockets_are_limited_per_forwarded_address() {
    let dir = WorkDir::new();
    let server = Process::start(
        &dir.0,
        &[
            ("PARLEY_WS_CONNECT_RATE", "0.001".to_owned()),
            ("PARLEY_WS_CONNECT_BURST", "1".to_owned()),
            ("PARLEY_TRUSTED_PROXIES", LOCAL.to_owned()),
        ],
    );
    // The per-address limit comes before the token: 401 (no token) when it let the handshake
    // through, 429 when it did not.
    let from = |client: &'static str| [("x-forwarded-for", client)];
    let open = |client| async move {
        match WsClient::try_connect(server.addr, "/ws", &from(client)).await {
            Ok(_) => panic!("a socket without a token"),
            Err(status) => status,
        }
    };
    assert_eq!(open("198.51.100.1").await, 401);
    assert_eq!(open("198.51.100.1").await, 429);
    assert_eq!(open("198.51.100.2").await, 401);
}

#[test]
fn a_bad_trusted_proxy_entry_stops_the_start_naming_it() {
    let dir = WorkDir::new();
    let out = common::command(&dir.0)
        .arg("check-config")
        .env("PARLEY_TRUSTED_PROXIES", "127.0.0.1, nginx.internal")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("trusted_proxies: \"nginx.internal\" is not an IP address or a network"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peer_cannot_escape_its_budget_with_forged_headers() {
    let dir = WorkDir::new();
    // Some proxy is trusted, but not the test's address.
    let server = limited_server(&dir, "127.0.0.9");
    let forged: [&[(&str, &[u8])]; 3] = [
        &[("X-Forwarded-For", b"198.51.100.1")],
        &[("X-Forwarded-For", b"198.51.100.2, 198.51.100.3")],
        &[("Forwarded", b"for=198.51.100.4")],
    ];
    assert_eq!(login_attempt(server.addr, LOCAL, forged[0]).await, 401);
    assert_eq!(login_attempt(server.addr, LOCAL, forged[1]).await, 401);
    assert_eq!(login_attempt(server.addr, LOCAL, forged[2]).await, 429);
    assert_eq!(login_attempt(server.addr, LOCAL, &[]).await, 429);
    // Another real address still has its budget.
    assert_eq!(login_attempt(server.addr, CLIENT, forged[0]).await, 401);
    let line = server
        .next_log(parley_e2e::WAIT, |l| l.contains("/api/auth/login"))
        .expect("a request log line");
    assert!(line.contains("\"client\":\"127.0.0.1\""), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_forwarding_headers_count_against_the_proxy_itself() {
    let dir = WorkDir::new();
    let server = limited_server(&dir, LOCAL);
    let malformed: [&[(&str, &[u8])]; 4] = [
        &[("X-Forwarded-For", b"not-an-address")],
        &[("X-Forwarded-For", b"198.51.100.1, 300.1.2.3")],
        &[("X-Forwarded-For", b"\xff\xfe")],
        &[("Forwarded", b"for=unknown")],
    ];
    // All four share the proxy's own budget of two; well-formed clients keep theirs.
    assert_eq!(login_attempt(server.addr, LOCAL, malformed[0]).await, 401);
    assert_eq!(login_attempt(server.addr, LOCAL, malformed[1]).await, 401);
    assert_eq!(login_attempt(server.addr, LOCAL, malformed[2]).await, 429);
    assert_eq!(login_attempt(server.addr, LOCAL, malformed[3]).await, 429);
    assert_eq!(login_attempt(server.addr, LOCAL, &[]).await, 429);
    let good: &[(&str, &[u8])] = &[("X-Forwarded-For", b"198.51.100.1")];
    assert_eq!(login_attempt(server.addr, LOCAL, good).await, 401);
    assert_eq!(http::get(server.addr, "/healthz", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_is_not_held_to_the_per_address_connection_cap() {
    let dir = WorkDir::new();
    let server = Process::start(
        &dir.0,
        &[
            ("PARLEY_HTTP_MAX_CONNECTIONS_PER_ADDRESS", "2".to_owned()),
            ("PARLEY_TRUSTED_PROXIES", LOCAL.to_owned()),
        ],
    );
    // An untrusted address: two open connections, the third is refused at once.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(
            parley_e2e::raw::connect_from(ip(CLIENT), server.addr)
                .await
                .unwrap(),
        );
    }
    let r = http::post_from(ip(CLIENT), server.addr, "/api/auth/login", None, &json!({})).await;
    assert_eq!(r.status, 429, "{}", r.body);
    // The proxy's address: more open connections than the cap, and requests still answered.
    for _ in 0..4 {
        held.push(
            parley_e2e::raw::connect_from(ip(LOCAL), server.addr)
                .await
                .unwrap(),
        );
    }
    assert_eq!(http::get(server.addr, "/healthz", None).await.status, 200);
}

// --- nginx in front of two processes ----------------------------------------------------

/// Debian's nginx: `NGINX_BIN`, else /usr/sbin/nginx. Missing, the test fails and says how
/// to install it (scripts/test.sh installs it when it runs as root).
fn nginx_bin() -> PathBuf {
    let path =
        PathBuf::from(std::env::var("NGINX_BIN").unwrap_or_else(|_| "/usr/sbin/nginx".to_owned()));
    assert!(
        path.exists(),
        "nginx is not installed at {}: apt-get install nginx (or set NGINX_BIN)",
        path.display()
    );
    path
}

/// `deploy/nginx/parley.conf` with the test's ports and paths: each replaced text must be
/// there, so the test follows the shipped file rather than a copy of it.
fn render_site(upstreams: [SocketAddr; 2], https: u16, http_port: u16, dir: &Path) -> String {
    let shipped = include_str!("../../../deploy/nginx/parley.conf");
    let replacements = [
        (
            "server 127.0.0.1:8081 ",
            format!("server {} ", upstreams[0]),
        ),
        (
            "server 127.0.0.1:8082 ",
            format!("server {} ", upstreams[1]),
        ),
        ("listen 80;", format!("listen {LOCAL}:{http_port};")),
        ("listen [::]:80;", String::new()),
        ("listen 443 ssl;", format!("listen {LOCAL}:{https} ssl;")),
        ("listen [::]:443 ssl;", String::new()),
        (
            "/etc/ssl/parley/fullchain.pem",
            dir.join("cert.pem").display().to_string(),
        ),
        (
            "/etc/ssl/parley/privkey.pem",
            dir.join("key.pem").display().to_string(),
        ),
        (
            "/var/log/nginx/parley.access.log",
            dir.join("access.log").display().to_string(),
        ),
    ];
    let mut site = shipped.to_owned();
    for (from, to) in replacements {
        assert!(
            site.contains(from),
            "deploy/nginx/parley.conf no longer has {from:?}: update the test"
        );
        site = site.replace(from, &to);
    }
    site
}

/// A running nginx, stopped on drop.
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    /// Runs nginx in `dir` (its own pid file, logs and temp files; unprivileged ports) with
    /// `site` included in the `http` block, and waits until `https` accepts connections.
    fn start(dir: &Path, site: &str, https: u16) -> Self {
        let d = dir.display();
        std::fs::write(dir.join("parley.conf"), site).unwrap();
        for temp in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(dir.join("temp").join(temp)).unwrap();
        }
        let main = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {d}/default-access.log;\n\
               client_body_temp_path {d}/temp/body;\n  proxy_temp_path {d}/temp/proxy;\n\
               fastcgi_temp_path {d}/temp/fastcgi;\n  uwsgi_temp_path {d}/temp/uwsgi;\n\
               scgi_temp_path {d}/temp/scgi;\n  include {d}/parley.conf;\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), main).unwrap();
        let args = |test: bool| {
            let mut cmd = Command::new(nginx_bin());
            cmd.arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .arg("-e")
                .arg(dir.join("error.log"));
            if test {
                cmd.arg("-t");
            }
            cmd
        };
        let check = args(true).output().unwrap();
        assert!(
            check.status.success(),
            "nginx -t refused the rendered configuration:\n{}\n{site}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = args(false)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let nginx = Self {
            child,
            dir: dir.to_owned(),
        };
        let deadline = std::time::Instant::now() + parley_e2e::WAIT;
        while std::net::TcpStream::connect((LOCAL, https)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nginx did not listen on {https}: {}",
                nginx.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers (SIGKILL would leave them running).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed certificate for `localhost`, made now with openssl.
fn self_signed(dir: &Path) {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// TLS to nginx from [`CLIENT`], trusting only the test's certificate.
struct Tls {
    connector: TlsConnector,
    addr: SocketAddr,
}

impl Tls {
    fn new(cert: &Path, addr: SocketAddr) -> Self {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(cert).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self {
            connector: TlsConnector::from(Arc::new(config)),
            addr,
        }
    }

    async fn connect(&self) -> TlsStream<TcpStream> {
        let tcp = parley_e2e::raw::connect_from(ip(CLIENT), self.addr)
            .await
            .unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        tokio::time::timeout(parley_e2e::WAIT, self.connector.connect(name, tcp))
            .await
            .expect("TLS handshake timed out")
            .expect("TLS handshake")
    }

    /// One HTTPS request (`Connection: close`).
    async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> http::Response {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut stream = self.connect().await;
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        stream.flush().await.unwrap();
        let mut answer = Vec::new();
        // What arrived counts, whether or not the close had a TLS close_notify.
        let _ = tokio::time::timeout(parley_e2e::WAIT, stream.read_to_end(&mut answer)).await;
        http::parse(&answer)
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> http::Response {
        self.request("POST", path, token, Some(body), &[]).await
    }

    /// Registers and logs in `name`; the access token.
    async fn account(&self, name: &str) -> String {
        let credentials = json!({"username": name, "password": format!("password-{name}")});
        let r = self.post("/api/auth/register", None, &credentials).await;
        assert_eq!(r.status, 201, "register {name}: {}", r.body);
        let r = self.post("/api/auth/login", None, &credentials).await;
        assert_eq!(r.status, 200, "login {name}: {}", r.body);
        r.json()["access"].as_str().unwrap().to_owned()
    }

    async fn socket(&self, token: &str) -> WsClient<TlsStream<TcpStream>> {
        let stream = self.connect().await;
        let url = format!("wss://localhost:{}/ws", self.addr.port());
        WsClient::over(
            stream,
            &url,
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await
    }
}

/// Which of `processes` logs a line that `matches` first (within the test's wait).
fn which_logged(processes: &[&Process], matches: impl Fn(&str) -> bool) -> (usize, String) {
    let deadline = std::time::Instant::now() + parley_e2e::WAIT;
    while std::time::Instant::now() < deadline {
        for (i, p) in processes.iter().enumerate() {
            if let Some(line) = p.next_log(Duration::from_millis(20), &matches) {
                return (i, line);
            }
        }
    }
    panic!("no process logged the expected line");
}

/// A socket's access-log line (the upgrade answered 101) for the client's forwarded address.
fn socket_opened(line: &str) -> bool {
    line.contains("\"path\":\"/ws\"") && line.contains("\"status\":101")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_through_nginx_reaches_both_processes_in_both_directions() {
    let nginx_bin = nginx_bin();
    assert!(nginx_bin.exists());
    let db = parley_store::testing::TestDb::postgres()
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL test database: {e}"));
    let prefix = format!("parley-proxy-{}:", unique());
    let env = [
        ("DATABASE_URL", db.url().to_owned()),
        ("REDIS_URL", redis_url()),
        ("PARLEY_LAYER", "redis".to_owned()),
        ("PARLEY_REDIS_PREFIX", prefix),
        (
            "PARLEY_SECRET",
            format!("proxy-test-secret-{}", unique().repeat(3)),
        ),
        ("PARLEY_TRUSTED_PROXIES", LOCAL.to_owned()),
    ];
    let (dir_one, dir_two, dir) = (WorkDir::new(), WorkDir::new(), WorkDir::new());
    let one = Process::start(&dir_one.0, &env);
    let two = Process::start(&dir_two.0, &env);
    let (https, http_port) = (
        parley_e2e::services::free_port(),
        parley_e2e::services::free_port(),
    );
    self_signed(&dir.0);
    let site = render_site([one.addr, two.addr], https, http_port, &dir.0);
    let nginx = Nginx::start(&dir.0, &site, https);
    let tls = Tls::new(&dir.0.join("cert.pem"), SocketAddr::new(ip(LOCAL), https));

    // Plain HTTP is sent to HTTPS.
    let r = http::get(SocketAddr::new(ip(LOCAL), http_port), "/healthz", None).await;
    assert_eq!(r.status, 301, "{}", r.body);
    assert!(
        r.header("location")
            .is_some_and(|l| l.starts_with("https://")),
        "{:?}",
        r.headers
    );

    // The client's address reaches the processes' logs, not nginx's, nor what the client
    // wrote in X-Forwarded-For itself.
    let r = tls
        .request(
            "GET",
            "/healthz",
            None,
            None,
            &[("X-Forwarded-For", "203.0.113.66")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (_, line) = which_logged(&[&one, &two], |l| l.contains("\"path\":\"/healthz\""));
    assert!(line.contains(&format!("\"client\":\"{CLIENT}\"")), "{line}");
    // nginx's request id is the one Parley logged and echoed.
    let id = r.header("x-request-id").expect("x-request-id").to_owned();
    assert!(line.contains(&id), "{id} not in {line}");

    let alice = tls.account("alice").await;
    let bob = tls.account("bob").await;
    let room = format!("proxied-{}", unique());
    let r = tls
        .post("/api/rooms", Some(&alice), &json!({"name": room}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);

    // Alice's socket lands on one process; Bob's is opened until it lands on the other
    // (nginx's round robin puts consecutive connections on alternate processes).
    let mut a = tls.socket(&alice).await;
    let (a_on, line) = which_logged(&[&one, &two], socket_opened);
    assert!(line.contains(&format!("\"client\":\"{CLIENT}\"")), "{line}");
    let mut b = None;
    for _ in 0..4 {
        let socket = tls.socket(&bob).await;
        let (on, _) = which_logged(&[&one, &two], socket_opened);
        if on != a_on {
            b = Some(socket);
            break;
        }
        socket.close().await;
    }
    let mut b = b.expect("Bob's socket never landed on the other process");

    for (client, who) in [(&mut a, "a"), (&mut b, "b")] {
        let joined = client
            .ask(
                json!({"type": "join", "room": room}),
                &format!("join-{who}"),
            )
            .await;
        assert_eq!(joined["type"], "joined", "{joined}");
    }
    let ack = a
        .ask(
            json!({"type": "send", "room": room, "body": "one to two"}),
            "s1",
        )
        .await;
    assert_eq!(ack["type"], "message", "{ack}");
    assert_eq!(b.next_of("message").await["body"], "one to two");
    let ack = b
        .ask(
            json!({"type": "send", "room": room, "body": "two to one"}),
            "s2",
        )
        .await;
    assert_eq!(ack["type"], "message", "{ack}");
    assert_eq!(a.next_of("message").await["body"], "two to one");

    a.close().await;
    b.close().await;
    drop(nginx);
    // Both processes served through nginx: its log names both upstreams.
    let access = std::fs::read_to_string(dir.0.join("access.log")).unwrap();
    for process in [&one, &two] {
        assert!(
            access.contains(&format!("upstream={}", process.addr)),
            "{} not in nginx's log:\n{access}",
            process.addr
        );
    }
}

/// `deploy/systemd/parley.service` passes `systemd-analyze verify` (with `ExecStart` pointed
/// at the binary under test, since /usr/local/bin/parley-server is not installed here) and
/// the hardening keeps `systemd-analyze security`'s exposure at or below 2.0 ("OK"). The
/// unit is not started: there is no systemd running as PID 1 here.
#[test]
fn the_shipped_systemd_unit_verifies_and_is_hardened() {
    let shipped = include_str!("../../../deploy/systemd/parley.service");
    let installed = "ExecStart=/usr/local/bin/parley-server serve";
    assert!(shipped.contains(installed), "{shipped}");
    let dir = WorkDir::new();
    let unit = dir.0.join("parley.service");
    let bin = std::fs::canonicalize(common::bin()).unwrap();
    std::fs::write(
        &unit,
        shipped.replace(installed, &format!("ExecStart={} serve", bin.display())),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new("systemd-analyze")
            .args(args)
            .arg(&unit)
            .output()
            .expect("systemd-analyze (apt-get install systemd)")
    };
    let verify = run(&["verify"]);
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let security = run(&["security", "--offline=yes", "--threshold=20"]);
    assert!(
        security.status.success(),
        "exposure above 2.0:\n{}",
        String::from_utf8_lossy(&security.stdout)
    );
}
