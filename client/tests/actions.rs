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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_and_forwards_keep_their_marks_through_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let s = up(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let (bob, bob_id) = person(dir.path(), &s.url, "bob", "bob.db").await;
    let (carol, carol_id) = person(dir.path(), &s.url, "carol", "carol.db").await;
    // Alice is offline at first: signed in, no socket running.
    let alice = parley_client::Client::open(dir.path().join("alice.db"), &s.url).unwrap();
    alice.sign_up("alice", "a-long-password").await.unwrap();
    let alice_id = alice
        .sign_in("alice", "a-long-password")
        .await
        .unwrap()
        .user_id;
    let (mut on_bob, mut on_carol) = (bob.events(), carol.events());
    bob.send_text(Recipient::User(alice_id), "which train?")
        .unwrap();
    let asked = first(&mut on_bob, "bob's ack", |e| match e {
        Event::Acked(a) => Some(a),
        _ => None,
    })
    .await;

    let reply = alice
        .reply(Recipient::User(bob_id), asked.msg_id, "the 8:15")
        .unwrap();
    // The outbox keeps what the reply answers, across a restart.
    drop(alice);
    let alice = parley_client::Client::open(dir.path().join("alice.db"), &s.url).unwrap();
    let waiting = alice.outbox().unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(
        (waiting[0].client_msg_id.as_str(), waiting[0].reply_to),
        (reply.as_str(), Some(asked.msg_id))
    );
    let mut on_alice = alice.events();
    let runner = alice.clone();
    tokio::spawn(async move { runner.run().await });
    let answer = first(&mut on_bob, "alice's reply", |e| match e {
        Event::Message(m) if m.body == Body::Text("the 8:15".into()) => Some(m),
        _ => None,
    })
    .await;
    assert_eq!(answer.extra.reply_to, Some(asked.msg_id));
    let question = first(&mut on_alice, "bob's question", |e| match e {
        Event::Message(m) if m.msg_id == asked.msg_id => Some(m),
        _ => None,
    })
    .await;
    // Alice's stored copy of her reply (stored at its ack) quotes it.
    if alice.outbox().unwrap().is_empty() {
        // Acked before the question arrived: nothing to wait for.
    } else {
        first(&mut on_alice, "the reply's ack", |e| {
            matches!(e, Event::Acked(_)).then_some(())
        })
        .await;
    }
    let c = ConversationId::direct(alice_id, bob_id);
    let shown = alice.messages(&c).unwrap();
    let mine = shown.iter().find(|m| m.msg_id == answer.msg_id).unwrap();
    assert_eq!(mine.extra.reply_to, Some(asked.msg_id));
    assert_eq!(mine.extra.quote.as_ref().unwrap().text, "which train?");

    // Forwarded to Carol: marked, from Alice, the content as it was.
    let sent = alice
        .forward(&question, &[Recipient::User(carol_id)])
        .unwrap();
    assert_eq!(sent.len(), 1);
    let fwd = first(&mut on_carol, "the forward", |e| match e {
        Event::Message(m) => Some(m),
        _ => None,
    })
    .await;
    assert!(fwd.extra.forwarded);
    assert_eq!(fwd.from, alice_id);
    assert_eq!(fwd.body, Body::Text("which train?".into()));
    // An action is not a message to forward.
    let mut action = question.clone();
    action.body = Body::Reaction(parley_schemas::wire::Reaction {
        msg_id: question.msg_id,
        emoji: "👍".into(),
    });
    assert!(alice
        .forward(&action, &[Recipient::User(carol_id)])
        .is_err());
    s.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_refuses_the_blocked_users_sends_until_lifted() {
    let dir = tempfile::tempdir().unwrap();
    let s = up(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let (alice, alice_id) = person(dir.path(), &s.url, "alice", "alice.db").await;
    let (bob, bob_id) = person(dir.path(), &s.url, "bob", "bob.db").await;
    let (mut on_alice, mut on_bob) = (alice.events(), bob.events());
    alice.block(bob_id, true).await.unwrap();
    assert_eq!(alice.blocked().await.unwrap(), vec![bob_id]);
    let refused = bob.send_text(Recipient::User(alice_id), "hello?").unwrap();
    let (id, code) = first(&mut on_bob, "the refusal", |e| match e {
        Event::Refused {
            client_msg_id,
            error,
        } => Some((client_msg_id, error.code)),
        _ => None,
    })
    .await;
    assert_eq!(id, refused);
    assert_eq!(code, parley_schemas::wire::ErrorCode::Forbidden);
    assert!(
        bob.outbox().unwrap().is_empty(),
        "out of the outbox for good"
    );

    alice.block(bob_id, false).await.unwrap();
    assert!(alice.blocked().await.unwrap().is_empty());
    bob.send_text(Recipient::User(alice_id), "hello again")
        .unwrap();
    assert_eq!(texts(&mut on_alice, 1).await, ["hello again"]);
    s.down().await;
}
