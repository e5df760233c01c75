//! The sequencer tells a replayed copy from a message that came out of
//! order: copies are dropped, a message behind its conversation's head
//! that was never placed is placed (issue 30, point 7b).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use parley_delivery::sequencer::{Sequencer, JOB};
use parley_engines::job::Processor;
use parley_engines::push::{Push, Pusher};
use parley_engines::state::{InboxEntry, InboxStore, JobStore};
use parley_engines::{Record, RedbState};
use parley_schemas::codec;
use parley_schemas::event::{Event, GroupPost, InboxItem, MessageSent};
use parley_schemas::ids::{ConversationId, DeviceId, GroupId, MessageId, UserId};
use parley_schemas::wire::{Body, Recipient};

const ANN: UserId = UserId(1);
const BOB: UserId = UserId(2);
const GROUP: GroupId = GroupId(9);

#[derive(Default)]
struct Pushed(Mutex<Vec<(UserId, u64)>>);

impl Pusher for Pushed {
    fn deliver(&self, pushes: Vec<(UserId, Push)>) {
        let mut seen = self.0.lock().unwrap();
        for (user, push) in pushes {
            if let Push::Item { seq, .. } = push {
                seen.push((user, seq));
            }
        }
    }
}

fn id(ms: u64) -> MessageId {
    MessageId::from_parts(1_800_000_000_000 + ms, 3, 0)
}

fn message(to: Recipient, conversation: ConversationId, ms: u64) -> MessageSent {
    MessageSent {
        msg_id: id(ms),
        conversation,
        from: ANN,
        from_device: DeviceId(1),
        to,
        client_msg_id: format!("c{ms}"),
        body: Body::Text(format!("m{ms}")),
        ts: 1_800_000_000_000 + ms,
        reply_to: None,
        forwarded: false,
    }
}

/// Ann's message `ms` in her chat with Bob, for Bob's inbox.
fn item(ms: u64) -> Event {
    let message = message(Recipient::User(BOB), ConversationId::direct(ANN, BOB), ms);
    Event::InboxItem(InboxItem {
        user: BOB,
        seq: 0,
        message,
    })
}

/// Ann's post `ms` to the large group, following `prev`, for Bob.
fn post(ms: u64, prev: Option<u64>) -> Event {
    let message = message(Recipient::Group(GROUP), ConversationId::group(GROUP), ms);
    Event::GroupPost(GroupPost {
        to: vec![BOB],
        prev: prev.map(id),
        message,
    })
}

struct Rig {
    _dir: tempfile::TempDir,
    state: Arc<RedbState>,
    pushed: Arc<Pushed>,
    seq: Sequencer,
    offset: u64,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(RedbState::open(dir.path().join("s.redb")).unwrap());
        let pushed = Arc::new(Pushed::default());
        let seq = Sequencer::new(state.clone(), pushed.clone());
        Rig {
            _dir: dir,
            state,
            pushed,
            seq,
            offset: 0,
        }
    }

    /// One batch through the job, as the job loop runs it: process, store
    /// with the offsets, then commit (which pushes).
    async fn batch(&mut self, events: &[Event]) {
        let records: Vec<Record> = events
            .iter()
            .enumerate()
            .map(|(i, e)| Record {
                offset: self.offset + i as u64,
                timestamp: 0,
                payload: Bytes::from(codec::encode(e)),
            })
            .collect();
        let ops = self.seq.process(0, &records).await.unwrap();
        let prev = (self.offset > 0).then_some(self.offset);
        self.offset += records.len() as u64;
        let applied = self
            .state
            .apply(JOB, 0, prev, self.offset, ops)
            .await
            .unwrap();
        self.seq.committed(applied).await;
    }

    /// Bob's inbox as (seq, msg_id) pairs, runs read through their posts.
    async fn inbox(&self) -> Vec<(u64, MessageId)> {
        let mut out = Vec::new();
        for row in self.state.inbox_range(BOB, 0, 1000).await.unwrap() {
            match row {
                InboxEntry::Item { seq, item } => {
                    let Ok(Event::InboxItem(i)) = codec::decode(&item) else {
                        panic!("an inbox item that does not decode");
                    };
                    out.push((seq, i.message.msg_id));
                }
                InboxEntry::Run {
                    seq,
                    count,
                    group,
                    first,
                } => {
                    let posts = self.state.group_posts(group, first, count as usize);
                    for (k, (msg_id, _)) in posts.await.unwrap().into_iter().enumerate() {
                        out.push((seq + k as u64, msg_id));
                    }
                }
            }
        }
        out
    }

    fn pushed(&self) -> Vec<u64> {
        let seen = self.pushed.0.lock().unwrap();
        seen.iter().map(|(_, seq)| *seq).collect()
    }
}

#[tokio::test]
async fn a_message_behind_the_head_is_placed_and_copies_are_not() {
    let mut rig = Rig::new();
    rig.batch(&[item(100), item(300)]).await;
    // 200 was never placed: its id is behind the head (300), as when two
    // appenders of one partition interleave. 100 and 300 are copies.
    rig.batch(&[item(200), item(100), item(300)]).await;
    assert_eq!(
        rig.inbox().await,
        vec![(1, id(100)), (2, id(300)), (3, id(200))]
    );
    // In one batch: 250 behind the head, then its own copy before it is
    // stored, then a copy of 200 (placed out of order in the last batch).
    rig.batch(&[item(250), item(250), item(200)]).await;
    assert_eq!(rig.inbox().await.len(), 4);
    assert_eq!(rig.inbox().await[3], (4, id(250)));
    assert_eq!(rig.pushed(), vec![1, 2, 3, 4], "each message pushed once");
    // The head stays the newest: 400 follows, a copy of 300 is dropped.
    rig.batch(&[item(400), item(300)]).await;
    assert_eq!(rig.inbox().await.last(), Some(&(5, id(400))));
    assert_eq!(rig.pushed().len(), 5);
}

#[tokio::test]
async fn a_post_behind_the_head_is_placed_and_copies_in_runs_are_not() {
    let mut rig = Rig::new();
    rig.batch(&[post(100, None), post(300, Some(100))]).await;
    assert_eq!(rig.inbox().await, vec![(1, id(100)), (2, id(300))]);
    // 100 is inside Bob's run: a copy. 200 came after 300 in the log (the
    // router names 300 as the group's newest): placed for Bob alone, not
    // in the group's stream, where it would land inside his run.
    rig.batch(&[post(100, None), post(200, Some(300)), post(300, Some(100))])
        .await;
    assert_eq!(
        rig.inbox().await,
        vec![(1, id(100)), (2, id(300)), (3, id(200))]
    );
    rig.batch(&[post(200, Some(300)), post(400, Some(300))])
        .await;
    assert_eq!(
        rig.inbox().await,
        vec![(1, id(100)), (2, id(300)), (3, id(200)), (4, id(400))]
    );
    assert_eq!(rig.pushed(), vec![1, 2, 3, 4]);
}
