//! The client against a real `parley up` on a free port: a sender killed
//! in the middle of sending and started again, messages composed while
//! the server is down, and two devices of one user in step.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

use common::*;
use parley_client::{Client, Event};
use parley_schemas::ids::ConversationId;
use parley_schemas::wire::{Body, MsgFrame, ReceiptStatus, Recipient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_killed_mid_send_and_restarted_delivers_each_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = up(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let (bob, bob_id) = person(dir.path(), &s.url, "bob", "bob.db").await;
    let mut events = bob.events();
    let (_, _alice_id) = person(dir.path(), &s.url, "alice", "alice-signup.db").await;
    let args = [
        dir.path().join("alice.db").to_str().unwrap().to_owned(),
        s.url.clone(),
        "alice".to_owned(),
        "a-long-password".to_owned(),
        bob_id.to_string(),
    ];
    let sender = move |count: &str| {
        Command::new(env!("CARGO_BIN_EXE_parley-client-send"))
            .args(&args)
            .arg(count)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    const N: usize = 300;
    let mut first = sender(&N.to_string());
    let mut lines = std::io::BufReader::new(first.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "composed");
    assert_eq!(lines.next().unwrap().unwrap(), "first ack");
    // Killed while it sends: some acked, some on the wire, some not sent.
    first.kill().unwrap();
    first.wait().unwrap();
    let second = tokio::task::spawn_blocking(move || sender("0").wait_with_output().unwrap());
    let out = tokio::time::timeout(WAIT, second).await.unwrap().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("sent"), "{said}");
    // The restart had something left to send (the kill was mid-way).
    assert!(said.contains("first ack"), "{said}");

    let got = texts(&mut events, N).await;
    let want: Vec<String> = (0..N).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want, "each once, in order");
    // Nothing more comes: no duplicate after the last.
    let c = ConversationId::direct(_alice_id, bob_id);
    assert_eq!(bob.messages(&c).unwrap().len(), N);
    s.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_composed_while_the_server_is_down_arrive_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let s = up(&data, "127.0.0.1:0".parse().unwrap()).await;
    let (alice, _) = person(dir.path(), &s.url, "alice", "alice.db").await;
    let (bob, bob_id) = person(dir.path(), &s.url, "bob", "bob.db").await;
    let mut events = bob.events();
    let (url, addr) = (s.url.clone(), s.addr);
    s.down().await;

    for t in ["one", "two", "three"] {
        alice.send_text(Recipient::User(bob_id), t).unwrap();
    }
    assert_eq!(alice.outbox().unwrap().len(), 3);
    let s = up(&data, addr).await;
    assert_eq!(s.url, url);
    assert_eq!(texts(&mut events, 3).await, ["one", "two", "three"]);
    // Acked too: the outbox empties (the acks may have come before bob's
    // messages, so the store is asked, not the event stream).
    let mut acked = alice.events();
    tokio::time::timeout(WAIT, async {
        while !alice.outbox().unwrap().is_empty() {
            let _ = acked.recv().await;
        }
    })
    .await
    .unwrap();
    s.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_of_one_user_stay_in_step() {
    let dir = tempfile::tempdir().unwrap();
    let s = up(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let (phone, alice_id) = person(dir.path(), &s.url, "alice", "phone.db").await;
    let (laptop, _) = person(dir.path(), &s.url, "alice", "laptop.db").await;
    let (bob, bob_id) = person(dir.path(), &s.url, "bob", "bob.db").await;
    let (mut on_phone, mut on_laptop) = (phone.events(), laptop.events());
    bob.send_text(Recipient::User(alice_id), "to both").unwrap();
    assert_eq!(texts(&mut on_phone, 1).await, ["to both"]);
    assert_eq!(texts(&mut on_laptop, 1).await, ["to both"]);
    // Sent from the phone: the laptop gets it as the user's own message.
    let mut phone_acks = phone.events();
    phone
        .send_text(Recipient::User(bob_id), "from the phone")
        .unwrap();
    assert_eq!(texts(&mut on_laptop, 1).await, ["from the phone"]);
    first(&mut phone_acks, "an ack", |e| {
        matches!(e, Event::Acked(_)).then_some(())
    })
    .await;
    let c = ConversationId::direct(alice_id, bob_id);
    let view = |client: &Client| -> BTreeMap<u64, String> {
        client
            .messages(&c)
            .unwrap()
            .into_iter()
            .map(|m| match m.body {
                Body::Text(t) => (m.msg_id.0, t),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    assert_eq!(view(&phone).len(), 2);
    assert_eq!(view(&phone), view(&laptop));
    s.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_give_the_sender_its_ticks() {
    let dir = tempfile::tempdir().unwrap();
    let s = up(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let (alice, _) = person(dir.path(), &s.url, "alice", "alice.db").await;
    let (bob, bob_id) = person(dir.path(), &s.url, "bob", "bob.db").await;
    let (mut ticks, mut on_bob) = (alice.events(), bob.events());
    alice.send_text(Recipient::User(bob_id), "tick me").unwrap();
    let msg = first(&mut on_bob, "the message", |e| match e {
        Event::Message(m) => Some(m),
        _ => None,
    })
    .await;
    // Stored by bob's client: delivered by itself; read once bob says so.
    assert_eq!(
        status(&mut ticks, ReceiptStatus::Delivered).await.msg_id,
        msg.msg_id
    );
    bob.mark_read(msg.conversation_id, msg.msg_id);
    assert_eq!(
        status(&mut ticks, ReceiptStatus::Read).await.msg_id,
        msg.msg_id
    );
    s.down().await;
}

/// The next `status` event of kind `want`.
async fn status(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    want: ReceiptStatus,
) -> parley_schemas::wire::StatusFrame {
    first(events, &format!("a {want:?} status"), |e| match e {
        Event::Status(s) if s.status == want => Some(s),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_media_and_history_through_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let s = up(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let (alice, _) = person(dir.path(), &s.url, "alice", "alice.db").await;
    let (bob, bob_id) = person(dir.path(), &s.url, "bob", "bob.db").await;
    let (carol, carol_id) = person(dir.path(), &s.url, "carol", "carol.db").await;
    assert_eq!(alice.user_by_name("carol").await.unwrap(), carol_id);
    assert_eq!(alice.username(bob_id).await.unwrap(), "bob");

    // A group of three.
    let (mut on_bob, mut on_carol) = (bob.events(), carol.events());
    let group = alice.create_group("trio", &[bob_id]).await.unwrap();
    alice.add_member(group, carol_id).await.unwrap();
    alice.send_text(Recipient::Group(group), "hi both").unwrap();
    assert_eq!(texts(&mut on_bob, 1).await, ["hi both"]);
    assert_eq!(texts(&mut on_carol, 1).await, ["hi both"]);
    alice.remove_member(group, carol_id).await.unwrap();

    // A file: uploaded, sent, downloaded by the recipient byte for byte.
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let up = alice
        .upload(bytes.clone(), "application/octet-stream")
        .await
        .unwrap();
    alice
        .send_media(Recipient::User(bob_id), &up.media_id, Some("the file"))
        .unwrap();
    let m = first(&mut on_bob, "the media message", |e| match e {
        Event::Message(MsgFrame {
            body: Body::Media(media),
            ..
        }) => Some(media),
        _ => None,
    })
    .await;
    assert_eq!(m.caption.as_deref(), Some("the file"));
    assert_eq!(bob.download(&m.media_id).await.unwrap(), bytes);
    let refused = carol.download(&m.media_id).await.unwrap_err();
    assert!(matches!(
        refused,
        parley_client::ClientError::Server {
            code: parley_schemas::wire::ErrorCode::NotFound,
            ..
        }
    ));

    // A new device fills its store from the history.
    let fresh = Client::open(dir.path().join("bob-new.db"), &s.url).unwrap();
    fresh.sign_in("bob", "a-long-password").await.unwrap();
    // The history writer batches (up to half a second): asked until there.
    tokio::time::timeout(WAIT, async {
        while fresh.conversations().await.unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the group and the chat with alice in the list");
    let direct = ConversationId::direct(alice.session().unwrap().unwrap().user_id, bob_id);
    let page = fresh.history(&direct, None, 50).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(fresh.messages(&direct).unwrap().len(), 1);
    s.down().await;
}
