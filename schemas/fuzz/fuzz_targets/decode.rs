//! Feeds arbitrary bytes to the event decoder. It must never panic, and
//! whatever it accepts must survive a re-encode unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_schemas::codec;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = codec::decode(data) {
        let again = codec::encode(&event);
        assert_eq!(codec::decode(&again), Ok(event));
    }
});
