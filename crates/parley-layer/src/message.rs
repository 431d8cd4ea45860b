//! The message a layer carries.

use crate::error::{LayerError, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::sync::{Arc, OnceLock};

/// A layer message: a map with a string `"type"` key, as in Channels
/// (`{"type": "chat.message", "text": "hi"}`).
///
/// Cloning is a reference-count bump: a group send to many local channels shares one payload.
/// A message also carries slots for renderings of itself (e.g. the JSON frame sent to
/// WebSocket clients, and the same frame in a second dialect), each computed by the first
/// recipient that needs it and reused by the rest, so a fanned-out frame is serialized once,
/// not once per recipient.
#[derive(Clone)]
pub struct Message {
    inner: Arc<Inner>,
}

struct Inner {
    fields: Map<String, Value>,
    rendered: [OnceLock<Arc<str>>; Message::RENDERINGS],
}

impl Message {
    /// How many renderings a message caches (see [`Message::rendered_as`]).
    pub const RENDERINGS: usize = 2;

    /// A message of type `kind` with the given other fields (a `type` among them is replaced).
    pub fn new(kind: &str, mut fields: Map<String, Value>) -> Self {
        fields.insert("type".to_owned(), Value::String(kind.to_owned()));
        Self::from_valid(fields)
    }

    /// Wraps a map that must already have a string `type` key.
    pub fn from_map(fields: Map<String, Value>) -> Result<Self> {
        match fields.get("type") {
            Some(Value::String(_)) => Ok(Self::from_valid(fields)),
            Some(_) => Err(LayerError::InvalidMessage(
                "\"type\" must be a string".into(),
            )),
            None => Err(LayerError::InvalidMessage("missing \"type\" key".into())),
        }
    }

    /// Wraps a JSON value that must be an object with a string `type` key.
    pub fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::Object(map) => Self::from_map(map),
            _ => Err(LayerError::InvalidMessage("a message must be a map".into())),
        }
    }

    fn from_valid(fields: Map<String, Value>) -> Self {
        Self {
            inner: Arc::new(Inner {
                fields,
                rendered: [OnceLock::new(), OnceLock::new()],
            }),
        }
    }

    /// The `type` key (e.g. `chat.message`).
    pub fn kind(&self) -> &str {
        match self.inner.fields.get("type") {
            Some(Value::String(s)) => s,
            // Unreachable by construction; an empty kind matches no handler.
            _ => "",
        }
    }

    /// One field.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.inner.fields.get(key)
    }

    /// All fields, `type` included.
    pub fn fields(&self) -> &Map<String, Value> {
        &self.inner.fields
    }

    /// The cached rendering of this message, computed by `render` on first use (slot 0 of
    /// [`Message::rendered_as`]).
    pub fn rendered(&self, render: impl FnOnce(&Map<String, Value>) -> String) -> Arc<str> {
        self.rendered_as(0, render)
    }

    /// The cached rendering number `slot`, computed by `render` on first use: recipients that
    /// need another form of the same message (another dialect of the same frame) share
    /// slot 1. A slot past [`Message::RENDERINGS`] is rendered every time, never cached.
    pub fn rendered_as(
        &self,
        slot: usize,
        render: impl FnOnce(&Map<String, Value>) -> String,
    ) -> Arc<str> {
        match self.inner.rendered.get(slot) {
            Some(cell) => cell
                .get_or_init(|| Arc::from(render(&self.inner.fields)))
                .clone(),
            None => Arc::from(render(&self.inner.fields)),
        }
    }

    /// True when both handles share one payload (a clone, not an equal copy).
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.inner, &b.inner)
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.inner.fields == other.inner.fields
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Message").field(&self.inner.fields).finish()
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.inner.fields.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(d)?;
        Self::from_map(map).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requires_a_string_type() {
        assert!(Message::from_value(json!({"type": "chat.message", "text": "hi"})).is_ok());
        assert!(Message::from_value(json!({"text": "hi"})).is_err());
        assert!(Message::from_value(json!({"type": 3})).is_err());
        assert!(Message::from_value(json!([1, 2])).is_err());
    }

    #[test]
    fn clones_share_the_payload_and_the_rendering() {
        let m = Message::new("chat.message", Map::new());
        let c = m.clone();
        assert!(Message::ptr_eq(&m, &c));
        let mut calls = 0;
        let a = m.rendered(|_| {
            calls += 1;
            "x".to_owned()
        });
        let b = c.rendered(|_| "y".to_owned());
        assert_eq!((&*a, &*b, calls), ("x", "x", 1));
        assert_eq!(m.kind(), "chat.message");
        // Another slot is cached apart from the first; past the last, nothing is cached.
        assert_eq!(&*c.rendered_as(1, |_| "t".to_owned()), "t");
        assert_eq!(&*m.rendered_as(1, |_| "u".to_owned()), "t");
        assert_eq!(&*m.rendered(|_| "z".to_owned()), "x");
        assert_eq!(
            &*m.rendered_as(Message::RENDERINGS, |_| "v".to_owned()),
            "v"
        );
        assert_eq!(
            &*m.rendered_as(Message::RENDERINGS, |_| "w".to_owned()),
            "w"
        );
    }
}
