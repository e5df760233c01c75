//! Compaction: records every consumer has passed and that a later record
//! made redundant (the caller says which) are dropped from sealed
//! segments, and the others keep their offsets. A segment is rewritten
//! whole to a temporary file, made durable, and renamed over the old one;
//! readers holding the old file keep reading it. Each segment keeps its
//! last record, so a segment's end (and recovery's check that segments
//! follow each other) never changes.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::frame::{self, Decoded};
use super::recover::{corrupt, write_index};
use super::{open_rw, seg_path, sync_dir, Segment, Shared};
use crate::error::{EngineError, Result};

/// A sealed segment as it was when compaction began.
struct Sealed {
    base: u64,
    next: u64,
    size: u64,
    file: Arc<fs::File>,
    path: std::path::PathBuf,
}

impl Shared {
    /// Drops the records at `doomed` offsets from sealed segments (the
    /// active one and each segment's last record stay); how many went.
    pub fn compact(&self, doomed: &BTreeSet<u64>) -> Result<u64> {
        let _one = self.compacting.lock().expect("compaction lock");
        let sealed: Vec<Sealed> = {
            let segs = self.segs.read().expect("segs lock");
            let n = segs.len().saturating_sub(1);
            segs[..n]
                .iter()
                .filter(|s| s.next > s.base && doomed.range(s.base..s.next - 1).next().is_some())
                .map(|s| Sealed {
                    base: s.base,
                    next: s.next,
                    size: s.size,
                    file: s.file.clone(),
                    path: s.path.clone(),
                })
                .collect()
        };
        let mut dropped = 0;
        for s in sealed {
            dropped += self.rewrite(&s, doomed)?;
        }
        Ok(dropped)
    }

    /// Rewrites one sealed segment without its doomed records.
    fn rewrite(&self, s: &Sealed, doomed: &BTreeSet<u64>) -> Result<u64> {
        let io = |e| EngineError::io(s.path.display(), e);
        let mut data = vec![0u8; s.size as usize];
        s.file.read_exact_at(&mut data, 0).map_err(io)?;
        let mut out = Vec::with_capacity(data.len());
        let mut index = vec![(s.base, 0)];
        let (mut at, mut expected, mut last_indexed, mut dropped) = (0, s.base, 0, 0);
        let mut last_ts = 0;
        while at < data.len() {
            let f = match frame::decode_sealed(&data, at, expected, self.opts.max_record_bytes) {
                Decoded::Frame(f) => f,
                bad => return Err(corrupt(&s.path, at as u64, &format!("{bad:?} compacting"))),
            };
            let frame_start = f.payload_start - frame::HEADER;
            if doomed.contains(&f.offset) && f.offset + 1 != s.next {
                dropped += 1;
            } else {
                if out.len() - last_indexed >= self.opts.index_interval {
                    index.push((f.offset, out.len() as u64));
                    last_indexed = out.len();
                }
                out.extend_from_slice(&data[frame_start..f.payload_end]);
                last_ts = f.timestamp;
            }
            expected = f.offset + 1;
            at = f.payload_end;
        }
        if dropped == 0 {
            return Ok(0);
        }
        let tmp = seg_path(&self.dir, s.base, "compacting");
        let file = open_rw(&tmp)?;
        file.set_len(0).map_err(io)?;
        file.write_all_at(&out, 0).map_err(io)?;
        file.sync_all().map_err(io)?;
        fs::rename(&tmp, &s.path).map_err(io)?;
        sync_dir(&self.dir)?;
        let seg = Segment {
            base: s.base,
            path: s.path.clone(),
            file: Arc::new(file),
            index,
            size: out.len() as u64,
            next: s.next,
            last_ts,
        };
        // A crash before this leaves an index that no longer matches the
        // file's size: recovery then scans the segment instead.
        write_index(&self.dir, &seg)?;
        // Trimming waits for the compaction lock, so the segment is
        // still there.
        let mut segs = self.segs.write().expect("segs lock");
        if let Some(x) = segs.iter_mut().find(|x| x.base == s.base) {
            *x = seg;
        }
        Ok(dropped)
    }
}
