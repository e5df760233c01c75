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

mod mend;

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
                    match frame::decode(&buf, at, offset, self.opts.max_record_bytes) {
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
                            offset += 1;
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

fn corrupt(path: &Path, position: u64, reason: &str) -> EngineError {
    EngineError::Corrupt {
        path: path.display().to_string(),
        position,
        reason: reason.to_owned(),
    }
}

fn load_or_create_epoch(dir: &Path) -> Result<Epoch> {
    let path = dir.join("EPOCH");
    match fs::read_to_string(&path) {
        Ok(s) => s
            .trim()
            .parse()
            .map(Epoch)
            .map_err(|_| corrupt(&path, 0, "EPOCH is not a number")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A new incarnation: the random epoch tells consumers that any
            // offset they stored for this partition is void.
            let epoch = rand::random::<u64>() >> 1;
            write_atomic(&path, format!("{epoch}\n").as_bytes())?;
            Ok(Epoch(epoch))
        }
        Err(e) => Err(EngineError::io(path.display(), e)),
    }
}

/// Write to a temp file, fsync, rename over, fsync the directory.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let io = |e| EngineError::io(tmp.display(), e);
    let f = File::create(&tmp).map_err(io)?;
    f.write_all_at(data, 0).map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(|e| EngineError::io(path.display(), e))?;
    sync_dir(path.parent().expect("file in a directory"))
}

/// Opens every segment; truncates a torn tail of the last one.
fn recover(dir: &Path, opts: &SegmentLogOptions) -> Result<Vec<Segment>> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| EngineError::io(dir.display(), e))? {
        let name = entry
            .map_err(|e| EngineError::io(dir.display(), e))?
            .file_name();
        let name = name.to_string_lossy();
        if let Some(base) = name
            .strip_suffix(".log")
            .and_then(|b| b.parse::<u64>().ok())
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    let fresh = bases.is_empty();
    if fresh {
        bases.push(0);
    }
    let mut segs: Vec<Segment> = Vec::with_capacity(bases.len());
    let last = bases.len() - 1;
    for (i, &base) in bases.iter().enumerate() {
        let path = seg_path(dir, base, "log");
        let file = open_rw(&path)?;
        let seg = if i < last {
            match load_index(dir, base, &file) {
                Some((index, size, next, last_ts)) => Segment {
                    base,
                    path,
                    file: Arc::new(file),
                    index,
                    size,
                    next,
                    last_ts,
                },
                None => scan(path, file, base, opts, false)?,
            }
        } else {
            scan(path, file, base, opts, true)?
        };
        if let Some(prev) = segs.last() {
            if prev.next != seg.base {
                return Err(corrupt(
                    &seg.path,
                    0,
                    "segment does not follow its predecessor",
                ));
            }
        }
        segs.push(seg);
    }
    if fresh {
        sync_dir(dir)?;
    }
    Ok(segs)
}

/// Reads a whole segment, building its index. For the active segment a
/// damaged tail is cut off (a write that was never acknowledged); in a
/// sealed segment damage is an error, as that data was acknowledged.
fn scan(
    path: PathBuf,
    file: File,
    base: u64,
    opts: &SegmentLogOptions,
    active: bool,
) -> Result<Segment> {
    let len = file
        .metadata()
        .map_err(|e| EngineError::io(path.display(), e))?
        .len();
    let mut data = vec![0u8; len as usize];
    file.read_exact_at(&mut data, 0)
        .map_err(|e| EngineError::io(path.display(), e))?;
    let mut index = vec![(base, 0)];
    let (mut at, mut next, mut last_ts, mut last_indexed) = (0usize, base, 0u64, 0usize);
    while at < data.len() {
        match frame::decode(&data, at, next, opts.max_record_bytes) {
            Decoded::Frame(f) => {
                if at - last_indexed >= opts.index_interval {
                    index.push((next, at as u64));
                    last_indexed = at;
                }
                next += 1;
                last_ts = f.timestamp;
                at = f.payload_end;
            }
            bad => {
                if !active {
                    return Err(corrupt(
                        &path,
                        at as u64,
                        &format!("{bad:?} in a sealed segment"),
                    ));
                }
                tracing::warn!(
                    path = %path.display(),
                    at,
                    dropped_bytes = data.len() - at,
                    "truncating a torn tail left by a crash"
                );
                file.set_len(at as u64)
                    .map_err(|e| EngineError::io(path.display(), e))?;
                file.sync_all()
                    .map_err(|e| EngineError::io(path.display(), e))?;
                break;
            }
        }
    }
    Ok(Segment {
        base,
        path,
        file: Arc::new(file),
        index,
        size: at as u64,
        next,
        last_ts,
    })
}

type IndexData = (Vec<(u64, u64)>, u64, u64, u64);

/// A sealed segment's saved index, if it is intact and matches the file.
fn load_index(dir: &Path, base: u64, file: &File) -> Option<IndexData> {
    let data = fs::read(seg_path(dir, base, "idx")).ok()?;
    if data.len() < 40 || (data.len() - 40) % 16 != 0 {
        return None;
    }
    let (body, crc) = data.split_at(data.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let u64_at = |i: usize| u64::from_le_bytes(body[i..i + 8].try_into().expect("8 bytes"));
    let magic = u32::from_le_bytes(body[0..4].try_into().ok()?);
    let (b, size, next, last_ts) = (u64_at(4), u64_at(12), u64_at(20), u64_at(28));
    if magic != IDX_MAGIC || b != base || file.metadata().ok()?.len() != size {
        return None;
    }
    let index = body[36..]
        .chunks_exact(16)
        .map(|c| {
            (
                u64::from_le_bytes(c[..8].try_into().unwrap()),
                u64::from_le_bytes(c[8..].try_into().unwrap()),
            )
        })
        .collect::<Vec<_>>();
    if index.first() != Some(&(base, 0)) {
        return None;
    }
    Some((index, size, next, last_ts))
}

fn write_index(dir: &Path, seg: &Segment) -> Result<()> {
    let mut out = Vec::with_capacity(40 + seg.index.len() * 16);
    out.extend_from_slice(&IDX_MAGIC.to_le_bytes());
    for v in [seg.base, seg.size, seg.next, seg.last_ts] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for &(o, p) in &seg.index {
        out.extend_from_slice(&o.to_le_bytes());
        out.extend_from_slice(&p.to_le_bytes());
    }
    out.extend_from_slice(&crc32c::crc32c(&out).to_le_bytes());
    write_atomic(&seg_path(dir, seg.base, "idx"), &out)
}

/// The syncer: fsyncs everything written since its last round, then
/// publishes the new end and answers those appends.
fn sync_loop(shared: &Shared, rx: mpsc::Receiver<Written>) {
    while let Ok(first) = rx.recv() {
        let (barriers, round): (Vec<Written>, Vec<Written>) = std::iter::once(first)
            .chain(rx.try_iter())
            .partition(|w| w.barrier.is_some());
        if !round.is_empty() {
            sync_round(shared, round);
        }
        for b in barriers {
            let _ = b.barrier.expect("a barrier").send(());
        }
    }
}

/// One fsync for everything in `round`, then its answers.
fn sync_round(shared: &Shared, round: Vec<Written>) {
    let mut result = Ok(());
    if shared.poisoned.load(Ordering::Acquire) {
        result = Err(EngineError::Poisoned(shared.name.clone()));
    } else {
        // A roll can put two files in one round; each is synced once.
        let mut last: Option<*const File> = None;
        for w in &round {
            if last != Some(Arc::as_ptr(&w.file)) {
                last = Some(Arc::as_ptr(&w.file));
                if let Err(e) = w.file.sync_data() {
                    result = Err(EngineError::io(shared.dir.display(), e));
                    break;
                }
            }
        }
    }
    let end = round.last().map_or(0, |w| w.end);
    let replies = round.into_iter().flat_map(|w| w.replies);
    match result {
        Ok(()) => publish(shared, end, replies),
        Err(e) => {
            poison(shared, &e);
            let msg = e.to_string();
            fail(replies.map(|r| r.0), || {
                EngineError::Unavailable(msg.clone())
            });
        }
    }
}

/// Makes everything up to `end` visible to readers, then acknowledges it.
fn publish(shared: &Shared, end: u64, replies: impl IntoIterator<Item = Reply>) {
    shared.end.send_replace(end);
    for (tx, ack) in replies {
        let _ = tx.send(Ok(ack));
    }
}

fn fail(
    replies: impl IntoIterator<Item = oneshot::Sender<Result<Appended>>>,
    err: impl Fn() -> EngineError,
) {
    for tx in replies {
        let _ = tx.send(Err(err()));
    }
}

/// After a failed write or fsync the file's state is unknown (the kernel
/// may have dropped the dirty pages), so the partition takes no further
/// append until a reopen recovers it from what is really on disk.
fn poison(shared: &Shared, e: &EngineError) {
    tracing::error!(partition = %shared.name, error = %e, "append failed; partition poisoned");
    shared.poisoned.store(true, Ordering::Release);
}

struct Writer {
    shared: Arc<Shared>,
    synced: mpsc::Sender<Written>,
    file: Arc<File>,
    pos: u64,
    next: u64,
    last_indexed: u64,
    buf: Vec<u8>,
    /// When a poisoned partition may next try to mend.
    next_mend: std::time::Instant,
}

impl Writer {
    fn new(shared: Arc<Shared>, synced: mpsc::Sender<Written>) -> Result<Writer> {
        let (file, pos, next, last_indexed) = {
            let segs = shared.segs.read().expect("segs lock");
            let active = segs.last().expect("an active segment");
            (
                active.file.clone(),
                active.size,
                active.next,
                active.index.last().map_or(0, |e| e.1),
            )
        };
        Ok(Writer {
            shared,
            synced,
            file,
            pos,
            next,
            last_indexed,
            buf: Vec::new(),
            next_mend: std::time::Instant::now(),
        })
    }

    fn run(mut self, rx: mpsc::Receiver<Req>) {
        loop {
            let poisoned = self.shared.poisoned.load(Ordering::Acquire);
            let tick = if poisoned {
                mend::EVERY
            } else {
                RETENTION_TICK
            };
            let first = match rx.recv_timeout(tick) {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) if poisoned => {
                    self.try_mend();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.enforce_retention();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let mut reqs = vec![first];
            let mut queued: usize = reqs[0].payloads.iter().map(Bytes::len).sum();
            while queued < MAX_COMMIT_BYTES {
                match rx.try_recv() {
                    Ok(r) => {
                        queued += r.payloads.iter().map(Bytes::len).sum::<usize>();
                        reqs.push(r);
                    }
                    Err(_) => break,
                }
            }
            self.commit(reqs);
        }
    }

    fn commit(&mut self, reqs: Vec<Req>) {
        if self.shared.poisoned.load(Ordering::Acquire) && !self.try_mend() {
            let err = || EngineError::Poisoned(self.shared.name.clone());
            return fail(reqs.into_iter().map(|r| r.reply), err);
        }
        let ts = parley_schemas::ids::now_ms();
        let first = match self.write_batch(&reqs, ts) {
            Ok(first) => first,
            Err(e) => {
                poison(&self.shared, &e);
                let msg = e.to_string();
                return fail(reqs.into_iter().map(|r| r.reply), || {
                    EngineError::Unavailable(msg.clone())
                });
            }
        };
        let mut offset = first;
        let replies: Vec<Reply> = reqs
            .into_iter()
            .map(|r| {
                let count = r.payloads.len() as u32;
                let ack = Appended {
                    first_offset: offset,
                    count,
                    timestamp: ts,
                    epoch: self.shared.epoch,
                };
                offset += count as u64;
                (r.reply, ack)
            })
            .collect();
        let written = Written {
            file: self.file.clone(),
            end: self.next,
            replies,
            barrier: None,
        };
        if self.shared.opts.durability == Durability::Os {
            return publish(&self.shared, written.end, written.replies);
        }
        if let Err(mpsc::SendError(w)) = self.synced.send(written) {
            fail(w.replies.into_iter().map(|r| r.0), || EngineError::Closed);
        }
    }

    /// Writes all requests as one buffer (durable only once the syncer has
    /// run); returns the first offset.
    fn write_batch(&mut self, reqs: &[Req], ts: u64) -> Result<u64> {
        if self.pos >= self.shared.opts.segment_bytes {
            self.roll()?;
        }
        let first = self.next;
        let interval = self.shared.opts.index_interval as u64;
        self.buf.clear();
        let mut new_index = Vec::new();
        let mut offset = first;
        for r in reqs {
            for p in &r.payloads {
                let at = self.pos + self.buf.len() as u64;
                if at - self.last_indexed >= interval {
                    new_index.push((offset, at));
                    self.last_indexed = at;
                }
                frame::encode(&mut self.buf, offset, ts, p);
                offset += 1;
            }
        }
        let path = || self.shared.dir.display().to_string();
        self.file
            .write_all_at(&self.buf, self.pos)
            .map_err(|e| EngineError::io(path(), e))?;
        self.pos += self.buf.len() as u64;
        self.next = offset;
        {
            let mut segs = self.shared.segs.write().expect("segs lock");
            let active = segs.last_mut().expect("an active segment");
            active.index.extend(new_index);
            active.size = self.pos;
            active.next = offset;
            active.last_ts = ts;
        }
        // Readers stop at `end`, which only the syncer moves: what is
        // written but not yet durable stays invisible.
        Ok(first)
    }

    /// Seals the active segment (its index goes to disk) and starts a new one.
    fn roll(&mut self) -> Result<()> {
        let dir = self.shared.dir.clone();
        // An index is trusted on recovery only if it matches the data, so
        // the data must be on disk before the index is. Under "os"
        // durability a machine crash may lose data anyway; a mismatched
        // index then falls back to a scan of the segment.
        if self.shared.opts.durability == Durability::Fsync {
            self.file
                .sync_data()
                .map_err(|e| EngineError::io(dir.display(), e))?;
        }
        {
            let segs = self.shared.segs.read().expect("segs lock");
            write_index(&dir, segs.last().expect("an active segment"))?;
        }
        let path = seg_path(&dir, self.next, "log");
        let file = Arc::new(open_rw(&path)?);
        sync_dir(&dir)?;
        self.shared.segs.write().expect("segs lock").push(Segment {
            base: self.next,
            path,
            file: file.clone(),
            index: vec![(self.next, 0)],
            size: 0,
            next: self.next,
            last_ts: 0,
        });
        self.file = file;
        self.pos = 0;
        self.last_indexed = 0;
        self.enforce_retention();
        Ok(())
    }

    /// Drops whole sealed segments past the size or age limit.
    fn enforce_retention(&mut self) {
        let retention = *self.shared.retention.lock().expect("retention lock");
        if retention == Retention::default() {
            return;
        }
        let now = parley_schemas::ids::now_ms();
        let removed: Vec<Segment> = {
            let mut segs = self.shared.segs.write().expect("segs lock");
            let mut total: u64 = segs.iter().map(|s| s.size).sum();
            let mut n = 0;
            while n + 1 < segs.len() {
                let s = &segs[n];
                let too_big = retention.max_bytes.is_some_and(|m| total > m);
                let too_old = retention
                    .max_age
                    .is_some_and(|a| s.last_ts + a.as_millis() as u64 <= now);
                if !(too_big || too_old) {
                    break;
                }
                total -= s.size;
                n += 1;
            }
            segs.drain(..n).collect()
        };
        for s in removed {
            // Readers holding the file keep reading it; unlink is safe.
            let _ = fs::remove_file(&s.path);
            let _ = fs::remove_file(seg_path(&self.shared.dir, s.base, "idx"));
        }
    }
}
