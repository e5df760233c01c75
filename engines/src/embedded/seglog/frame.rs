//! The on-disk record frame.
//!
//! `[len: u32][crc32c: u32][offset: u64][timestamp: u64][payload: len bytes]`,
//! little endian. The CRC covers `len`, `offset`, `timestamp` and the
//! payload, so a torn write, a stale block or a zero-filled tail is caught;
//! the offset must also be the one expected at that place, so a frame that
//! survived from an earlier life of the file is caught too.

pub const HEADER: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    pub offset: u64,
    pub timestamp: u64,
    /// Payload range within the buffer given to [`decode`].
    pub payload_start: usize,
    pub payload_end: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Frame(FrameMeta),
    /// The buffer ends inside a frame that needs this many bytes in all.
    Incomplete(usize),
    Corrupt(String),
}

fn crc(len: u32, offset: u64, timestamp: u64, payload: &[u8]) -> u32 {
    let mut head = [0u8; 20];
    head[..4].copy_from_slice(&len.to_le_bytes());
    head[4..12].copy_from_slice(&offset.to_le_bytes());
    head[12..20].copy_from_slice(&timestamp.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&head), payload)
}

pub fn encode(out: &mut Vec<u8>, offset: u64, timestamp: u64, payload: &[u8]) {
    let len = payload.len() as u32;
    out.reserve(HEADER + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc(len, offset, timestamp, payload).to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&timestamp.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Decodes the frame at `buf[at..]`, which must carry `expected_offset`.
pub fn decode(buf: &[u8], at: usize, expected_offset: u64, max_payload: usize) -> Decoded {
    decode_with(buf, at, expected_offset, false, max_payload)
}

/// As [`decode`], in a sealed segment that compaction may have thinned:
/// the frame carries `expected_offset` or a later one.
pub fn decode_sealed(buf: &[u8], at: usize, expected_offset: u64, max_payload: usize) -> Decoded {
    decode_with(buf, at, expected_offset, true, max_payload)
}

fn decode_with(
    buf: &[u8],
    at: usize,
    expected_offset: u64,
    gaps: bool,
    max_payload: usize,
) -> Decoded {
    let rest = &buf[at..];
    if rest.len() < HEADER {
        return Decoded::Incomplete(HEADER);
    }
    let word = |i: usize| u32::from_le_bytes(rest[i..i + 4].try_into().expect("4 bytes"));
    let dword = |i: usize| u64::from_le_bytes(rest[i..i + 8].try_into().expect("8 bytes"));
    let len = word(0);
    let stored_crc = word(4);
    let offset = dword(8);
    let timestamp = dword(16);
    if len as usize > max_payload {
        return Decoded::Corrupt(format!("length {len} exceeds the record limit"));
    }
    // The last offset there can be is never written: one past it is.
    let later = gaps && offset > expected_offset && offset < u64::MAX;
    if offset != expected_offset && !later {
        return Decoded::Corrupt(format!(
            "offset {offset} where {expected_offset} was expected"
        ));
    }
    let total = HEADER + len as usize;
    if rest.len() < total {
        return Decoded::Incomplete(total);
    }
    let payload = &rest[HEADER..total];
    if crc(len, offset, timestamp, payload) != stored_crc {
        return Decoded::Corrupt("checksum mismatch".into());
    }
    Decoded::Frame(FrameMeta {
        offset,
        timestamp,
        payload_start: at + HEADER,
        payload_end: at + total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, 99, b"hello");
        encode(&mut buf, 8, 100, b"");
        let Decoded::Frame(f) = decode(&buf, 0, 7, 1 << 20) else {
            panic!()
        };
        assert_eq!(&buf[f.payload_start..f.payload_end], b"hello");
        assert_eq!((f.offset, f.timestamp), (7, 99));
        let next = f.payload_end;
        assert!(matches!(decode(&buf, next, 8, 1 << 20), Decoded::Frame(_)));
        // Wrong expected offset, truncation, a flipped bit, zero fill.
        assert!(matches!(decode(&buf, 0, 6, 1 << 20), Decoded::Corrupt(_)));
        assert_eq!(
            decode(&buf[..HEADER + 2], 0, 7, 1 << 20),
            Decoded::Incomplete(HEADER + 5)
        );
        assert_eq!(
            decode(&buf[..3], 0, 7, 1 << 20),
            Decoded::Incomplete(HEADER)
        );
        let mut flipped = buf.clone();
        flipped[HEADER + 1] ^= 0x10;
        assert!(matches!(
            decode(&flipped, 0, 7, 1 << 20),
            Decoded::Corrupt(_)
        ));
        let zeros = vec![0u8; 64];
        assert!(matches!(decode(&zeros, 0, 0, 1 << 20), Decoded::Corrupt(_)));
        assert!(matches!(decode(&buf, 0, 7, 4), Decoded::Corrupt(_)));
    }

    /// The short, in-CI companion of the `segment_frame` fuzz target:
    /// random and damaged buffers never panic, and a frame accepted is
    /// exactly what encode writes for it.
    #[test]
    fn random_and_damaged_buffers_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        for _ in 0..50_000 {
            let mut buf = Vec::new();
            let first = rng.gen_range(0..4u64);
            for i in 0..rng.gen_range(0..4) {
                let payload: Vec<u8> = (0..rng.gen_range(0..40)).map(|_| rng.gen()).collect();
                encode(&mut buf, first + i, rng.gen(), &payload);
            }
            match rng.gen_range(0..4) {
                0 => buf = (0..rng.gen_range(0..80)).map(|_| rng.gen()).collect(),
                1 if !buf.is_empty() => {
                    let i = rng.gen_range(0..buf.len());
                    buf[i] ^= 1 << rng.gen_range(0..8);
                }
                2 => buf.truncate(rng.gen_range(0..=buf.len())),
                _ => {}
            }
            let (mut at, mut want) = (0, first);
            while at < buf.len() {
                let Decoded::Frame(f) = decode(&buf, at, want, 1 << 10) else {
                    break;
                };
                assert!(at < f.payload_start && f.payload_start <= f.payload_end);
                assert!(f.payload_end <= buf.len());
                let mut again = Vec::new();
                encode(
                    &mut again,
                    f.offset,
                    f.timestamp,
                    &buf[f.payload_start..f.payload_end],
                );
                assert_eq!(&again[..], &buf[at..f.payload_end]);
                (at, want) = (f.payload_end, want + 1);
            }
        }
    }
}
