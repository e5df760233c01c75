//! Actions on messages in ClickHouse: what a deletion for everyone
//! blanks, how a search word becomes a `LIKE` pattern, and the messages
//! a search finds by their edits.

use std::collections::BTreeMap;

use parley_schemas::event::MessageSent;
use parley_schemas::ids::{ConversationId, MessageId};
use parley_schemas::wire::Body;

use super::{engine_err, placeholders, ClickHouseHistory};
use crate::error::{EngineError, Result};
use crate::history::{History, HistoryBatch};

impl ClickHouseHistory {
    /// Deleted for everyone: the content of each message a batch deletes,
    /// and of its edits, is blanked by a mutation (ClickHouse rewrites the
    /// parts concerned in the background; until then scrollback hides it
    /// by the deletion it finds).
    pub(super) async fn forget_deleted(&self, batch: &HistoryBatch) -> Result<()> {
        let gone: Vec<(String, u64)> = batch
            .messages
            .iter()
            .filter_map(|m| match &m.body {
                Body::Delete(d) if !d.for_me => Some((m.conversation.to_string(), d.msg_id.0)),
                _ => None,
            })
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        let pairs = placeholders(gone.len());
        let mut q = self.client.query(&format!(
            "ALTER TABLE messages UPDATE text = '', caption = '', media_id = '' \
             WHERE (conversation, msg_id) IN ({pairs}) \
             OR (kind = 'edit' AND (conversation, target) IN ({pairs}))"
        ));
        for _ in 0..2 {
            for (c, id) in &gone {
                q = q.bind((c.as_str(), *id));
            }
        }
        q.execute().await.map_err(engine_err)
    }
}

impl ClickHouseHistory {
    /// Messages of `conversations` below `upper` that an edit gave text
    /// holding every one of `terms`, as sent; the newest `limit`: one
    /// read of the conversations' `kind` and `target` (the key narrows it
    /// to their granules), run beside the search of the messages' text.
    pub(super) async fn found_by_edits(
        &self,
        conversations: &[ConversationId],
        terms: &[String],
        upper: MessageId,
        limit: usize,
    ) -> Result<Vec<MessageSent>> {
        let held = terms
            .iter()
            .map(|_| "lowerUTF8(text) LIKE ?")
            .collect::<Vec<_>>()
            .join(" AND ");
        let sql = format!(
            "SELECT conversation, target FROM messages \
             WHERE conversation IN ({}) AND kind = 'edit' AND target < ? AND {held} \
             GROUP BY conversation, target ORDER BY target DESC LIMIT ?",
            placeholders(conversations.len())
        );
        let mut q = self.client.query(&sql);
        for c in conversations {
            q = q.bind(c.to_string());
        }
        q = q.bind(upper.0);
        for t in terms {
            q = q.bind(like_pattern(t));
        }
        let hits = q
            .bind(limit as u64)
            .fetch_all::<(String, u64)>()
            .await
            .map_err(engine_err)?;
        let mut by_conversation: BTreeMap<String, Vec<MessageId>> = BTreeMap::new();
        for (c, target) in hits {
            by_conversation
                .entry(c)
                .or_default()
                .push(MessageId(target));
        }
        let mut out = Vec::new();
        for (c, ids) in by_conversation {
            let c: ConversationId = c
                .parse()
                .map_err(|e| EngineError::State(format!("history: bad conversation {c:?}: {e}")))?;
            out.extend(self.messages(c, &ids).await?);
        }
        Ok(out)
    }
}

/// `%word%` for `LIKE`, with the word's own `%`, `_` and `\` taken
/// literally.
pub(super) fn like_pattern(word: &str) -> String {
    let mut p = String::with_capacity(word.len() + 2);
    p.push('%');
    for c in word.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}
