//! The media sweeper: what nothing refers to any more leaves storage.
//!
//! Every `every`, one pass:
//! 1. Uploads never sent, older than `unsent_after`: a `MediaDeleted` is
//!    appended to the uploader's `accounts` partition (so a rebuilt store
//!    agrees), then the record is deleted; its blob's count of uploads
//!    drops, and at none the blob is unreferenced from then.
//! 2. Blobs unreferenced for longer than `grace`: each is claimed (an
//!    upload of the same bytes that pinned it meanwhile wins), its bytes
//!    and thumbnail deleted, and the claim released.
//! 3. Resumable upload sessions older than their lifetime: every blob
//!    under them deleted.
//!
//! One sweeper runs per deployment: in `parley up`, and in a cluster on
//! the `process` node that holds partition 0. A pass that fails is
//! counted and tried again at the next one; everything it does is safe to
//! do twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parley_engines::telemetry::emit;
use parley_engines::{BlobStore, Log, Result, StateOp, StateStore};
use parley_schemas::event::{Event, MediaDeleted};
use parley_schemas::ids::now_ms;
use parley_schemas::media::{blob_key, thumbnail_key, UPLOADS};
use parley_schemas::partition::user_partition;
use parley_schemas::{codec, topics};
use tokio_util::sync::CancellationToken;

use crate::internal_events::{MediaSwept, SweepFailed};

/// Uploads, blobs and sessions handled per kind per pass.
const BATCH: usize = 1000;

/// When things go (`[limits]` and the config set them).
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// An upload never sent is deleted after this.
    pub unsent_after: Duration,
    /// A blob no upload refers to is deleted after this.
    pub grace: Duration,
    /// A resumable upload session is deleted this long after it began.
    pub sessions_after: Duration,
    /// How often the sweeper looks.
    pub every: Duration,
}

pub struct Sweeper {
    pub log: Arc<dyn Log>,
    pub state: Arc<dyn StateStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub partitions: u32,
    pub lifetimes: Lifetimes,
}

/// What one pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub uploads: u64,
    pub blobs: u64,
    pub sessions: u64,
}

impl Sweeper {
    /// Sweeps every `lifetimes.every` until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.lifetimes.every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.sweep().await {
                Ok(swept) => emit(MediaSwept { swept }),
                Err(e) => emit(SweepFailed { error: &e }),
            }
        }
    }

    /// One pass.
    pub async fn sweep(&self) -> Result<Swept> {
        let now = now_ms();
        let ms = |d: Duration| d.as_millis() as u64;
        let mut swept = Swept::default();
        let unsent = now.saturating_sub(ms(self.lifetimes.unsent_after));
        for media in self.state.unsent_media(unsent, BATCH).await? {
            let Some(record) = self.state.media(media).await? else {
                continue;
            };
            let deleted = Event::MediaDeleted(MediaDeleted { media, ts: now });
            let p = user_partition(record.uploader, self.partitions);
            self.log
                .append(
                    topics::ACCOUNTS,
                    p,
                    vec![Bytes::from(codec::encode(&deleted))],
                )
                .await?;
            let op = StateOp::DeleteMedia { media, at: now };
            self.state.write(vec![op]).await?;
            swept.uploads += 1;
        }
        let unreferenced = now.saturating_sub(ms(self.lifetimes.grace));
        for sha in self.state.unreferenced_blobs(unreferenced, BATCH).await? {
            if !self.state.claim_blob(&sha, unreferenced).await? {
                continue;
            }
            self.blobs.delete(&blob_key(&sha)).await?;
            self.blobs.delete(&thumbnail_key(&sha)).await?;
            self.state.blob_deleted(&sha).await?;
            swept.blobs += 1;
        }
        swept.sessions = self.expire_sessions(now).await?;
        Ok(swept)
    }

    /// Deletes the sessions that began longer ago than their lifetime
    /// (by their `meta`; a session without one, by its newest part).
    async fn expire_sessions(&self, now: u64) -> Result<u64> {
        #[derive(Default)]
        struct Session {
            keys: Vec<String>,
            began: Option<u64>,
            newest: u64,
        }
        let mut sessions: BTreeMap<String, Session> = BTreeMap::new();
        for b in self.blobs.list(UPLOADS).await? {
            let Some((id, name)) = b.key[UPLOADS.len()..].split_once('/') else {
                continue;
            };
            let s = sessions.entry(id.to_owned()).or_default();
            s.keys.push(b.key.clone());
            s.newest = s.newest.max(b.modified_ms);
            if name == "meta" {
                s.began = Some(b.modified_ms);
            }
        }
        let lifetime = self.lifetimes.sessions_after.as_millis() as u64;
        let mut n = 0;
        for s in sessions.into_values() {
            if s.began.unwrap_or(s.newest) + lifetime >= now {
                continue;
            }
            for k in s.keys {
                self.blobs.delete(&k).await?;
            }
            n += 1;
            if n as usize == BATCH {
                break;
            }
        }
        Ok(n)
    }
}
