//! Writes: each `StateOp` applied inside one redb write transaction,
//! every mark, cursor and counter raised, never lowered.

use super::*;

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
        StateOp::InboxPut { .. } | StateOp::InboxRun { .. } => {
            inbox_put(tx, inbox_row(op).into_iter().collect())?;
        }
        StateOp::GroupPost {
            group,
            msg_id,
            message,
        } => {
            // Each inbox partition with members stores the post; one that
            // comes late must not undo a redaction another already made.
            let mut t = tx.open_table(GROUP_POSTS).map_err(err)?;
            if t.get((group.0, msg_id.0)).map_err(err)?.is_none() {
                t.insert((group.0, msg_id.0), message.as_ref())
                    .map_err(err)?;
            }
        }
        StateOp::InboxRedact { user, seq, item } => {
            let mut t = tx.open_table(INBOX).map_err(err)?;
            let stored_item = t.get((user.0, *seq)).map_err(err)?.is_some_and(|v| {
                matches!(
                    InboxEntry::from_value(*seq, v.value()),
                    InboxEntry::Item { .. }
                )
            });
            if stored_item {
                t.insert((user.0, *seq), item.as_ref()).map_err(err)?;
            }
        }
        StateOp::GroupPostRedact {
            group,
            msg_id,
            message,
        } => {
            let mut t = tx.open_table(GROUP_POSTS).map_err(err)?;
            if t.get((group.0, msg_id.0)).map_err(err)?.is_some() {
                t.insert((group.0, msg_id.0), message.as_ref())
                    .map_err(err)?;
            }
        }
        StateOp::IdemPut {
            user,
            client_msg_id,
            msg_id,
            conversation,
            expires_at,
        } => {
            let mut t = tx.open_table(IDEM).map_err(err)?;
            if live_idem(&t, *user, client_msg_id, now_ms())?.is_none() {
                let conversation = conversation.to_string();
                t.insert(
                    (user.0, client_msg_id.as_str()),
                    (msg_id.0, *expires_at, conversation.as_str()),
                )
                .map_err(err)?;
            }
        }
        StateOp::IndexMessage {
            conversation,
            msg_id,
            indexed,
            expires_at,
        } => {
            let mut t = tx.open_table(MSG_INDEX).map_err(err)?;
            let cid = conversation.to_string();
            if t.get((cid.as_str(), msg_id.0)).map_err(err)?.is_none() {
                t.insert(
                    (cid.as_str(), msg_id.0),
                    (indexed.encode().as_str(), *expires_at),
                )
                .map_err(err)?;
            }
        }
        StateOp::IndexDeleted {
            conversation,
            msg_id,
        } => {
            let mut t = tx.open_table(MSG_INDEX).map_err(err)?;
            let cid = conversation.to_string();
            let old = t
                .get((cid.as_str(), msg_id.0))
                .map_err(err)?
                .map(|v| (v.value().0.to_owned(), v.value().1));
            if let Some((entry, expires)) = old {
                if let Some(i) = Indexed::decode(&entry) {
                    let gone = Indexed { deleted: true, ..i };
                    t.insert((cid.as_str(), msg_id.0), (gone.encode().as_str(), expires))
                        .map_err(err)?;
                }
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
        StateOp::RestoreDeviceSession {
            user,
            device,
            session,
        } => {
            let mut t = tx.open_table(DEVICE_SESSIONS).map_err(err)?;
            let newer = t
                .get((user.0, device.0))
                .map_err(err)?
                .and_then(|v| DeviceSession::decode(v.value()))
                .is_none_or(|old| *session > old);
            if newer {
                t.insert((user.0, device.0), session.encode().as_str())
                    .map_err(err)?;
            }
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
        StateOp::SetBlock { user, other, on } => {
            let mut t = tx.open_table(BLOCKS).map_err(err)?;
            if *on {
                t.insert((user.0, other.0), ()).map_err(err)?;
            } else {
                t.remove((user.0, other.0)).map_err(err)?;
            }
        }
        StateOp::SetPrivacy { user, presence } => {
            let mut t = tx.open_table(PRIVACY).map_err(err)?;
            t.insert(user.0, audience_code(*presence)).map_err(err)?;
        }
        StateOp::EraseAccount { user } => erase_account(tx, *user)?,
        StateOp::SetMembership {
            user,
            group,
            member,
        } => {
            let mut t = tx.open_table(MEMBERSHIPS).map_err(err)?;
            if *member {
                t.insert((user.0, group.0), ()).map_err(err)?;
            } else {
                t.remove((user.0, group.0)).map_err(err)?;
            }
        }
        StateOp::PutMedia { .. }
        | StateOp::SetMediaImage { .. }
        | StateOp::MediaUsed { .. }
        | StateOp::MediaUnused { .. }
        | StateOp::MediaFetched { .. }
        | StateOp::MediaChecked { .. }
        | StateOp::DeleteMedia { .. } => super::media::apply_media_op(tx, op)?,
        StateOp::QueueNotification { .. } => super::notify::apply_notify_op(tx, op)?,
    }
    Ok(())
}

/// [`StateOp::EraseAccount`]: what Redis's `O` op does too.
/// The rest is erased even where the account is not (yet) there: a store
/// rebuilt from a compacted log meets the deletion before the account's
/// tombstone restores it, and must still drop what came before.
fn erase_account(tx: &WriteTransaction, user: UserId) -> Result<()> {
    let mut accounts = tx.open_table(ACCOUNTS).map_err(err)?;
    let username = accounts
        .get(user.0)
        .map_err(err)?
        .map(|v| v.value().0.to_owned());
    if let Some(username) = username {
        accounts
            .insert(user.0, (username.as_str(), ERASED, ERASED_NAME))
            .map_err(err)?;
    }
    tx.open_table(PROFILES)
        .map_err(err)?
        .remove(user.0)
        .map_err(err)?;
    let mut contacts = tx.open_table(CONTACTS).map_err(err)?;
    let mut watchers = tx.open_table(WATCHERS).map_err(err)?;
    let mut gone = Vec::new();
    contacts
        .retain_in((user.0, 0)..=(user.0, u64::MAX), |(_, c), _| {
            gone.push(c);
            false
        })
        .map_err(err)?;
    for c in gone {
        watchers.remove((c, user.0)).map_err(err)?;
    }
    tx.open_table(BLOCKS)
        .map_err(err)?
        .retain_in((user.0, 0)..=(user.0, u64::MAX), |_, _| false)
        .map_err(err)?;
    tx.open_table(PRIVACY)
        .map_err(err)?
        .remove(user.0)
        .map_err(err)?;
    tx.open_table(PRESENCE)
        .map_err(err)?
        .remove(user.0)
        .map_err(err)?;
    erase_inbox(tx, user)?;
    super::notify::erase_settings(tx, user)
}

/// A deleted account's inbox rows, device cursors and read marks. The
/// conversations it has marks in are those its inbox heads name (a mark
/// is only ever set where the inbox had an item). The seq counter stays,
/// so a seq is never handed out twice.
fn erase_inbox(tx: &WriteTransaction, user: UserId) -> Result<()> {
    let mut conversations = Vec::new();
    tx.open_table(HEADS)
        .map_err(err)?
        .retain_in((user.0, "")..(user.0 + 1, ""), |(_, c), _| {
            conversations.push(c.to_owned());
            false
        })
        .map_err(err)?;
    let mut marks = tx.open_table(MARKS).map_err(err)?;
    for c in &conversations {
        marks.remove((c.as_str(), user.0)).map_err(err)?;
    }
    tx.open_table(INBOX)
        .map_err(err)?
        .retain_in((user.0, 0)..=(user.0, u64::MAX), |_, _| false)
        .map_err(err)?;
    tx.open_table(CURSORS)
        .map_err(err)?
        .retain_in((user.0, 0)..=(user.0, u64::MAX), |_, _| false)
        .map_err(err)?;
    Ok(())
}

/// Whether `user`'s account was deleted (an unknown user's was not).
pub(super) fn is_erased(
    accounts: &impl ReadableTable<u64, (&'static str, &'static str, &'static str)>,
    user: UserId,
) -> Result<bool> {
    let a = accounts.get(user.0).map_err(err)?;
    Ok(a.is_some_and(|a| a.value().1 == ERASED))
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
pub(super) fn live_idem(
    t: &impl ReadableTable<(u64, &'static str), (u64, u64, &'static str)>,
    user: UserId,
    key: &str,
    now: u64,
) -> Result<Option<FirstSend>> {
    let Some(v) = t.get((user.0, key)).map_err(err)? else {
        return Ok(None);
    };
    let (id, expires, conversation) = v.value();
    Ok((expires > now).then(|| FirstSend {
        msg_id: MessageId(id),
        conversation: conversation.parse().ok(),
    }))
}

/// Applies `ops` in one transaction. A fan-out batch holds an inbox write
/// per member, so those share their three tables, opened once, and go in
/// key order.
pub(super) fn apply_ops(tx: &WriteTransaction, ops: &[StateOp]) -> Result<()> {
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
    let accounts = tx.open_table(ACCOUNTS).map_err(err)?;
    // An item that comes after its user deleted the account (sent before
    // the edges noticed) is not kept: nobody can read it, and nothing
    // would delete it.
    let mut erased: Option<(UserId, bool)> = None;
    for r in rows {
        if erased.is_none_or(|(u, _)| u != r.user) {
            erased = Some((r.user, is_erased(&accounts, r.user)?));
        }
        if erased.is_some_and(|(_, gone)| gone) {
            continue;
        }
        raise(&mut seqs, r.user.0, r.last_seq)?;
        inbox
            .insert((r.user.0, r.seq), r.value.as_ref())
            .map_err(err)?;
        let key = r.conversation.to_string();
        raise(&mut heads, (r.user.0, key.as_str()), r.msg_id.0)?;
    }
    Ok(())
}
