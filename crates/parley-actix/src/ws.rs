//! The chat WebSocket: `GET /ws` and the Django-tutorial style `GET /ws/chat/{room}`.
//!
//! Authentication happens before the upgrade (a browser cannot set headers on a WebSocket,
//! hence the query parameter); the origin is checked before it too. After the upgrade, one
//! task per connection selects over the client's frames, the engine's deliveries and a
//! heartbeat ticker, awaiting every write so a slow reader back-pressures the layer instead
//! of growing a buffer here.

use crate::error::ApiError;
use crate::state::{AppState, bearer_token};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError};
use parley_core::{CloseReason as EngineClose, Outbound, Session};
use parley_domain::protocol::{ErrorCode, ServerFrame};
use parley_domain::{RoomKind, RoomName, Topic, User};
use parley_store::{NewRoom, StoreError};
use serde_json::{Map, Value};
use std::sync::Arc;
use tokio::time::{Instant, interval_at};

/// Close code: the client reads too slowly (its mailbox overflowed).
pub const CLOSE_SLOW_CONSUMER: u16 = 4000;
/// Close code: nothing (not even a pong) arrived within the ping timeout.
pub const CLOSE_PING_TIMEOUT: u16 = 4001;

/// Registers `/ws` and `/ws/chat/{room}`.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws", web::get().to(socket))
        .route("/ws/chat/{room}", web::get().to(chat_socket));
}

/// `?token=...` from the query string (never logged).
fn query_token(req: &HttpRequest) -> Option<String> {
    req.query_string()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

/// Checks the address's connection rate, the origin and the token; the user, or the refusal.
async fn admit(req: &HttpRequest, state: &AppState) -> Result<User, ApiError> {
    // First, as it is the cheapest: a connection flood costs no token check.
    state.connect_limiter.check(req)?;
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        if !state.config.origin_allowed(origin, host) {
            tracing::warn!(%origin, "WebSocket refused: origin not allowed");
            return Err(ApiError::forbidden(
                "origin_not_allowed",
                "this origin may not open the chat socket",
            ));
        }
    }
    let token = bearer_token(req)
        .map(str::to_owned)
        .or_else(|| query_token(req))
        .ok_or_else(|| {
            ApiError::unauthorized(
                "unauthorized",
                "authentication required: Authorization: Bearer <access token> or ?token=<access token>",
            )
        })?;
    let auth = state.auth.clone();
    let (_, user) = state
        .offload(async move { auth.authenticate(&token).await })
        .await??;
    Ok(user)
}

/// `GET /ws`.
async fn socket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    upgrade(req, body, state, None).await
}

/// `GET /ws/chat/{room}`: joins `room` (creating it if missing) on connect; accepts
/// `{"message": "..."}` as a send.
async fn chat_socket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let room = RoomName::parse(&path)
        .map_err(|e| ApiError::bad_request("invalid_room_name", e.to_string()))?;
    upgrade(req, body, state, Some(room)).await
}

async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    room: Option<RoomName>,
) -> Result<HttpResponse, ApiError> {
    let user = admit(&req, &state).await?;
    if let Some(room) = &room
        && !room.is_direct()
    {
        // As in the Django tutorial, any room name works: a missing room is created (public,
        // owned by this user). Existing rooms keep their rules (a private room stays closed).
        let (store, room, creator) = (state.engine.store().clone(), room.clone(), user.id);
        state
            .offload(async move {
                match store.room_by_name(&room).await {
                    Err(StoreError::NotFound(_)) => {
                        let new = NewRoom {
                            name: room,
                            kind: RoomKind::Public,
                            creator,
                            topic: Topic::default(),
                        };
                        match store.create_room(&new).await {
                            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
                            Err(e) => Err(e),
                        }
                    }
                    other => other.map(|_| ()),
                }
            })
            .await??;
    }
    // The handshake is checked before the engine opens a session for it.
    let (response, ws, stream) = actix_ws::handle(&req, body).map_err(|e| {
        ApiError::bad_request(
            "not_a_websocket",
            format!("WebSocket handshake failed: {e}"),
        )
    })?;
    let session = state.engine.connect(user).await?;
    let engine_max = state.engine.config().max_frame_bytes;
    let hard = state.config.hard_frame_limit(engine_max);
    let stream = stream
        .max_frame_size(hard)
        .aggregate_continuations()
        .max_continuation_size(hard);
    let conn = Connection {
        ws,
        session: Some(session),
        runtime: state.runtime.clone(),
        tutorial_room: room,
        config: state.config.clone(),
        max_frame: engine_max,
    };
    // The stream holds the request payload, which is !Send: run on this worker's thread.
    actix_web::rt::spawn(conn.run(stream));
    Ok(response)
}

/// One open socket.
struct Connection {
    /// Writes to the client.
    ws: actix_ws::Session,
    /// The engine's side of the connection. Taken out while a frame is handled on the
    /// application runtime (see [`Connection::handle_text`]).
    session: Option<Session>,
    /// Where frames are handled: store work must not run (and be dropped) on actix's
    /// single-thread workers.
    runtime: tokio::runtime::Handle,
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
    async fn run(mut self, mut stream: actix_ws::AggregatedMessageStream) {
        let Some(user) = self.session.as_ref().map(|s| s.user().username.clone()) else {
            return;
        };
        tracing::debug!(%user, "socket open");
        let mut step = Step::Continue;
        if let Some(room) = self.tutorial_room.clone() {
            step = self.join_on_connect(&room).await;
        }
        let period = self.config.ping_interval;
        let mut ticker = interval_at(Instant::now() + period, period);
        let mut last_heard = Instant::now();
        while matches!(step, Step::Continue) {
            // Deliveries first: a client that keeps sending must not starve its own mailbox
            // (which also holds the room's copies of its own messages) until the layer finds it
            // full and disconnects it as a slow consumer. Its next frames wait in the socket,
            // which slows it down instead.
            step = tokio::select! {
                biased;
                inbound = recv(self.session.as_ref()) => {
                    let out = match self.session.as_mut() {
                        Some(session) => session.on_inbound(inbound).await,
                        None => None,
                    };
                    match out {
                        Some(out) => self.deliver(out).await,
                        None => Step::Continue,
                    }
                }
                message = stream.recv() => {
                    last_heard = Instant::now();
                    self.on_client(message).await
                }
                _ = ticker.tick() => {
                    if last_heard.elapsed() > self.config.ping_timeout {
                        tracing::info!(%user, "socket silent past the ping timeout: closing");
                        Step::Close(close(CloseCode::Other(CLOSE_PING_TIMEOUT), "ping timeout"))
                    } else if self.ws.ping(b"parley").await.is_err() {
                        Step::Gone
                    } else {
                        Step::Continue
                    }
                }
            };
        }
        if let Step::Close(reason) = step {
            // Bounded: the close frame waits behind unsent frames of a client that may not read.
            let _ =
                tokio::time::timeout(self.config.ping_timeout, self.ws.clone().close(reason)).await;
        }
        if let Some(session) = self.session.take() {
            // On the application runtime: the close finishes even if this worker stops.
            let _ = self.runtime.spawn(session.close()).await;
        }
        tracing::debug!(%user, "socket closed");
    }

    /// Hands one client text frame to the engine, on the application runtime (the session
    /// travels to the task and back). If this task is dropped meanwhile, the frame is still
    /// handled and the session is closed by its `Drop`.
    async fn handle_text(&mut self, text: String) -> Vec<Outbound> {
        let Some(mut session) = self.session.take() else {
            return Vec::new();
        };
        let task = self.runtime.spawn(async move {
            let replies = session.on_text(&text).await;
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
    async fn join_on_connect(&mut self, room: &RoomName) -> Step {
        let frame = serde_json::json!({"type": "join", "room": room}).to_string();
        let replies = self.handle_text(frame).await;
        let refused = replies
            .iter()
            .any(|r| matches!(r, Outbound::Text(t) if t.starts_with(r#"{"type":"error""#)));
        for out in replies {
            if let Step::Gone = self.deliver(out).await {
                return Step::Gone;
            }
        }
        if refused {
            Step::Close(close(CloseCode::Policy, "cannot join this room"))
        } else {
            Step::Continue
        }
    }

    async fn on_client(
        &mut self,
        message: Option<Result<AggregatedMessage, ProtocolError>>,
    ) -> Step {
        match message {
            None => Step::Gone,
            Some(Ok(AggregatedMessage::Text(text))) => {
                let frame = self
                    .translate_tutorial(&text)
                    .unwrap_or_else(|| text.to_string());
                let replies = self.handle_text(frame).await;
                for out in replies {
                    let step = self.deliver(out).await;
                    if !matches!(step, Step::Continue) {
                        return step;
                    }
                }
                Step::Continue
            }
            Some(Ok(AggregatedMessage::Binary(_))) => {
                let frame = ServerFrame::error(
                    ErrorCode::BinaryNotSupported,
                    ErrorCode::BinaryNotSupported.default_message(),
                    None,
                );
                self.send_text(frame.to_json()).await
            }
            Some(Ok(AggregatedMessage::Ping(bytes))) => match self.ws.pong(&bytes).await {
                Ok(()) => Step::Continue,
                Err(_) => Step::Gone,
            },
            Some(Ok(AggregatedMessage::Pong(_))) => Step::Continue,
            Some(Ok(AggregatedMessage::Close(reason))) => {
                tracing::debug!(?reason, "client closed the socket");
                Step::Close(close(CloseCode::Normal, "bye"))
            }
            Some(Err(ProtocolError::Overflow)) => {
                Step::Close(close(CloseCode::Size, "frame too large"))
            }
            Some(Err(e)) => {
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

    async fn deliver(&mut self, out: Outbound) -> Step {
        match out {
            Outbound::Text(text) => {
                if self.tutorial_room.is_some()
                    && let Some(extended) = tutorial_fields(&text)
                {
                    return self.send_text(extended).await;
                }
                self.send_text(text.to_string()).await
            }
            Outbound::Close(reason) => Step::Close(engine_close(reason)),
        }
    }

    async fn send_text(&mut self, text: String) -> Step {
        // Awaiting here is the back-pressure: a client that reads slowly stalls this loop, its
        // layer mailbox fills, and the engine marks it a slow consumer (closed with 4000 at
        // the next turn of the loop). A client that stops reading altogether would stall it
        // forever: after the ping timeout the connection is dropped.
        match tokio::time::timeout(self.config.ping_timeout, self.ws.text(text)).await {
            Ok(Ok(())) => Step::Continue,
            Ok(Err(_)) => Step::Gone,
            Err(_) => {
                tracing::info!("client stopped reading: dropping the connection");
                Step::Gone
            }
        }
    }
}

/// The session's next delivery; never, once the session is gone.
async fn recv(session: Option<&Session>) -> parley_core::Inbound {
    match session {
        Some(session) => session.recv().await,
        None => std::future::pending().await,
    }
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
}
