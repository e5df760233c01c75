//! Uploads and where they were sent, in three tables:
//! - `media`: media id (16 bytes, big-endian) → the record as JSON
//! - `media_image`: media id → what the thumbnail job found, as JSON
//! - `media_uses`: `(media id, conversation, msg_id)` → ()

use parley_schemas::media::MediaId;

use super::*;
use crate::state::{ImageInfo, MediaRecord, MediaStore};

pub(super) const MEDIA: TableDefinition<u128, &str> = TableDefinition::new("media");
pub(super) const MEDIA_IMAGE: TableDefinition<u128, &str> = TableDefinition::new("media_image");
pub(super) const MEDIA_USES: TableDefinition<(u128, &str, u64), ()> =
    TableDefinition::new("media_uses");

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(MEDIA).map_err(err)?;
    tx.open_table(MEDIA_IMAGE).map_err(err)?;
    tx.open_table(MEDIA_USES).map_err(err)?;
    Ok(())
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(err)
}

/// Applies one of the media ops (any other op is not this table's).
pub(super) fn apply_media_op(tx: &WriteTransaction, op: &StateOp) -> Result<()> {
    match op {
        StateOp::PutMedia { media, record } => {
            let mut t = tx.open_table(MEDIA).map_err(err)?;
            if t.get(media.0).map_err(err)?.is_none() {
                let record = MediaRecord {
                    image: None,
                    ..record.clone()
                };
                t.insert(media.0, json(&record)?.as_str()).map_err(err)?;
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
        }
        _ => {}
    }
    Ok(())
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
}
