//! Notifications on Redis:
//! - `P:np:{partition}` hash: `{user}|{conversation}` → [`PendingRow`] as
//!   JSON; `P:npq:{partition}` sorted set: the same fields, score = when
//!   the first item was queued
//! - `P:ps:{user}` hash: subscription id → `{device}|{JSON}`
//! - `P:u:{user}` hash, field `ntf`: notification settings (JSON)

use super::*;
use crate::state::{NotifyStore, PendingNotification, PendingRow, StoredSubscription};

/// The script's notification op, spliced into `APPLY`: a new item folds
/// into the conversation's pending row (`PendingRow::merge` in Lua).
pub(super) const NOTIFY_LUA: &str = r#"
  elseif op == 'N' then -- partition, user|conversation, row JSON, at
    local k = p .. ':np:' .. a
    local cur = redis.call('HGET', k, b)
    if cur then
      local o, n = cjson.decode(cur), cjson.decode(c)
      o.count = o.count + 1
      if n.msg_id > o.msg_id then
        o.msg_id, o.from, o.at, o.preview = n.msg_id, n.from, n.at, n.preview
      end
      redis.call('HSET', k, b, cjson.encode(o))
    else
      redis.call('HSET', k, b, c)
      redis.call('ZADD', p .. ':npq:' .. a, d, b)
    end"#;

/// KEYS: pending hash, due set; ARGV: field, sent msg_id (padded), sent
/// count, now.
pub(super) const SENT: &str = r#"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local o = cjson.decode(cur)
if o.msg_id <= ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  o.count = math.max(o.count - tonumber(ARGV[3]), 1)
  o.first_at = ARGV[4]
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(o))
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
end
return 1
"#;

/// The script arguments of a notification op, or `None` if `op` is not one.
pub(super) fn notify_args(op: &StateOp) -> Option<[String; 5]> {
    let StateOp::QueueNotification { partition, item } = op else {
        return None;
    };
    let row = serde_json::to_string(&PendingRow::of(item)).expect("rows serialize");
    Some([
        "N".into(),
        partition.to_string(),
        format!("{}|{}", item.user, item.conversation),
        row,
        item.at.to_string(),
    ])
}

fn bad(e: impl std::fmt::Display) -> EngineError {
    EngineError::State(format!("malformed notification row: {e}"))
}

#[async_trait]
impl NotifyStore for RedisState {
    async fn due_notifications(
        &self,
        partition: u32,
        before: u64,
        limit: usize,
    ) -> Result<Vec<PendingNotification>> {
        let fields = self
            .scored_before(&format!("npq:{partition}"), before, limit)
            .await?;
        if fields.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.key(format!("np:{partition}")))
            .arg(&fields)
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        rows.into_iter()
            .flatten()
            .map(|r| serde_json::from_str::<PendingRow>(&r).map_err(bad)?.parse())
            .collect()
    }

    async fn notification_sent(
        &self,
        partition: u32,
        sent: &PendingNotification,
        now: u64,
    ) -> Result<()> {
        let _: i64 = self
            .notification_sent
            .key(self.key(format!("np:{partition}")))
            .key(self.key(format!("npq:{partition}")))
            .arg(format!("{}|{}", sent.user, sent.conversation))
            .arg(format!("{:020}", sent.msg_id.0))
            .arg(sent.count)
            .arg(now)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn put_subscription(&self, user: UserId, sub: StoredSubscription) -> Result<()> {
        redis::cmd("HSET")
            .arg(self.key(format!("ps:{user}")))
            .arg(&sub.id)
            .arg(format!("{}|{}", sub.device, sub.json))
            .query_async::<()>(&mut self.con.clone())
            .await
            .map_err(err)
    }

    async fn remove_subscription(&self, user: UserId, id: &str) -> Result<bool> {
        let n: i64 = redis::cmd("HDEL")
            .arg(self.key(format!("ps:{user}")))
            .arg(id)
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        Ok(n > 0)
    }

    async fn remove_device_subscriptions(&self, user: UserId, device: DeviceId) -> Result<()> {
        for sub in self.subscriptions(user).await? {
            if sub.device == device {
                self.remove_subscription(user, &sub.id).await?;
            }
        }
        Ok(())
    }

    async fn subscriptions(&self, user: UserId) -> Result<Vec<StoredSubscription>> {
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(self.key(format!("ps:{user}")))
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        let mut out = Vec::with_capacity(all.len());
        for (id, v) in all {
            let (device, json) = v.split_once('|').ok_or_else(|| bad("subscription"))?;
            out.push(StoredSubscription {
                id,
                device: DeviceId(device.parse().map_err(bad)?),
                json: json.to_owned(),
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn notify_settings(&self, user: UserId) -> Result<Option<String>> {
        redis::cmd("HGET")
            .arg(self.key(format!("u:{user}")))
            .arg("ntf")
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)
    }

    async fn put_notify_settings(&self, user: UserId, json: &str) -> Result<()> {
        redis::cmd("HSET")
            .arg(self.key(format!("u:{user}")))
            .arg("ntf")
            .arg(json)
            .query_async::<()>(&mut self.con.clone())
            .await
            .map_err(err)
    }
}
