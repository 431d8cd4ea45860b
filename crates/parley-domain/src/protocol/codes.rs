//! Error codes, the error frame the server sends, and the error a failed decode returns.

use super::text::FrameRef;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a request failed, as a stable machine-readable code. Clients branch on the code and
/// show the message; the message may change wording, the code never does.
///
/// One enum for the whole server, socket and REST alike: the decoder uses the first group,
/// the engine the second and third, the HTTP side (REST and the socket's handshake) the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // --- the frame itself (decoder and transport) ---
    /// The raw text frame is longer than the configured limit; checked before parsing.
    FrameTooLarge,
    /// The text is not valid JSON.
    InvalidJson,
    /// Valid JSON, but not a JSON object.
    NotAnObject,
    /// The object has no `"type"` field.
    MissingType,
    /// `"type"` names no client frame.
    UnknownType,
    /// A required field is absent (or `null`).
    MissingField,
    /// A field has the wrong JSON type or a value that breaks a rule (bad user name, empty
    /// body, over-long `ref`, ...).
    InvalidField,
    /// The frame has a field its type does not define.
    UnknownField,
    /// A `room` field that is not a valid room name.
    InvalidRoomName,
    /// A message body longer than the server's limit.
    BodyTooLong,
    /// The client sent a binary WebSocket frame; only text frames carry the protocol.
    BinaryNotSupported,
    // --- the request (engine) ---
    /// No valid credentials, or they expired; the server closes the connection.
    Unauthorized,
    /// Authenticated, but not allowed to do this (edit another user's message, join a
    /// private room uninvited).
    Forbidden,
    /// The room, message or user does not exist (or is not visible to this user).
    NotFound,
    /// The user is not a member of the room.
    NotMember,
    /// This connection has not joined the room the request names.
    NotJoined,
    /// Too many requests; slow down and retry later.
    RateLimited,
    /// The request conflicts with the current state (e.g. editing a deleted message).
    Conflict,
    /// This connection has joined as many rooms as the server allows.
    TooManyRooms,
    /// A message already has as many distinct reactions as the server allows
    /// (`max_reactions_per_message`, default 20); react with one it already has.
    TooManyReactions,
    /// A guest (an identity without an account) asked for something only accounts may do:
    /// create a room, open a direct chat, signal, be added to a private room.
    GuestNotAllowed,
    /// The account was deactivated by staff: login, refresh, every token and every socket
    /// of it are refused.
    AccountDisabled,
    /// The user is banned from the room (by its owner or staff): they may not join, read or
    /// post in it, nor be added to it, until the ban is lifted.
    Banned,
    /// The user is muted in the room: they may read it, not post or edit (until the mute
    /// ends or is lifted).
    Muted,
    /// The room is read-only: only its owners and staff may post or edit.
    ReadOnly,
    // --- the server ---
    /// A backing service (database, channel layer) is down; retry later.
    Unavailable,
    /// An unexpected server error; the details are in the server log, not the frame.
    Internal,
    /// The client reads its frames too slowly; the server drops it.
    SlowConsumer,
    // --- HTTP: REST requests and the WebSocket handshake ---
    /// Wrong user name or password (deliberately not saying which).
    InvalidCredentials,
    /// The token's lifetime has passed.
    TokenExpired,
    /// Not a valid token (malformed, bad signature, wrong algorithm, missing claims).
    TokenInvalid,
    /// The refresh token was revoked (logged out, already rotated, or its family revoked).
    TokenRevoked,
    /// An access token where a refresh token was expected, or the reverse.
    WrongTokenType,
    /// Registration with a user name that is taken.
    UsernameTaken,
    /// A password that breaks a rule (too short, too long, the user name).
    WeakPassword,
    /// A request body that is not sent as `application/json`.
    InvalidContentType,
    /// A request body larger than the server accepts.
    TooLarge,
    /// A browser page from an origin that may not open the chat socket.
    OriginNotAllowed,
    /// A request to a WebSocket route that is not a valid WebSocket handshake.
    NotAWebsocket,
    /// The request (head or body) did not arrive in time; the connection is closed.
    RequestTimeout,
    /// The path exists, but not with this method (the answer's `Allow` lists those it has).
    MethodNotAllowed,
    /// An OpenID Connect provider (its discovery document, keys or token endpoint) could not
    /// be reached or answered nonsense; retry later.
    ProviderUnavailable,
    /// A display name that is too long (over 64 characters) or contains control characters.
    InvalidDisplayName,
    /// An e-mail address another account already uses (`PATCH /api/me`).
    EmailTaken,
}

impl ErrorCode {
    /// Every code, in declaration order (for documentation and exhaustive tests).
    pub const ALL: [Self; 44] = [
        Self::FrameTooLarge,
        Self::InvalidJson,
        Self::NotAnObject,
        Self::MissingType,
        Self::UnknownType,
        Self::MissingField,
        Self::InvalidField,
        Self::UnknownField,
        Self::InvalidRoomName,
        Self::BodyTooLong,
        Self::BinaryNotSupported,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::NotMember,
        Self::NotJoined,
        Self::RateLimited,
        Self::Conflict,
        Self::TooManyRooms,
        Self::TooManyReactions,
        Self::GuestNotAllowed,
        Self::AccountDisabled,
        Self::Banned,
        Self::Muted,
        Self::ReadOnly,
        Self::Unavailable,
        Self::Internal,
        Self::SlowConsumer,
        Self::InvalidCredentials,
        Self::TokenExpired,
        Self::TokenInvalid,
        Self::TokenRevoked,
        Self::WrongTokenType,
        Self::UsernameTaken,
        Self::WeakPassword,
        Self::InvalidContentType,
        Self::TooLarge,
        Self::OriginNotAllowed,
        Self::NotAWebsocket,
        Self::RequestTimeout,
        Self::MethodNotAllowed,
        Self::ProviderUnavailable,
        Self::InvalidDisplayName,
        Self::EmailTaken,
    ];

    /// The wire spelling, e.g. `"frame_too_large"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FrameTooLarge => "frame_too_large",
            Self::InvalidJson => "invalid_json",
            Self::NotAnObject => "not_an_object",
            Self::MissingType => "missing_type",
            Self::UnknownType => "unknown_type",
            Self::MissingField => "missing_field",
            Self::InvalidField => "invalid_field",
            Self::UnknownField => "unknown_field",
            Self::InvalidRoomName => "invalid_room_name",
            Self::BodyTooLong => "body_too_long",
            Self::BinaryNotSupported => "binary_not_supported",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::NotMember => "not_member",
            Self::NotJoined => "not_joined",
            Self::RateLimited => "rate_limited",
            Self::Conflict => "conflict",
            Self::TooManyRooms => "too_many_rooms",
            Self::TooManyReactions => "too_many_reactions",
            Self::GuestNotAllowed => "guest_not_allowed",
            Self::AccountDisabled => "account_disabled",
            Self::Banned => "banned",
            Self::Muted => "muted",
            Self::ReadOnly => "read_only",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
            Self::SlowConsumer => "slow_consumer",
            Self::InvalidCredentials => "invalid_credentials",
            Self::TokenExpired => "token_expired",
            Self::TokenInvalid => "token_invalid",
            Self::TokenRevoked => "token_revoked",
            Self::WrongTokenType => "wrong_token_type",
            Self::UsernameTaken => "username_taken",
            Self::WeakPassword => "weak_password",
            Self::InvalidContentType => "invalid_content_type",
            Self::TooLarge => "too_large",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::NotAWebsocket => "not_a_websocket",
            Self::RequestTimeout => "request_timeout",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::InvalidDisplayName => "invalid_display_name",
            Self::EmailTaken => "email_taken",
        }
    }

    /// A generic human sentence for the code, for when nothing more specific is known.
    pub const fn default_message(self) -> &'static str {
        match self {
            Self::FrameTooLarge => "the frame is larger than the server accepts",
            Self::InvalidJson => "the frame is not valid JSON",
            Self::NotAnObject => "the frame must be a JSON object",
            Self::MissingType => "the frame has no \"type\" field",
            Self::UnknownType => "the frame's \"type\" is not a known request",
            Self::MissingField => "a required field is missing",
            Self::InvalidField => "a field has an invalid value",
            Self::UnknownField => "the frame has a field its type does not define",
            Self::InvalidRoomName => "the room name is not valid",
            Self::BodyTooLong => "the message is longer than the server accepts",
            Self::BinaryNotSupported => "binary frames are not supported; send JSON text frames",
            Self::Unauthorized => "authentication required",
            Self::Forbidden => "you are not allowed to do that",
            Self::NotFound => "not found",
            Self::NotMember => "you are not a member of this room",
            Self::NotJoined => "join the room first",
            Self::RateLimited => "too many requests; slow down",
            Self::Conflict => "the request conflicts with the current state",
            Self::TooManyRooms => "you have joined too many rooms on this connection",
            Self::TooManyReactions => "this message has as many different reactions as allowed",
            Self::GuestNotAllowed => "guests may not do that; sign up for an account",
            Self::AccountDisabled => "this account is deactivated",
            Self::Banned => "you are banned from this room",
            Self::Muted => "you are muted in this room",
            Self::ReadOnly => "this room is read-only",
            Self::Unavailable => "the service is temporarily unavailable; try again later",
            Self::Internal => "internal server error",
            Self::SlowConsumer => "the connection could not keep up and was dropped",
            Self::InvalidCredentials => "invalid user name or password",
            Self::TokenExpired => "the token has expired",
            Self::TokenInvalid => "the token is not valid",
            Self::TokenRevoked => "the token was revoked",
            Self::WrongTokenType => "this is not the kind of token this request needs",
            Self::UsernameTaken => "the user name is taken",
            Self::WeakPassword => "the password breaks a rule",
            Self::InvalidContentType => "send the body as Content-Type: application/json",
            Self::TooLarge => "the request body is larger than the server accepts",
            Self::OriginNotAllowed => "this origin may not open the chat socket",
            Self::NotAWebsocket => "not a WebSocket handshake",
            Self::RequestTimeout => "the request did not arrive in time",
            Self::MethodNotAllowed => "method not allowed",
            Self::ProviderUnavailable => "the sign-in provider is unavailable; try again later",
            Self::InvalidDisplayName => "the display name is not valid",
            Self::EmailTaken => "another account uses this e-mail address",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` frame: `{"type":"error","code":...,"message":...,"ref":...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ErrorFrame {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// The `ref` of the request that failed, when the client gave one (and it could be
    /// read, even from an otherwise broken frame).
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<FrameRef>,
}

impl ErrorFrame {
    /// An error frame with an explicit message.
    pub fn new(code: ErrorCode, message: impl Into<String>, reference: Option<FrameRef>) -> Self {
        Self {
            code,
            message: message.into(),
            reference,
        }
    }

    /// An error frame with the code's [default message](ErrorCode::default_message).
    pub fn from_code(code: ErrorCode, reference: Option<FrameRef>) -> Self {
        Self::new(code, code.default_message(), reference)
    }
}

impl From<FrameError> for ErrorFrame {
    fn from(e: FrameError) -> Self {
        Self {
            code: e.code,
            message: e.message,
            reference: e.reference,
        }
    }
}

/// A client frame that could not be decoded: the code, a message naming the frame type and
/// field where known, and the frame's `ref` when it could be read. Turn it into the reply
/// with [`ErrorFrame::from`] (or `ServerFrame::from`).
///
/// This is a protocol value rather than a failure of this crate (that is
/// [`crate::DomainError`]): a bad frame is answered, not propagated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct FrameError {
    code: ErrorCode,
    message: String,
    reference: Option<FrameRef>,
}

impl FrameError {
    /// A decode error with an explicit message.
    pub fn new(code: ErrorCode, message: impl Into<String>, reference: Option<FrameRef>) -> Self {
        Self {
            code,
            message: message.into(),
            reference,
        }
    }

    /// The error a transport reports for a binary WebSocket frame.
    pub fn binary_not_supported() -> Self {
        let code = ErrorCode::BinaryNotSupported;
        Self::new(code, code.default_message(), None)
    }

    /// The code.
    pub const fn code(&self) -> ErrorCode {
        self.code
    }

    /// The human message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `ref` of the failed frame, if it could be read.
    pub const fn reference(&self) -> Option<&FrameRef> {
        self.reference.as_ref()
    }

    /// Attaches the frame's `ref` (used once the decoder has read it).
    pub(crate) fn with_reference(mut self, reference: Option<FrameRef>) -> Self {
        self.reference = reference;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_spelling_matches_serde() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
            assert!(!code.default_message().is_empty());
        }
    }
}
