//! A tiny HTTP/1.1 client over a plain TCP socket: one request per connection
//! (`Connection: close`), enough for a JSON API and light to build.

use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response: status, headers (names lower-cased), body.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, as text.
    pub body: String,
}

impl Response {
    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `error.code` of an error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {}", self.body))
            .to_owned()
    }
}

/// Sends `method path` with an optional bearer token, JSON body and extra headers.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    extra_headers: &[(&str, &str)],
) -> Response {
    raw_request(
        addr,
        &request_bytes(addr, method, path, token, body, extra_headers),
    )
    .await
}

/// `POST path` with a JSON body, from the local address `local` (e.g. `127.0.0.2`, another
/// client to per-address limits).
pub async fn post_from(
    local: IpAddr,
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> Response {
    let raw = request_bytes(addr, "POST", path, token, Some(body), &[]);
    let stream = crate::raw::connect_from(local, addr)
        .await
        .unwrap_or_else(|e| panic!("connect from {local}: {e}"));
    exchange(stream, &raw).await
}

fn request_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    extra_headers: &[(&str, &str)],
) -> Vec<u8> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (n, v) in extra_headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body.as_bytes());
    raw
}

/// `GET path`.
pub async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Response {
    request(addr, "GET", path, token, None, &[]).await
}

/// `POST path` with a JSON body.
pub async fn post(addr: SocketAddr, path: &str, token: Option<&str>, body: &Value) -> Response {
    request(addr, "POST", path, token, Some(body), &[]).await
}

/// `PATCH path` with a JSON body.
pub async fn patch(addr: SocketAddr, path: &str, token: Option<&str>, body: &Value) -> Response {
    request(addr, "PATCH", path, token, Some(body), &[]).await
}

/// `DELETE path`.
pub async fn delete(addr: SocketAddr, path: &str, token: Option<&str>) -> Response {
    request(addr, "DELETE", path, token, None, &[]).await
}

/// Writes `raw` as is and reads the whole response.
pub async fn raw_request(addr: SocketAddr, raw: &[u8]) -> Response {
    let stream = TcpStream::connect(addr).await.expect("connect");
    exchange(stream, raw).await
}

/// Writes `raw` on `stream` and reads the whole response.
async fn exchange(mut stream: TcpStream, raw: &[u8]) -> Response {
    let read = async {
        stream.write_all(raw).await.expect("write request");
        let mut buf = Vec::new();
        // The server may close before reading an over-large body; what it answered counts.
        let _ = stream.read_to_end(&mut buf).await;
        buf
    };
    let buf = tokio::time::timeout(crate::WAIT, read)
        .await
        .expect("HTTP response timed out");
    parse(&buf)
}

/// Parses a whole HTTP/1.1 response (head and body, chunked or not).
pub fn parse(buf: &[u8]) -> Response {
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buf[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        data = &data[line_end + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}
