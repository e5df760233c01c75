//! The history seam: every message ever sent, for scrollback and the
//! conversation list, plus the receipt and presence rows analysts query.
//!
//! The history writer (`parley-analytics`) is its only writer. It derives
//! batches from the log and may write a batch again after a crash (it
//! records its offset only after the history accepted the batch), so
//! [`History::write`] must be idempotent: a row written twice reads as one.
//!
//! Actions on messages (edits, deletions, reactions) are messages too;
//! stores keep them apart from content so that pages and unread counts
//! skip them, and a deletion for everyone also removes the content of the
//! message it names, and of that message's edits, from the store.

use async_trait::async_trait;
use parley_schemas::event::{MessageSent, Receipt};
use parley_schemas::ids::{ConversationId, MessageId, UserId};
use parley_schemas::wire::{ReceiptStatus, Recipient};

use crate::error::Result;

/// One cumulative receipt expanded to one message: what delivered and read
/// latencies are computed from. Keyed by `(msg_id, by, status)`; if it is
/// written twice with different `ts`, the earliest counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageReceipt {
    pub conversation: ConversationId,
    pub msg_id: MessageId,
    /// The message's sender.
    pub sender: UserId,
    pub by: UserId,
    pub status: ReceiptStatus,
    /// When the message was sent.
    pub sent_ts: u64,
    /// When the receipt was appended.
    pub ts: u64,
}

/// A user's time online: from the first heartbeat after being offline to
/// the last one (or the closing one). Keyed by `(user, start)`; a session
/// is written again each time it grows, and the largest `end` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceSession {
    pub user: UserId,
    pub start: u64,
    pub end: u64,
    /// Heartbeats with `active: true` seen in the session so far.
    pub active_beats: u64,
}

/// What the history writer hands over in one call.
#[derive(Debug, Clone, Default)]
pub struct HistoryBatch {
    pub messages: Vec<MessageSent>,
    /// Cumulative receipts as clients sent them: the read marks behind
    /// unread counts.
    pub marks: Vec<Receipt>,
    pub receipts: Vec<MessageReceipt>,
    pub sessions: Vec<PresenceSession>,
    /// Group messages: the members whose conversation lists hold each
    /// (those who may see it). A message not here is listed by
    /// [`participants`].
    pub listed: std::collections::HashMap<MessageId, Vec<UserId>>,
}

impl HistoryBatch {
    /// The users whose conversation list `m` belongs to.
    pub fn listed_for(&self, m: &MessageSent) -> Vec<UserId> {
        match self.listed.get(&m.msg_id) {
            Some(users) => users.clone(),
            None => participants(m),
        }
    }

    /// Where each user's conversation list moves to with this batch: their
    /// newest listed message per conversation. One entry per member and
    /// group per batch, however many messages the group got in it.
    pub fn newest_listed(&self) -> std::collections::BTreeMap<(UserId, ConversationId), MessageId> {
        let mut newest = std::collections::BTreeMap::new();
        // An edit, deletion or reaction is not a conversation's last message.
        for m in self.messages.iter().filter(|m| !m.body.is_action()) {
            for user in self.listed_for(m) {
                let e = newest.entry((user, m.conversation)).or_insert(m.msg_id);
                *e = (*e).max(m.msg_id);
            }
        }
        newest
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.marks.is_empty()
            && self.receipts.is_empty()
            && self.sessions.is_empty()
    }

    pub fn rows(&self) -> usize {
        self.messages.len() + self.marks.len() + self.receipts.len() + self.sessions.len()
    }
}

/// One entry of a user's conversation list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationSummary {
    pub conversation: ConversationId,
    pub last: MessageSent,
    /// Messages from others after the user's read mark.
    pub unread: u64,
}

/// The users whose conversation list a message belongs to, from the
/// message alone: a 1:1 chat names both; of a group message only the
/// sender is known here (the writer adds the members, [`HistoryBatch::listed`]).
pub fn participants(m: &MessageSent) -> Vec<UserId> {
    match (m.conversation, m.to) {
        (ConversationId::Direct { low, high }, _) if low == high => vec![low],
        (ConversationId::Direct { low, high }, _) => vec![low, high],
        (_, Recipient::User(u)) if u != m.from => vec![m.from, u],
        _ => vec![m.from],
    }
}

/// Whether `m` is content [`History::search`] finds for `terms`
/// (lowercase): the embedded store's rule, which ClickHouse's query
/// follows.
pub fn matches(m: &MessageSent, terms: &[String]) -> bool {
    use parley_schemas::wire::Body;
    let text = match &m.body {
        Body::Text(t) => t,
        Body::Media(media) => media.caption.as_deref().unwrap_or_default(),
        _ => return false,
    };
    holds(text, terms)
}

/// Whether `m` is an edit whose new text holds every one of `terms`: the
/// message it edits is found by [`History::search`] too.
pub fn edit_matches(m: &MessageSent, terms: &[String]) -> bool {
    matches!(&m.body, parley_schemas::wire::Body::Edit(e) if holds(&e.text, terms))
}

fn holds(text: &str, terms: &[String]) -> bool {
    let text = text.to_lowercase();
    !terms.is_empty() && terms.iter().all(|t| text.contains(t.as_str()))
}

/// The newest `limit` of two lists of hits, once each (a message found by
/// its text and by an edit is in both).
pub fn newest_hits(
    mut found: Vec<MessageSent>,
    by_edits: Vec<MessageSent>,
    limit: usize,
) -> Vec<MessageSent> {
    found.extend(by_edits);
    found.sort_by_key(|m| std::cmp::Reverse(m.msg_id));
    found.dedup_by_key(|m| m.msg_id);
    found.truncate(limit);
    found
}

/// Newest first, at most this many messages per page.
pub const MAX_PAGE: usize = 200;

#[async_trait]
pub trait History: Send + Sync + 'static {
    /// Stores a batch. Idempotent: rows already stored are not duplicated.
    async fn write(&self, batch: &HistoryBatch) -> Result<()>;

    /// A conversation's messages with `msg_id < before` (all if `None`),
    /// newest first, at most `limit`; actions on messages are not among
    /// them. A message deleted for everyone is there with its content
    /// gone. Passing the last id of a page as the
    /// next `before` walks the whole conversation once.
    async fn page(
        &self,
        conversation: ConversationId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<MessageSent>>;

    /// The actions (edits, deletions, hides, reactions: messages with an
    /// action body) on any of `targets` in `conversation`, oldest first.
    /// [`page`](Self::page) never returns them; scrollback folds them in.
    async fn actions(
        &self,
        conversation: ConversationId,
        targets: &[MessageId],
    ) -> Result<Vec<MessageSent>>;

    /// Those of `ids` that `conversation` holds (quoted by replies), in
    /// any order.
    async fn messages(
        &self,
        conversation: ConversationId,
        ids: &[MessageId],
    ) -> Result<Vec<MessageSent>>;

    /// Text and media messages of `conversations` (captions included, no
    /// `e2e` or action) whose text, or the text of one of their edits,
    /// holds every one of `terms` (lowercase, matched case-insensitively),
    /// with `msg_id < before`, newest first, at most `limit`, as they were
    /// sent (the caller folds the edits in, and may drop those whose
    /// latest text no longer holds the terms). Content a deletion removed
    /// is not found.
    async fn search(
        &self,
        conversations: &[ConversationId],
        terms: &[String],
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<MessageSent>>;

    /// The user's conversations, newest activity first, at most `limit`.
    async fn conversations(&self, user: UserId, limit: usize) -> Result<Vec<ConversationSummary>>;

    /// The latest session of each of `users` that has one, so a restarted
    /// writer can extend a session that began before its restart.
    async fn last_sessions(&self, users: &[UserId]) -> Result<Vec<PresenceSession>>;

    /// Deletes the messages sent before `before` (ms since the Unix epoch),
    /// their receipts, and conversation-list entries whose newest message
    /// went with them (`retention.history_days`). Aggregates for analysts
    /// (volumes, active users, presence sessions) stay. It may complete
    /// in the background (ClickHouse runs it as a mutation).
    async fn expire(&self, before: u64) -> Result<()>;
}
