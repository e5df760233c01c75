//! The [`Log`] on Fluvio, through the `fluvio` crate.
//!
//! - Topics are created with `partitions` partitions and the configured
//!   replication factor (`fluvio://HOST:PORT?replication=3`).
//! - Appends go through one producer per partition
//!   (`set_specific_partitioner`), with `Isolation::ReadCommitted`, so the
//!   SPU answers once every in-sync replica has the batch, and
//!   `AtLeastOnce` delivery; an append returns only after every record's
//!   metadata is back. A batch from one producer is sent as one produce
//!   request, so its offsets are contiguous.
//! - Bounds: the start and the epoch from the partition's status on the
//!   SC; the end from the leader SPU (the offset after the last record),
//!   since the SC's status lags. Reads are a stream from an absolute offset
//!   that stops at the high watermark (`disable_continuous`); tails keep a
//!   continuous stream open per partition between calls.
//! - Consumer-group offsets are Fluvio's own consumer offsets
//!   (`{group}` as consumer id). Fluvio stores the last *consumed* offset;
//!   the seam's is the next offset, so they differ by one.
//! - Fluvio has no partition epoch. The epoch here is a hash of the
//!   partition's base offset and the topic's replica spec, which is the
//!   best a client can see; a topic deleted and recreated with the same
//!   spec and an empty history keeps its epoch (documented in
//!   `docs/fluvio.md`).
//!
//! Its contract tests run against a cluster when `PARLEY_FLUVIO_ADDR` is
//! set (`engines/tests/fluvio.rs`); no Fluvio server can be installed on
//! the CI machines, so CI compiles this and tests its pure parts.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fluvio::consumer::{
    ConsumerConfigExt, ConsumerConfigExtBuilder, ConsumerStream, OffsetManagementStrategy,
};
use fluvio::metadata::partition::PartitionSpec;
use fluvio::metadata::topic::TopicSpec as FluvioTopicSpec;
use fluvio::{
    DeliverySemantic, Fluvio, FluvioClusterConfig, Isolation, Offset, RecordKey, RetryPolicy,
    TopicProducerConfigBuilder, TopicProducerPool,
};
use futures::{Stream, StreamExt};
use tokio::sync::Mutex;

use crate::error::{EngineError, Result};
use crate::log::{Appended, Batch, Bounds, Epoch, Log, ReadLimit, Record, TopicSpec};

/// Parley's settings in a `fluvio://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FluvioUrl {
    /// The SC's address, `HOST:PORT`.
    pub addr: String,
    /// Replicas per partition for topics Parley creates.
    pub replication: u32,
}

impl FluvioUrl {
    /// `fluvio://HOST:PORT[?replication=N]` (replication 1 by default).
    pub fn parse(url: &str) -> Result<FluvioUrl> {
        let bad = |why: &str| EngineError::Config(format!("{why} in {url:?}"));
        let rest = url
            .strip_prefix("fluvio://")
            .ok_or_else(|| bad("not a fluvio:// URL"))?;
        let (addr, query) = rest.split_once('?').unwrap_or((rest, ""));
        let addr = addr.trim_end_matches('/');
        let (host, port) = addr.rsplit_once(':').ok_or_else(|| bad("no HOST:PORT"))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad("no HOST:PORT"));
        }
        let mut replication = 1;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("replication", v)) => {
                    replication = v
                        .parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| bad("bad replication"))?
                }
                _ => return Err(bad(&format!("unknown parameter {pair:?}"))),
            }
        }
        Ok(FluvioUrl {
            addr: addr.to_owned(),
            replication,
        })
    }
}

/// Fluvio's stored consumer offset (the last record consumed) for the
/// seam's next offset, and back.
pub fn to_fluvio_consumed(next_offset: u64) -> Option<i64> {
    next_offset.checked_sub(1).map(|o| o as i64)
}

pub fn from_fluvio_consumed(consumed: i64) -> u64 {
    (consumed + 1).max(0) as u64
}

/// An epoch from what a client can see of a partition.
pub fn epoch_of(topic: &str, partition: u32, base_offset: i64, spec: &str) -> Epoch {
    let key = format!("{topic}/{partition}/{base_offset}/{spec}");
    Epoch(xxhash_rust::xxh3::xxh3_64(key.as_bytes()) >> 1)
}

type RecordStream = Pin<Box<dyn Stream<Item = Result<Record>> + Send>>;

/// A tail's open stream, and where it stands.
struct Tail {
    next: u64,
    stream: RecordStream,
    /// A record read past the last batch's byte limit: the next batch's first.
    pending: Option<Record>,
    epoch: Epoch,
    end: u64,
}

/// Up to `limit` records: waits for the first, then takes only what is
/// already there. A record over the byte limit is kept in `pending`.
async fn take(
    stream: &mut RecordStream,
    pending: &mut Option<Record>,
    limit: ReadLimit,
) -> Result<Vec<Record>> {
    let mut records: Vec<Record> = Vec::new();
    let mut bytes = 0;
    while records.len() < limit.max_records.max(1) {
        let r = match pending.take() {
            Some(r) => r,
            None => {
                let item = if records.is_empty() {
                    stream.next().await
                } else {
                    match tokio::time::timeout(Duration::from_millis(5), stream.next()).await {
                        Ok(item) => item,
                        Err(_) => break,
                    }
                };
                match item {
                    Some(r) => r?,
                    None => break,
                }
            }
        };
        if !records.is_empty() && bytes + r.payload.len() > limit.max_bytes {
            *pending = Some(r);
            break;
        }
        bytes += r.payload.len();
        records.push(r);
    }
    Ok(records)
}

/// A consumer of one partition from `start`, which stops at the end unless
/// `continuous`. Every fetch has room for the largest record.
fn consumer(
    topic: &str,
    partition: u32,
    start: Offset,
    continuous: bool,
) -> ConsumerConfigExtBuilder {
    let mut b = ConsumerConfigExtBuilder::default();
    b.topic(topic.to_owned())
        .partition(partition)
        .offset_start(start)
        .disable_continuous(!continuous)
        .max_bytes((crate::log::MAX_RECORD + (64 << 10)) as i32);
    b
}

fn build(b: &ConsumerConfigExtBuilder) -> Result<ConsumerConfigExt> {
    b.build()
        .map_err(|e| EngineError::Config(format!("fluvio consumer: {e}")))
}

fn at(offset: u64) -> Result<Offset> {
    Offset::absolute(offset as i64).map_err(fluvio_err)
}

fn fluvio_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Unavailable(format!("fluvio: {e}"))
}

pub struct FluvioLog {
    client: Fluvio,
    replication: u32,
    producers: Mutex<HashMap<(String, u32), Arc<TopicProducerPool>>>,
    partition_counts: std::sync::RwLock<HashMap<String, u32>>,
    tails: Mutex<HashMap<(String, u32), Tail>>,
    epochs: std::sync::RwLock<HashMap<(String, u32), Epoch>>,
}

impl FluvioLog {
    pub async fn connect(url: &str) -> Result<FluvioLog> {
        let u = FluvioUrl::parse(url)?;
        let config = FluvioClusterConfig::new(u.addr.clone());
        let client = Fluvio::connect_with_config(&config)
            .await
            .map_err(fluvio_err)?;
        Ok(FluvioLog {
            client,
            replication: u.replication,
            producers: Mutex::new(HashMap::new()),
            partition_counts: Default::default(),
            tails: Mutex::new(HashMap::new()),
            epochs: Default::default(),
        })
    }

    async fn topic(&self, topic: &str) -> Result<Option<FluvioTopicSpec>> {
        let admin = self.client.admin().await;
        let found = admin
            .list::<FluvioTopicSpec, _>(vec![topic.to_owned()])
            .await
            .map_err(fluvio_err)?;
        Ok(found.into_iter().find(|m| m.name == topic).map(|m| m.spec))
    }

    async fn producer(&self, topic: &str, partition: u32) -> Result<Arc<TopicProducerPool>> {
        let mut producers = self.producers.lock().await;
        if let Some(p) = producers.get(&(topic.to_owned(), partition)) {
            return Ok(p.clone());
        }
        let config = TopicProducerConfigBuilder::default()
            .set_specific_partitioner(partition)
            .isolation(Isolation::ReadCommitted)
            .delivery_semantic(DeliverySemantic::AtLeastOnce(RetryPolicy::default()))
            .linger(Duration::ZERO)
            // Room for the largest record the seam accepts.
            .max_request_size(crate::log::MAX_RECORD + (64 << 10))
            .batch_size(crate::log::MAX_RECORD + (64 << 10))
            .build()
            .map_err(|e| EngineError::Config(format!("fluvio producer: {e}")))?;
        let producer = Arc::new(
            self.client
                .topic_producer_with_config(topic, config)
                .await
                .map_err(fluvio_err)?,
        );
        producers.insert((topic.to_owned(), partition), producer.clone());
        Ok(producer)
    }

    /// The offset of the partition's last record, as its leader SPU sees it.
    async fn last_offset(&self, topic: &str, partition: u32) -> Result<Option<u64>> {
        let mut stream = self
            .open_stream(topic, partition, Offset::from_end(1), false)
            .await?;
        let mut last = None;
        while let Some(r) = stream.next().await {
            last = Some(r?.offset);
        }
        Ok(last)
    }

    /// Opens a stream of our records from `start`; `continuous` keeps it
    /// open at the end for new records.
    async fn open_stream(
        &self,
        topic: &str,
        partition: u32,
        start: Offset,
        continuous: bool,
    ) -> Result<RecordStream> {
        let config = build(&consumer(topic, partition, start, continuous))?;
        let stream = self
            .client
            .consumer_with_config(config)
            .await
            .map_err(fluvio_err)?;
        Ok(Box::pin(stream.map(|item| {
            let r = item.map_err(fluvio_err)?;
            Ok(Record {
                offset: r.offset() as u64,
                timestamp: r.timestamp().max(0) as u64,
                payload: Bytes::copy_from_slice(r.value()),
            })
        })))
    }

    /// Tails through a stream kept open between calls: a job reading on
    /// from where it stopped costs no new stream, no bounds look-up.
    async fn tail_cached(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        limit: ReadLimit,
    ) -> Result<Batch> {
        let key = (topic.to_owned(), partition);
        let cached = self.tails.lock().await.remove(&key);
        let mut tail = match cached {
            Some(t) if t.next == from => t,
            _ => {
                let bounds = self.bounds(topic, partition).await?;
                bounds.check_read(topic, partition, from)?;
                Tail {
                    next: from,
                    stream: self.open_stream(topic, partition, at(from)?, true).await?,
                    pending: None,
                    epoch: bounds.epoch,
                    end: bounds.end,
                }
            }
        };
        let records = take(&mut tail.stream, &mut tail.pending, limit).await?;
        if let Some(r) = records.last() {
            tail.next = r.offset + 1;
        }
        tail.end = tail.end.max(tail.next);
        let batch = Batch {
            records,
            next_offset: tail.next,
            end: tail.end,
            epoch: tail.epoch,
        };
        self.tails.lock().await.insert(key, tail);
        Ok(batch)
    }

    /// Reads from `from` until `limit` or the high watermark.
    async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        limit: ReadLimit,
    ) -> Result<Batch> {
        let bounds = self.bounds(topic, partition).await?;
        bounds.check_read(topic, partition, from)?;
        if from >= bounds.end {
            return Ok(Batch {
                records: Vec::new(),
                next_offset: from,
                end: bounds.end,
                epoch: bounds.epoch,
            });
        }
        let mut stream = self.open_stream(topic, partition, at(from)?, false).await?;
        let records = take(&mut stream, &mut None, limit).await?;
        let next = records.last().map_or(from, |r| r.offset + 1);
        Ok(Batch {
            records,
            next_offset: next,
            end: bounds.end.max(next),
            epoch: bounds.epoch,
        })
    }
}

/// The Fluvio topic of `spec`: its retention becomes the cluster's own
/// (segments older than `max_age` go; a partition holds at most
/// `max_bytes`), since `Log::trim` cannot drop records on Fluvio.
fn fluvio_topic(spec: &TopicSpec, replication: u32) -> FluvioTopicSpec {
    use fluvio::metadata::topic::{CleanupPolicy, SegmentBasedPolicy, TopicStorageConfig};
    let mut topic = FluvioTopicSpec::new_computed(spec.partitions, replication, None);
    if let Some(age) = spec.retention.max_age {
        topic.set_cleanup_policy(CleanupPolicy::Segment(SegmentBasedPolicy {
            time_in_seconds: age.as_secs().clamp(1, u32::MAX as u64) as u32,
        }));
    }
    if let Some(bytes) = spec.retention.max_bytes {
        topic.set_storage(TopicStorageConfig {
            segment_size: None,
            max_partition_size: Some(bytes),
        });
    }
    topic
}

#[async_trait]
impl Log for FluvioLog {
    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<()> {
        spec.validate()?;
        if let Some(existing) = self.topic(&spec.name).await? {
            let n = existing.partitions();
            if n != spec.partitions {
                return Err(EngineError::TopicMismatch {
                    topic: spec.name.clone(),
                    existing: n,
                    requested: spec.partitions,
                });
            }
            return Ok(());
        }
        let topic = fluvio_topic(spec, self.replication);
        let admin = self.client.admin().await;
        match admin.create(spec.name.clone(), false, topic).await {
            Ok(()) => Ok(()),
            // Created meanwhile by another node: fine if it matches.
            Err(e) => match self.topic(&spec.name).await? {
                Some(t) if t.partitions() == spec.partitions => Ok(()),
                _ => Err(fluvio_err(e)),
            },
        }
    }

    async fn partitions(&self, topic: &str) -> Result<u32> {
        if let Some(n) = self.partition_counts.read().expect("counts").get(topic) {
            return Ok(*n);
        }
        let n = self
            .topic(topic)
            .await?
            .ok_or_else(|| EngineError::UnknownTopic(topic.to_owned()))?
            .partitions();
        self.partition_counts
            .write()
            .expect("counts")
            .insert(topic.to_owned(), n);
        Ok(n)
    }

    async fn append(&self, topic: &str, partition: u32, payloads: Vec<Bytes>) -> Result<Appended> {
        if let Some(p) = payloads.iter().find(|p| p.len() > crate::log::MAX_RECORD) {
            return Err(EngineError::RecordTooLarge {
                size: p.len(),
                limit: crate::log::MAX_RECORD,
            });
        }
        self.check_partition(topic, partition).await?;
        let timestamp = parley_schemas::ids::now_ms();
        if payloads.is_empty() {
            let b = self.bounds(topic, partition).await?;
            return Ok(Appended {
                first_offset: b.end,
                count: 0,
                timestamp,
                epoch: b.epoch,
            });
        }
        // The epoch changes only when the partition is recreated: read once.
        let cached = self
            .epochs
            .read()
            .expect("epochs")
            .get(&(topic.to_owned(), partition))
            .copied();
        let epoch = match cached {
            Some(e) => e,
            None => self.bounds(topic, partition).await?.epoch,
        };
        let producer = self.producer(topic, partition).await?;
        let count = payloads.len() as u32;
        let mut outputs = Vec::with_capacity(payloads.len());
        for p in payloads {
            outputs.push(
                producer
                    .send(RecordKey::NULL, p.to_vec())
                    .await
                    .map_err(fluvio_err)?,
            );
        }
        producer.flush().await.map_err(fluvio_err)?;
        let mut first = u64::MAX;
        for o in outputs {
            let meta = o.wait().await.map_err(fluvio_err)?;
            first = first.min(meta.offset() as u64);
        }
        Ok(Appended {
            first_offset: first,
            count,
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
        self.fetch(topic, partition, from, limit).await
    }

    async fn tail(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        limit: ReadLimit,
    ) -> Result<Batch> {
        self.tail_cached(topic, partition, from, limit).await
    }

    async fn bounds(&self, topic: &str, partition: u32) -> Result<Bounds> {
        self.check_partition(topic, partition).await?;
        let admin = self.client.admin().await;
        let key = format!("{topic}-{partition}");
        let found = admin
            .list::<PartitionSpec, _>(vec![key.clone()])
            .await
            .map_err(fluvio_err)?;
        let p = found
            .into_iter()
            .find(|m| m.name == key)
            .ok_or_else(|| EngineError::Unavailable(format!("fluvio: no status for {key}")))?;
        let start = p.status.base_offset.max(0) as u64;
        let spec = format!("{:?}", p.spec.replicas);
        // The SC's status lags the SPU; the end comes from the SPU itself:
        // the offset after the last record (read from one before the end).
        let end = match self.last_offset(topic, partition).await? {
            Some(last) => last + 1,
            None => start,
        };
        let epoch = epoch_of(topic, partition, p.status.base_offset, &spec);
        self.epochs
            .write()
            .expect("epochs")
            .insert((topic.to_owned(), partition), epoch);
        Ok(Bounds {
            start,
            end: end.max(start),
            epoch,
        })
    }

    async fn commit(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
        next_offset: u64,
    ) -> Result<()> {
        crate::error::check_name(group)?;
        let b = self.bounds(topic, partition).await?;
        b.check_commit(topic, partition, next_offset)?;
        let Some(consumed) = to_fluvio_consumed(next_offset) else {
            return self
                .client
                .delete_consumer_offset(group, (topic.to_owned(), partition))
                .await
                .or(Ok(()));
        };
        // Fluvio commits what a stream consumed: consume that one record.
        let mut config = consumer(topic, partition, at(consumed as u64)?, false);
        config
            .offset_consumer(group.to_owned())
            .offset_strategy(OffsetManagementStrategy::Manual);
        let config = build(&config)?;
        let mut stream = self
            .client
            .consumer_with_config(config)
            .await
            .map_err(fluvio_err)?;
        match stream.next().await {
            Some(Ok(r)) if r.offset() == consumed => {}
            other => {
                return Err(fluvio_err(format!(
                    "could not position {group} at {consumed}: {:?}",
                    other.map(|r| r.map(|r| r.offset()))
                )))
            }
        }
        stream.offset_commit().await.map_err(fluvio_err)?;
        stream.offset_flush().await.map_err(fluvio_err)?;
        Ok(())
    }

    async fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<u64>> {
        crate::error::check_name(group)?;
        let offsets = self.client.consumer_offsets().await.map_err(fluvio_err)?;
        Ok(offsets
            .into_iter()
            .find(|o| o.consumer_id == group && o.topic == topic && o.partition == partition)
            .map(|o| from_fluvio_consumed(o.offset)))
    }
}

#[cfg(test)]
mod tests;
