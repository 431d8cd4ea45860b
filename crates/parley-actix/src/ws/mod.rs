//! The chat WebSocket: `GET /ws` and the Django-tutorial style `GET /ws/chat/{room}` (with or
//! without the trailing slash the tutorial's JavaScript adds).
//!
//! Authentication happens before the upgrade (a browser cannot set headers on a WebSocket,
//! hence the query parameter); the origin is checked before it too. After the upgrade, one
//! task per connection runs the engine's [`parley_core::Connection`] over a socket:
//! - on [`crate::serve`] (the reference server), the taken-over TCP stream of [`raw`];
//! - on an application's own `HttpServer` ([`crate::configure`]), actix-ws ([`ActixSocket`]).
//!
//! Everything after the handshake — the tutorial room's creation and join, its frames, close
//! codes — is the engine's ([`parley_domain::protocol::Dialect`]).

mod frame_limit;
pub(crate) mod raw;

use crate::endpoint::Routes;
use crate::error::ApiError;
use crate::openapi::{Doc, Tag};
use crate::state::{AppState, bearer_token_in};
use actix_web::dev::RequestHead;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseCode, ProtocolError};
use parley_core::{ClientMessage, CloseReason, Connection, Gone, Grant, ReadError, Socket};
use parley_domain::protocol::{Dialect, ErrorCode, TutorialFrames};
use parley_domain::{RoomName, User};
use std::sync::Arc;
use utoipa::openapi::Response;
use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};

/// `/ws` and `/ws/chat/{room}` (and `/ws/chat/{room}/`), each with its description.
pub(crate) fn routes(r: &mut Routes<'_>) {
    r.at("/ws")
        .upgrade(
            socket,
            handshake("socket", "Open the chat WebSocket (Parley's protocol)").describe(
                "Upgrades to a WebSocket speaking Parley's JSON protocol: join rooms, send, \
                 history, typing, presence. The frames and close codes are in \
                 docs/protocol.md.",
            ),
        )
        .done();
    for (path, id) in [
        ("/ws/chat/{room}", "chat_socket"),
        ("/ws/chat/{room}/", "chat_socket_slash"),
    ] {
        r.at(path)
            .upgrade(
                chat_socket,
                handshake(
                    id,
                    "Open the chat WebSocket of one room (the Django tutorial's)",
                )
                .describe(
                    "Upgrades to a WebSocket joined to the room, created on first use, \
                     speaking the Django Channels tutorial's frames (`{\"message\"}`); with \
                     or without the trailing slash the tutorial's JavaScript adds. See \
                     docs/protocol.md.",
                )
                .parameter(
                    ParameterBuilder::new()
                        .name("frames")
                        .parameter_in(ParameterIn::Query)
                        .description(Some(
                            "`chat` (the default): only chat messages; `all`: Parley's \
                                 other frames too.",
                        ))
                        .schema(Some(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .enum_values(Some(["chat", "all"])),
                        ))
                        .build(),
                ),
            )
            .done();
    }
}

/// What every handshake has: the token, the origin, the upgrade, its answers.
fn handshake(id: &str, summary: &str) -> Doc {
    Doc::new(Tag::Socket, id, summary)
        .authenticated_socket()
        .reply_with(
            StatusCode::SWITCHING_PROTOCOLS,
            Response::new("The WebSocket is open; the conversation is in docs/protocol.md."),
        )
        .refuses(&[
            ErrorCode::NotAWebsocket,
            ErrorCode::OriginNotAllowed,
            ErrorCode::RateLimited,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ])
}

/// The dialect a WebSocket request asks for: `/ws` is Parley's own protocol,
/// `/ws/chat/{room}` (one trailing slash allowed) the Django tutorial's, with `?frames=chat`
/// (the default) or `?frames=all`. `None`: no socket lives at this path.
pub(crate) fn dialect_of(path: &str, query: Option<&str>) -> Option<Result<Dialect, ApiError>> {
    let rest = path.strip_prefix("/ws")?;
    if rest.is_empty() {
        return Some(Ok(Dialect::Parley));
    }
    let name = rest.strip_prefix("/chat/")?;
    let name = name.strip_suffix('/').unwrap_or(name);
    if name.is_empty() || name.contains('/') {
        return None;
    }
    Some(tutorial(name, query))
}

fn tutorial(raw_room: &str, query: Option<&str>) -> Result<Dialect, ApiError> {
    let room = RoomName::parse(raw_room)
        .map_err(|e| ApiError::new(ErrorCode::InvalidRoomName, e.to_string()))?;
    let frames = match query_param(query, "frames") {
        None => TutorialFrames::default(),
        Some(raw) => TutorialFrames::parse(raw).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidField,
                "frames: expected `chat` (only chat messages, the default) or `all`",
            )
        })?,
    };
    Ok(Dialect::Tutorial { room, frames })
}

/// The value of `name` in a query string, if present and not empty.
fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// `?token=...` from the query string (never logged).
fn query_token(req: &RequestHead) -> Option<String> {
    query_param(req.uri.query(), "token").map(str::to_owned)
}

/// Checks the address's connection rate, the origin and the token; the user and what the
/// token grants (until when, which login), or the refusal.
async fn admit(req: &RequestHead, state: &AppState) -> Result<(User, Grant), ApiError> {
    // First, as it is the cheapest: a connection flood costs no token check.
    state.connect_limiter.check(state.client_ip(req))?;
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        if !state.config.origin_allowed(origin, host) {
            tracing::warn!(%origin, "WebSocket refused: origin not allowed");
            return Err(ApiError::new(
                ErrorCode::OriginNotAllowed,
                ErrorCode::OriginNotAllowed.default_message(),
            ));
        }
    }
    let token = bearer_token_in(req.headers())
        .map(str::to_owned)
        .or_else(|| query_token(req));
    if token.is_none()
        && let Some(name) = query_param(req.uri.query(), "guest")
        && state.engine.config().guests.enabled
        && matches!(
            dialect_of(req.uri.path(), req.uri.query()),
            Some(Ok(Dialect::Tutorial { .. }))
        )
        && guests_on_now(state).await?
    {
        state.guest_connect_limiter.check(state.client_ip(req))?;
        return admit_guest(req, state, name.to_owned()).await;
    }
    let token = token.ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "authentication required: Authorization: Bearer <access token> or ?token=<access token>",
            )
        })?;
    let auth = state.auth.clone();
    let (claims, user) = state
        .offload(async move { auth.authenticate(&token).await })
        .await??;
    if user.is_guest {
        state.guest_connect_limiter.check(state.client_ip(req))?;
    }
    Ok((user, Grant::from_claims(&claims)))
}

/// Whether guests are on now: the setting, unless staff turned them off at run time (one
/// read of the store, only for a `?guest=` handshake).
async fn guests_on_now(state: &AppState) -> Result<bool, ApiError> {
    let engine = state.engine.clone();
    Ok(state
        .offload(async move { engine.guests_enabled().await })
        .await??)
}

/// The tutorial endpoint's `?guest=NAME` (guests on, no token): a new guest identity, as
/// `POST /api/auth/guest` makes, limited per address like it.
async fn admit_guest(
    req: &RequestHead,
    state: &AppState,
    name: String,
) -> Result<(User, Grant), ApiError> {
    state.auth_limiter.check(state.client_ip(req))?;
    let auth = state.auth.clone();
    let (claims, user) = state
        .offload(async move {
            let login = auth.guest(&name).await?;
            let claims = auth.verify_access(&login.access)?;
            Ok::<_, parley_auth::AuthError>((claims, login.user))
        })
        .await??;
    Ok((user, Grant::from_claims(&claims)))
}

/// The refusal of a request that is not a WebSocket handshake.
fn not_a_websocket(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::NotAWebsocket,
        format!("WebSocket handshake failed: {e}"),
    )
}

/// `GET /ws`.
async fn socket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    upgrade(req, body, state, Dialect::Parley).await
}

/// `GET /ws/chat/{room}`: the Django tutorial's socket (see [`Dialect::Tutorial`]).
async fn chat_socket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let dialect = tutorial(&path, req.query_string().into())?;
    upgrade(req, body, state, dialect).await
}

/// The actix-ws upgrade of [`crate::configure`]'s routes.
async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    dialect: Dialect,
) -> Result<HttpResponse, ApiError> {
    let (user, grant) = admit(req.head(), &state).await?;
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
    let (response, ws, stream) = actix_ws::handle(&req, body).map_err(not_a_websocket)?;
    let mut session = state.engine.connect_with(user, dialect).await?;
    session.authorize(grant);
    let stream = stream
        .max_frame_size(hard)
        .aggregate_continuations()
        .max_continuation_size(hard);
    let connection = Connection::new(session, state.config.heartbeat)
        .handled_on(state.runtime.clone())
        .holding(state.socket_opened());
    // The stream holds the request payload, which is !Send: run on this worker's thread, and
    // hand the frames to the application runtime (`handled_on`).
    actix_web::rt::spawn(connection.run(ActixSocket { ws, stream }));
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
            Ok(AggregatedMessage::Close(_)) => Ok(ClientMessage::Close),
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

    async fn close(self, reason: CloseReason) {
        let reason = actix_ws::CloseReason {
            code: CloseCode::from(reason.code()),
            description: Some(reason.text().to_owned()),
        };
        let _ = self.ws.close(Some(reason)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_pick_the_dialect() {
        let tutorial = |path, query| match dialect_of(path, query) {
            Some(Ok(Dialect::Tutorial { room, frames })) => {
                Some((room.as_str().to_owned(), frames))
            }
            _ => None,
        };
        let chat = |room: &str| Some((room.to_owned(), TutorialFrames::Chat));
        assert!(matches!(dialect_of("/ws", None), Some(Ok(Dialect::Parley))));
        assert_eq!(tutorial("/ws/chat/lobby", None), chat("lobby"));
        assert_eq!(tutorial("/ws/chat/lobby/", Some("token=x")), chat("lobby"));
        assert_eq!(tutorial("/ws/chat/CaseRoom/", None), chat("caseroom"));
        assert_eq!(
            tutorial("/ws/chat/lobby/", Some("token=x&frames=all")),
            Some(("lobby".to_owned(), TutorialFrames::All))
        );
        assert!(matches!(
            dialect_of("/ws/chat/lobby", Some("frames=some")),
            Some(Err(_))
        ));
        assert!(matches!(
            dialect_of("/ws/chat/bad%20name", None),
            Some(Err(_))
        ));
        for none in [
            "/ws/",
            "/ws/chat/",
            "/ws/chat//",
            "/ws/chat/a/b",
            "/wsx",
            "/api",
        ] {
            assert!(dialect_of(none, None).is_none(), "{none}");
        }
    }
}
