//! End-to-end encryption through the SDK against a real `parley up`:
//! every device of both users gets the plaintext, a device made later
//! gets none of the old, the safety numbers agree, and no file the server
//! wrote (log segments, state store, history) holds the plaintext.

mod common;

use std::path::Path;

use common::*;
use parley_client::{Client, Event};
use parley_schemas::ids::UserId;
use parley_schemas::wire::{Body, MsgFrame, Recipient};

/// The next new message on `events`.
async fn next_message(events: &mut tokio::sync::broadcast::Receiver<Event>) -> MsgFrame {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Message(m) = events.recv().await.unwrap() {
                return m;
            }
        }
    })
    .await
    .expect("a message")
}

fn text(m: &MsgFrame) -> &str {
    match &m.body {
        Body::Text(t) => t,
        other => panic!("not decrypted: {other:?}"),
    }
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in walk(dir) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        if bytes.windows(needle.len()).any(|w| w == needle) {
            found.push(entry.display().to_string());
        }
    }
    found
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

async fn device(dir: &Path, url: &str, name: &str, file: &str) -> (Client, UserId) {
    let (c, id) = person(dir, url, name, file).await;
    c.enable_e2e().await.unwrap();
    (c, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_messages_reach_every_device_and_no_server_file_holds_the_plaintext() {
    let clients = tempfile::tempdir().unwrap();
    let server = tempfile::tempdir().unwrap();
    let s = up(server.path(), "127.0.0.1:0".parse().unwrap()).await;
    let (alice, _) = device(clients.path(), &s.url, "alice", "alice-phone.db").await;
    let (laptop, _) = device(clients.path(), &s.url, "alice", "alice-laptop.db").await;
    let (bob, bob_id) = device(clients.path(), &s.url, "bob", "bob.db").await;
    let alice_id = alice.session().unwrap().unwrap().user_id;
    let (mut at_bob, mut at_laptop, mut at_alice) = (bob.events(), laptop.events(), alice.events());

    const SECRET: &str = "the eagle lands at 0700, gate zq7x";
    alice
        .send_encrypted(Recipient::User(bob_id), SECRET)
        .await
        .unwrap();
    let got = next_message(&mut at_bob).await;
    assert_eq!(text(&got), SECRET);
    assert_eq!(got.from, alice_id);
    // Alice's other device has it too, and the sender keeps her plaintext.
    assert_eq!(text(&next_message(&mut at_laptop).await), SECRET);
    let reply = "confirmed: 0700, bring the blue folder";
    bob.send_encrypted(Recipient::User(alice_id), reply)
        .await
        .unwrap();
    assert_eq!(text(&next_message(&mut at_alice).await), reply);
    assert_eq!(text(&next_message(&mut at_laptop).await), reply);
    let ours = alice.messages(&got.conversation_id).unwrap();
    let texts: Vec<_> = ours.iter().map(text).collect();
    assert!(
        texts.contains(&SECRET) && texts.contains(&reply),
        "{texts:?}"
    );

    // Both sides compute the same safety number from the keys they hold.
    let a = alice.safety_number(bob_id).await.unwrap();
    let b = bob.safety_number(alice_id).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(a.split(' ').count(), 12, "{a}");

    // A device Bob adds now syncs the old message but cannot read it.
    let tablet = Client::open(clients.path().join("bob-tablet.db"), &s.url).unwrap();
    tablet.sign_in("bob", "a-long-password").await.unwrap();
    tablet.enable_e2e().await.unwrap();
    let mut at_tablet = tablet.events();
    let runner = tablet.clone();
    tokio::spawn(async move { runner.run().await });
    let old = loop {
        let m = next_message(&mut at_tablet).await;
        if m.msg_id == got.msg_id {
            break m;
        }
    };
    assert!(matches!(old.body, Body::E2e(_)), "{:?}", old.body);

    s.down().await;
    // The server's files: the e2e bodies are there (so the search reads
    // the right bytes), the plaintext is not.
    assert!(!files_containing(server.path(), b"parley.olm.v1").is_empty());
    for secret in [SECRET, reply] {
        let found = files_containing(server.path(), secret.as_bytes());
        assert!(found.is_empty(), "{secret:?} found in {found:?}");
    }
}
