//! The WebSocket wire decoder on arbitrary bytes: it must never panic, must refuse anything
//! over the frame limit, and whatever it accepts must re-encode to a frame that decodes to
//! the same envelope.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_domain::protocol::{ClientFrame, DecodeLimits};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Small limits so the fuzzer reaches both sides of each bound.
    let limits = DecodeLimits {
        max_frame_bytes: 512,
        max_body_chars: 64,
    };
    let decoded = ClientFrame::decode(text, &limits);
    if text.len() > limits.max_frame_bytes {
        assert!(decoded.is_err(), "an oversized frame was accepted");
        return;
    }
    // The default limits accept at least what the small ones do.
    let _ = ClientFrame::decode(text, &DecodeLimits::default());
    if let Ok(envelope) = decoded {
        let json = envelope.to_json().expect("an accepted frame re-encodes");
        let again = ClientFrame::decode(&json, &DecodeLimits::default())
            .expect("a re-encoded frame decodes");
        assert_eq!(again, envelope, "re-encoding changed the frame: {json}");
    }
});
