//! Edits, reactions and deletions through the SDK: each goes through the
//! outbox like a message, and `messages()` shows every device the same
//! folded view (the edited text, the reactions, nothing hidden by this
//! user, no action listed as a message of its own).

mod common;

use common::*;
use parley_client::Event;
use parley_schemas::ids::ConversationId;
use parley_schemas::wire::{Body, Recipient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_reactions_and_hides_fold_into_the_stored_messages() {
    let dir = tempfile::tempdir().unwrap();
    let s = up(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let (alice, alice_id) = person(dir.path(), &s.url, "alice", "alice.db").await;
    let (bob, bob_id) = person(dir.path(), &s.url, "bob", "bob.db").await;
    let (mut on_alice, mut on_bob) = (alice.events(), bob.events());
    alice.send_text(Recipient::User(bob_id), "hello").unwrap();
    let sent = first(&mut on_alice, "the ack", |e| match e {
        Event::Acked(a) => Some(a),
        _ => None,
    })
    .await;
    let id = sent.msg_id;
    alice
        .edit(Recipient::User(bob_id), id, "hello, edited")
        .unwrap();
    bob.react(Recipient::User(alice_id), id, "👍").unwrap();
    // Each side has both actions once the other's arrived and its own
    // was acked (an acked action joins the sender's stored messages).
    arrived_and_acked(&mut on_bob, "the edit, and bob's ack", |b| {
        matches!(b, Body::Edit(_))
    })
    .await;
    arrived_and_acked(&mut on_alice, "the reaction, and alice's ack", |b| {
        matches!(b, Body::Reaction(_))
    })
    .await;
    let c = ConversationId::direct(alice_id, bob_id);
    let shown = |client: &parley_client::Client| {
        let ms = client.messages(&c).unwrap();
        assert_eq!(ms.len(), 1, "no action listed: {ms:?}");
        ms.into_iter().next().unwrap()
    };
    for m in [shown(&alice), shown(&bob)] {
        assert_eq!(m.msg_id, id);
        assert_eq!(m.body, Body::Text("hello, edited".into()));
        assert!(m.extra.edited);
        assert_eq!(m.extra.reactions.len(), 1);
        assert_eq!(
            (
                m.extra.reactions[0].emoji.as_str(),
                &m.extra.reactions[0].users
            ),
            ("👍", &vec![bob_id])
        );
    }
    // Hidden on Alice's devices only.
    alice.delete(Recipient::User(bob_id), id, true).unwrap();
    first(&mut on_alice, "the hide's ack", |e| {
        matches!(e, Event::Acked(_)).then_some(())
    })
    .await;
    assert!(alice.messages(&c).unwrap().is_empty());
    assert_eq!(shown(&bob).msg_id, id);
    s.down().await;
}

/// Waits, in whichever order they come, for a message whose body `is`
/// and for an ack.
async fn arrived_and_acked(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    what: &str,
    is: impl Fn(&Body) -> bool,
) {
    let (mut arrived, mut acked) = (false, false);
    first(events, what, |e| {
        match e {
            Event::Message(m) if is(&m.body) => arrived = true,
            Event::Acked(_) => acked = true,
            _ => {}
        }
        (arrived && acked).then_some(())
    })
    .await;
}
