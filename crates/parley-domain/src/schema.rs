//! OpenAPI schemas of the validated texts (the `openapi` feature). Written out rather than
//! derived: what a client needs to know of a name is its rule (length, characters), which
//! utoipa's derive cannot attach to a newtype; the lengths are the types' own constants.

use crate::message::ClientMsgId;
use crate::names::{Email, Reason, RoomName, Topic, UserName};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// A string schema with a description, lengths in characters and a pattern.
fn text(description: &str, min: Option<usize>, max: usize, pattern: Option<&str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .min_length(min)
        .max_length(Some(max))
        .pattern(pattern)
        .into()
}

macro_rules! text_schema {
    ($name:ty, $schema:expr) => {
        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

text_schema!(
    UserName,
    text(
        "A user's handle: ASCII letters, digits, `_`, `-`, `.`, starting with a letter; \
         case-insensitive (answers are lower-case).",
        Some(UserName::MIN_LEN),
        UserName::MAX_LEN,
        Some("^[A-Za-z][A-Za-z0-9_.-]*$"),
    )
);
text_schema!(
    RoomName,
    text(
        "A room's name: ASCII letters, digits, `_`, `-`, `.`, starting with a letter or digit; \
         case-insensitive (answers are lower-case). `dm.{low id}.{high id}` names a direct room.",
        Some(1),
        RoomName::MAX_LEN,
        Some("^[A-Za-z0-9][A-Za-z0-9_.-]*$"),
    )
);
text_schema!(
    Email,
    text(
        "An e-mail address (one `@` with text on both sides, no spaces).",
        Some(3),
        254,
        None,
    )
);
text_schema!(
    Topic,
    text(
        "A room's topic line: no control characters.",
        None,
        Topic::MAX_CHARS,
        None,
    )
);
text_schema!(
    Reason,
    text(
        "Why staff or an owner did something, kept in the audit log: no control characters.",
        Some(1),
        Reason::MAX_CHARS,
        None,
    )
);
text_schema!(
    ClientMsgId,
    text(
        "An id the client picked for a message, so that a retry is recognized.",
        Some(1),
        ClientMsgId::MAX_LEN,
        Some("^[A-Za-z0-9_.:-]+$"),
    )
);
