//! The narrow state traits on redb: reads, and the writes outside job
//! output (sign-up, devices, cursors).

use super::*;

pub(super) fn account_in(tx: &redb::ReadTransaction, user: u64) -> Result<Option<Account>> {
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
/// The second halves of the keys of `table` that start with `user`.
pub(super) fn second_of(
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

pub(super) fn opt_id(v: u64) -> Option<MessageId> {
    (v != 0).then_some(MessageId(v))
}

#[async_trait]
impl AccountStore for RedbState {
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

    async fn new_device(&self, user: UserId) -> Result<DeviceId> {
        self.write_kind(Kind::Fact, move |tx| {
            let mut t = tx.open_table(DEVICES).map_err(err)?;
            let id = t.get(user.0).map_err(err)?.map_or(0, |v| v.value()) + 1;
            t.insert(user.0, id).map_err(err)?;
            Ok(DeviceId(id))
        })
        .await
    }

    async fn devices_issued(&self, user: UserId) -> Result<u64> {
        self.read(move |tx| {
            let t = tx.open_table(DEVICES).map_err(err)?;
            Ok(t.get(user.0).map_err(err)?.map_or(0, |v| v.value()))
        })
        .await
    }

    async fn device_session(
        &self,
        user: UserId,
        device: DeviceId,
    ) -> Result<Option<DeviceSession>> {
        self.read(move |tx| {
            let t = tx.open_table(DEVICE_SESSIONS).map_err(err)?;
            let v = t.get((user.0, device.0)).map_err(err)?;
            Ok(v.and_then(|v| DeviceSession::decode(v.value())))
        })
        .await
    }

    async fn device_sessions(&self, user: UserId) -> Result<Vec<(DeviceId, DeviceSession)>> {
        self.read(move |tx| {
            let t = tx.open_table(DEVICE_SESSIONS).map_err(err)?;
            let mut out = Vec::new();
            for row in t.range((user.0, 0)..=(user.0, u64::MAX)).map_err(err)? {
                let (k, v) = row.map_err(err)?;
                if let Some(s) = DeviceSession::decode(v.value()) {
                    out.push((DeviceId(k.value().1), s));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn swap_device_session(
        &self,
        user: UserId,
        device: DeviceId,
        expected: Option<DeviceSession>,
        next: DeviceSession,
    ) -> Result<bool> {
        self.write_kind(Kind::Fact, move |tx| {
            let mut t = tx.open_table(DEVICE_SESSIONS).map_err(err)?;
            let current = t
                .get((user.0, device.0))
                .map_err(err)?
                .and_then(|v| DeviceSession::decode(v.value()));
            if current != expected {
                return Ok(false);
            }
            t.insert((user.0, device.0), next.encode().as_str())
                .map_err(err)?;
            Ok(true)
        })
        .await
    }
}

#[async_trait]
impl PresenceStore for RedbState {
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

    async fn contacts(&self, user: UserId) -> Result<Vec<UserId>> {
        self.read(move |tx| second_of(tx, CONTACTS, user)).await
    }

    async fn blocked(&self, user: UserId) -> Result<Vec<UserId>> {
        self.read(move |tx| second_of(tx, BLOCKS, user)).await
    }

    async fn blocks(&self, user: UserId, other: UserId) -> Result<bool> {
        self.read(move |tx| {
            let t = tx.open_table(BLOCKS).map_err(err)?;
            Ok(t.get((user.0, other.0)).map_err(err)?.is_some())
        })
        .await
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
}

#[async_trait]
impl ConversationStore for RedbState {
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

    async fn idem_get_many(&self, keys: Vec<(UserId, String)>) -> Result<Vec<Option<FirstSend>>> {
        let now = now_ms();
        self.read(move |tx| {
            let t = tx.open_table(IDEM).map_err(err)?;
            keys.iter()
                .map(|(user, key)| live_idem(&t, *user, key, now))
                .collect()
        })
        .await
    }

    async fn indexed(
        &self,
        conversation: ConversationId,
        msg_id: MessageId,
    ) -> Result<Option<Indexed>> {
        let now = now_ms();
        self.read(move |tx| {
            let t = tx.open_table(MSG_INDEX).map_err(err)?;
            let cid = conversation.to_string();
            let Some(v) = t.get((cid.as_str(), msg_id.0)).map_err(err)? else {
                return Ok(None);
            };
            let (entry, expires) = v.value();
            Ok((expires > now).then(|| Indexed::decode(entry)).flatten())
        })
        .await
    }

    async fn groups_of(&self, user: UserId) -> Result<Vec<GroupId>> {
        self.read(move |tx| {
            let t = tx.open_table(MEMBERSHIPS).map_err(err)?;
            let mut out = Vec::new();
            for row in t.range((user.0, 0)..=(user.0, u64::MAX)).map_err(err)? {
                out.push(GroupId(row.map_err(err)?.0.value().1));
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl InboxStore for RedbState {
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

    async fn trim_inbox(&self, user: UserId, through: u64) -> Result<u64> {
        self.write_tx(move |tx| {
            let mut t = tx.open_table(INBOX).map_err(err)?;
            let mut doomed = Vec::new();
            for e in t.range((user.0, 0)..=(user.0, through)).map_err(err)? {
                let (k, v) = e.map_err(err)?;
                let row = InboxEntry::from_value(k.value().1, v.value());
                if row.last_seq() <= through {
                    doomed.push(row.seq());
                }
            }
            for seq in &doomed {
                t.remove((user.0, *seq)).map_err(err)?;
            }
            Ok(doomed.len() as u64)
        })
        .await
    }

    async fn expire_inbox(&self, before: u64) -> Result<u64> {
        self.write_tx(move |tx| {
            let mut t = tx.open_table(INBOX).map_err(err)?;
            let mut doomed = Vec::new();
            // Seqs rise with time within an inbox: walk each user's oldest
            // rows until a young one, then skip to the next user.
            let mut from = (0u64, 0u64);
            loop {
                let next = t.range(from..).map_err(err)?.next();
                let Some(e) = next else { break };
                let (k, v) = e.map_err(err)?;
                let (user, seq) = k.value();
                let row = InboxEntry::from_value(seq, v.value());
                match row.sent_at() {
                    Some(at) if at < before => {
                        doomed.push((user, seq));
                        from = (user, seq + 1);
                    }
                    // A run: its age is unknown here, so it stays; look past it.
                    None if matches!(row, InboxEntry::Run { .. }) => from = (user, seq + 1),
                    _ => match user.checked_add(1) {
                        Some(u) => from = (u, 0),
                        None => break,
                    },
                }
            }
            for k in &doomed {
                t.remove(*k).map_err(err)?;
            }
            Ok(doomed.len() as u64)
        })
        .await
    }

    async fn inbox_first(&self, user: UserId) -> Result<Option<u64>> {
        self.read(move |tx| {
            let t = tx.open_table(INBOX).map_err(err)?;
            let first = t
                .range((user.0, 0)..=(user.0, u64::MAX))
                .map_err(err)?
                .next();
            first.map(|e| Ok(e.map_err(err)?.0.value().1)).transpose()
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

    async fn cursor(&self, user: UserId, device: DeviceId) -> Result<Option<u64>> {
        self.read(move |tx| {
            let t = tx.open_table(CURSORS).map_err(err)?;
            Ok(t.get((user.0, device.0)).map_err(err)?.map(|v| v.value()))
        })
        .await
    }

    async fn advance_cursor(&self, user: UserId, device: DeviceId, seq: u64) -> Result<()> {
        self.write_tx(move |tx| {
            // A deleted account keeps no cursor (a socket's last
            // confirmation can come after the deletion).
            if super::ops::is_erased(&tx.open_table(ACCOUNTS).map_err(err)?, user)? {
                return Ok(());
            }
            let mut t = tx.open_table(CURSORS).map_err(err)?;
            let old = t.get((user.0, device.0)).map_err(err)?.map(|v| v.value());
            if old.is_none_or(|o| seq > o) {
                t.insert((user.0, device.0), seq).map_err(err)?;
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl JobStore for RedbState {
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
