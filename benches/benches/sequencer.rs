//! The sequencer's own work per batch, on the embedded store with its
//! caches warm: a large group's posts (a seq per member, runs) and 1:1
//! items. No store writes and no sockets: what the job adds per item.
//!
//! `cargo bench -p parley-benches --bench sequencer`

use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use parley_delivery::sequencer::Sequencer;
use parley_engines::job::Processor;
use parley_engines::push::{Push, Pusher};
use parley_engines::{Applied, Record, RedbState};
use parley_schemas::codec;
use parley_schemas::event::{Event, GroupPost, InboxItem, MessageSent};
use parley_schemas::ids::{ConversationId, DeviceId, GroupId, MessageId, UserId};
use parley_schemas::wire::{Body, Recipient};

const MEMBERS: u64 = 5_000;
const POSTS: u64 = 50;
const ITEMS: u64 = 1_000;

struct Nowhere;

impl Pusher for Nowhere {
    fn deliver(&self, _: Vec<(UserId, Push)>) {}
}

/// Message `n`'s id: ids rise with `n`.
fn id(n: u64) -> MessageId {
    MessageId::from_parts(1_800_000_000_000 + n, 1, 0)
}

fn message(n: u64, to: Recipient, conversation: ConversationId) -> MessageSent {
    MessageSent {
        msg_id: id(n),
        conversation,
        from: UserId(1),
        from_device: DeviceId(1),
        to,
        client_msg_id: format!("c{n}"),
        body: Body::Text("hello".into()),
        ts: 0,
        reply_to: None,
        forwarded: false,
    }
}

fn record(offset: u64, e: &Event) -> Record {
    Record {
        offset,
        timestamp: 0,
        payload: Bytes::from(codec::encode(e)),
    }
}

/// Batch `round` of `POSTS` posts to every member, each following the last.
fn posts(round: u64, to: &[UserId]) -> Vec<Record> {
    let g = GroupId(9);
    (0..POSTS)
        .map(|i| {
            let n = round * POSTS + i;
            let prev = n.checked_sub(1).map(id);
            let message = message(n, Recipient::Group(g), ConversationId::group(g));
            let to = to.to_vec();
            record(i, &Event::GroupPost(GroupPost { to, prev, message }))
        })
        .collect()
}

/// Batch `round` of `ITEMS` 1:1 items, for as many users.
fn items(round: u64) -> Vec<Record> {
    (0..ITEMS)
        .map(|i| {
            let user = UserId(2 + i);
            let c = ConversationId::direct(UserId(1), user);
            let message = message(round * ITEMS + i, Recipient::User(user), c);
            record(
                i,
                &Event::InboxItem(InboxItem {
                    user,
                    seq: 0,
                    message,
                }),
            )
        })
        .collect()
}

/// One batch through the job; the caches take it as if stored, as the
/// job's commit does.
fn run(rt: &tokio::runtime::Runtime, seq: &mut Sequencer, batch: Vec<Record>) -> usize {
    rt.block_on(async {
        let ops = seq.process(0, &batch).await.unwrap();
        seq.committed(Applied::Written).await;
        ops.len()
    })
}

fn sequencer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(RedbState::open(dir.path().join("s.redb")).unwrap());
    let to: Vec<UserId> = (1..=MEMBERS).map(UserId).collect();

    let mut g = c.benchmark_group("sequencer");
    g.throughput(Throughput::Elements(POSTS * MEMBERS));
    let mut seq = Sequencer::new(state.clone(), Arc::new(Nowhere));
    let mut round = 0;
    g.bench_function("group_posts_per_member", |b| {
        b.iter_batched(
            || {
                round += 1;
                posts(round, &to)
            },
            |batch| run(&rt, &mut seq, batch),
            BatchSize::LargeInput,
        )
    });
    g.throughput(Throughput::Elements(ITEMS));
    let mut seq = Sequencer::new(state, Arc::new(Nowhere));
    let mut round = 0;
    g.bench_function("direct_items", |b| {
        b.iter_batched(
            || {
                round += 1;
                items(round)
            },
            |batch| run(&rt, &mut seq, batch),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, sequencer);
criterion_main!(benches);
