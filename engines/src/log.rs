//! The log seam: a partitioned log of named topics, N partitions each.
//!
//! Offsets are dense per partition: the first record is `start`, the next
//! append gets `end`, and every offset in `[start, end)` holds one record
//! (`start` moves up only by retention). Each partition has an [`Epoch`]
//! that changes when the partition is wiped or recreated, so a consumer
//! that stored `(epoch, offset)` can tell its offset no longer means what
//! it did.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{check_name, EngineError, Result};

/// The most partitions a topic may have.
pub const MAX_PARTITIONS: u32 = 4096;

/// The largest record the networked logs accept (Redis, Fluvio).
pub const MAX_RECORD: usize = 4 << 20;

/// Identifies one incarnation of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Epoch(pub u64);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: u64,
    /// When the log accepted the record, ms since the Unix epoch.
    pub timestamp: u64,
    pub payload: Bytes,
}

/// Retention per topic; `None` keeps forever. Applied per partition, to
/// whole segments, so a partition may keep a little more than the limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub max_bytes: Option<u64>,
    pub max_age: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: u32,
    pub retention: Retention,
}

impl TopicSpec {
    /// A valid name and 1..=[`MAX_PARTITIONS`] partitions.
    pub fn validate(&self) -> Result<()> {
        check_name(&self.name)?;
        if self.partitions == 0 || self.partitions > MAX_PARTITIONS {
            return Err(EngineError::TopicMismatch {
                topic: self.name.clone(),
                existing: 0,
                requested: self.partitions,
            });
        }
        Ok(())
    }

    pub fn new(name: impl Into<String>, partitions: u32) -> Self {
        TopicSpec {
            name: name.into(),
            partitions,
            retention: Retention::default(),
        }
    }

    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }
}

/// The answer to an append: the batch holds offsets
/// `first_offset .. first_offset + count`, all durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub first_offset: u64,
    pub count: u32,
    pub timestamp: u64,
    pub epoch: Epoch,
}

/// How much one read may return. At least one record is returned when one
/// is available, even if it alone exceeds `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimit {
    pub max_records: usize,
    pub max_bytes: usize,
}

impl Default for ReadLimit {
    fn default() -> Self {
        ReadLimit {
            max_records: 1024,
            max_bytes: 1 << 20,
        }
    }
}

impl ReadLimit {
    pub fn records(n: usize) -> Self {
        ReadLimit {
            max_records: n,
            ..ReadLimit::default()
        }
    }
}

/// The offsets a partition holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub start: u64,
    pub end: u64,
    pub epoch: Epoch,
}

impl Bounds {
    /// A read may start anywhere in `start..=end`.
    pub fn check_read(&self, topic: &str, partition: u32, offset: u64) -> Result<()> {
        if offset < self.start || offset > self.end {
            return Err(self.out_of_range(topic, partition, offset));
        }
        Ok(())
    }

    /// A consumer may store any position up to `end`.
    pub fn check_commit(&self, topic: &str, partition: u32, offset: u64) -> Result<()> {
        if offset > self.end {
            return Err(self.out_of_range(topic, partition, offset));
        }
        Ok(())
    }

    fn out_of_range(&self, topic: &str, partition: u32, requested: u64) -> EngineError {
        EngineError::OffsetOutOfRange {
            topic: topic.to_owned(),
            partition,
            requested,
            start: self.start,
            end: self.end,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub records: Vec<Record>,
    /// Where the next read should start.
    pub next_offset: u64,
    /// The end of the partition when the read was made.
    pub end: u64,
    pub epoch: Epoch,
}

#[async_trait]
pub trait Log: Send + Sync + 'static {
    /// Creates the topic, or checks that an existing one has the same
    /// partition count (retention is updated in place).
    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<()>;

    /// The partition count of a topic.
    async fn partitions(&self, topic: &str) -> Result<u32>;

    /// `Err` while a partition takes no appends this process could mend
    /// by itself (the embedded log after a failed write or fsync, a full
    /// disk, until it mends); for `/readyz`. Servers answer for
    /// themselves: the default is healthy.
    fn healthy(&self) -> Result<()> {
        Ok(())
    }

    /// `Ok` if `topic` has `partition`; else `UnknownTopic` or
    /// `UnknownPartition`.
    async fn check_partition(&self, topic: &str, partition: u32) -> Result<()> {
        let n = self.partitions(topic).await?;
        if partition >= n {
            return Err(EngineError::UnknownPartition {
                topic: topic.to_owned(),
                partition,
                partitions: n,
            });
        }
        Ok(())
    }

    /// Appends a batch; returns only once every record is durable, with
    /// consecutive offsets in the order given.
    async fn append(&self, topic: &str, partition: u32, payloads: Vec<Bytes>) -> Result<Appended>;

    /// Reads from `from` without waiting; empty when `from == end`. An
    /// offset outside `[start, end]` is `OffsetOutOfRange`.
    async fn read(&self, topic: &str, partition: u32, from: u64, limit: ReadLimit)
        -> Result<Batch>;

    /// As [`read`](Self::read), but waits until a record at or after `from`
    /// exists. Waiting is a notification, not a polling loop; cancel it by
    /// dropping the future.
    async fn tail(&self, topic: &str, partition: u32, from: u64, limit: ReadLimit)
        -> Result<Batch>;

    async fn bounds(&self, topic: &str, partition: u32) -> Result<Bounds>;

    /// Drops records below `below` that were appended before `older_than`
    /// (ms since the Unix epoch): the caller's word that every consumer
    /// has passed them. A log may keep a little more (whole segments);
    /// it never drops a record at or above `below`. Returns the new start.
    /// The default keeps everything: logs whose servers apply their own
    /// retention (Fluvio's topic settings) need nothing here.
    async fn trim(&self, topic: &str, partition: u32, below: u64, older_than: u64) -> Result<u64> {
        let _ = (below, older_than);
        Ok(self.bounds(topic, partition).await?.start)
    }

    /// Drops the records at the `doomed` offsets, which every consumer
    /// has passed and a later record made redundant (the caller's word:
    /// log compaction); every other record keeps its offset, so readers
    /// see gaps. A log may keep some of them (the embedded log keeps its
    /// active segment and each segment's last record). Returns how many
    /// went. The default keeps everything: Fluvio cannot delete single
    /// records.
    async fn compact(
        &self,
        topic: &str,
        partition: u32,
        doomed: std::collections::BTreeSet<u64>,
    ) -> Result<u64> {
        let _ = (topic, partition, doomed);
        Ok(0)
    }

    /// Stores a consumer group's position (the next offset to read).
    async fn commit(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
        next_offset: u64,
    ) -> Result<()>;

    /// The stored position, or `None` if none was stored for the current
    /// epoch of the partition.
    async fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<u64>>;
}
