//! The blob seam: media bytes by key (photos, videos, documents, their
//! thumbnails, the parts of resumable uploads).
//!
//! A blob is written through a [`BlobWriter`] and becomes visible, whole
//! and durable, only at [`BlobWriter::commit`]: a reader never sees half a
//! file, and an upload that fails or is abandoned leaves nothing under its
//! key. Keys are content-addressed by the caller where that is wanted
//! (`blobs/<sha256>`), so committing to a key that exists keeps the one
//! stored: the same bytes are stored once.

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::error::{EngineError, Result};

/// A blob's bytes as they are read, chunk by chunk.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// One blob as [`BlobStore::list`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub key: String,
    pub size: u64,
    /// When it was committed, ms since the epoch.
    pub modified_ms: u64,
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// A writer for a new blob. Nothing is visible until it commits.
    async fn writer(&self) -> Result<Box<dyn BlobWriter>>;

    /// The blob's size; `None` if there is no such blob.
    async fn size(&self, key: &str) -> Result<Option<u64>>;

    /// Bytes `range` of the blob (all of it for `None`), streamed; `None`
    /// if there is no such blob. The range must lie within its size.
    async fn read(&self, key: &str, range: Option<Range<u64>>) -> Result<Option<ByteStream>>;

    /// Removes the blob; one that is not there is not an error.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Every blob whose key starts with `prefix`, which ends with `/`.
    async fn list(&self, prefix: &str) -> Result<Vec<BlobInfo>>;
}

#[async_trait]
pub trait BlobWriter: Send {
    /// Appends a chunk.
    async fn write(&mut self, chunk: Bytes) -> Result<()>;

    /// Makes what was written durable and visible as `key`. If `key` holds
    /// a blob already, that one is kept and this one dropped (callers
    /// commit the same bytes to the same key).
    async fn commit(self: Box<Self>, key: &str) -> Result<()>;

    /// Drops what was written. Dropping a writer does too, perhaps later.
    async fn abort(self: Box<Self>);
}

/// Keys become file paths and object names, so they are kept to a safe
/// alphabet: `/`-separated segments of `[a-z0-9._-]`, none of them `.` or
/// `..` or empty, 1..=512 bytes.
pub fn check_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 512
        && key.split('/').all(|s| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
        });
    if ok {
        Ok(())
    } else {
        Err(EngineError::InvalidName(key.to_owned()))
    }
}

/// A list prefix: a key's leading segments and a trailing `/`.
pub fn check_prefix(prefix: &str) -> Result<()> {
    match prefix.strip_suffix('/') {
        Some(p) => check_key(p),
        None => Err(EngineError::InvalidName(prefix.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_kept_to_a_safe_alphabet() {
        for ok in ["blobs/ab12", "uploads/x/part-00000001", "a.b_c-d"] {
            assert!(check_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "/a", "a/", "a//b", "../x", "a/../b", "./a", "A", "a b", "a\\b", "é",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_prefix("uploads/x/").is_ok());
        assert!(check_prefix("uploads").is_err());
        assert!(check_key(&"a".repeat(513)).is_err());
    }
}
