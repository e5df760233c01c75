//! Uploads: their records, where they were sent, who fetched them, and
//! the blobs they share.

use async_trait::async_trait;
use parley_schemas::ids::{ConversationId, MessageId, UserId};
use parley_schemas::media::MediaId;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// An upload as the log recorded it, with what the thumbnail job found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRecord {
    pub uploader: UserId,
    /// Lowercase hex: the blob's key is derived from it.
    pub sha256: String,
    pub size: u64,
    pub mime: String,
    pub uploaded_at: u64,
    /// `None` until the thumbnail job has looked (and for non-images).
    #[serde(default)]
    pub image: Option<ImageInfo>,
}

/// An image's size, and whether a thumbnail of it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub width: u32,
    pub height: u32,
    pub thumbnail: bool,
}

/// Uploads and where they were sent: what decides who may fetch a file,
/// and when an upload or a blob may go.
///
/// Blobs are shared by content, so each blob (by its SHA-256) counts the
/// uploads that are its bytes. One that drops to none is *unreferenced*
/// from then; the sweeper deletes it after a grace period, claiming it
/// first, and an upload of the same bytes pins it first: the two are
/// atomic against each other, so a blob is never deleted under an upload.
#[async_trait]
pub trait MediaStore: Send + Sync + 'static {
    /// The upload, with its image details merged in; `None` if unknown.
    async fn media(&self, media: MediaId) -> Result<Option<MediaRecord>>;

    /// Up to `limit` messages that carried `media`, in no set order.
    async fn media_uses(
        &self,
        media: MediaId,
        limit: usize,
    ) -> Result<Vec<(ConversationId, MessageId)>>;

    /// Up to `limit` of `user`'s uploads, in no set order.
    async fn uploads(&self, user: UserId, limit: usize) -> Result<Vec<MediaId>>;

    /// Up to `limit` uploads made before `before` (ms) and never sent.
    async fn unsent_media(&self, before: u64, limit: usize) -> Result<Vec<MediaId>>;

    /// Up to `limit` uploads made before `before` (ms) and sent.
    async fn sent_media(&self, before: u64, limit: usize) -> Result<Vec<MediaId>>;

    /// Who fetched the whole of `media` (recorded under
    /// `until_delivered` retention only).
    async fn media_fetchers(&self, media: MediaId) -> Result<Vec<UserId>>;

    /// Up to `limit` uploads fetched since the sweeper last looked, with
    /// when (for [`StateOp::MediaChecked`](crate::StateOp::MediaChecked)),
    /// in no set order.
    async fn fetched_media(&self, limit: usize) -> Result<Vec<(MediaId, u64)>>;

    /// Up to `limit` blobs (their SHA-256) unreferenced since before
    /// `before`.
    async fn unreferenced_blobs(&self, before: u64, limit: usize) -> Result<Vec<String>>;

    /// Marks blob `sha256` as being deleted if it is still unreferenced
    /// since before `before`; false if it is not (an upload pinned it).
    async fn claim_blob(&self, sha256: &str, before: u64) -> Result<bool>;

    /// A claimed blob is gone: uploads of its bytes may go on.
    async fn blob_deleted(&self, sha256: &str) -> Result<()>;

    /// An upload is about to commit blob `sha256`: it is no longer
    /// unreferenced. False while it is being deleted (commit after
    /// [`blob_deleted`](Self::blob_deleted)).
    async fn pin_blob(&self, sha256: &str) -> Result<bool>;
}
