//! Telling a replayed inbox item from one that came out of order.
//!
//! Within a conversation msg_ids rise in log order (one appender per
//! `events` partition), so an item not newer than the user's head there is
//! normally a copy: a router that replays a batch appends its items again.
//! Only a broken order (two edges appending to one partition across a lease
//! handover) could make it a message never placed. So such an item is
//! looked for in this batch and among the inbox's newest rows
//! ([`SCAN`](crate::scan::SCAN)): found, it is a copy and dropped; not
//! found, it is placed after all, counted and logged. An acked message is
//! never dropped on a guess.
//!
//! A large group's post carries the group's newest msg_id before it
//! (`prev`), so its order is checked once for all members: newer than
//! `prev`, it is behind a member's head only as a copy (nothing newer was
//! routed to the group before it); older, the order broke, and it goes to
//! each member as an item, checked as above. Copies cost a lookup only in
//! a replay, never on the way of a message in order.

use std::sync::LazyLock;

use parley_engines::state::{InboxEntry, InboxStore};
use parley_engines::telemetry::InternalEvent;
use parley_engines::{Result, StateOp};
use parley_schemas::codec;
use parley_schemas::event::Event;
use parley_schemas::ids::{ConversationId, MessageId, UserId};
use prometheus::{register_int_counter, IntCounter};

use crate::scan::Back;

/// Whether this batch placed `msg_id` in `user`'s inbox as an item
/// (`ops`: what it wrote so far). Only asked for items behind the head.
pub fn in_batch(ops: &[StateOp], user: UserId, msg_id: MessageId) -> bool {
    ops.iter().any(|op| {
        matches!(op, StateOp::InboxPut { user: u, msg_id: m, .. } if *u == user && *m == msg_id)
    })
}

/// Whether `msg_id` of `c` is stored in `user`'s inbox below seq `below`:
/// as an item, or as a post inside a run of its group.
pub async fn placed(
    state: &dyn InboxStore,
    user: UserId,
    c: ConversationId,
    msg_id: MessageId,
    below: u64,
) -> Result<bool> {
    let mut back = Back::below(below);
    while let Some(rows) = back.page(state, user).await? {
        for row in rows {
            match row {
                InboxEntry::Item { item, .. } => {
                    let Ok(Event::InboxItem(i)) = codec::decode(&item) else {
                        continue;
                    };
                    if i.message.conversation != c {
                        continue;
                    }
                    // No stop at an older one: an earlier break of the
                    // order may have put one above the copy.
                    if i.message.msg_id == msg_id {
                        return Ok(true);
                    }
                }
                // A run holds consecutive posts of its group from `first`.
                InboxEntry::Run {
                    count,
                    group,
                    first,
                    ..
                } if ConversationId::group(group) == c && first <= msg_id => {
                    let posts = state.group_posts(group, first, count as usize).await?;
                    if posts.iter().any(|(id, _)| *id == msg_id) {
                        return Ok(true);
                    }
                }
                InboxEntry::Run { .. } => {}
            }
        }
    }
    Ok(false)
}

static OUT_OF_ORDER: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "parley_inbox_out_of_order_total",
        "Inbox items older than their conversation's newest in the inbox and not found stored: \
         placed anyway (their msg_ids broke log order, as two appenders of one partition would)"
    )
    .expect("metric registers once")
});

/// An item behind its conversation's head that was not a copy: placed.
pub struct OutOfOrder {
    pub conversation: ConversationId,
    pub msg_id: MessageId,
    pub head: MessageId,
}

impl InternalEvent for OutOfOrder {
    fn emit(self) {
        OUT_OF_ORDER.inc();
        tracing::warn!(
            conversation = %self.conversation,
            msg_id = %self.msg_id,
            head = %self.head,
            "an inbox item came behind a newer one of its conversation and was placed after it; \
             msg_ids broke log order (two appenders on one events partition?)"
        );
    }
}
