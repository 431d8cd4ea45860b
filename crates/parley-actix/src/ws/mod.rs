//! The chat WebSocket: `GET /ws` and the Django-tutorial style `GET /ws/chat/{room}`.
//!
//! Authentication happens before the upgrade (a browser cannot set headers on a WebSocket,
//! hence the query parameter); the origin is checked before it too. After the upgrade, one
//! task per connection runs [`connection::Connection`] over a [`connection::Socket`]:
//! - on [`crate::serve`] (the reference server), the taken-over TCP stream of [`raw`];
//! - on an application's own `HttpServer` ([`crate::configure`]), actix-ws ([`ActixSocket`]).

mod connection;
mod frame_limit;
pub(crate) mod raw;

use crate::error::ApiError;
use crate::state::{AppState, bearer_token_in};
use actix_web::dev::RequestHead;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseReason, ProtocolError};
use connection::{ClientMessage, Connection, Gone, ReadError, Socket};
use parley_domain::{RoomKind, RoomName, Topic, User};
use parley_store::{NewRoom, StoreError};
use std::sync::Arc;

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
fn query_token(req: &RequestHead) -> Option<String> {
    req.uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

/// Checks the address's connection rate, the origin and the token; the user, or the refusal.
async fn admit(req: &RequestHead, state: &AppState) -> Result<User, ApiError> {
    // First, as it is the cheapest: a connection flood costs no token check.
    state.connect_limiter.check_peer(req.peer_addr)?;
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
    let token = bearer_token_in(req.headers())
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

/// Creates the room of a `/ws/chat/{room}` connection if it is missing.
async fn ensure_tutorial_room(
    state: &AppState,
    room: &RoomName,
    user: &User,
) -> Result<(), ApiError> {
    if room.is_direct() {
        return Ok(());
    }
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
    Ok(())
}

/// The actix-ws upgrade of [`crate::configure`]'s routes.
async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    room: Option<RoomName>,
) -> Result<HttpResponse, ApiError> {
    let user = admit(req.head(), &state).await?;
    if let Some(room) = &room {
        ensure_tutorial_room(&state, room, &user).await?;
    }
    let engine_max = state.engine.config().max_frame_bytes;
    let hard = state.config.hard_frame_limit(engine_max);
    // actix-ws buffers its payload until a whole frame is there: frames over the limit are
    // refused at their header before they reach it.
    let limited: actix_http::BoxedPayloadStream =
        Box::pin(frame_limit::LimitedPayload::new(body.into_inner(), hard));
    let mut limited = actix_web::dev::Payload::from(limited);
    let body = <web::Payload as actix_web::FromRequest>::from_request(&req, &mut limited)
        .await
        .map_err(|e| ApiError::Internal(format!("WebSocket payload: {e}")))?;
    // The handshake is checked before the engine opens a session for it.
    let (response, ws, stream) = actix_ws::handle(&req, body).map_err(|e| {
        ApiError::bad_request(
            "not_a_websocket",
            format!("WebSocket handshake failed: {e}"),
        )
    })?;
    let session = state.engine.connect(user).await?;
    let stream = stream
        .max_frame_size(hard)
        .aggregate_continuations()
        .max_continuation_size(hard);
    let conn = Connection::new(
        session,
        Some(state.runtime.clone()),
        room,
        state.config.clone(),
        engine_max,
    );
    // The stream holds the request payload, which is !Send: run on this worker's thread.
    actix_web::rt::spawn(conn.run(ActixSocket { ws, stream }, state.socket_opened()));
    Ok(response)
}

/// A socket carried by actix-ws (inside actix-http's HTTP/1 dispatcher).
struct ActixSocket {
    /// Writes to the client.
    ws: actix_ws::Session,
    /// The client's messages, continuations joined.
    stream: actix_ws::AggregatedMessageStream,
}

impl Socket for ActixSocket {
    async fn recv(&mut self) -> Option<Result<ClientMessage, ReadError>> {
        Some(match self.stream.recv().await? {
            Ok(AggregatedMessage::Text(text)) => Ok(ClientMessage::Text(text.to_string())),
            Ok(AggregatedMessage::Binary(_)) => Ok(ClientMessage::Binary),
            Ok(AggregatedMessage::Ping(bytes)) => Ok(ClientMessage::Ping(bytes.to_vec())),
            Ok(AggregatedMessage::Pong(_)) => Ok(ClientMessage::Pong),
            Ok(AggregatedMessage::Close(reason)) => Ok(ClientMessage::Close(reason)),
            Err(ProtocolError::Overflow) => Err(ReadError::Overflow),
            Err(ProtocolError::Io(e)) if frame_limit::is_over_limit(&e) => Err(ReadError::Overflow),
            // actix-ws reports text that is not UTF-8 as invalid data.
            Err(ProtocolError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                Err(ReadError::InvalidUtf8)
            }
            Err(e) => Err(ReadError::Protocol(e.to_string())),
        })
    }

    async fn send_text(&mut self, frames: &[Arc<str>]) -> Result<(), Gone> {
        for frame in frames {
            self.ws.text(frame.to_string()).await.map_err(|_| Gone)?;
        }
        Ok(())
    }

    async fn ping(&mut self, payload: &[u8]) -> Result<(), Gone> {
        self.ws.ping(payload).await.map_err(|_| Gone)
    }

    async fn pong(&mut self, payload: &[u8]) -> Result<(), Gone> {
        self.ws.pong(payload).await.map_err(|_| Gone)
    }

    async fn close(self, reason: Option<CloseReason>) {
        let _ = self.ws.close(reason).await;
    }
}
