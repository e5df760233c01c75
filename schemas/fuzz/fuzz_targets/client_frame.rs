//! Feeds arbitrary text to the reader the edge runs on every client
//! WebSocket frame. It must never panic, and whatever it accepts must
//! read back the same after a re-serialize.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_schemas::wire::parse_client_frame;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frame) = parse_client_frame(text) {
        let again = serde_json::to_string(&frame).unwrap();
        assert_eq!(parse_client_frame(&again).ok(), Some(frame));
    }
});
