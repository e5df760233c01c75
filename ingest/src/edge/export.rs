//! Account export (GDPR, docs/protocol-additions.md): everything the
//! server holds about the caller that they may see, as one JSON archive:
//! profile, contacts, blocks, privacy, conversation settings, groups, and
//! the messages of their conversations as scrollback shows them.
//!
//! The archive is streamed, a scrollback page at a time, so an export's
//! memory does not grow with the account: what is small (profile, lists,
//! groups) is read before the answer starts; the messages follow through a
//! channel of a few pages, so a slow download holds the reader back
//! instead of piling up. Messages go oldest first while history pages run
//! newest first: a first walk notes where each page starts (one id per
//! page), a second reads the pages again from the oldest. An error
//! after the answer started cuts the download (the JSON then does not
//! parse): the client tries again.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use parley_engines::history::MAX_PAGE;
use parley_schemas::ids::{now_ms, ConversationId, MessageId, UserId};
use parley_schemas::wire::{AccountExport, MsgFrame};
use tokio::sync::mpsc;

use super::Edge;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::guard::Throttle;
use crate::internal_events::Limit;

/// Messages one archive holds at most; past it, `truncated` says so.
pub const MAX_EXPORT_MESSAGES: usize = 200_000;
/// Conversations one archive covers, newest activity first.
const MAX_EXPORT_CONVERSATIONS: u32 = 500;
/// Exports a user may make an hour: each reads their whole history.
const PER_HOUR: u32 = 4;
/// Chunks (a page of messages each, at most) waiting for the client.
const QUEUED: usize = 2;

pub fn throttle() -> Throttle<UserId> {
    Throttle::new(
        Limit::Exports,
        PER_HOUR,
        Duration::from_secs(3600),
        PER_HOUR,
    )
}

type Chunk = Result<Bytes, std::io::Error>;

/// Where one conversation's pages start, newest first: each page's
/// `before`, and the oldest id it holds.
type Pages = Vec<(Option<MessageId>, MessageId)>;

impl Edge {
    /// `GET /v1/users/me/export`: the archive's bytes, in order.
    pub async fn export(
        self: &Arc<Self>,
        caller: Caller,
    ) -> Result<impl Stream<Item = Chunk> + Send + 'static, ApiError> {
        self.exports.check(&caller.user)?;
        let user = caller.user;
        let list = self
            .history
            .conversations(user, Some(MAX_EXPORT_CONVERSATIONS))
            .await?;
        let mut groups = Vec::new();
        for entry in &list {
            // Groups they are in now; former ones keep their messages.
            if let ConversationId::Group(g) = entry.conversation_id {
                if let Ok(info) = self.groups.info(caller, g).await {
                    groups.push(info);
                }
            }
        }
        let head = AccountExport {
            exported_at: now_ms(),
            profile: self.accounts.profile(user).await?,
            contacts: self.contacts.list(user).await?.contacts,
            blocked: self.contacts.blocked(user).await?.blocked,
            privacy: self.contacts.privacy(user).await?,
            settings: self.notifications.settings(caller).await?,
            groups,
            conversations: Vec::new(),
            truncated: false,
        };
        let (tx, rx) = mpsc::channel::<Chunk>(QUEUED);
        let edge = self.clone();
        let conversations: Vec<ConversationId> =
            list.into_iter().map(|e| e.conversation_id).collect();
        tokio::spawn(async move {
            if let Err(e) = edge.write_export(user, head, conversations, &tx).await {
                tracing::warn!(error = %e.message, "export cut off");
                let _ = tx.send(Err(std::io::Error::other(e.message))).await;
            }
        });
        Ok(futures::stream::unfold(rx, |mut rx| async {
            rx.recv().await.map(|c| (c, rx))
        }))
    }

    /// Writes the archive into `tx`; a closed channel (the client went)
    /// ends it quietly.
    async fn write_export(
        &self,
        user: UserId,
        head: AccountExport,
        conversations: Vec<ConversationId>,
        tx: &mpsc::Sender<Chunk>,
    ) -> Result<(), ApiError> {
        let send = |b: Vec<u8>| async move { tx.send(Ok(Bytes::from(b))).await.is_ok() };
        // The head as serde writes it, cut before the (empty) list of
        // conversations, which the pages then fill in.
        let head = serde_json::to_vec(&head).expect("archives serialize");
        let tail = br#""conversations":[],"truncated":false}"#;
        let open = head.len() - tail.len() + br#""conversations":["#.len();
        debug_assert!(head.ends_with(tail));
        if !send(head[..open].to_vec()).await {
            return Ok(());
        }
        let mut left = MAX_EXPORT_MESSAGES;
        let mut first = true;
        for c in conversations {
            if left == 0 {
                break;
            }
            let Some(pages) = self.pages(user, c, &mut left).await? else {
                continue;
            };
            let mut out = Vec::new();
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend(br#"{"conversation_id":"#);
            serde_json::to_writer(&mut out, &c).expect("ids serialize");
            out.extend(br#","messages":["#);
            let mut first_message = true;
            for &(before, oldest) in pages.iter().rev() {
                let mut page = self
                    .history
                    .page(user, c, before, Some(MAX_PAGE as u32))
                    .await?
                    .messages;
                page.retain(|m| m.msg_id >= oldest);
                page.reverse();
                for m in &page {
                    if !first_message {
                        out.push(b',');
                    }
                    first_message = false;
                    serde_json::to_writer(&mut out, m as &MsgFrame).expect("frames serialize");
                }
                if !send(std::mem::take(&mut out)).await {
                    return Ok(());
                }
            }
            out.extend(b"]}");
            if !send(out).await {
                return Ok(());
            }
        }
        let end = format!(r#"],"truncated":{}}}"#, left == 0);
        send(end.into_bytes()).await;
        Ok(())
    }

    /// The first walk over `conversation`: where its pages start, newest
    /// first, within the `left` messages the archive still takes; `None`
    /// if it is no longer the caller's to read (a group that forgot them,
    /// a deleted peer), so it is left out, not exported empty.
    async fn pages(
        &self,
        user: UserId,
        conversation: ConversationId,
        left: &mut usize,
    ) -> Result<Option<Pages>, ApiError> {
        let mut starts = Vec::new();
        let mut before = None;
        while *left > 0 {
            let limit = (*left).min(MAX_PAGE) as u32;
            let page = match self
                .history
                .page(user, conversation, before, Some(limit))
                .await
            {
                Ok(page) => page,
                Err(e) if e.is_no_access() => return Ok(None),
                Err(e) => return Err(e),
            };
            let (more, page) = (page.more, page.messages);
            let (Some(newest), Some(last)) = (page.first(), page.last()) else {
                break;
            };
            // The top page is pinned to what is there now: a message
            // arriving meanwhile is not half in the archive.
            let top = before.or(Some(MessageId(newest.msg_id.0 + 1)));
            starts.push((top, last.msg_id));
            before = Some(last.msg_id);
            *left -= page.len();
            if !more && page.len() < limit as usize {
                break;
            }
        }
        Ok(Some(starts))
    }
}
