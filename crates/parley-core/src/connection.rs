//! The connection loop every transport needs, over any [`Socket`]: it joins a client's
//! WebSocket (or anything that carries whole text messages, pings and a close) to its
//! [`Session`].
//!
//! [`Connection::run`] selects over the engine's deliveries, the client's messages and a
//! heartbeat ticker:
//! - **deliveries first**, and every one already waiting goes out in one write (up to
//!   [`MAX_BATCH`]): a busy socket does one system call per batch, not per frame;
//! - **client frames together**: every text message already read (up to [`MAX_FRAMES`]) is
//!   handed to [`Session::on_texts`] at once, so a run of sends shares one commit;
//! - **back-pressure**: every write is awaited, so a slow reader stalls its own loop, its layer
//!   mailbox fills and the engine closes it as a slow consumer, instead of a buffer growing
//!   here; a write (reply, delivery, ping or pong) that does not finish within the ping
//!   timeout drops the client;
//! - **heartbeat**: a ping every [`ConnectionConfig::ping_interval`]; a client silent for
//!   [`ConnectionConfig::ping_timeout`] is closed with [`CloseReason::PingTimeout`];
//! - **authorization**: a session with a [`crate::Grant`] is warned (`expiring`) before it
//!   ends and closed with [`CloseReason::Expired`] unless the client renews;
//! - **close codes** as [`CloseReason`]s, which the socket turns into its own close frame.

use crate::metrics::METRICS;
use crate::session::{CloseReason, Inbound, Outbound, Session};
use parley_domain::protocol::{ErrorCode, ServerFrame};
use std::any::Any;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::time::{Instant, Sleep, interval_at, sleep_until};

/// Most deliveries gathered into one write: a bound on the iovec count of one `writev`
/// (Linux allows 1,024) and on how long the client's own frames wait behind deliveries.
pub const MAX_BATCH: usize = 128;

/// Most client text messages handed to the engine together: a bound on how long deliveries
/// wait behind them.
pub const MAX_FRAMES: usize = 32;

/// A whole message from the client (continuations already joined by the socket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// A text message.
    Text(String),
    /// A binary message (the chat protocol has none: answered with `binary_not_supported`).
    Binary,
    /// A ping, to be answered with a pong carrying the same bytes.
    Ping(Vec<u8>),
    /// A pong (any message proves the client alive).
    Pong,
    /// The client's close frame.
    Close,
}

/// A client stream that cannot go on; each ends the connection with its close code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// A frame or message over the size limit ([`CloseReason::TooLarge`], 1009).
    #[error("frame too large")]
    Overflow,
    /// Text that is not UTF-8 ([`CloseReason::InvalidUtf8`], 1007).
    #[error("text frame is not UTF-8")]
    InvalidUtf8,
    /// Anything else against the protocol ([`CloseReason::ProtocolError`], 1002).
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl ReadError {
    /// How the connection closes after this error.
    pub const fn close_reason(&self) -> CloseReason {
        match self {
            Self::Overflow => CloseReason::TooLarge,
            Self::InvalidUtf8 => CloseReason::InvalidUtf8,
            Self::Protocol(_) => CloseReason::ProtocolError,
        }
    }
}

/// The client is gone: nothing more can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client is gone")]
pub struct Gone;

/// What carries the frames of one connection: all an embedder implements to serve the chat
/// over its own transport (actix-ws, axum's WebSocket, a raw TCP stream...).
pub trait Socket {
    /// The client's next whole message; `None` once the client has gone. Must be
    /// cancel-safe: the loop drops it whenever a delivery or the ticker wins the select, and
    /// polls it once more (expecting it to be ready) to gather messages already received.
    fn recv(&mut self) -> impl Future<Output = Option<Result<ClientMessage, ReadError>>>;
    /// Writes text frames, in order; returns once they are handed to the transport (a
    /// socket that can write several at once should: they arrive here together).
    fn send_text(&mut self, frames: &[Arc<str>]) -> impl Future<Output = Result<(), Gone>>;
    /// Writes a ping.
    fn ping(&mut self, payload: &[u8]) -> impl Future<Output = Result<(), Gone>>;
    /// Writes a pong. A transport whose WebSocket library answers pings by itself (tungstenite,
    /// under axum) does nothing here, or the client would get two.
    fn pong(&mut self, payload: &[u8]) -> impl Future<Output = Result<(), Gone>>;
    /// Writes the close frame ([`CloseReason::code`] and [`CloseReason::text`]) and ends the
    /// connection. The loop bounds how long this may take.
    fn close(self, reason: CloseReason) -> impl Future<Output = ()>;
}

/// The loop's timing. `Default`: a ping every 20 s, a client silent for 60 s is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// How often the server pings the client.
    pub ping_interval: Duration,
    /// A client from which nothing (not even a pong) arrived for this long is closed
    /// ([`CloseReason::PingTimeout`]); a write that takes this long drops the client.
    pub ping_timeout: Duration,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(20),
            ping_timeout: Duration::from_secs(60),
        }
    }
}

impl ConnectionConfig {
    /// Checks the settings, naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.ping_interval.is_zero() {
            return Err("ws_ping_interval: must be positive".to_owned());
        }
        if self.ping_timeout <= self.ping_interval {
            return Err("ws_ping_timeout: must be longer than ws_ping_interval".to_owned());
        }
        Ok(())
    }
}

/// One open connection: a [`Session`] and the loop that serves it over a [`Socket`].
///
/// ```no_run
/// # async fn serve(engine: parley_core::Engine, user: parley_domain::User, socket: impl parley_core::Socket) -> parley_core::Result<()> {
/// use parley_core::{Connection, ConnectionConfig};
/// let session = engine.connect(user).await?;
/// Connection::new(session, ConnectionConfig::default()).run(socket).await;
/// # Ok(()) }
/// ```
pub struct Connection {
    /// The engine's side of the connection. Taken out while frames are handled on another
    /// runtime (see [`Connection::handled_on`]).
    session: Option<Session>,
    /// Where frames are handled when this loop runs on a current-thread runtime whose
    /// tasks must not do store work (actix's workers: dropping an unfinished SQLite query
    /// there panics). `None`: in place.
    runtime: Option<tokio::runtime::Handle>,
    /// Heartbeat settings.
    config: ConnectionConfig,
    /// Kept until the connection has closed (its session included), then dropped: a
    /// transport's count of open sockets, say.
    held: Option<Box<dyn Any + Send + Sync>>,
}

/// What the loop does next.
enum Step {
    Continue,
    Close(CloseReason),
    /// The client is gone (or already closed): nothing more can be sent.
    Gone,
}

impl Connection {
    /// A connection serving `session`.
    pub fn new(session: Session, config: ConnectionConfig) -> Self {
        Self {
            session: Some(session),
            runtime: None,
            config,
            held: None,
        }
    }

    /// Hands client frames to `runtime` (a multi-thread runtime) rather than handling them
    /// on the loop's own task. For loops that must run on a current-thread runtime where the
    /// store's work must not (actix-ws sockets run on actix's workers); each batch of frames
    /// then crosses threads twice, so prefer running the loop on the multi-thread runtime.
    #[must_use]
    pub fn handled_on(mut self, runtime: tokio::runtime::Handle) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Keeps `guard` until the connection has closed, session included (e.g. a count of
    /// open sockets that a graceful shutdown waits on).
    #[must_use]
    pub fn holding(mut self, guard: impl Any + Send + Sync) -> Self {
        self.held = Some(Box::new(guard));
        self
    }

    /// Closes the engine side of a connection whose socket cannot be served.
    pub async fn abandon(mut self) {
        if let Some(session) = self.session.take() {
            session.close().await;
        }
    }

    /// Serves the socket until either side ends it, then closes the session.
    ///
    /// Spawn this future itself, not a block around it: a block would hold the connection
    /// and the socket twice, once captured and once in this future (rustc does not overlap
    /// them), a few hundred bytes per idle connection.
    pub async fn run<S: Socket>(mut self, mut socket: S) {
        let Some(user) = self.session.as_ref().map(|s| s.user().username.clone()) else {
            return;
        };
        tracing::debug!(%user, "socket open");
        // Boxed, as the handlers below: the opening (a tutorial socket joins its room here)
        // inline made this future 4.7 KiB instead of 1.5 KiB for as long as the socket is
        // open (tests/idle_memory.rs).
        let opening = Box::pin(self.on_open()).await;
        let mut step = Box::pin(self.deliver(&mut socket, opening)).await;
        let period = self.config.ping_interval;
        let mut ticker = interval_at(Instant::now() + period, period);
        let mut last_heard = Instant::now();
        // The session's authorization timer (the `expiring` warning, then the end), boxed:
        // only authorized sessions carry one, and it moves when the client renews.
        let mut deadline: Option<(Instant, Pin<Box<Sleep>>)> = None;
        while matches!(step, Step::Continue) {
            let due = self.session.as_ref().and_then(Session::deadline);
            if deadline.as_ref().map(|(at, _)| *at) != due {
                deadline = due.map(|at| (at, Box::pin(sleep_until(at))));
            }
            // Deliveries first: a client that keeps sending must not starve its own mailbox
            // (which also holds the room's copies of its own messages) until the layer finds it
            // full and disconnects it as a slow consumer. Its next frames wait in the socket,
            // which slows it down instead.
            //
            // The handlers are boxed: this future is what an idle connection costs, and it
            // would otherwise be as large as the largest handler's state (the engine's join
            // and leave paths, the write batch), several KiB per connection.
            step = tokio::select! {
                biased;
                inbound = recv(self.session.as_ref()) => {
                    Box::pin(self.on_inbound(&mut socket, inbound)).await
                }
                message = socket.recv() => {
                    last_heard = Instant::now();
                    Box::pin(self.on_client(&mut socket, message)).await
                }
                () = until(deadline.as_mut().map(|(_, sleep)| sleep.as_mut())) => {
                    deadline = None;
                    let due = self.session.as_mut().and_then(Session::on_deadline);
                    Box::pin(self.deliver(&mut socket, due.into_iter().collect())).await
                }
                _ = ticker.tick() => {
                    if last_heard.elapsed() > self.config.ping_timeout {
                        tracing::info!(%user, "socket silent past the ping timeout: closing");
                        Step::Close(CloseReason::PingTimeout)
                    } else {
                        self.bounded(socket.ping(b"parley")).await
                    }
                }
            };
        }
        if let Step::Close(reason) = step {
            METRICS.closed(reason);
            // Bounded: the close frame waits behind unsent frames of a client that may not read.
            let _ = tokio::time::timeout(self.config.ping_timeout, Box::pin(socket.close(reason)))
                .await;
        }
        if let Some(session) = self.session.take() {
            match &self.runtime {
                // On the other runtime: the close finishes even if this one stops.
                Some(runtime) => {
                    let _ = runtime.spawn(session.close()).await;
                }
                // Boxed: inline, the close's state would be part of every idle connection's
                // future (see the select above).
                None => Box::pin(session.close()).await,
            }
        }
        drop(self.held.take());
        tracing::debug!(%user, "socket closed");
    }

    /// The session's opening frames (see [`Session::on_open`]), on the right runtime.
    async fn on_open(&mut self) -> Vec<Outbound> {
        self.with_session(|mut session| async move {
            let replies = session.on_open().await;
            (session, replies)
        })
        .await
    }

    /// Hands client text frames to the engine.
    async fn handle_texts(&mut self, texts: Vec<String>) -> Vec<Outbound> {
        self.with_session(|mut session| async move {
            let replies = session.on_texts(&texts).await;
            (session, replies)
        })
        .await
    }

    /// Runs `work` with the session: in place, or on [`Connection::handled_on`]'s runtime,
    /// where the session travels and comes back. If this task is dropped meanwhile, the work
    /// still finishes there and the session is closed by its `Drop`.
    async fn with_session<F, Fut>(&mut self, work: F) -> Vec<Outbound>
    where
        F: FnOnce(Session) -> Fut,
        Fut: Future<Output = (Session, Vec<Outbound>)> + Send + 'static,
    {
        let Some(session) = self.session.take() else {
            return Vec::new();
        };
        let result = match &self.runtime {
            None => Ok(work(session).await),
            Some(runtime) => runtime.spawn(work(session)).await,
        };
        match result {
            Ok((session, replies)) => {
                self.session = Some(session);
                replies
            }
            Err(e) => {
                tracing::error!(error = %e, "frame handler failed");
                vec![Outbound::Close(CloseReason::LayerFailed)]
            }
        }
    }

    /// Applies one delivery and every other one already waiting (up to [`MAX_BATCH`]), then
    /// writes them together.
    async fn on_inbound<S: Socket>(&mut self, socket: &mut S, first: Inbound) -> Step {
        let mut out = Vec::new();
        let mut next = Some(first);
        while let Some(inbound) = next.take() {
            let Some(session) = self.session.as_mut() else {
                break;
            };
            match session.on_inbound(inbound).await {
                Some(Outbound::Close(reason)) => {
                    out.push(Outbound::Close(reason));
                    break;
                }
                Some(text) => out.push(text),
                None => {}
            }
            if out.len() < MAX_BATCH {
                next = ready_now(recv(self.session.as_ref())).await;
            }
        }
        self.deliver(socket, out).await
    }

    async fn on_client<S: Socket>(
        &mut self,
        socket: &mut S,
        message: Option<Result<ClientMessage, ReadError>>,
    ) -> Step {
        match message {
            None => Step::Gone,
            Some(Ok(ClientMessage::Text(text))) => {
                // The frames the client has already sent go to the engine together: it stores
                // a run of sends with one commit (a client with a send window otherwise waits
                // a commit per message). Whatever else was read waits for their replies.
                let mut texts = vec![text];
                let mut after = None;
                while texts.len() < MAX_FRAMES {
                    match ready_now(socket.recv()).await {
                        Some(Some(Ok(ClientMessage::Text(text)))) => texts.push(text),
                        Some(other) => {
                            after = Some(other);
                            break;
                        }
                        None => break,
                    }
                }
                let replies = self.handle_texts(texts).await;
                match (self.deliver(socket, replies).await, after) {
                    (Step::Continue, Some(message)) => {
                        Box::pin(self.on_client(socket, message)).await
                    }
                    (step, _) => step,
                }
            }
            Some(Ok(ClientMessage::Binary)) => {
                let code = ErrorCode::BinaryNotSupported;
                let frame = ServerFrame::error(code, code.default_message(), None);
                self.write(socket, &[Arc::from(frame.to_json())]).await
            }
            Some(Ok(ClientMessage::Ping(bytes))) => self.bounded(socket.pong(&bytes)).await,
            Some(Ok(ClientMessage::Pong)) => Step::Continue,
            Some(Ok(ClientMessage::Close)) => {
                tracing::debug!("client closed the socket");
                Step::Close(CloseReason::Normal)
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "client stream failed");
                Step::Close(e.close_reason())
            }
        }
    }

    /// Writes the text frames of `out` together; a close in it ends the loop after them.
    async fn deliver<S: Socket>(&mut self, socket: &mut S, out: Vec<Outbound>) -> Step {
        let mut frames = Vec::with_capacity(out.len());
        let mut then = Step::Continue;
        for item in out {
            match item {
                Outbound::Text(text) => frames.push(text),
                Outbound::Close(reason) => {
                    then = Step::Close(reason);
                    break;
                }
            }
        }
        match self.write(socket, &frames).await {
            Step::Continue => then,
            step => step,
        }
    }

    async fn write<S: Socket>(&mut self, socket: &mut S, frames: &[Arc<str>]) -> Step {
        if frames.is_empty() {
            return Step::Continue;
        }
        self.bounded(socket.send_text(frames)).await
    }

    /// Awaits a write for at most the ping timeout. Awaiting is the back-pressure: a client
    /// that reads slowly stalls this loop, its layer mailbox fills, and the engine marks it a
    /// slow consumer (closed at the next turn of the loop). A client that stops reading
    /// altogether would stall it forever, holding its socket slot and kernel buffers: it is
    /// dropped once a write has waited the ping timeout.
    async fn bounded(&self, write: impl Future<Output = Result<(), Gone>>) -> Step {
        match tokio::time::timeout(self.config.ping_timeout, write).await {
            Ok(Ok(())) => Step::Continue,
            Ok(Err(Gone)) => Step::Gone,
            Err(_) => {
                tracing::info!("client stopped reading: dropping the connection");
                Step::Gone
            }
        }
    }
}

/// Waits out `sleep`; never, without one.
async fn until(sleep: Option<Pin<&mut Sleep>>) {
    match sleep {
        Some(sleep) => sleep.await,
        None => std::future::pending().await,
    }
}

/// The session's next delivery; never, once the session is gone.
async fn recv(session: Option<&Session>) -> Inbound {
    match session {
        Some(session) => session.recv().await,
        None => std::future::pending().await,
    }
}

/// `future`'s output if it is ready at the first poll (it is dropped otherwise, so it must be
/// cancel-safe).
async fn ready_now<T>(future: impl Future<Output = T>) -> Option<T> {
    let mut future = pin!(future);
    poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Ready(value) => Poll::Ready(Some(value)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_now_takes_only_what_is_ready() {
        assert_eq!(ready_now(async { 7 }).await, Some(7));
        assert_eq!(ready_now(std::future::pending::<u8>()).await, None);
    }

    #[test]
    fn read_errors_close_with_their_codes() {
        assert_eq!(ReadError::Overflow.close_reason().code(), 1009);
        assert_eq!(ReadError::InvalidUtf8.close_reason().code(), 1007);
        assert_eq!(ReadError::Protocol("x".into()).close_reason().code(), 1002);
    }

    #[test]
    fn ping_timeout_must_exceed_the_interval() {
        assert!(ConnectionConfig::default().validate().is_ok());
        let bad = ConnectionConfig {
            ping_interval: Duration::from_secs(5),
            ping_timeout: Duration::from_secs(5),
        };
        assert!(bad.validate().unwrap_err().starts_with("ws_ping_timeout"));
    }
}
