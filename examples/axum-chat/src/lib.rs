//! # parley-axum-example
//!
//! Parley's chat served from an [axum] application, with no actix anywhere in the build: the
//! chat core is framework-neutral, and this is what embedding it takes.
//!
//! - [`Chat`]: the shared state, the engine and the account service over one store and layer.
//! - [`router`]: `POST /api/auth/register` and `POST /api/auth/login` (the reference server's
//!   bodies and answers, see `docs/api.md`) and `GET /ws?token=<access token>`, authenticated
//!   before the upgrade, then served by [`parley_core::Connection`] (pings, timeouts,
//!   back-pressure, close codes: none of it is written here).
//! - [`AxumSocket`]: [`parley_core::Socket`] for axum's `WebSocket`, the one trait an embedder
//!   implements.
//! - [`ApiError`]: the engine's and the account service's errors as a status and
//!   `{"error": {"code", "message"}}`.
//!
//! `src/main.rs` runs it; `tests/chat.rs` has two clients chat through it.
//!
//! Left out, as the reference server (`parley-actix`) has them: the rest of `/api` (rooms,
//! members, history, token refresh and logout), rate limits, origin checks, CORS, the Django
//! tutorial's `/ws/chat/{room}` ([`parley_core::Engine::connect_with`]) and a graceful
//! shutdown of open sockets ([`parley_core::Engine::shutdown`]).

use axum::extract::rejection::JsonRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::SinkExt;
use parley_auth::{Auth, AuthConfig, AuthError, LoginResponse, Password};
use parley_core::{
    ClientMessage, CloseReason, Connection, ConnectionConfig, Engine, EngineConfig, EngineError,
    Gone, Grant, ReadError, Socket,
};
use parley_domain::User;
use parley_domain::protocol::ErrorCode;
use parley_layer::ChannelLayer;
use parley_store::Store;
use serde::Deserialize;
use std::sync::Arc;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct Chat {
    /// Sessions, rooms and fan-out.
    pub engine: Engine,
    /// Accounts and tokens.
    pub auth: Auth,
}

impl Chat {
    /// Starts the engine over a migrated `store` and a channel `layer`, beside the account
    /// service.
    pub async fn start(
        store: Store,
        layer: Arc<dyn ChannelLayer>,
        auth: &AuthConfig,
    ) -> anyhow::Result<Self> {
        let engine = Engine::start(store.clone(), layer, EngineConfig::default()).await?;
        let auth = Auth::new(store, auth)?;
        // Sockets renew their authorization on the socket (`renew`) with this service.
        engine.use_auth(auth.clone());
        Ok(Self { engine, auth })
    }
}

/// The application: the two account routes and the chat socket.
pub fn router(chat: Chat) -> Router {
    Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
        .route("/ws", get(socket))
        .with_state(chat)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    username: String,
    password: String,
    #[serde(default)]
    email: Option<String>,
}

/// `POST /api/auth/register` `{username, password, email?}` → 201 with the user.
async fn register(
    State(chat): State<Chat>,
    body: Result<Json<RegisterBody>, JsonRejection>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let Json(body) = body?;
    let password = Password::new(body.password);
    let user = chat
        .auth
        .register(&body.username, &password, body.email.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

/// `POST /api/auth/login` `{username, password}` → `{access, refresh, user}`.
async fn login(
    State(chat): State<Chat>,
    body: Result<Json<LoginBody>, JsonRejection>,
) -> Result<Json<LoginResponse>, ApiError> {
    let Json(body) = body?;
    let password = Password::new(body.password);
    Ok(Json(chat.auth.login(&body.username, &password).await?))
}

#[derive(Deserialize)]
struct SocketParams {
    /// The access token: a browser cannot set headers on a WebSocket.
    token: Option<String>,
}

/// `GET /ws?token=<access token>`: Parley's protocol (`docs/protocol.md`) over axum's
/// WebSocket.
async fn socket(
    State(chat): State<Chat>,
    Query(params): Query<SocketParams>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let token = params.token.ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unauthorized,
            "authentication required: ?token=<access token>",
        )
    })?;
    let (claims, user) = chat.auth.authenticate(&token).await?;
    // Before the upgrade, so that a refusal (too many connections) is an HTTP answer. If the
    // upgrade then fails, dropping the session closes it.
    let mut session = chat.engine.connect(user).await?;
    // Authorized as long as the access token: warned before it ends, renewable on the socket.
    session.authorize(Grant::from_claims(&claims));
    // The engine answers frames over its own limit with an error frame; the transport's
    // limit, above it, only bounds what one message may cost in memory (closed with 1009).
    let hard_limit = chat.engine.config().max_frame_bytes.saturating_mul(4);
    Ok(upgrade
        .max_message_size(hard_limit)
        .max_frame_size(hard_limit)
        .on_upgrade(move |ws| {
            Connection::new(session, ConnectionConfig::default()).run(AxumSocket(ws))
        }))
}

/// [`Socket`] for axum's WebSocket.
pub struct AxumSocket(pub WebSocket);

impl Socket for AxumSocket {
    async fn recv(&mut self) -> Option<Result<ClientMessage, ReadError>> {
        // `WebSocket::recv` is the stream's `next()`: cancel-safe, as the loop requires.
        Some(match self.0.recv().await? {
            Ok(Message::Text(text)) => Ok(ClientMessage::Text(text.as_str().to_owned())),
            Ok(Message::Binary(_)) => Ok(ClientMessage::Binary),
            Ok(Message::Ping(bytes)) => Ok(ClientMessage::Ping(bytes.to_vec())),
            Ok(Message::Pong(_)) => Ok(ClientMessage::Pong),
            Ok(Message::Close(_)) => Ok(ClientMessage::Close),
            Err(e) => Err(read_error(e)),
        })
    }

    async fn send_text(&mut self, frames: &[Arc<str>]) -> Result<(), Gone> {
        // Queued, then flushed once: frames that arrive together leave in one write.
        for frame in frames {
            let message = Message::text(frame.as_ref());
            self.0.feed(message).await.map_err(|_| Gone)?;
        }
        self.0.flush().await.map_err(|_| Gone)
    }

    async fn ping(&mut self, payload: &[u8]) -> Result<(), Gone> {
        let message = Message::Ping(payload.to_vec().into());
        self.0.send(message).await.map_err(|_| Gone)
    }

    async fn pong(&mut self, _payload: &[u8]) -> Result<(), Gone> {
        // tungstenite (under axum) queued the pong itself when it read the ping; it leaves
        // with the next read or write. Sending one here would answer twice.
        Ok(())
    }

    async fn close(mut self, reason: CloseReason) {
        let frame = CloseFrame {
            code: reason.code(),
            reason: reason.text().into(),
        };
        let _ = self.0.send(Message::Close(Some(frame))).await;
    }
}

/// How a failed read closes the connection. axum wraps tungstenite's error in its own: the
/// cause is found by downcasting to the tungstenite axum uses (were the versions to part,
/// every failure would close as a protocol error, and `tests/chat.rs` would fail).
fn read_error(e: axum::Error) -> ReadError {
    use axum_tungstenite::Error as WsError;
    match e.into_inner().downcast::<WsError>() {
        Ok(e) => match *e {
            WsError::Capacity(_) => ReadError::Overflow,
            WsError::Utf8(_) => ReadError::InvalidUtf8,
            other => ReadError::Protocol(other.to_string()),
        },
        Err(other) => ReadError::Protocol(other.to_string()),
    }
}

/// A refused request: a status (from the code) and `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct ApiError {
    /// The wire code, the same a socket's `error` frame carries.
    code: ErrorCode,
    /// For people.
    message: String,
}

impl ApiError {
    /// A refusal with `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        // `public_message` logs internal details and leaves them out.
        Self::new(e.code(), e.public_message())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e.code() {
            code @ (ErrorCode::Internal | ErrorCode::Unavailable) => {
                tracing::error!(error = %e, "account service failed");
                Self::new(code, code.default_message())
            }
            code => Self::new(code, e.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        let code = match e {
            JsonRejection::MissingJsonContentType(_) => ErrorCode::InvalidContentType,
            _ => ErrorCode::InvalidJson,
        };
        Self::new(code, e.body_text())
    }
}

/// The HTTP status of a code: the reference server's table (`parley_actix::status_of`),
/// shortened.
fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        Unauthorized | InvalidCredentials | TokenExpired | TokenInvalid | TokenRevoked
        | WrongTokenType => StatusCode::UNAUTHORIZED,
        Forbidden | NotMember | OriginNotAllowed => StatusCode::FORBIDDEN,
        NotFound => StatusCode::NOT_FOUND,
        NotJoined | Conflict | UsernameTaken => StatusCode::CONFLICT,
        TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        RateLimited | TooManyRooms => StatusCode::TOO_MANY_REQUESTS,
        Unavailable | SlowConsumer => StatusCode::SERVICE_UNAVAILABLE,
        Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(self.code);
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        if status == StatusCode::UNAUTHORIZED {
            (status, [(header::WWW_AUTHENTICATE, "Bearer")], Json(body)).into_response()
        } else {
            (status, Json(body)).into_response()
        }
    }
}

/// The README's code blocks, compiled as this crate's doc tests: the embedding snippet there
/// is checked against the real API with the crates an embedder uses.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
