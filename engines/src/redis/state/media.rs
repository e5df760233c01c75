//! Uploads and where they were sent, on Redis:
//! - `P:md:{media}` hash: `rec` (the record, JSON), `img` (what the
//!   thumbnail job found, JSON)
//! - `P:mu:{media}` set: `{conversation}|{msg_id}` per message that carried it

use parley_schemas::media::MediaId;

use super::*;
use crate::state::{ImageInfo, MediaRecord, MediaStore};

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("media rows serialize")
}

/// The script arguments (op letter and four values) of a media op, or
/// `None` if `op` is not one.
pub(super) fn media_args(op: &StateOp) -> Option<[String; 5]> {
    Some(match op {
        StateOp::PutMedia { media, record } => {
            let record = MediaRecord {
                image: None,
                ..record.clone()
            };
            [
                "X".into(),
                media.to_string(),
                json(&record),
                "".into(),
                "".into(),
            ]
        }
        StateOp::SetMediaImage { media, image } => [
            "Z".into(),
            media.to_string(),
            json(image),
            "".into(),
            "".into(),
        ],
        StateOp::MediaUsed {
            media,
            conversation,
            msg_id,
        } => [
            "U".into(),
            media.to_string(),
            format!("{conversation}|{msg_id}"),
            "".into(),
            "".into(),
        ],
        _ => return None,
    })
}

/// The script's media ops, spliced into `APPLY`.
pub(super) const MEDIA_LUA: &str = r#"
  elseif op == 'X' then -- media, record: kept if there
    redis.call('HSETNX', p .. ':md:' .. a, 'rec', b)
  elseif op == 'Z' then -- media, image
    redis.call('HSET', p .. ':md:' .. a, 'img', b)
  elseif op == 'U' then -- media, 'conversation|msg_id'
    redis.call('SADD', p .. ':mu:' .. a, b)"#;

fn bad(e: impl std::fmt::Display) -> EngineError {
    EngineError::State(format!("malformed media row: {e}"))
}

#[async_trait]
impl MediaStore for RedisState {
    async fn media(&self, media: MediaId) -> Result<Option<MediaRecord>> {
        let (rec, img): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.key(format!("md:{media}")))
            .arg("rec")
            .arg("img")
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        let Some(rec) = rec else { return Ok(None) };
        let mut record: MediaRecord = serde_json::from_str(&rec).map_err(bad)?;
        if let Some(img) = img {
            record.image = Some(serde_json::from_str::<ImageInfo>(&img).map_err(bad)?);
        }
        Ok(Some(record))
    }

    async fn media_uses(
        &self,
        media: MediaId,
        limit: usize,
    ) -> Result<Vec<(ConversationId, MessageId)>> {
        let uses: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.key(format!("mu:{media}")))
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        uses.iter()
            .take(limit)
            .map(|u| {
                let (c, m) = u.split_once('|').ok_or_else(|| bad(u))?;
                Ok((c.parse().map_err(bad)?, m.parse().map_err(bad)?))
            })
            .collect()
    }
}
