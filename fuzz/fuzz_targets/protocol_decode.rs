//! The WebSocket wire decoder on arbitrary bytes: it must never panic, must refuse anything
//! over the frame limit, must accept under the default limits whatever it accepts under
//! smaller ones (decoded the same), and whatever it accepts must re-encode to a frame that
//! decodes to the same envelope.
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
    // The default limits accept at least what the small ones do, and read it the same.
    let with_defaults = ClientFrame::decode(text, &DecodeLimits::default());
    if let Ok(envelope) = &decoded {
        assert_eq!(
            with_defaults.as_ref().ok(),
            Some(envelope),
            "accepted under the small limits but not the same under the defaults"
        );
    }
    if let Ok(envelope) = decoded {
        let json = envelope.to_json().expect("an accepted frame re-encodes");
        let again = ClientFrame::decode(&json, &DecodeLimits::default())
            .expect("a re-encoded frame decodes");
        assert_eq!(again, envelope, "re-encoding changed the frame: {json}");
    }
});
