//! The state-store seam: what processors derive from the log and what the
//! edge and delivery read back.
//!
//! Written with Redis in mind: every call is one key or one small group of
//! keys, and [`StateStore::apply`] — a job's output together with its
//! consumed offset — maps to one `MULTI`/Lua call. Every mark and cursor only
//! moves forward (`max`), so replaying a batch, or applying it twice, has
//! no effect the second time.

use async_trait::async_trait;
use bytes::Bytes;
pub use parley_schemas::event::DeviceSession;
use parley_schemas::group::GroupState;
use parley_schemas::ids::{ConversationId, DeviceId, GroupId, MessageId, UserId};
use parley_schemas::wire::Audience;

use crate::error::Result;

mod indexed;
mod keys;
mod media;
mod notify;
mod op;
pub use indexed::Indexed;
pub use keys::{DeviceKeys, KeyStore, KeysPut};
pub use media::{ImageInfo, MediaRecord, MediaStore};
pub(crate) use notify::PendingRow;
pub use notify::{NotifyItem, NotifyStore, PendingNotification, StoredSubscription};
pub use op::StateOp;

/// The delivered/read marks of one user in one conversation. Read implies
/// delivered, so `delivered >= read` always.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marks {
    pub delivered: Option<MessageId>,
    pub read: Option<MessageId>,
}

/// A user's presence as derived from heartbeats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Presence {
    pub online: bool,
    /// Last user activity (active heartbeat or send), ms; 0 if never.
    pub last_seen: u64,
    /// When `online` last changed or was confirmed, ms.
    pub updated: u64,
}

impl Presence {
    /// Whether this still means online at `now` (a heartbeat within
    /// [`OFFLINE_AFTER_MS`](parley_schemas::presence::OFFLINE_AFTER_MS)).
    pub fn is_online(&self, now: u64) -> bool {
        parley_schemas::presence::online_at(self.online, self.updated, now)
    }

    /// Whether the user has an app in the foreground at `now`: online, and
    /// active (an `active` heartbeat, which apps send every 5 s while in
    /// front, or a send) within the same window. Background sockets do
    /// not count: their users get notifications.
    pub fn in_foreground(&self, now: u64) -> bool {
        self.is_online(now)
            && now.saturating_sub(self.last_seen) <= parley_schemas::presence::OFFLINE_AFTER_MS
    }
}

/// A registered user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user_id: UserId,
    pub username: String,
    /// An argon2id PHC string; never the password.
    pub password_hash: String,
    pub display_name: String,
    /// The profile's free text; empty until set.
    pub about: String,
    pub avatar_media_id: Option<String>,
}

/// The password hash of a deleted account: not a PHC string, so no
/// password ever matches it.
pub const ERASED: &str = "!erased";
/// The display name a deleted account shows in old chats.
pub const ERASED_NAME: &str = "Deleted account";

impl Account {
    /// Whether the account was deleted.
    pub fn erased(&self) -> bool {
        self.password_hash == ERASED
    }
}

/// One row of a user's inbox, as [`StateStore::inbox_range`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboxEntry {
    /// Item `seq`: an encoded event.
    Item { seq: u64, item: Bytes },
    /// Seqs `seq..seq + count` point at posts of `group` from `first` on;
    /// [`StateStore::group_posts`] reads them.
    Run {
        seq: u64,
        count: u32,
        group: GroupId,
        first: MessageId,
    },
}

/// Inbox rows a reader fetches per read. A run is read whole when a
/// replay starts inside it, so the sequencer keeps runs this short.
pub const INBOX_PAGE: usize = 256;

/// The last seq of a run of `count` seqs from `seq`.
pub fn run_last_seq(seq: u64, count: u32) -> u64 {
    seq + u64::from(count).max(1) - 1
}

/// Runs are stored beside items in one ordered inbox, so each store keeps
/// one row format: an item is a codec record (it starts with the codec's
/// magic byte), a run is this tag and three big-endian numbers.
const RUN_TAG: u8 = b'R';

impl InboxEntry {
    pub fn seq(&self) -> u64 {
        match self {
            InboxEntry::Item { seq, .. } | InboxEntry::Run { seq, .. } => *seq,
        }
    }

    /// The last seq this row covers.
    pub fn last_seq(&self) -> u64 {
        match self {
            InboxEntry::Item { seq, .. } => *seq,
            InboxEntry::Run { seq, count, .. } => run_last_seq(*seq, *count),
        }
    }

    /// When the message of an item was sent (ms); `None` for a run (its
    /// last post's time is not in the row) or an unreadable row.
    pub fn sent_at(&self) -> Option<u64> {
        let InboxEntry::Item { item, .. } = self else {
            return None;
        };
        match parley_schemas::codec::decode(item).ok()? {
            parley_schemas::Event::InboxItem(i) => Some(i.message.ts),
            parley_schemas::Event::MessageSent(m) => Some(m.ts),
            _ => None,
        }
    }

    /// The stored value of a run.
    pub fn run_value(group: GroupId, first: MessageId, count: u32) -> Vec<u8> {
        let mut v = Vec::with_capacity(21);
        v.push(RUN_TAG);
        v.extend_from_slice(&group.0.to_be_bytes());
        v.extend_from_slice(&first.0.to_be_bytes());
        v.extend_from_slice(&count.to_be_bytes());
        v
    }

    /// The row stored at `seq` with value `v`.
    pub fn from_value(seq: u64, v: &[u8]) -> InboxEntry {
        if v.len() == 21 && v[0] == RUN_TAG {
            let n = |r: std::ops::Range<usize>| {
                let mut b = [0u8; 8];
                b[8 - r.len()..].copy_from_slice(&v[r]);
                u64::from_be_bytes(b)
            };
            return InboxEntry::Run {
                seq,
                group: GroupId(n(1..9)),
                first: MessageId(n(9..17)),
                count: n(17..21) as u32,
            };
        }
        InboxEntry::Item {
            seq,
            item: Bytes::copy_from_slice(v),
        }
    }
}

/// Whether `apply` wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Written,
    /// The stored offset was not the one the job expected, so nothing was
    /// written: another run got further (`Some` past it), or the store was
    /// wiped (`None`), and the job must resume from what is stored.
    Stale {
        committed: Option<u64>,
    },
}

/// What a `client_msg_id` was first sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstSend {
    pub msg_id: MessageId,
    /// `None` for a mapping stored before conversations were kept with it.
    pub conversation: Option<ConversationId>,
}

/// Accounts and devices: written by the edge at sign-up (a username
/// must be unique at once) and restored by the accounts job from the log.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Registers a user; `None` if the username is taken. Ids are dense
    /// from 1.
    async fn create_account(
        &self,
        username: &str,
        password_hash: &str,
        display_name: &str,
    ) -> Result<Option<UserId>>;

    async fn account_by_name(&self, username: &str) -> Result<Option<Account>>;

    async fn account(&self, user: UserId) -> Result<Option<Account>>;

    /// A device id the user has not had before (dense from 1).
    async fn new_device(&self, user: UserId) -> Result<DeviceId>;

    /// How many device ids `user` was issued: they are `1..=n`.
    async fn devices_issued(&self, user: UserId) -> Result<u64>;

    /// A device's session; `None` if it never signed in.
    async fn device_session(&self, user: UserId, device: DeviceId)
        -> Result<Option<DeviceSession>>;

    /// Every device of `user` that signed in, with its session, by id.
    async fn device_sessions(&self, user: UserId) -> Result<Vec<(DeviceId, DeviceSession)>>;

    /// Stores `next` if the device's session is still `expected` (`None`:
    /// none stored); false if it changed meanwhile, and nothing is written.
    async fn swap_device_session(
        &self,
        user: UserId,
        device: DeviceId,
        expected: Option<DeviceSession>,
        next: DeviceSession,
    ) -> Result<bool>;
}

/// Who is online, and who may know: presence and last seen (the presence
/// job), contact lists, their mirror and the privacy setting (the accounts
/// job). What the presence job reads to announce a change.
#[async_trait]
pub trait PresenceStore: Send + Sync + 'static {
    /// Online or not and last seen; `None` if never seen.
    async fn presence(&self, user: UserId) -> Result<Option<Presence>>;

    /// The users in `user`'s contact list, in id order.
    async fn contacts(&self, user: UserId) -> Result<Vec<UserId>>;

    /// The users who have `user` in their contact list, in id order.
    async fn watchers(&self, user: UserId) -> Result<Vec<UserId>>;

    /// Who may see `user`'s presence ([`Audience::Everyone`] if never set).
    async fn privacy(&self, user: UserId) -> Result<Audience>;

    /// The users `user` blocks, in id order.
    async fn blocked(&self, user: UserId) -> Result<Vec<UserId>>;

    /// Whether `user` blocks `other`.
    async fn blocks(&self, user: UserId, other: UserId) -> Result<bool>;
}

/// What the router derives from `events`: group state, receipt marks and
/// the idempotency map of sends.
#[async_trait]
pub trait ConversationStore: Send + Sync + 'static {
    /// A group's state as the router derived it; `None` if no such group.
    async fn group(&self, group: GroupId) -> Result<Option<GroupState>>;

    /// `user`'s cumulative delivered/read marks in `conversation`.
    async fn marks(&self, conversation: ConversationId, user: UserId) -> Result<Marks>;

    /// The live mapping of each `(user, client_msg_id)`, in the order
    /// asked: what its first send got, while the resend window lasts.
    async fn idem_get_many(&self, keys: Vec<(UserId, String)>) -> Result<Vec<Option<FirstSend>>>;

    /// The index entry of `msg_id` in `conversation`, while it lasts.
    async fn indexed(
        &self,
        conversation: ConversationId,
        msg_id: MessageId,
    ) -> Result<Option<Indexed>>;

    /// The groups `user` is a current member of (joined since the
    /// membership index exists), in no set order.
    async fn groups_of(&self, user: UserId) -> Result<Vec<GroupId>>;
}

/// Per-user inboxes and per-device cursors: written by the sequencer, read
/// by each device's feed for catch-up and gap-fill.
#[async_trait]
pub trait InboxStore: Send + Sync + 'static {
    /// The last inbox `seq` issued to a user; 0 if none.
    async fn inbox_seq(&self, user: UserId) -> Result<u64>;

    /// Up to `limit` rows of `user`'s inbox holding seqs above `after`, in
    /// order: a run that starts at or below `after` but reaches past it
    /// comes first. Costs what it returns, whatever the size of the inbox.
    async fn inbox_range(&self, user: UserId, after: u64, limit: usize) -> Result<Vec<InboxEntry>>;

    /// Up to `limit` posts of `group`'s stream from `from` on, in order.
    async fn group_posts(
        &self,
        group: GroupId,
        from: MessageId,
        limit: usize,
    ) -> Result<Vec<(MessageId, Bytes)>>;

    /// The newest message from `conversation` placed in `user`'s inbox.
    async fn inbox_head(
        &self,
        user: UserId,
        conversation: ConversationId,
    ) -> Result<Option<MessageId>>;

    /// The last inbox `seq` a device has acknowledged; `None` if never.
    async fn cursor(&self, user: UserId, device: DeviceId) -> Result<Option<u64>>;

    /// Moves a device cursor forward (never back).
    async fn advance_cursor(&self, user: UserId, device: DeviceId, seq: u64) -> Result<()>;

    /// Deletes `user`'s inbox rows wholly at or below `through` (a run of
    /// posts that reaches past it stays): every device confirmed them
    /// (`retention.mode = "until_delivered"`). The number of rows deleted.
    async fn trim_inbox(&self, user: UserId, through: u64) -> Result<u64>;

    /// Deletes, in every user's inbox, the items of messages sent before
    /// `before` (ms) that no device confirmed in time
    /// (`retention.undelivered_days`). Runs of a large group's posts stay.
    /// The number of rows deleted.
    async fn expire_inbox(&self, before: u64) -> Result<u64>;

    /// The lowest seq still stored in `user`'s inbox; `None` if it is empty.
    async fn inbox_first(&self, user: UserId) -> Result<Option<u64>>;
}

/// Job output and offsets: how every job commits, and how the edge sees
/// that a job has applied a change.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Writes `ops` atomically, outside any job.
    async fn write(&self, ops: Vec<StateOp>) -> Result<()>;

    /// Writes `ops` and records that `job` consumed `partition` up to
    /// `next_offset`, atomically, if the stored offset is still `prev`
    /// (what the job read or last wrote; `None`: nothing yet). Otherwise
    /// nothing is written ([`Applied::Stale`]): a compare-and-set, so a
    /// replay, a second runner and a wiped store are all refused.
    async fn apply(
        &self,
        job: &str,
        partition: u32,
        prev: Option<u64>,
        next_offset: u64,
        ops: Vec<StateOp>,
    ) -> Result<Applied>;

    /// Where `job` should resume on `partition`; `None` if it never ran.
    async fn job_offset(&self, job: &str, partition: u32) -> Result<Option<u64>>;
}

/// The whole state store: every narrow trait above. Backends implement
/// the narrow traits; this one comes with them. Roles hold an
/// `Arc<dyn StateStore>` and call what their job needs; the contract suite
/// tests each narrow trait on its own.
pub trait StateStore:
    AccountStore
    + PresenceStore
    + ConversationStore
    + InboxStore
    + MediaStore
    + KeyStore
    + NotifyStore
    + JobStore
{
}

impl<T> StateStore for T where
    T: AccountStore
        + PresenceStore
        + ConversationStore
        + InboxStore
        + MediaStore
        + KeyStore
        + NotifyStore
        + JobStore
        + ?Sized
{
}

/// How every store keeps a privacy setting: one byte, 0 for the default.
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
