//! Opening a partition: its epoch, and its segments recovered from disk
//! (a torn tail cut off, sparse indexes loaded or rebuilt).

use super::*;

pub(super) fn corrupt(path: &Path, position: u64, reason: &str) -> EngineError {
    EngineError::Corrupt {
        path: path.display().to_string(),
        position,
        reason: reason.to_owned(),
    }
}

pub(super) fn load_or_create_epoch(dir: &Path) -> Result<Epoch> {
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
pub(super) fn recover(dir: &Path, opts: &SegmentLogOptions) -> Result<Vec<Segment>> {
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
pub(super) fn scan(
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
        // Only a sealed segment can have been compacted (gaps).
        let decoded = if active {
            frame::decode(&data, at, next, opts.max_record_bytes)
        } else {
            frame::decode_sealed(&data, at, next, opts.max_record_bytes)
        };
        match decoded {
            Decoded::Frame(f) => {
                if at - last_indexed >= opts.index_interval {
                    index.push((f.offset, at as u64));
                    last_indexed = at;
                }
                next = f.offset + 1;
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
pub(super) fn load_index(dir: &Path, base: u64, file: &File) -> Option<IndexData> {
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

pub(super) fn write_index(dir: &Path, seg: &Segment) -> Result<()> {
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
