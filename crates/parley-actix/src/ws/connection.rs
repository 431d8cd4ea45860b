//! One open chat socket: the loop that joins a client's WebSocket to its engine session,
//! whatever carries the frames ([`Socket`]: actix-ws, or the taken-over TCP stream of
//! [`super::raw`]).
//!
//! The loop selects over the engine's deliveries, the client's frames and a heartbeat ticker,
//! awaiting every write so a slow reader back-pressures the layer instead of growing a buffer
//! here. Deliveries that are ready together are written together (one system call on the raw
//! socket).

use super::{CLOSE_PING_TIMEOUT, CLOSE_SLOW_CONSUMER};
use crate::state::OpenSocket;
use actix_http::ws::{CloseCode, CloseReason};
use parley_core::{CloseReason as EngineClose, Inbound, Outbound, Session};
use parley_domain::RoomName;
use parley_domain::protocol::{ErrorCode, ServerFrame};
use serde_json::{Map, Value};
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use tokio::time::{Instant, interval_at};

/// Most deliveries gathered into one write: a bound on the iovec count of one `writev`
/// (Linux allows 1,024) and on how long the client's own frames wait behind deliveries.
const MAX_BATCH: usize = 128;

/// Most client text frames handed to the engine together (see [`Connection::on_client`]): a
/// bound on how long deliveries wait behind them.
const MAX_FRAMES: usize = 32;

/// A whole message from the client (continuations already joined).
#[derive(Debug)]
pub(crate) enum ClientMessage {
    /// A text message.
    Text(String),
    /// A binary message (the chat protocol has none: refused with an error frame).
    Binary,
    /// A ping, to be answered with a pong carrying the same bytes.
    Ping(Vec<u8>),
    /// A pong (any frame proves the client alive).
    Pong,
    /// The client's close frame.
    Close(Option<CloseReason>),
}

/// A client stream that cannot go on.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// A frame or message over the size limit (close 1009).
    Overflow,
    /// Text that is not UTF-8 (close 1007).
    InvalidUtf8,
    /// Anything else against RFC 6455 (close 1002).
    Protocol(String),
}

/// The client is gone: nothing more can be written.
#[derive(Debug)]
pub(crate) struct Gone;

/// What carries the frames of one connection.
pub(crate) trait Socket {
    /// The client's next message; `None` once the client has gone. Must be cancel-safe:
    /// the loop drops it whenever a delivery or the ticker wins the select.
    fn recv(&mut self) -> impl Future<Output = Option<Result<ClientMessage, ReadError>>>;
    /// Writes text frames, in order; returns once they are handed to the transport.
    fn send_text(&mut self, frames: &[Arc<str>]) -> impl Future<Output = Result<(), Gone>>;
    /// Writes a ping.
    fn ping(&mut self, payload: &[u8]) -> impl Future<Output = Result<(), Gone>>;
    /// Writes a pong.
    fn pong(&mut self, payload: &[u8]) -> impl Future<Output = Result<(), Gone>>;
    /// Writes the close frame and ends the connection.
    fn close(self, reason: Option<CloseReason>) -> impl Future<Output = ()>;
}

/// One open socket's engine side and settings.
pub(crate) struct Connection {
    /// The engine's side of the connection. Taken out while frames are handled on the
    /// application runtime (see [`Connection::handle_texts`]).
    session: Option<Session>,
    /// Where frames are handled when this loop runs on one of actix's single-thread workers
    /// (the actix-ws socket): store work must not run (and be dropped) there. `None`: the loop
    /// runs on the application runtime itself (the raw socket), and handles frames in place.
    runtime: Option<tokio::runtime::Handle>,
    /// Set for `/ws/chat/{room}` clients: the room joined on connect, the target of their
    /// `{"message": ...}` frames, and the reason frames get the tutorial's extra fields.
    tutorial_room: Option<RoomName>,
    /// Heartbeat settings.
    config: Arc<crate::HttpConfig>,
    /// The engine's frame limit: larger frames go to the engine untranslated (it refuses them).
    max_frame: usize,
}

/// How a connection ended, for the close frame.
fn close(code: CloseCode, description: &str) -> Option<CloseReason> {
    Some(CloseReason {
        code,
        description: Some(description.to_owned()),
    })
}

fn engine_close(reason: EngineClose) -> Option<CloseReason> {
    let code = match reason {
        EngineClose::SlowConsumer => CloseCode::Other(CLOSE_SLOW_CONSUMER),
        EngineClose::ShuttingDown => CloseCode::Away,
        EngineClose::LayerFailed => CloseCode::Error,
    };
    close(code, reason.text())
}

/// What the loop does next.
enum Step {
    Continue,
    Close(Option<CloseReason>),
    /// The client is gone (or already closed): nothing more can be sent.
    Gone,
}

impl Connection {
    /// A connection for `session`; `tutorial_room` for `/ws/chat/{room}` clients; `runtime`
    /// for a loop that will not run on the application runtime (see the field).
    pub(crate) fn new(
        session: Session,
        runtime: Option<tokio::runtime::Handle>,
        tutorial_room: Option<RoomName>,
        config: Arc<crate::HttpConfig>,
        max_frame: usize,
    ) -> Self {
        Self {
            session: Some(session),
            runtime,
            tutorial_room,
            config,
            max_frame,
        }
    }

    /// Closes the engine side of a connection whose socket cannot be served.
    pub(crate) async fn abandon(mut self) {
        if let Some(session) = self.session.take() {
            session.close().await;
        }
    }

    /// Serves the socket until either side ends it; `open` counts it as open until then.
    ///
    /// Spawn this future itself, not a block around it: a block would hold the connection
    /// and the socket twice, once captured and once in this future (rustc does not overlap
    /// them), a few hundred bytes per idle connection.
    pub(crate) async fn run<S: Socket>(mut self, mut socket: S, open: OpenSocket) {
        let Some(user) = self.session.as_ref().map(|s| s.user().username.clone()) else {
            return;
        };
        tracing::debug!(%user, "socket open");
        let mut step = Step::Continue;
        if let Some(room) = self.tutorial_room.clone() {
            step = Box::pin(self.join_on_connect(&mut socket, &room)).await;
        }
        let period = self.config.ping_interval;
        let mut ticker = interval_at(Instant::now() + period, period);
        let mut last_heard = Instant::now();
        while matches!(step, Step::Continue) {
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
                _ = ticker.tick() => {
                    if last_heard.elapsed() > self.config.ping_timeout {
                        tracing::info!(%user, "socket silent past the ping timeout: closing");
                        Step::Close(close(CloseCode::Other(CLOSE_PING_TIMEOUT), "ping timeout"))
                    } else if socket.ping(b"parley").await.is_err() {
                        Step::Gone
                    } else {
                        Step::Continue
                    }
                }
            };
        }
        if let Step::Close(reason) = step {
            // Bounded: the close frame waits behind unsent frames of a client that may not read.
            let _ = tokio::time::timeout(self.config.ping_timeout, Box::pin(socket.close(reason)))
                .await;
        }
        if let Some(session) = self.session.take() {
            match &self.runtime {
                // On the application runtime: the close finishes even if this worker stops.
                Some(runtime) => {
                    let _ = runtime.spawn(session.close()).await;
                }
                // Boxed: inline, the close's state would be part of every idle connection's
                // future (see the select above).
                None => Box::pin(session.close()).await,
            }
        }
        drop(open);
        tracing::debug!(%user, "socket closed");
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

    /// Hands client text frames to the engine, on the application runtime. From an actix
    /// worker the session travels to a task there and back; if this task is dropped
    /// meanwhile, the frames are still handled and the session is closed by its `Drop`.
    async fn handle_texts(&mut self, texts: Vec<String>) -> Vec<Outbound> {
        let Some(runtime) = &self.runtime else {
            return match self.session.as_mut() {
                Some(session) => session.on_texts(&texts).await,
                None => Vec::new(),
            };
        };
        let Some(mut session) = self.session.take() else {
            return Vec::new();
        };
        let task = runtime.spawn(async move {
            let replies = session.on_texts(&texts).await;
            (session, replies)
        });
        match task.await {
            Ok((session, replies)) => {
                self.session = Some(session);
                replies
            }
            Err(e) => {
                tracing::error!(error = %e, "frame handler failed");
                vec![Outbound::Close(EngineClose::LayerFailed)]
            }
        }
    }

    /// The tutorial endpoint's automatic join; a refused join closes with 1008.
    async fn join_on_connect<S: Socket>(&mut self, socket: &mut S, room: &RoomName) -> Step {
        let frame = serde_json::json!({"type": "join", "room": room}).to_string();
        let replies = self.handle_texts(vec![frame]).await;
        let refused = replies
            .iter()
            .any(|r| matches!(r, Outbound::Text(t) if t.starts_with(r#"{"type":"error""#)));
        match self.deliver(socket, replies).await {
            Step::Continue if refused => {
                Step::Close(close(CloseCode::Policy, "cannot join this room"))
            }
            step => step,
        }
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
                let mut texts = vec![self.translate_tutorial(&text).unwrap_or(text)];
                let mut after = None;
                while texts.len() < MAX_FRAMES {
                    match ready_now(socket.recv()).await {
                        Some(Some(Ok(ClientMessage::Text(text)))) => {
                            texts.push(self.translate_tutorial(&text).unwrap_or(text));
                        }
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
                let frame = ServerFrame::error(
                    ErrorCode::BinaryNotSupported,
                    ErrorCode::BinaryNotSupported.default_message(),
                    None,
                );
                self.write(socket, &[Arc::from(frame.to_json())]).await
            }
            Some(Ok(ClientMessage::Ping(bytes))) => match socket.pong(&bytes).await {
                Ok(()) => Step::Continue,
                Err(Gone) => Step::Gone,
            },
            Some(Ok(ClientMessage::Pong)) => Step::Continue,
            Some(Ok(ClientMessage::Close(reason))) => {
                tracing::debug!(?reason, "client closed the socket");
                Step::Close(close(CloseCode::Normal, "bye"))
            }
            Some(Err(ReadError::Overflow)) => {
                Step::Close(close(CloseCode::Size, "frame too large"))
            }
            Some(Err(ReadError::InvalidUtf8)) => {
                Step::Close(close(CloseCode::Invalid, "text frame is not UTF-8"))
            }
            Some(Err(ReadError::Protocol(e))) => {
                tracing::debug!(error = %e, "WebSocket protocol error");
                Step::Close(close(CloseCode::Protocol, "protocol error"))
            }
        }
    }

    /// For `/ws/chat/{room}` clients: `{"message": "..."}` (no `type`) is a send to the room.
    fn translate_tutorial(&self, text: &str) -> Option<String> {
        let room = self.tutorial_room.as_ref()?;
        if text.len() > self.max_frame {
            return None;
        }
        let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(text) else {
            return None;
        };
        if obj.contains_key("type") || obj.len() != 1 {
            return None;
        }
        let body = obj.get("message")?;
        Some(serde_json::json!({"type": "send", "room": room, "body": body}).to_string())
    }

    /// Writes the text frames of `out` together; a close in it ends the loop after them.
    async fn deliver<S: Socket>(&mut self, socket: &mut S, out: Vec<Outbound>) -> Step {
        let mut frames = Vec::with_capacity(out.len());
        let mut then = Step::Continue;
        for item in out {
            match item {
                Outbound::Text(text) => {
                    let text = match &self.tutorial_room {
                        Some(_) => tutorial_fields(&text).map_or(text, Arc::from),
                        None => text,
                    };
                    frames.push(text);
                }
                Outbound::Close(reason) => {
                    then = Step::Close(engine_close(reason));
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
        // Awaiting here is the back-pressure: a client that reads slowly stalls this loop, its
        // layer mailbox fills, and the engine marks it a slow consumer (closed with 4000 at
        // the next turn of the loop). A client that stops reading altogether would stall it
        // forever: after the ping timeout the connection is dropped.
        match tokio::time::timeout(self.config.ping_timeout, socket.send_text(frames)).await {
            Ok(Ok(())) => Step::Continue,
            Ok(Err(Gone)) => Step::Gone,
            Err(_) => {
                tracing::info!("client stopped reading: dropping the connection");
                Step::Gone
            }
        }
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

/// A `message` frame with the Django tutorial's `message` and `username` fields added.
fn tutorial_fields(text: &str) -> Option<String> {
    if !text.starts_with(r#"{"type":"message""#) {
        return None;
    }
    let Ok(Value::Object(mut obj)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    let body = obj.get("body").cloned().unwrap_or(Value::Null);
    let sender = obj.get("sender").cloned().unwrap_or(Value::Null);
    let mut extra = Map::new();
    extra.insert("message".into(), body);
    extra.insert("username".into(), sender);
    obj.extend(extra);
    Some(Value::Object(obj).to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic in a test is a failed assertion
mod tests {
    use super::*;

    #[test]
    fn tutorial_fields_mirror_body_and_sender() {
        let t = r#"{"type":"message","id":1,"body":"hi","sender":"alice"}"#;
        let v: Value = serde_json::from_str(&tutorial_fields(t).unwrap()).unwrap();
        assert_eq!(v["message"], "hi");
        assert_eq!(v["username"], "alice");
        assert!(tutorial_fields(r#"{"type":"joined"}"#).is_none());
    }

    #[tokio::test]
    async fn ready_now_takes_only_what_is_ready() {
        assert_eq!(ready_now(async { 7 }).await, Some(7));
        assert_eq!(ready_now(std::future::pending::<u8>()).await, None);
    }
}
