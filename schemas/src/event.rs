//! Events carried by the partitioned log. Everything Parley knows is derived
//! from these.
//!
//! Evolution rule (the codec is postcard, which encodes an enum variant by
//! its index and fields by position): new kinds of event are added as new
//! variants **at the end** of [`Event`], which old data never uses, so old
//! records keep decoding. Any change to an existing variant's fields needs a
//! new envelope version in [`crate::codec`], with the old layout kept
//! decodable.

use serde::{Deserialize, Serialize};

use crate::group::GroupChange;
use crate::ids::{ConversationId, DeviceId, GroupId, MessageId, UserId};
use crate::media::MediaId;
use crate::wire::{Audience, Body, ReceiptStatus, Recipient};

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    MessageSent(MessageSent),
    Receipt(Receipt),
    Heartbeat(Heartbeat),
    InboxItem(InboxItem),
    Status(StatusUpdate),
    Presence(PresenceChanged),
    AccountCreated(AccountCreated),
    DeviceAdded(DeviceAdded),
    ProfileUpdated(ProfileUpdated),
    /// On `events`, in the group's conversation partition, so the router
    /// sees membership and messages in one order.
    Group(GroupEvent),
    /// On `inbox`: every current member of a group reached `status` for
    /// the sender's messages up to `msg_id` (`by`: whose receipt did it).
    StatusAll(StatusUpdate),
    /// On `accounts`: `user` added or removed `contact`.
    ContactChanged(ContactChanged),
    /// On `accounts`: who may see `user`'s presence from now on.
    PrivacySet(PrivacySet),
    /// On `inbox`: a presence change to push to the users `to` (those of
    /// this inbox partition who may see it).
    PresenceNotice(PresenceNotice),
    /// On `inbox`: a message of a large group (read fan-out), once per
    /// inbox partition, for the members of that partition.
    GroupPost(GroupPost),
    /// On `accounts`: a device signed in, refreshed its tokens or signed
    /// out.
    DeviceSession(DeviceSessionChanged),
    /// On `accounts`: a user uploaded a file; what the upload's id stands
    /// for, and who may use it first.
    MediaAdded(MediaAdded),
    /// On `accounts`: an upload never sent, deleted by the sweeper.
    MediaDeleted(MediaDeleted),
    /// On `notify-dead` (by user): a notification no sink took after every
    /// try, kept for operators.
    NotificationDead(NotificationDead),
    /// On `accounts`: `user` blocked or unblocked `other`.
    BlockChanged(BlockChanged),
    /// On `moderation` (by reporter): a user reported a message or a user.
    ReportFiled(ReportFiled),
    /// On `accounts`: the user deleted their account. Its profile,
    /// contacts, blocks and privacy go; the username stays taken, so no
    /// one else can pose as them in old chats.
    AccountDeleted(AccountDeleted),
    /// On `inbox`: a message acked to its sender that the router refused
    /// in log order (its sender left the group, or was removed, just
    /// before it was appended). Told to the sender's devices as an `error`
    /// for its `client_msg_id`; never stored, never delivered.
    SendRefused(SendRefused),
}

impl Event {
    /// A short, stable name for logs and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::MessageSent(_) => "message_sent",
            Event::Receipt(_) => "receipt",
            Event::Heartbeat(_) => "heartbeat",
            Event::InboxItem(_) => "inbox_item",
            Event::Status(_) => "status",
            Event::Presence(_) => "presence",
            Event::AccountCreated(_) => "account_created",
            Event::DeviceAdded(_) => "device_added",
            Event::ProfileUpdated(_) => "profile_updated",
            Event::Group(_) => "group",
            Event::StatusAll(_) => "status_all",
            Event::ContactChanged(_) => "contact_changed",
            Event::PrivacySet(_) => "privacy_set",
            Event::PresenceNotice(_) => "presence_notice",
            Event::GroupPost(_) => "group_post",
            Event::DeviceSession(_) => "device_session",
            Event::MediaAdded(_) => "media_added",
            Event::MediaDeleted(_) => "media_deleted",
            Event::NotificationDead(_) => "notification_dead",
            Event::BlockChanged(_) => "block_changed",
            Event::ReportFiled(_) => "report_filed",
            Event::AccountDeleted(_) => "account_deleted",
            Event::SendRefused(_) => "send_refused",
        }
    }
}

/// A client's message, as appended by the edge. `msg_id` is issued there.
/// An action on an earlier message (an edit, a deletion, a reaction) is
/// one too, with an action [`Body`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSent {
    pub msg_id: MessageId,
    pub conversation: ConversationId,
    pub from: UserId,
    pub from_device: DeviceId,
    pub to: Recipient,
    pub client_msg_id: String,
    pub body: Body,
    pub ts: u64,
    /// Since envelope version 3: a reply to this message.
    pub reply_to: Option<MessageId>,
    /// Since envelope version 3: sent on from another chat.
    pub forwarded: bool,
}

/// [`MessageSent`] as envelope versions 1 and 2 wrote it.
#[derive(Serialize)]
struct MessageSentV2Out<'a> {
    msg_id: MessageId,
    conversation: ConversationId,
    from: UserId,
    from_device: DeviceId,
    to: &'a Recipient,
    client_msg_id: &'a str,
    body: &'a Body,
    ts: u64,
}

/// [`MessageSent`] as it is written now (and in JSON).
#[derive(Serialize)]
struct MessageSentOut<'a> {
    msg_id: MessageId,
    conversation: ConversationId,
    from: UserId,
    from_device: DeviceId,
    to: &'a Recipient,
    client_msg_id: &'a str,
    body: &'a Body,
    ts: u64,
    reply_to: Option<MessageId>,
    forwarded: bool,
}

impl Serialize for MessageSent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() && crate::codec::layout() < 3 {
            return MessageSentV2Out {
                msg_id: self.msg_id,
                conversation: self.conversation,
                from: self.from,
                from_device: self.from_device,
                to: &self.to,
                client_msg_id: &self.client_msg_id,
                body: &self.body,
                ts: self.ts,
            }
            .serialize(s);
        }
        MessageSentOut {
            msg_id: self.msg_id,
            conversation: self.conversation,
            from: self.from,
            from_device: self.from_device,
            to: &self.to,
            client_msg_id: &self.client_msg_id,
            body: &self.body,
            ts: self.ts,
            reply_to: self.reply_to,
            forwarded: self.forwarded,
        }
        .serialize(s)
    }
}

/// [`MessageSent`] as envelope versions 1 and 2 wrote it.
#[derive(Deserialize)]
struct MessageSentV2 {
    msg_id: MessageId,
    conversation: ConversationId,
    from: UserId,
    from_device: DeviceId,
    to: Recipient,
    client_msg_id: String,
    body: Body,
    ts: u64,
}

#[derive(Deserialize)]
struct MessageSentV3 {
    msg_id: MessageId,
    conversation: ConversationId,
    from: UserId,
    from_device: DeviceId,
    to: Recipient,
    client_msg_id: String,
    body: Body,
    ts: u64,
    #[serde(default)]
    reply_to: Option<MessageId>,
    #[serde(default)]
    forwarded: bool,
}

impl<'de> Deserialize<'de> for MessageSent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() && crate::codec::layout() < 3 {
            let m = MessageSentV2::deserialize(d)?;
            return Ok(MessageSent {
                msg_id: m.msg_id,
                conversation: m.conversation,
                from: m.from,
                from_device: m.from_device,
                to: m.to,
                client_msg_id: m.client_msg_id,
                body: m.body,
                ts: m.ts,
                reply_to: None,
                forwarded: false,
            });
        }
        let m = MessageSentV3::deserialize(d)?;
        Ok(MessageSent {
            msg_id: m.msg_id,
            conversation: m.conversation,
            from: m.from,
            from_device: m.from_device,
            to: m.to,
            client_msg_id: m.client_msg_id,
            body: m.body,
            ts: m.ts,
            reply_to: m.reply_to,
            forwarded: m.forwarded,
        })
    }
}

/// Cumulative: covers every message of `conversation` up to `up_to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub conversation: ConversationId,
    pub by: UserId,
    pub device: DeviceId,
    pub up_to: MessageId,
    pub status: ReceiptStatus,
    pub ts: u64,
}

/// `active: false` means the app is in the background: online, but it
/// does not move last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub user: UserId,
    pub device: DeviceId,
    pub active: bool,
    /// The socket closed: the device is gone now, not at the heartbeat timeout.
    pub closing: bool,
    pub ts: u64,
}

/// A message placed in one user's inbox, with that user's dense `seq`.
/// It carries the whole message so that delivery and catch-up need no
/// second lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxItem {
    pub user: UserId,
    pub seq: u64,
    pub message: MessageSent,
}

/// A receipt to push to the devices of a message's sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusUpdate {
    /// The sender, whose devices get the `status` frame.
    pub to: UserId,
    pub conversation: ConversationId,
    pub msg_id: MessageId,
    pub status: ReceiptStatus,
    pub by: UserId,
    pub ts: u64,
}

/// A user's derived presence changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceChanged {
    pub user: UserId,
    pub online: bool,
    pub last_seen: u64,
    pub ts: u64,
}

/// A registration, as the state store accepted it. The password is only
/// ever stored as its argon2id hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountCreated {
    pub user: UserId,
    pub username: String,
    pub password_hash: String,
    pub display_name: String,
    pub ts: u64,
}

/// A device id issued to a user at sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAdded {
    pub user: UserId,
    pub device: DeviceId,
    pub ts: u64,
}

/// A device's session: `session` counts its sign-ins (tokens name the one
/// they were issued in), `refresh` how many refresh tokens that sign-in
/// used (each works once), `revoked` whether it signed out (or reused a
/// refresh token). Later states order above earlier ones, so copies merge
/// by taking the greatest.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct DeviceSession {
    pub session: u64,
    pub refresh: u64,
    pub revoked: bool,
}

impl DeviceSession {
    /// A fixed-width text whose byte order is the state order, for stores
    /// that compare strings.
    pub fn encode(&self) -> String {
        format!(
            "{:020}{:020}{}",
            self.session, self.refresh, self.revoked as u8
        )
    }

    pub fn decode(s: &str) -> Option<DeviceSession> {
        if s.len() != 41 || !s.is_ascii() {
            return None;
        }
        Some(DeviceSession {
            session: s[..20].parse().ok()?,
            refresh: s[20..40].parse().ok()?,
            revoked: match &s[40..] {
                "0" => false,
                "1" => true,
                _ => return None,
            },
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSessionChanged {
    pub user: UserId,
    pub device: DeviceId,
    pub session: DeviceSession,
    pub ts: u64,
}

/// A user changed their profile; `None` leaves a field as it was, and an
/// empty `avatar_media_id` removes the avatar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileUpdated {
    pub user: UserId,
    pub display_name: Option<String>,
    pub about: Option<String>,
    pub avatar_media_id: Option<String>,
    pub ts: u64,
}

/// An upload, stored and durable: its bytes are the blob of `sha256`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaAdded {
    pub media: MediaId,
    pub uploader: UserId,
    /// Lowercase hex.
    pub sha256: String,
    pub size: u64,
    /// As sniffed from the bytes (never only what the client declared).
    pub mime: String,
    pub ts: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaDeleted {
    pub media: MediaId,
    pub ts: u64,
}

/// A notification given up on: for whom, through which subscription, the
/// payload as it was sent (no message text for `e2e` conversations), and
/// the last error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationDead {
    pub user: UserId,
    pub subscription: String,
    pub payload: String,
    pub error: String,
    pub tries: u32,
    pub ts: u64,
}

/// A change to a group's name or members, by `by`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupEvent {
    pub group: GroupId,
    pub by: UserId,
    pub change: GroupChange,
    pub ts: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactChanged {
    pub user: UserId,
    pub contact: UserId,
    pub added: bool,
    pub ts: u64,
}

/// A report for operators: who reported whom or what, why, and the last
/// messages of that chat the reporter could see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportFiled {
    pub report_id: String,
    pub reporter: UserId,
    pub user: Option<UserId>,
    pub conversation: Option<ConversationId>,
    pub msg_id: Option<MessageId>,
    pub reason: String,
    /// The chat's last messages, newest first, as `msg` frames (JSON).
    pub messages_json: String,
    pub ts: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountDeleted {
    pub user: UserId,
    pub ts: u64,
}

/// An acked send that will not be delivered, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRefused {
    /// Its sender, whose devices are told.
    pub user: UserId,
    pub client_msg_id: String,
    pub msg_id: MessageId,
    pub conversation: ConversationId,
    pub reason: String,
}

/// `user` blocks `other` (`on`) or no longer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockChanged {
    pub user: UserId,
    pub other: UserId,
    pub on: bool,
    pub ts: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivacySet {
    pub user: UserId,
    pub presence: Audience,
    pub ts: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceNotice {
    pub to: Vec<UserId>,
    pub presence: PresenceChanged,
}

/// A large group's message for the current members `to` of one inbox
/// partition. `prev` is the group's previous message: consecutive posts
/// of a group chain through it, which is how a member's inbox can point at
/// a run of the group's stream instead of holding copies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPost {
    pub to: Vec<UserId>,
    pub prev: Option<MessageId>,
    pub message: MessageSent,
}

impl MessageSent {
    /// The message as a client sees it, with the recipient's inbox `seq`
    /// when it comes from an inbox.
    pub fn to_frame(&self, seq: Option<u64>) -> crate::wire::MsgFrame {
        crate::wire::MsgFrame {
            seq,
            msg_id: self.msg_id,
            conversation_id: self.conversation,
            from: self.from,
            to: self.to,
            body: self.body.clone(),
            ts: self.ts,
            extra: crate::wire::MsgExtra {
                reply_to: self.reply_to,
                forwarded: self.forwarded,
                ..Default::default()
            },
        }
    }
}

impl StatusUpdate {
    /// `all`: the aggregate for every member of a group.
    pub fn to_frame(&self, all: bool) -> crate::wire::StatusFrame {
        crate::wire::StatusFrame {
            all,
            conversation_id: self.conversation,
            msg_id: self.msg_id,
            status: self.status,
            by: self.by,
            ts: self.ts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DeviceSession;

    #[test]
    fn device_sessions_encode_in_their_order() {
        let states = [
            DeviceSession::default(),
            DeviceSession {
                session: 1,
                refresh: 0,
                revoked: false,
            },
            DeviceSession {
                session: 1,
                refresh: 9,
                revoked: false,
            },
            DeviceSession {
                session: 1,
                refresh: 9,
                revoked: true,
            },
            DeviceSession {
                session: 2,
                refresh: 0,
                revoked: false,
            },
        ];
        for w in states.windows(2) {
            assert!(w[0] < w[1]);
            assert!(w[0].encode() < w[1].encode());
        }
        for s in states {
            assert_eq!(DeviceSession::decode(&s.encode()), Some(s));
        }
        assert_eq!(DeviceSession::decode("1"), None);
        assert_eq!(DeviceSession::decode(&format!("{}2", "0".repeat(40))), None);
    }
}
