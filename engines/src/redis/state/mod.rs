//! The [`StateStore`] on Redis (one instance, or a primary with replicas),
//! through one multiplexed `ConnectionManager` that reconnects by itself.
//!
//! Keys (all under a configurable prefix `P`; `docs/redis-keys.md` lists
//! sizes):
//! - `P:u:{user}` hash: `seq` (last inbox seq), `dev` (last device id),
//!   `cur:{device}` (cursor), `head:{conversation}` (newest msg_id placed in
//!   the inbox from it), `on`/`seen`/`upd` (presence)
//! - `P:in:{user}` sorted set: the inbox, score = seq, member = seq ++ item
//!   (or ++ a run of a group's posts, [`InboxEntry`])
//! - `P:gp:{group}` sorted set, all scores 0: a large group's stream,
//!   member = msg_id ++ encoded message, read in lexical order
//! - `P:m:{conversation}` hash: `{user}:d`, `{user}:r` delivered/read marks
//! - `P:i:{user}:{client_msg_id}` string: msg_id, expiring with the resend window
//! - `P:mi:{conversation}:{msg_id}` string: `{sender}:{t|o}[:x]` (text or
//!   other, deleted), what an action on the message is judged by;
//!   expires with the action window ([`Indexed`])
//! - `P:j:{job}` hash: partition → next offset
//! - `P:a:{user}` hash: `name`, `hash`, `display`; `P:n:{username}` → user;
//!   `P:ctr` hash: `user` (last user id)
//! - `P:ug:{user}` set: the groups the user is a current member of
//! - `P:md:{media}`, `P:mu:{media}`: uploads and where they were sent
//!   ([`media`])
//! - `P:k:{user}`, `P:kp:{user}:{device}`: the key directory ([`keys`])
//! - `P:np:{partition}`, `P:npq:{partition}`, `P:ps:{user}`: queued
//!   notifications and push subscriptions ([`notify`])
//!
//! Message ids are 63-bit and Lua numbers are doubles, so inside scripts ids
//! are zero-padded 20-digit strings, whose string order is numeric order.
//! Every write that must be atomic (`apply` with its offset, max-updates,
//! account creation) is one Lua script. Scripts name keys they build from
//! arguments, so this store needs a single Redis, not Redis Cluster.

use async_trait::async_trait;
use bytes::Bytes;
use parley_schemas::group::GroupState;
use parley_schemas::ids::{ConversationId, DeviceId, GroupId, MessageId, UserId};
use parley_schemas::wire::{Audience, ReceiptStatus};
use redis::aio::ConnectionManager;
use redis::Script;

use crate::error::{EngineError, Result};
use crate::state::{
    run_last_seq, Account, AccountStore, Applied, ConversationStore, DeviceSession, FirstSend,
    InboxEntry, InboxStore, Indexed, JobStore, Marks, Presence, PresenceStore, StateOp,
};

mod keys;
mod lua;
mod media;
mod notify;
mod reads;

use lua::{APPLY, CREATE_ACCOUNT, CURSOR_MAX, SWAP_SESSION};

/// A Redis failure: connection trouble is worth a retry, the rest is not.
pub(crate) fn redis_err(e: redis::RedisError) -> EngineError {
    if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_connection_refusal() {
        EngineError::Unavailable(format!("redis: {e}"))
    } else {
        EngineError::State(format!("redis: {e}"))
    }
}

use redis_err as err;

fn pad(id: MessageId) -> String {
    format!("{:020}", id.0)
}

/// A sorted-set member that starts with a 20-digit number: the number and
/// the rest.
fn padded<'a>(m: &'a [u8], what: &str) -> Result<(u64, &'a [u8])> {
    let n = std::str::from_utf8(m.get(..20).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| EngineError::State(format!("malformed {what}")))?;
    Ok((n, &m[20..]))
}

fn unpad(s: Option<String>) -> Option<MessageId> {
    s.and_then(|s| s.parse().ok())
        .filter(|&v| v != 0)
        .map(MessageId)
}

/// The Redis [`StateStore`]; cheap to clone.
#[derive(Clone)]
pub struct RedisState {
    con: ConnectionManager,
    prefix: String,
    apply: Script,
    create_account: Script,
    cursor_max: Script,
    swap_session: Script,
    claim_blob: Script,
    pin_blob: Script,
    put_keys: Script,
    claim_keys: Script,
    notification_sent: Script,
}

impl RedisState {
    /// Connects to `url` (`redis://host:port/db`); every key starts with `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisState> {
        let client = redis::Client::open(url).map_err(err)?;
        let con = client.get_connection_manager().await.map_err(err)?;
        let state = RedisState {
            con,
            prefix: prefix.to_owned(),
            apply: Script::new(
                &APPLY
                    .replace("  __MEDIA__", media::MEDIA_LUA)
                    .replace("  __NOTIFY__", notify::NOTIFY_LUA)
                    .replace("__ERASED__", crate::state::ERASED),
            ),
            create_account: Script::new(CREATE_ACCOUNT),
            cursor_max: Script::new(CURSOR_MAX),
            swap_session: Script::new(SWAP_SESSION),
            claim_blob: Script::new(media::CLAIM),
            pin_blob: Script::new(media::PIN),
            put_keys: Script::new(keys::PUT),
            claim_keys: Script::new(keys::CLAIM),
            notification_sent: Script::new(notify::SENT),
        };
        state.index_old_uploads().await?;
        Ok(state)
    }

    fn key(&self, parts: String) -> String {
        format!("{}:{}", self.prefix, parts)
    }

    /// One `SCAN` step over keys matching `pattern`: the next cursor (0
    /// when done) and the keys of this step.
    async fn scan(&self, cursor: u64, pattern: &str, count: usize) -> Result<(u64, Vec<String>)> {
        redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)
    }

    async fn run_apply(
        &self,
        job: &str,
        partition: u32,
        prev: Option<u64>,
        next_offset: u64,
        ops: &[StateOp],
    ) -> Result<i64> {
        let mut inv = self.apply.prepare_invoke();
        inv.arg(&self.prefix)
            .arg(job)
            .arg(partition)
            .arg(next_offset)
            .arg(prev.map(|p| p.to_string()).unwrap_or_default());
        for op in ops {
            if let Some(args) = media::media_args(op).or_else(|| notify::notify_args(op)) {
                for a in args {
                    inv.arg(a);
                }
                continue;
            }
            match op {
                StateOp::AdvanceMark {
                    conversation,
                    user,
                    status,
                    up_to,
                } => {
                    let s = match status {
                        ReceiptStatus::Delivered => "d",
                        ReceiptStatus::Read => "r",
                    };
                    inv.arg("M")
                        .arg(conversation.to_string())
                        .arg(user.0)
                        .arg(s)
                        .arg(pad(*up_to));
                }
                StateOp::SetPresence {
                    user,
                    online,
                    last_seen,
                    at,
                } => {
                    let seen = last_seen.map(|s| s.to_string()).unwrap_or_default();
                    inv.arg("P")
                        .arg(user.0)
                        .arg(u8::from(*online))
                        .arg(seen)
                        .arg(at);
                }
                StateOp::InboxPut {
                    user,
                    seq,
                    conversation,
                    msg_id,
                    item,
                } => {
                    inv.arg("I")
                        .arg(user.0)
                        .arg(seq)
                        .arg(conversation.to_string())
                        .arg(pad(*msg_id))
                        .arg(item.as_ref());
                }
                StateOp::IdemPut {
                    user,
                    client_msg_id,
                    msg_id,
                    conversation,
                    expires_at,
                } => {
                    inv.arg("D")
                        .arg(user.0)
                        .arg(client_msg_id)
                        .arg(format!("{} {conversation}", msg_id.0))
                        .arg(expires_at);
                }
                StateOp::TouchLastSeen { user, at } => {
                    inv.arg("L").arg(user.0).arg(at).arg("").arg("");
                }
                StateOp::RestoreAccount {
                    user,
                    username,
                    password_hash,
                    display_name,
                } => {
                    inv.arg("A")
                        .arg(user.0)
                        .arg(username)
                        .arg(password_hash)
                        .arg(display_name);
                }
                StateOp::RestoreDevice { user, device } => {
                    inv.arg("V").arg(user.0).arg(device.0).arg("").arg("");
                }
                StateOp::RestoreDeviceSession {
                    user,
                    device,
                    session,
                } => {
                    inv.arg("S")
                        .arg(user.0)
                        .arg(device.0)
                        .arg(session.encode())
                        .arg("");
                }
                StateOp::SetProfile {
                    user,
                    display_name,
                    about,
                    avatar_media_id,
                } => {
                    // NUL marks a field left as it is (no text field may hold one).
                    let or_keep = |v: &Option<String>| v.clone().unwrap_or_else(|| "\0".into());
                    inv.arg("F")
                        .arg(user.0)
                        .arg(or_keep(display_name))
                        .arg(or_keep(about))
                        .arg(or_keep(avatar_media_id));
                }
                StateOp::SetContact {
                    user,
                    contact,
                    added,
                } => {
                    inv.arg("C")
                        .arg(user.0)
                        .arg(contact.0)
                        .arg(if *added { "1" } else { "0" })
                        .arg("");
                }
                StateOp::SetBlock { user, other, on } => {
                    inv.arg("B")
                        .arg(user.0)
                        .arg(other.0)
                        .arg(if *on { "1" } else { "0" })
                        .arg("");
                }
                StateOp::IndexMessage {
                    conversation,
                    msg_id,
                    indexed,
                    expires_at,
                } => {
                    inv.arg("H")
                        .arg(conversation.to_string())
                        .arg(msg_id.0)
                        .arg(indexed.encode())
                        .arg(*expires_at);
                }
                StateOp::IndexDeleted {
                    conversation,
                    msg_id,
                } => {
                    inv.arg("J")
                        .arg(conversation.to_string())
                        .arg(msg_id.0)
                        .arg("")
                        .arg("");
                }
                StateOp::EraseAccount { user } => {
                    inv.arg("O")
                        .arg(user.0)
                        .arg(crate::state::ERASED)
                        .arg(crate::state::ERASED_NAME)
                        .arg("");
                }
                StateOp::SetMembership {
                    user,
                    group,
                    member,
                } => {
                    inv.arg("T")
                        .arg(user.0)
                        .arg(group.0)
                        .arg(if *member { "1" } else { "0" })
                        .arg("");
                }
                StateOp::SetPrivacy { user, presence } => {
                    inv.arg("Y")
                        .arg(user.0)
                        .arg(crate::state::audience_code(*presence))
                        .arg("")
                        .arg("");
                }
                StateOp::InboxRun {
                    user,
                    seq,
                    count,
                    group,
                    first,
                    last,
                } => {
                    let mut member = format!("{seq:020}").into_bytes();
                    member.extend(InboxEntry::run_value(*group, *first, *count));
                    let last_seq = run_last_seq(*seq, *count);
                    inv.arg("R")
                        .arg(user.0)
                        .arg(last_seq)
                        .arg(ConversationId::group(*group).to_string())
                        .arg(pad(*last))
                        .arg(member);
                }
                StateOp::GroupPost {
                    group,
                    msg_id,
                    message,
                } => {
                    inv.arg("Q")
                        .arg(group.0)
                        .arg(pad(*msg_id))
                        .arg(message.as_ref())
                        .arg("");
                }
                StateOp::InboxRedact { user, seq, item } => {
                    inv.arg("r").arg(user.0).arg(seq).arg(item.as_ref()).arg("");
                }
                StateOp::GroupPostRedact {
                    group,
                    msg_id,
                    message,
                } => {
                    inv.arg("g")
                        .arg(group.0)
                        .arg(pad(*msg_id))
                        .arg(message.as_ref())
                        .arg("");
                }
                StateOp::PutGroup { group, state } => {
                    inv.arg("G")
                        .arg(group.0)
                        .arg(state.encode())
                        .arg("")
                        .arg("");
                }
                StateOp::PutMedia { .. }
                | StateOp::SetMediaImage { .. }
                | StateOp::MediaUsed { .. }
                | StateOp::MediaUnused { .. }
                | StateOp::MediaFetched { .. }
                | StateOp::MediaChecked { .. }
                | StateOp::DeleteMedia { .. }
                | StateOp::QueueNotification { .. } => {
                    unreachable!("sent by media_args or notify_args above")
                }
            }
        }
        inv.invoke_async(&mut self.con.clone()).await.map_err(err)
    }

    /// A set of user ids, in id order.
    async fn members(&self, key: String) -> Result<Vec<UserId>> {
        let mut ids: Vec<u64> = redis::cmd("SMEMBERS")
            .arg(self.key(key))
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        ids.sort_unstable();
        Ok(ids.into_iter().map(UserId).collect())
    }

    async fn hget<T: redis::FromRedisValue>(
        &self,
        key: String,
        field: String,
    ) -> Result<Option<T>> {
        redis::cmd("HGET")
            .arg(key)
            .arg(field)
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)
    }
}
