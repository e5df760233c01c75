//! The history contract for actions on messages: pages skip them,
//! [`History::actions`] finds them by target, a deletion for everyone
//! blanks the content of its message and of the message's edits (which
//! stay, as events for analysts), and
//! [`History::messages`] finds quoted messages.

use parley_schemas::event::MessageSent;
use parley_schemas::ids::{ConversationId, MessageId, UserId};
use parley_schemas::wire::{Body, Delete, Edit, Reaction};

use super::history::message;
use crate::history::{History, HistoryBatch};

fn fresh_user() -> UserId {
    UserId(rand::random::<u64>() >> 2)
}

fn act(on: &MessageSent, from: UserId, seq: u16, body: Body) -> MessageSent {
    let ts = on.ts + 10 + u64::from(seq);
    MessageSent {
        msg_id: MessageId::from_parts(ts, 1, seq),
        from,
        client_msg_id: format!("a-{ts}-{seq}"),
        body,
        ts,
        ..on.clone()
    }
}

pub(super) async fn actions_on_messages<H: History>(h: &H) {
    let (me, bob) = (fresh_user(), fresh_user());
    let c = ConversationId::direct(me, bob);
    let t = 1_730_000_000_000;
    let first = message(me, bob, t, 0, "first");
    let second = message(bob, me, t + 1, 0, "second, to be deleted");
    let edit = act(
        &first,
        me,
        1,
        Body::Edit(Edit {
            msg_id: first.msg_id,
            text: "first, edited".into(),
        }),
    );
    let reaction = act(
        &first,
        bob,
        2,
        Body::Reaction(Reaction {
            msg_id: first.msg_id,
            emoji: "👍".into(),
        }),
    );
    let hide = act(
        &first,
        bob,
        3,
        Body::Delete(Delete {
            msg_id: first.msg_id,
            for_me: true,
        }),
    );
    let edit_second = act(
        &second,
        bob,
        4,
        Body::Edit(Edit {
            msg_id: second.msg_id,
            text: "SECRET-EDIT".into(),
        }),
    );
    let delete = act(
        &second,
        bob,
        5,
        Body::Delete(Delete {
            msg_id: second.msg_id,
            for_me: false,
        }),
    );
    let mut reply = message(me, bob, t + 100, 0, "a reply");
    reply.reply_to = Some(first.msg_id);
    // The deletion comes in a later batch than what it deletes, as it may.
    let one = HistoryBatch {
        messages: vec![
            first.clone(),
            second.clone(),
            edit.clone(),
            reaction.clone(),
            hide.clone(),
            edit_second.clone(),
        ],
        ..Default::default()
    };
    h.write(&one).await.unwrap();
    let two = HistoryBatch {
        messages: vec![delete.clone(), reply.clone()],
        ..Default::default()
    };
    h.write(&two).await.unwrap();
    h.write(&two).await.unwrap();

    let page = h.page(c, None, 10).await.unwrap();
    let ids: Vec<MessageId> = page.iter().map(|m| m.msg_id).collect();
    assert_eq!(
        ids,
        vec![reply.msg_id, second.msg_id, first.msg_id],
        "no actions in pages"
    );
    assert_eq!(page[0].reply_to, Some(first.msg_id));
    assert_eq!(
        page[2].body, first.body,
        "the original stays; scrollback folds edits in"
    );

    let on_first = h.actions(c, &[first.msg_id]).await.unwrap();
    assert_eq!(on_first, vec![edit.clone(), reaction, hide], "oldest first");
    let on_both = h.actions(c, &[second.msg_id, first.msg_id]).await.unwrap();
    assert_eq!(on_both.len(), 5, "{on_both:?}");
    assert!(h.actions(c, &[]).await.unwrap().is_empty());
    let elsewhere = ConversationId::direct(me, fresh_user());
    assert!(h
        .actions(elsewhere, &[first.msg_id])
        .await
        .unwrap()
        .is_empty());

    // The deleted message keeps its place, its content and its edits'
    // texts gone (ClickHouse does it in the background).
    let on_second = super::eventually("blanked", || async {
        let page = h.page(c, None, 10).await.unwrap();
        let text_gone = page[1].body == Body::Text(String::new());
        let on_second = h.actions(c, &[second.msg_id]).await.unwrap();
        let edits_gone = !on_second
            .iter()
            .any(|a| matches!(&a.body, Body::Edit(e) if !e.text.is_empty()));
        match text_gone && edits_gone {
            true => Ok(on_second),
            false => Err(format!("{page:?} {on_second:?}")),
        }
    })
    .await;
    assert!(on_second.contains(&delete), "the deletion itself stays");

    let quoted = h.messages(c, &[first.msg_id, MessageId(1)]).await.unwrap();
    assert_eq!(quoted, vec![first.clone()]);
    assert!(h.messages(c, &[]).await.unwrap().is_empty());

    // The list's last message is content, never an action; unread counts
    // count content only (bob's second message).
    let list = h.conversations(me, 10).await.unwrap();
    let entry = list.iter().find(|s| s.conversation == c).unwrap();
    assert_eq!(entry.last.msg_id, reply.msg_id);
    assert_eq!(entry.unread, 1, "{list:?}");
}
