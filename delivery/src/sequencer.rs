//! The sequencer job, on `inbox` (by user): the one writer of its users'
//! `seq`. Each item gets the next seq, is stored with the offset it came
//! from, and is pushed to the user's connected devices; a large group's
//! post is stored once and members get runs of seqs pointing at it.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parley_engines::job::{events, Linger, Processor};
use parley_engines::push::{Push, Pusher};
use parley_engines::state::InboxStore;
use parley_engines::telemetry::emit;
use parley_engines::{Applied, Record, Result, StateOp};
use parley_schemas::event::{Event, GroupPost, InboxItem, MessageSent};
use parley_schemas::ids::{ConversationId, GroupId, MessageId, UserId};
use parley_schemas::wire::{ErrorCode, ErrorFrame, PresenceFrame, ServerFrame, SharedMsg};
use parley_schemas::{codec, topics};

use crate::{redact, replay};

pub const JOB: &str = parley_schemas::jobs::SEQUENCER;

/// Sequences, stores and pushes the items of one `inbox` partition.
///
/// `seqs` and `heads` cache the store; they are only trusted because this
/// job is the one writer of them for its users. Work on a batch goes into
/// `pending` first and reaches the caches only once `apply` has stored it,
/// so a failed or stale batch leaves them as the store has them.
pub struct Sequencer {
    state: Arc<dyn InboxStore>,
    pusher: Arc<dyn Pusher>,
    seqs: HashMap<UserId, u64>,
    heads: HashMap<(UserId, ConversationId), MessageId>,
    pending: Pending,
}

#[derive(Default)]
struct Pending {
    seqs: HashMap<UserId, u64>,
    heads: HashMap<(UserId, ConversationId), MessageId>,
    pushes: Vec<(UserId, Push)>,
    /// Runs of group posts (`StateOp::InboxRun`), and each user's last one
    /// (which the next post of the same group may extend).
    runs: Vec<StateOp>,
    open: HashMap<UserId, usize>,
    /// Stored copies of messages deleted for everyone, blanked.
    redacted: Vec<StateOp>,
}

/// A run is read whole when a replay starts inside it, so keep it short.
const RUN_MAX: u32 = parley_engines::state::INBOX_PAGE as u32;

/// How a batch holding a group post waits for more records. A post costs a
/// row per member per batch however many posts the batch holds, and each
/// member's socket is woken and written once per batch: a batch of k posts
/// costs about what one does. A lone post waits `idle`; a steady stream is
/// collected for up to `max` (docs/benchmarks.md measures both).
pub const POST_LINGER: Linger = Linger {
    max: std::time::Duration::from_millis(50),
    idle: std::time::Duration::from_millis(10),
};

impl Sequencer {
    pub fn new(state: Arc<dyn InboxStore>, pusher: Arc<dyn Pusher>) -> Self {
        Sequencer {
            state,
            pusher,
            seqs: HashMap::new(),
            heads: HashMap::new(),
            pending: Pending::default(),
        }
    }

    async fn seq(&mut self, user: UserId) -> Result<u64> {
        if let Some(s) = self.pending.seqs.get(&user).or(self.seqs.get(&user)) {
            return Ok(*s);
        }
        let s = self.state.inbox_seq(user).await?;
        self.seqs.insert(user, s);
        Ok(s)
    }

    async fn head(&mut self, user: UserId, c: ConversationId) -> Result<Option<MessageId>> {
        let key = (user, c);
        if let Some(h) = self.pending.heads.get(&key).or(self.heads.get(&key)) {
            return Ok(Some(*h));
        }
        let h = self.state.inbox_head(user, c).await?;
        if let Some(h) = h {
            self.heads.insert(key, h);
        }
        Ok(h)
    }
}

impl Sequencer {
    /// The seq `msg_id` takes in `user`'s inbox, or `None` if it is not
    /// newer than the user's head there. Within a conversation msg_ids
    /// rise in log order, so that is normally a replayed copy: a large
    /// group's post in order is one for sure, an item is looked for
    /// ([`Self::behind`]).
    async fn claim(
        &mut self,
        user: UserId,
        c: ConversationId,
        msg_id: MessageId,
    ) -> Result<Option<u64>> {
        if self.head(user, c).await?.is_some_and(|h| msg_id <= h) {
            return Ok(None);
        }
        let seq = self.seq(user).await? + 1;
        self.pending.seqs.insert(user, seq);
        self.pending.heads.insert((user, c), msg_id);
        Ok(Some(seq))
    }

    /// An item not newer than `user`'s head in `c`: `None` for a copy (in
    /// this batch's `ops` or in the stored inbox); else the order broke,
    /// and it takes the next seq anyway, loudly ([`replay`]). The head
    /// stays the newest: it is what later copies are told by.
    async fn behind(
        &mut self,
        user: UserId,
        c: ConversationId,
        msg_id: MessageId,
        ops: &[StateOp],
    ) -> Result<Option<u64>> {
        let head = self.head(user, c).await?.unwrap_or_default();
        if msg_id == head || replay::in_batch(ops, user, msg_id) {
            return Ok(None);
        }
        let seq = self.seq(user).await? + 1;
        if replay::placed(&*self.state, user, c, msg_id, seq).await? {
            return Ok(None);
        }
        emit(replay::OutOfOrder {
            conversation: c,
            msg_id,
            head,
        });
        self.pending.seqs.insert(user, seq);
        Ok(Some(seq))
    }

    /// `message` for `user`'s inbox: a seq, a stored copy, a push.
    async fn item(
        &mut self,
        user: UserId,
        message: MessageSent,
        ops: &mut Vec<StateOp>,
    ) -> Result<()> {
        let (c, msg_id) = (message.conversation, message.msg_id);
        let seq = match self.claim(user, c, msg_id).await? {
            Some(seq) => seq,
            // Boxed: rare, and it would bloat this future for every item.
            None => match Box::pin(self.behind(user, c, msg_id, ops)).await? {
                Some(seq) => seq,
                None => return Ok(()),
            },
        };
        if let Some(target) = redact::deleted_target(&message) {
            self.redact_item(user, c, target, seq, ops).await?;
        }
        let msg = Arc::new(SharedMsg::new(message.to_frame(None)));
        let origin = (user == message.from).then_some(message.from_device);
        ops.push(StateOp::InboxPut {
            user,
            seq,
            conversation: c,
            msg_id,
            item: Bytes::from(codec::encode(&Event::InboxItem(InboxItem {
                user,
                seq,
                message,
            }))),
        });
        self.pending
            .pushes
            .push((user, Push::Item { seq, msg, origin }));
        Ok(())
    }

    /// A large group's message for this partition's members: stored once
    /// (its posts are shared by every inbox), a seq per member pointing at
    /// it (runs: one row per member per batch however many posts), and
    /// one rendered frame pushed to them all.
    async fn post(&mut self, post: GroupPost, ops: &mut Vec<StateOp>) -> Result<()> {
        let GroupPost { to, prev, message } = post;
        let c = message.conversation;
        let ConversationId::Group(group) = c else {
            tracing::warn!(conversation = %c, "group post outside a group skipped");
            return Ok(());
        };
        // Behind the newest post of the group's stream (the order broke):
        // stored per member as an item, never in the stream, where it
        // would land inside the runs that already span it. A post newer
        // than `prev` is newer than all the router sent this group before
        // it, so for a member it is behind the head only as a copy.
        if prev.is_some_and(|p| message.msg_id < p) {
            for user in to {
                Box::pin(self.item(user, message.clone(), ops)).await?;
            }
            return Ok(());
        }
        let msg = Arc::new(SharedMsg::new(message.to_frame(None)));
        let mut stored = false;
        for user in to {
            let Some(seq) = self.claim(user, c, message.msg_id).await? else {
                continue;
            };
            // Extend the user's run if this post follows it in the group's
            // stream and in their inbox; otherwise start one.
            let p = &mut self.pending;
            match p.open.get(&user).map(|&i| &mut p.runs[i]) {
                Some(StateOp::InboxRun {
                    seq: s,
                    count,
                    group: g,
                    last,
                    ..
                }) if *g == group
                    && Some(*last) == prev
                    && *s + u64::from(*count) == seq
                    && *count < RUN_MAX =>
                {
                    *count += 1;
                    *last = message.msg_id;
                }
                _ => {
                    p.open.insert(user, p.runs.len());
                    p.runs.push(StateOp::InboxRun {
                        user,
                        seq,
                        count: 1,
                        group,
                        first: message.msg_id,
                        last: message.msg_id,
                    });
                }
            }
            stored = true;
            let origin = (user == message.from).then_some(message.from_device);
            let push = Push::Item {
                seq,
                msg: msg.clone(),
                origin,
            };
            p.pushes.push((user, push));
        }
        if stored {
            if let Some(target) = redact::deleted_target(&message) {
                self.redact_post(group, target, ops).await?;
            }
            ops.push(StateOp::GroupPost {
                group,
                msg_id: message.msg_id,
                message: Bytes::from(codec::encode(&Event::MessageSent(message))),
            });
        }
        Ok(())
    }
}

impl Sequencer {
    /// Blanks the copy of `target` in `user`'s inbox (placed in this batch,
    /// or stored below `below`).
    async fn redact_item(
        &mut self,
        user: UserId,
        c: ConversationId,
        target: MessageId,
        below: u64,
        ops: &mut [StateOp],
    ) -> Result<()> {
        for op in ops.iter_mut().rev() {
            if let StateOp::InboxPut {
                user: u,
                msg_id,
                item,
                ..
            } = op
            {
                if *u == user && *msg_id == target {
                    if let Ok(Event::InboxItem(i)) = codec::decode(item) {
                        *item = redact::blank_item(i);
                    }
                    redact::count(true);
                    return Ok(());
                }
            }
        }
        let found = redact::find_item(&*self.state, user, c, target, below).await?;
        redact::count(found.is_some());
        if let Some((seq, i)) = found {
            // The next batch may look at rows this one rewrites: a
            // replayed deletion finds the blank copy and blanks it again.
            self.pending.redacted.push(StateOp::InboxRedact {
                user,
                seq,
                item: redact::blank_item(i),
            });
        }
        Ok(())
    }

    /// Blanks the post `target` of a large group's stream.
    async fn redact_post(
        &mut self,
        group: GroupId,
        target: MessageId,
        ops: &mut [StateOp],
    ) -> Result<()> {
        for op in ops.iter_mut() {
            if let StateOp::GroupPost {
                group: g,
                msg_id,
                message,
            } = op
            {
                if *g == group && *msg_id == target {
                    if let Some(b) = redact::blank_post(message) {
                        *message = b;
                    }
                    redact::count(true);
                    return Ok(());
                }
            }
        }
        let stored = redact::find_post(&*self.state, group, target).await?;
        redact::count(stored.is_some());
        if let Some(message) = stored.as_deref().and_then(redact::blank_post) {
            self.pending.redacted.push(StateOp::GroupPostRedact {
                group,
                msg_id: target,
                message,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Processor for Sequencer {
    async fn process(&mut self, partition: u32, records: &[Record]) -> Result<Vec<StateOp>> {
        self.pending = Pending::default();
        let mut ops = Vec::new();
        for (offset, event) in events(topics::INBOX, partition, records)? {
            match event {
                Event::InboxItem(InboxItem { user, message, .. }) => {
                    self.item(user, message, &mut ops).await?
                }
                Event::GroupPost(post) => self.post(post, &mut ops).await?,
                Event::Status(s) => {
                    let frame = Arc::new(ServerFrame::Status(s.to_frame(false)));
                    self.pending.pushes.push((s.to, Push::Frame(frame)));
                }
                Event::PresenceNotice(n) => {
                    let p = n.presence;
                    let frame = Arc::new(ServerFrame::Presence(PresenceFrame {
                        user_id: p.user,
                        online: p.online,
                        last_seen: (p.last_seen > 0).then_some(p.last_seen),
                    }));
                    for to in n.to {
                        self.pending.pushes.push((to, Push::Frame(frame.clone())));
                    }
                }
                Event::StatusAll(s) => {
                    let frame = Arc::new(ServerFrame::Status(s.to_frame(true)));
                    self.pending.pushes.push((s.to, Push::Frame(frame)));
                }
                // Live only, like a status: a device offline at the moment
                // learns it from the message missing from the chat.
                Event::SendRefused(r) => {
                    let frame = Arc::new(ServerFrame::Error(ErrorFrame {
                        code: ErrorCode::Forbidden,
                        message: r.reason,
                        reference: Some(r.client_msg_id),
                    }));
                    self.pending.pushes.push((r.user, Push::Frame(frame)));
                }
                other => {
                    tracing::warn!(
                        partition,
                        offset,
                        kind = other.kind(),
                        "unexpected event on inbox"
                    )
                }
            }
        }
        ops.append(&mut self.pending.runs);
        ops.append(&mut self.pending.redacted);
        Ok(ops)
    }

    fn linger(&self, first: &[Record]) -> Option<Linger> {
        let post = |r: &Record| matches!(codec::decode(&r.payload), Ok(Event::GroupPost(_)));
        first.iter().any(post).then_some(POST_LINGER)
    }

    async fn committed(&mut self, applied: Applied) {
        let pending = std::mem::take(&mut self.pending);
        match applied {
            Applied::Written => {
                self.seqs.extend(pending.seqs);
                self.heads.extend(pending.heads);
                self.pusher.deliver(pending.pushes);
            }
            // Someone else stored this batch: what we cached may be behind.
            Applied::Stale { .. } => {
                self.seqs.clear();
                self.heads.clear();
            }
        }
    }
}
