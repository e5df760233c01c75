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
    // As the active segment is read (offsets exact), then as a sealed one
    // that compaction may have thinned (offsets only rising).
    for sealed in [false, true] {
        let (mut at, mut want) = (0, first);
        while at < buf.len() {
            let decoded = if sealed {
                frame::decode_sealed(buf, at, want, 1 << 16)
            } else {
                frame::decode(buf, at, want, 1 << 16)
            };
            let frame::Decoded::Frame(f) = decoded else {
                break;
            };
            assert!(at < f.payload_start && f.payload_start <= f.payload_end);
            assert!(f.payload_end <= buf.len());
            assert!(f.offset == want || (sealed && f.offset > want));
            let mut again = Vec::new();
            frame::encode(&mut again, f.offset, f.timestamp, &buf[f.payload_start..f.payload_end]);
            assert_eq!(&again[..], &buf[at..f.payload_end]);
            at = f.payload_end;
            want = f.offset + 1;
        }
    }
});
