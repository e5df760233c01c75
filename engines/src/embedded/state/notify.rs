//! Notifications on redb:
//! - `notify_pending`: `(partition, user, conversation)` →
//!   [`PendingRow`] as JSON; `notify_due`: `(partition, first_at, user,
//!   conversation)` → (), the same rows by when they are due
//! - `push_subs`: `(user, subscription id)` → `(device, JSON)`
//! - `notify_settings`: user → JSON

use super::*;
use crate::state::{NotifyStore, PendingNotification, PendingRow, StoredSubscription};

type PendingKey<'a> = (u32, u64, &'a str);
const PENDING: TableDefinition<PendingKey, &str> = TableDefinition::new("notify_pending");
const DUE: TableDefinition<(u32, u64, u64, &str), ()> = TableDefinition::new("notify_due");
const SUBS: TableDefinition<(u64, &str), (u64, &str)> = TableDefinition::new("push_subs");
const SETTINGS: TableDefinition<u64, &str> = TableDefinition::new("notify_settings");

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(PENDING).map_err(err)?;
    tx.open_table(DUE).map_err(err)?;
    tx.open_table(SUBS).map_err(err)?;
    tx.open_table(SETTINGS).map_err(err)?;
    Ok(())
}

fn row(json: &str) -> Result<PendingRow> {
    serde_json::from_str(json).map_err(err)
}

fn json(r: &PendingRow) -> Result<String> {
    serde_json::to_string(r).map_err(err)
}

/// Applies [`StateOp::QueueNotification`] (any other op is not this table's).
pub(super) fn apply_notify_op(tx: &WriteTransaction, op: &StateOp) -> Result<()> {
    let StateOp::QueueNotification { partition, item } = op else {
        return Ok(());
    };
    let conv = item.conversation.to_string();
    let key = (*partition, item.user.0, conv.as_str());
    let mut pending = tx.open_table(PENDING).map_err(err)?;
    let old = pending.get(key).map_err(err)?.map(|v| v.value().to_owned());
    let new = PendingRow::of(item);
    let merged = match old {
        Some(old) => row(&old)?.merge(new),
        None => {
            let mut due = tx.open_table(DUE).map_err(err)?;
            due.insert((*partition, item.at, item.user.0, conv.as_str()), ())
                .map_err(err)?;
            new
        }
    };
    pending.insert(key, json(&merged)?.as_str()).map_err(err)?;
    Ok(())
}

#[async_trait]
impl NotifyStore for RedbState {
    async fn due_notifications(
        &self,
        partition: u32,
        before: u64,
        limit: usize,
    ) -> Result<Vec<PendingNotification>> {
        self.read(move |tx| {
            let due = tx.open_table(DUE).map_err(err)?;
            let pending = tx.open_table(PENDING).map_err(err)?;
            let mut out = Vec::new();
            let range = (partition, 0, 0, "")..(partition, before, 0, "");
            for entry in due.range(range).map_err(err)?.take(limit) {
                let (k, _) = entry.map_err(err)?;
                let (_, _, user, conv) = k.value();
                if let Some(v) = pending.get((partition, user, conv)).map_err(err)? {
                    out.push(row(v.value())?.parse()?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn notification_sent(
        &self,
        partition: u32,
        sent: &PendingNotification,
        now: u64,
    ) -> Result<()> {
        let sent = sent.clone();
        self.write_tx(move |tx| {
            let conv = sent.conversation.to_string();
            let key = (partition, sent.user.0, conv.as_str());
            let mut pending = tx.open_table(PENDING).map_err(err)?;
            let Some(cur) = pending.get(key).map_err(err)?.map(|v| v.value().to_owned()) else {
                return Ok(());
            };
            let mut cur = row(&cur)?;
            let first_at: u64 = cur.first_at.parse().map_err(err)?;
            let mut due = tx.open_table(DUE).map_err(err)?;
            due.remove((partition, first_at, sent.user.0, conv.as_str()))
                .map_err(err)?;
            if cur.msg_id <= format!("{:020}", sent.msg_id.0) {
                pending.remove(key).map_err(err)?;
            } else {
                cur.count = cur.count.saturating_sub(sent.count).max(1);
                cur.first_at = now.to_string();
                pending.insert(key, json(&cur)?.as_str()).map_err(err)?;
                due.insert((partition, now, sent.user.0, conv.as_str()), ())
                    .map_err(err)?;
            }
            Ok(())
        })
        .await
    }

    async fn put_subscription(&self, user: UserId, sub: StoredSubscription) -> Result<()> {
        self.write_kind(Kind::Fact, move |tx| {
            let mut t = tx.open_table(SUBS).map_err(err)?;
            t.insert((user.0, sub.id.as_str()), (sub.device.0, sub.json.as_str()))
                .map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn remove_subscription(&self, user: UserId, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.write_kind(Kind::Fact, move |tx| {
            let mut t = tx.open_table(SUBS).map_err(err)?;
            let removed = t.remove((user.0, id.as_str())).map_err(err)?.is_some();
            Ok(removed)
        })
        .await
    }

    async fn remove_device_subscriptions(&self, user: UserId, device: DeviceId) -> Result<()> {
        self.write_kind(Kind::Fact, move |tx| {
            let mut t = tx.open_table(SUBS).map_err(err)?;
            t.retain_in((user.0, "")..=(user.0, "\u{10ffff}"), |_, (d, _)| {
                d != device.0
            })
            .map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn subscriptions(&self, user: UserId) -> Result<Vec<StoredSubscription>> {
        self.read(move |tx| {
            let t = tx.open_table(SUBS).map_err(err)?;
            let mut out = Vec::new();
            for entry in t
                .range((user.0, "")..=(user.0, "\u{10ffff}"))
                .map_err(err)?
            {
                let (k, v) = entry.map_err(err)?;
                let (device, json) = v.value();
                out.push(StoredSubscription {
                    id: k.value().1.to_owned(),
                    device: DeviceId(device),
                    json: json.to_owned(),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn notify_settings(&self, user: UserId) -> Result<Option<String>> {
        self.read(move |tx| {
            let t = tx.open_table(SETTINGS).map_err(err)?;
            let v = t.get(user.0).map_err(err)?.map(|v| v.value().to_owned());
            Ok(v)
        })
        .await
    }

    async fn put_notify_settings(&self, user: UserId, json: &str) -> Result<()> {
        let json = json.to_owned();
        self.write_kind(Kind::Fact, move |tx| {
            let mut t = tx.open_table(SETTINGS).map_err(err)?;
            t.insert(user.0, json.as_str()).map_err(err)?;
            Ok(())
        })
        .await
    }
}

/// A deleted account's settings (mutes, pins, archives, previews).
pub(super) fn erase_settings(tx: &WriteTransaction, user: UserId) -> Result<()> {
    tx.open_table(SETTINGS)
        .map_err(err)?
        .remove(user.0)
        .map_err(err)?;
    Ok(())
}
