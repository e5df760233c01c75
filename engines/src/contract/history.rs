use std::sync::Arc;

use parley_schemas::event::{MessageSent, Receipt};
use parley_schemas::ids::{ConversationId, DeviceId, MessageId, UserId};
use parley_schemas::wire::{Body, Media, ReceiptStatus, Recipient};

use crate::history::{History, HistoryBatch, PresenceSession};

/// Users no other run touches, so the suite can share a server.
fn fresh_user() -> UserId {
    UserId(rand::random::<u64>() >> 2)
}

/// A message from `from` to `to` at `ts` (ids rise with `ts` and `seq`).
pub fn message(from: UserId, to: UserId, ts: u64, seq: u16, text: &str) -> MessageSent {
    MessageSent {
        msg_id: MessageId::from_parts(ts, 1, seq),
        conversation: ConversationId::direct(from, to),
        from,
        from_device: DeviceId(1),
        to: Recipient::User(to),
        client_msg_id: format!("c-{ts}-{seq}"),
        body: Body::Text(text.to_owned()),
        ts,
        reply_to: None,
        forwarded: false,
    }
}

/// Runs the history contract against `history`.
pub async fn history_contract<H: History>(history: Arc<H>) {
    pages_walk_a_conversation_once(&*history).await;
    writes_are_idempotent(&*history).await;
    conversation_list(&*history).await;
    sessions(&*history).await;
    expiry(&*history).await;
    super::history_actions::actions_on_messages(&*history).await;
    super::history_search::search(&*history).await;
}

/// `expire`: messages before the cut go, with list entries whose newest
/// message went; later ones stay. ClickHouse deletes in the background,
/// so the reads are retried for a while.
async fn expiry<H: History>(h: &H) {
    let (me, bob, carol) = (fresh_user(), fresh_user(), fresh_user());
    // Long before any other part's messages: the cut touches none of them.
    let (t0, t1) = (1_720_000_000_000, 1_720_000_100_000);
    let old = [
        message(bob, me, t0, 0, "old"),
        message(me, bob, t0 + 1, 0, "older reply"),
    ];
    let new = [
        message(carol, me, t1, 0, "new"),
        message(me, carol, t1 + 1, 0, "newer"),
    ];
    let batch = HistoryBatch {
        messages: old.iter().chain(&new).cloned().collect(),
        ..Default::default()
    };
    h.write(&batch).await.unwrap();
    assert_eq!(h.conversations(me, 10).await.unwrap().len(), 2);
    h.expire(t0 + 50_000).await.unwrap();
    let with_bob = ConversationId::direct(me, bob);
    let with_carol = ConversationId::direct(me, carol);
    super::eventually("expired", || async {
        let gone = h.page(with_bob, None, 10).await.unwrap().is_empty();
        let list = h.conversations(me, 10).await.unwrap();
        let listed: Vec<_> = list.iter().map(|s| s.conversation).collect();
        match gone && listed == vec![with_carol] {
            true => Ok(()),
            false => Err(format!("listed {listed:?}, bob's gone: {gone}")),
        }
    })
    .await;
    let kept = h.page(with_carol, None, 10).await.unwrap();
    assert_eq!(kept, vec![new[1].clone(), new[0].clone()]);
}

async fn pages_walk_a_conversation_once<H: History>(h: &H) {
    let (a, b, c) = (fresh_user(), fresh_user(), fresh_user());
    let t0 = 1_790_000_000_000;
    let mut ab = Vec::new();
    let mut batch = HistoryBatch::default();
    for i in 0..230u16 {
        let m = message(a, b, t0 + i as u64, i, &format!("ab {i}"));
        ab.push(m.clone());
        batch.messages.push(m);
        // Another conversation interleaved: it must not leak into pages.
        batch
            .messages
            .push(message(a, c, t0 + i as u64, 1000 + i, "ac"));
    }
    // A media message keeps its fields.
    let mut media = message(b, a, t0 + 500, 0, "");
    media.body = Body::Media(Media {
        media_id: "m1".into(),
        mime: Some("image/png".into()),
        caption: Some("look".into()),
        size: Some(123_456),
        width: Some(640),
        height: Some(480),
        thumbnail: Some(true),
    });
    ab.push(media.clone());
    batch.messages.push(media);
    // Written in two calls, out of order.
    let (first, second) = batch.messages.split_at(200);
    for part in [second, first] {
        let part = HistoryBatch {
            messages: part.to_vec(),
            ..Default::default()
        };
        h.write(&part).await.unwrap();
    }

    let cid = ConversationId::direct(a, b);
    let mut walked = Vec::new();
    let mut before = None;
    loop {
        let page = h.page(cid, before, 50).await.unwrap();
        assert!(page.len() <= 50);
        if page.is_empty() {
            break;
        }
        before = Some(page.last().unwrap().msg_id);
        walked.extend(page);
    }
    let mut expected = ab.clone();
    expected.reverse();
    assert_eq!(walked.len(), expected.len(), "every message once");
    assert_eq!(walked, expected, "newest first, exact content");

    // `before` is exclusive; a limit above the maximum is capped.
    let page = h.page(cid, Some(ab[10].msg_id), 3).await.unwrap();
    let ids: Vec<_> = page.iter().map(|m| m.msg_id).collect();
    assert_eq!(ids, vec![ab[9].msg_id, ab[8].msg_id, ab[7].msg_id]);
    assert_eq!(h.page(cid, None, 10_000).await.unwrap().len(), 200);
    assert!(h
        .page(cid, Some(ab[0].msg_id), 50)
        .await
        .unwrap()
        .is_empty());
    let nobody = ConversationId::direct(fresh_user(), fresh_user());
    assert!(h.page(nobody, None, 50).await.unwrap().is_empty());
}

async fn writes_are_idempotent<H: History>(h: &H) {
    let (a, b) = (fresh_user(), fresh_user());
    let t0 = 1_790_000_100_000;
    let batch = HistoryBatch {
        messages: (0..5u16)
            .map(|i| message(a, b, t0 + i as u64, i, "x"))
            .collect(),
        ..Default::default()
    };
    for _ in 0..3 {
        h.write(&batch).await.unwrap();
    }
    let page = h
        .page(ConversationId::direct(a, b), None, 50)
        .await
        .unwrap();
    assert_eq!(page.len(), 5, "a batch written three times reads once");
    let list = h.conversations(b, 10).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].unread, 5, "replays do not inflate unread counts");
}

async fn conversation_list<H: History>(h: &H) {
    let (me, bob, carol, dave) = (fresh_user(), fresh_user(), fresh_user(), fresh_user());
    let t0 = 1_790_000_200_000;
    let read = |up_to: MessageId, status| Receipt {
        conversation: ConversationId::direct(me, bob),
        by: me,
        device: DeviceId(1),
        up_to,
        status,
        ts: t0 + 100,
    };
    let with_bob = [
        message(bob, me, t0, 0, "hi"),
        message(me, bob, t0 + 1, 0, "hello"),
        message(bob, me, t0 + 2, 0, "how are you"),
        message(bob, me, t0 + 3, 0, "?"),
    ];
    let with_carol = [
        message(carol, me, t0 + 10, 0, "lunch?"),
        message(carol, me, t0 + 11, 0, "at noon"),
    ];
    let batch = HistoryBatch {
        messages: with_bob.iter().chain(&with_carol).cloned().collect(),
        ..Default::default()
    };
    h.write(&batch).await.unwrap();

    let list = h.conversations(me, 10).await.unwrap();
    let cids: Vec<_> = list.iter().map(|s| s.conversation).collect();
    assert_eq!(
        cids,
        vec![
            ConversationId::direct(me, carol),
            ConversationId::direct(me, bob)
        ],
        "newest activity first"
    );
    assert_eq!(list[0].last, with_carol[1]);
    assert_eq!(list[0].unread, 2);
    assert_eq!(list[1].last, with_bob[3]);
    assert_eq!(list[1].unread, 3, "my own message is never unread");

    // A read receipt up to "how are you" leaves one unread; a delivered
    // receipt changes nothing; an older read mark does not move it back.
    let marks = HistoryBatch {
        marks: vec![
            read(with_bob[2].msg_id, ReceiptStatus::Read),
            read(with_bob[3].msg_id, ReceiptStatus::Delivered),
            read(with_bob[0].msg_id, ReceiptStatus::Read),
        ],
        ..Default::default()
    };
    h.write(&marks).await.unwrap();
    let list = h.conversations(me, 10).await.unwrap();
    assert_eq!(list[1].conversation, ConversationId::direct(me, bob));
    assert_eq!(list[1].unread, 1);

    // New activity moves a conversation to the top; `limit` cuts the list.
    h.write(&HistoryBatch {
        messages: vec![message(me, bob, t0 + 20, 0, "sorry, busy")],
        ..Default::default()
    })
    .await
    .unwrap();
    let list = h.conversations(me, 1).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].conversation, ConversationId::direct(me, bob));
    assert_eq!(list[0].unread, 1);

    let bobs = h.conversations(bob, 10).await.unwrap();
    assert_eq!(bobs.len(), 1, "bob is not in the chat with carol");
    assert_eq!(bobs[0].unread, 2, "bob has not read my two messages");
    assert_eq!(bobs[0].last.body, Body::Text("sorry, busy".into()));
    assert!(h.conversations(dave, 10).await.unwrap().is_empty());
}

async fn sessions<H: History>(h: &H) {
    let (u, v, w) = (fresh_user(), fresh_user(), fresh_user());
    let s = |user, start, end| PresenceSession {
        user,
        start,
        end,
        active_beats: (end - start) / 5000,
    };
    // A session written as it grows keeps its largest end, even if an
    // older row arrives late.
    for batch in [
        vec![s(u, 1_000, 6_000), s(v, 2_000, 3_000)],
        vec![s(u, 1_000, 21_000)],
        vec![s(u, 1_000, 11_000), s(u, 50_000, 55_000)],
        vec![s(u, 50_000, 60_000)],
    ] {
        h.write(&HistoryBatch {
            sessions: batch,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let mut last = h.last_sessions(&[u, v, w]).await.unwrap();
    last.sort_by_key(|s| s.start);
    assert_eq!(last, vec![s(v, 2_000, 3_000), s(u, 50_000, 60_000)]);
}
