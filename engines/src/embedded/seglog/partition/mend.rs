//! Mending a poisoned partition in place, so a full disk (or any failed
//! write or fsync) stops appends only until space returns, not until a
//! restart. The writer thread does it, as it alone writes: it lets the
//! syncer finish (and fail) everything queued, cuts the active segment
//! back to the last offset the syncer published (the last acknowledged
//! append: what came after was never acknowledged, and must not surface
//! later), syncs that, and clears the poison. A mend that fails leaves the
//! partition poisoned and is tried again [`EVERY`] so long.

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{frame, Decoded, Writer, Written};
use crate::error::{EngineError, Result};

/// How often a poisoned partition tries to mend (on an append, or idle).
pub(super) const EVERY: Duration = Duration::from_secs(1);

impl Writer {
    /// Mends the partition if a try is due; true once it takes appends.
    pub(super) fn try_mend(&mut self) -> bool {
        if !self.shared.poisoned.load(Ordering::Acquire) {
            return true;
        }
        let now = Instant::now();
        if now < self.next_mend {
            return false;
        }
        self.next_mend = now + EVERY;
        match self.mend() {
            Ok(end) => {
                if self.shared.poisoned.swap(false, Ordering::AcqRel) {
                    let mended = crate::internal_events::PartitionPoisoned { poisoned: false };
                    crate::telemetry::emit(mended);
                }
                tracing::warn!(partition = %self.shared.name, end, "partition mended; appends resume");
                true
            }
            Err(e) => {
                tracing::debug!(partition = %self.shared.name, error = %e, "partition not mended yet");
                false
            }
        }
    }

    /// Cuts the active segment back to the published end; returns it.
    fn mend(&mut self) -> Result<u64> {
        // Everything queued to the syncer is answered first (it fails it:
        // the partition is poisoned), so the published end is final.
        let (tx, rx) = mpsc::channel();
        let barrier = Written {
            file: self.file.clone(),
            end: 0,
            replies: Vec::new(),
            barrier: Some(tx),
        };
        self.synced.send(barrier).map_err(|_| EngineError::Closed)?;
        rx.recv().map_err(|_| EngineError::Closed)?;
        let end = *self.shared.end.borrow();
        let dir = self.shared.dir.clone();
        let mut segs = self.shared.segs.write().expect("segs lock");
        let active = segs.last_mut().expect("an active segment");
        if end < active.base {
            // A roll after the last acknowledged append: not mended in
            // place; a restart recovers it.
            return Err(EngineError::Poisoned(self.shared.name.clone()));
        }
        // The byte position of offset `end`: walk frames from the index
        // entry at or before it, over what this writer wrote.
        let (mut offset, mut at) = active.position_of(end);
        let mut data = vec![0u8; (active.size - at) as usize];
        active
            .file
            .read_exact_at(&mut data, at)
            .map_err(|e| EngineError::io(dir.display(), e))?;
        let mut i = 0usize;
        while offset < end {
            match frame::decode(&data, i, offset, self.shared.opts.max_record_bytes) {
                Decoded::Frame(f) => {
                    i = f.payload_end;
                    offset += 1;
                }
                bad => {
                    return Err(EngineError::Corrupt {
                        path: active.path.display().to_string(),
                        position: at + i as u64,
                        reason: format!("{bad:?} below the published end {end}"),
                    })
                }
            }
        }
        at += i as u64;
        active
            .file
            .set_len(at)
            .and_then(|()| active.file.sync_all())
            .map_err(|e| EngineError::io(dir.display(), e))?;
        active.index.retain(|&(o, p)| o == active.base || p < at);
        active.size = at;
        active.next = end;
        self.file = active.file.clone();
        self.pos = at;
        self.next = end;
        self.last_indexed = active.index.last().map_or(0, |e| e.1);
        Ok(end)
    }
}
