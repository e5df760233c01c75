//! The two threads behind appends: the writer (group commit, segment
//! rolls, retention) and the syncer (one fsync per round, then publish and
//! answer).

use super::*;

/// The syncer: fsyncs everything written since its last round, then
/// publishes the new end and answers those appends.
pub(super) fn sync_loop(shared: &Shared, rx: mpsc::Receiver<Written>) {
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
pub(super) fn sync_round(shared: &Shared, round: Vec<Written>) {
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
pub(super) fn publish(shared: &Shared, end: u64, replies: impl IntoIterator<Item = Reply>) {
    shared.end.send_replace(end);
    for (tx, ack) in replies {
        let _ = tx.send(Ok(ack));
    }
}

pub(super) fn fail(
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
pub(super) fn poison(shared: &Shared, e: &EngineError) {
    tracing::error!(partition = %shared.name, error = %e, "append failed; partition poisoned");
    // The writer and the syncer may both fail: count the partition once.
    if !shared.poisoned.swap(true, Ordering::AcqRel) {
        crate::telemetry::emit(crate::internal_events::PartitionPoisoned { poisoned: true });
    }
}

pub(super) struct Writer {
    pub(super) shared: Arc<Shared>,
    pub(super) synced: mpsc::Sender<Written>,
    pub(super) file: Arc<File>,
    pub(super) pos: u64,
    pub(super) next: u64,
    pub(super) last_indexed: u64,
    pub(super) buf: Vec<u8>,
    /// When a poisoned partition may next try to mend.
    pub(super) next_mend: std::time::Instant,
}

impl Writer {
    pub(super) fn new(shared: Arc<Shared>, synced: mpsc::Sender<Written>) -> Result<Writer> {
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

    pub(super) fn run(mut self, rx: mpsc::Receiver<Req>) {
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
        self.shared.drop_sealed(|s, total| {
            let too_big = retention.max_bytes.is_some_and(|m| total > m);
            let too_old = retention
                .max_age
                .is_some_and(|a| s.last_ts + a.as_millis() as u64 <= now);
            too_big || too_old
        });
    }
}
