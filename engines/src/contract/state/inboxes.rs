//! [`InboxStore`](crate::state::InboxStore): items and runs, reads that
//! cost the backlog, device cursors.

use parley_schemas::ids::{ConversationId, DeviceId, GroupId, MessageId};

use super::fresh_user;
use crate::state::{InboxEntry, InboxStore, JobStore, StateOp};

pub(super) async fn cursors<S: InboxStore>(s: &S) {
    let u = fresh_user();
    assert_eq!(s.cursor(u, DeviceId(1)).await.unwrap(), None);
    s.advance_cursor(u, DeviceId(1), 5).await.unwrap();
    s.advance_cursor(u, DeviceId(2), 9).await.unwrap();
    assert_eq!(
        s.cursor(u, DeviceId(1)).await.unwrap(),
        Some(5),
        "per device"
    );
    s.advance_cursor(u, DeviceId(1), 3).await.unwrap();
    assert_eq!(
        s.cursor(u, DeviceId(1)).await.unwrap(),
        Some(5),
        "never moves back"
    );
    s.advance_cursor(u, DeviceId(1), 6).await.unwrap();
    assert_eq!(s.cursor(u, DeviceId(1)).await.unwrap(), Some(6));
    assert_eq!(s.cursor(u, DeviceId(2)).await.unwrap(), Some(9));
}

pub(super) async fn inbox_items<S: InboxStore + JobStore>(s: &S) {
    let (u, peer) = (fresh_user(), fresh_user());
    let c = ConversationId::direct(u, peer);
    let put = |seq: u64, id: u64| StateOp::InboxPut {
        user: u,
        seq,
        conversation: c,
        msg_id: MessageId(id),
        item: bytes::Bytes::from(format!("item-{seq}")),
    };
    assert!(s.inbox_range(u, 0, 10).await.unwrap().is_empty());
    assert_eq!(s.inbox_head(u, c).await.unwrap(), None);
    s.write((1..=30).map(|i| put(i, 100 + i)).collect())
        .await
        .unwrap();
    assert_eq!(s.inbox_seq(u).await.unwrap(), 30);
    assert_eq!(s.inbox_head(u, c).await.unwrap(), Some(MessageId(130)));
    let page = s.inbox_range(u, 10, 5).await.unwrap();
    assert_eq!(
        page.iter().map(InboxEntry::seq).collect::<Vec<_>>(),
        vec![11, 12, 13, 14, 15]
    );
    assert!(matches!(&page[0], InboxEntry::Item { item, .. } if &item[..] == b"item-11"));
    assert_eq!(s.inbox_range(u, 28, 100).await.unwrap().len(), 2);
    assert!(s.inbox_range(u, 30, 100).await.unwrap().is_empty());
    assert!(
        s.inbox_range(peer, 0, 100).await.unwrap().is_empty(),
        "per user"
    );
    assert_eq!(s.inbox_head(peer, c).await.unwrap(), None);
}

/// Read fan-out: a large group's posts stored once, and members' inboxes
/// holding runs that point at them between ordinary items.
pub(super) async fn inbox_runs_and_group_posts<S: InboxStore + JobStore>(s: &S) {
    let (u, peer) = (fresh_user(), fresh_user());
    let g = GroupId(rand::random::<u64>() >> 2);
    let gc = ConversationId::group(g);
    let post = |id: u64| StateOp::GroupPost {
        group: g,
        msg_id: MessageId(id),
        message: bytes::Bytes::from(format!("post-{id}")),
    };
    // Posts 200..=209; stored twice (two sequencers, or a replay): no copies.
    s.write((200..210).map(post).collect()).await.unwrap();
    s.write(vec![post(203)]).await.unwrap();
    let posts = s.group_posts(g, MessageId(203), 4).await.unwrap();
    assert_eq!(
        posts.iter().map(|(id, _)| id.0).collect::<Vec<_>>(),
        vec![203, 204, 205, 206]
    );
    assert_eq!(&posts[0].1[..], b"post-203");
    assert_eq!(s.group_posts(g, MessageId(209), 10).await.unwrap().len(), 1);
    assert!(s
        .group_posts(g, MessageId(210), 10)
        .await
        .unwrap()
        .is_empty());

    let item = |seq: u64| StateOp::InboxPut {
        user: u,
        seq,
        conversation: ConversationId::direct(u, peer),
        msg_id: MessageId(100 + seq),
        item: bytes::Bytes::from(format!("item-{seq}")),
    };
    let run = |seq: u64, count: u32, first: u64| StateOp::InboxRun {
        user: u,
        seq,
        count,
        group: g,
        first: MessageId(first),
        last: MessageId(first + u64::from(count) - 1),
    };
    // Seqs: 1 item, 2..=5 run (posts 200..=203), 6 item, 7..=12 run (204..=209).
    s.write(vec![item(1), run(2, 4, 200), item(6), run(7, 6, 204)])
        .await
        .unwrap();
    assert_eq!(s.inbox_seq(u).await.unwrap(), 12);
    assert_eq!(s.inbox_head(u, gc).await.unwrap(), Some(MessageId(209)));
    let runs = |after, limit| async move {
        s.inbox_range(u, after, limit)
            .await
            .unwrap()
            .into_iter()
            .map(|e| match e {
                InboxEntry::Item { seq, .. } => (seq, 1, 0),
                InboxEntry::Run {
                    seq,
                    count,
                    group,
                    first,
                } => {
                    assert_eq!(group, g);
                    (seq, count, first.0)
                }
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        runs(0, 10).await,
        vec![(1, 1, 0), (2, 4, 200), (6, 1, 0), (7, 6, 204)]
    );
    // From inside a run: the run covering seq 4 comes first.
    assert_eq!(runs(3, 2).await, vec![(2, 4, 200), (6, 1, 0)]);
    assert_eq!(runs(5, 10).await, vec![(6, 1, 0), (7, 6, 204)]);
    assert_eq!(runs(11, 10).await, vec![(7, 6, 204)]);
    assert!(runs(12, 10).await.is_empty());
    // A run rewritten by a replay is the same row.
    s.write(vec![run(7, 6, 204)]).await.unwrap();
    assert_eq!(runs(6, 10).await, vec![(7, 6, 204)]);

    // Delivered everywhere through seq 3: item 1 goes, the run 2..=5
    // reaches past it and stays.
    assert_eq!(s.trim_inbox(u, 3).await.unwrap(), 1);
    assert_eq!(runs(0, 10).await, vec![(2, 4, 200), (6, 1, 0), (7, 6, 204)]);
    assert_eq!(s.trim_inbox(u, 6).await.unwrap(), 2);
    assert_eq!(runs(0, 10).await, vec![(7, 6, 204)]);
    assert_eq!(s.trim_inbox(u, 6).await.unwrap(), 0, "again: nothing");
    assert_eq!(
        s.inbox_seq(u).await.unwrap(),
        12,
        "seqs go on from where they were"
    );
    assert_eq!(s.trim_inbox(u, 12).await.unwrap(), 1);
    assert!(runs(0, 10).await.is_empty());
}

/// Items no device confirmed in time go, oldest first, per user; runs and
/// young items stay; `inbox_first` follows.
pub(super) async fn inbox_expiry<S: InboxStore + JobStore>(s: &S) {
    use parley_schemas::event::{Event, InboxItem, MessageSent};
    use parley_schemas::wire::{Body, Recipient};
    let (u, v, peer) = (fresh_user(), fresh_user(), fresh_user());
    let g = GroupId(rand::random::<u64>() >> 2);
    // Sent long ago (2024) or now-ish (2026): other parts' rows are far
    // younger than the cut.
    let (old, young) = (1_720_000_000_000u64, 1_790_000_000_000u64);
    let item = |user, seq: u64, ts: u64| {
        let message = MessageSent {
            msg_id: MessageId::from_parts(ts, 1, seq as u16),
            conversation: ConversationId::direct(user, peer),
            from: peer,
            from_device: DeviceId(1),
            to: Recipient::User(user),
            client_msg_id: format!("x{seq}"),
            body: Body::Text("hi".into()),
            ts,
            reply_to: None,
            forwarded: false,
        };
        StateOp::InboxPut {
            user,
            seq,
            conversation: message.conversation,
            msg_id: message.msg_id,
            item: bytes::Bytes::from(parley_schemas::codec::encode(&Event::InboxItem(
                InboxItem { user, seq, message },
            ))),
        }
    };
    let run = StateOp::InboxRun {
        user: u,
        seq: 3,
        count: 2,
        group: g,
        first: MessageId::from_parts(old, 1, 0),
        last: MessageId::from_parts(old, 1, 1),
    };
    s.write(vec![
        item(u, 1, old),
        item(u, 2, old + 1),
        run,
        item(u, 5, old + 2),
        item(u, 6, young),
        item(v, 1, young),
    ])
    .await
    .unwrap();
    assert_eq!(s.inbox_first(u).await.unwrap(), Some(1));
    assert_eq!(s.inbox_first(fresh_user()).await.unwrap(), None);
    let cut = old + 1_000;
    assert!(s.expire_inbox(cut).await.unwrap() >= 3);
    let left: Vec<u64> = s
        .inbox_range(u, 0, 10)
        .await
        .unwrap()
        .iter()
        .map(InboxEntry::seq)
        .collect();
    assert_eq!(left, vec![3, 6], "the run and the young item stay");
    assert_eq!(s.inbox_first(u).await.unwrap(), Some(3));
    assert_eq!(s.inbox_range(v, 0, 10).await.unwrap().len(), 1);
    assert_eq!(s.expire_inbox(cut).await.unwrap(), 0, "again: nothing");
}

/// A deletion for everyone blanks stored items and posts in place: the
/// seq, the head and every other row stay; nothing missing is created,
/// and a run is never taken for an item.
pub(super) async fn inbox_redaction<S: InboxStore + JobStore>(s: &S) {
    let (u, peer) = (fresh_user(), fresh_user());
    let c = ConversationId::direct(u, peer);
    let item = |seq: u64, text: &str| StateOp::InboxPut {
        user: u,
        seq,
        conversation: c,
        msg_id: MessageId(100 + seq),
        item: bytes::Bytes::from(format!("item-{seq}-{text}")),
    };
    let g = GroupId(rand::random::<u64>() >> 2);
    s.write(vec![
        item(1, "keep"),
        item(2, "secret"),
        item(3, "keep"),
        StateOp::InboxRun {
            user: u,
            seq: 4,
            count: 2,
            group: g,
            first: MessageId(300),
            last: MessageId(301),
        },
    ])
    .await
    .unwrap();
    let redact = |seq: u64| StateOp::InboxRedact {
        user: u,
        seq,
        item: bytes::Bytes::from(format!("item-{seq}-")),
    };
    // Twice (a replay), then a seq not stored and the run's seq.
    s.write(vec![redact(2), redact(2), redact(9), redact(4)])
        .await
        .unwrap();
    let rows = s.inbox_range(u, 0, 10).await.unwrap();
    let items: Vec<(u64, String)> = rows
        .iter()
        .filter_map(|e| match e {
            InboxEntry::Item { seq, item } => {
                Some((*seq, String::from_utf8_lossy(item).into_owned()))
            }
            InboxEntry::Run { .. } => None,
        })
        .collect();
    assert_eq!(
        items,
        vec![
            (1, "item-1-keep".to_owned()),
            (2, "item-2-".to_owned()),
            (3, "item-3-keep".to_owned()),
        ]
    );
    assert!(
        matches!(
            rows.last(),
            Some(InboxEntry::Run {
                seq: 4,
                count: 2,
                ..
            })
        ),
        "the run stays: {rows:?}"
    );
    assert_eq!(rows.len(), 4);
    assert_eq!(s.inbox_seq(u).await.unwrap(), 5);
    assert_eq!(s.inbox_head(u, c).await.unwrap(), Some(MessageId(103)));

    let post = |id: u64, text: &str| StateOp::GroupPost {
        group: g,
        msg_id: MessageId(id),
        message: bytes::Bytes::from(format!("post-{id}-{text}")),
    };
    s.write(vec![post(300, "secret"), post(301, "keep")])
        .await
        .unwrap();
    let blank = |id: u64| StateOp::GroupPostRedact {
        group: g,
        msg_id: MessageId(id),
        message: bytes::Bytes::from(format!("post-{id}-")),
    };
    s.write(vec![blank(300), blank(300), blank(302)])
        .await
        .unwrap();
    // Another inbox partition storing the same post late changes nothing.
    s.write(vec![post(300, "secret")]).await.unwrap();
    let posts = s.group_posts(g, MessageId(0), 10).await.unwrap();
    let posts: Vec<(u64, String)> = posts
        .into_iter()
        .map(|(id, m)| (id.0, String::from_utf8_lossy(&m).into_owned()))
        .collect();
    assert_eq!(
        posts,
        vec![
            (300, "post-300-".to_owned()),
            (301, "post-301-keep".to_owned())
        ]
    );
}
