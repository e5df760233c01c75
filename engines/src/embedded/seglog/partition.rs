//! One partition: a directory of segment files, a writer thread that does
//! group commit, and lock-light readers.
//!
//! Directory: `EPOCH` (the partition's incarnation), `<base>.log` segments
//! named by their first offset (20 digits, so names sort), and `<base>.idx`
//! sparse indexes written when a segment is sealed.
//!
//! Writes are pipelined over two threads. The writer takes every request
//! waiting, writes them as one buffer and hands them to the syncer; the
//! syncer takes everything written since its last fsync, fsyncs once, then
//! publishes the new end and answers all of it. While one fsync runs, the
//! writer is already writing what arrived meanwhile, so each fsync covers
//! every append that came during the one before (group commit), and the
//! disk is never idle while requests wait.
//!
//! Reads: a sparse in-memory index (an entry per `index_interval` bytes)
//! finds the byte position of an offset, so a read costs O(log segments +
//! log index + records returned), never a scan of the partition.
//!
//! Here: the partition's handle and its readers. `recover`: opening it
//! from disk; `writer`: the writer and syncer threads; `mend`: a poisoned
//! partition mended in place.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use super::frame::{self, Decoded};
use super::{Durability, SegmentLogOptions};
use crate::error::{EngineError, Result};
use crate::log::{Appended, Batch, Bounds, Epoch, ReadLimit, Record, Retention};

mod compact;
mod mend;
mod recover;
mod writer;

pub(crate) use recover::write_atomic;
use recover::{corrupt, load_or_create_epoch, recover, write_index};
use writer::{sync_loop, Writer};

const IDX_MAGIC: u32 = 0x5044_4958; // "PDIX"
/// How long the writer sleeps, when idle, between age-retention checks.
const RETENTION_TICK: Duration = Duration::from_secs(30);
/// One group commit writes at most this much before it fsyncs and answers.
const MAX_COMMIT_BYTES: usize = 16 << 20;

struct Segment {
    base: u64,
    path: PathBuf,
    file: Arc<File>,
    /// (offset, byte position), ascending; always starts with (base, 0).
    index: Vec<(u64, u64)>,
    /// Durable bytes.
    size: u64,
    /// One past the last offset in the segment.
    next: u64,
    last_ts: u64,
}

impl Segment {
    fn position_of(&self, offset: u64) -> (u64, u64) {
        let i = self.index.partition_point(|&(o, _)| o <= offset);
        self.index[i.saturating_sub(1)]
    }
}

pub(crate) struct Shared {
    pub topic: String,
    pub partition: u32,
    /// `topic/partition`, for logs.
    pub name: String,
    dir: PathBuf,
    pub epoch: Epoch,
    segs: RwLock<Vec<Segment>>,
    pub end: watch::Sender<u64>,
    poisoned: AtomicBool,
    retention: Mutex<Retention>,
    opts: SegmentLogOptions,
    /// Records decoded by reads, for tests that assert read cost.
    pub records_scanned: AtomicU64,
    /// Held while compaction rewrites segments, and while segments are
    /// dropped.
    compacting: Mutex<()>,
}

struct Req {
    payloads: Vec<Bytes>,
    reply: oneshot::Sender<Result<Appended>>,
}

type Reply = (oneshot::Sender<Result<Appended>>, Appended);

/// Written to the page cache, waiting for the syncer's fsync; or, with
/// `barrier`, a marker the syncer answers once everything before it is done.
struct Written {
    file: Arc<File>,
    end: u64,
    replies: Vec<Reply>,
    barrier: Option<mpsc::Sender<()>>,
}

/// A handle to an open partition. Dropping the last handle lets the writer
/// thread finish what is queued and exit.
pub(crate) struct Partition {
    pub shared: Arc<Shared>,
    tx: mpsc::Sender<Req>,
}

fn seg_path(dir: &Path, base: u64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| EngineError::io(dir.display(), e))
}

fn open_rw(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| EngineError::io(path.display(), e))
}

impl Partition {
    pub fn open(
        topic: &str,
        partition: u32,
        dir: PathBuf,
        retention: Retention,
        opts: SegmentLogOptions,
    ) -> Result<Partition> {
        fs::create_dir_all(&dir).map_err(|e| EngineError::io(dir.display(), e))?;
        let epoch = load_or_create_epoch(&dir)?;
        let segs = recover(&dir, &opts)?;
        let end = segs.last().map(|s| s.next).unwrap_or(0);
        let shared = Arc::new(Shared {
            topic: topic.to_owned(),
            partition,
            name: format!("{topic}/{partition}"),
            dir,
            epoch,
            segs: RwLock::new(segs),
            end: watch::Sender::new(end),
            poisoned: AtomicBool::new(false),
            retention: Mutex::new(retention),
            opts,
            records_scanned: AtomicU64::new(0),
            compacting: Mutex::new(()),
        });
        let (tx, rx) = mpsc::channel();
        let (sync_tx, sync_rx) = mpsc::channel();
        let writer = Writer::new(shared.clone(), sync_tx)?;
        let syncer = shared.clone();
        std::thread::Builder::new()
            .name(format!("seglog-w-{}", shared.name))
            .spawn(move || writer.run(rx))
            .map_err(|e| EngineError::io("writer thread", e))?;
        std::thread::Builder::new()
            .name(format!("seglog-s-{}", shared.name))
            .spawn(move || sync_loop(&syncer, sync_rx))
            .map_err(|e| EngineError::io("syncer thread", e))?;
        Ok(Partition { shared, tx })
    }

    pub async fn append(&self, payloads: Vec<Bytes>) -> Result<Appended> {
        let limit = self.shared.opts.max_record_bytes;
        if let Some(p) = payloads.iter().find(|p| p.len() > limit) {
            return Err(EngineError::RecordTooLarge {
                size: p.len(),
                limit,
            });
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Req { payloads, reply })
            .map_err(|_| EngineError::Closed)?;
        rx.await.map_err(|_| EngineError::Closed)?
    }

    /// Whether a failed write or fsync stopped appends (until the writer
    /// mends the partition).
    pub fn poisoned(&self) -> bool {
        self.shared.poisoned.load(Ordering::Acquire)
    }

    pub fn set_retention(&self, retention: Retention) {
        *self.shared.retention.lock().expect("retention lock") = retention;
    }
}

impl Shared {
    pub fn bounds(&self) -> Bounds {
        let end = *self.end.borrow();
        let start = self.segs.read().expect("segs lock")[0].base;
        Bounds {
            start,
            end,
            epoch: self.epoch,
        }
    }

    /// Drops sealed segments from the oldest on while `doomed` says so of
    /// each (given the bytes the partition holds then); the new start.
    /// Readers holding a dropped file keep reading it: unlink is safe.
    fn drop_sealed(&self, mut doomed: impl FnMut(&Segment, u64) -> bool) -> u64 {
        // Not while a segment is being rewritten: its rename would bring
        // back a file this unlinked.
        let _one = self.compacting.lock().expect("compaction lock");
        let removed: Vec<Segment> = {
            let mut segs = self.segs.write().expect("segs lock");
            let mut total: u64 = segs.iter().map(|s| s.size).sum();
            let mut n = 0;
            while n + 1 < segs.len() && doomed(&segs[n], total) {
                total -= segs[n].size;
                n += 1;
            }
            segs.drain(..n).collect()
        };
        for s in removed {
            let _ = fs::remove_file(&s.path);
            let _ = fs::remove_file(seg_path(&self.dir, s.base, "idx"));
        }
        self.bounds().start
    }

    /// Drops sealed segments wholly below `below` whose newest record is
    /// older than `older_than` (ms); the new start.
    pub fn trim(&self, below: u64, older_than: u64) -> u64 {
        self.drop_sealed(|s, _| s.next <= below && s.last_ts < older_than)
    }

    /// A blocking read; callers run it off the async executor.
    pub fn read(&self, from: u64, limit: ReadLimit) -> Result<Batch> {
        let end = *self.end.borrow();
        let start = self.segs.read().expect("segs lock")[0].base;
        Bounds {
            start,
            end,
            epoch: self.epoch,
        }
        .check_read(&self.topic, self.partition, from)?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut next = from;
        let full = |out: &Vec<Record>, bytes: usize| {
            out.len() >= limit.max_records || (!out.is_empty() && bytes >= limit.max_bytes)
        };
        'segments: while next < end && !full(&out, bytes) {
            // Find the segment and position under the lock; do I/O without it.
            let (file, path, mut pos, mut offset, seg_size) = {
                let segs = self.segs.read().expect("segs lock");
                if next < segs[0].base {
                    break; // retention removed what was left to read
                }
                let seg = &segs[segs.partition_point(|s| s.base <= next).saturating_sub(1)];
                let (o, p) = seg.position_of(next);
                (seg.file.clone(), seg.path.clone(), p, o, seg.size)
            };
            let before = next;
            let mut want = self.opts.read_chunk;
            while pos < seg_size {
                let len = want.min((seg_size - pos) as usize);
                let mut buf = vec![0u8; len];
                file.read_exact_at(&mut buf, pos)
                    .map_err(|e| EngineError::io(path.display(), e))?;
                let mut at = 0;
                let mut done = false;
                while at < buf.len() && !done {
                    // Reads stay below the published end, so even the
                    // active segment is whole here; sealed ones may have
                    // gaps (compaction).
                    match frame::decode_sealed(&buf, at, offset, self.opts.max_record_bytes) {
                        Decoded::Frame(f) => {
                            self.records_scanned.fetch_add(1, Ordering::Relaxed);
                            if f.offset >= next {
                                let payload =
                                    Bytes::copy_from_slice(&buf[f.payload_start..f.payload_end]);
                                bytes += payload.len();
                                out.push(Record {
                                    offset: f.offset,
                                    timestamp: f.timestamp,
                                    payload,
                                });
                                next = f.offset + 1;
                            }
                            offset = f.offset + 1;
                            at = f.payload_end;
                            done = next >= end || full(&out, bytes);
                        }
                        // A frame larger than the chunk: read it whole.
                        Decoded::Incomplete(need) if at == 0 && need > len => {
                            want = need;
                            break;
                        }
                        Decoded::Incomplete(_) if at > 0 => break,
                        Decoded::Incomplete(_) => {
                            return Err(corrupt(&path, pos, "frame runs past the segment end"))
                        }
                        Decoded::Corrupt(reason) => {
                            return Err(corrupt(&path, pos + at as u64, &reason))
                        }
                    }
                }
                pos += at as u64;
                if at > 0 {
                    want = self.opts.read_chunk;
                }
                if done {
                    break 'segments;
                }
            }
            if next == before {
                return Err(corrupt(&path, pos, "no record where the index points"));
            }
        }
        Ok(Batch {
            records: out,
            next_offset: next,
            end,
            epoch: self.epoch,
        })
    }
}
