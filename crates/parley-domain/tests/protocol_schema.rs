//! The JavaScript client's copy of the protocol schema (`clients/js/protocol.schema.json`)
//! must be what the Rust frame types produce: its frame types are generated from that file,
//! so a frame changed in Rust without regenerating it fails here.
//!
//! Regenerate: `PARLEY_UPDATE_SCHEMA=1 cargo test -p parley-domain --test protocol_schema`
//! (then `node clients/js/scripts/gen-protocol.mjs` for the declarations).

use std::path::PathBuf;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../clients/js/protocol.schema.json")
}

#[test]
fn committed_schema_matches_the_rust_frames() {
    let generated = parley_domain::protocol::protocol_schema();
    let text = format!("{}\n", serde_json::to_string_pretty(&generated).unwrap());
    let path = committed_path();
    if std::env::var_os("PARLEY_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(
        committed == text,
        "{} differs from the protocol the Rust types define. Regenerate it with\n  \
         PARLEY_UPDATE_SCHEMA=1 cargo test -p parley-domain --test protocol_schema\n\
         and then `node clients/js/scripts/gen-protocol.mjs` (and commit both).",
        path.display()
    );
}

#[test]
fn every_client_frame_type_and_error_code_is_in_the_schema() {
    let schema = parley_domain::protocol::protocol_schema();
    let variants = schema["$defs"]["ClientFrame"]["oneOf"].as_array().unwrap();
    let types: Vec<&str> = variants
        .iter()
        .map(|v| v["properties"]["type"]["const"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = parley_domain::protocol::FrameType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect();
    assert_eq!(types, expected);
    let codes = serde_json::to_string(&schema["$defs"]["ErrorCode"]).unwrap();
    for code in [
        "rate_limited",
        "not_joined",
        "unauthorized",
        "token_expired",
    ] {
        assert!(codes.contains(&format!("\"{code}\"")), "{code} missing");
    }
}
