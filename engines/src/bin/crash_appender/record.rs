//! The crash test's self-checking record, shared by the child process and
//! the test (`tests/crash.rs` includes this file by path).

use bytes::Bytes;

/// `tag | body_len | body | crc32c`, with the body derived from the tag, so
/// the checker can tell a real record from any garbage.
pub fn record(tag: u64) -> Bytes {
    let body_len = (tag % 300) as usize;
    let mut v = Vec::with_capacity(16 + body_len);
    v.extend_from_slice(&tag.to_le_bytes());
    v.extend_from_slice(&(body_len as u32).to_le_bytes());
    v.extend((0..body_len).map(|i| (tag as usize).wrapping_add(i) as u8));
    v.extend_from_slice(&crc32c::crc32c(&v).to_le_bytes());
    Bytes::from(v)
}

/// The tag of a well-formed record, or `None` for anything else.
#[allow(dead_code)] // used by the test, not the child
pub fn tag_of(bytes: &[u8]) -> Option<u64> {
    let tag = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    (record(tag)[..] == *bytes).then_some(tag)
}
