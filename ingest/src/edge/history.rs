//! Scrollback, the conversation list and search, from the history store
//! (which trails the log by about a second). Members only: a group member
//! reads the span they were a member for.

use std::sync::Arc;

use parley_engines::history::MAX_PAGE;
use parley_engines::History;
use parley_schemas::event::MessageSent;
use parley_schemas::group::Member;
use parley_schemas::ids::{ConversationId, MessageId, UserId};
use parley_schemas::wire::{
    fold, ConversationEntry, MsgFrame, NotifySettings, DEFAULT_PAGE, MAX_PAGE_BYTES,
};

use super::core::{Access, Core};
use crate::error::ApiError;

/// A search's longest query, most words, default results, and how many of
/// the caller's newest conversations it covers when none is named.
pub const MAX_QUERY_BYTES: usize = 256;
const MAX_TERMS: usize = 8;
const DEFAULT_RESULTS: u32 = 20;
const SEARCHED_CONVERSATIONS: usize = 500;
/// Reads of the history one page may take when hidden messages leave it short.
const REFILLS: usize = 4;
/// The longest conversation list one call returns, and its default.
const MAX_CONVERSATIONS: usize = 500;
const DEFAULT_CONVERSATIONS: u32 = 100;

/// A page of scrollback.
#[derive(Debug)]
pub struct Page {
    pub messages: Vec<MsgFrame>,
    /// Cut short by its size: more is there below the last message.
    pub more: bool,
}

/// Cuts `page` where its messages' JSON passes `max` bytes, keeping at
/// least one; whether it did.
fn cut_to_bytes(page: &mut Vec<MsgFrame>, max: usize) -> bool {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut total = Count(0);
    for (i, m) in page.iter().enumerate() {
        serde_json::to_writer(&mut total, m).expect("frames serialize");
        if total.0 > max && i > 0 {
            page.truncate(i);
            return true;
        }
    }
    false
}

pub struct HistoryReads {
    core: Arc<Core>,
    history: Arc<dyn History>,
    /// `until_delivered`: the server keeps no content, so scrollback is
    /// what the devices hold and the server answers none.
    no_scrollback: bool,
}

impl HistoryReads {
    pub fn new(core: Arc<Core>, history: Arc<dyn History>, no_scrollback: bool) -> HistoryReads {
        HistoryReads {
            core,
            history,
            no_scrollback,
        }
    }

    /// A page of scrollback for a member: newest first, below `before`.
    /// `limit` is 1..=200, 50 if not given; a page whose JSON would pass
    /// [`MAX_PAGE_BYTES`] is cut short, and says `more`.
    pub async fn page(
        &self,
        user: UserId,
        conversation: ConversationId,
        before: Option<MessageId>,
        limit: Option<u32>,
    ) -> Result<Page, ApiError> {
        let mut messages = self.full_page(user, conversation, before, limit).await?;
        let more = cut_to_bytes(&mut messages, MAX_PAGE_BYTES);
        Ok(Page { messages, more })
    }

    async fn full_page(
        &self,
        user: UserId,
        conversation: ConversationId,
        before: Option<MessageId>,
        limit: Option<u32>,
    ) -> Result<Vec<MsgFrame>, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_PAGE) as usize;
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "limit must be 1..={MAX_PAGE}"
            )));
        }
        // A group member reads the span they were in: nothing before they
        // joined, nothing after they left.
        let (mut before, mut after) = (before, None);
        let mut span = None;
        if let Access::Group(state) = self.core.access(user, &conversation, false).await? {
            let m = state.entry(user).expect("access found the member");
            span = Some(m.clone());
            after = m.joined;
            match m.left {
                Some(None) => return Ok(Vec::new()),
                Some(Some(last)) => {
                    let end = MessageId(last.0 + 1);
                    before = Some(before.map_or(end, |b| b.min(end)));
                }
                None => {}
            }
        }
        if self.no_scrollback {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(limit);
        // Messages the caller hid leave a page short: read on below them
        // (a few times at most) so a page is full while there is more.
        for _ in 0..REFILLS {
            let page: Vec<MessageSent> = self
                .history
                .page(conversation, before, limit - out.len())
                .await?
                .into_iter()
                .filter(|m| Some(m.msg_id) > after)
                .collect();
            let Some(last) = page.last() else { break };
            before = Some(last.msg_id);
            let full = page.len() == limit - out.len();
            out.extend(
                self.folded(user, conversation, &page, span.as_ref())
                    .await?,
            );
            if !full || out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    /// `page` with the actions on its messages folded in, and quotes. A
    /// group member's `span` bounds those too: no edit or reaction made
    /// after they left, no quote of a message from before they joined.
    async fn folded(
        &self,
        user: UserId,
        conversation: ConversationId,
        page: &[MessageSent],
        span: Option<&Member>,
    ) -> Result<Vec<MsgFrame>, ApiError> {
        let ids: Vec<MessageId> = page.iter().map(|m| m.msg_id).collect();
        let quoted: Vec<MessageId> = page
            .iter()
            .filter_map(|m| m.reply_to)
            .filter(|r| !ids.contains(r))
            .collect();
        let (mut actions, mut quoted) = futures::try_join!(
            self.history.actions(conversation, &ids),
            self.history.messages(conversation, &quoted),
        )?;
        if let Some(span) = span {
            actions.retain(|a| span.sees(a.msg_id));
            quoted.retain(|q| span.sees(q.msg_id));
        }
        let frames = |ms: &[MessageSent]| ms.iter().map(|m| m.to_frame(None)).collect::<Vec<_>>();
        Ok(fold(
            user,
            &frames(page),
            &frames(&actions),
            &frames(&quoted),
        ))
    }

    /// Messages the caller may see whose text holds every word of `q`,
    /// in `conversation` or in their conversations (the newest
    /// [`SEARCHED_CONVERSATIONS`]), newest first, below `before`.
    pub async fn search(
        &self,
        user: UserId,
        q: &str,
        conversation: Option<ConversationId>,
        before: Option<MessageId>,
        limit: Option<u32>,
    ) -> Result<Vec<MsgFrame>, ApiError> {
        if q.len() > MAX_QUERY_BYTES {
            return Err(ApiError::too_large(format!(
                "a search is at most {MAX_QUERY_BYTES} bytes"
            )));
        }
        let terms: Vec<String> = q.split_whitespace().map(str::to_lowercase).collect();
        if terms.is_empty() || terms.len() > MAX_TERMS {
            return Err(ApiError::bad_request(format!(
                "q must hold 1..={MAX_TERMS} words"
            )));
        }
        let limit = limit.unwrap_or(DEFAULT_RESULTS) as usize;
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "limit must be 1..={MAX_PAGE}"
            )));
        }
        let conversations = match conversation {
            Some(c) => vec![c],
            None => self
                .history
                .conversations(user, SEARCHED_CONVERSATIONS)
                .await?
                .into_iter()
                .map(|s| s.conversation)
                .collect(),
        };
        // A group member finds only what was sent while they were one.
        let mut spans = std::collections::HashMap::new();
        let mut readable = Vec::with_capacity(conversations.len());
        for c in conversations {
            match self.core.access(user, &c, false).await {
                Ok(Access::Group(state)) => {
                    let m = state.entry(user).expect("access found the member").clone();
                    spans.insert(c, m);
                }
                Ok(Access::Direct) => {}
                // Listed, but no longer theirs to read: skipped, unless it
                // is the one conversation asked for.
                Err(e) if e.is_no_access() && conversation.is_none() => continue,
                Err(e) => return Err(e),
            }
            readable.push(c);
        }
        let conversations = readable;
        if self.no_scrollback {
            return Ok(Vec::new());
        }
        let found = self
            .history
            .search(&conversations, &terms, before, limit)
            .await?;
        let seen: Vec<MessageSent> = found
            .into_iter()
            .filter(|m| spans.get(&m.conversation).is_none_or(|s| s.sees(m.msg_id)))
            .collect();
        let mut out = Vec::with_capacity(seen.len());
        for m in &seen {
            // Folded one by one: results are few, and each shows as in
            // its chat (edited, reactions, hidden for the caller). An
            // edit that took the words out takes the message out too.
            let span = spans.get(&m.conversation);
            let folded = self
                .folded(user, m.conversation, std::slice::from_ref(m), span)
                .await?;
            out.extend(folded.into_iter().filter(|f| {
                let shown = MessageSent {
                    body: f.body.clone(),
                    ..m.clone()
                };
                parley_engines::history::matches(&shown, &terms)
            }));
        }
        Ok(out)
    }

    /// The caller's conversations, newest activity first, `limit`
    /// 1..=500 (100 if not given).
    pub async fn conversations(
        &self,
        user: UserId,
        limit: Option<u32>,
    ) -> Result<Vec<ConversationEntry>, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_CONVERSATIONS) as usize;
        if !(1..=MAX_CONVERSATIONS).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "limit must be 1..={MAX_CONVERSATIONS}"
            )));
        }
        let list = self.history.conversations(user, limit).await?;
        let stored = self.core.state.notify_settings(user).await?;
        let kept = NotifySettings::from_stored(stored.as_deref());
        let mut entries: Vec<ConversationEntry> = list
            .into_iter()
            .map(|s| {
                let key = s.conversation.to_string();
                ConversationEntry {
                    conversation_id: s.conversation,
                    last_message: s.last.to_frame(None),
                    unread: s.unread,
                    pinned: kept.pinned.contains(&key),
                    archived: kept.archived.contains(&key),
                }
            })
            .collect();
        // Pinned first; otherwise newest activity first, as the store gave.
        entries.sort_by_key(|e| !e.pinned);
        Ok(entries)
    }
}
