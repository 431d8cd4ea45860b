//! The JSON Schema of the wire protocol (feature `schema`): every client and server frame,
//! the records inside them and the error codes, as [`protocol_schema`] builds it.
//!
//! The JavaScript client (`clients/js`) keeps a copy in `clients/js/protocol.schema.json`
//! and generates its frame types from it; `tests/protocol_schema.rs` fails when that copy
//! differs from what this code builds, so a frame changed here cannot silently part from the
//! client. Server frames are derived (`schemars::JsonSchema` beside `Serialize`); client
//! frames are decoded by hand, so [`ClientFrame`]'s schema is assembled here from the payload
//! types' derived schemas, one per [`FrameType`] (a new frame type fails to compile until it
//! is added to the match below).

use super::{
    ClientFrame, DeleteMessage, EditMessage, ErrorCode, FetchHistory, FrameRef, FrameType,
    JoinRoom, LeaveRoom, MarkRead, RenewAuth, SendMessage, SendSignal, ServerFrame, SetReaction,
    SetTyping,
};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// A request frame: `type`, the payload's fields and an optional `ref`; nothing else (the
/// server refuses unknown fields).
impl JsonSchema for ClientFrame {
    fn schema_name() -> Cow<'static, str> {
        "ClientFrame".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let variants: Vec<Value> = FrameType::ALL
            .into_iter()
            .map(|kind| variant(generator, kind).to_value())
            .collect();
        json_schema!({ "oneOf": variants })
    }
}

/// The payload schema of one frame type (an object schema, inline).
fn payload(generator: &mut SchemaGenerator, kind: FrameType) -> Schema {
    match kind {
        FrameType::Join => JoinRoom::json_schema(generator),
        FrameType::Leave => LeaveRoom::json_schema(generator),
        FrameType::Send => SendMessage::json_schema(generator),
        FrameType::Typing => SetTyping::json_schema(generator),
        FrameType::History => FetchHistory::json_schema(generator),
        FrameType::Edit => EditMessage::json_schema(generator),
        FrameType::Delete => DeleteMessage::json_schema(generator),
        FrameType::Read => MarkRead::json_schema(generator),
        FrameType::Signal => SendSignal::json_schema(generator),
        FrameType::Renew => RenewAuth::json_schema(generator),
        FrameType::Ping => json_schema!({ "type": "object", "properties": {} }),
        FrameType::React | FrameType::Unreact => SetReaction::json_schema(generator),
    }
}

/// One frame type's complete schema: its payload plus `type` (required) and `ref`.
fn variant(generator: &mut SchemaGenerator, kind: FrameType) -> Schema {
    let mut schema = payload(generator, kind);
    let reference = generator.subschema_for::<FrameRef>().to_value();
    let object = schema.ensure_object();
    let properties = object
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(properties) = properties {
        properties.insert(
            "type".to_owned(),
            serde_json::json!({ "type": "string", "const": kind.as_str() }),
        );
        properties.insert("ref".to_owned(), reference);
    }
    let required = object
        .entry("required")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(required) = required {
        required.insert(0, Value::String("type".to_owned()));
    }
    object.insert("additionalProperties".to_owned(), Value::Bool(false));
    object.insert(
        "title".to_owned(),
        Value::String(format!("{} frame", kind.as_str())),
    );
    schema
}

/// The protocol's schema: `$defs` holds `ClientFrame`, `ServerFrame`, `ErrorCode` and every
/// type they use, keys sorted so the text is stable whatever `serde_json`'s map order is.
pub fn protocol_schema() -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator();
    for (name, schema) in [
        ("ClientFrame", ClientFrame::json_schema(&mut generator)),
        ("ServerFrame", ServerFrame::json_schema(&mut generator)),
        ("ErrorCode", ErrorCode::json_schema(&mut generator)),
    ] {
        generator
            .definitions_mut()
            .insert(name.to_owned(), schema.to_value());
    }
    let defs = generator.take_definitions(true);
    sorted(serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Parley WebSocket protocol",
        "description": "Generated from crates/parley-domain (feature `schema`); see docs/protocol.md. Regenerate: PARLEY_UPDATE_SCHEMA=1 cargo test -p parley-domain --test protocol_schema",
        "$defs": Value::Object(defs),
    }))
}

/// `value` with every object's keys in sorted order.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}
