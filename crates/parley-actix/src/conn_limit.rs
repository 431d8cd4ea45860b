//! Limits on HTTP connections that actix-http's HTTP/1 dispatcher does not enforce by itself.
//!
//! The dispatcher has a head timeout for the *first* request of a connection
//! (`client_request_timeout`) and a keep-alive timeout that starts only once a request's body
//! has been read to its end. Nothing limits how long a body takes, nor the head of a later
//! request on a kept-alive connection, nor a chunked body that a handler did not read (the
//! dispatcher drains it for as long as the client sends): 2,000 clients sending a byte a
//! second held 2,000 descriptors, and under a 1,024-descriptor limit `/healthz` stopped
//! answering. So [`serve`](crate::serve) wraps every accepted TCP stream in a
//! [`LimitedStream`], which sees only bytes and time:
//! - **request deadline**: from a request's first byte (or from the accept), the server must
//!   start writing its answer within `request_timeout`; otherwise the client gets a 408 (when
//!   nothing of an answer was written) and the connection is closed. This covers slow heads,
//!   slow bodies and unread bodies alike, and a handler slower than that too.
//! - **idle deadline**: after the server wrote, the client must begin its next request within
//!   `max(keep_alive, request_timeout)` (the dispatcher's own keep-alive timer usually closes
//!   the connection first; this one also covers the cases where it never starts).
//! - **stalled writes**: a write that cannot make progress (the client does not read) for
//!   `request_timeout` closes the connection.
//! - **connections per address**: at most `max_per_address` HTTP connections from one IPv4
//!   address or IPv6 /64; more are answered 429 `rate_limited` and closed at once, before
//!   anything is read, so a flood from one address costs one descriptor per connection only
//!   for the moment of the accept. Connections from a trusted reverse proxy
//!   ([`crate::TrustedProxies`]) are not counted: every client behind it shares its address,
//!   and the proxy caps connections per client itself (nginx `limit_conn` in
//!   `deploy/nginx/parley.conf`). The cap is taken before any header is read, so the
//!   forwarded address cannot be used here.
//!
//! A connection upgraded to a WebSocket leaves all of this: the direct carrier takes the TCP
//! stream out ([`LimitedStream::into_inner`]); on actix-ws the stream notices the `101`
//! answer. Sockets have their own limits (heartbeat, per-user count, frame sizes).

use crate::TrustedProxies;
use crate::error::error_body;
use parley_domain::protocol::ErrorCode;
use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// What [`ConnectionLimits`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LimitsConfig {
    /// From a request's first byte until the answer begins.
    pub(crate) request_timeout: Duration,
    /// The dispatcher's keep-alive (the idle deadline is never shorter than this).
    pub(crate) keep_alive: Duration,
    /// HTTP connections per address; 0: no limit.
    pub(crate) max_per_address: usize,
}

/// The per-address counts and the settings, shared by every worker of one server.
pub(crate) struct ConnectionLimits {
    /// The settings.
    config: LimitsConfig,
    /// Peers not counted (reverse proxies: their clients are counted there).
    trusted: TrustedProxies,
    /// Open HTTP connections per address key ([`address_key`]); an entry goes when its
    /// count reaches zero, so the table never holds more entries than open connections.
    open: Mutex<HashMap<IpAddr, Count>>,
    /// The answer to a connection over the per-address limit.
    refusal: Vec<u8>,
    /// The answer to a request that missed its deadline.
    timeout: Vec<u8>,
}

/// One address's entry.
#[derive(Debug, Default)]
struct Count {
    /// Open connections.
    open: usize,
    /// Whether a refusal was logged since the address had no connection open (one warning
    /// per flood, not one per connection).
    warned: bool,
}

/// IPv4 addresses count alone; IPv6 addresses by /64, the block one subscriber usually gets
/// (counting single IPv6 addresses would give a client 2^64 allowances).
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

/// A complete HTTP/1.1 error response that closes the connection.
fn canned(status: &str, code: ErrorCode, message: &str, extra_headers: &str) -> Vec<u8> {
    // Serializing two strings cannot fail.
    let body = serde_json::to_string(&error_body(code, message)).unwrap_or_default();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra_headers}connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl ConnectionLimits {
    /// Limits with `config`, no connection open yet; connections from `trusted` proxies are
    /// not counted.
    pub(crate) fn new(config: LimitsConfig, trusted: TrustedProxies) -> Self {
        Self {
            config,
            trusted,
            open: Mutex::new(HashMap::new()),
            refusal: canned(
                "429 Too Many Requests",
                ErrorCode::RateLimited,
                "too many open connections from this address",
                "retry-after: 1\r\n",
            ),
            timeout: canned(
                "408 Request Timeout",
                ErrorCode::RequestTimeout,
                &format!(
                    "the request did not arrive within {} s",
                    config.request_timeout.as_secs_f64()
                ),
                "",
            ),
        }
    }

    /// Takes a slot for `io`'s address and wraps it, or answers 429 and closes it (`None`).
    pub(crate) fn admit(self: &Arc<Self>, io: TcpStream) -> Option<LimitedStream> {
        let slot = match io.peer_addr() {
            Ok(peer) if self.config.max_per_address > 0 && !self.trusted.contains(peer.ip()) => {
                match self.take_slot(peer.ip()) {
                    Some(slot) => Some(slot),
                    None => {
                        // Best effort and without waiting: a fresh socket's send buffer takes
                        // it. (tokio's `try_write` would refuse: the reactor has not yet seen the
                        // new socket writable.) The request, if it came already, is left unread.
                        metrics::counter!("parley_http_rate_limited_total", "limit" => "connections_per_address")
                        .increment(1);
                        if let Ok(mut std) = io.into_std() {
                            let _ = std::io::Write::write(&mut std, &self.refusal);
                        }
                        return None;
                    }
                }
            }
            // No limit, a trusted proxy, or a peer already gone (the dispatcher finds out soon enough).
            _ => None,
        };
        let now = Instant::now();
        Some(LimitedStream {
            io,
            limits: Arc::clone(self),
            slot,
            request_deadline: Some(now + self.config.request_timeout),
            idle_deadline: None,
            write_deadline: None,
            timer: Box::pin(tokio::time::sleep_until(now + self.config.request_timeout)),
            answering: false,
            upgraded: false,
        })
    }

    fn take_slot(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let key = address_key(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key).or_default();
        if count.open >= self.config.max_per_address {
            if !count.warned {
                count.warned = true;
                tracing::warn!(
                    client = %key,
                    limit = self.config.max_per_address,
                    "connections per address at the limit: refusing more"
                );
            }
            return None;
        }
        count.open += 1;
        Some(Slot {
            limits: Arc::clone(self),
            key,
        })
    }

    /// Open HTTP connections counted for `ip` (tests).
    #[cfg(test)]
    fn open_for(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&address_key(ip)).map_or(0, |c| c.open)
    }
}

/// One counted connection; gives its place back when dropped.
struct Slot {
    /// Where it is counted.
    limits: Arc<ConnectionLimits>,
    /// Under which key.
    key: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .limits
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            count.open = count.open.saturating_sub(1);
            if count.open == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// An accepted TCP stream under the request, idle and write deadlines (see the module doc).
pub(crate) struct LimitedStream {
    /// The connection.
    io: TcpStream,
    /// The settings and the canned answers.
    limits: Arc<ConnectionLimits>,
    /// Its place in the per-address count (`None`: not counted).
    slot: Option<Slot>,
    /// The answer to the request being received must begin by then.
    request_deadline: Option<Instant>,
    /// The next request must begin by then (armed by writes).
    idle_deadline: Option<Instant>,
    /// A blocked write must make progress by then.
    write_deadline: Option<Instant>,
    /// Wakes the connection's task at the earliest deadline.
    timer: Pin<Box<Sleep>>,
    /// Whether the server wrote since the client last sent.
    answering: bool,
    /// A WebSocket now: no deadlines, not counted.
    upgraded: bool,
}

impl std::fmt::Debug for LimitedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitedStream")
            .field("io", &self.io)
            .field("answering", &self.answering)
            .field("upgraded", &self.upgraded)
            .finish_non_exhaustive()
    }
}

/// The start of the answer to an upgrade (actix-http writes the whole head at once).
const UPGRADE_ANSWER: &[u8] = b"HTTP/1.1 101 ";

impl LimitedStream {
    /// The TCP stream, leaving the limits (and the per-address count): for a connection the
    /// WebSocket takes over.
    pub(crate) fn into_inner(self) -> TcpStream {
        self.io
    }

    /// The client's address.
    pub(crate) fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.io.peer_addr().ok()
    }

    /// Sets `TCP_NODELAY`.
    pub(crate) fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.set_nodelay(nodelay)
    }

    fn deadline(&self) -> Option<Instant> {
        [
            self.request_deadline,
            self.idle_deadline,
            self.write_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The error that ends the connection once a deadline has passed (`None`: none has).
    fn expired(&mut self, now: Instant) -> Option<io::Error> {
        if self.upgraded || self.deadline().is_none_or(|d| now < d) {
            return None;
        }
        let what = if self.write_deadline.is_some_and(|d| d <= now) {
            "the client did not read the answer"
        } else if self.answering {
            "the connection stayed idle"
        } else {
            // No answer begun: say why before closing (best effort, never waiting).
            metrics::counter!("parley_http_timeouts_total").increment(1);
            let _ = self.io.try_write(&self.limits.timeout);
            "the request did not arrive in time"
        };
        tracing::debug!(peer = ?self.io.peer_addr().ok(), reason = what, "HTTP connection cut off");
        // Once is enough: the dispatcher drops the connection on this error.
        self.request_deadline = None;
        self.idle_deadline = None;
        self.write_deadline = None;
        Some(io::Error::new(io::ErrorKind::TimedOut, what))
    }

    /// Arms the timer for the earliest deadline; the error if it has already passed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let Some(deadline) = self.deadline() else {
            return Ok(());
        };
        if self.upgraded {
            return Ok(());
        }
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        if self.timer.as_mut().poll(cx).is_ready()
            && let Some(e) = self.expired(Instant::now())
        {
            return Err(e);
        }
        Ok(())
    }

    /// Bookkeeping after bytes arrived.
    fn received(&mut self) {
        self.idle_deadline = None;
        if self.answering || self.request_deadline.is_none() {
            self.answering = false;
            self.request_deadline = Some(Instant::now() + self.limits.config.request_timeout);
        }
    }

    /// Bookkeeping before writing `first` (the first bytes of this write).
    fn writing(&mut self, first: &[u8]) {
        if !self.answering && first.starts_with(UPGRADE_ANSWER) {
            // A WebSocket on actix-ws from here on: it has limits of its own.
            self.upgraded = true;
            self.slot = None;
        }
        self.answering = true;
        self.request_deadline = None;
    }

    /// Bookkeeping after a write returned.
    fn wrote(&mut self, result: &Poll<io::Result<usize>>) {
        match result {
            Poll::Ready(Ok(n)) if *n > 0 => {
                self.write_deadline = None;
                let config = &self.limits.config;
                self.idle_deadline =
                    Some(Instant::now() + config.keep_alive.max(config.request_timeout));
            }
            Poll::Pending => {
                self.idle_deadline = None;
                if self.write_deadline.is_none() {
                    self.write_deadline = Some(Instant::now() + self.limits.config.request_timeout);
                }
            }
            Poll::Ready(_) => {}
        }
    }

    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        first: &[u8],
        write: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if self.upgraded {
            return write(Pin::new(&mut self.io), cx);
        }
        if let Some(e) = self.expired(Instant::now()) {
            return Poll::Ready(Err(e));
        }
        self.writing(first);
        let result = write(Pin::new(&mut self.io), cx);
        if !self.upgraded {
            self.wrote(&result);
            if result.is_pending() {
                self.poll_deadline(cx)?;
            }
        }
        result
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.upgraded {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        if let Some(e) = this.expired(Instant::now()) {
            return Poll::Ready(Err(e));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        match &result {
            Poll::Ready(Ok(())) if buf.filled().len() > before => this.received(),
            Poll::Pending => this.poll_deadline(cx)?,
            Poll::Ready(_) => {}
        }
        result
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, buf, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
        self.get_mut()
            .poll_write_with(cx, first, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic in a test is a failed assertion
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn limits(max_per_address: usize) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits::new(
            LimitsConfig {
                request_timeout: Duration::from_secs(10),
                keep_alive: Duration::from_secs(5),
                max_per_address,
            },
            TrustedProxies::default(),
        ))
    }

    /// A connected pair: (client, accepted server side).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[test]
    fn ipv6_addresses_count_by_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[tokio::test]
    async fn connections_over_the_per_address_limit_are_refused_and_slots_come_back() {
        let limits = limits(2);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (_c1, s1) = pair().await;
        let (_c2, s2) = pair().await;
        let (mut c3, s3) = pair().await;
        let first = limits.admit(s1).unwrap();
        let second = limits.admit(s2).unwrap();
        assert_eq!(limits.open_for(ip), 2);
        assert!(limits.admit(s3).is_none());
        let mut answer = Vec::new();
        c3.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 429 "), "{answer}");
        assert!(answer.contains("\"rate_limited\""), "{answer}");
        drop(first);
        assert_eq!(limits.open_for(ip), 1);
        // A stream taken over by a WebSocket leaves the count.
        let _tcp = second.into_inner();
        assert_eq!(limits.open_for(ip), 0);
        assert!(
            limits.open.lock().unwrap().is_empty(),
            "no entry left behind"
        );
    }

    #[tokio::test]
    async fn connections_from_a_trusted_proxy_are_not_counted() {
        let trusted = TrustedProxies::new(vec!["127.0.0.1/32".parse().unwrap()]);
        let limits = Arc::new(ConnectionLimits::new(
            LimitsConfig {
                request_timeout: Duration::from_secs(10),
                keep_alive: Duration::from_secs(5),
                max_per_address: 1,
            },
            trusted,
        ));
        let (_c1, s1) = pair().await;
        let (_c2, s2) = pair().await;
        let _first = limits.admit(s1).unwrap();
        let _second = limits.admit(s2).expect("a trusted proxy is not capped");
        assert_eq!(limits.open_for("127.0.0.1".parse().unwrap()), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_does_not_arrive_in_time_gets_408_and_an_error() {
        let limits = limits(0);
        let (mut client, server) = pair().await;
        let mut stream = limits.admit(server).unwrap();
        client.write_all(b"POST / HTTP/1.1\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf).await.unwrap();
        assert_eq!(n, 17);
        // Nothing more comes: the read fails at the deadline, with a 408 for the client.
        let e = stream.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        drop(stream);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 408 "));
    }

    // Real time: with a paused clock, tokio skips to the deadline whenever a read waits
    // for the loopback, however briefly.
    #[tokio::test]
    async fn a_trickle_does_not_extend_the_deadline_but_an_answer_does() {
        let limits = Arc::new(ConnectionLimits::new(
            LimitsConfig {
                request_timeout: Duration::from_secs(1),
                keep_alive: Duration::from_secs(1),
                max_per_address: 0,
            },
            TrustedProxies::default(),
        ));
        let (mut client, server) = pair().await;
        let mut stream = limits.admit(server).unwrap();
        let mut buf = [0u8; 64];
        // A short trickle, then the answer: in time.
        for _ in 0..4 {
            client.write_all(b"x").await.unwrap();
            assert_eq!(stream.read(&mut buf).await.unwrap(), 1);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        // The next request's deadline runs from its first byte, whatever trickles after.
        let first = Instant::now();
        let e = loop {
            client.write_all(b"y").await.unwrap();
            match stream.read(&mut buf).await {
                Ok(n) => assert!(n > 0),
                Err(e) => break e,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let took = first.elapsed();
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(3),
            "cut off after {took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_closed_after_the_answer() {
        let limits = limits(0);
        let (_client, server) = pair().await;
        let mut stream = limits.admit(server).unwrap();
        stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 8];
        let e = stream.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_client_does_not_read_is_cut_at_the_request_timeout() {
        let limits = limits(0);
        let (_client, server) = pair().await;
        let mut stream = limits.admit(server).unwrap();
        // An answer far larger than the socket buffers, to a client that never reads: the
        // write stalls, and fails once it has been stalled for the request timeout.
        let chunk = vec![b'x'; 64 * 1024];
        stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        let started = Instant::now();
        let e = loop {
            if let Err(e) = stream.write_all(&chunk).await {
                break e;
            }
        };
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("did not read"), "{e}");
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn an_upgraded_connection_has_no_deadline() {
        let limits = limits(1);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (mut client, server) = pair().await;
        let mut stream = limits.admit(server).unwrap();
        client.write_all(b"GET /ws HTTP/1.1\r\n\r\n").await.unwrap();
        let mut head = [0u8; 20];
        stream.read_exact(&mut head).await.unwrap();
        stream
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(limits.open_for(ip), 0, "a WebSocket is not counted");
        tokio::time::advance(Duration::from_secs(3600)).await;
        client.write_all(b"late").await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(stream.read(&mut buf).await.unwrap(), 4);
    }
}
