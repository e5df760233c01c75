//! The blob store on S3 or any S3-compatible server (MinIO, Ceph, moto),
//! through `object_store`. A writer streams a multipart upload (5 MiB
//! parts, a few in flight) to a temp object; its commit completes it and
//! moves it to its key (a server-side copy), so a key only ever holds a
//! whole blob.
//!
//! URL: `s3://BUCKET[/PREFIX]?endpoint=http://HOST:PORT&region=R&access_key_id=K&secret_access_key=S`;
//! whatever the query leaves out comes from the usual `AWS_*` variables.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};

use crate::blob::{check_key, check_prefix, BlobInfo, BlobStore, BlobWriter, ByteStream};
use crate::error::{EngineError, Result};

/// S3's smallest part but the last.
const PART: usize = 5 * 1024 * 1024;
/// Parts uploading at once per writer: bounds its memory to a few parts.
const PARTS_IN_FLIGHT: usize = 2;

pub struct S3Blobs {
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

impl S3Blobs {
    /// Connects lazily: the URL is checked here, the server at first use.
    pub fn connect(url: &str) -> Result<S3Blobs> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| EngineError::Config(format!("{url:?} is not an s3:// URL")))?;
        let (place, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = place.split_once('/').unwrap_or((place, ""));
        if bucket.is_empty() {
            return Err(EngineError::Config(format!("{url:?} names no bucket")));
        }
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() {
            check_key(prefix)?;
        }
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(false);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key: AmazonS3ConfigKey = k
                .parse()
                .map_err(|e| EngineError::Config(format!("{url:?}: {k}: {e}")))?;
            if key == AmazonS3ConfigKey::Endpoint && v.starts_with("http://") {
                b = b.with_allow_http(true);
            }
            b = b.with_config(key, v);
        }
        let store = b
            .build()
            .map_err(|e| EngineError::Config(format!("{url:?}: {e}")))?;
        Ok(S3Blobs {
            store: Arc::new(store),
            prefix: prefix.to_owned(),
        })
    }

    fn path(&self, key: &str) -> Result<Path> {
        check_key(key)?;
        Ok(self.at(key))
    }

    fn at(&self, key: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.prefix))
        }
    }
}

/// Network trouble may pass; a refused request will not.
fn err(e: object_store::Error) -> EngineError {
    match e {
        object_store::Error::Generic { .. } => EngineError::Unavailable(format!("s3: {e}")),
        other => EngineError::State(format!("s3: {other}")),
    }
}

#[async_trait]
impl BlobStore for S3Blobs {
    async fn writer(&self) -> Result<Box<dyn BlobWriter>> {
        let tmp = self.at(&format!("tmp/{:032x}", rand::random::<u128>()));
        let upload = self.store.put_multipart(&tmp).await.map_err(err)?;
        Ok(Box::new(S3Writer {
            blobs: S3Blobs {
                store: self.store.clone(),
                prefix: self.prefix.clone(),
            },
            tmp,
            upload: Some(WriteMultipart::new_with_chunk_size(upload, PART)),
        }))
    }

    async fn size(&self, key: &str) -> Result<Option<u64>> {
        match self.store.head(&self.path(key)?).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    async fn read(&self, key: &str, range: Option<Range<u64>>) -> Result<Option<ByteStream>> {
        let path = self.path(key)?;
        if range.as_ref().is_some_and(|r| r.is_empty()) {
            // S3 refuses an empty range; it has no bytes to send anyway.
            return Ok(self
                .size(key)
                .await?
                .map(|_| futures::stream::empty().boxed()));
        }
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        match self.store.get_opts(&path, opts).await {
            Ok(got) => Ok(Some(got.into_stream().map_err(err).boxed())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&self.path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(err(e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobInfo>> {
        check_prefix(prefix)?;
        let under = self.at(prefix.trim_end_matches('/'));
        let skip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut out: Vec<BlobInfo> = self
            .store
            .list(Some(&under))
            .map_ok(|m| BlobInfo {
                key: m.location.as_ref()[skip..].to_owned(),
                size: m.size,
                modified_ms: m.last_modified.timestamp_millis().max(0) as u64,
            })
            .try_collect()
            .await
            .map_err(err)?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

struct S3Writer {
    blobs: S3Blobs,
    tmp: Path,
    /// `None` once committed or aborted.
    upload: Option<WriteMultipart>,
}

#[async_trait]
impl BlobWriter for S3Writer {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        let upload = self.upload.as_mut().ok_or(EngineError::Closed)?;
        upload
            .wait_for_capacity(PARTS_IN_FLIGHT)
            .await
            .map_err(err)?;
        upload.put(chunk);
        Ok(())
    }

    async fn commit(mut self: Box<Self>, key: &str) -> Result<()> {
        let dest = self.blobs.path(key)?;
        let upload = self.upload.take().ok_or(EngineError::Closed)?;
        upload.finish().await.map_err(err)?;
        let store = &self.blobs.store;
        let kept = match store.head(&dest).await {
            Ok(_) => store.delete(&self.tmp).await,
            Err(object_store::Error::NotFound { .. }) => store.rename(&self.tmp, &dest).await,
            Err(e) => Err(e),
        };
        if kept.is_err() {
            let _ = store.delete(&self.tmp).await;
        }
        kept.map_err(err)
    }

    async fn abort(mut self: Box<Self>) {
        if let Some(upload) = self.upload.take() {
            let _ = upload.abort().await;
        }
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        // An upload dropped mid-way: abort it in the background, or the
        // bucket keeps its parts (a lifecycle rule on `tmp/` is the
        // backstop for a crash).
        if let Some(upload) = self.upload.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = upload.abort().await;
                });
            }
        }
    }
}
