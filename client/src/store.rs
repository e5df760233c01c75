//! The client's SQLite file: its session, the outbox (messages composed
//! and not yet acked, in order), the messages it received, and the last
//! inbox `seq` it stored. Every write is committed before the call returns
//! (`synchronous = FULL`), so a message in the outbox survives a killed
//! process, and a stored message is confirmed to the server only after.

use std::path::Path;

use parley_schemas::ids::{ConversationId, DeviceId, MessageId, UserId};
use parley_schemas::wire::{Body, MsgExtra, MsgFrame, Recipient};
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;

/// A signed-in device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: UserId,
    pub device_id: DeviceId,
    pub username: String,
    pub token: String,
    pub refresh_token: String,
}

/// A message waiting for its ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub client_msg_id: String,
    pub to: Recipient,
    pub body: Body,
    /// The message of the same conversation this one answers.
    pub reply_to: Option<MessageId>,
    /// Sent on from another chat (its first sender never named).
    pub forwarded: bool,
}

impl Outgoing {
    /// A new message (a fresh `client_msg_id`) of `body` to `to`.
    pub fn new(to: Recipient, body: Body) -> Outgoing {
        Outgoing {
            client_msg_id: format!("{:032x}", rand::random::<u128>()),
            to,
            body,
            reply_to: None,
            forwarded: false,
        }
    }

    /// Its `send` frame, as JSON (the first send and every resend alike).
    pub(crate) fn frame(&self) -> String {
        crate::frame(parley_schemas::wire::ClientFrame::Send(
            parley_schemas::wire::SendFrame {
                client_msg_id: self.client_msg_id.clone(),
                to: self.to,
                body: self.body.clone(),
                reply_to: self.reply_to,
                forwarded: self.forwarded,
            },
        ))
    }
}

pub struct Store {
    pub(crate) db: Connection,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        let db = Connection::open(path)?;
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS session (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 user_id INTEGER NOT NULL, device_id INTEGER NOT NULL, username TEXT NOT NULL,
                 token TEXT NOT NULL, refresh_token TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS outbox (
                 n INTEGER PRIMARY KEY AUTOINCREMENT,
                 client_msg_id TEXT NOT NULL UNIQUE, to_json TEXT NOT NULL, body_json TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS messages (
                 msg_id INTEGER PRIMARY KEY, conversation TEXT NOT NULL, seq INTEGER,
                 frame TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages (conversation, msg_id);
             CREATE TABLE IF NOT EXISTS cursor (
                 id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);",
        )?;
        db.execute_batch(crate::e2e::tables::SCHEMA)?;
        // Files made before the column: the body kept here once acked (an
        // encrypted one's plaintext), when it differs from the one sent.
        let has_local = db
            .prepare("SELECT 1 FROM pragma_table_info('outbox') WHERE name = 'local_json'")?
            .exists([])?;
        if !has_local {
            db.execute_batch("ALTER TABLE outbox ADD COLUMN local_json TEXT")?;
        }
        // ... and a reply's target and a forward's mark.
        let has_reply = db
            .prepare("SELECT 1 FROM pragma_table_info('outbox') WHERE name = 'reply_to'")?
            .exists([])?;
        if !has_reply {
            db.execute_batch(
                "ALTER TABLE outbox ADD COLUMN reply_to INTEGER;
                 ALTER TABLE outbox ADD COLUMN forwarded INTEGER NOT NULL DEFAULT 0;",
            )?;
        }
        Ok(Store { db })
    }

    pub fn session(&self) -> Result<Option<Session>> {
        Ok(self
            .db
            .query_row(
                "SELECT user_id, device_id, username, token, refresh_token FROM session",
                [],
                |r| {
                    Ok(Session {
                        user_id: UserId(r.get::<_, i64>(0)? as u64),
                        device_id: DeviceId(r.get::<_, i64>(1)? as u64),
                        username: r.get(2)?,
                        token: r.get(3)?,
                        refresh_token: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn set_session(&self, s: &Session) -> Result<()> {
        self.db.execute(
            "INSERT OR REPLACE INTO session (id, user_id, device_id, username, token, refresh_token)
             VALUES (1, ?1, ?2, ?3, ?4, ?5)",
            params![s.user_id.0 as i64, s.device_id.0 as i64, s.username, s.token, s.refresh_token],
        )?;
        Ok(())
    }

    pub fn push_outbox(&self, m: &Outgoing) -> Result<()> {
        self.push_outbox_keeping(m, None)
    }

    /// As [`push_outbox`](Self::push_outbox); once acked, `local` is the
    /// body kept here instead of the one sent (an encrypted one's text).
    pub(crate) fn push_outbox_keeping(&self, m: &Outgoing, local: Option<&Body>) -> Result<()> {
        let json = |b: &Body| serde_json::to_string(b).expect("bodies serialize");
        self.db.execute(
            "INSERT INTO outbox (client_msg_id, to_json, body_json, local_json, reply_to, forwarded)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                m.client_msg_id,
                serde_json::to_string(&m.to).expect("recipients serialize"),
                json(&m.body),
                local.map(json),
                m.reply_to.map(|r| r.0 as i64),
                m.forwarded,
            ],
        )?;
        Ok(())
    }

    /// The outbox, oldest first.
    pub fn outbox(&self) -> Result<Vec<Outgoing>> {
        let mut q = self.db.prepare(
            "SELECT client_msg_id, to_json, body_json, reply_to, forwarded FROM outbox ORDER BY n",
        )?;
        let rows = q.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, bool>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (client_msg_id, to, body, reply_to, forwarded) = row?;
            out.push(Outgoing {
                client_msg_id,
                to: serde_json::from_str(&to).map_err(bad)?,
                body: serde_json::from_str(&body).map_err(bad)?,
                reply_to: reply_to.map(|r| MessageId(r as u64)),
                forwarded,
            });
        }
        Ok(out)
    }

    /// An outgoing message was acked: it leaves the outbox and joins the
    /// stored messages (no `seq`: that is the inbox's).
    pub fn acked(&mut self, a: &parley_schemas::wire::Ack) -> Result<()> {
        type Row = (String, String, Option<i64>, bool);
        let item: Option<Row> = self
            .db
            .query_row(
                "SELECT to_json, coalesce(local_json, body_json), reply_to, forwarded
                 FROM outbox WHERE client_msg_id = ?1",
                [&a.client_msg_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        if let (Some((to, body, reply_to, forwarded)), Some(s)) = (item, self.session()?) {
            self.put_message(&MsgFrame {
                seq: None,
                msg_id: a.msg_id,
                conversation_id: a.conversation_id,
                from: s.user_id,
                to: serde_json::from_str(&to).map_err(bad)?,
                body: serde_json::from_str(&body).map_err(bad)?,
                ts: a.ts,
                extra: MsgExtra {
                    reply_to: reply_to.map(|r| MessageId(r as u64)),
                    forwarded,
                    ..Default::default()
                },
            })?;
        }
        self.pop_outbox(&a.client_msg_id)
    }

    pub fn pop_outbox(&self, client_msg_id: &str) -> Result<()> {
        self.db.execute(
            "DELETE FROM outbox WHERE client_msg_id = ?1",
            [client_msg_id],
        )?;
        Ok(())
    }

    /// Stores a received message; false if it was stored before (a replay).
    /// The cursor moves with it.
    pub fn put_message(&mut self, m: &MsgFrame) -> Result<bool> {
        let tx = self.db.transaction()?;
        let added = tx.execute(
            "INSERT OR IGNORE INTO messages (msg_id, conversation, seq, frame) VALUES (?1, ?2, ?3, ?4)",
            params![
                m.msg_id.0 as i64,
                m.conversation_id.to_string(),
                m.seq.map(|s| s as i64),
                serde_json::to_string(m).expect("frames serialize"),
            ],
        )? == 1;
        if let Some(seq) = m.seq {
            tx.execute(
                "INSERT INTO cursor (id, seq) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET seq = max(seq, excluded.seq)",
                [seq as i64],
            )?;
        }
        tx.commit()?;
        Ok(added)
    }

    /// Moves the stored cursor to `seq` without a message: the server said
    /// the items up to it expired.
    pub fn skip_to(&self, seq: u64) -> Result<()> {
        self.db.execute(
            "INSERT INTO cursor (id, seq) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET seq = max(seq, excluded.seq)",
            [seq as i64],
        )?;
        Ok(())
    }

    /// Whether message `msg_id` is stored (a replay needs no decrypting).
    pub fn has_message(&self, msg_id: parley_schemas::ids::MessageId) -> Result<bool> {
        Ok(self
            .db
            .prepare("SELECT 1 FROM messages WHERE msg_id = ?1")?
            .exists([msg_id.0 as i64])?)
    }

    /// The last inbox seq stored (0 if none).
    pub fn seq(&self) -> Result<u64> {
        Ok(self
            .db
            .query_row("SELECT seq FROM cursor", [], |r| r.get::<_, i64>(0))
            .optional()?
            .unwrap_or(0) as u64)
    }

    /// A conversation's messages, oldest first.
    pub fn messages(&self, c: &ConversationId) -> Result<Vec<MsgFrame>> {
        let mut q = self
            .db
            .prepare("SELECT frame FROM messages WHERE conversation = ?1 ORDER BY msg_id")?;
        let rows = q.query_map([c.to_string()], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(serde_json::from_str(&row?).map_err(bad)?);
        }
        Ok(out)
    }
}

fn bad(e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}
