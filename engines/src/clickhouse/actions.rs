//! Actions on messages in ClickHouse: what a deletion for everyone
//! blanks, and how a search word becomes a `LIKE` pattern.

use parley_schemas::wire::Body;

use super::{engine_err, placeholders, ClickHouseHistory};
use crate::error::Result;
use crate::history::HistoryBatch;

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
