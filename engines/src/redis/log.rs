//! The [`Log`] on Redis Streams: one stream per partition.
//!
//! Keys (prefix `P`):
//! - `P:t:{topic}` hash: `partitions`
//! - `P:s:{topic}:{p}` stream: entry id `{offset}-1`, fields `t` (append
//!   time, ms) and `d` (the record)
//! - `P:n:{topic}:{p}` string: the next offset
//! - `P:e:{topic}:{p}` string: the partition's epoch, made once at creation
//! - `P:g:{group}` hash: `{topic}:{p}` → `{epoch}:{next offset}`
//!
//! Offsets are dense because one Lua script issues them and adds the
//! entries. Tails block in `XREAD` on a connection of their own (a blocking
//! command would stall the shared multiplexed connection).
//!
//! Durability: an append is acknowledged when Redis has applied it. It
//! survives a crash of Redis only with `appendonly yes` and `appendfsync
//! always`, and a failover only if `WAIT` confirms replicas; see
//! `docs/redis-log.md`. Retention: [`Log::trim`] finds the first entry
//! young enough by binary search over ids (append times only grow) and
//! `XTRIM`s by `MINID` below it.

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::ConnectionManager;
use redis::{Script, Value};

use super::state::redis_err as err;
use crate::error::{check_name, EngineError, Result};
use crate::log::{Appended, Batch, Bounds, Epoch, Log, ReadLimit, Record, TopicSpec};

use crate::log::MAX_RECORD;
/// How long one blocking `XREAD` waits before the tail asks again.
const BLOCK_MS: u64 = 5_000;

/// KEYS: stream, next-offset key. ARGV: time ms, records. Returns the
/// first offset.
/// One round trip per append: checks the partition exists, reads (or, for
/// a wiped partition, makes) its epoch, and appends. KEYS: stream, next
/// offset, epoch, topic meta. ARGV: timestamp, partition, a fresh epoch,
/// then the payloads. Returns {first offset, epoch}, or {-1, 0} for an
/// unknown topic and {-2, partitions} for an unknown partition.
const APPEND: &str = r#"
local parts = redis.call('HGET', KEYS[4], 'partitions')
if not parts then return {-1, '0'} end
if tonumber(ARGV[2]) >= tonumber(parts) then return {-2, parts} end
local e = redis.call('GET', KEYS[3])
if not e then
  redis.call('SET', KEYS[3], ARGV[3])
  e = ARGV[3]
end
local n = tonumber(redis.call('GET', KEYS[2]) or '0')
local first = n
for i = 4, #ARGV do
  redis.call('XADD', KEYS[1], n .. '-1', 't', ARGV[1], 'd', ARGV[i])
  n = n + 1
end
redis.call('SET', KEYS[2], n)
return {first, e}
"#;

/// Creates a topic or checks its partition count. KEYS: meta. ARGV:
/// partitions, prefix, topic. Returns the existing count.
const ENSURE: &str = r#"
local existing = redis.call('HGET', KEYS[1], 'partitions')
if existing then return tonumber(existing) end
redis.call('HSET', KEYS[1], 'partitions', ARGV[1])
local t = redis.call('TIME')
for p = 0, tonumber(ARGV[1]) - 1 do
  redis.call('SET', ARGV[2] .. ':e:' .. ARGV[3] .. ':' .. p, t[1] .. t[2] .. p, 'NX')
end
return tonumber(ARGV[1])
"#;

pub struct RedisLog {
    client: redis::Client,
    con: ConnectionManager,
    wait: Option<ReplicaWait>,
    /// Idle connections for blocking reads.
    blocking: std::sync::Mutex<Vec<redis::aio::MultiplexedConnection>>,
    prefix: String,
    append: Script,
    ensure: Script,
}

fn parse_id(id: &str) -> Option<u64> {
    id.split_once('-').and_then(|(o, _)| o.parse().ok())
}

/// Entries of an XRANGE / XREAD reply: `[[id, [field, value, ...]], ...]`.
fn records(entries: &[Value]) -> Result<Vec<Record>> {
    let bad = || EngineError::State("malformed stream entry".into());
    entries
        .iter()
        .map(|e| {
            let Value::Array(parts) = e else {
                return Err(bad());
            };
            let [Value::BulkString(id), Value::Array(fields)] = parts.as_slice() else {
                return Err(bad());
            };
            let offset = parse_id(std::str::from_utf8(id).map_err(|_| bad())?).ok_or_else(bad)?;
            let (mut timestamp, mut payload) = (0, None);
            for kv in fields.chunks(2) {
                if let [Value::BulkString(k), Value::BulkString(v)] = kv {
                    match k.as_slice() {
                        b"t" => {
                            timestamp = std::str::from_utf8(v)
                                .ok()
                                .and_then(|s| s.parse().ok())
                                .unwrap_or(0)
                        }
                        b"d" => payload = Some(Bytes::copy_from_slice(v)),
                        _ => {}
                    }
                }
            }
            Ok(Record {
                offset,
                timestamp,
                payload: payload.ok_or_else(bad)?,
            })
        })
        .collect()
}

/// Replicas that must confirm an append before it counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaWait {
    pub replicas: u32,
    pub timeout_ms: u64,
}

/// Splits Parley's own query parameters off a Redis URL: `replicas=N`
/// (default 0: no WAIT) and `replica_timeout_ms=T` (default 250).
pub fn split_url(url: &str) -> Result<(String, Option<ReplicaWait>)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None));
    };
    let (mut replicas, mut timeout_ms, mut rest) = (0u32, 250u64, Vec::new());
    let bad = |k: &str, v: &str| EngineError::Config(format!("bad {k}={v:?} in the Redis URL"));
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("replicas", v)) => replicas = v.parse().map_err(|_| bad("replicas", v))?,
            Some(("replica_timeout_ms", v)) => {
                timeout_ms = v.parse().map_err(|_| bad("replica_timeout_ms", v))?
            }
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let wait = (replicas > 0).then_some(ReplicaWait {
        replicas,
        timeout_ms,
    });
    Ok((url, wait))
}

impl RedisLog {
    /// Connects to `url`; `?replicas=N&replica_timeout_ms=T` makes every
    /// append wait for N replicas (Redis `WAIT`) before it is acknowledged.
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisLog> {
        let (url, wait) = split_url(url)?;
        let client = redis::Client::open(url.as_str()).map_err(err)?;
        let con = client.get_connection_manager().await.map_err(err)?;
        Ok(RedisLog {
            client,
            con,
            blocking: Default::default(),
            wait,
            prefix: prefix.to_owned(),
            append: Script::new(APPEND),
            ensure: Script::new(ENSURE),
        })
    }

    fn key(&self, kind: &str, topic: &str, partition: u32) -> String {
        format!("{}:{kind}:{topic}:{partition}", self.prefix)
    }

    async fn epoch(&self, topic: &str, partition: u32) -> Result<Epoch> {
        let e: Option<String> = redis::cmd("GET")
            .arg(self.key("e", topic, partition))
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        // A partition whose epoch key is gone was wiped: a new epoch tells
        // consumers their stored offsets are void.
        let e = match e {
            Some(e) => e,
            None => {
                let fresh = format!("{}", rand::random::<u64>() >> 1);
                let set: Option<String> = redis::cmd("SET")
                    .arg(self.key("e", topic, partition))
                    .arg(&fresh)
                    .arg("NX")
                    .arg("GET")
                    .query_async(&mut self.con.clone())
                    .await
                    .map_err(err)?;
                set.unwrap_or(fresh)
            }
        };
        Ok(Epoch(fold_epoch(&e)))
    }
}

fn fold_epoch(s: &str) -> u64 {
    // FNV-1a: epoch strings come from Redis TIME or random bits.
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[async_trait]
impl Log for RedisLog {
    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<()> {
        spec.validate()?;
        let existing: u32 = self
            .ensure
            .key(format!("{}:t:{}", self.prefix, spec.name))
            .arg(spec.partitions)
            .arg(&self.prefix)
            .arg(&spec.name)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        if existing != spec.partitions {
            return Err(EngineError::TopicMismatch {
                topic: spec.name.clone(),
                existing,
                requested: spec.partitions,
            });
        }
        Ok(())
    }

    async fn partitions(&self, topic: &str) -> Result<u32> {
        let n: Option<u32> = redis::cmd("HGET")
            .arg(format!("{}:t:{topic}", self.prefix))
            .arg("partitions")
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        n.ok_or_else(|| EngineError::UnknownTopic(topic.to_owned()))
    }

    async fn append(&self, topic: &str, partition: u32, payloads: Vec<Bytes>) -> Result<Appended> {
        if let Some(p) = payloads.iter().find(|p| p.len() > MAX_RECORD) {
            return Err(EngineError::RecordTooLarge {
                size: p.len(),
                limit: MAX_RECORD,
            });
        }
        let timestamp = parley_schemas::ids::now_ms();
        if payloads.is_empty() {
            // `bounds` checks the partition and reads the epoch itself.
            let b = self.bounds(topic, partition).await?;
            return Ok(Appended {
                first_offset: b.end,
                count: 0,
                timestamp,
                epoch: b.epoch,
            });
        }
        let mut inv = self.append.prepare_invoke();
        inv.key(self.key("s", topic, partition))
            .key(self.key("n", topic, partition))
            .key(self.key("e", topic, partition))
            .key(format!("{}:t:{topic}", self.prefix))
            .arg(timestamp)
            .arg(partition)
            .arg(rand::random::<u64>() >> 1);
        for p in &payloads {
            inv.arg(p.as_ref());
        }
        let (first, epoch): (i64, String) =
            inv.invoke_async(&mut self.con.clone()).await.map_err(err)?;
        let first = match first {
            -1 => return Err(EngineError::UnknownTopic(topic.to_owned())),
            -2 => {
                return Err(EngineError::UnknownPartition {
                    topic: topic.to_owned(),
                    partition,
                    partitions: epoch.parse().unwrap_or(0),
                })
            }
            f => f as u64,
        };
        let epoch = Epoch(fold_epoch(&epoch));
        if let Some(w) = self.wait {
            // WAIT covers every earlier write of this connection, ours too.
            let reached: u32 = redis::cmd("WAIT")
                .arg(w.replicas)
                .arg(w.timeout_ms)
                .query_async(&mut self.con.clone())
                .await
                .map_err(err)?;
            if reached < w.replicas {
                return Err(EngineError::Unavailable(format!(
                    "the append reached {reached} of {} replicas within {} ms; a failover could lose it, so it is not acknowledged",
                    w.replicas, w.timeout_ms
                )));
            }
        }
        Ok(Appended {
            first_offset: first,
            count: payloads.len() as u32,
            timestamp,
            epoch,
        })
    }

    async fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        limit: ReadLimit,
    ) -> Result<Batch> {
        let b = self.bounds(topic, partition).await?;
        b.check_read(topic, partition, from)?;
        let entries: Vec<Value> = redis::cmd("XRANGE")
            .arg(self.key("s", topic, partition))
            .arg(format!("{from}-1"))
            .arg("+")
            .arg("COUNT")
            .arg(limit.max_records.max(1))
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        let mut out = records(&entries)?;
        // Honour max_bytes, keeping at least one record.
        let mut bytes = 0;
        let keep = out
            .iter()
            .take_while(|r| {
                let fits = bytes == 0 || bytes + r.payload.len() <= limit.max_bytes;
                bytes += r.payload.len();
                fits
            })
            .count();
        out.truncate(keep.max(1).min(out.len()));
        let next_offset = out.last().map_or(from, |r| r.offset + 1);
        Ok(Batch {
            records: out,
            next_offset,
            end: b.end.max(next_offset),
            epoch: b.epoch,
        })
    }

    async fn tail(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        limit: ReadLimit,
    ) -> Result<Batch> {
        loop {
            let batch = self.read(topic, partition, from, limit).await?;
            if !batch.records.is_empty() {
                return Ok(batch);
            }
            // Wait for an entry after `from - 1` on a connection of our own.
            let after = if from == 0 {
                "0-0".to_owned()
            } else {
                format!("{}-1", from - 1)
            };
            // XREAD BLOCK holds its connection: one per waiting tailer,
            // kept for the next wait, with no response timeout shorter
            // than the block.
            let pooled = self.blocking.lock().expect("pool").pop();
            let mut con = match pooled {
                Some(c) => c,
                None => {
                    let cfg = redis::AsyncConnectionConfig::new().set_response_timeout(Some(
                        std::time::Duration::from_millis(BLOCK_MS + 5_000),
                    ));
                    self.client
                        .get_multiplexed_async_connection_with_config(&cfg)
                        .await
                        .map_err(err)?
                }
            };
            let _: Value = redis::cmd("XREAD")
                .arg("BLOCK")
                .arg(BLOCK_MS)
                .arg("COUNT")
                .arg(1)
                .arg("STREAMS")
                .arg(self.key("s", topic, partition))
                .arg(after)
                .query_async(&mut con)
                .await
                .map_err(err)?;
            self.blocking.lock().expect("pool").push(con);
        }
    }

    async fn bounds(&self, topic: &str, partition: u32) -> Result<Bounds> {
        self.check_partition(topic, partition).await?;
        let epoch = self.epoch(topic, partition).await?;
        let (next, first): (Option<u64>, Vec<Value>) = redis::pipe()
            .cmd("GET")
            .arg(self.key("n", topic, partition))
            .cmd("XRANGE")
            .arg(self.key("s", topic, partition))
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        let end = next.unwrap_or(0);
        let start = records(&first)?.first().map_or(end, |r| r.offset);
        Ok(Bounds { start, end, epoch })
    }

    async fn trim(&self, topic: &str, partition: u32, below: u64, older_than: u64) -> Result<u64> {
        let b = self.bounds(topic, partition).await?;
        let stream = self.key("s", topic, partition);
        // The first offset in [start, below) appended at or after
        // `older_than`: everything before it may go.
        let (mut lo, mut hi) = (b.start, below.min(b.end));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let id = format!("{mid}-1");
            let found: Vec<Value> = redis::cmd("XRANGE")
                .arg(&stream)
                .arg(&id)
                .arg("+")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut self.con.clone())
                .await
                .map_err(err)?;
            match records(&found)?.first() {
                Some(r) if r.timestamp < older_than => lo = (r.offset + 1).min(hi),
                _ => hi = mid,
            }
        }
        if lo > b.start {
            let _: i64 = redis::cmd("XTRIM")
                .arg(&stream)
                .arg("MINID")
                .arg(format!("{lo}-1"))
                .query_async(&mut self.con.clone())
                .await
                .map_err(err)?;
        }
        Ok(self.bounds(topic, partition).await?.start)
    }

    async fn compact(
        &self,
        topic: &str,
        partition: u32,
        doomed: std::collections::BTreeSet<u64>,
    ) -> Result<u64> {
        let stream = self.key("s", topic, partition);
        let ids: Vec<String> = doomed.iter().map(|o| format!("{o}-1")).collect();
        let mut dropped = 0;
        for chunk in ids.chunks(1000) {
            let n: u64 = redis::cmd("XDEL")
                .arg(&stream)
                .arg(chunk)
                .query_async(&mut self.con.clone())
                .await
                .map_err(err)?;
            dropped += n;
        }
        Ok(dropped)
    }

    async fn commit(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
        next_offset: u64,
    ) -> Result<()> {
        check_name(group)?;
        let b = self.bounds(topic, partition).await?;
        b.check_commit(topic, partition, next_offset)?;
        let _: () = redis::cmd("HSET")
            .arg(format!("{}:g:{group}", self.prefix))
            .arg(format!("{topic}:{partition}"))
            .arg(format!("{}:{next_offset}", b.epoch.0))
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<u64>> {
        check_name(group)?;
        let epoch = self.bounds(topic, partition).await?.epoch;
        let v: Option<String> = redis::cmd("HGET")
            .arg(format!("{}:g:{group}", self.prefix))
            .arg(format!("{topic}:{partition}"))
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        Ok(v.and_then(|v| {
            let (e, o) = v.split_once(':')?;
            (e.parse::<u64>().ok()? == epoch.0)
                .then(|| o.parse().ok())
                .flatten()
        }))
    }
}
