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

/// A new device of an existing user, e2e on, listened to from before it
/// connects (so none of what it syncs is missed).
async fn added_device(
    dir: &Path,
    url: &str,
    name: &str,
    file: &str,
) -> tokio::sync::broadcast::Receiver<Event> {
    let c = Client::open(dir.join(file), url).unwrap();
    c.sign_in(name, "a-long-password").await.unwrap();
    c.enable_e2e().await.unwrap();
    let events = c.events();
    tokio::spawn(async move { c.run().await });
    events
}

/// `parley up` on `server`, Alice's phone and laptop and Bob's one
/// device, each with e2e on, on files in `clients`.
async fn alice_twice_and_bob(
    clients: &Path,
    server: &Path,
) -> (Server, Client, Client, Client, UserId) {
    let s = up(server, "127.0.0.1:0".parse().unwrap()).await;
    let (alice, _) = device(clients, &s.url, "alice", "alice-phone.db").await;
    let (laptop, _) = device(clients, &s.url, "alice", "alice-laptop.db").await;
    let (bob, bob_id) = device(clients, &s.url, "bob", "bob.db").await;
    (s, alice, laptop, bob, bob_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_messages_reach_every_device_and_no_server_file_holds_the_plaintext() {
    let (clients, server) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (s, alice, laptop, bob, bob_id) = alice_twice_and_bob(clients.path(), server.path()).await;
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
    let mut at_tablet = added_device(clients.path(), &s.url, "bob", "bob-tablet.db").await;
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

/// The e2e body of a raw frame (as the server holds it).
fn e2e(m: &MsgFrame) -> &serde_json::Map<String, serde_json::Value> {
    match &m.body {
        Body::E2e(e) => &e.0,
        other => panic!("not an e2e body: {other:?}"),
    }
}

/// The newest `n` messages of `cid` as the server holds them, oldest
/// first, once its history (which trails the log) has them all.
async fn raw_history(
    c: &Client,
    cid: &parley_schemas::ids::ConversationId,
    n: u32,
) -> Vec<MsgFrame> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut page = c.history(cid, None, n).await.unwrap();
        if page.len() == n as usize {
            page.reverse();
            return page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "history has {}",
            page.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_messages_are_encrypted_once_and_a_member_removed_gets_no_new_key() {
    use parley_schemas::ids::ConversationId;
    let (clients, server) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (s, alice, laptop, bob, bob_id) = alice_twice_and_bob(clients.path(), server.path()).await;
    let (carol, carol_id) = device(clients.path(), &s.url, "carol", "carol.db").await;
    let (mut at_bob, mut at_carol, mut at_laptop) = (bob.events(), carol.events(), laptop.events());
    let group = alice
        .create_group("plans", &[bob_id, carol_id])
        .await
        .unwrap();
    let to = Recipient::Group(group);
    let said = ["meet at the pier", "bring a torch", "tell no one"];
    for t in said {
        alice.send_encrypted(to, t).await.unwrap();
    }
    for events in [&mut at_bob, &mut at_carol, &mut at_laptop] {
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(text(&next_message(events).await).to_owned());
        }
        assert_eq!(got, said);
    }

    // On the server: one Megolm ciphertext per message, one session; its
    // key went to each of the three other devices once, in the first.
    let cid = ConversationId::group(group);
    let raw = raw_history(&bob, &cid, 3).await;
    let first = e2e(&raw[0]);
    assert_eq!(first["alg"], "parley.megolm.v1");
    assert!(first.get("ciphertexts").is_none(), "{first:?}");
    assert_eq!(first["keys"].as_object().unwrap().len(), 3, "{first:?}");
    for m in &raw[1..] {
        assert_eq!(e2e(m)["session_id"], first["session_id"]);
        assert!(e2e(m).get("keys").is_none(), "{:?}", e2e(m));
    }

    // Carol leaves the group: the next message is under a new session,
    // whose key goes to Bob and Alice's laptop only.
    alice.remove_member(group, carol_id).await.unwrap();
    let after = "the pier is off; the old mill instead";
    alice.send_encrypted(to, after).await.unwrap();
    assert_eq!(text(&next_message(&mut at_bob).await), after);
    assert_eq!(text(&next_message(&mut at_laptop).await), after);
    let newest = raw_history(&bob, &cid, 4).await;
    let last = e2e(&newest[3]);
    assert_ne!(last["session_id"], first["session_id"]);
    let keys: Vec<&String> = last["keys"].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys.iter().all(|k| !k.starts_with(&format!("{carol_id}:"))),
        "{keys:?}"
    );

    // A device Bob adds now syncs the group's messages and reads none.
    let mut at_tablet = added_device(clients.path(), &s.url, "bob", "bob-tablet.db").await;
    for _ in 0..4 {
        let m = next_message(&mut at_tablet).await;
        assert!(matches!(m.body, Body::E2e(_)), "{:?}", m.body);
    }
    s.down().await;
    for secret in said.iter().chain([&after]) {
        let found = files_containing(server.path(), secret.as_bytes());
        assert!(found.is_empty(), "{secret:?} found in {found:?}");
    }
}
