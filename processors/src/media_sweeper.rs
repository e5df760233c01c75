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
//! 4. Under `retention.mode = "until_delivered"`, sent uploads that every
//!    recipient has fetched whole, and those older than
//!    `retention.media_days`, deleted as in 1 (step 2 then frees their
//!    bytes). A recipient is every user who may see a message that
//!    carried the upload, its uploader aside; a user counts once,
//!    whichever of their devices fetched it. The uploader's current
//!    avatar stays.
//!
//! One sweeper runs per deployment: in `parley up`, and in a cluster on
//! the `process` node that holds partition 0. A pass that fails is
//! counted and tried again at the next one; everything it does is safe to
//! do twice.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parley_engines::state::MediaRecord;
use parley_engines::telemetry::emit;
use parley_engines::{BlobStore, Log, Result, StateOp, StateStore};
use parley_schemas::event::{Event, MediaDeleted};
use parley_schemas::ids::{now_ms, ConversationId, UserId};
use parley_schemas::media::{blob_key, thumbnail_key, MediaId, MAX_USES, UPLOADS, UPLOADS_BY};
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
    /// `until_delivered` retention: sent uploads go once every recipient
    /// fetched them ([`DeliveredMedia`]); `None` in `history` mode.
    pub delivered: Option<DeliveredMedia>,
}

/// When sent media goes under `until_delivered` retention.
#[derive(Debug, Clone, Copy)]
pub struct DeliveredMedia {
    /// Also once this old, fetched or not (`retention.media_days`);
    /// `None`: only once fetched by all.
    pub at_most: Option<Duration>,
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
    /// Sent uploads gone under `until_delivered` retention.
    pub delivered: u64,
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
            self.delete(media, &record, now).await?;
            swept.uploads += 1;
        }
        if let Some(d) = self.lifetimes.delivered {
            swept.delivered = self.sweep_delivered(d, now).await?;
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

    /// Logs an upload's deletion (in its uploader's `accounts`
    /// partition, so a rebuilt store agrees), then deletes its record.
    async fn delete(&self, media: MediaId, record: &MediaRecord, now: u64) -> Result<()> {
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
        self.state.write(vec![op]).await
    }

    /// Step 4: sent uploads fetched by all their recipients, or too old.
    async fn sweep_delivered(&self, d: DeliveredMedia, now: u64) -> Result<u64> {
        let mut n = 0;
        for (media, at) in self.state.fetched_media(BATCH).await? {
            if let Some(record) = self.state.media(media).await? {
                if self.fetched_by_all(media, record.uploader).await?
                    && !self.is_avatar(media, &record).await?
                {
                    self.delete(media, &record, now).await?;
                    n += 1;
                }
            }
            let checked = StateOp::MediaChecked { media, at };
            self.state.write(vec![checked]).await?;
        }
        let Some(at_most) = d.at_most else {
            return Ok(n);
        };
        let before = now.saturating_sub(at_most.as_millis() as u64);
        for media in self.state.sent_media(before, BATCH).await? {
            let Some(record) = self.state.media(media).await? else {
                continue;
            };
            if !self.is_avatar(media, &record).await? {
                self.delete(media, &record, now).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Whether every user who may see a message that carried `media`
    /// (its uploader aside) has fetched it.
    async fn fetched_by_all(&self, media: MediaId, uploader: UserId) -> Result<bool> {
        let fetched: HashSet<UserId> = self
            .state
            .media_fetchers(media)
            .await?
            .into_iter()
            .collect();
        let waiting = |u: UserId| u != uploader && !fetched.contains(&u);
        for (conversation, msg_id) in self.state.media_uses(media, MAX_USES).await? {
            let pending =
                match conversation {
                    ConversationId::Direct { low, high } => waiting(low) || waiting(high),
                    ConversationId::Group(g) => self.state.group(g).await?.is_some_and(|g| {
                        g.members.iter().any(|m| m.sees(msg_id) && waiting(m.user))
                    }),
                };
            if pending {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// An avatar is shown to everyone for as long as it is one.
    async fn is_avatar(&self, media: MediaId, record: &MediaRecord) -> Result<bool> {
        let id = media.to_string();
        let account = self.state.account(record.uploader).await?;
        Ok(account.is_some_and(|a| a.avatar_media_id.as_deref() == Some(id.as_str())))
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
        // Owners' entries of sessions (written before the session) go
        // with the same age.
        for b in self.blobs.list(UPLOADS_BY).await? {
            if b.modified_ms + lifetime < now {
                self.blobs.delete(&b.key).await?;
            }
        }
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
