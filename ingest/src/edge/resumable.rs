//! Resumable uploads, for big files on bad networks: a session is created
//! with the file's size and type, chunks are `PUT` at the offset the
//! server has, and a cut connection loses only what had not arrived.
//!
//! Everything is kept in the blob store (so any edge of a cluster can take
//! the next chunk): `uploads/<id>/meta` (who, how big, what type, when) and
//! one part per chunk, `uploads/<id>/p<offset>`. A chunk cut off mid-way is
//! kept up to where it was cut. The offset is the sum of the parts. When
//! the last byte arrives the parts are read back, in order, through the
//! same path as a plain upload (sniffed, hashed, stored by content), and
//! deleted.

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use parley_engines::{BlobInfo, EngineError};
use parley_schemas::ids::{now_ms, UserId};
use parley_schemas::media::{upload_owner_key, upload_owner_prefix, MediaId, UPLOADS};
use parley_schemas::wire::MediaUploaded;
use serde::{Deserialize, Serialize};

use super::media::Media;
use crate::error::ApiError;

/// What a session's `meta` blob holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub owner: UserId,
    pub size: u64,
    /// The type the client declared, checked against the bytes at the end.
    pub mime: Option<String>,
    pub created: u64,
}

/// A session as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadState {
    pub upload_id: String,
    pub offset: u64,
    pub size: u64,
    pub expires_at: u64,
}

/// What a chunk came to.
pub enum Chunked {
    /// More to come from `offset` on.
    Partial(UploadState),
    /// The last byte arrived: the upload is stored.
    Done(MediaUploaded),
}

fn dir(id: MediaId) -> String {
    format!("{UPLOADS}{id}/")
}

fn part_key(id: MediaId, offset: u64) -> String {
    format!("{UPLOADS}{id}/p{offset:020}")
}

impl Media {
    /// Opens a session for a file of `size` bytes.
    pub async fn begin(
        &self,
        user: UserId,
        size: u64,
        mime: Option<&str>,
    ) -> Result<UploadState, ApiError> {
        self.admit(user, Some(size))?;
        if size == 0 {
            return Err(ApiError::bad_request("the upload is empty"));
        }
        let id = MediaId::random();
        let session = Session {
            owner: user,
            size,
            mime: mime.map(|m| m.chars().take(255).collect()),
            created: now_ms(),
        };
        let meta = serde_json::to_vec(&session).expect("sessions serialize");
        // Named under its owner first: a session always has its entry
        // there (one left without a session is swept by age).
        let w = self.blobs().writer().await?;
        w.commit(&upload_owner_key(user, id)).await?;
        let mut w = self.blobs().writer().await?;
        w.write(Bytes::from(meta)).await?;
        w.commit(&format!("{}meta", dir(id))).await?;
        let state = self.state(id, &session, 0);
        // Charged its whole size now: parts of many sessions cannot hold
        // more than the day's quota.
        self.quota.begin(user, id, size, state.expires_at);
        Ok(state)
    }

    /// Where session `id` of `user` stands; `not_found` for anyone else.
    pub async fn progress(&self, user: UserId, id: &str) -> Result<UploadState, ApiError> {
        let (id, session, parts) = self.session(user, id).await?;
        Ok(self.state(id, &session, offset(&parts)))
    }

    /// Takes the bytes from `start` on, which must be where the session
    /// is; `total`, if the client said it, must be the session's size.
    pub async fn chunk<S, E>(
        &self,
        user: UserId,
        id: &str,
        start: u64,
        total: Option<u64>,
        body: S,
    ) -> Result<Chunked, ApiError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        self.guard().media_chunks.check(&user)?;
        let (id, session, parts) = self.session(user, id).await?;
        let at = offset(&parts);
        if total.is_some_and(|t| t != session.size) {
            return Err(ApiError::bad_request(format!(
                "this upload is {} bytes",
                session.size
            )));
        }
        if start != at {
            return Err(ApiError::new(
                parley_schemas::wire::ErrorCode::Conflict,
                format!("the upload is at byte {at}; send from there"),
            ));
        }
        // Parts past the size (two chunks raced to one offset) end the
        // session's use: refused, never an underflow.
        let room = match session.size.checked_sub(at) {
            Some(room) if room > 0 => room,
            _ => {
                return Err(ApiError::new(
                    parley_schemas::wire::ErrorCode::Conflict,
                    format!("the upload holds {at} of {} bytes", session.size),
                ))
            }
        };
        let mut body = self.chunks(body);
        let mut w = self.blobs().writer().await?;
        let mut got = 0u64;
        let cut = loop {
            match body.next().await {
                Ok(Some(c)) => {
                    got += c.len() as u64;
                    if got > room {
                        w.abort().await;
                        return Err(ApiError::too_large(format!(
                            "{room} bytes were left of this upload"
                        )));
                    }
                    w.write(c).await?;
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        // What arrived before a cut is kept: the client resumes after it.
        if got > 0 {
            w.commit(&part_key(id, at)).await?;
        } else {
            w.abort().await;
        }
        if let Some(e) = cut {
            return Err(e);
        }
        if at + got < session.size {
            return Ok(Chunked::Partial(self.state(id, &session, at + got)));
        }
        self.finish(user, id, &session).await.map(Chunked::Done)
    }

    /// Reads the parts back through the plain upload path, then drops them.
    async fn finish(
        &self,
        user: UserId,
        id: MediaId,
        session: &Session,
    ) -> Result<MediaUploaded, ApiError> {
        let parts = self.parts(id).await?;
        let blobs = self.blobs().clone();
        let keys: Vec<String> = parts.iter().map(|p| p.key.clone()).collect();
        let stream = futures::stream::iter(keys)
            .then(move |k| {
                let blobs = blobs.clone();
                async move {
                    blobs
                        .read(&k, None)
                        .await?
                        .ok_or_else(|| EngineError::State(format!("part {k} is gone")))
                }
            })
            .try_flatten()
            .boxed();
        // Charged at `begin` if it began on this edge; else as it is stored.
        let charged = self.quota.finish(user, id);
        let stored = self
            .store(user, session.mime.as_deref(), stream, charged)
            .await?;
        self.drop_session(user, id).await?;
        Ok(stored)
    }

    /// Deletes a session's parts and meta (done, or abandoned), then its
    /// owner's entry.
    async fn drop_session(&self, owner: UserId, id: MediaId) -> Result<(), ApiError> {
        for b in self.blobs().list(&dir(id)).await? {
            self.blobs().delete(&b.key).await?;
        }
        self.blobs().delete(&upload_owner_key(owner, id)).await?;
        Ok(())
    }

    /// Every unfinished session of `owner` goes (their account is being
    /// deleted).
    pub(crate) async fn drop_sessions_of(&self, owner: UserId) -> Result<(), ApiError> {
        let prefix = upload_owner_prefix(owner);
        for b in self.blobs().list(&prefix).await? {
            let id = b.key[prefix.len()..].parse::<MediaId>();
            match id {
                Ok(id) => self.drop_session(owner, id).await?,
                // Not one of ours: nothing to drop but the entry.
                Err(_) => self.blobs().delete(&b.key).await?,
            }
        }
        Ok(())
    }

    async fn parts(&self, id: MediaId) -> Result<Vec<BlobInfo>, ApiError> {
        let mut parts: Vec<BlobInfo> = self
            .blobs()
            .list(&dir(id))
            .await?
            .into_iter()
            .filter(|b| b.key.rsplit('/').next().is_some_and(|n| n.starts_with('p')))
            .collect();
        parts.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(parts)
    }

    async fn session(
        &self,
        user: UserId,
        id: &str,
    ) -> Result<(MediaId, Session, Vec<BlobInfo>), ApiError> {
        let missing = || ApiError::not_found("no such upload");
        let id: MediaId = id.parse().map_err(|_| missing())?;
        let meta = self
            .blobs()
            .read(&format!("{}meta", dir(id)), None)
            .await?
            .ok_or_else(missing)?;
        let meta: Vec<Bytes> = meta.try_collect().await?;
        let session: Session = serde_json::from_slice(&meta.concat())
            .map_err(|e| ApiError::from(EngineError::State(format!("upload meta: {e}"))))?;
        // Past its time it is the sweeper's (and its charge refunded).
        if session.owner != user || self.state(id, &session, 0).expires_at <= now_ms() {
            return Err(missing());
        }
        let parts = self.parts(id).await?;
        Ok((id, session, parts))
    }
}

fn offset(parts: &[BlobInfo]) -> u64 {
    parts.iter().map(|p| p.size).sum()
}

impl Media {
    fn state(&self, id: MediaId, s: &Session, offset: u64) -> UploadState {
        UploadState {
            upload_id: id.to_string(),
            offset,
            size: s.size,
            expires_at: s.created + self.limits().media_session_ms,
        }
    }
}
