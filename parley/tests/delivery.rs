//! Delivery against a real embedded store: catch-up costs the backlog, not
//! the inbox of everyone else; replays never issue a seq twice.

use std::sync::Arc;

use bytes::Bytes;
use parley_delivery::sequencer::Sequencer;
use parley_engines::job::Processor;
use parley_engines::push::Push;
use parley_engines::{Applied, InboxEntry, Record, RedbState, StateOp, StateStore};
use parley_ingest::socket::feed::Feed;
use parley_ingest::socket::hub::Hub;
use parley_schemas::codec;
use parley_schemas::event::{Event, GroupPost, InboxItem, MessageSent};
use parley_schemas::ids::{ConversationId, DeviceId, GroupId, MessageId, UserId};
use parley_schemas::wire::{Body, Recipient, SharedMsg};

fn message(from: u64, to: u64, id: u64) -> MessageSent {
    MessageSent {
        msg_id: MessageId(id),
        conversation: ConversationId::direct(UserId(from), UserId(to)),
        from: UserId(from),
        from_device: DeviceId(1),
        to: Recipient::User(UserId(to)),
        client_msg_id: format!("c{id}"),
        body: Body::Text(format!("text {id}")),
        ts: 1,
        reply_to: None,
        forwarded: false,
    }
}

/// Everything the feed has not sent yet, page by page.
async fn drain(feed: &mut Feed) -> Vec<(u64, Arc<SharedMsg>)> {
    let mut out = Vec::new();
    while feed.behind() {
        out.extend(feed.page().await.unwrap());
    }
    out
}

fn put(user: u64, seq: u64, m: MessageSent) -> StateOp {
    StateOp::InboxPut {
        user: UserId(user),
        seq,
        conversation: m.conversation,
        msg_id: m.msg_id,
        item: Bytes::from(codec::encode(&Event::InboxItem(InboxItem {
            user: UserId(user),
            seq,
            message: m,
        }))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_reads_only_the_backlog_among_100k_items_for_others() {
    let dir = tempfile::tempdir().unwrap();
    let state: Arc<dyn StateStore> = Arc::new(RedbState::open(dir.path().join("s.redb")).unwrap());
    const BOB: u64 = 500;
    // 100,000 items for 1,000 other users, with Bob's 10 spread among them.
    let mut id = 1_000;
    let mut seqs = std::collections::HashMap::new();
    for chunk in 0..100 {
        let mut ops = Vec::new();
        for i in 0..1_000u64 {
            let user = if chunk % 10 == 0 && i == 500 {
                BOB
            } else {
                1_000 + i
            };
            id += 1;
            let seq = seqs.entry(user).and_modify(|s| *s += 1).or_insert(1u64);
            ops.push(put(user, *seq, message(7, user, id)));
        }
        state.write(ops).await.unwrap();
    }
    assert_eq!(state.inbox_seq(UserId(BOB)).await.unwrap(), 10);

    let mut feed = Feed::open(state.clone(), UserId(BOB), DeviceId(3), None)
        .await
        .unwrap();
    feed.sync(None).await.unwrap();
    let got = drain(&mut feed).await;
    let seqs: Vec<u64> = got.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    assert_eq!(feed.items_read, 10, "catch-up read exactly the backlog");

    // Once the device confirms and the cursor is saved, a reconnect reads
    // nothing at all.
    feed.confirm(10);
    feed.save_cursor(true).await.unwrap();
    let mut again = Feed::open(state.clone(), UserId(BOB), DeviceId(3), None)
        .await
        .unwrap();
    again.sync(None).await.unwrap();
    assert!(drain(&mut again).await.is_empty());
    assert_eq!(again.items_read, 0);
}

fn record(offset: u64, e: &Event) -> Record {
    Record {
        offset,
        timestamp: 1,
        payload: Bytes::from(codec::encode(e)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sequencer_issues_dense_seqs_and_drops_replayed_copies() {
    let dir = tempfile::tempdir().unwrap();
    let state: Arc<dyn StateStore> = Arc::new(RedbState::open(dir.path().join("s.redb")).unwrap());
    let hub = Hub::new();
    let (_reg, mut rx) = hub.register(UserId(2), DeviceId(1));
    let item = |id| {
        Event::InboxItem(InboxItem {
            user: UserId(2),
            seq: 0,
            message: message(1, 2, id),
        })
    };
    // 10, 11, then a replayed copy of 10 and 11, then 12.
    let records: Vec<Record> = [10, 11, 10, 11, 12]
        .iter()
        .enumerate()
        .map(|(o, id)| record(o as u64, &item(*id)))
        .collect();
    let mut seq = Sequencer::new(state.clone(), hub.clone());
    let ops = seq.process(0, &records[..2]).await.unwrap();
    let a = state.apply("deliver", 0, None, 2, ops).await.unwrap();
    seq.committed(a).await;
    let ops = seq.process(0, &records[2..]).await.unwrap();
    let a = state.apply("deliver", 0, Some(2), 5, ops).await.unwrap();
    seq.committed(a).await;
    assert_eq!(state.inbox_seq(UserId(2)).await.unwrap(), 3);
    let stored: Vec<u64> = state
        .inbox_range(UserId(2), 0, 10)
        .await
        .unwrap()
        .iter()
        .map(InboxEntry::seq)
        .collect();
    assert_eq!(stored, vec![1, 2, 3]);
    let mut pushed = Vec::new();
    while let Some(Push::Item { seq, .. }) = rx.try_recv() {
        pushed.push(seq);
    }
    assert_eq!(pushed, vec![1, 2, 3]);

    // A batch found already applied (a restart replaying it) pushes nothing
    // and leaves the store alone; a fresh sequencer continues from the store.
    let mut fresh = Sequencer::new(state.clone(), hub.clone());
    let ops = fresh.process(0, &records[2..]).await.unwrap();
    let a = state.apply("deliver", 0, Some(2), 5, ops).await.unwrap();
    assert!(matches!(a, Applied::Stale { .. }));
    fresh.committed(a).await;
    assert!(rx.try_recv().is_none());
    let next = record(5, &item(13));
    let ops = fresh.process(0, &[next]).await.unwrap();
    let a = state.apply("deliver", 0, Some(5), 6, ops).await.unwrap();
    fresh.committed(a).await;
    assert_eq!(state.inbox_seq(UserId(2)).await.unwrap(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_item_waits_for_the_backlog_and_only_the_device_moves_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let state: Arc<dyn StateStore> = Arc::new(RedbState::open(dir.path().join("s.redb")).unwrap());
    let u = 9;
    state
        .write((1..=5).map(|s| put(u, s, message(1, u, 100 + s))).collect())
        .await
        .unwrap();
    // Connects with 5 pending, item 6 comes live, it syncs and leaves
    // without confirming.
    let mut feed = Feed::open(state.clone(), UserId(u), DeviceId(1), None)
        .await
        .unwrap();
    state
        .write(vec![put(u, 6, message(1, u, 106))])
        .await
        .unwrap();
    let msg = Arc::new(SharedMsg::new(message(1, u, 106).to_frame(None)));
    assert!(
        feed.item(6, msg, None).is_empty(),
        "6 may not overtake 1..5"
    );
    // Nor does anything older go before the device says where it stands:
    // a `sync {since}` may follow.
    assert!(drain(&mut feed).await.is_empty(), "nothing before its sync");
    feed.sync(None).await.unwrap();
    let sent: Vec<u64> = drain(&mut feed).await.iter().map(|(s, _)| *s).collect();
    assert_eq!(sent, vec![1, 2, 3, 4, 5, 6], "the backlog first, in order");
    // Written is not confirmed: the stored cursor stays.
    assert_eq!(feed.confirmed(), 0);
    feed.save_cursor(true).await.unwrap();
    assert_eq!(state.cursor(UserId(u), DeviceId(1)).await.unwrap(), None);
    // The next session's sync gets all six again; a confirmation past the
    // head is held to the head.
    let mut next = Feed::open(state.clone(), UserId(u), DeviceId(1), None)
        .await
        .unwrap();
    next.sync(None).await.unwrap();
    assert_eq!(drain(&mut next).await.len(), 6);
    next.confirm(1_000);
    assert_eq!(next.confirmed(), 6);
    next.save_cursor(true).await.unwrap();
    assert_eq!(state.cursor(UserId(u), DeviceId(1)).await.unwrap(), Some(6));
}

/// Read fan-out: a large group's posts are stored once; each member's
/// inbox gets dense seqs that point at them (runs), between its ordinary
/// items, and a catch-up reads them back in order from the group stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_posts_take_a_seq_per_member_and_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let state: Arc<dyn StateStore> = Arc::new(RedbState::open(dir.path().join("s.redb")).unwrap());
    let hub = Hub::new();
    let (_reg, mut rx) = hub.register(UserId(2), DeviceId(1));
    let g = GroupId(77);
    let members = vec![UserId(1), UserId(2), UserId(3)];
    let post = |id: u64, prev: Option<u64>, to: Vec<UserId>| {
        Event::GroupPost(GroupPost {
            to,
            prev: prev.map(MessageId),
            message: MessageSent {
                msg_id: MessageId(id),
                conversation: ConversationId::group(g),
                from: UserId(1),
                from_device: DeviceId(9),
                to: Recipient::Group(g),
                client_msg_id: format!("g{id}"),
                body: Body::Text(format!("group {id}")),
                ts: 1,
                reply_to: None,
                forwarded: false,
            },
        })
    };
    let direct = |id| {
        Event::InboxItem(InboxItem {
            user: UserId(2),
            seq: 0,
            message: message(5, 2, id),
        })
    };
    // Posts 100, 101, a 1:1 item, posts 102, 103 (user 3 was not a member
    // for 103), then a replayed copy of 101 and post 104.
    let events = [
        post(100, None, members.clone()),
        post(101, Some(100), members.clone()),
        direct(500),
        post(102, Some(101), members.clone()),
        post(103, Some(102), vec![UserId(1), UserId(2)]),
        post(101, Some(100), members.clone()),
        post(104, Some(103), members.clone()),
    ];
    let records: Vec<Record> = events
        .iter()
        .enumerate()
        .map(|(o, e)| record(o as u64, e))
        .collect();
    let mut seq = Sequencer::new(state.clone(), hub.clone());
    let ops = seq.process(0, &records[..5]).await.unwrap();
    let posts = ops
        .iter()
        .filter(|o| matches!(o, StateOp::GroupPost { .. }))
        .count();
    let runs = ops
        .iter()
        .filter(|o| {
            matches!(
                o,
                StateOp::InboxRun {
                    user: UserId(2),
                    ..
                }
            )
        })
        .count();
    assert_eq!(posts, 4, "each post stored once, not per member");
    assert_eq!(runs, 2, "user 2: 100-101, the 1:1 item, then 102-103");
    let a = state.apply("deliver", 0, None, 5, ops).await.unwrap();
    seq.committed(a).await;
    let ops = seq.process(0, &records[5..]).await.unwrap();
    let a = state.apply("deliver", 0, Some(5), 7, ops).await.unwrap();
    seq.committed(a).await;

    assert_eq!(state.inbox_seq(UserId(2)).await.unwrap(), 6);
    assert_eq!(state.inbox_seq(UserId(3)).await.unwrap(), 4);
    let mut pushed = Vec::new();
    while let Some(Push::Item { seq, msg, .. }) = rx.try_recv() {
        pushed.push((seq, msg.frame.msg_id.0));
    }
    let expected = vec![(1, 100), (2, 101), (3, 500), (4, 102), (5, 103), (6, 104)];
    assert_eq!(pushed, expected);

    // A device catching up from scratch, and from inside a run, reads the
    // same seqs and messages back from the store.
    let mut feed = Feed::open(state.clone(), UserId(2), DeviceId(1), None)
        .await
        .unwrap();
    feed.sync(Some(0)).await.unwrap();
    let got = drain(&mut feed).await;
    let read: Vec<(u64, u64)> = got.iter().map(|(s, m)| (*s, m.frame.msg_id.0)).collect();
    assert_eq!(read, expected);
    assert!(got[0].1.render(Some(1)).contains(r#""text":"group 100""#));
    feed.sync(Some(4)).await.unwrap();
    let tail = drain(&mut feed).await;
    let read: Vec<(u64, u64)> = tail.iter().map(|(s, m)| (*s, m.frame.msg_id.0)).collect();
    assert_eq!(read, vec![(5, 103), (6, 104)]);
    // The sender's own device is left out of its replay from the cursor.
    let mut own = Feed::open(state.clone(), UserId(1), DeviceId(9), None)
        .await
        .unwrap();
    own.sync(None).await.unwrap();
    assert!(drain(&mut own).await.is_empty());
    assert!(!own.behind());
}
