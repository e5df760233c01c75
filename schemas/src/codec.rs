//! The binary envelope every log record is stored in.
//!
//! Layout: `[0xB7 magic][version: u8][postcard-encoded Event]`.
//!
//! Versions: 1, the first; 2, in which a media body also carries its
//! image's size and whether a thumbnail exists; 3, in which a message
//! carries `reply_to` and `forwarded`. All decode: while a record
//! decodes, [`layout`] tells the types whose layout differs
//! ([`crate::wire::Media`], [`crate::event::MessageSent`]) which version
//! it is reading.
//!
//! Why postcard: its wire format is specified and frozen at 1.0, it writes
//! integers as varints (a 200-byte chat message stays ~200 bytes), it is
//! serde-based so the same derives serve JSON and binary, and it needs no
//! schema compiler in the build. What it lacks against protobuf is field
//! tags; the version byte and the append-only variant rule in
//! [`crate::event`] stand in for them.
//!
//! Decoding is total: empty input, a wrong magic, an unknown version,
//! truncated or trailing bytes all give a [`DecodeError`], never a panic
//! (the fuzz target in `schemas/fuzz` checks that).

use crate::event::Event;

pub const MAGIC: u8 = 0xB7;
pub const VERSION: u8 = 3;
/// The oldest version this build still reads.
pub const OLDEST: u8 = 1;

thread_local! {
    static LAYOUT: std::cell::Cell<u8> = const { std::cell::Cell::new(VERSION) };
}

/// The envelope version of the record being decoded or encoded on this
/// thread ([`VERSION`] outside [`decode`] and [`encode_as`]).
pub fn layout() -> u8 {
    LAYOUT.with(|l| l.get())
}

/// Sets [`layout`] for one decode, and back however it ends.
struct Layout;

impl Layout {
    fn enter(version: u8) -> Layout {
        LAYOUT.with(|l| l.set(version));
        Layout
    }
}

impl Drop for Layout {
    fn drop(&mut self) {
        LAYOUT.with(|l| l.set(VERSION));
    }
}
/// A decoded record larger than this is refused before allocating: the log
/// caps records well below it.
pub const MAX_ENCODED: usize = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty record")]
    Empty,
    #[error("not a Parley event (magic byte {0:#04x})")]
    BadMagic(u8),
    #[error("unknown envelope version {0}; this build reads versions {OLDEST} to {VERSION}")]
    UnknownVersion(u8),
    #[error("record of {0} bytes exceeds the {MAX_ENCODED}-byte limit")]
    TooLarge(usize),
    #[error("malformed event: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after the event")]
    Trailing(usize),
}

/// The version this process writes: [`VERSION`] unless a deployment
/// chose an older one ([`write_version`]).
static WRITES: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(VERSION);

/// Makes this process write envelope `version` (from [`OLDEST`] to
/// [`VERSION`]): the first step of a release that changes a layout reads
/// the new version but still writes the old one, so that nodes not yet
/// upgraded can read everything (deploy/README.md, "Rolling upgrades").
/// What the older layout has no place for is not written (a reply's
/// quote, a forward mark, a file's size and image size).
pub fn write_version(version: u8) -> Result<(), DecodeError> {
    if !(OLDEST..=VERSION).contains(&version) {
        return Err(DecodeError::UnknownVersion(version));
    }
    WRITES.store(version, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// Encodes an event into a fresh buffer.
pub fn encode(event: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(event, &mut out);
    out
}

/// Appends the encoding of `event` to `out`, in the version this process
/// writes.
pub fn encode_into(event: &Event, out: &mut Vec<u8>) {
    encode_as(
        event,
        WRITES.load(std::sync::atomic::Ordering::Relaxed),
        out,
    )
}

/// Appends the encoding of `event` in envelope `version` to `out`.
pub fn encode_as(event: &Event, version: u8, out: &mut Vec<u8>) {
    out.push(MAGIC);
    out.push(version);
    let layout = Layout::enter(version);
    // Writing into a Vec cannot fail, and every Event field is serializable.
    let body = postcard::to_extend(event, std::mem::take(out)).expect("events always serialize");
    drop(layout);
    *out = body;
}

pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let (&magic, rest) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if magic != MAGIC {
        return Err(DecodeError::BadMagic(magic));
    }
    let (&version, body) = rest.split_first().ok_or(DecodeError::Empty)?;
    if !(OLDEST..=VERSION).contains(&version) {
        return Err(DecodeError::UnknownVersion(version));
    }
    if bytes.len() > MAX_ENCODED {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    let layout = Layout::enter(version);
    let decoded = postcard::take_from_bytes::<Event>(body);
    drop(layout);
    let (event, trailing) = decoded.map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !trailing.is_empty() {
        return Err(DecodeError::Trailing(trailing.len()));
    }
    Ok(event)
}
