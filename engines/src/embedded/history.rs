//! The embedded [`History`]: one redb file, for `parley up` with no
//! servers. It keeps what scrollback, the conversation list and the
//! history writer read back; the analysts' tables (per-message receipts,
//! aggregates) exist only in ClickHouse.
//!
//! Tables:
//! - `messages`: `(conversation, msg_id)` → `(sender, encoded event)`
//! - `actions`: `(conversation, target, msg_id)` → encoded event: edits,
//!   deletions, hides and reactions, by the message they act on
//! - `conversations`: `(user, conversation)` → newest msg_id
//! - `read_marks`: `(conversation, user)` → highest msg_id read
//! - `sessions`: `(user, start)` → `(end, active beats)`
//!
//! Every write keeps the larger value, so a batch written twice changes
//! nothing.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use parley_schemas::codec;
use parley_schemas::event::{Event, MessageSent};
use parley_schemas::ids::{ConversationId, MessageId, UserId};
use parley_schemas::wire::{Body, ReceiptStatus};
use redb::{Database, ReadableTable, TableDefinition};

use crate::embedded::state::raise;
use crate::error::{EngineError, Result};
use crate::history::{
    edit_matches, matches, newest_hits, ConversationSummary, History, HistoryBatch,
    PresenceSession, MAX_PAGE,
};

const MESSAGES: TableDefinition<(&str, u64), (u64, &[u8])> = TableDefinition::new("messages");
const ACTIONS: TableDefinition<(&str, u64, u64), &[u8]> = TableDefinition::new("actions");
const CONVERSATIONS: TableDefinition<(u64, &str), u64> = TableDefinition::new("conversations");
const READ_MARKS: TableDefinition<(&str, u64), u64> = TableDefinition::new("read_marks");
const SESSIONS: TableDefinition<(u64, u64), (u64, u64)> = TableDefinition::new("sessions");

fn err(e: impl std::fmt::Display) -> EngineError {
    EngineError::State(format!("history: {e}"))
}

#[derive(Clone)]
pub struct RedbHistory {
    db: Arc<Database>,
}

/// The history file's page cache: scrollback reads the newest pages of a
/// conversation, and `parley up` is not the analysts' store.
pub const HISTORY_CACHE_BYTES: usize = 128 << 20;

impl RedbHistory {
    pub fn open(path: impl AsRef<Path>) -> Result<RedbHistory> {
        let db = super::state::create_database(path.as_ref(), HISTORY_CACHE_BYTES)?;
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(MESSAGES).map_err(err)?;
        tx.open_table(ACTIONS).map_err(err)?;
        tx.open_table(CONVERSATIONS).map_err(err)?;
        tx.open_table(READ_MARKS).map_err(err)?;
        tx.open_table(SESSIONS).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(RedbHistory { db: Arc::new(db) })
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        super::state::read_blocking(self.db.clone(), |db| db, f).await
    }
}

/// Deleted for everyone: the message keeps its place with its content
/// gone, and its edits stay as events with their texts gone.
fn forget(
    messages: &mut redb::Table<(&str, u64), (u64, &[u8])>,
    actions: &mut redb::Table<(&str, u64, u64), &[u8]>,
    cid: &str,
    target: MessageId,
) -> Result<()> {
    let old = messages
        .get((cid, target.0))
        .map_err(err)?
        .map(|v| (v.value().0, decode_message(v.value().1)));
    if let Some((from, m)) = old {
        let emptied = MessageSent {
            body: Body::Text(String::new()),
            ..m?
        };
        let encoded = codec::encode(&Event::MessageSent(emptied));
        messages
            .insert((cid, target.0), (from, encoded.as_slice()))
            .map_err(err)?;
    }
    let mut edits = Vec::new();
    for entry in actions
        .range((cid, target.0, 0)..=(cid, target.0, u64::MAX))
        .map_err(err)?
    {
        let (k, v) = entry.map_err(err)?;
        let mut a = decode_message(v.value())?;
        if let Body::Edit(e) = &mut a.body {
            e.text.clear();
            edits.push((k.value().2, codec::encode(&Event::MessageSent(a))));
        }
    }
    for (id, blank) in edits {
        actions
            .insert((cid, target.0, id), blank.as_slice())
            .map_err(err)?;
    }
    Ok(())
}

fn decode_message(bytes: &[u8]) -> Result<MessageSent> {
    match codec::decode(bytes) {
        Ok(Event::MessageSent(m)) => Ok(m),
        Ok(other) => Err(err(format!("a {} stored as a message", other.kind()))),
        Err(e) => Err(err(e)),
    }
}

#[async_trait]
impl History for RedbHistory {
    async fn write(&self, batch: &HistoryBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let batch = batch.clone();
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let tx = db.begin_write().map_err(err)?;
            {
                let mut messages = tx.open_table(MESSAGES).map_err(err)?;
                let mut convs = tx.open_table(CONVERSATIONS).map_err(err)?;
                let mut actions = tx.open_table(ACTIONS).map_err(err)?;
                for m in &batch.messages {
                    let cid = m.conversation.to_string();
                    let encoded = codec::encode(&Event::MessageSent(m.clone()));
                    let Some(target) = m.body.target() else {
                        messages
                            .insert((cid.as_str(), m.msg_id.0), (m.from.0, encoded.as_slice()))
                            .map_err(err)?;
                        continue;
                    };
                    actions
                        .insert((cid.as_str(), target.0, m.msg_id.0), encoded.as_slice())
                        .map_err(err)?;
                    if matches!(&m.body, Body::Delete(d) if !d.for_me) {
                        forget(&mut messages, &mut actions, &cid, target)?;
                    }
                }
                for ((user, c), id) in batch.newest_listed() {
                    raise(&mut convs, (user.0, c.to_string().as_str()), id.0)?;
                }
                let mut marks = tx.open_table(READ_MARKS).map_err(err)?;
                for r in batch
                    .marks
                    .iter()
                    .filter(|r| r.status == ReceiptStatus::Read)
                {
                    let cid = r.conversation.to_string();
                    raise(&mut marks, (cid.as_str(), r.by.0), r.up_to.0)?;
                }
                let mut sessions = tx.open_table(SESSIONS).map_err(err)?;
                for s in &batch.sessions {
                    let old = sessions
                        .get((s.user.0, s.start))
                        .map_err(err)?
                        .map(|v| v.value());
                    if old.is_none_or(|(end, _)| end < s.end) {
                        sessions
                            .insert((s.user.0, s.start), (s.end, s.active_beats))
                            .map_err(err)?;
                    }
                }
            }
            tx.commit().map_err(err)
        })
        .await
        .map_err(|_| EngineError::Closed)?
    }

    async fn page(
        &self,
        conversation: ConversationId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<MessageSent>> {
        let limit = limit.min(MAX_PAGE);
        self.read(move |tx| {
            let table = tx.open_table(MESSAGES).map_err(err)?;
            let cid = conversation.to_string();
            let end = before.map_or(u64::MAX, |b| b.0);
            let mut out = Vec::with_capacity(limit);
            for entry in table
                .range((cid.as_str(), 0)..(cid.as_str(), end))
                .map_err(err)?
                .rev()
                .take(limit)
            {
                let (_, v) = entry.map_err(err)?;
                out.push(decode_message(v.value().1)?);
            }
            Ok(out)
        })
        .await
    }

    async fn actions(
        &self,
        conversation: ConversationId,
        targets: &[MessageId],
    ) -> Result<Vec<MessageSent>> {
        let targets = targets.to_vec();
        self.read(move |tx| {
            let table = tx.open_table(ACTIONS).map_err(err)?;
            let cid = conversation.to_string();
            let mut out = Vec::new();
            for t in targets {
                for entry in table
                    .range((cid.as_str(), t.0, 0)..=(cid.as_str(), t.0, u64::MAX))
                    .map_err(err)?
                {
                    out.push(decode_message(entry.map_err(err)?.1.value())?);
                }
            }
            out.sort_by_key(|m| m.msg_id);
            Ok(out)
        })
        .await
    }

    async fn messages(
        &self,
        conversation: ConversationId,
        ids: &[MessageId],
    ) -> Result<Vec<MessageSent>> {
        let ids = ids.to_vec();
        self.read(move |tx| {
            let table = tx.open_table(MESSAGES).map_err(err)?;
            let cid = conversation.to_string();
            let mut out = Vec::new();
            for id in ids {
                if let Some(v) = table.get((cid.as_str(), id.0)).map_err(err)? {
                    out.push(decode_message(v.value().1)?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn search(
        &self,
        conversations: &[ConversationId],
        terms: &[String],
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<MessageSent>> {
        let (conversations, terms) = (conversations.to_vec(), terms.to_vec());
        let limit = limit.min(MAX_PAGE);
        self.read(move |tx| {
            let table = tx.open_table(MESSAGES).map_err(err)?;
            let actions = tx.open_table(ACTIONS).map_err(err)?;
            let end = before.map_or(u64::MAX, |b| b.0);
            let mut out = Vec::new();
            let mut by_edits = Vec::new();
            // Each conversation newest first, up to a page of its own;
            // the newest `limit` of all of them are the answer.
            for c in conversations {
                let cid = c.to_string();
                let mut found = 0;
                for entry in table
                    .range((cid.as_str(), 0)..(cid.as_str(), end))
                    .map_err(err)?
                    .rev()
                {
                    let m = decode_message(entry.map_err(err)?.1.value().1)?;
                    if matches(&m, &terms) {
                        out.push(m);
                        found += 1;
                        if found == limit {
                            break;
                        }
                    }
                }
                // Edited messages whose new text holds the terms, the
                // newest `limit` of them (targets below `end`).
                let mut targets: Vec<u64> = Vec::new();
                for entry in actions
                    .range((cid.as_str(), 0, 0)..(cid.as_str(), end, 0))
                    .map_err(err)?
                    .rev()
                {
                    let (k, v) = entry.map_err(err)?;
                    let target = k.value().1;
                    if targets.last() == Some(&target) {
                        continue;
                    }
                    if targets.len() == limit {
                        break;
                    }
                    if edit_matches(&decode_message(v.value())?, &terms) {
                        targets.push(target);
                    }
                }
                for t in targets {
                    if let Some(v) = table.get((cid.as_str(), t)).map_err(err)? {
                        by_edits.push(decode_message(v.value().1)?);
                    }
                }
            }
            Ok(newest_hits(out, by_edits, limit))
        })
        .await
    }

    async fn conversations(&self, user: UserId, limit: usize) -> Result<Vec<ConversationSummary>> {
        self.read(move |tx| {
            let convs = tx.open_table(CONVERSATIONS).map_err(err)?;
            let mut newest: Vec<(u64, String)> = Vec::new();
            for entry in convs
                .range((user.0, "")..(user.0.saturating_add(1), ""))
                .map_err(err)?
            {
                let (k, v) = entry.map_err(err)?;
                newest.push((v.value(), k.value().1.to_owned()));
            }
            newest.sort_unstable_by(|a, b| b.cmp(a));
            newest.truncate(limit);
            let messages = tx.open_table(MESSAGES).map_err(err)?;
            let marks = tx.open_table(READ_MARKS).map_err(err)?;
            let mut out = Vec::with_capacity(newest.len());
            for (last_id, cid) in newest {
                let Some(last) = messages.get((cid.as_str(), last_id)).map_err(err)? else {
                    continue;
                };
                let last = decode_message(last.value().1)?;
                let mark = marks
                    .get((cid.as_str(), user.0))
                    .map_err(err)?
                    .map_or(0, |v| v.value());
                let mut unread = 0;
                for entry in messages
                    .range((cid.as_str(), mark.saturating_add(1))..=(cid.as_str(), last_id))
                    .map_err(err)?
                {
                    let (_, v) = entry.map_err(err)?;
                    if v.value().0 != user.0 {
                        unread += 1;
                    }
                }
                out.push(ConversationSummary {
                    conversation: last.conversation,
                    last,
                    unread,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn expire(&self, before: u64) -> Result<()> {
        let bound = MessageId::lower_bound_at(before).0;
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let tx = db.begin_write().map_err(err)?;
            tx.open_table(MESSAGES)
                .map_err(err)?
                .retain(|(_, id), _| id >= bound)
                .map_err(err)?;
            tx.open_table(CONVERSATIONS)
                .map_err(err)?
                .retain(|_, last| last >= bound)
                .map_err(err)?;
            tx.open_table(ACTIONS)
                .map_err(err)?
                .retain(|(_, _, id), _| id >= bound)
                .map_err(err)?;
            tx.commit().map_err(err)
        })
        .await
        .map_err(|_| EngineError::Closed)?
    }

    async fn last_sessions(&self, users: &[UserId]) -> Result<Vec<PresenceSession>> {
        let users = users.to_vec();
        self.read(move |tx| {
            let table = tx.open_table(SESSIONS).map_err(err)?;
            let mut out = Vec::new();
            for user in users {
                let last = table
                    .range((user.0, 0)..=(user.0, u64::MAX))
                    .map_err(err)?
                    .next_back();
                if let Some(entry) = last {
                    let (k, v) = entry.map_err(err)?;
                    let (end, active_beats) = v.value();
                    out.push(PresenceSession {
                        user,
                        start: k.value().1,
                        end,
                        active_beats,
                    });
                }
            }
            Ok(out)
        })
        .await
    }
}
