//! A deletion for everyone reaches the inbox store: the deleted message's
//! stored copy in each recipient's inbox (or in a large group's stream)
//! is rewritten with its content blanked, so a device catching up later
//! gets an empty message followed by the deletion, and the store keeps no
//! text or media reference of it.
//!
//! Finding the copy: within one conversation msg_ids rise with seq, so
//! the inbox is read backwards from the deletion until the message, or an
//! older one of its conversation, turns up; at most
//! [`SCAN`](crate::scan::SCAN) seqs (deletions come within 48 h, mostly
//! within minutes). Beyond that the copy stays until the inbox is trimmed,
//! and is counted.

use std::sync::LazyLock;

use bytes::Bytes;
use parley_engines::state::{InboxEntry, InboxStore};
use parley_engines::telemetry::{emit, InternalEvent};
use parley_engines::Result;
use parley_schemas::codec;
use parley_schemas::event::{Event, InboxItem, MessageSent};
use parley_schemas::ids::{ConversationId, GroupId, MessageId, UserId};
use parley_schemas::wire::Body;
use prometheus::{register_int_counter_vec, IntCounterVec};

use crate::scan::Back;

/// The message a deletion for everyone names, if `m` is one.
pub fn deleted_target(m: &MessageSent) -> Option<MessageId> {
    match &m.body {
        Body::Delete(d) if !d.for_me => Some(d.msg_id),
        _ => None,
    }
}

/// `m` with its content gone (as scrollback shows a deleted message).
pub fn blanked(mut m: MessageSent) -> MessageSent {
    m.body = Body::Text(String::new());
    m
}

/// An encoded inbox item with its message blanked.
pub fn blank_item(item: InboxItem) -> Bytes {
    let item = InboxItem {
        message: blanked(item.message),
        ..item
    };
    Bytes::from(codec::encode(&Event::InboxItem(item)))
}

/// An encoded group post with its message blanked.
pub fn blank_post(encoded: &[u8]) -> Option<Bytes> {
    match codec::decode(encoded) {
        Ok(Event::MessageSent(m)) => {
            Some(Bytes::from(codec::encode(&Event::MessageSent(blanked(m)))))
        }
        _ => None,
    }
}

/// The stored item of `target` (in conversation `c`) in `user`'s inbox
/// below seq `below`, with its seq; `None` if it is not within
/// [`SCAN`](crate::scan::SCAN).
pub async fn find_item(
    state: &dyn InboxStore,
    user: UserId,
    c: ConversationId,
    target: MessageId,
    below: u64,
) -> Result<Option<(u64, InboxItem)>> {
    let mut back = Back::below(below);
    while let Some(rows) = back.page(state, user).await? {
        for row in rows {
            let InboxEntry::Item { seq, item } = row else {
                continue;
            };
            let Ok(Event::InboxItem(i)) = codec::decode(&item) else {
                continue;
            };
            if i.message.conversation != c {
                continue;
            }
            if i.message.msg_id == target {
                return Ok(Some((seq, i)));
            }
            if i.message.msg_id < target {
                return Ok(None);
            }
        }
    }
    Ok(None)
}

/// The stored post `target` of `group`'s stream, if there is one.
pub async fn find_post(
    state: &dyn InboxStore,
    group: GroupId,
    target: MessageId,
) -> Result<Option<Bytes>> {
    let posts = state.group_posts(group, target, 1).await?;
    Ok(posts
        .into_iter()
        .find(|(id, _)| *id == target)
        .map(|(_, m)| m))
}

static REDACTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "parley_inbox_redactions_total",
        "Stored copies of messages deleted for everyone, blanked in an inbox or a group's \
         stream (found=\"no\": not within the rows looked through; kept until trimmed)",
        &["found"]
    )
    .expect("metric registers once")
});

/// One stored copy blanked, or not found.
pub struct Redacted {
    pub found: bool,
}

impl InternalEvent for Redacted {
    fn emit(self) {
        let found = if self.found { "yes" } else { "no" };
        REDACTIONS.with_label_values(&[found]).inc();
        if !self.found {
            tracing::debug!("a deleted message's inbox copy was not found to blank");
        }
    }
}

/// Counts a redaction.
pub fn count(found: bool) {
    emit(Redacted { found });
}
