//! The embedded log engine: one directory per partition of CRC-framed
//! segment files, group commit with one fsync per batch of appends, and
//! torn-tail truncation on recovery.
//!
//! Root layout:
//! ```text
//! <root>/topics/<topic>/topic.json        partition count and retention
//! <root>/topics/<topic>/<p>/EPOCH         the partition's incarnation
//! <root>/topics/<topic>/<p>/<base>.log    segments (see `frame`)
//! <root>/topics/<topic>/<p>/<base>.idx    sparse index of a sealed segment
//! <root>/groups/<group>/<topic>.<p>       committed offset (epoch, offset, crc)
//! ```
//! Why a segment log rather than redb or fjall underneath: see
//! ARCHITECTURE.md ("The embedded log"), with the measurements in
//! docs/benchmarks.md.

mod frame;
mod partition;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{check_name, EngineError, Result};
use crate::log::{Appended, Batch, Bounds, Epoch, Log, ReadLimit, Retention, TopicSpec};
use partition::{write_atomic, Partition};

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// After `fdatasync`: survives a crash of the machine.
    #[default]
    Fsync,
    /// After the write reaches the OS page cache: survives a crash of the
    /// process, not of the machine. For benchmarks only, and logged as such.
    Os,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentLogOptions {
    pub durability: Durability,
    /// A segment is sealed once it holds this many bytes.
    pub segment_bytes: u64,
    /// Bytes between sparse index entries.
    pub index_interval: usize,
    pub max_record_bytes: usize,
    /// Bytes a read fetches from the file at once.
    pub read_chunk: usize,
}

impl Default for SegmentLogOptions {
    fn default() -> Self {
        SegmentLogOptions {
            durability: Durability::Fsync,
            segment_bytes: 64 << 20,
            index_interval: 4096,
            max_record_bytes: 4 << 20,
            read_chunk: 64 << 10,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct TopicMeta {
    partitions: u32,
    retention_bytes: Option<u64>,
    retention_ms: Option<u64>,
}

struct Topic {
    partitions: Vec<Partition>,
}

impl Topic {
    fn partition(&self, name: &str, partition: u32) -> Result<&Partition> {
        self.partitions
            .get(partition as usize)
            .ok_or_else(|| EngineError::UnknownPartition {
                topic: name.to_owned(),
                partition,
                partitions: self.partitions.len() as u32,
            })
    }
}

/// The embedded [`Log`]: see the module docs.
pub struct SegmentLog {
    /// Held open with an exclusive `flock`: two instances writing the same
    /// files would corrupt them.
    _lock: fs::File,
    root: PathBuf,
    opts: SegmentLogOptions,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
}

impl SegmentLog {
    /// Opens (creating if needed) a log under `root`, recovering every
    /// partition found there.
    pub fn open(root: impl AsRef<Path>, opts: SegmentLogOptions) -> Result<SegmentLog> {
        let root = root.as_ref().to_path_buf();
        if opts.durability == Durability::Os {
            tracing::warn!(root = %root.display(), "durability = \"os\": appends are acknowledged before fsync; a machine crash can lose them");
        }
        let topics_dir = root.join("topics");
        fs::create_dir_all(&topics_dir).map_err(|e| EngineError::io(topics_dir.display(), e))?;
        fs::create_dir_all(root.join("groups")).map_err(|e| EngineError::io(root.display(), e))?;
        let log = SegmentLog {
            _lock: lock_dir(&root)?,
            root,
            opts,
            topics: RwLock::new(HashMap::new()),
        };
        for entry in
            fs::read_dir(&topics_dir).map_err(|e| EngineError::io(topics_dir.display(), e))?
        {
            let entry = entry.map_err(|e| EngineError::io(topics_dir.display(), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta_path = entry.path().join("topic.json");
            let Ok(raw) = fs::read(&meta_path) else {
                continue; // a topic whose creation never finished
            };
            let meta: TopicMeta =
                serde_json::from_slice(&raw).map_err(|e| EngineError::Corrupt {
                    path: meta_path.display().to_string(),
                    position: 0,
                    reason: e.to_string(),
                })?;
            let topic = log.open_topic(&name, &meta)?;
            log.topics
                .write()
                .expect("topics lock")
                .insert(name, Arc::new(topic));
        }
        Ok(log)
    }

    pub fn options(&self) -> SegmentLogOptions {
        self.opts
    }

    fn open_topic(&self, name: &str, meta: &TopicMeta) -> Result<Topic> {
        let retention = retention_of(meta);
        let partitions = (0..meta.partitions)
            .map(|p| {
                let dir = self.root.join("topics").join(name).join(p.to_string());
                Partition::open(name, p, dir, retention, self.opts)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Topic { partitions })
    }

    fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.topics
            .read()
            .expect("topics lock")
            .get(name)
            .cloned()
            .ok_or_else(|| EngineError::UnknownTopic(name.to_owned()))
    }

    fn with_partition<T>(
        &self,
        topic: &str,
        partition: u32,
        f: impl FnOnce(&Partition) -> T,
    ) -> Result<T> {
        let t = self.topic(topic)?;
        Ok(f(t.partition(topic, partition)?))
    }

    fn shared(&self, topic: &str, partition: u32) -> Result<Arc<partition::Shared>> {
        self.with_partition(topic, partition, |p| p.shared.clone())
    }

    /// Records decoded by reads of one partition since it was opened: lets
    /// tests assert that a read costs what it returns, not the partition.
    pub fn records_scanned(&self, topic: &str, partition: u32) -> Result<u64> {
        self.with_partition(topic, partition, |p| {
            p.shared
                .records_scanned
                .load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    fn group_path(&self, group: &str, topic: &str, partition: u32) -> Result<PathBuf> {
        check_name(group)?;
        check_name(topic)?;
        Ok(self
            .root
            .join("groups")
            .join(group)
            .join(format!("{topic}.{partition}")))
    }
}

fn lock_dir(root: &Path) -> Result<fs::File> {
    use std::os::fd::AsRawFd;
    let path = root.join("LOCK");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| EngineError::io(path.display(), e))?;
    // SAFETY: flock on a descriptor this function owns; no memory involved.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(EngineError::Unavailable(format!(
            "{} is in use by another process (or another open log in this one)",
            root.display()
        )));
    }
    Ok(f)
}

fn retention_of(meta: &TopicMeta) -> Retention {
    Retention {
        max_bytes: meta.retention_bytes,
        max_age: meta.retention_ms.map(std::time::Duration::from_millis),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| EngineError::Closed)?
}

#[async_trait]
impl Log for SegmentLog {
    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<()> {
        spec.validate()?;
        let meta = TopicMeta {
            partitions: spec.partitions,
            retention_bytes: spec.retention.max_bytes,
            retention_ms: spec.retention.max_age.map(|d| d.as_millis() as u64),
        };
        let dir = self.root.join("topics").join(&spec.name);
        let raw = serde_json::to_vec(&meta).expect("topic meta serializes");
        // Creation is rare; holding the lock across it keeps two callers
        // from creating the same topic twice.
        let mut topics = self.topics.write().expect("topics lock");
        if let Some(existing) = topics.get(&spec.name) {
            let n = existing.partitions.len() as u32;
            if n != spec.partitions {
                return Err(EngineError::TopicMismatch {
                    topic: spec.name.clone(),
                    existing: n,
                    requested: spec.partitions,
                });
            }
            for p in &existing.partitions {
                p.set_retention(spec.retention);
            }
            return write_atomic(&dir.join("topic.json"), &raw);
        }
        fs::create_dir_all(&dir).map_err(|e| EngineError::io(dir.display(), e))?;
        let topic = self.open_topic(&spec.name, &meta)?;
        // topic.json last: a topic is only visible once all partitions exist.
        write_atomic(&dir.join("topic.json"), &raw)?;
        topics.insert(spec.name.clone(), Arc::new(topic));
        Ok(())
    }

    async fn partitions(&self, topic: &str) -> Result<u32> {
        Ok(self.topic(topic)?.partitions.len() as u32)
    }

    fn healthy(&self) -> Result<()> {
        let topics = self.topics.read().expect("topics lock");
        match topics
            .values()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.poisoned())
        {
            Some(p) => Err(EngineError::Poisoned(p.shared.name.clone())),
            None => Ok(()),
        }
    }

    async fn append(&self, topic: &str, partition: u32, payloads: Vec<Bytes>) -> Result<Appended> {
        let t = self.topic(topic)?;
        let p = t.partition(topic, partition)?;
        if payloads.is_empty() {
            let b = p.shared.bounds();
            return Ok(Appended {
                first_offset: b.end,
                count: 0,
                timestamp: 0,
                epoch: b.epoch,
            });
        }
        p.append(payloads).await
    }

    async fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        limit: ReadLimit,
    ) -> Result<Batch> {
        let shared = self.shared(topic, partition)?;
        blocking(move || shared.read(from, limit)).await
    }

    async fn tail(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        limit: ReadLimit,
    ) -> Result<Batch> {
        let shared = self.shared(topic, partition)?;
        let mut end = shared.end.subscribe();
        loop {
            let e = *end.borrow_and_update();
            if e > from || from > e {
                // Data to read, or an offset past the end: `read` answers both.
                break;
            }
            end.changed().await.map_err(|_| EngineError::Closed)?;
        }
        blocking(move || shared.read(from, limit)).await
    }

    async fn bounds(&self, topic: &str, partition: u32) -> Result<Bounds> {
        self.with_partition(topic, partition, |p| p.shared.bounds())
    }

    async fn trim(&self, topic: &str, partition: u32, below: u64, older_than: u64) -> Result<u64> {
        let shared = self.shared(topic, partition)?;
        blocking(move || Ok(shared.trim(below, older_than))).await
    }

    async fn compact(
        &self,
        topic: &str,
        partition: u32,
        doomed: std::collections::BTreeSet<u64>,
    ) -> Result<u64> {
        let shared = self.shared(topic, partition)?;
        blocking(move || shared.compact(&doomed)).await
    }

    async fn commit(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
        next_offset: u64,
    ) -> Result<()> {
        let path = self.group_path(group, topic, partition)?;
        let bounds = self.bounds(topic, partition).await?;
        bounds.check_commit(topic, partition, next_offset)?;
        blocking(move || {
            let dir = path.parent().expect("group dir");
            fs::create_dir_all(dir).map_err(|e| EngineError::io(dir.display(), e))?;
            let mut data = Vec::with_capacity(20);
            data.extend_from_slice(&bounds.epoch.0.to_le_bytes());
            data.extend_from_slice(&next_offset.to_le_bytes());
            data.extend_from_slice(&crc32c::crc32c(&data).to_le_bytes());
            write_atomic(&path, &data)
        })
        .await
    }

    async fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<u64>> {
        let path = self.group_path(group, topic, partition)?;
        let epoch = self.bounds(topic, partition).await?.epoch;
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(EngineError::io(path.display(), e)),
        };
        let valid = data.len() == 20
            && crc32c::crc32c(&data[..16])
                == u32::from_le_bytes(data[16..20].try_into().expect("4 bytes"));
        if !valid {
            return Err(EngineError::Corrupt {
                path: path.display().to_string(),
                position: 0,
                reason: "committed offset fails its checksum".into(),
            });
        }
        let stored_epoch = Epoch(u64::from_le_bytes(data[..8].try_into().expect("8 bytes")));
        // An offset from an earlier incarnation of the partition means nothing now.
        Ok((stored_epoch == epoch)
            .then(|| u64::from_le_bytes(data[8..16].try_into().expect("8 bytes"))))
    }
}
