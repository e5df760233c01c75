//! The feed's order rules on the embedded store: a backlog waits for the
//! device to say where it stands; live items never wait for a `sync`, even
//! when their push was missed.

use std::sync::Arc;

use bytes::Bytes;
use parley_engines::state::JobStore;
use parley_engines::{RedbState, StateOp};
use parley_schemas::codec;
use parley_schemas::event::{Event, InboxItem, MessageSent};
use parley_schemas::ids::{ConversationId, DeviceId, MessageId, UserId};
use parley_schemas::wire::{Body, Recipient, SharedMsg};

use super::feed::Feed;

const ANN: UserId = UserId(1);
const BOB: UserId = UserId(2);
const PHONE: DeviceId = DeviceId(1);

struct Inbox {
    _dir: tempfile::TempDir,
    state: Arc<RedbState>,
    stored: u64,
}

impl Inbox {
    fn new() -> Inbox {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(RedbState::open(dir.path().join("s.redb")).unwrap());
        Inbox {
            _dir: dir,
            state,
            stored: 0,
        }
    }

    fn message(seq: u64) -> MessageSent {
        MessageSent {
            msg_id: MessageId::from_parts(1_800_000_000_000 + seq, 1, 0),
            conversation: ConversationId::direct(ANN, BOB),
            from: ANN,
            from_device: DeviceId(9),
            to: Recipient::User(BOB),
            client_msg_id: format!("c{seq}"),
            body: Body::Text(format!("m{seq}")),
            ts: 0,
            reply_to: None,
            forwarded: false,
        }
    }

    /// Bob's next item, stored as the sequencer stores it; its seq.
    async fn store(&mut self) -> u64 {
        let seq = self.stored + 1;
        let message = Self::message(seq);
        let item = Event::InboxItem(InboxItem {
            user: BOB,
            seq,
            message: message.clone(),
        });
        let op = StateOp::InboxPut {
            user: BOB,
            seq,
            conversation: message.conversation,
            msg_id: message.msg_id,
            item: Bytes::from(codec::encode(&item)),
        };
        let prev = (self.stored > 0).then_some(self.stored);
        self.state
            .apply("deliver", 0, prev, seq, vec![op])
            .await
            .unwrap();
        self.stored = seq;
        seq
    }

    async fn feed(&self, backlog_to: Option<u64>) -> Feed {
        Feed::open(self.state.clone(), BOB, PHONE, backlog_to)
            .await
            .unwrap()
    }
}

fn live(seq: u64) -> Arc<SharedMsg> {
    Arc::new(SharedMsg::new(Inbox::message(seq).to_frame(None)))
}

/// What the socket sends now: pages while it is behind.
async fn drain(feed: &mut Feed) -> Vec<u64> {
    let mut sent = Vec::new();
    while feed.behind() {
        sent.extend(feed.page().await.unwrap().into_iter().map(|(s, _)| s));
    }
    sent
}

#[tokio::test]
async fn a_missed_push_is_read_from_the_store_without_a_sync() {
    let mut inbox = Inbox::new();
    let mut feed = inbox.feed(Some(0)).await;
    // Item 1 is stored but its push never comes (the registry did not
    // show the socket yet); item 2's does.
    inbox.store().await;
    let two = inbox.store().await;
    assert!(feed.item(two, live(two), None).is_empty(), "not before 1");
    assert_eq!(drain(&mut feed).await, vec![1, 2]);
    // From then on, live items go straight out.
    let three = inbox.store().await;
    let sent = feed.item(three, live(three), None);
    assert_eq!(sent.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![3]);
}

#[tokio::test]
async fn items_stored_after_the_accept_but_before_the_feed_opened_go_out() {
    let mut inbox = Inbox::new();
    inbox.store().await; // confirmed below
    let accepted_at = inbox.stored;
    let state = inbox.state.clone();
    parley_engines::state::InboxStore::advance_cursor(&*state, BOB, PHONE, 1)
        .await
        .unwrap();
    // Sent once the client saw its socket accepted, stored before the feed
    // read the inbox: live to the client, though no push will come.
    inbox.store().await;
    let mut feed = inbox.feed(Some(accepted_at)).await;
    assert_eq!(drain(&mut feed).await, vec![2]);
}

#[tokio::test]
async fn a_backlog_and_live_items_behind_it_wait_for_the_device() {
    let mut inbox = Inbox::new();
    inbox.store().await;
    inbox.store().await;
    let mut feed = inbox.feed(Some(2)).await;
    let three = inbox.store().await;
    assert!(feed.item(three, live(three), None).is_empty());
    assert!(drain(&mut feed).await.is_empty(), "nothing before a sync");
    // `sync {since: 1}`: only what follows it.
    feed.sync(Some(1)).await.unwrap();
    assert_eq!(drain(&mut feed).await, vec![2, 3]);
}
