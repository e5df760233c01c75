//! The router job, on `events` (by conversation): messages become inbox
//! items for their recipients and the sender's other devices (or, for a
//! large group, one post per inbox partition), receipts move marks and
//! become `status` pushes to the senders, group changes are applied in log
//! order. It also derives the idempotency map and last seen, so both
//! survive the loss of the edge's own writes, and the message index that
//! actions (edit, delete, react, reply) are judged by. An action travels
//! like a message, but a deletion for the sender alone goes only to the
//! sender's inbox, and no action ticks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parley_engines::job::{events, Processor};
use parley_engines::state::{ConversationStore, Indexed};
use parley_engines::telemetry::emit;
use parley_engines::{Applied, Log, Record, Result, StateOp};
use parley_schemas::event::{Event, GroupEvent, GroupPost, InboxItem, SendRefused, StatusUpdate};
use parley_schemas::group::{GroupChange, GroupState, Tick};
use parley_schemas::ids::{ConversationId, GroupId, MessageId, UserId};
use parley_schemas::media::MediaId;
use parley_schemas::partition::user_partition;
use parley_schemas::wire::{Body, Recipient, ACTIONABLE_MS, RESEND_WINDOW_MS};
use parley_schemas::{codec, topics};

use crate::internal_events::{GroupChangeRefused, GroupMessageRefused};

/// The job name under which the router stores its offsets.
pub const JOB: &str = parley_schemas::jobs::ROUTER;

/// Groups whose state the router keeps in memory between batches.
const GROUP_CACHE: usize = 100_000;

/// Groups with more current members than this use read fan-out by
/// default: see [`Router::read_fanout_above`].
pub const READ_FANOUT_ABOVE: usize = 64;

/// Routes `events`: each message to its recipients' inboxes, each receipt
/// to the senders it acknowledges, and each group change into the group's
/// state. It is the one writer of the groups of its partition, so it
/// keeps their state in memory (`groups`); a batch's changes go to
/// `pending` and reach the cache only once stored, as in the sequencer.
pub struct Router {
    log: Arc<dyn Log>,
    state: Arc<dyn ConversationStore>,
    inbox_partitions: u32,
    read_fanout_above: usize,
    groups: HashMap<GroupId, GroupState>,
    pending: HashMap<GroupId, Option<GroupState>>,
}

impl Router {
    pub fn new(
        log: Arc<dyn Log>,
        state: Arc<dyn ConversationStore>,
        inbox_partitions: u32,
    ) -> Self {
        Router {
            log,
            state,
            inbox_partitions,
            read_fanout_above: READ_FANOUT_ABOVE,
            groups: HashMap::new(),
            pending: HashMap::new(),
        }
    }

    /// A message to a group of up to `n` current members is copied into
    /// each member's inbox (write fan-out); above `n` it goes once to each
    /// inbox partition holding members, as a [`GroupPost`] naming them,
    /// and delivery stores it once and points each member's inbox at it
    /// (read fan-out). ARCHITECTURE.md weighs the two.
    pub fn read_fanout_above(mut self, n: usize) -> Self {
        self.read_fanout_above = n;
        self
    }

    /// The group as of the records processed so far; `None` if it does
    /// not exist.
    /// The group's current members (none if there is no such group).
    async fn members(&mut self, g: GroupId) -> Result<HashSet<UserId>> {
        Ok(self
            .group(g)
            .await?
            .map(|s| s.current_members().map(|m| m.user).collect())
            .unwrap_or_default())
    }

    async fn group(&mut self, g: GroupId) -> Result<Option<&mut GroupState>> {
        if !self.pending.contains_key(&g) {
            let state = match self.groups.get(&g) {
                Some(s) => Some(s.clone()),
                None => self.state.group(g).await?,
            };
            self.pending.insert(g, state);
        }
        Ok(self.pending.get_mut(&g).and_then(Option::as_mut))
    }
}

/// The membership index's changes between two member sets.
fn membership_changes(
    group: GroupId,
    before: &HashSet<UserId>,
    after: &HashSet<UserId>,
) -> impl Iterator<Item = StateOp> {
    let set = move |user: &UserId, member| StateOp::SetMembership {
        user: *user,
        group,
        member,
    };
    let joined = after.difference(before).map(move |u| set(u, true));
    let left = before.difference(after).map(move |u| set(u, false));
    joined.chain(left).collect::<Vec<_>>().into_iter()
}

fn status(to: UserId, c: ConversationId, rc_by: UserId, t: &Tick, ts: u64) -> Event {
    let s = StatusUpdate {
        to,
        conversation: c,
        msg_id: t.msg_id,
        status: t.status,
        by: rc_by,
        ts,
    };
    if t.all {
        Event::StatusAll(s)
    } else {
        Event::Status(s)
    }
}

#[async_trait]
impl Processor for Router {
    async fn process(&mut self, partition: u32, records: &[Record]) -> Result<Vec<StateOp>> {
        self.pending.clear();
        let mut ops = Vec::new();
        // Media messages of this batch, which the store has not indexed yet.
        let mut carried: HashMap<(ConversationId, MessageId), MediaId> = HashMap::new();
        // Inbox partition -> records, kept in log order.
        let mut out: BTreeMap<u32, Vec<Bytes>> = BTreeMap::new();
        let parts = self.inbox_partitions;
        let at = |user| user_partition(user, parts);
        let mut route = |partition, event: &Event| {
            out.entry(partition)
                .or_default()
                .push(Bytes::from(codec::encode(event)));
        };
        for (offset, event) in events(topics::EVENTS, partition, records)? {
            match event {
                Event::MessageSent(m) => {
                    let action = m.body.is_action();
                    // Who gets an inbox item besides the sender; `None`
                    // when the message went out as group posts instead.
                    let recipients = match m.to {
                        // Hidden for the sender only: their other devices.
                        _ if matches!(&m.body, Body::Delete(d) if d.for_me) => Some(Vec::new()),
                        Recipient::User(u) => Some(vec![u]),
                        Recipient::Group(g) => match self.group(g).await? {
                            Some(state) if state.current(m.from).is_some() => {
                                let prev = state.head;
                                // An action is no message to tick.
                                let ticks = match action {
                                    true => Vec::new(),
                                    false => state.message(m.msg_id, m.from).unwrap_or_default(),
                                };
                                for t in ticks {
                                    route(
                                        at(t.to),
                                        &status(t.to, m.conversation, m.from, &t, m.ts),
                                    );
                                }
                                let members: Vec<UserId> =
                                    state.current_members().map(|m| m.user).collect();
                                if members.len() > self.read_fanout_above {
                                    // The sender's other devices get it from the post too.
                                    let mut to: BTreeMap<u32, Vec<UserId>> = BTreeMap::new();
                                    for u in members {
                                        to.entry(at(u)).or_default().push(u);
                                    }
                                    for (p, to) in to {
                                        let message = m.clone();
                                        route(
                                            p,
                                            &Event::GroupPost(GroupPost { to, prev, message }),
                                        );
                                    }
                                    None
                                } else {
                                    Some(members.into_iter().filter(|u| *u != m.from).collect())
                                }
                            }
                            // A member removed just before this send (the
                            // edge checked an older state): not delivered,
                            // and the sender's devices are told, never left
                            // with an ack for a message nobody gets.
                            _ => {
                                emit(GroupMessageRefused {
                                    group: g,
                                    msg_id: m.msg_id,
                                });
                                let refused = SendRefused {
                                    user: m.from,
                                    client_msg_id: m.client_msg_id.clone(),
                                    msg_id: m.msg_id,
                                    conversation: m.conversation,
                                    reason: "you were no longer a member of this group when the \
                                             message was stored; it was not delivered"
                                        .into(),
                                };
                                route(at(m.from), &Event::SendRefused(refused));
                                continue;
                            }
                        },
                    };
                    let inboxes = recipients.map(|r| r.into_iter().chain(std::iter::once(m.from)));
                    for user in inboxes.into_iter().flatten() {
                        let item = Event::InboxItem(InboxItem {
                            user,
                            seq: 0,
                            message: m.clone(),
                        });
                        route(at(user), &item);
                    }
                    ops.push(StateOp::IdemPut {
                        user: m.from,
                        client_msg_id: m.client_msg_id.clone(),
                        msg_id: m.msg_id,
                        conversation: m.conversation,
                        expires_at: m.ts + RESEND_WINDOW_MS,
                    });
                    ops.push(StateOp::TouchLastSeen {
                        user: m.from,
                        at: m.ts,
                    });
                    let media = match &m.body {
                        Body::Media(media) => media.media_id.parse::<MediaId>().ok(),
                        _ => None,
                    };
                    match &m.body {
                        Body::Delete(d) if !d.for_me => {
                            ops.push(StateOp::IndexDeleted {
                                conversation: m.conversation,
                                msg_id: d.msg_id,
                            });
                            // Its media goes with it: nobody fetches it
                            // through this message any more.
                            let key = (m.conversation, d.msg_id);
                            let media = match carried.get(&key) {
                                Some(media) => Some(*media),
                                None => self
                                    .state
                                    .indexed(m.conversation, d.msg_id)
                                    .await?
                                    .and_then(|i| i.media),
                            };
                            if let Some(media) = media {
                                ops.push(StateOp::MediaUnused {
                                    media,
                                    conversation: m.conversation,
                                    msg_id: d.msg_id,
                                });
                            }
                        }
                        b if b.is_action() => {}
                        b => ops.push(StateOp::IndexMessage {
                            conversation: m.conversation,
                            msg_id: m.msg_id,
                            indexed: Indexed {
                                from: m.from,
                                text: matches!(b, Body::Text(_)),
                                deleted: false,
                                media,
                            },
                            expires_at: m.ts + ACTIONABLE_MS,
                        }),
                    }
                    // The edge stored this before it appended the message;
                    // derived again here, so a rebuilt store has it too.
                    if let Some(media) = media {
                        carried.insert((m.conversation, m.msg_id), media);
                        ops.push(StateOp::MediaUsed {
                            media,
                            conversation: m.conversation,
                            msg_id: m.msg_id,
                        });
                    }
                }
                Event::Receipt(rc) => {
                    ops.push(StateOp::AdvanceMark {
                        conversation: rc.conversation,
                        user: rc.by,
                        status: rc.status,
                        up_to: rc.up_to,
                    });
                    if let ConversationId::Group(g) = rc.conversation {
                        if let Some(state) = self.group(g).await? {
                            for t in state.receipt(rc.by, rc.up_to, rc.status) {
                                route(at(t.to), &status(t.to, rc.conversation, rc.by, &t, rc.ts));
                            }
                        }
                        continue;
                    }
                    // In a 1:1 chat the messages acknowledged are the peer's.
                    if let Some(sender) = rc.conversation.peer_of(rc.by) {
                        let status = Event::Status(StatusUpdate {
                            to: sender,
                            conversation: rc.conversation,
                            msg_id: rc.up_to,
                            status: rc.status,
                            by: rc.by,
                            ts: rc.ts,
                        });
                        route(at(sender), &status);
                    }
                }
                Event::Group(GroupEvent {
                    group,
                    by,
                    change,
                    ts,
                }) => {
                    let c = ConversationId::group(group);
                    let before = self.members(group).await?;
                    let ticks = match (&change, self.group(group).await?) {
                        (GroupChange::Created { name, members }, None) => {
                            GroupState::create(by, name, members, ts).map(|s| {
                                self.pending.insert(group, Some(s));
                                Vec::new()
                            })
                        }
                        (GroupChange::Created { .. }, Some(_)) => {
                            // A replayed creation finds its own group.
                            continue;
                        }
                        (_, Some(state)) => state.apply(by, &change),
                        (_, None) => {
                            tracing::warn!(%group, "change to an unknown group");
                            continue;
                        }
                    };
                    match ticks {
                        Ok(ticks) => {
                            for t in ticks {
                                route(at(t.to), &status(t.to, c, by, &t, ts));
                            }
                            let after = self.members(group).await?;
                            ops.extend(membership_changes(group, &before, &after));
                        }
                        Err(refused) => {
                            emit(GroupChangeRefused {
                                group,
                                by,
                                reason: &refused.reason,
                            });
                        }
                    }
                }
                other => tracing::warn!(
                    partition,
                    offset,
                    kind = other.kind(),
                    "unexpected event on events"
                ),
            }
        }
        // A group only replaces itself: the router is its one writer.
        for (group, state) in &self.pending {
            if let Some(state) = state {
                ops.push(StateOp::PutGroup {
                    group: *group,
                    state: state.clone(),
                });
            }
        }
        let appends = out
            .into_iter()
            .map(|(p, recs)| self.log.append(topics::INBOX, p, recs));
        futures::future::try_join_all(appends).await?;
        Ok(ops)
    }

    async fn committed(&mut self, applied: Applied) {
        let pending = std::mem::take(&mut self.pending);
        match applied {
            Applied::Written => {
                if self.groups.len() > GROUP_CACHE {
                    self.groups.clear();
                }
                self.groups
                    .extend(pending.into_iter().filter_map(|(g, s)| Some((g, s?))));
            }
            Applied::Stale { .. } => self.groups.clear(),
        }
    }
}
