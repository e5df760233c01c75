//! The embedded [`StateStore`]: one redb file. Every call runs inside one
//! redb transaction (derived writes may share theirs with others queued at
//! the same moment), so `apply` gets its atomicity from redb; see [`RedbState`]
//! for which writes are durable at commit and which at the next checkpoint.
//!
//! Tables (all ids as `u64`, message id 0 meaning "none", since no real id
//! is 0):
//! - `cursors`: `(user, device)` → last acknowledged seq
//! - `idem`: `(user, client_msg_id)` → `(msg_id, expires_at_ms)`
//! - `marks`: `(conversation, user)` → `(delivered, read)`
//! - `presence`: `user` → `(online, last_seen, updated)`
//! - `inbox_seq`: `user` → last seq issued
//! - `jobs`: `(job, partition)` → next offset to consume
//! - `accounts`: `user` → `(username, password_hash, display_name)`;
//!   `usernames`: `username` → `user`; `counters`: name → last id issued
//! - `devices`: `user` → last device id issued
//! - `profiles`: `user` → `(about, avatar media id)` (the display name is
//!   in `accounts`)
//! - `inbox`: `(user, seq)` → encoded item, or a run of a group's posts
//!   ([`InboxEntry`]); `heads`: `(user, conversation)` → newest msg_id
//!   placed in that inbox from that conversation
//! - `group_posts`: `(group, msg_id)` → encoded message (large groups'
//!   stream, read fan-out)
//! - `media`, `media_image`, `media_uses`: uploads and where they were
//!   sent ([`media`])
//! - `device_keys`, `prekeys`: the key directory ([`keys`])
//! - `memberships`: `(user, group)` → (), the groups a user is in
//! - `msg_index`: `(conversation, msg_id)` → sender, kind, deleted,
//!   expiry: what actions on a message are judged by
//! - `notify_pending`, `notify_due`, `push_subs`, `notify_settings`:
//!   notifications ([`notify`])

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parley_schemas::group::GroupState;
use parley_schemas::ids::{now_ms, ConversationId, DeviceId, GroupId, MessageId, UserId};
use parley_schemas::wire::{Audience, ReceiptStatus};
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};

use crate::error::{EngineError, Result};
use crate::state::{audience_code, audience_of, ERASED, ERASED_NAME};
use crate::state::{
    run_last_seq, Account, AccountStore, Applied, ConversationStore, DeviceSession, FirstSend,
    InboxEntry, InboxStore, Indexed, JobStore, Marks, Presence, PresenceStore, StateOp,
};

mod commit;
mod keys;
mod media;
mod notify;
mod ops;
mod reads;

pub(crate) use ops::raise;
use ops::*;

const CURSORS: TableDefinition<(u64, u64), u64> = TableDefinition::new("cursors");
/// `(user, client_msg_id)` → `(msg_id, expires_at, conversation)`.
const IDEM: TableDefinition<(u64, &str), (u64, u64, &str)> = TableDefinition::new("idem_v2");
/// The table before it kept the conversation; dropped at open.
const IDEM_V1: TableDefinition<(u64, &str), (u64, u64)> = TableDefinition::new("idem");
const MARKS: TableDefinition<(&str, u64), (u64, u64)> = TableDefinition::new("marks");
const PRESENCE: TableDefinition<u64, (bool, u64, u64)> = TableDefinition::new("presence");
const INBOX_SEQ: TableDefinition<u64, u64> = TableDefinition::new("inbox_seq");
const JOBS: TableDefinition<(&str, u32), u64> = TableDefinition::new("jobs");
const ACCOUNTS: TableDefinition<u64, (&str, &str, &str)> = TableDefinition::new("accounts");
const USERNAMES: TableDefinition<&str, u64> = TableDefinition::new("usernames");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
const DEVICES: TableDefinition<u64, u64> = TableDefinition::new("devices");
/// `(user, device)` → its session, [`DeviceSession::encode`]d.
const DEVICE_SESSIONS: TableDefinition<(u64, u64), &str> = TableDefinition::new("device_sessions");
const PROFILES: TableDefinition<u64, (&str, &str)> = TableDefinition::new("profiles");
const INBOX: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("inbox");
const HEADS: TableDefinition<(u64, &str), u64> = TableDefinition::new("heads");
const GROUPS: TableDefinition<u64, &[u8]> = TableDefinition::new("groups");
const GROUP_POSTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("group_posts");
/// `(user, contact)` and its mirror `(contact, user)`.
const CONTACTS: TableDefinition<(u64, u64), ()> = TableDefinition::new("contacts");
const WATCHERS: TableDefinition<(u64, u64), ()> = TableDefinition::new("watchers");
/// `(user, other)`: `user` blocks `other`.
const BLOCKS: TableDefinition<(u64, u64), ()> = TableDefinition::new("blocks");
const PRIVACY: TableDefinition<u64, u8> = TableDefinition::new("privacy");
/// `(user, group)`: `user` is a current member of `group`.
const MEMBERSHIPS: TableDefinition<(u64, u64), ()> = TableDefinition::new("memberships");
/// `(conversation, msg_id)` → `(`[`Indexed::encode`]`, expires_at)`: the
/// messages actions may name.
const MSG_INDEX: TableDefinition<(&str, u64), (&str, u64)> = TableDefinition::new("msg_index");

fn err(e: impl std::fmt::Display) -> EngineError {
    EngineError::State(e.to_string())
}

/// How long derived writes may stay in memory before a durable commit.
const CHECKPOINT: Duration = Duration::from_secs(1);

/// The embedded state store; cheap to clone.
///
/// Durability: accounts and devices are facts no log holds, so their
/// writes commit durably. Everything else is derived from the log and
/// stored together with the deriving job's offset, so those writes commit
/// without fsync and a checkpoint thread makes them durable every
/// [`CHECKPOINT`] (and on close). A crash loses at most that last second of
/// derived state, offsets included, and the jobs derive it again from the
/// log. Without this, every job batch would wait for an fsync, and redb
/// allows one writer at a time. Derived writes queued meanwhile share one
/// transaction (see `commit`).
#[derive(Clone)]
pub struct RedbState {
    db: Arc<Inner>,
}

struct Inner {
    db: Database,
    dirty: std::sync::atomic::AtomicBool,
    /// Batches derived writes into shared transactions.
    committer: commit::Committer,
}

impl std::ops::Deref for Inner {
    type Target = Database;
    fn deref(&self) -> &Database {
        &self.db
    }
}

impl Inner {
    /// Makes every earlier commit durable.
    fn checkpoint(&self) -> Result<()> {
        if self.dirty.swap(false, std::sync::atomic::Ordering::AcqRel) {
            let tx = self.db.begin_write().map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.checkpoint() {
            tracing::error!(error = %e, "final state checkpoint failed");
        }
    }
}

/// Whether a write is a fact (durable at commit) or derived from the log.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fact,
    Derived,
}

/// The page cache the state store's redb file may hold in memory. redb's
/// default is 1 GiB per file, which a spike fills and the process keeps;
/// the live path touches each user's newest pages, far less than this.
pub const STATE_CACHE_BYTES: usize = 256 << 20;

/// Opens (or creates) a redb file with a page cache of at most
/// `cache_bytes`, making its directory first.
pub(crate) fn create_database(path: &Path, cache_bytes: usize) -> Result<Database> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir.display(), e))?;
    }
    redb::Builder::new()
        .set_cache_size(cache_bytes)
        .create(path)
        .map_err(|e| err(format!("{}: {e}", path.display())))
}

/// Runs `f` on a read transaction of the database `get` finds in `db`, on
/// the blocking pool (redb calls block on disk).
pub(crate) async fn read_blocking<D: Send + Sync + 'static, T: Send + 'static>(
    db: Arc<D>,
    get: fn(&D) -> &Database,
    f: impl FnOnce(&redb::ReadTransaction) -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(move || f(&get(&db).begin_read().map_err(err)?))
        .await
        .map_err(|_| EngineError::Closed)?
}

impl RedbState {
    pub fn open(path: impl AsRef<Path>) -> Result<RedbState> {
        let db = create_database(path.as_ref(), STATE_CACHE_BYTES)?;
        // Create every table up front so readers never meet a missing one.
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(CURSORS).map_err(err)?;
        tx.open_table(IDEM).map_err(err)?;
        tx.delete_table(IDEM_V1).map_err(err)?;
        tx.open_table(MARKS).map_err(err)?;
        tx.open_table(PRESENCE).map_err(err)?;
        tx.open_table(INBOX_SEQ).map_err(err)?;
        tx.open_table(JOBS).map_err(err)?;
        tx.open_table(ACCOUNTS).map_err(err)?;
        tx.open_table(MEMBERSHIPS).map_err(err)?;
        tx.open_table(USERNAMES).map_err(err)?;
        tx.open_table(COUNTERS).map_err(err)?;
        tx.open_table(DEVICES).map_err(err)?;
        tx.open_table(DEVICE_SESSIONS).map_err(err)?;
        tx.open_table(PROFILES).map_err(err)?;
        tx.open_table(INBOX).map_err(err)?;
        tx.open_table(HEADS).map_err(err)?;
        tx.open_table(GROUPS).map_err(err)?;
        tx.open_table(GROUP_POSTS).map_err(err)?;
        tx.open_table(CONTACTS).map_err(err)?;
        tx.open_table(WATCHERS).map_err(err)?;
        tx.open_table(BLOCKS).map_err(err)?;
        tx.open_table(MSG_INDEX).map_err(err)?;
        tx.open_table(PRIVACY).map_err(err)?;
        media::create_tables(&tx)?;
        keys::create_tables(&tx)?;
        notify::create_tables(&tx)?;
        tx.commit().map_err(err)?;
        let inner = Arc::new(Inner {
            db,
            dirty: Default::default(),
            committer: Default::default(),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("redb-checkpoint".into())
            .spawn(move || loop {
                std::thread::sleep(CHECKPOINT);
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = inner.checkpoint() {
                    tracing::error!(error = %e, "state checkpoint failed");
                }
            })
            .map_err(|e| EngineError::io("checkpoint thread", e))?;
        Ok(RedbState { db: inner })
    }

    async fn write_tx<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.write_kind(Kind::Derived, f).await
    }

    async fn write_kind<T: Send + 'static>(
        &self,
        kind: Kind,
        f: impl FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        if kind == Kind::Derived {
            return self.db.write_derived(f).await;
        }
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
        read_blocking(self.db.clone(), |inner| &inner.db, f).await
    }

    /// Runs [`purge_expired`](Self::purge_expired) every `every` while the
    /// store is open (the task holds no reference between runs), so the
    /// table holds about one resend window of sends.
    pub fn purge_every(&self, every: Duration) {
        let weak = Arc::downgrade(&self.db);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(db) = weak.upgrade() else { break };
                if let Err(e) = (RedbState { db }).purge_expired().await {
                    tracing::warn!(error = %e, "purging expired idempotency keys failed");
                }
            }
        });
    }

    /// Idempotency entries stored, expired ones included until purged.
    pub async fn idem_entries(&self) -> Result<u64> {
        self.read(|tx| tx.open_table(IDEM).map_err(err)?.len().map_err(err))
            .await
    }

    /// Drops expired idempotency entries (and message index entries, not
    /// counted); Redis expires keys itself, the
    /// embedded store needs this run now and then. Returns how many went.
    pub async fn purge_expired(&self) -> Result<usize> {
        let now = now_ms();
        self.write_tx(move |tx| {
            let mut t = tx.open_table(IDEM).map_err(err)?;
            let before = t.len().map_err(err)?;
            t.retain(|_, (_, expires, _)| expires > now).map_err(err)?;
            let mut index = tx.open_table(MSG_INDEX).map_err(err)?;
            index.retain(|_, (_, expires)| expires > now).map_err(err)?;
            Ok((before - t.len().map_err(err)?) as usize)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn expired_idempotency_keys_are_purged_on_schedule() {
        let dir = tempfile::tempdir().unwrap();
        let s = RedbState::open(dir.path().join("s.redb")).unwrap();
        let soon = now_ms() + 20;
        let ops = (0..100)
            .map(|i| StateOp::IdemPut {
                user: UserId(1),
                client_msg_id: format!("c{i}"),
                msg_id: MessageId(i + 1),
                conversation: ConversationId::direct(UserId(1), UserId(2)),
                expires_at: soon,
            })
            .collect();
        s.write(ops).await.unwrap();
        assert_eq!(s.idem_entries().await.unwrap(), 100);
        s.purge_every(Duration::from_millis(10));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while s.idem_entries().await.unwrap() > 0 {
            assert!(std::time::Instant::now() < deadline, "never purged");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
