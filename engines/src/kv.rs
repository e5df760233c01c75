//! The embedded [`StateStore`]: one redb file. Every write is one redb
//! transaction, durable at commit, so `apply` gets its atomicity from redb.
//!
//! Tables (all ids as `u64`, message id 0 meaning "none", since no real id
//! is 0):
//! - `cursors`: `(user, device)` → last acknowledged seq
//! - `idem`: `(user, client_msg_id)` → `(msg_id, expires_at_ms)`
//! - `marks`: `(conversation, user)` → `(delivered, read)`
//! - `presence`: `user` → `(online, last_seen, updated)`
//! - `inbox_seq`: `user` → last seq issued
//! - `jobs`: `(job, partition)` → next offset to consume

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parley_schemas::ids::{now_ms, ConversationId, DeviceId, MessageId, UserId};
use parley_schemas::wire::ReceiptStatus;
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};

use crate::error::{EngineError, Result};
use crate::state::{Applied, Claim, Marks, Presence, StateOp, StateStore};

const CURSORS: TableDefinition<(u64, u64), u64> = TableDefinition::new("cursors");
const IDEM: TableDefinition<(u64, &str), (u64, u64)> = TableDefinition::new("idem");
const MARKS: TableDefinition<(&str, u64), (u64, u64)> = TableDefinition::new("marks");
const PRESENCE: TableDefinition<u64, (bool, u64, u64)> = TableDefinition::new("presence");
const INBOX_SEQ: TableDefinition<u64, u64> = TableDefinition::new("inbox_seq");
const JOBS: TableDefinition<(&str, u32), u64> = TableDefinition::new("jobs");

fn err(e: impl std::fmt::Display) -> EngineError {
    EngineError::State(e.to_string())
}

/// The embedded state store; cheap to clone.
#[derive(Clone)]
pub struct RedbState {
    db: Arc<Database>,
}

impl RedbState {
    pub fn open(path: impl AsRef<Path>) -> Result<RedbState> {
        let path = path.as_ref();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir.display(), e))?;
        }
        let db = Database::create(path).map_err(err)?;
        // Create every table up front so readers never meet a missing one.
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(CURSORS).map_err(err)?;
        tx.open_table(IDEM).map_err(err)?;
        tx.open_table(MARKS).map_err(err)?;
        tx.open_table(PRESENCE).map_err(err)?;
        tx.open_table(INBOX_SEQ).map_err(err)?;
        tx.open_table(JOBS).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(RedbState { db: Arc::new(db) })
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let tx = db.begin_write().map_err(err)?;
            let out = f(&tx)?;
            tx.commit().map_err(err)?;
            Ok(out)
        })
        .await
        .map_err(|_| EngineError::Closed)?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db.begin_read().map_err(err)?))
            .await
            .map_err(|_| EngineError::Closed)?
    }

    /// Drops expired idempotency entries; Redis expires keys itself, the
    /// embedded store needs this run now and then. Returns how many went.
    pub async fn purge_expired(&self) -> Result<usize> {
        let now = now_ms();
        self.write(move |tx| {
            let mut t = tx.open_table(IDEM).map_err(err)?;
            let before = t.len().map_err(err)?;
            t.retain(|_, (_, expires)| expires > now).map_err(err)?;
            Ok((before - t.len().map_err(err)?) as usize)
        })
        .await
    }
}

fn apply_op(tx: &WriteTransaction, op: &StateOp) -> Result<()> {
    match op {
        StateOp::AdvanceMark {
            conversation,
            user,
            status,
            up_to,
        } => {
            let mut t = tx.open_table(MARKS).map_err(err)?;
            let key = conversation.to_string();
            let (d, r) = t
                .get((key.as_str(), user.0))
                .map_err(err)?
                .map_or((0, 0), |v| v.value());
            let up = up_to.0;
            let new = match status {
                ReceiptStatus::Delivered => (d.max(up), r),
                ReceiptStatus::Read => (d.max(up), r.max(up)),
            };
            if new != (d, r) {
                t.insert((key.as_str(), user.0), new).map_err(err)?;
            }
        }
        StateOp::SetPresence {
            user,
            online,
            last_seen,
            at,
        } => {
            let mut t = tx.open_table(PRESENCE).map_err(err)?;
            let old = t
                .get(user.0)
                .map_err(err)?
                .map_or((false, 0, 0), |v| v.value());
            let seen = last_seen.map_or(old.1, |s| s.max(old.1));
            t.insert(user.0, (*online, seen, *at)).map_err(err)?;
        }
        StateOp::SetInboxSeq { user, seq } => {
            let mut t = tx.open_table(INBOX_SEQ).map_err(err)?;
            let old = t.get(user.0).map_err(err)?.map_or(0, |v| v.value());
            if *seq > old {
                t.insert(user.0, *seq).map_err(err)?;
            }
        }
    }
    Ok(())
}

fn opt_id(v: u64) -> Option<MessageId> {
    (v != 0).then_some(MessageId(v))
}

#[async_trait]
impl StateStore for RedbState {
    async fn cursor(&self, user: UserId, device: DeviceId) -> Result<Option<u64>> {
        self.read(move |tx| {
            let t = tx.open_table(CURSORS).map_err(err)?;
            Ok(t.get((user.0, device.0)).map_err(err)?.map(|v| v.value()))
        })
        .await
    }

    async fn advance_cursor(&self, user: UserId, device: DeviceId, seq: u64) -> Result<()> {
        self.write(move |tx| {
            let mut t = tx.open_table(CURSORS).map_err(err)?;
            let old = t.get((user.0, device.0)).map_err(err)?.map(|v| v.value());
            if old.is_none_or(|o| seq > o) {
                t.insert((user.0, device.0), seq).map_err(err)?;
            }
            Ok(())
        })
        .await
    }

    async fn idem_claim(
        &self,
        user: UserId,
        client_msg_id: &str,
        msg_id: MessageId,
        ttl: Duration,
    ) -> Result<Claim> {
        let key = client_msg_id.to_owned();
        let now = now_ms();
        let expires = now + ttl.as_millis() as u64;
        self.write(move |tx| {
            let mut t = tx.open_table(IDEM).map_err(err)?;
            let live = t
                .get((user.0, key.as_str()))
                .map_err(err)?
                .map(|v| v.value())
                .filter(|&(_, exp)| exp > now);
            if let Some((existing, _)) = live {
                return Ok(Claim::Existing(MessageId(existing)));
            }
            t.insert((user.0, key.as_str()), (msg_id.0, expires))
                .map_err(err)?;
            Ok(Claim::Claimed)
        })
        .await
    }

    async fn idem_get(&self, user: UserId, client_msg_id: &str) -> Result<Option<MessageId>> {
        let key = client_msg_id.to_owned();
        let now = now_ms();
        self.read(move |tx| {
            let t = tx.open_table(IDEM).map_err(err)?;
            let v = t
                .get((user.0, key.as_str()))
                .map_err(err)?
                .map(|v| v.value());
            Ok(v.filter(|&(_, exp)| exp > now).map(|(id, _)| MessageId(id)))
        })
        .await
    }

    async fn idem_release(
        &self,
        user: UserId,
        client_msg_id: &str,
        msg_id: MessageId,
    ) -> Result<()> {
        let key = client_msg_id.to_owned();
        self.write(move |tx| {
            let mut t = tx.open_table(IDEM).map_err(err)?;
            let current = t
                .get((user.0, key.as_str()))
                .map_err(err)?
                .map(|v| v.value().0);
            if current == Some(msg_id.0) {
                t.remove((user.0, key.as_str())).map_err(err)?;
            }
            Ok(())
        })
        .await
    }

    async fn marks(&self, conversation: ConversationId, user: UserId) -> Result<Marks> {
        self.read(move |tx| {
            let t = tx.open_table(MARKS).map_err(err)?;
            let key = conversation.to_string();
            let (d, r) = t
                .get((key.as_str(), user.0))
                .map_err(err)?
                .map_or((0, 0), |v| v.value());
            Ok(Marks {
                delivered: opt_id(d),
                read: opt_id(r),
            })
        })
        .await
    }

    async fn presence(&self, user: UserId) -> Result<Option<Presence>> {
        self.read(move |tx| {
            let t = tx.open_table(PRESENCE).map_err(err)?;
            Ok(t.get(user.0).map_err(err)?.map(|v| {
                let (online, last_seen, updated) = v.value();
                Presence {
                    online,
                    last_seen,
                    updated,
                }
            }))
        })
        .await
    }

    async fn inbox_seq(&self, user: UserId) -> Result<u64> {
        self.read(move |tx| {
            let t = tx.open_table(INBOX_SEQ).map_err(err)?;
            Ok(t.get(user.0).map_err(err)?.map_or(0, |v| v.value()))
        })
        .await
    }

    async fn apply(
        &self,
        job: &str,
        partition: u32,
        next_offset: u64,
        ops: Vec<StateOp>,
    ) -> Result<Applied> {
        let job = job.to_owned();
        self.write(move |tx| {
            let mut jobs = tx.open_table(JOBS).map_err(err)?;
            let committed = jobs
                .get((job.as_str(), partition))
                .map_err(err)?
                .map(|v| v.value());
            if let Some(c) = committed.filter(|&c| c >= next_offset) {
                return Ok(Applied::Stale { committed: c });
            }
            jobs.insert((job.as_str(), partition), next_offset)
                .map_err(err)?;
            drop(jobs);
            for op in &ops {
                apply_op(tx, op)?;
            }
            Ok(Applied::Written)
        })
        .await
    }

    async fn job_offset(&self, job: &str, partition: u32) -> Result<Option<u64>> {
        let job = job.to_owned();
        self.read(move |tx| {
            let t = tx.open_table(JOBS).map_err(err)?;
            Ok(t.get((job.as_str(), partition))
                .map_err(err)?
                .map(|v| v.value()))
        })
        .await
    }
}
