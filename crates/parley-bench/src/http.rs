//! A minimal HTTP/1.1 client with keep-alive, for provisioning (register, login, rooms) and the
//! scale run's read-backs (who is online, room history).
//!
//! Provisioning opens tens of thousands of requests on loopback; one connection per request
//! would leave as many sockets in TIME_WAIT and exhaust the ephemeral ports the WebSocket
//! clients need afterwards, so each worker keeps one connection open. Only what Parley's REST
//! API answers is understood: `Content-Length` bodies (no chunked encoding).

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One keep-alive connection to `host:port`.
pub struct HttpClient {
    /// `host:port` to (re)connect to.
    addr: String,
    /// The open connection, if any (reopened when the server closed it).
    conn: Option<BufReader<TcpStream>>,
    /// Local address to connect from (any port), when not the system's choice.
    local: Option<std::net::IpAddr>,
}

/// A response: status and body.
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The body, as text.
    pub body: String,
}

impl HttpClient {
    /// A client for `addr` (`127.0.0.1:8080`); connects lazily.
    pub fn new(addr: &str) -> Self {
        Self {
            addr: addr.to_owned(),
            conn: None,
            local: None,
        }
    }

    /// The same client, connecting from `local` (a loopback address such as 127.0.0.2: the
    /// server's per-address limits then count it apart from other clients).
    pub fn bound_to(mut self, local: std::net::IpAddr) -> Self {
        self.local = Some(local);
        self
    }

    /// `POST path` with a JSON body and an optional bearer token. Retries once on a
    /// connection the server had closed.
    pub async fn post(&mut self, path: &str, body: &str, token: Option<&str>) -> Result<Response> {
        self.request("POST", path, body, token).await
    }

    /// `GET path` with an optional bearer token. Retries once on a connection the server had
    /// closed.
    pub async fn get(&mut self, path: &str, token: Option<&str>) -> Result<Response> {
        self.request("GET", path, "", token).await
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
        token: Option<&str>,
    ) -> Result<Response> {
        match self.try_request(method, path, body, token).await {
            Ok(r) => Ok(r),
            Err(_) => {
                self.conn = None;
                self.try_request(method, path, body, token).await
            }
        }
    }

    async fn try_request(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
        token: Option<&str>,
    ) -> Result<Response> {
        if self.conn.is_none() {
            let stream = match self.local {
                None => TcpStream::connect(&self.addr).await,
                Some(local) => {
                    let addr: std::net::SocketAddr = self.addr.parse().context("server address")?;
                    let socket = tokio::net::TcpSocket::new_v4()?;
                    socket.bind(std::net::SocketAddr::new(local, 0))?;
                    socket.connect(addr).await
                }
            }
            .with_context(|| format!("connecting to {}", self.addr))?;
            stream.set_nodelay(true)?;
            self.conn = Some(BufReader::new(stream));
        }
        let Some(conn) = self.conn.as_mut() else {
            bail!("no connection");
        };
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        conn.get_mut().write_all(req.as_bytes()).await?;
        // Headers, up to the blank line.
        let mut head = Vec::with_capacity(512);
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if conn.read(&mut byte).await? == 0 {
                bail!("connection closed before the response");
            }
            head.push(byte[0]);
            if head.len() > 64 * 1024 {
                bail!("response headers too long");
            }
        }
        let head = String::from_utf8_lossy(&head);
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .context("bad status line")?;
        let mut length = 0usize;
        let mut close = false;
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                let name = name.trim().to_ascii_lowercase();
                let value = value.trim();
                if name == "content-length" {
                    length = value.parse().context("bad content-length")?;
                } else if name == "connection" && value.eq_ignore_ascii_case("close") {
                    close = true;
                } else if name == "transfer-encoding" {
                    bail!("chunked responses are not supported");
                }
            }
        }
        let mut body = vec![0u8; length];
        conn.read_exact(&mut body).await?;
        if close {
            self.conn = None;
        }
        Ok(Response {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}
