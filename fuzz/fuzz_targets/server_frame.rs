//! Server frames as a client (or a peer process) reads them: parsing arbitrary text never
//! panics, and a parsed frame survives a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_domain::protocol::ServerFrame;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frame) = ServerFrame::from_json(text) {
        let json = frame.to_json();
        let again = ServerFrame::from_json(&json).expect("a re-encoded frame parses");
        assert_eq!(again.to_json(), json, "round trip changed the frame");
    }
});
