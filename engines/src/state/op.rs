//! [`StateOp`]: every write a job (or the edge) makes to the state store.

use bytes::Bytes;
use parley_schemas::group::GroupState;
use parley_schemas::ids::{ConversationId, DeviceId, GroupId, MessageId, UserId};
use parley_schemas::media::MediaId;
use parley_schemas::wire::{Audience, ReceiptStatus};

use super::{DeviceSession, ImageInfo, Indexed, MediaRecord, NotifyItem};

/// One write of a job's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateOp {
    /// Cumulative receipt: moves the mark to `max(mark, up_to)`; `Read`
    /// moves the delivered mark too.
    AdvanceMark {
        conversation: ConversationId,
        user: UserId,
        status: ReceiptStatus,
        up_to: MessageId,
    },
    /// Sets online/offline; `last_seen` moves to `max(last_seen, value)`.
    SetPresence {
        user: UserId,
        online: bool,
        last_seen: Option<u64>,
        at: u64,
    },
    /// Stores inbox item `seq` of `user` (an encoded event), moves the
    /// user's seq to it, and moves the user's head in `conversation` (the
    /// newest message placed in their inbox from it) to `msg_id`.
    InboxPut {
        user: UserId,
        seq: u64,
        conversation: ConversationId,
        msg_id: MessageId,
        item: Bytes,
    },
    /// An idempotency mapping derived from the log; a live mapping wins.
    IdemPut {
        user: UserId,
        client_msg_id: String,
        msg_id: MessageId,
        /// Where the first send went: a resend elsewhere is refused.
        conversation: ConversationId,
        expires_at: u64,
    },
    /// A message later actions may name (edit, delete, react, reply to),
    /// by the router; kept until `expires_at`. Writing it again changes
    /// nothing (a deletion stays).
    IndexMessage {
        conversation: ConversationId,
        msg_id: MessageId,
        indexed: Indexed,
        expires_at: u64,
    },
    /// Deleted for everyone: actions on it are refused from now on.
    IndexDeleted {
        conversation: ConversationId,
        msg_id: MessageId,
    },
    /// User activity: `last_seen` moves to `max(last_seen, at)`.
    TouchLastSeen {
        user: UserId,
        at: u64,
    },
    /// An account as the log recorded it: restored if missing (a wiped
    /// store), and user ids issued later stay above it.
    RestoreAccount {
        user: UserId,
        username: String,
        password_hash: String,
        display_name: String,
    },
    /// Device ids issued to `user` later stay above `device`.
    RestoreDevice {
        user: UserId,
        device: DeviceId,
    },
    /// A device's session as the log recorded it: kept if it is later than
    /// the stored one (the greatest wins, whatever the order of arrival).
    RestoreDeviceSession {
        user: UserId,
        device: DeviceId,
        session: DeviceSession,
    },
    /// A profile change, applied in log order (the last one wins); `None`
    /// leaves a field, an empty `avatar_media_id` removes the avatar.
    SetProfile {
        user: UserId,
        display_name: Option<String>,
        about: Option<String>,
        avatar_media_id: Option<String>,
    },
    /// A group's whole derived state, as the router last computed it (it is
    /// the one writer of each group, so the last write is the truth).
    PutGroup {
        group: GroupId,
        state: GroupState,
    },
    /// `user`'s contact list gains or loses `contact` (and `contact`'s
    /// watchers lose or gain `user`).
    SetContact {
        user: UserId,
        contact: UserId,
        added: bool,
    },
    SetPrivacy {
        user: UserId,
        presence: Audience,
    },
    /// `user` blocks `other` (`on`) or no longer does.
    SetBlock {
        user: UserId,
        other: UserId,
        on: bool,
    },
    /// A deleted account: the password hash becomes [`ERASED`] (no
    /// password matches it), the profile a placeholder; contacts (and
    /// their mirror), blocks, privacy, last seen, the inbox, device
    /// cursors, read marks and chat settings go, and later inbox items
    /// and cursor moves for the user are not kept. The username and the
    /// inbox seq counter stay.
    EraseAccount {
        user: UserId,
    },
    /// `user` became a member of `group` (`member`) or left it: the index
    /// behind [`ConversationStore::groups_of`](super::ConversationStore::groups_of).
    SetMembership {
        user: UserId,
        group: GroupId,
        member: bool,
    },
    /// An item for a user who is away, queued for a notification in the
    /// notifier's partition `partition`, collapsed with the others of its
    /// conversation.
    QueueNotification {
        partition: u32,
        item: NotifyItem,
    },
    /// Stores a large group's message once in the group's stream (read
    /// fan-out): `message` is an encoded event. Rewriting it is a no-op.
    GroupPost {
        group: GroupId,
        msg_id: MessageId,
        message: Bytes,
    },
    /// An upload: stored if absent (what the thumbnail job added stays).
    PutMedia {
        media: MediaId,
        record: MediaRecord,
    },
    /// What the thumbnail job found of an upload's image. Kept apart from
    /// the record, so the two jobs may run in either order.
    SetMediaImage {
        media: MediaId,
        image: ImageInfo,
    },
    /// An upload deleted (never sent, or gone under `until_delivered`
    /// retention): its record, uses and fetches go, and its blob's count
    /// of uploads drops (at 0 the blob is unreferenced from `at`).
    DeleteMedia {
        media: MediaId,
        at: u64,
    },
    /// `user` fetched the whole of `media` at `at`
    /// (`retention.mode = "until_delivered"`): it may go once every
    /// recipient has, so it is queued for the sweeper to look at.
    MediaFetched {
        media: MediaId,
        user: UserId,
        at: u64,
    },
    /// The sweeper looked at the fetches of `media` queued up to `at`
    /// (a later fetch stays queued).
    MediaChecked {
        media: MediaId,
        at: u64,
    },
    /// A message carrying `media` was sent in `conversation`: those who
    /// may see that message may fetch the media.
    MediaUsed {
        media: MediaId,
        conversation: ConversationId,
        msg_id: MessageId,
    },
    /// Replaces item `seq` of `user`'s inbox with `item` (the same
    /// message, its content blanked by a deletion for everyone) if that
    /// item is stored; seqs and heads stay.
    InboxRedact {
        user: UserId,
        seq: u64,
        item: Bytes,
    },
    /// Replaces the post `msg_id` of `group`'s stream with `message` (its
    /// content blanked by a deletion for everyone) if it is stored.
    GroupPostRedact {
        group: GroupId,
        msg_id: MessageId,
        message: Bytes,
    },
    /// The message `msg_id` of `conversation` that carried `media` was
    /// deleted for everyone: it no longer lets anyone fetch the media, and
    /// an upload no message uses any more counts as never sent from then
    /// (the sweeper deletes those after `media.unsent_hours`).
    MediaUnused {
        media: MediaId,
        conversation: ConversationId,
        msg_id: MessageId,
    },
    /// Seqs `seq..seq + count` of `user` are the `count` consecutive posts
    /// of `group`'s stream from `first` on (the last is `last`): one row
    /// instead of `count` copies. Moves the user's seq and their head in
    /// the group's conversation like [`StateOp::InboxPut`].
    InboxRun {
        user: UserId,
        seq: u64,
        count: u32,
        group: GroupId,
        first: MessageId,
        last: MessageId,
    },
}

impl StateOp {
    /// The upload a `MediaAdded` records (written by the edge, and by the
    /// accounts job when it replays the log).
    pub fn put_media(a: &parley_schemas::event::MediaAdded) -> StateOp {
        StateOp::PutMedia {
            media: a.media,
            record: MediaRecord {
                uploader: a.uploader,
                sha256: a.sha256.clone(),
                size: a.size,
                mime: a.mime.clone(),
                uploaded_at: a.ts,
                image: None,
            },
        }
    }
}
