//! Media: uploads streamed to the blob store, and who may fetch or send
//! them.
//!
//! An upload is hashed (SHA-256) and size-checked while it streams into a
//! blob writer; its type is sniffed from the first bytes; its blob is
//! committed under `blobs/<sha256>` (the same bytes stored once), and only
//! then is a `MediaAdded` appended to the uploader's `accounts` partition
//! and written to the store: the 201 means the bytes and the record are
//! durable. A failed, oversized or interrupted upload leaves no blob.
//!
//! Who may fetch media (and send it on): its uploader, and whoever may see
//! a message that carried it: both sides of a 1:1 chat, and in a group the
//! members whose span covers that message. Everyone else is told it does
//! not exist. This is read from state the jobs derive from the log (the
//! router records each message carrying media), so it holds on every edge
//! and after the store is rebuilt.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use parley_engines::state::MediaRecord;
use parley_engines::telemetry::emit;
use parley_engines::BlobStore;
use parley_engines::StateOp;
use parley_schemas::event::{Event, MediaAdded};
use parley_schemas::ids::{now_ms, ConversationId, GroupId, UserId};
use parley_schemas::media::{blob_key, MediaId, MAX_USES};
use parley_schemas::wire::MediaUploaded;
use sha2::{Digest, Sha256};

use super::core::Core;
use crate::error::ApiError;
use crate::guard::Guard;
use crate::internal_events::{Limit, LimitHit, MediaStored};

/// Bytes read before the type is sniffed: every signature `infer` knows
/// lies well within them.
const SNIFF_BYTES: usize = 8192;
use super::quota::{DailyQuota, DAY_MS};
/// How long an upload waits for the sweeper to finish deleting a blob of
/// the same bytes (a blob delete takes milliseconds).
const PIN_WAIT: Duration = Duration::from_secs(10);

pub struct Media {
    core: Arc<Core>,
    blobs: Arc<dyn BlobStore>,
    guard: Arc<Guard>,
    /// Bytes uploaded (or promised to sessions) today per user, on this edge.
    pub(crate) quota: DailyQuota,
    /// `until_delivered` retention: whole fetches are recorded, so the
    /// sweeper deletes what every recipient has.
    record_fetches: bool,
}

/// Where a stored upload's bytes are.
pub struct Stored {
    pub media: MediaId,
    pub record: MediaRecord,
    pub key: String,
    pub size: u64,
}

impl Media {
    pub fn new(
        core: Arc<Core>,
        blobs: Arc<dyn BlobStore>,
        guard: Arc<Guard>,
        record_fetches: bool,
    ) -> Media {
        Media {
            core,
            blobs,
            quota: DailyQuota::new(guard.limits.media_bytes_per_day),
            guard,
            record_fetches,
        }
    }

    /// `user` has been sent the whole of `media` (or its last byte, the
    /// end of a resumed download). Recorded only under `until_delivered`
    /// retention; a record lost here only leaves the media to
    /// `retention.media_days`, so a failure is logged, not returned.
    pub async fn fetched(&self, user: UserId, media: MediaId) {
        if !self.record_fetches {
            return;
        }
        let op = StateOp::MediaFetched {
            media,
            user,
            at: now_ms(),
        };
        if let Err(e) = self.core.state.write(vec![op]).await {
            tracing::warn!(error = %e, "recording a media fetch failed");
        }
    }

    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    pub(crate) fn limits(&self) -> &crate::limits::Limits {
        &self.guard.limits
    }

    pub(crate) fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Stores an upload. `declared` is the request's `Content-Type`,
    /// `length` its `Content-Length` if it gave one.
    pub async fn upload<S, E>(
        &self,
        user: UserId,
        declared: Option<&str>,
        length: Option<u64>,
        body: S,
    ) -> Result<MediaUploaded, ApiError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        self.admit(user, length)?;
        self.store(user, declared, body, false).await
    }

    /// The checks before an upload starts: the rate, the size if known,
    /// and what is left of the day's quota.
    pub(crate) fn admit(&self, user: UserId, length: Option<u64>) -> Result<(), ApiError> {
        let limits = &self.guard.limits;
        self.guard.media_uploads.check(&user)?;
        let max = limits.media_max_bytes;
        if length.is_some_and(|n| n > max) {
            emit(LimitHit {
                limit: Limit::MediaSize,
            });
            return Err(too_large(max));
        }
        let left = self.quota.left(user);
        if left == 0 || length.is_some_and(|n| n > left) {
            emit(LimitHit {
                limit: Limit::MediaQuota,
            });
            return Err(ApiError::rate_limited(
                format!(
                    "daily upload quota of {} bytes reached",
                    limits.media_bytes_per_day
                ),
                Duration::from_millis(DAY_MS - now_ms() % DAY_MS),
            ));
        }
        Ok(())
    }

    /// A request body, read a chunk at a time within the stall limit.
    pub(crate) fn chunks<S>(&self, body: S) -> Chunks<S> {
        Chunks {
            body,
            stall: self.guard.limits.media_stall(),
        }
    }

    /// Streams `body` into a blob and records the upload (see the module
    /// docs); what was admitted is checked again as it streams, against
    /// the quota unless it was `charged` already (a resumable session).
    pub(crate) async fn store<S, E>(
        &self,
        user: UserId,
        declared: Option<&str>,
        body: S,
        charged: bool,
    ) -> Result<MediaUploaded, ApiError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let max = self.guard.limits.media_max_bytes;
        let left = if charged { max } else { self.quota.left(user) };
        let mut body = self.chunks(body);
        let mut head = BytesMut::new();
        while head.len() < SNIFF_BYTES {
            match body.next().await? {
                Some(c) => head.extend_from_slice(&c),
                None => break,
            }
        }
        if head.is_empty() {
            return Err(ApiError::bad_request("the upload is empty"));
        }
        let mime = sniff(declared, &head)?;
        let mut writer = self.blobs.writer().await?;
        let mut hash = Sha256::new();
        let mut size = 0u64;
        let mut chunk = head.freeze();
        let outcome: Result<(), ApiError> = async {
            loop {
                size += chunk.len() as u64;
                if size > max.min(left) {
                    let limit = if size > max {
                        Limit::MediaSize
                    } else {
                        Limit::MediaQuota
                    };
                    emit(LimitHit { limit });
                    return Err(too_large(max.min(left)));
                }
                hash.update(&chunk);
                writer.write(chunk).await?;
                match body.next().await? {
                    Some(c) => chunk = c,
                    None => return Ok(()),
                }
            }
        }
        .await;
        if let Err(e) = outcome {
            writer.abort().await;
            return Err(e);
        }
        let sha256 = format!("{:x}", hash.finalize());
        // The same bytes may be an unreferenced blob the sweeper is about
        // to delete: pin it first, or wait until it is gone.
        let deadline = tokio::time::Instant::now() + PIN_WAIT;
        while !self.core.state.pin_blob(&sha256).await? {
            if tokio::time::Instant::now() > deadline {
                writer.abort().await;
                return Err(ApiError::new(
                    parley_schemas::wire::ErrorCode::Unavailable,
                    "the same file is being deleted; try again",
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        writer.commit(&blob_key(&sha256)).await?;
        if !charged {
            self.quota.charge(user, size);
        }
        let media = MediaId::random();
        let added = MediaAdded {
            media,
            uploader: user,
            sha256: sha256.clone(),
            size,
            mime: mime.clone(),
            ts: now_ms(),
        };
        self.core
            .append_account(user, &Event::MediaAdded(added.clone()))
            .await?;
        self.core
            .state
            .write(vec![StateOp::put_media(&added)])
            .await?;
        emit(MediaStored { bytes: size });
        Ok(MediaUploaded {
            media_id: media.to_string(),
            sha256,
            size,
            mime,
        })
    }

    /// The upload `id` names and where its bytes (or its thumbnail's) are,
    /// if `user` may fetch it; `not_found` otherwise, whether or not it
    /// exists.
    pub async fn open(&self, user: UserId, id: &str, thumbnail: bool) -> Result<Stored, ApiError> {
        let missing = || ApiError::not_found("no such media");
        let media: MediaId = id.parse().map_err(|_| missing())?;
        let record = usable(&self.core, user, media).await?.ok_or_else(missing)?;
        let key = if thumbnail {
            if !record.image.is_some_and(|i| i.thumbnail) {
                return Err(ApiError::not_found("no thumbnail of this media"));
            }
            parley_schemas::media::thumbnail_key(&record.sha256)
        } else {
            blob_key(&record.sha256)
        };
        let size = self.blobs.size(&key).await?.ok_or_else(missing)?;
        Ok(Stored {
            media,
            record,
            key,
            size,
        })
    }
}

/// The upload, if `user` may fetch it or send it on: its uploader,
/// someone who may see a message that carried it, or anyone while it is
/// its uploader's avatar.
pub(crate) async fn usable(
    core: &Core,
    user: UserId,
    media: MediaId,
) -> Result<Option<MediaRecord>, ApiError> {
    let Some(record) = core.state.media(media).await? else {
        return Ok(None);
    };
    if record.uploader == user {
        return Ok(Some(record));
    }
    let mut groups: HashMap<GroupId, Option<parley_schemas::group::GroupState>> = HashMap::new();
    for (conversation, msg_id) in core.state.media_uses(media, MAX_USES).await? {
        let sees = match conversation {
            ConversationId::Direct { .. } => conversation.is_direct_member(user),
            ConversationId::Group(g) => {
                let state = match groups.entry(g) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => e.insert(core.state.group(g).await?),
                };
                state
                    .as_ref()
                    .and_then(|s| s.entry(user))
                    .is_some_and(|m| m.sees(msg_id))
            }
        };
        if sees {
            return Ok(Some(record));
        }
    }
    // A user's current avatar is theirs to show to everyone signed in, as
    // the profile that names it is.
    let avatar = core.state.account(record.uploader).await?;
    let id = media.to_string();
    let is_avatar = avatar.is_some_and(|a| a.avatar_media_id.as_deref() == Some(id.as_str()));
    Ok((is_avatar && !core.state.blocks(record.uploader, user).await?).then_some(record))
}

fn too_large(max: u64) -> ApiError {
    ApiError::too_large(format!("the upload is over {max} bytes"))
}

/// The type the bytes are stored and served as. A type the bytes show is
/// kept if the client declared it or nothing specific; one they
/// contradict is refused. Bytes of no known type are stored as
/// `application/octet-stream`, unless the client called them an image,
/// audio or video, which they are not.
pub fn sniff(declared: Option<&str>, head: &[u8]) -> Result<String, ApiError> {
    let mime = sniffed(declared, head)?;
    // A page or a script is stored as bytes: served as itself, it would
    // run as this origin.
    Ok(if SCRIPTABLE.contains(&mime.as_str()) {
        "application/octet-stream".to_owned()
    } else {
        mime
    })
}

const SCRIPTABLE: [&str; 7] = [
    "text/html",
    "application/xhtml+xml",
    "image/svg+xml",
    "text/xml",
    "application/xml",
    "text/javascript",
    "application/javascript",
];

fn sniffed(declared: Option<&str>, head: &[u8]) -> Result<String, ApiError> {
    let declared = declared
        .and_then(|d| d.split(';').next())
        .map(|d| d.trim().to_ascii_lowercase())
        .filter(|d| !d.is_empty() && d != "application/octet-stream");
    let found = infer::get(head).map(|t| t.mime_type());
    match (declared, found) {
        (None, Some(t)) => Ok(t.to_owned()),
        (Some(d), Some(t)) if d == t || same_type(&d, t) => Ok(t.to_owned()),
        (Some(d), Some(t)) => Err(ApiError::bad_request(format!(
            "Content-Type says {d} but the bytes are {t}"
        ))),
        (Some(d), None)
            if d.starts_with("image/") || d.starts_with("video/") || d.starts_with("audio/") =>
        {
            Err(ApiError::bad_request(format!(
                "Content-Type says {d} but the bytes are not"
            )))
        }
        (_, None) => Ok("application/octet-stream".to_owned()),
    }
}

/// Aliases clients send for what `infer` names otherwise.
fn same_type(declared: &str, found: &str) -> bool {
    matches!(
        (declared, found),
        ("image/jpg", "image/jpeg")
            | ("image/pjpeg", "image/jpeg")
            | ("audio/mp3", "audio/mpeg")
            | ("video/quicktime", "video/quicktime")
            | ("application/x-zip-compressed", "application/zip")
    )
}

/// A request body read a chunk at a time, each within the stall limit.
pub(crate) struct Chunks<S> {
    body: S,
    stall: Duration,
}

impl<S, E> Chunks<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, ApiError> {
        loop {
            return match tokio::time::timeout(self.stall, self.body.next()).await {
                Err(_) => {
                    emit(LimitHit {
                        limit: Limit::MediaStall,
                    });
                    Err(ApiError::bad_request(format!(
                        "the upload stalled for {} s",
                        self.stall.as_secs()
                    )))
                }
                Ok(None) => Ok(None),
                Ok(Some(Ok(c))) if c.is_empty() => continue,
                Ok(Some(Ok(c))) => Ok(Some(c)),
                Ok(Some(Err(e))) => Err(ApiError::bad_request(format!(
                    "the upload was cut off: {e}"
                ))),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(sniff(None, PNG).unwrap(), "image/png");
        assert_eq!(sniff(Some("image/png"), PNG).unwrap(), "image/png");
        assert_eq!(
            sniff(Some("application/octet-stream"), PNG).unwrap(),
            "image/png"
        );
        let e = sniff(Some("image/jpeg"), PNG).unwrap_err();
        assert!(e.message.contains("image/png"), "{}", e.message);
        assert!(sniff(Some("image/png"), b"just text").is_err());
        // HTML is never served as HTML: stored as bytes.
        let html = b"<html><script>alert(1)</script></html>";
        assert_eq!(
            sniff(Some("text/html"), html).unwrap(),
            "application/octet-stream"
        );
        assert_eq!(
            sniff(Some("image/jpg"), b"\xff\xd8\xff\xe0\0\x10JFIF").unwrap(),
            "image/jpeg"
        );
    }
}
