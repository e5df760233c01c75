//! The embedded [`StateStore`]: one redb file. Every call is one redb
//! transaction, so `apply` gets its atomicity from redb; see [`RedbState`]
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
use crate::state::{
    run_last_seq, Account, Applied, Claim, InboxEntry, Marks, Presence, StateOp, StateStore,
};

const CURSORS: TableDefinition<(u64, u64), u64> = TableDefinition::new("cursors");
const IDEM: TableDefinition<(u64, &str), (u64, u64)> = TableDefinition::new("idem");
const MARKS: TableDefinition<(&str, u64), (u64, u64)> = TableDefinition::new("marks");
const PRESENCE: TableDefinition<u64, (bool, u64, u64)> = TableDefinition::new("presence");
const INBOX_SEQ: TableDefinition<u64, u64> = TableDefinition::new("inbox_seq");
const JOBS: TableDefinition<(&str, u32), u64> = TableDefinition::new("jobs");
const ACCOUNTS: TableDefinition<u64, (&str, &str, &str)> = TableDefinition::new("accounts");
const USERNAMES: TableDefinition<&str, u64> = TableDefinition::new("usernames");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
const DEVICES: TableDefinition<u64, u64> = TableDefinition::new("devices");
const PROFILES: TableDefinition<u64, (&str, &str)> = TableDefinition::new("profiles");
const INBOX: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("inbox");
const HEADS: TableDefinition<(u64, &str), u64> = TableDefinition::new("heads");
const GROUPS: TableDefinition<u64, &[u8]> = TableDefinition::new("groups");
const GROUP_POSTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("group_posts");
/// `(user, contact)` and its mirror `(contact, user)`.
const CONTACTS: TableDefinition<(u64, u64), ()> = TableDefinition::new("contacts");
const WATCHERS: TableDefinition<(u64, u64), ()> = TableDefinition::new("watchers");
const PRIVACY: TableDefinition<u64, u8> = TableDefinition::new("privacy");

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
/// allows one writer at a time.
#[derive(Clone)]
pub struct RedbState {
    db: Arc<Inner>,
}

struct Inner {
    db: Database,
    dirty: std::sync::atomic::AtomicBool,
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

/// Opens (or creates) a redb file, making its directory first.
pub(crate) fn create_database(path: &Path) -> Result<Database> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir.display(), e))?;
    }
    Database::create(path).map_err(|e| err(format!("{}: {e}", path.display())))
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
        let db = create_database(path.as_ref())?;
        // Create every table up front so readers never meet a missing one.
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(CURSORS).map_err(err)?;
        tx.open_table(IDEM).map_err(err)?;
        tx.open_table(MARKS).map_err(err)?;
        tx.open_table(PRESENCE).map_err(err)?;
        tx.open_table(INBOX_SEQ).map_err(err)?;
        tx.open_table(JOBS).map_err(err)?;
        tx.open_table(ACCOUNTS).map_err(err)?;
        tx.open_table(USERNAMES).map_err(err)?;
        tx.open_table(COUNTERS).map_err(err)?;
        tx.open_table(DEVICES).map_err(err)?;
        tx.open_table(PROFILES).map_err(err)?;
        tx.open_table(INBOX).map_err(err)?;
        tx.open_table(HEADS).map_err(err)?;
        tx.open_table(GROUPS).map_err(err)?;
        tx.open_table(GROUP_POSTS).map_err(err)?;
        tx.open_table(CONTACTS).map_err(err)?;
        tx.open_table(WATCHERS).map_err(err)?;
        tx.open_table(PRIVACY).map_err(err)?;
        tx.commit().map_err(err)?;
        let inner = Arc::new(Inner {
            db,
            dirty: Default::default(),
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
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut tx = db.begin_write().map_err(err)?;
            if kind == Kind::Derived {
                tx.set_durability(redb::Durability::None).map_err(err)?;
            }
            let out = f(&tx)?;
            tx.commit().map_err(err)?;
            if kind == Kind::Derived {
                db.dirty.store(true, std::sync::atomic::Ordering::Release);
            }
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

    /// Drops expired idempotency entries; Redis expires keys itself, the
    /// embedded store needs this run now and then. Returns how many went.
    pub async fn purge_expired(&self) -> Result<usize> {
        let now = now_ms();
        self.write_tx(move |tx| {
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
        StateOp::SetInboxSeq { user, seq } => set_inbox_seq(tx, *user, *seq)?,
        StateOp::InboxPut { .. } | StateOp::InboxRun { .. } => {
            inbox_put(tx, inbox_row(op).into_iter().collect())?;
        }
        StateOp::GroupPost {
            group,
            msg_id,
            message,
        } => {
            tx.open_table(GROUP_POSTS)
                .map_err(err)?
                .insert((group.0, msg_id.0), message.as_ref())
                .map_err(err)?;
        }
        StateOp::IdemPut {
            user,
            client_msg_id,
            msg_id,
            expires_at,
        } => {
            let mut t = tx.open_table(IDEM).map_err(err)?;
            if live_idem(&t, *user, client_msg_id, now_ms())?.is_none() {
                t.insert((user.0, client_msg_id.as_str()), (msg_id.0, *expires_at))
                    .map_err(err)?;
            }
        }
        StateOp::TouchLastSeen { user, at } => {
            let mut t = tx.open_table(PRESENCE).map_err(err)?;
            let (online, seen, updated) = t
                .get(user.0)
                .map_err(err)?
                .map_or((false, 0, 0), |v| v.value());
            if *at > seen {
                t.insert(user.0, (online, *at, updated)).map_err(err)?;
            }
        }
        StateOp::RestoreAccount {
            user,
            username,
            password_hash,
            display_name,
        } => {
            let mut accounts = tx.open_table(ACCOUNTS).map_err(err)?;
            if accounts.get(user.0).map_err(err)?.is_none() {
                let row = (
                    username.as_str(),
                    password_hash.as_str(),
                    display_name.as_str(),
                );
                accounts.insert(user.0, row).map_err(err)?;
                let mut names = tx.open_table(USERNAMES).map_err(err)?;
                if names.get(username.as_str()).map_err(err)?.is_none() {
                    names.insert(username.as_str(), user.0).map_err(err)?;
                }
            }
            raise(
                &mut tx.open_table(COUNTERS).map_err(err)?,
                "user_id",
                user.0,
            )?;
        }
        StateOp::SetProfile {
            user,
            display_name,
            about,
            avatar_media_id,
        } => {
            let mut accounts = tx.open_table(ACCOUNTS).map_err(err)?;
            let row = accounts
                .get(user.0)
                .map_err(err)?
                .map(|v| (v.value().0.to_owned(), v.value().1.to_owned()));
            // As in Redis: a change for an unknown user creates nothing.
            let Some((username, hash)) = row else {
                return Ok(());
            };
            if let Some(name) = display_name {
                let row = (username.as_str(), hash.as_str(), name.as_str());
                accounts.insert(user.0, row).map_err(err)?;
            }
            let mut profiles = tx.open_table(PROFILES).map_err(err)?;
            let (old_about, old_avatar) = profiles
                .get(user.0)
                .map_err(err)?
                .map(|v| (v.value().0.to_owned(), v.value().1.to_owned()))
                .unwrap_or_default();
            let about = about.as_deref().unwrap_or(&old_about);
            let avatar = avatar_media_id.as_deref().unwrap_or(&old_avatar);
            profiles.insert(user.0, (about, avatar)).map_err(err)?;
        }
        StateOp::RestoreDevice { user, device } => {
            raise(&mut tx.open_table(DEVICES).map_err(err)?, user.0, device.0)?;
        }
        StateOp::PutGroup { group, state } => {
            let mut t = tx.open_table(GROUPS).map_err(err)?;
            t.insert(group.0, state.encode().as_slice()).map_err(err)?;
        }
        StateOp::SetContact {
            user,
            contact,
            added,
        } => {
            let mut contacts = tx.open_table(CONTACTS).map_err(err)?;
            let mut watchers = tx.open_table(WATCHERS).map_err(err)?;
            if *added {
                contacts.insert((user.0, contact.0), ()).map_err(err)?;
                watchers.insert((contact.0, user.0), ()).map_err(err)?;
            } else {
                contacts.remove((user.0, contact.0)).map_err(err)?;
                watchers.remove((contact.0, user.0)).map_err(err)?;
            }
        }
        StateOp::SetPrivacy { user, presence } => {
            let mut t = tx.open_table(PRIVACY).map_err(err)?;
            t.insert(user.0, audience_code(*presence)).map_err(err)?;
        }
    }
    Ok(())
}

/// Moves `t[key]` up to `value`, never down (a missing entry reads as 0):
/// counters, seqs, heads and marks all only move forward.
pub(crate) fn raise<K: redb::Key + 'static>(
    t: &mut redb::Table<K, u64>,
    key: K::SelfType<'_>,
    value: u64,
) -> Result<()>
where
    for<'a> K::SelfType<'a>: Copy,
{
    let old = t.get(key).map_err(err)?.map_or(0, |v| v.value());
    if value > old {
        t.insert(key, value).map_err(err)?;
    }
    Ok(())
}

/// The mapping of `(user, client_msg_id)` if it has not expired by `now`.
fn live_idem(
    t: &impl ReadableTable<(u64, &'static str), (u64, u64)>,
    user: UserId,
    key: &str,
    now: u64,
) -> Result<Option<MessageId>> {
    let v = t.get((user.0, key)).map_err(err)?.map(|v| v.value());
    Ok(v.filter(|&(_, expires)| expires > now)
        .map(|(id, _)| MessageId(id)))
}

/// Applies `ops` in one transaction. A fan-out batch holds an inbox write
/// per member, so those share their three tables, opened once, and go in
/// key order.
fn apply_ops(tx: &WriteTransaction, ops: &[StateOp]) -> Result<()> {
    let mut rows = Vec::new();
    for op in ops {
        match inbox_row(op) {
            Some(row) => rows.push(row),
            None => apply_op(tx, op)?,
        }
    }
    inbox_put(tx, rows)
}

/// An inbox write: the row at `seq` (covering seqs up to `last_seq`), and
/// the user's head in `conversation`.
struct InboxRow<'a> {
    user: UserId,
    seq: u64,
    last_seq: u64,
    conversation: ConversationId,
    msg_id: MessageId,
    value: std::borrow::Cow<'a, [u8]>,
}

fn inbox_row(op: &StateOp) -> Option<InboxRow<'_>> {
    match op {
        StateOp::InboxPut {
            user,
            seq,
            conversation,
            msg_id,
            item,
        } => Some(InboxRow {
            user: *user,
            seq: *seq,
            last_seq: *seq,
            conversation: *conversation,
            msg_id: *msg_id,
            value: item.as_ref().into(),
        }),
        StateOp::InboxRun {
            user,
            seq,
            count,
            group,
            first,
            last,
        } => Some(InboxRow {
            user: *user,
            seq: *seq,
            last_seq: run_last_seq(*seq, *count),
            conversation: ConversationId::group(*group),
            msg_id: *last,
            value: InboxEntry::run_value(*group, *first, *count).into(),
        }),
        _ => None,
    }
}

/// Stores inbox rows and moves each user's seq and heads forward.
fn inbox_put(tx: &WriteTransaction, mut rows: Vec<InboxRow>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    rows.sort_by_key(|r| (r.user, r.seq));
    let mut seqs = tx.open_table(INBOX_SEQ).map_err(err)?;
    let mut inbox = tx.open_table(INBOX).map_err(err)?;
    let mut heads = tx.open_table(HEADS).map_err(err)?;
    for r in rows {
        raise(&mut seqs, r.user.0, r.last_seq)?;
        inbox
            .insert((r.user.0, r.seq), r.value.as_ref())
            .map_err(err)?;
        let key = r.conversation.to_string();
        raise(&mut heads, (r.user.0, key.as_str()), r.msg_id.0)?;
    }
    Ok(())
}

fn set_inbox_seq(tx: &WriteTransaction, user: UserId, seq: u64) -> Result<()> {
    raise(&mut tx.open_table(INBOX_SEQ).map_err(err)?, user.0, seq)
}

fn account_in(tx: &redb::ReadTransaction, user: u64) -> Result<Option<Account>> {
    let accounts = tx.open_table(ACCOUNTS).map_err(err)?;
    let Some(row) = accounts.get(user).map_err(err)? else {
        return Ok(None);
    };
    let (username, hash, display) = row.value();
    let profile = tx
        .open_table(PROFILES)
        .map_err(err)?
        .get(user)
        .map_err(err)?;
    let (about, avatar) = profile.as_ref().map_or(("", ""), |v| v.value());
    Ok(Some(Account {
        user_id: UserId(user),
        username: username.to_owned(),
        password_hash: hash.to_owned(),
        display_name: display.to_owned(),
        about: about.to_owned(),
        avatar_media_id: (!avatar.is_empty()).then(|| avatar.to_owned()),
    }))
}

/// The stored form of an [`Audience`] (Redis stores the same number).
pub(crate) fn audience_code(a: Audience) -> u8 {
    match a {
        Audience::Everyone => 0,
        Audience::Contacts => 1,
        Audience::Nobody => 2,
    }
}

pub(crate) fn audience_of(code: u8) -> Audience {
    match code {
        1 => Audience::Contacts,
        2 => Audience::Nobody,
        _ => Audience::Everyone,
    }
}

/// The second halves of the keys of `table` that start with `user`.
fn second_of(
    tx: &redb::ReadTransaction,
    table: TableDefinition<(u64, u64), ()>,
    user: UserId,
) -> Result<Vec<UserId>> {
    let t = tx.open_table(table).map_err(err)?;
    let range = t.range((user.0, 0)..=(user.0, u64::MAX)).map_err(err)?;
    range
        .map(|r| r.map(|(k, _)| UserId(k.value().1)).map_err(err))
        .collect()
}

fn opt_id(v: u64) -> Option<MessageId> {
    (v != 0).then_some(MessageId(v))
}

#[async_trait]
impl StateStore for RedbState {
    async fn create_account(
        &self,
        username: &str,
        password_hash: &str,
        display_name: &str,
    ) -> Result<Option<UserId>> {
        let (name, hash, display) = (
            username.to_owned(),
            password_hash.to_owned(),
            display_name.to_owned(),
        );
        self.write_kind(Kind::Fact, move |tx| {
            let mut names = tx.open_table(USERNAMES).map_err(err)?;
            if names.get(name.as_str()).map_err(err)?.is_some() {
                return Ok(None);
            }
            let mut counters = tx.open_table(COUNTERS).map_err(err)?;
            let id = counters
                .get("user_id")
                .map_err(err)?
                .map_or(0, |v| v.value())
                + 1;
            counters.insert("user_id", id).map_err(err)?;
            names.insert(name.as_str(), id).map_err(err)?;
            tx.open_table(ACCOUNTS)
                .map_err(err)?
                .insert(id, (name.as_str(), hash.as_str(), display.as_str()))
                .map_err(err)?;
            Ok(Some(UserId(id)))
        })
        .await
    }

    async fn account_by_name(&self, username: &str) -> Result<Option<Account>> {
        let name = username.to_owned();
        self.read(move |tx| {
            let Some(id) = tx
                .open_table(USERNAMES)
                .map_err(err)?
                .get(name.as_str())
                .map_err(err)?
                .map(|v| v.value())
            else {
                return Ok(None);
            };
            account_in(tx, id)
        })
        .await
    }

    async fn account(&self, user: UserId) -> Result<Option<Account>> {
        self.read(move |tx| account_in(tx, user.0)).await
    }

    async fn group(&self, group: GroupId) -> Result<Option<GroupState>> {
        self.read(move |tx| {
            let t = tx.open_table(GROUPS).map_err(err)?;
            let Some(v) = t.get(group.0).map_err(err)? else {
                return Ok(None);
            };
            GroupState::decode(v.value())
                .map(Some)
                .map_err(|e| err(format!("group {group}: {e}")))
        })
        .await
    }

    async fn new_device(&self, user: UserId) -> Result<DeviceId> {
        self.write_kind(Kind::Fact, move |tx| {
            let mut t = tx.open_table(DEVICES).map_err(err)?;
            let id = t.get(user.0).map_err(err)?.map_or(0, |v| v.value()) + 1;
            t.insert(user.0, id).map_err(err)?;
            Ok(DeviceId(id))
        })
        .await
    }

    async fn cursor(&self, user: UserId, device: DeviceId) -> Result<Option<u64>> {
        self.read(move |tx| {
            let t = tx.open_table(CURSORS).map_err(err)?;
            Ok(t.get((user.0, device.0)).map_err(err)?.map(|v| v.value()))
        })
        .await
    }

    async fn advance_cursor(&self, user: UserId, device: DeviceId, seq: u64) -> Result<()> {
        self.write_tx(move |tx| {
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
        self.write_tx(move |tx| {
            let mut t = tx.open_table(IDEM).map_err(err)?;
            if let Some(existing) = live_idem(&t, user, &key, now)? {
                return Ok(Claim::Existing(existing));
            }
            t.insert((user.0, key.as_str()), (msg_id.0, expires))
                .map_err(err)?;
            Ok(Claim::Claimed)
        })
        .await
    }

    async fn idem_get_many(&self, keys: Vec<(UserId, String)>) -> Result<Vec<Option<MessageId>>> {
        let now = now_ms();
        self.read(move |tx| {
            let t = tx.open_table(IDEM).map_err(err)?;
            keys.iter()
                .map(|(user, key)| live_idem(&t, *user, key, now))
                .collect()
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
        self.write_tx(move |tx| {
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

    async fn inbox_range(&self, user: UserId, after: u64, limit: usize) -> Result<Vec<InboxEntry>> {
        self.read(move |tx| {
            let t = tx.open_table(INBOX).map_err(err)?;
            let start = after.saturating_add(1);
            let mut out = Vec::new();
            // A run may start below `start` and still cover it.
            if let Some(e) = t
                .range((user.0, 0)..(user.0, start))
                .map_err(err)?
                .next_back()
            {
                let (k, v) = e.map_err(err)?;
                let row = InboxEntry::from_value(k.value().1, v.value());
                if row.last_seq() >= start {
                    out.push(row);
                }
            }
            for e in t.range((user.0, start)..=(user.0, u64::MAX)).map_err(err)? {
                if out.len() >= limit {
                    break;
                }
                let (k, v) = e.map_err(err)?;
                out.push(InboxEntry::from_value(k.value().1, v.value()));
            }
            Ok(out)
        })
        .await
    }

    async fn group_posts(
        &self,
        group: GroupId,
        from: MessageId,
        limit: usize,
    ) -> Result<Vec<(MessageId, Bytes)>> {
        self.read(move |tx| {
            let t = tx.open_table(GROUP_POSTS).map_err(err)?;
            t.range((group.0, from.0)..=(group.0, u64::MAX))
                .map_err(err)?
                .take(limit)
                .map(|e| {
                    let (k, v) = e.map_err(err)?;
                    Ok((MessageId(k.value().1), Bytes::copy_from_slice(v.value())))
                })
                .collect()
        })
        .await
    }

    async fn inbox_head(
        &self,
        user: UserId,
        conversation: ConversationId,
    ) -> Result<Option<MessageId>> {
        self.read(move |tx| {
            let t = tx.open_table(HEADS).map_err(err)?;
            let key = conversation.to_string();
            Ok(t.get((user.0, key.as_str()))
                .map_err(err)?
                .map(|v| MessageId(v.value())))
        })
        .await
    }

    async fn contacts(&self, user: UserId) -> Result<Vec<UserId>> {
        self.read(move |tx| second_of(tx, CONTACTS, user)).await
    }

    async fn watchers(&self, user: UserId) -> Result<Vec<UserId>> {
        self.read(move |tx| second_of(tx, WATCHERS, user)).await
    }

    async fn privacy(&self, user: UserId) -> Result<Audience> {
        self.read(move |tx| {
            let t = tx.open_table(PRIVACY).map_err(err)?;
            let code = t.get(user.0).map_err(err)?.map_or(0, |v| v.value());
            Ok(audience_of(code))
        })
        .await
    }

    async fn write(&self, ops: Vec<StateOp>) -> Result<()> {
        self.write_tx(move |tx| apply_ops(tx, &ops)).await
    }

    async fn apply(
        &self,
        job: &str,
        partition: u32,
        prev: Option<u64>,
        next_offset: u64,
        ops: Vec<StateOp>,
    ) -> Result<Applied> {
        let job = job.to_owned();
        self.write_tx(move |tx| {
            let mut jobs = tx.open_table(JOBS).map_err(err)?;
            let committed = jobs
                .get((job.as_str(), partition))
                .map_err(err)?
                .map(|v| v.value());
            if committed != prev {
                return Ok(Applied::Stale { committed });
            }
            jobs.insert((job.as_str(), partition), next_offset)
                .map_err(err)?;
            drop(jobs);
            apply_ops(tx, &ops)?;
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
