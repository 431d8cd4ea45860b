//! The one error type of this crate: a value broke a domain rule.

/// A value that does not satisfy a domain rule. The message says which rule, in words a
/// client can show to a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A user name breaks the rules of [`crate::UserName`].
    #[error("invalid user name: {0}")]
    InvalidUserName(&'static str),
    /// A room name breaks the rules of [`crate::RoomName`].
    #[error("invalid room name: {0}")]
    InvalidRoomName(&'static str),
    /// An e-mail address that cannot be one.
    #[error("invalid email: {0}")]
    InvalidEmail(&'static str),
    /// A room topic that is too long or contains forbidden characters.
    #[error("invalid topic: {0}")]
    InvalidTopic(&'static str),
    /// A display name that is empty, too long or contains control characters.
    #[error("invalid display name: {0}")]
    InvalidDisplayName(&'static str),
    /// A moderation reason that is too long or contains control characters.
    #[error("invalid reason: {0}")]
    InvalidReason(&'static str),
    /// A message body that is empty or contains forbidden characters.
    #[error("invalid message body: {0}")]
    InvalidBody(&'static str),
    /// A message body longer than the configured limit.
    #[error("message body too long: {len} characters, at most {max} allowed")]
    BodyTooLong {
        /// Characters in the rejected body.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// A client message id that breaks the rules of [`crate::ClientMsgId`].
    #[error("invalid client id: {0}")]
    InvalidClientId(&'static str),
    /// A protocol token (a frame's `ref`, a call id) that is empty, too long or contains
    /// control characters.
    #[error("invalid {what}: {reason}")]
    InvalidToken {
        /// Which token (`ref`, `call id`).
        what: &'static str,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A reaction that breaks the rules of [`crate::Emoji`].
    #[error("invalid emoji: {0}")]
    InvalidEmoji(&'static str),
    /// A direct room needs two different users.
    #[error("a direct room needs two different users")]
    DirectWithSelf,
    /// A string that names no known room kind or role.
    #[error("unknown {what}: {value:?}")]
    UnknownVariant {
        /// What was being parsed (`room kind`, `role`).
        what: &'static str,
        /// The rejected text.
        value: String,
    },
}

/// `Result` with [`DomainError`].
pub type Result<T, E = DomainError> = std::result::Result<T, E>;
