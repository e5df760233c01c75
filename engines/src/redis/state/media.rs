//! Uploads and where they were sent, and blobs by how many uploads they
//! hold, on Redis:
//! - `P:md:{media}` hash: `rec` (the record, JSON), `img` (what the
//!   thumbnail job found, JSON)
//! - `P:mu:{media}` set: `{conversation}|{msg_id}` per message that carried it
//! - `P:mus` sorted set: uploads never sent, score = uploaded at;
//!   `P:mst`: the same, of uploads sent
//! - `P:mf:{media}` set: users who fetched it whole; `P:mfq` sorted set:
//!   uploads fetched since the sweeper looked, score = when
//! - `P:up:{user}` set: the user's uploads
//! - `P:mr` hash: sha256 → uploads that are its bytes
//! - `P:mun` sorted set: unreferenced blobs, score = since;
//!   `P:mdel` set: blobs being deleted

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
            let stored = MediaRecord {
                image: None,
                ..record.clone()
            };
            [
                "X".into(),
                media.to_string(),
                json(&stored),
                record.sha256.clone(),
                record.uploaded_at.to_string(),
            ]
        }
        StateOp::DeleteMedia { media, at } => [
            "W".into(),
            media.to_string(),
            at.to_string(),
            "".into(),
            "".into(),
        ],
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
        StateOp::MediaUnused {
            media,
            conversation,
            msg_id,
        } => [
            "u".into(),
            media.to_string(),
            format!("{conversation}|{msg_id}"),
            "".into(),
            "".into(),
        ],
        StateOp::MediaFetched { media, user, at } => [
            "E".into(),
            media.to_string(),
            user.0.to_string(),
            at.to_string(),
            "".into(),
        ],
        StateOp::MediaChecked { media, at } => [
            "K".into(),
            media.to_string(),
            at.to_string(),
            "".into(),
            "".into(),
        ],
        _ => return None,
    })
}

impl RedisState {
    /// Puts uploads stored before the per-uploader index existed into it,
    /// once per store (a marker key says it was done; writes meanwhile
    /// keep the index themselves).
    pub(super) async fn index_old_uploads(&self) -> Result<()> {
        let mut con = self.con.clone();
        let marker = self.key("up:indexed".into());
        let done: bool = redis::cmd("EXISTS")
            .arg(&marker)
            .query_async(&mut con)
            .await
            .map_err(err)?;
        if done {
            return Ok(());
        }
        let pattern = self.key("md:*".into());
        let mut cursor = 0u64;
        loop {
            let (next, keys) = self.scan(cursor, &pattern, 1000).await?;
            for k in keys {
                let rec: Option<String> = redis::cmd("HGET")
                    .arg(&k)
                    .arg("rec")
                    .query_async(&mut con)
                    .await
                    .map_err(err)?;
                let Some(rec) = rec.and_then(|r| serde_json::from_str::<MediaRecord>(&r).ok())
                else {
                    continue;
                };
                let media = k.rsplit(':').next().unwrap_or_default().to_owned();
                let _: i64 = redis::cmd("SADD")
                    .arg(self.key(format!("up:{}", rec.uploader)))
                    .arg(media)
                    .query_async(&mut con)
                    .await
                    .map_err(err)?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let _: () = redis::cmd("SET")
            .arg(&marker)
            .arg(1)
            .query_async(&mut con)
            .await
            .map_err(err)?;
        Ok(())
    }
}

/// The script's media ops, spliced into `APPLY`.
pub(super) const MEDIA_LUA: &str = r#"
  elseif op == 'X' then -- media, record, sha256, uploaded at: kept if there
    if redis.call('HSETNX', p .. ':md:' .. a, 'rec', b) == 1 then
      redis.call('SADD', p .. ':up:' .. cjson.decode(b).uploader, a)
      redis.call('HINCRBY', p .. ':mr', c, 1)
      redis.call('ZREM', p .. ':mun', c)
      if redis.call('SCARD', p .. ':mu:' .. a) == 0 then
        redis.call('ZADD', p .. ':mus', d, a)
      end
    end
  elseif op == 'W' then -- media, at: deleted, its blob's count drops
    local rec = redis.call('HGET', p .. ':md:' .. a, 'rec')
    if rec then
      local r = cjson.decode(rec)
      local sha = r.sha256
      redis.call('SREM', p .. ':up:' .. r.uploader, a)
      redis.call('DEL', p .. ':md:' .. a, p .. ':mu:' .. a, p .. ':mf:' .. a)
      redis.call('ZREM', p .. ':mus', a)
      redis.call('ZREM', p .. ':mst', a)
      redis.call('ZREM', p .. ':mfq', a)
      if redis.call('HINCRBY', p .. ':mr', sha, -1) <= 0 then
        redis.call('HDEL', p .. ':mr', sha)
        redis.call('ZADD', p .. ':mun', b, sha)
      end
    end
  elseif op == 'Z' then -- media, image
    redis.call('HSET', p .. ':md:' .. a, 'img', b)
  elseif op == 'U' then -- media, 'conversation|msg_id'
    redis.call('SADD', p .. ':mu:' .. a, b)
    redis.call('ZREM', p .. ':mus', a)
    local rec = redis.call('HGET', p .. ':md:' .. a, 'rec')
    if rec then
      redis.call('ZADD', p .. ':mst', cjson.decode(rec).uploaded_at, a)
    end
  elseif op == 'u' then -- media, 'conversation|msg_id': deleted, no longer a use
    redis.call('SREM', p .. ':mu:' .. a, b)
    local rec = redis.call('HGET', p .. ':md:' .. a, 'rec')
    if rec and redis.call('SCARD', p .. ':mu:' .. a) == 0 then
      redis.call('ZREM', p .. ':mst', a)
      redis.call('ZADD', p .. ':mus', cjson.decode(rec).uploaded_at, a)
    end
  elseif op == 'E' then -- media, user, at: fetched whole
    if redis.call('EXISTS', p .. ':md:' .. a) == 1 then
      redis.call('SADD', p .. ':mf:' .. a, b)
      redis.call('ZADD', p .. ':mfq', 'GT', c, a)
    end
  elseif op == 'K' then -- media, at: the sweeper looked
    local q = redis.call('ZSCORE', p .. ':mfq', a)
    if q and tonumber(q) <= tonumber(b) then
      redis.call('ZREM', p .. ':mfq', a)
    end"#;

/// KEYS: refs, unreferenced, deleting; ARGV: sha256, before. 1 if claimed.
pub(super) const CLAIM: &str = r#"
if tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') > 0 then return 0 end
local since = redis.call('ZSCORE', KEYS[2], ARGV[1])
if (not since) or tonumber(since) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
"#;

/// KEYS: unreferenced, deleting; ARGV: sha256. 0 while it is being deleted.
pub(super) const PIN: &str = r#"
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"#;

fn bad(e: impl std::fmt::Display) -> EngineError {
    EngineError::State(format!("malformed media row: {e}"))
}

impl RedisState {
    /// Up to `limit` members of sorted set `P:{set}` scored below `before`,
    /// lowest first.
    pub(super) async fn scored_before(
        &self,
        set: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<String>> {
        redis::cmd("ZRANGEBYSCORE")
            .arg(self.key(set.into()))
            .arg("-inf")
            .arg(format!("({before}"))
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)
    }
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

    async fn uploads(&self, user: UserId, limit: usize) -> Result<Vec<MediaId>> {
        let ids: Vec<String> = redis::cmd("SRANDMEMBER")
            .arg(self.key(format!("up:{user}")))
            .arg(limit)
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        ids.iter().map(|i| i.parse().map_err(bad)).collect()
    }

    async fn unsent_media(&self, before: u64, limit: usize) -> Result<Vec<MediaId>> {
        let ids = self.scored_before("mus", before, limit).await?;
        ids.iter().map(|i| i.parse().map_err(bad)).collect()
    }

    async fn sent_media(&self, before: u64, limit: usize) -> Result<Vec<MediaId>> {
        let ids = self.scored_before("mst", before, limit).await?;
        ids.iter().map(|i| i.parse().map_err(bad)).collect()
    }

    async fn media_fetchers(&self, media: MediaId) -> Result<Vec<UserId>> {
        let users: Vec<u64> = redis::cmd("SMEMBERS")
            .arg(self.key(format!("mf:{media}")))
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        Ok(users.into_iter().map(UserId).collect())
    }

    async fn fetched_media(&self, limit: usize) -> Result<Vec<(MediaId, u64)>> {
        let rows: Vec<(String, u64)> = redis::cmd("ZRANGE")
            .arg(self.key("mfq".into()))
            .arg(0)
            .arg(limit.saturating_sub(1))
            .arg("WITHSCORES")
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        rows.into_iter()
            .map(|(m, at)| Ok((m.parse().map_err(bad)?, at)))
            .collect()
    }

    async fn unreferenced_blobs(&self, before: u64, limit: usize) -> Result<Vec<String>> {
        self.scored_before("mun", before, limit).await
    }

    async fn claim_blob(&self, sha256: &str, before: u64) -> Result<bool> {
        let claimed: i64 = self
            .claim_blob
            .key(self.key("mr".into()))
            .key(self.key("mun".into()))
            .key(self.key("mdel".into()))
            .arg(sha256)
            .arg(before)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        Ok(claimed == 1)
    }

    async fn blob_deleted(&self, sha256: &str) -> Result<()> {
        redis::cmd("SREM")
            .arg(self.key("mdel".into()))
            .arg(sha256)
            .query_async::<()>(&mut self.con.clone())
            .await
            .map_err(err)
    }

    async fn pin_blob(&self, sha256: &str) -> Result<bool> {
        let pinned: i64 = self
            .pin_blob
            .key(self.key("mun".into()))
            .key(self.key("mdel".into()))
            .arg(sha256)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        Ok(pinned == 1)
    }
}
