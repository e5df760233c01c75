//! Resumable uploads, for big files on bad networks: a session is created
//! with the file's size and type, chunks are `PUT` at the offset the
//! server has, and a cut connection loses only what had not arrived.
//!
//! Everything is kept in the blob store (so any edge of a cluster can take
//! the next chunk): `uploads/<id>/meta` (who, how big, what type, when) and
//! one part per chunk, `uploads/<id>/p<offset>`. A chunk cut off mid-way is
//! kept up to where it was cut. The offset is where the chain of parts
//! that follow one another from byte 0 ends ([`Chain`]): two chunks raced
//! to one offset leave a part off the chain, which is never read. When the
//! chain reaches the size its parts are read back, in order, through the
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

/// A session's parts: those that follow one another from byte 0, where
/// they end, and the rest. A part is off the chain when two chunks raced
/// to one offset: the later commit replaced the first's part with one of
/// another length, and a chunk sent after the first lies past a gap or
/// inside the replacement.
#[derive(Debug, Default)]
pub(crate) struct Chain {
    pub parts: Vec<BlobInfo>,
    pub end: u64,
    pub strays: Vec<BlobInfo>,
}

impl Chain {
    /// From a session's blobs; parts are named by their offset.
    pub fn of(mut blobs: Vec<BlobInfo>) -> Chain {
        blobs.sort_by(|a, b| a.key.cmp(&b.key));
        let mut chain = Chain::default();
        for b in blobs {
            let Some(name) = b.key.rsplit('/').next() else {
                continue;
            };
            let Some(offset) = name.strip_prefix('p') else {
                continue;
            };
            if offset.parse::<u64>().ok() == Some(chain.end) && b.size > 0 {
                chain.end += b.size;
                chain.parts.push(b);
            } else {
                chain.strays.push(b);
            }
        }
        chain
    }
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
        let (id, session, chain) = self.session(user, id).await?;
        Ok(self.state(id, &session, chain.end))
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
        let (id, session, chain) = self.session(user, id).await?;
        let at = chain.end;
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
        // What a lost race left is not the upload's; it would only mislead
        // the next look at the chain.
        for b in &chain.strays {
            self.blobs().delete(&b.key).await?;
        }
        // A chain never passes the size (each part fit the room at its
        // offset); were it to, refused, never an underflow.
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
        // Another chunk at this offset may have replaced the part under
        // this one (a race): then it is off the chain, and not taken.
        let chain = self.chain(id).await?;
        if chain.end != at + got {
            return Err(ApiError::new(
                parley_schemas::wire::ErrorCode::Conflict,
                format!(
                    "another chunk was stored at byte {at} meanwhile; the upload is at byte {}",
                    chain.end
                ),
            ));
        }
        if chain.end < session.size {
            return Ok(Chunked::Partial(self.state(id, &session, chain.end)));
        }
        self.finish(user, id, &session, chain)
            .await
            .map(Chunked::Done)
    }

    /// Reads the parts back through the plain upload path, then drops them.
    async fn finish(
        &self,
        user: UserId,
        id: MediaId,
        session: &Session,
        chain: Chain,
    ) -> Result<MediaUploaded, ApiError> {
        let blobs = self.blobs().clone();
        let keys: Vec<String> = chain.parts.into_iter().map(|p| p.key).collect();
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

    async fn chain(&self, id: MediaId) -> Result<Chain, ApiError> {
        let blobs = self.blobs().list(&dir(id)).await?;
        Ok(Chain::of(blobs))
    }

    async fn session(&self, user: UserId, id: &str) -> Result<(MediaId, Session, Chain), ApiError> {
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
        let chain = self.chain(id).await?;
        Ok((id, session, chain))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn part(offset: u64, size: u64) -> BlobInfo {
        BlobInfo {
            key: part_key(MediaId(7), offset),
            size,
            modified_ms: 0,
        }
    }

    #[test]
    fn the_chain_follows_parts_from_zero_and_leaves_what_a_race_left() {
        let meta = BlobInfo {
            key: format!("{}meta", dir(MediaId(7))),
            size: 90,
            modified_ms: 0,
        };
        // p0 was replaced by a longer chunk after p30 was sent against
        // the shorter one: p30 lies inside it, p60 follows it.
        let blobs = vec![part(60, 40), meta, part(30, 70), part(0, 60)];
        let chain = Chain::of(blobs);
        assert_eq!(chain.end, 100);
        let keys = |v: &[BlobInfo]| v.iter().map(|b| b.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&chain.parts), keys(&[part(0, 60), part(60, 40)]));
        assert_eq!(keys(&chain.strays), keys(&[part(30, 70)]));
        // A gap ends it; an empty part is never a link.
        let chain = Chain::of(vec![part(0, 10), part(20, 5), part(10, 0)]);
        assert_eq!(
            (chain.end, chain.parts.len(), chain.strays.len()),
            (10, 1, 2)
        );
    }
}
