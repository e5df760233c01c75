//! The notifications seam: what the notifier job queues for users none of
//! whose devices is in the foreground (collapsed per conversation), and
//! what users set up: push subscriptions (per device) and their
//! notification settings (mutes, previews).
//!
//! Queued notifications are job output (a [`StateOp::QueueNotification`]
//! applied with the notifier's offset, so each inbox item is queued
//! exactly once); subscriptions and settings are facts the edge writes.

use async_trait::async_trait;
use parley_schemas::ids::{ConversationId, DeviceId, MessageId, UserId};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

/// One inbox item for a user who is away, as the notifier job queues it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyItem {
    pub user: UserId,
    pub conversation: ConversationId,
    pub msg_id: MessageId,
    pub from: UserId,
    /// When the job queued it, ms.
    pub at: u64,
    /// The text, for a preview if the user allows one; never for `e2e`.
    pub preview: Option<String>,
}

/// The queued notification of one user in one conversation: the items
/// since the last one sent, collapsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingNotification {
    pub user: UserId,
    pub conversation: ConversationId,
    /// When its first item was queued: it is due a collapse window later.
    pub first_at: u64,
    pub count: u64,
    /// The newest item's.
    pub msg_id: MessageId,
    pub from: UserId,
    pub at: u64,
    pub preview: Option<String>,
}

/// How both backends store a pending notification: ids as strings (Redis
/// merges it in Lua, whose numbers are doubles), message ids zero-padded
/// so that string order is numeric order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingRow {
    pub user: String,
    pub conversation: String,
    pub first_at: String,
    pub count: u64,
    pub msg_id: String,
    pub from: String,
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
}

impl PendingRow {
    pub(crate) fn of(item: &NotifyItem) -> PendingRow {
        PendingRow {
            user: item.user.0.to_string(),
            conversation: item.conversation.to_string(),
            first_at: item.at.to_string(),
            count: 1,
            msg_id: format!("{:020}", item.msg_id.0),
            from: item.from.0.to_string(),
            at: item.at.to_string(),
            preview: item.preview.clone(),
        }
    }

    /// Folds a later item in (a replay of an older one changes nothing
    /// but the count, which the job's offset fencing keeps exact).
    pub(crate) fn merge(mut self, newer: PendingRow) -> PendingRow {
        self.count += 1;
        if newer.msg_id > self.msg_id {
            self.msg_id = newer.msg_id;
            self.from = newer.from;
            self.at = newer.at;
            self.preview = newer.preview;
        }
        self
    }

    pub(crate) fn parse(&self) -> Result<PendingNotification> {
        let bad =
            |what: &str| EngineError::State(format!("malformed pending notification: {what}"));
        let n = |s: &str, what: &str| s.parse::<u64>().map_err(|_| bad(what));
        Ok(PendingNotification {
            user: UserId(n(&self.user, "user")?),
            conversation: self.conversation.parse().map_err(|_| bad("conversation"))?,
            first_at: n(&self.first_at, "first_at")?,
            count: self.count,
            msg_id: MessageId(n(&self.msg_id, "msg_id")?),
            from: UserId(n(&self.from, "from")?),
            at: n(&self.at, "at")?,
            preview: self.preview.clone(),
        })
    }
}

/// A push subscription as stored: the edge's JSON, opaque here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubscription {
    pub id: String,
    pub device: DeviceId,
    pub json: String,
}

#[async_trait]
pub trait NotifyStore: Send + Sync + 'static {
    /// Up to `limit` notifications of notifier partition `partition`
    /// whose first item was queued before `before`, oldest first.
    async fn due_notifications(
        &self,
        partition: u32,
        before: u64,
        limit: usize,
    ) -> Result<Vec<PendingNotification>>;

    /// A notification covering `count` items up to `msg_id` went out (or
    /// was dropped): it leaves the queue, unless newer items came in
    /// meanwhile; then those stay, due a window from `now`.
    async fn notification_sent(
        &self,
        partition: u32,
        sent: &PendingNotification,
        now: u64,
    ) -> Result<()>;

    /// Adds (or replaces) subscription `id` of `user`'s `device`.
    async fn put_subscription(&self, user: UserId, sub: StoredSubscription) -> Result<()>;
    /// Removes `user`'s subscription `id`; false if there was none.
    async fn remove_subscription(&self, user: UserId, id: &str) -> Result<bool>;
    /// Removes every subscription of `device` (it signed out).
    async fn remove_device_subscriptions(&self, user: UserId, device: DeviceId) -> Result<()>;
    /// `user`'s subscriptions, by id.
    async fn subscriptions(&self, user: UserId) -> Result<Vec<StoredSubscription>>;

    /// `user`'s notification settings as the edge wrote them (JSON).
    async fn notify_settings(&self, user: UserId) -> Result<Option<String>>;
    async fn put_notify_settings(&self, user: UserId, json: &str) -> Result<()>;
}
