//! Uploads and where they were sent, and blobs by how many uploads they
//! hold:
//! - `media`: media id → the record as JSON
//! - `media_image`: media id → what the thumbnail job found, as JSON
//! - `media_uses`: `(media id, conversation, msg_id)` → ()
//! - `media_unsent`: `(uploaded_at, media id)` → (), uploads never sent;
//!   `media_sent`: the same, of uploads sent
//! - `media_fetched`: `(media id, user)` → (), who fetched it whole;
//!   `media_fetch_queue`: media id → when, fetched since the sweeper looked
//! - `uploads`: `(uploader, media id)` → (), each user's uploads
//! - `blob_refs`: sha256 → uploads that are its bytes
//! - `blob_unref`: sha256 → since when none is; `blob_deleting`: sha256 → ()

use parley_schemas::media::MediaId;

use super::*;
use crate::state::{ImageInfo, MediaRecord, MediaStore};

pub(super) const MEDIA: TableDefinition<u128, &str> = TableDefinition::new("media");
pub(super) const MEDIA_IMAGE: TableDefinition<u128, &str> = TableDefinition::new("media_image");
pub(super) const MEDIA_USES: TableDefinition<(u128, &str, u64), ()> =
    TableDefinition::new("media_uses");

const MEDIA_UNSENT: ByTime = TableDefinition::new("media_unsent");
const MEDIA_SENT: ByTime = TableDefinition::new("media_sent");
const MEDIA_FETCHED: TableDefinition<(u128, u64), ()> = TableDefinition::new("media_fetched");
const MEDIA_FETCH_QUEUE: TableDefinition<u128, u64> = TableDefinition::new("media_fetch_queue");
const UPLOADS: TableDefinition<(u64, u128), ()> = TableDefinition::new("uploads");
const BLOB_REFS: TableDefinition<&str, u64> = TableDefinition::new("blob_refs");
const BLOB_UNREF: TableDefinition<&str, u64> = TableDefinition::new("blob_unref");
const BLOB_DELETING: TableDefinition<&str, ()> = TableDefinition::new("blob_deleting");

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(MEDIA).map_err(err)?;
    tx.open_table(MEDIA_IMAGE).map_err(err)?;
    tx.open_table(MEDIA_USES).map_err(err)?;
    tx.open_table(MEDIA_UNSENT).map_err(err)?;
    tx.open_table(MEDIA_SENT).map_err(err)?;
    tx.open_table(MEDIA_FETCHED).map_err(err)?;
    tx.open_table(MEDIA_FETCH_QUEUE).map_err(err)?;
    backfill_uploads(tx)?;
    tx.open_table(BLOB_REFS).map_err(err)?;
    tx.open_table(BLOB_UNREF).map_err(err)?;
    tx.open_table(BLOB_DELETING).map_err(err)?;
    Ok(())
}

/// Indexes uploads made before the `uploads` table existed (once: it
/// is empty only then, or when there are none).
fn backfill_uploads(tx: &WriteTransaction) -> Result<()> {
    let mut uploads = tx.open_table(UPLOADS).map_err(err)?;
    if !uploads.is_empty().map_err(err)? {
        return Ok(());
    }
    let media = tx.open_table(MEDIA).map_err(err)?;
    for row in media.iter().map_err(err)? {
        let (k, v) = row.map_err(err)?;
        let rec: MediaRecord = serde_json::from_str(v.value()).map_err(err)?;
        uploads
            .insert((rec.uploader.0, k.value()), ())
            .map_err(err)?;
    }
    Ok(())
}

fn record(tx: &WriteTransaction, media: MediaId) -> Result<Option<MediaRecord>> {
    let t = tx.open_table(MEDIA).map_err(err)?;
    let v = t.get(media.0).map_err(err)?;
    v.map(|v| serde_json::from_str(v.value()).map_err(err))
        .transpose()
}

fn used(tx: &WriteTransaction, media: MediaId) -> Result<bool> {
    let t = tx.open_table(MEDIA_USES).map_err(err)?;
    let any = t
        .range((media.0, "", 0)..=(media.0, "\u{10ffff}", u64::MAX))
        .map_err(err)?
        .next()
        .is_some();
    Ok(any)
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(err)
}

/// Applies one of the media ops (any other op is not this table's).
pub(super) fn apply_media_op(tx: &WriteTransaction, op: &StateOp) -> Result<()> {
    match op {
        StateOp::PutMedia { media, record } => {
            let mut t = tx.open_table(MEDIA).map_err(err)?;
            if t.get(media.0).map_err(err)?.is_some() {
                return Ok(());
            }
            let stored = MediaRecord {
                image: None,
                ..record.clone()
            };
            t.insert(media.0, json(&stored)?.as_str()).map_err(err)?;
            tx.open_table(UPLOADS)
                .map_err(err)?
                .insert((record.uploader.0, media.0), ())
                .map_err(err)?;
            let sha = record.sha256.as_str();
            let mut refs = tx.open_table(BLOB_REFS).map_err(err)?;
            let n = refs.get(sha).map_err(err)?.map_or(0, |v| v.value());
            refs.insert(sha, n + 1).map_err(err)?;
            tx.open_table(BLOB_UNREF)
                .map_err(err)?
                .remove(sha)
                .map_err(err)?;
            if !used(tx, *media)? {
                tx.open_table(MEDIA_UNSENT)
                    .map_err(err)?
                    .insert((record.uploaded_at, media.0), ())
                    .map_err(err)?;
            }
        }
        StateOp::DeleteMedia { media, at } => {
            let Some(rec) = record(tx, *media)? else {
                return Ok(());
            };
            tx.open_table(MEDIA)
                .map_err(err)?
                .remove(media.0)
                .map_err(err)?;
            tx.open_table(UPLOADS)
                .map_err(err)?
                .remove((rec.uploader.0, media.0))
                .map_err(err)?;
            tx.open_table(MEDIA_IMAGE)
                .map_err(err)?
                .remove(media.0)
                .map_err(err)?;
            for t in [MEDIA_UNSENT, MEDIA_SENT] {
                tx.open_table(t)
                    .map_err(err)?
                    .remove((rec.uploaded_at, media.0))
                    .map_err(err)?;
            }
            tx.open_table(MEDIA_USES)
                .map_err(err)?
                .retain_in(
                    (media.0, "", 0)..=(media.0, "\u{10ffff}", u64::MAX),
                    |_, _| false,
                )
                .map_err(err)?;
            tx.open_table(MEDIA_FETCHED)
                .map_err(err)?
                .retain_in((media.0, 0)..=(media.0, u64::MAX), |_, _| false)
                .map_err(err)?;
            tx.open_table(MEDIA_FETCH_QUEUE)
                .map_err(err)?
                .remove(media.0)
                .map_err(err)?;
            let sha = rec.sha256.as_str();
            let mut refs = tx.open_table(BLOB_REFS).map_err(err)?;
            let n = refs.get(sha).map_err(err)?.map_or(0, |v| v.value());
            if n > 1 {
                refs.insert(sha, n - 1).map_err(err)?;
            } else {
                refs.remove(sha).map_err(err)?;
                tx.open_table(BLOB_UNREF)
                    .map_err(err)?
                    .insert(sha, *at)
                    .map_err(err)?;
            }
        }
        StateOp::SetMediaImage { media, image } => {
            let mut t = tx.open_table(MEDIA_IMAGE).map_err(err)?;
            t.insert(media.0, json(image)?.as_str()).map_err(err)?;
        }
        StateOp::MediaUsed {
            media,
            conversation,
            msg_id,
        } => {
            let mut t = tx.open_table(MEDIA_USES).map_err(err)?;
            let c = conversation.to_string();
            t.insert((media.0, c.as_str(), msg_id.0), ()).map_err(err)?;
            if let Some(rec) = record(tx, *media)? {
                tx.open_table(MEDIA_UNSENT)
                    .map_err(err)?
                    .remove((rec.uploaded_at, media.0))
                    .map_err(err)?;
                tx.open_table(MEDIA_SENT)
                    .map_err(err)?
                    .insert((rec.uploaded_at, media.0), ())
                    .map_err(err)?;
            }
        }
        StateOp::MediaUnused {
            media,
            conversation,
            msg_id,
        } => {
            let c = conversation.to_string();
            tx.open_table(MEDIA_USES)
                .map_err(err)?
                .remove((media.0, c.as_str(), msg_id.0))
                .map_err(err)?;
            if let Some(rec) = record(tx, *media)? {
                if !used(tx, *media)? {
                    let key = (rec.uploaded_at, media.0);
                    tx.open_table(MEDIA_SENT)
                        .map_err(err)?
                        .remove(key)
                        .map_err(err)?;
                    tx.open_table(MEDIA_UNSENT)
                        .map_err(err)?
                        .insert(key, ())
                        .map_err(err)?;
                }
            }
        }
        StateOp::MediaFetched { media, user, at } => {
            if record(tx, *media)?.is_none() {
                return Ok(());
            }
            tx.open_table(MEDIA_FETCHED)
                .map_err(err)?
                .insert((media.0, user.0), ())
                .map_err(err)?;
            let mut q = tx.open_table(MEDIA_FETCH_QUEUE).map_err(err)?;
            let was = q.get(media.0).map_err(err)?.map_or(0, |v| v.value());
            q.insert(media.0, was.max(*at)).map_err(err)?;
        }
        StateOp::MediaChecked { media, at } => {
            let mut q = tx.open_table(MEDIA_FETCH_QUEUE).map_err(err)?;
            if q.get(media.0)
                .map_err(err)?
                .is_some_and(|v| v.value() <= *at)
            {
                q.remove(media.0).map_err(err)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// An index of uploads by time (`media_unsent`, `media_sent`).
type ByTime = TableDefinition<'static, (u64, u128), ()>;

impl RedbState {
    /// Up to `limit` uploads in `index` made before `before`, oldest first.
    async fn uploaded_before(
        &self,
        index: ByTime,
        before: u64,
        limit: usize,
    ) -> Result<Vec<MediaId>> {
        self.read(move |tx| {
            let t = tx.open_table(index).map_err(err)?;
            let mut out = Vec::new();
            for row in t.range((0, 0)..(before, 0)).map_err(err)?.take(limit) {
                out.push(MediaId(row.map_err(err)?.0.value().1));
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl MediaStore for RedbState {
    async fn media(&self, media: MediaId) -> Result<Option<MediaRecord>> {
        self.read(move |tx| {
            let t = tx.open_table(MEDIA).map_err(err)?;
            let Some(v) = t.get(media.0).map_err(err)? else {
                return Ok(None);
            };
            let mut record: MediaRecord = serde_json::from_str(v.value()).map_err(err)?;
            let images = tx.open_table(MEDIA_IMAGE).map_err(err)?;
            if let Some(i) = images.get(media.0).map_err(err)? {
                record.image = Some(serde_json::from_str::<ImageInfo>(i.value()).map_err(err)?);
            }
            Ok(Some(record))
        })
        .await
    }

    async fn media_uses(
        &self,
        media: MediaId,
        limit: usize,
    ) -> Result<Vec<(ConversationId, MessageId)>> {
        self.read(move |tx| {
            let t = tx.open_table(MEDIA_USES).map_err(err)?;
            let range = t
                .range((media.0, "", 0)..=(media.0, "\u{10ffff}", u64::MAX))
                .map_err(err)?;
            let mut out = Vec::new();
            for row in range.take(limit) {
                let (k, _) = row.map_err(err)?;
                let (_, c, m) = k.value();
                let c: ConversationId = c.parse().map_err(err)?;
                out.push((c, MessageId(m)));
            }
            Ok(out)
        })
        .await
    }

    async fn uploads(&self, user: UserId, limit: usize) -> Result<Vec<MediaId>> {
        self.read(move |tx| {
            let t = tx.open_table(UPLOADS).map_err(err)?;
            let mut out = Vec::new();
            for row in t
                .range((user.0, 0)..=(user.0, u128::MAX))
                .map_err(err)?
                .take(limit)
            {
                out.push(MediaId(row.map_err(err)?.0.value().1));
            }
            Ok(out)
        })
        .await
    }

    async fn unsent_media(&self, before: u64, limit: usize) -> Result<Vec<MediaId>> {
        self.uploaded_before(MEDIA_UNSENT, before, limit).await
    }

    async fn sent_media(&self, before: u64, limit: usize) -> Result<Vec<MediaId>> {
        self.uploaded_before(MEDIA_SENT, before, limit).await
    }

    async fn media_fetchers(&self, media: MediaId) -> Result<Vec<UserId>> {
        self.read(move |tx| {
            let t = tx.open_table(MEDIA_FETCHED).map_err(err)?;
            let mut out = Vec::new();
            for row in t.range((media.0, 0)..=(media.0, u64::MAX)).map_err(err)? {
                out.push(UserId(row.map_err(err)?.0.value().1));
            }
            Ok(out)
        })
        .await
    }

    async fn fetched_media(&self, limit: usize) -> Result<Vec<(MediaId, u64)>> {
        self.read(move |tx| {
            let t = tx.open_table(MEDIA_FETCH_QUEUE).map_err(err)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(err)?.take(limit) {
                let (k, v) = row.map_err(err)?;
                out.push((MediaId(k.value()), v.value()));
            }
            Ok(out)
        })
        .await
    }

    async fn unreferenced_blobs(&self, before: u64, limit: usize) -> Result<Vec<String>> {
        self.read(move |tx| {
            let t = tx.open_table(BLOB_UNREF).map_err(err)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(err)? {
                let (k, v) = row.map_err(err)?;
                if v.value() < before {
                    out.push(k.value().to_owned());
                    if out.len() == limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn claim_blob(&self, sha256: &str, before: u64) -> Result<bool> {
        let sha = sha256.to_owned();
        self.write_tx(move |tx| {
            let refs = tx.open_table(BLOB_REFS).map_err(err)?;
            if refs
                .get(sha.as_str())
                .map_err(err)?
                .is_some_and(|n| n.value() > 0)
            {
                return Ok(false);
            }
            let mut unref = tx.open_table(BLOB_UNREF).map_err(err)?;
            let since = unref.get(sha.as_str()).map_err(err)?.map(|v| v.value());
            if since.is_none_or(|s| s >= before) {
                return Ok(false);
            }
            unref.remove(sha.as_str()).map_err(err)?;
            tx.open_table(BLOB_DELETING)
                .map_err(err)?
                .insert(sha.as_str(), ())
                .map_err(err)?;
            Ok(true)
        })
        .await
    }

    async fn blob_deleted(&self, sha256: &str) -> Result<()> {
        let sha = sha256.to_owned();
        self.write_tx(move |tx| {
            tx.open_table(BLOB_DELETING)
                .map_err(err)?
                .remove(sha.as_str())
                .map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn pin_blob(&self, sha256: &str) -> Result<bool> {
        let sha = sha256.to_owned();
        self.write_tx(move |tx| {
            let deleting = tx.open_table(BLOB_DELETING).map_err(err)?;
            if deleting.get(sha.as_str()).map_err(err)?.is_some() {
                return Ok(false);
            }
            tx.open_table(BLOB_UNREF)
                .map_err(err)?
                .remove(sha.as_str())
                .map_err(err)?;
            Ok(true)
        })
        .await
    }
}
