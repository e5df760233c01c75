//! The blob store in a directory (`parley up`, and a single-node deploy):
//! each blob a file at its key. A writer fills a temp file in `tmp/`; its
//! commit fsyncs it, renames it to its key and fsyncs the directory, so a
//! blob is either whole and durable or absent, through a crash.

use std::io::SeekFrom;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};
use tokio_util::io::ReaderStream;

use crate::blob::{check_key, check_prefix, BlobInfo, BlobStore, BlobWriter, ByteStream};
use crate::error::{EngineError, Result};

/// Where writers keep what they have not committed; never a key's first
/// segment, since keys are lowercase and this has a capital.
const TMP: &str = "Tmp";
/// Read chunk size: big enough for few syscalls, small enough to stream.
const CHUNK: usize = 256 * 1024;

pub struct FsBlobs {
    root: PathBuf,
}

impl FsBlobs {
    /// Opens (creating) the store at `root`, and drops temp files a crash
    /// left behind.
    pub fn open(root: &Path) -> Result<FsBlobs> {
        let tmp = root.join(TMP);
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| EngineError::io(tmp.display(), e))?;
        Ok(FsBlobs {
            root: root.to_owned(),
        })
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
    move |e| EngineError::io(path.display(), e)
}

#[async_trait]
impl BlobStore for FsBlobs {
    async fn writer(&self) -> Result<Box<dyn BlobWriter>> {
        let path = self
            .root
            .join(TMP)
            .join(format!("{:032x}", rand::random::<u128>()));
        let file = tokio::fs::File::create(&path).await.map_err(io(&path))?;
        Ok(Box::new(FsWriter {
            root: self.root.clone(),
            file: Some(BufWriter::with_capacity(CHUNK, file)),
            path,
        }))
    }

    async fn size(&self, key: &str) -> Result<Option<u64>> {
        let path = self.path(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    async fn read(&self, key: &str, range: Option<Range<u64>>) -> Result<Option<ByteStream>> {
        let path = self.path(key)?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let len = file.metadata().await.map_err(io(&path))?.len();
        let r = range.unwrap_or(0..len);
        if r.start > r.end || r.end > len {
            return Err(EngineError::Config(format!(
                "range {r:?} outside a blob of {len} bytes"
            )));
        }
        file.seek(SeekFrom::Start(r.start))
            .await
            .map_err(io(&path))?;
        let shown = path.display().to_string();
        let stream = ReaderStream::with_capacity(file.take(r.end - r.start), CHUNK)
            .map(move |c| c.map_err(|e| EngineError::io(&shown, e)));
        Ok(Some(stream.boxed()))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(&path)(e)),
        }
        // Directories below a key's first segment (an upload's parts) go
        // with their last blob; `remove_dir` refuses any that is not empty.
        let top = self.root.join(key.split('/').next().unwrap_or_default());
        for dir in path
            .ancestors()
            .skip(1)
            .take_while(|d| d.starts_with(&top) && *d != top)
        {
            if tokio::fs::remove_dir(dir).await.is_err() {
                break;
            }
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobInfo>> {
        check_prefix(prefix)?;
        let (root, dir) = (self.root.clone(), self.root.join(prefix));
        tokio::task::spawn_blocking(move || walk(&root, &dir))
            .await
            .map_err(|e| EngineError::Unavailable(format!("listing blobs: {e}")))?
    }
}

/// Every file under `dir`, keyed by its path under `root`.
fn walk(root: &Path, dir: &Path) -> Result<Vec<BlobInfo>> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&d)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&d))?;
            let meta = entry.metadata().map_err(io(&d))?;
            let path = entry.path();
            if meta.is_dir() {
                dirs.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                let modified_ms = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_millis() as u64);
                out.push(BlobInfo {
                    key: rel.to_string_lossy().into_owned(),
                    size: meta.len(),
                    modified_ms,
                });
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

struct FsWriter {
    root: PathBuf,
    /// `None` once committed or aborted.
    file: Option<BufWriter<tokio::fs::File>>,
    path: PathBuf,
}

#[async_trait]
impl BlobWriter for FsWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        let file = self.file.as_mut().ok_or(EngineError::Closed)?;
        file.write_all(&chunk).await.map_err(io(&self.path))
    }

    async fn commit(mut self: Box<Self>, key: &str) -> Result<()> {
        check_key(key)?;
        let mut file = self.file.take().ok_or(EngineError::Closed)?;
        let tmp = self.path.clone();
        file.flush().await.map_err(io(&tmp))?;
        file.get_ref().sync_all().await.map_err(io(&tmp))?;
        drop(file);
        let (root, dest) = (self.root.clone(), self.root.join(key));
        let result = tokio::task::spawn_blocking(move || place(&root, &tmp, &dest))
            .await
            .map_err(|e| EngineError::Unavailable(format!("committing a blob: {e}")))?;
        if result.is_err() {
            let _ = std::fs::remove_file(&self.path);
        }
        result
    }

    async fn abort(mut self: Box<Self>) {
        self.file = None;
        let _ = tokio::fs::remove_file(&self.path).await;
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Moves a synced temp file to `dest` unless a blob is there already, and
/// syncs the directories up to `root` (some may be new) so the name
/// survives a crash.
fn place(root: &Path, tmp: &Path, dest: &Path) -> Result<()> {
    let dir = dest.parent().expect("a key has a parent under the root");
    if dest.exists() {
        return std::fs::remove_file(tmp).map_err(io(tmp));
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    std::fs::rename(tmp, dest).map_err(io(dest))?;
    for d in dir.ancestors().take_while(|d| d.starts_with(root)) {
        std::fs::File::open(d)
            .and_then(|f| f.sync_all())
            .map_err(io(d))?;
    }
    Ok(())
}
