//! The key directory on Redis:
//! - `P:k:{user}` hash: device → [`DeviceKeys`] as JSON
//! - `P:kp:{user}:{device}` sorted set: one-time prekeys, score = id,
//!   member = `{id}:{key}`
//!
//! An upload and a claim are each one Lua script, so a prekey popped by
//! one edge is gone for every other.

use parley_schemas::wire::{KeyBundle, Prekey};

use super::*;
use crate::state::{DeviceKeys, KeyStore, KeysPut};

/// KEYS: keys hash, prekeys; ARGV: device, keys JSON, identity key, cap,
/// then id and key per prekey. The prekeys held after, or -1 over the cap.
pub(super) const PUT: &str = r#"
local old = redis.call('HGET', KEYS[1], ARGV[1])
local renewed = false
if old then renewed = cjson.decode(old).identity_key ~= ARGV[3] end
local count = 0
if not renewed then count = redis.call('ZCARD', KEYS[2]) end
for i = 5, #ARGV, 2 do
  if renewed or redis.call('ZCOUNT', KEYS[2], ARGV[i], ARGV[i]) == 0 then count = count + 1 end
end
if count > tonumber(ARGV[4]) then return -1 end
if renewed then redis.call('DEL', KEYS[2]) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
for i = 5, #ARGV, 2 do
  redis.call('ZREMRANGEBYSCORE', KEYS[2], ARGV[i], ARGV[i])
  redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i] .. ':' .. ARGV[i + 1])
end
return count
"#;

/// KEYS: keys hash; ARGV: the prekey sets' prefix. Per device: device,
/// keys JSON, the prekey taken ('' if none left), how many are left.
pub(super) const CLAIM: &str = r#"
local devs = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #devs, 2 do
  local set = ARGV[1] .. devs[i]
  local p = redis.call('ZPOPMIN', set)
  out[#out + 1] = devs[i]
  out[#out + 1] = devs[i + 1]
  out[#out + 1] = p[1] or ''
  out[#out + 1] = tostring(redis.call('ZCARD', set))
end
return out
"#;

fn bad(e: impl std::fmt::Display) -> EngineError {
    EngineError::State(format!("malformed key row: {e}"))
}

fn parse(json: &str) -> Result<DeviceKeys> {
    serde_json::from_str(json).map_err(bad)
}

impl RedisState {
    fn prekeys(&self, user: UserId, device: DeviceId) -> String {
        self.key(format!("kp:{user}:{device}"))
    }
}

#[async_trait]
impl KeyStore for RedisState {
    async fn put_keys(
        &self,
        user: UserId,
        device: DeviceId,
        keys: DeviceKeys,
        one_time: Vec<Prekey>,
        cap: usize,
    ) -> Result<KeysPut> {
        let json = serde_json::to_string(&keys).map_err(bad)?;
        let mut inv = self.put_keys.prepare_invoke();
        inv.key(self.key(format!("k:{user}")))
            .key(self.prekeys(user, device))
            .arg(device.0)
            .arg(json)
            .arg(&keys.identity_key)
            .arg(cap);
        for p in &one_time {
            inv.arg(p.id).arg(&p.key);
        }
        let n: i64 = inv.invoke_async(&mut self.con.clone()).await.map_err(err)?;
        Ok(match usize::try_from(n) {
            Ok(n) => KeysPut::Stored(n),
            Err(_) => KeysPut::OverCap,
        })
    }

    async fn claim_keys(&self, user: UserId) -> Result<Vec<(KeyBundle, usize)>> {
        let rows: Vec<String> = self
            .claim_keys
            .key(self.key(format!("k:{user}")))
            .arg(self.key(format!("kp:{user}:")))
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        let mut out = Vec::with_capacity(rows.len() / 4);
        for row in rows.chunks_exact(4) {
            let device = DeviceId(row[0].parse().map_err(bad)?);
            let keys = parse(&row[1])?;
            let one_time_prekey = match row[2].split_once(':') {
                Some((id, key)) => Some(Prekey {
                    id: id.parse().map_err(bad)?,
                    key: key.to_owned(),
                }),
                None => None,
            };
            out.push((
                KeyBundle {
                    device_id: device,
                    identity_key: keys.identity_key,
                    signed_prekey: keys.signed_prekey,
                    one_time_prekey,
                },
                row[3].parse().map_err(bad)?,
            ));
        }
        // Redis hashes keep no order; callers get devices in id order.
        out.sort_by_key(|(b, _)| b.device_id);
        Ok(out)
    }

    async fn device_keys(
        &self,
        user: UserId,
        device: DeviceId,
    ) -> Result<Option<(DeviceKeys, usize)>> {
        let (json, held): (Option<String>, usize) = redis::pipe()
            .cmd("HGET")
            .arg(self.key(format!("k:{user}")))
            .arg(device.0)
            .cmd("ZCARD")
            .arg(self.prekeys(user, device))
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        json.map(|j| Ok((parse(&j)?, held))).transpose()
    }

    async fn remove_keys(&self, user: UserId, device: DeviceId) -> Result<()> {
        redis::pipe()
            .atomic()
            .cmd("HDEL")
            .arg(self.key(format!("k:{user}")))
            .arg(device.0)
            .ignore()
            .cmd("DEL")
            .arg(self.prekeys(user, device))
            .ignore()
            .query_async::<()>(&mut self.con.clone())
            .await
            .map_err(err)
    }
}
