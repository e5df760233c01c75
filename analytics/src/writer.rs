//! The history writer: two processor jobs that turn the log into history
//! rows, in batches (the job loop lingers until it has a batch's worth of
//! records or the linger time passed).
//!
//! - [`HistoryWriter`] on `events`: messages, read marks, and receipts
//!   expanded to one row per message with its latency.
//! - [`SessionWriter`] on `presence`: heartbeats folded into sessions.
//!
//! Each job's offset is stored (by the job loop) only after
//! [`History::write`] returned, so a crash or a history outage replays the
//! batch; the history's tables make the replay a no-op.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use parley_engines::history::{History, HistoryBatch, MessageReceipt, PresenceSession, MAX_PAGE};
use parley_engines::job::{events, Processor};
use parley_engines::state::ConversationStore;
use parley_engines::telemetry::emit;
use parley_engines::{Applied, Record, Result, StateOp};
use parley_schemas::event::{Event, Heartbeat, MessageSent, Receipt};
use parley_schemas::group::GroupState;
use parley_schemas::ids::{ConversationId, GroupId, MessageId, UserId};
use parley_schemas::presence::{Devices, OFFLINE_AFTER_MS};
use parley_schemas::topics;
use parley_schemas::wire::{Body, Edit, Media, ReceiptStatus};

use crate::internal_events::{HistoryRowsWritten, HistoryWriteFailed};

pub const JOB: &str = parley_schemas::jobs::HISTORY;
pub const SESSIONS_JOB: &str = parley_schemas::jobs::HISTORY_SESSIONS;

/// Messages per conversation kept for expanding receipts; older ones are
/// loaded back from the history when a receipt reaches them.
const PENDING_PER_CONVERSATION: usize = 1_000;
/// History reads in flight at once when receipts need older messages.
const LOADS_AT_ONCE: usize = 16;
/// Conversations kept in memory before the quiet ones are dropped.
const PENDING_CONVERSATIONS: usize = 100_000;

/// Writes a batch and emits the telemetry of it: rows counted by table on
/// success, a failure counted and logged otherwise.
async fn write(history: &dyn History, job: &str, batch: &HistoryBatch) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    match history.write(batch).await {
        Ok(()) => {
            for (table, n) in [
                ("messages", batch.messages.len()),
                ("read_marks", batch.marks.len()),
                ("receipts", batch.receipts.len()),
                ("presence_sessions", batch.sessions.len()),
            ] {
                emit(HistoryRowsWritten { table, rows: n });
            }
            Ok(())
        }
        Err(e) => {
            emit(HistoryWriteFailed {
                job,
                rows: batch.rows(),
                error: &e,
            });
            Err(e)
        }
    }
}

#[derive(Default)]
struct Pending {
    /// Whether older messages were loaded from the history already.
    loaded: bool,
    /// msg_id → (sender, sent ts)
    messages: BTreeMap<MessageId, (UserId, u64)>,
    /// How far receipts were expanded, per reader and status.
    marks: HashMap<(UserId, ReceiptStatus), MessageId>,
}

pub struct HistoryWriter {
    history: Arc<dyn History>,
    pending: HashMap<ConversationId, Pending>,
    /// Where group member lists are read, to list group messages for
    /// their members; without it, for their senders only.
    groups: Option<Arc<dyn ConversationStore>>,
    /// `retention.mode = "until_delivered"`: bodies are not kept, only
    /// what analysts count (kind, sizes, who, when).
    metadata_only: bool,
}

/// A message with its content taken out: the kind of body and the media
/// size stay for analytics; text, captions, media ids and ciphertext go.
pub fn metadata_of(mut m: MessageSent) -> MessageSent {
    m.body = match m.body {
        Body::Text(_) => Body::Text(String::new()),
        Body::Media(media) => Body::Media(Media {
            media_id: String::new(),
            caption: None,
            ..media
        }),
        Body::E2e(_) => Body::E2e(Default::default()),
        Body::Edit(e) => Body::Edit(Edit {
            text: String::new(),
            ..e
        }),
        // Which emoji, when and on what are what analysts count.
        b @ (Body::Delete(_) | Body::Reaction(_)) => b,
    };
    m
}

impl HistoryWriter {
    pub fn new(history: Arc<dyn History>) -> Self {
        HistoryWriter {
            history,
            pending: HashMap::new(),
            groups: None,
            metadata_only: false,
        }
    }

    /// Writes messages without their content (`until_delivered`).
    pub fn metadata_only(mut self, yes: bool) -> Self {
        self.metadata_only = yes;
        self
    }

    /// Lists group messages for the members who may see them, reading
    /// the groups' state (the router's) from `state`.
    pub fn with_groups(mut self, state: Arc<dyn ConversationStore>) -> Self {
        self.groups = Some(state);
        self
    }

    /// For each group message of the batch, the members who may see it.
    /// The state may be ahead of this writer (the router runs apart);
    /// each member's span still says which messages were theirs.
    async fn list_group_messages(&self, batch: &mut HistoryBatch) -> Result<()> {
        let Some(state) = &self.groups else {
            return Ok(());
        };
        let mut groups: HashMap<GroupId, Option<GroupState>> = HashMap::new();
        for m in &batch.messages {
            if let ConversationId::Group(g) = m.conversation {
                if let std::collections::hash_map::Entry::Vacant(e) = groups.entry(g) {
                    e.insert(state.group(g).await?);
                }
                if let Some(Some(s)) = groups.get(&g) {
                    let users = s
                        .members
                        .iter()
                        .filter(|x| x.sees(m.msg_id) || x.user == m.from);
                    batch
                        .listed
                        .insert(m.msg_id, users.map(|x| x.user).collect());
                }
            }
        }
        Ok(())
    }

    /// One row per message the receipt newly covers: the other side's
    /// messages above what this reader's earlier receipts covered.
    /// Loads, for each conversation a receipt of `events` names and whose
    /// older messages are not in memory, the newest messages the receipts
    /// reach from the history: several reads at a time, not one per
    /// receipt in turn.
    async fn load_for(&mut self, events: &[(u64, Event)]) -> Result<()> {
        let mut reach: HashMap<ConversationId, MessageId> = HashMap::new();
        for (_, e) in events {
            if let Event::Receipt(rc) = e {
                if !self.pending.get(&rc.conversation).is_some_and(|p| p.loaded) {
                    let r = reach.entry(rc.conversation).or_insert(rc.up_to);
                    *r = (*r).max(rc.up_to);
                }
            }
        }
        let history = &self.history;
        let pages: Vec<_> = futures::stream::iter(reach)
            .map(|(c, up_to)| async move {
                let before = MessageId(up_to.0.saturating_add(1));
                (c, history.page(c, Some(before), MAX_PAGE).await)
            })
            .buffer_unordered(LOADS_AT_ONCE)
            .collect()
            .await;
        for (c, page) in pages {
            let p = self.pending.entry(c).or_default();
            for m in page? {
                p.messages.entry(m.msg_id).or_insert((m.from, m.ts));
            }
            p.loaded = true;
        }
        Ok(())
    }

    fn expand(&mut self, rc: &Receipt, out: &mut Vec<MessageReceipt>) {
        let p = self.pending.entry(rc.conversation).or_default();
        let mark = p.marks.entry((rc.by, rc.status)).or_insert(MessageId(0));
        if rc.up_to <= *mark {
            return;
        }
        let from = MessageId(mark.0 + 1);
        for (&msg_id, &(sender, sent_ts)) in p.messages.range(from..=rc.up_to) {
            if sender != rc.by {
                out.push(MessageReceipt {
                    conversation: rc.conversation,
                    msg_id,
                    sender,
                    by: rc.by,
                    status: rc.status,
                    sent_ts,
                    ts: rc.ts,
                });
            }
        }
        *mark = rc.up_to;
        // In a 1:1 chat, messages the other side has read need no more
        // receipts. (Groups keep theirs until the cap: other members may still read.)
        if rc.status == ReceiptStatus::Read && rc.conversation.peer_of(rc.by).is_some() {
            let up_to = rc.up_to;
            p.messages
                .retain(|id, (sender, _)| *id > up_to || *sender == rc.by);
        }
    }

    fn trim(&mut self) {
        for p in self.pending.values_mut() {
            while p.messages.len() > PENDING_PER_CONVERSATION {
                p.messages.pop_first();
                // What was dropped may be needed again: reload on demand.
                p.loaded = false;
            }
        }
        if self.pending.len() > PENDING_CONVERSATIONS {
            self.pending.retain(|_, p| !p.messages.is_empty());
            if self.pending.len() > PENDING_CONVERSATIONS {
                self.pending.clear();
            }
        }
    }
}

#[async_trait]
impl Processor for HistoryWriter {
    async fn process(&mut self, partition: u32, records: &[Record]) -> Result<Vec<StateOp>> {
        let mut batch = HistoryBatch::default();
        let events: Vec<(u64, Event)> = events(topics::EVENTS, partition, records)?;
        let built: Result<()> = async {
            self.load_for(&events).await?;
            for (offset, event) in events {
                match event {
                    Event::MessageSent(m) => {
                        // Receipts are about messages, not actions on them.
                        if !m.body.is_action() {
                            self.pending
                                .entry(m.conversation)
                                .or_default()
                                .messages
                                .insert(m.msg_id, (m.from, m.ts));
                        }
                        batch.messages.push(if self.metadata_only {
                            metadata_of(m)
                        } else {
                            m
                        });
                    }
                    Event::Receipt(rc) => {
                        self.expand(&rc, &mut batch.receipts);
                        batch.marks.push(rc);
                    }
                    // Membership is the router's; messages carry the rest.
                    Event::Group(_) => {}
                    other => tracing::warn!(
                        partition,
                        offset,
                        kind = other.kind(),
                        "unexpected event on events"
                    ),
                }
            }
            self.list_group_messages(&mut batch).await?;
            write(&*self.history, JOB, &batch).await
        }
        .await;
        if let Err(e) = built {
            // The batch comes again; what it did to the memory must not
            // count twice (marks moved, messages added): start over.
            self.pending.clear();
            return Err(e);
        }
        self.trim();
        Ok(Vec::new())
    }

    async fn committed(&mut self, applied: Applied) {
        if matches!(applied, Applied::Stale { .. }) {
            self.pending.clear();
        }
    }
}

struct Open {
    session: PresenceSession,
    devices: Devices,
    /// The user's last device closed: the next heartbeat starts anew.
    closed: bool,
}

pub struct SessionWriter {
    history: Arc<dyn History>,
    open: HashMap<UserId, Open>,
}

impl SessionWriter {
    pub fn new(history: Arc<dyn History>) -> Self {
        SessionWriter {
            history,
            open: HashMap::new(),
        }
    }

    /// Folds one heartbeat in; a session it ends goes to `ended`.
    fn observe(&mut self, hb: &Heartbeat, ended: &mut Vec<PresenceSession>) {
        let fresh = || Open {
            session: PresenceSession {
                user: hb.user,
                start: hb.ts,
                end: hb.ts,
                active_beats: 0,
            },
            devices: Devices::default(),
            closed: false,
        };
        let open = self.open.entry(hb.user).or_insert_with(fresh);
        if open.closed || hb.ts.saturating_sub(open.session.end) > OFFLINE_AFTER_MS {
            ended.push(open.session);
            *open = fresh();
        }
        let online = open.devices.observe(hb);
        if hb.closing {
            open.closed = !online;
        }
        // A heartbeat at or before the stored end was counted before a
        // restart; a replay must not count it again.
        if hb.ts > open.session.end || open.session.active_beats == 0 {
            if hb.active && !hb.closing {
                open.session.active_beats += 1;
            }
            open.session.end = open.session.end.max(hb.ts);
        }
    }
}

#[async_trait]
impl Processor for SessionWriter {
    async fn process(&mut self, partition: u32, records: &[Record]) -> Result<Vec<StateOp>> {
        let beats: Vec<Heartbeat> = events(topics::PRESENCE, partition, records)?
            .into_iter()
            .filter_map(|(_, e)| match e {
                Event::Heartbeat(hb) => Some(hb),
                _ => None,
            })
            .collect();
        // Users seen for the first time since start may be in a session
        // that began before: continue it if it is still live.
        let mut unknown: Vec<UserId> = beats
            .iter()
            .map(|hb| hb.user)
            .filter(|u| !self.open.contains_key(u))
            .collect();
        unknown.sort_unstable();
        unknown.dedup();
        let first_ts: HashMap<UserId, u64> =
            beats.iter().rev().map(|hb| (hb.user, hb.ts)).collect();
        for s in self.history.last_sessions(&unknown).await? {
            let ts = first_ts[&s.user];
            if ts.saturating_sub(s.end) <= OFFLINE_AFTER_MS {
                self.open.insert(
                    s.user,
                    Open {
                        session: s,
                        devices: Devices::default(),
                        closed: false,
                    },
                );
            }
        }
        let mut touched = Vec::new();
        let mut sessions = Vec::new();
        for hb in &beats {
            self.observe(hb, &mut sessions);
            touched.push(hb.user);
        }
        touched.sort_unstable();
        touched.dedup();
        sessions.extend(touched.iter().map(|u| self.open[u].session));
        let batch = HistoryBatch {
            sessions,
            ..Default::default()
        };
        if let Err(e) = write(&*self.history, SESSIONS_JOB, &batch).await {
            // Replayed next: forget what this batch did.
            self.open.clear();
            return Err(e);
        }
        // Sessions silent for longer than the timeout are over and written.
        // A closed one stays a while: a heartbeat soon after the last
        // device closed starts a new session, not the old one again.
        let newest = beats.iter().map(|hb| hb.ts).max().unwrap_or(0);
        self.open
            .retain(|_, o| newest.saturating_sub(o.session.end) <= OFFLINE_AFTER_MS);
        Ok(Vec::new())
    }

    async fn committed(&mut self, applied: Applied) {
        if matches!(applied, Applied::Stale { .. }) {
            self.open.clear();
        }
    }
}
