//! Feeds arbitrary bytes, as a segment file's contents, to the embedded
//! log's frame parser, walking frames as its reader does. It must never
//! panic or read past the buffer, and every frame it accepts must be
//! exactly what the writer writes for it. The parser is compiled from its
//! own source file (it needs nothing but crc32c), so the fuzzer does not
//! build the whole engines crate.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../../engines/src/embedded/seglog/frame.rs"]
mod frame;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (first, buf) = (u64::from(data[0] % 4), &data[1..]);
    let (mut at, mut want) = (0, first);
    while at < buf.len() {
        let frame::Decoded::Frame(f) = frame::decode(buf, at, want, 1 << 16) else {
            break;
        };
        assert!(at < f.payload_start && f.payload_start <= f.payload_end);
        assert!(f.payload_end <= buf.len());
        let mut again = Vec::new();
        frame::encode(&mut again, f.offset, f.timestamp, &buf[f.payload_start..f.payload_end]);
        assert_eq!(&again[..], &buf[at..f.payload_end]);
        at = f.payload_end;
        want += 1;
    }
});
