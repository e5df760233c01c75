//! The [`Cluster`] seam on Redis. Keys, under prefix `P`:
//! - `P:mem:{group}` hash: node → `{expires_ms}|{addr}`
//! - `P:lease:{name}` string: the holder's node id, with a PX expiry
//! - `P:s:{user}` hash: node → expires_ms (the session registry); the key
//!   itself expires with its newest entry, so a dead edge leaves nothing
//! - channel `P:node:{node}`: the node's mailbox (pub/sub)
//!
//! Expiries are judged by Redis's own clock (`TIME` inside the scripts).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use parley_schemas::ids::UserId;
use redis::aio::ConnectionManager;
use redis::Script;
use tokio::sync::mpsc;

use super::state::redis_err as err;
use crate::cluster::{Cluster, Mail, Member, MAILBOX};
use crate::error::Result;

const NOW: &str =
    "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)\n";

/// ARGV: key, node, ttl_ms, addr; node '' only reads. Returns the live
/// `node|addr` list.
const HEARTBEAT: &str = r#"
local k, node, ttl, addr = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
if node ~= '' then redis.call('HSET', k, node, (now + ttl) .. '|' .. addr) end
local all = redis.call('HGETALL', k)
local live = {}
for i = 1, #all, 2 do
  local v = all[i + 1]
  local bar = string.find(v, '|', 1, true)
  if tonumber(string.sub(v, 1, bar - 1)) > now then
    table.insert(live, all[i] .. '|' .. string.sub(v, bar + 1))
  else
    redis.call('HDEL', k, all[i])
  end
end
if node ~= '' then redis.call('PEXPIRE', k, ttl * 10) end
return live
"#;

/// ARGV: key, node, ttl_ms. 1 when `node` holds the lease afterwards.
const LEASE: &str = r#"
local k, node, ttl = ARGV[1], ARGV[2], ARGV[3]
local cur = redis.call('GET', k)
if cur == false then
  redis.call('SET', k, node, 'PX', ttl)
  return 1
elseif cur == node then
  redis.call('PEXPIRE', k, ttl)
  return 1
end
return 0
"#;

const RELEASE: &str = r#"
if redis.call('GET', ARGV[1]) == ARGV[2] then redis.call('DEL', ARGV[1]) end
return 0
"#;

/// ARGV: key, node, ttl_ms.
const SESSION_ADD: &str = r#"
local k, node, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
redis.call('HSET', k, node, now + ttl)
if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
return 0
"#;

/// ARGV: the keys. Returns, per key, the live nodes joined by ','.
const SESSION_NODES: &str = r#"
local out = {}
for i = 1, #ARGV do
  local all = redis.call('HGETALL', ARGV[i])
  local live = {}
  for j = 1, #all, 2 do
    if tonumber(all[j + 1]) > now then table.insert(live, all[j]) end
  end
  out[i] = table.concat(live, ',')
end
return out
"#;

pub struct RedisCluster {
    client: redis::Client,
    con: ConnectionManager,
    prefix: String,
    heartbeat: Script,
    lease: Script,
    release: Script,
    session_add: Script,
    session_nodes: Script,
}

fn timed(body: &str) -> Script {
    Script::new(&format!("{NOW}{body}"))
}

fn ms(d: Duration) -> u64 {
    d.as_millis().max(1) as u64
}

impl RedisCluster {
    /// Connects to `url`; every key and channel starts with `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisCluster> {
        let client = redis::Client::open(url).map_err(err)?;
        let con = ConnectionManager::new(client.clone()).await.map_err(err)?;
        Ok(RedisCluster {
            client,
            con,
            prefix: prefix.to_owned(),
            heartbeat: timed(HEARTBEAT),
            lease: Script::new(LEASE),
            release: Script::new(RELEASE),
            session_add: timed(SESSION_ADD),
            session_nodes: timed(SESSION_NODES),
        })
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{}", self.prefix, rest)
    }

    /// Reads the live members of `group`, after heartbeating `me` if given.
    async fn members_of(
        &self,
        group: &str,
        me: Option<(&Member, Duration)>,
    ) -> Result<Vec<Member>> {
        let (node, ttl, addr) = match me {
            Some((m, ttl)) => (m.node.to_string(), ms(ttl), m.addr.as_str()),
            None => (String::new(), 0, ""),
        };
        let live: Vec<String> = self
            .heartbeat
            .arg(self.key(&format!("mem:{group}")))
            .arg(node)
            .arg(ttl)
            .arg(addr)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        let mut members: Vec<Member> = live
            .iter()
            .filter_map(|s| {
                let (node, addr) = s.split_once('|')?;
                Some(Member {
                    node: node.parse().ok()?,
                    addr: addr.to_string(),
                })
            })
            .collect();
        members.sort_by_key(|m| m.node);
        Ok(members)
    }

    fn channel(&self, node: u32) -> String {
        self.key(&format!("node:{node}"))
    }
}

#[async_trait]
impl Cluster for RedisCluster {
    async fn heartbeat(&self, group: &str, member: &Member, ttl: Duration) -> Result<Vec<Member>> {
        self.members_of(group, Some((member, ttl))).await
    }

    async fn members(&self, group: &str) -> Result<Vec<Member>> {
        self.members_of(group, None).await
    }

    async fn leave(&self, group: &str, node: u32) -> Result<()> {
        redis::cmd("HDEL")
            .arg(self.key(&format!("mem:{group}")))
            .arg(node)
            .query_async::<()>(&mut self.con.clone())
            .await
            .map_err(err)
    }

    async fn lease(&self, name: &str, node: u32, ttl: Duration) -> Result<bool> {
        let held: i64 = self
            .lease
            .arg(self.key(&format!("lease:{name}")))
            .arg(node)
            .arg(ms(ttl))
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        Ok(held == 1)
    }

    async fn release(&self, name: &str, node: u32) -> Result<()> {
        self.release
            .arg(self.key(&format!("lease:{name}")))
            .arg(node)
            .invoke_async::<()>(&mut self.con.clone())
            .await
            .map_err(err)
    }

    async fn holder(&self, name: &str) -> Result<Option<u32>> {
        let v: Option<String> = redis::cmd("GET")
            .arg(self.key(&format!("lease:{name}")))
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        Ok(v.and_then(|v| v.parse().ok()))
    }

    async fn session_add(&self, user: UserId, node: u32, ttl: Duration) -> Result<()> {
        self.session_add
            .arg(self.key(&format!("s:{user}")))
            .arg(node)
            .arg(ms(ttl))
            .invoke_async::<()>(&mut self.con.clone())
            .await
            .map_err(err)
    }

    async fn session_remove(&self, user: UserId, node: u32) -> Result<()> {
        redis::cmd("HDEL")
            .arg(self.key(&format!("s:{user}")))
            .arg(node)
            .query_async::<()>(&mut self.con.clone())
            .await
            .map_err(err)
    }

    async fn session_nodes(&self, users: &[UserId]) -> Result<Vec<Vec<u32>>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = self.session_nodes.prepare_invoke();
        for u in users {
            inv.arg(self.key(&format!("s:{u}")));
        }
        let found: Vec<String> = inv.invoke_async(&mut self.con.clone()).await.map_err(err)?;
        Ok(found
            .iter()
            .map(|s| {
                let mut nodes: Vec<u32> = s.split(',').filter_map(|n| n.parse().ok()).collect();
                nodes.sort_unstable();
                nodes
            })
            .collect())
    }

    async fn publish(&self, node: u32, payload: Bytes) -> Result<()> {
        redis::cmd("PUBLISH")
            .arg(self.channel(node))
            .arg(payload.as_ref())
            .query_async::<()>(&mut self.con.clone())
            .await
            .map_err(err)
    }

    async fn subscribe(&self, node: u32) -> Result<mpsc::Receiver<Mail>> {
        let (tx, rx) = mpsc::channel(MAILBOX);
        let channel = self.channel(node);
        // The first subscription fails loudly; later ones are retried.
        let mut pubsub = self.client.get_async_pubsub().await.map_err(err)?;
        pubsub.subscribe(&channel).await.map_err(err)?;
        let client = self.client.clone();
        tokio::spawn(async move {
            loop {
                let mut messages = pubsub.into_on_message();
                while let Some(msg) = messages.next().await {
                    let mail = Mail::Message(Bytes::copy_from_slice(msg.get_payload_bytes()));
                    if tx.send(mail).await.is_err() {
                        return;
                    }
                }
                // The connection dropped: subscribe again, then say that
                // something may have been missed meanwhile.
                pubsub = loop {
                    if tx.is_closed() {
                        return;
                    }
                    if let Ok(mut p) = client.get_async_pubsub().await {
                        if p.subscribe(&channel).await.is_ok() {
                            break p;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                };
                tracing::warn!(channel, "mailbox subscription restored");
                if tx.send(Mail::Gap).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }
}
