//! [`History`] on ClickHouse (feature `clickhouse`), through the
//! `clickhouse` crate over HTTP.
//!
//! Every table is a `ReplacingMergeTree` keyed by what identifies a row
//! (`messages` by `(conversation, msg_id)`), so a batch the writer inserts
//! twice after a crash collapses to one row at merge time; reads that must
//! be exact until then collapse duplicates themselves (`LIMIT 1 BY`,
//! `max`, `uniqExact`). ClickHouse 18.16 deduplicates repeated inserts only
//! on replicated tables, so the table engines are what makes replays safe.
//!
//! Layout: this file holds the schema and its migration, and the reads
//! and writes; `url` the `clickhouse://` URL; `rows` the table rows and
//! the message ↔ row mapping; `actions` what a deletion blanks, and the
//! search pattern.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{EngineError, Result};
use crate::history::{ConversationSummary, History, HistoryBatch, PresenceSession, MAX_PAGE};
use async_trait::async_trait;
use clickhouse::{Client, Row};
use parley_schemas::event::MessageSent;
use parley_schemas::ids::{ConversationId, MessageId, UserId};
use parley_schemas::wire::ReceiptStatus;
use serde::Serialize;

mod actions;
mod rows;
mod url;

use actions::like_pattern;
pub use rows::status_name;
use rows::*;
pub use url::ClickHouseUrl;

/// The schema for ClickHouse 18.16, what the tests start (see
/// `analytics/sql/schema.production.sql` for a current server; a test in
/// `parley-analytics` keeps the two in step). Statements are separated by
/// a line holding only `;`.
pub const SCHEMA: &str = include_str!("schema.sql");

/// Errors of the history calls as the engines see them: a server that does
/// not answer is worth retrying, anything else is not.
fn engine_err(e: clickhouse::error::Error) -> EngineError {
    match e {
        clickhouse::error::Error::Network(_) | clickhouse::error::Error::TimedOut => {
            EngineError::Unavailable(format!("clickhouse: {e}"))
        }
        other => EngineError::State(format!("clickhouse: {other}")),
    }
}

/// Scrollback's first window below `before`, and how much each further
/// one grows: 1 min, 32 min, 17 h, 23 days, 2 years, then everything; at
/// most six reads for the sparsest conversation, one for a busy one.
const FIRST_WINDOW_MS: u64 = 60_000;
const WINDOW_GROWTH: u64 = 32;

/// `?, ?, ?` for `n` bound values.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

#[derive(Clone)]
pub struct ClickHouseHistory {
    client: Client,
    url: ClickHouseUrl,
    /// Set once the schema is known to exist: every call makes sure of it
    /// first, so a role may start while ClickHouse is down.
    migrated: Arc<AtomicBool>,
}

impl ClickHouseHistory {
    /// A client for `url` (`clickhouse://...`). Nothing is sent yet; call
    /// [`migrate`](Self::migrate) to create the schema.
    pub fn connect(url: &str) -> Result<ClickHouseHistory> {
        let url = ClickHouseUrl::parse(url)?;
        let mut client = Client::default()
            .with_url(&url.http)
            .with_database(&url.database)
            // Validation reads RowBinaryWithNamesAndTypes, which 18.16 lacks.
            .with_validation(false);
        if let Some(user) = &url.user {
            client = client.with_user(user);
        }
        if let Some(password) = &url.password {
            client = client.with_password(password);
        }
        Ok(ClickHouseHistory {
            client,
            url,
            migrated: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// An analyst's `SELECT`, its result as ClickHouse's
    /// `TabSeparatedWithNames` (the analytics crate's ready queries).
    pub async fn select_tsv(&self, sql: &str) -> Result<bytes::Bytes> {
        self.client
            .query(sql)
            .fetch_bytes("TabSeparatedWithNames")
            .map_err(engine_err)?
            .collect()
            .await
            .map_err(engine_err)
    }

    /// Creates the database and every table and view that is missing, and
    /// adds the columns later versions added to tables made before them.
    pub async fn migrate(&self) -> Result<()> {
        let server = self.client.clone().with_database("default");
        server
            .query(&format!(
                "CREATE DATABASE IF NOT EXISTS {}",
                self.url.database
            ))
            .execute()
            .await
            .map_err(engine_err)?;
        for statement in statements(SCHEMA) {
            self.client
                .query(&statement)
                .execute()
                .await
                .map_err(engine_err)?;
        }
        self.add_columns().await?;
        self.migrated.store(true, Ordering::Release);
        Ok(())
    }

    /// `ADD COLUMN IF NOT EXISTS` is newer than 18.16: columns are looked
    /// up and the missing ones added (another node adding one meanwhile is
    /// fine: it is looked up again).
    async fn add_columns(&self) -> Result<()> {
        for (table, column, ty) in ADDED_COLUMNS {
            for attempt in 0..2 {
                let present: u64 = self
                    .client
                    .query(
                        "SELECT count() FROM system.columns \
                         WHERE database = currentDatabase() AND table = ? AND name = ?",
                    )
                    .bind(table)
                    .bind(column)
                    .fetch_one()
                    .await
                    .map_err(engine_err)?;
                if present > 0 {
                    break;
                }
                let added = self
                    .client
                    .query(&format!("ALTER TABLE {table} ADD COLUMN {column} {ty}"))
                    .execute()
                    .await;
                match added {
                    Ok(()) => break,
                    Err(e) if attempt == 1 => return Err(engine_err(e)),
                    Err(_) => continue,
                }
            }
        }
        Ok(())
    }

    async fn ensure_schema(&self) -> Result<()> {
        if self.migrated.load(Ordering::Acquire) {
            return Ok(());
        }
        self.migrate().await
    }

    async fn insert<T>(&self, table: &str, rows: Vec<T>) -> Result<()>
    where
        T: Row + Serialize + Send + Sync,
        for<'a> T: Row<Value<'a> = T>,
    {
        if rows.is_empty() {
            return Ok(());
        }
        let mut insert = self.client.insert::<T>(table).await.map_err(engine_err)?;
        for row in rows {
            insert.write(&row).await.map_err(engine_err)?;
        }
        insert.end().await.map_err(engine_err)
    }
}

impl ClickHouseHistory {
    /// The newest message of any of `conversations` (0 if none): a key
    /// look-up in `conversation_heads`.
    async fn head(&self, conversations: &[ConversationId]) -> Result<u64> {
        let mut q = self.client.query(&format!(
            "SELECT max(last_msg_id) FROM conversation_heads WHERE conversation IN ({})",
            placeholders(conversations.len())
        ));
        for c in conversations {
            q = q.bind(c.to_string());
        }
        q.fetch_one::<u64>().await.map_err(engine_err)
    }

    /// What `query(lower)` finds with `lower <= msg_id < upper`, newest
    /// first: at most `limit`, reading windows below `upper` that widen
    /// until they hold that many. ClickHouse 18.16 cannot stop reading
    /// early in key order, so an unbounded `ORDER BY msg_id DESC LIMIT 50`
    /// reads and sorts the whole conversation; ids begin with their time,
    /// so a window reads only the conversation's granules in it (the key
    /// is (conversation, msg_id)). The queries' `LIMIT 1 BY` drops copies
    /// a replay inserted and no merge has collapsed yet.
    async fn newest_in_windows(
        &self,
        upper: MessageId,
        limit: usize,
        query: impl Fn(u64) -> clickhouse::query::Query,
    ) -> Result<Vec<MessageSent>> {
        let top = upper.unix_ms();
        let mut window = FIRST_WINDOW_MS;
        loop {
            let lower = MessageId::lower_bound_at(top.saturating_sub(window)).0;
            let rows = query(lower)
                .fetch_all::<MessageRow>()
                .await
                .map_err(engine_err)?;
            if rows.len() >= limit || lower == 0 {
                return rows.into_iter().map(MessageSent::try_from).collect();
            }
            window = window.saturating_mul(WINDOW_GROWTH);
        }
    }
}

/// The statements of a schema file: split at lines holding only `;`,
/// comments dropped.
/// Columns added to tables after their first version: `(table, column,
/// type)`, created on tables that predate them.
const ADDED_COLUMNS: [(&str, &str, &str); 7] = [
    ("messages", "media_size", "UInt64"),
    ("messages", "width", "UInt32"),
    ("messages", "height", "UInt32"),
    ("messages", "thumbnail", "UInt8"),
    ("messages", "target", "UInt64"),
    ("messages", "reply_to", "UInt64"),
    ("messages", "forwarded", "UInt8"),
];

pub fn statements(schema: &str) -> Vec<String> {
    schema
        .split("\n;\n")
        .map(|s| {
            s.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|s| !s.trim().is_empty())
        .collect()
}

#[async_trait]
impl History for ClickHouseHistory {
    async fn write(&self, batch: &HistoryBatch) -> Result<()> {
        self.ensure_schema().await?;
        // Messages first: the list and marks refer to them.
        self.insert(
            "messages",
            batch.messages.iter().map(MessageRow::from).collect(),
        )
        .await?;
        self.forget_deleted(batch).await?;
        let mut heads = std::collections::BTreeMap::new();
        for m in &batch.messages {
            let e = heads.entry(m.conversation).or_insert(m.msg_id);
            *e = (*e).max(m.msg_id);
        }
        // Each user's newest message of the conversation that is listed
        // for them (a removed group member's list stops at the removal).
        let newest = batch.newest_listed();
        let heads = heads
            .iter()
            .map(|(c, id)| HeadRow {
                conversation: c.to_string(),
                last_msg_id: id.0,
            })
            .collect();
        let lists = newest
            .into_iter()
            .map(|((user, c), id)| ConversationRow {
                user: user.0,
                conversation: c.to_string(),
                last_msg_id: id.0,
            })
            .collect();
        let marks = batch
            .marks
            .iter()
            .filter(|r| r.status == ReceiptStatus::Read)
            .map(|r| ReadMarkRow {
                user: r.by.0,
                conversation: r.conversation.to_string(),
                up_to: r.up_to.0,
                ts: r.ts,
            })
            .collect();
        let receipts = batch
            .receipts
            .iter()
            .map(|r| ReceiptRow {
                msg_id: r.msg_id.0,
                conversation: r.conversation.to_string(),
                sender: r.sender.0,
                reader: r.by.0,
                status: status_name(r.status),
                sent_ts: r.sent_ts,
                ts: r.ts,
            })
            .collect();
        let sessions = batch
            .sessions
            .iter()
            .map(|s| SessionRow {
                user: s.user.0,
                start_ts: s.start,
                end_ts: s.end,
                active_beats: s.active_beats,
            })
            .collect();
        // The other tables do not depend on each other: one round trip for
        // all of them rather than one after another.
        futures::try_join!(
            self.insert("conversation_heads", heads),
            self.insert("user_conversations", lists),
            self.insert("read_marks", marks),
            self.insert("receipts", receipts),
            self.insert("presence_sessions", sessions),
        )?;
        Ok(())
    }

    async fn page(
        &self,
        conversation: ConversationId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<MessageSent>> {
        self.ensure_schema().await?;
        let limit = limit.min(MAX_PAGE);
        let cid = conversation.to_string();
        let before = match before {
            Some(b) => b,
            // The first page ends at the conversation's newest message,
            // which may be long ago: ask for it (a key look-up).
            None => {
                let head = self.head(&[conversation]).await?;
                if head == 0 {
                    return Ok(Vec::new());
                }
                MessageId(head.saturating_add(1))
            }
        };
        self.newest_in_windows(before, limit, |lower| {
            self.client
                .query(
                    "SELECT ?fields FROM messages \
                     WHERE conversation = ? AND msg_id >= ? AND msg_id < ? AND target = 0 \
                     ORDER BY msg_id DESC LIMIT 1 BY msg_id LIMIT ?",
                )
                .bind(&cid)
                .bind(lower)
                .bind(before.0)
                .bind(limit as u64)
        })
        .await
    }

    async fn actions(
        &self,
        conversation: ConversationId,
        targets: &[MessageId],
    ) -> Result<Vec<MessageSent>> {
        let Some(first) = targets.iter().min() else {
            return Ok(Vec::new());
        };
        self.ensure_schema().await?;
        // An action comes after its target: the key range starts there.
        let mut q = self.client.query(&format!(
            "SELECT ?fields FROM messages \
             WHERE conversation = ? AND msg_id > ? AND target IN ({}) \
             ORDER BY msg_id LIMIT 1 BY msg_id",
            placeholders(targets.len())
        ));
        q = q.bind(conversation.to_string()).bind(first.0);
        for t in targets {
            q = q.bind(t.0);
        }
        let rows = q.fetch_all::<MessageRow>().await.map_err(engine_err)?;
        rows.into_iter().map(MessageSent::try_from).collect()
    }

    async fn messages(
        &self,
        conversation: ConversationId,
        ids: &[MessageId],
    ) -> Result<Vec<MessageSent>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.ensure_schema().await?;
        let mut q = self.client.query(&format!(
            "SELECT ?fields FROM messages WHERE conversation = ? AND msg_id IN ({}) \
             LIMIT 1 BY msg_id",
            placeholders(ids.len())
        ));
        q = q.bind(conversation.to_string());
        for id in ids {
            q = q.bind(id.0);
        }
        let rows = q.fetch_all::<MessageRow>().await.map_err(engine_err)?;
        rows.into_iter().map(MessageSent::try_from).collect()
    }

    async fn search(
        &self,
        conversations: &[ConversationId],
        terms: &[String],
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<MessageSent>> {
        if conversations.is_empty() || terms.is_empty() {
            return Ok(Vec::new());
        }
        self.ensure_schema().await?;
        let limit = limit.min(MAX_PAGE);
        // The windows start at the newest message of the conversations,
        // as scrollback's do, not at now.
        let head = self.head(conversations).await?;
        if head == 0 {
            return Ok(Vec::new());
        }
        let upper = MessageId(before.map_or(head + 1, |b| b.0.min(head + 1)));
        // As scrollback: windows below `before` that widen until they
        // hold a page, so a common word costs one small read. 18.16 has
        // no text index: each window scans the conversations' text in it
        // (the key narrows it to their granules). A current server adds
        // an n-gram index on the same expression the `LIKE` reads
        // (sql/schema.production.sql), so it skips granules too.
        let held = terms
            .iter()
            .map(|_| "lowerUTF8(concat(text, ' ', caption)) LIKE ?")
            .collect::<Vec<_>>()
            .join(" AND ");
        let sql = format!(
            "SELECT ?fields FROM messages \
             WHERE conversation IN ({}) AND msg_id >= ? AND msg_id < ? AND target = 0 \
             AND kind IN ('text', 'media') AND {held} \
             ORDER BY msg_id DESC LIMIT 1 BY msg_id LIMIT ?",
            placeholders(conversations.len())
        );
        let found = self.newest_in_windows(upper, limit, |lower| {
            let mut q = self.client.query(&sql);
            for c in conversations {
                q = q.bind(c.to_string());
            }
            q = q.bind(lower).bind(upper.0);
            for t in terms {
                q = q.bind(like_pattern(t));
            }
            q.bind(limit as u64)
        });
        // Side by side: the edits' read costs a search about 15 ms over a
        // conversation of 1M messages when it runs after (docs/benchmarks.md).
        let by_edits = self.found_by_edits(conversations, terms, upper, limit);
        let (found, by_edits) = futures::future::try_join(found, by_edits).await?;
        Ok(crate::history::newest_hits(found, by_edits, limit))
    }

    async fn conversations(&self, user: UserId, limit: usize) -> Result<Vec<ConversationSummary>> {
        self.ensure_schema().await?;
        let newest = self
            .client
            .query(
                "SELECT conversation, max(last_msg_id) AS last FROM user_conversations \
                 WHERE user = ? GROUP BY conversation ORDER BY last DESC, conversation LIMIT ?",
            )
            .bind(user.0)
            .bind(limit as u64)
            .fetch_all::<(String, u64)>()
            .await
            .map_err(engine_err)?;
        if newest.is_empty() {
            return Ok(Vec::new());
        }
        let n = newest.len();
        let mut last = self.client.query(&format!(
            "SELECT ?fields FROM messages WHERE (conversation, msg_id) IN ({}) LIMIT 1 BY msg_id",
            placeholders(n)
        ));
        for (c, id) in &newest {
            last = last.bind((c.as_str(), *id));
        }
        let last = last.fetch_all::<MessageRow>().await.map_err(engine_err)?;
        // Unread: others' messages above the user's read mark and up to
        // the last one listed for them (a removed member's stops there),
        // counted once each however many copies a replay left.
        let listed = vec!["(conversation = ? AND msg_id <= ?)"; n].join(" OR ");
        let mut unread = self.client.query(&format!(
            "SELECT conversation, uniqExact(msg_id) FROM messages \
             ANY LEFT JOIN (SELECT conversation, max(up_to) AS mark FROM read_marks \
                            WHERE user = ? GROUP BY conversation) USING conversation \
             WHERE ({listed}) AND sender != ? AND msg_id > mark AND target = 0 \
             GROUP BY conversation"
        ));
        unread = unread.bind(user.0);
        for (c, id) in &newest {
            unread = unread.bind(c.as_str()).bind(*id);
        }
        let unread: std::collections::HashMap<String, u64> = unread
            .bind(user.0)
            .fetch_all::<(String, u64)>()
            .await
            .map_err(engine_err)?
            .into_iter()
            .collect();
        let mut last: std::collections::HashMap<u64, MessageRow> =
            last.into_iter().map(|r| (r.msg_id, r)).collect();
        let mut out = Vec::with_capacity(n);
        for (c, id) in newest {
            let Some(row) = last.remove(&id) else {
                continue;
            };
            let message = MessageSent::try_from(row)?;
            out.push(ConversationSummary {
                conversation: message.conversation,
                unread: unread.get(&c).copied().unwrap_or(0),
                last: message,
            });
        }
        Ok(out)
    }

    async fn expire(&self, before: u64) -> Result<()> {
        self.ensure_schema().await?;
        let bound = MessageId::lower_bound_at(before).0;
        // Mutations: ClickHouse rewrites the parts concerned in the
        // background (18.16 has no synchronous form).
        for (table, condition) in [
            ("messages", format!("ts < {before}")),
            ("receipts", format!("sent_ts < {before}")),
            ("user_conversations", format!("last_msg_id < {bound}")),
            ("conversation_heads", format!("last_msg_id < {bound}")),
        ] {
            self.client
                .query(&format!("ALTER TABLE {table} DELETE WHERE {condition}"))
                .execute()
                .await
                .map_err(engine_err)?;
        }
        Ok(())
    }

    async fn last_sessions(&self, users: &[UserId]) -> Result<Vec<PresenceSession>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        self.ensure_schema().await?;
        let mut q = self.client.query(&format!(
            "SELECT user, start_ts, max(end_ts) AS end_ts, max(active_beats) AS active_beats \
             FROM presence_sessions WHERE user IN ({}) \
             GROUP BY user, start_ts ORDER BY start_ts DESC LIMIT 1 BY user",
            placeholders(users.len())
        ));
        for u in users {
            q = q.bind(u.0);
        }
        let rows = q.fetch_all::<SessionRow>().await.map_err(engine_err)?;
        Ok(rows
            .into_iter()
            .map(|r| PresenceSession {
                user: UserId(r.user),
                start: r.start_ts,
                end: r.end_ts,
                active_beats: r.active_beats,
            })
            .collect())
    }
}
