//! The history contract for search: every term, any case, in the
//! conversations asked only, newest first and paged by `before`; no
//! encrypted body, action or deleted content is found; words an edit
//! added find the message it edited.

use parley_schemas::event::MessageSent;
use parley_schemas::ids::{ConversationId, UserId};
use parley_schemas::wire::{Body, Delete, Edit, Media};

use super::history::message;
use crate::history::{History, HistoryBatch};

fn fresh_user() -> UserId {
    UserId(rand::random::<u64>() >> 2)
}

fn terms(q: &str) -> Vec<String> {
    q.split_whitespace().map(str::to_lowercase).collect()
}

pub(super) async fn search<H: History>(h: &H) {
    let (me, bob, carol) = (fresh_user(), fresh_user(), fresh_user());
    let t = 1_740_000_000_000;
    let with_bob = ConversationId::direct(me, bob);
    let with_carol = ConversationId::direct(me, carol);
    let mut all: Vec<MessageSent> = (0..30)
        .map(|i| {
            message(
                me,
                bob,
                t + i * 1000,
                0,
                &format!("Lunch at noon, number {i}"),
            )
        })
        .collect();
    all.push(message(bob, me, t + 40_000, 0, "dinner in Zürich?"));
    all.push(message(carol, me, t + 41_000, 0, "LUNCH tomorrow at noon"));
    let mut photo = message(bob, me, t + 42_000, 0, "");
    photo.body = Body::Media(Media {
        media_id: "m".into(),
        caption: Some("lunch photo at noon".into()),
        ..Media::default()
    });
    all.push(photo.clone());
    let mut secret = message(bob, me, t + 43_000, 0, "");
    let mut e2e = serde_json::Map::new();
    e2e.insert("lunch at noon".into(), serde_json::Value::Bool(true));
    secret.body = Body::E2e(parley_schemas::wire::E2e(e2e));
    all.push(secret);
    let doomed = message(bob, me, t + 44_000, 0, "lunch at noon, delete me");
    all.push(doomed.clone());
    let mut delete = message(bob, me, t + 45_000, 0, "");
    delete.body = Body::Delete(Delete {
        msg_id: doomed.msg_id,
        for_me: false,
    });
    all.push(delete);
    h.write(&HistoryBatch {
        messages: all.clone(),
        ..Default::default()
    })
    .await
    .unwrap();

    let ids = |ms: &[MessageSent]| ms.iter().map(|m| m.msg_id).collect::<Vec<_>>();
    // Every term, any case; captions count; the deletion's content and
    // the encrypted body never do (ClickHouse blanks in the background).
    let first = super::eventually("deleted content gone from search", || async {
        let found = h
            .search(&[with_bob], &terms("NOON lunch"), None, 5)
            .await
            .unwrap();
        match found.iter().any(|m| m.msg_id == doomed.msg_id) {
            false => Ok(found),
            true => Err(format!("{:?}", ids(&found))),
        }
    })
    .await;
    let mut expected = vec![photo.msg_id];
    expected.extend(all[25..30].iter().rev().take(4).map(|m| m.msg_id));
    assert_eq!(ids(&first), expected);
    // Paged by `before`: the rest of the 30, then nothing.
    let next = h
        .search(
            &[with_bob],
            &terms("noon lunch"),
            Some(first[4].msg_id),
            200,
        )
        .await
        .unwrap();
    assert_eq!(next.len(), 26);
    assert!(
        next.windows(2).all(|w| w[0].msg_id > w[1].msg_id),
        "newest first"
    );
    let none = h
        .search(&[with_bob], &terms("lunch"), Some(all[0].msg_id), 10)
        .await
        .unwrap();
    assert!(none.is_empty());
    // Only the conversations asked; non-ASCII folds too.
    let both = h
        .search(&[with_bob, with_carol], &terms("tomorrow"), None, 10)
        .await
        .unwrap();
    assert_eq!(ids(&both), vec![all[31].msg_id]);
    assert!(h
        .search(&[with_bob], &terms("tomorrow"), None, 10)
        .await
        .unwrap()
        .is_empty());
    let z = h
        .search(&[with_bob], &terms("zürich"), None, 10)
        .await
        .unwrap();
    assert_eq!(ids(&z), vec![all[30].msg_id]);
    assert!(h
        .search(&[with_bob], &terms("lunch xyzzy"), None, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(h
        .search(&[], &terms("lunch"), None, 10)
        .await
        .unwrap()
        .is_empty());

    // Words an edit added find the message edited, as it was sent.
    let mut edit = message(me, bob, t + 50_000, 0, "");
    edit.body = Body::Edit(Edit {
        msg_id: all[3].msg_id,
        text: "Brunch by the RIVER".into(),
    });
    h.write(&HistoryBatch {
        messages: vec![edit],
        ..Default::default()
    })
    .await
    .unwrap();
    let river = h
        .search(&[with_bob], &terms("river brunch"), None, 10)
        .await
        .unwrap();
    assert_eq!(river, vec![all[3].clone()]);
    let older = h
        .search(&[with_bob], &terms("river"), Some(all[3].msg_id), 10)
        .await
        .unwrap();
    assert!(older.is_empty(), "paged by the message's id");
    let newer = h
        .search(&[with_bob], &terms("river"), Some(all[4].msg_id), 10)
        .await
        .unwrap();
    assert_eq!(ids(&newer), vec![all[3].msg_id]);
    assert!(h
        .search(&[with_carol], &terms("river"), None, 10)
        .await
        .unwrap()
        .is_empty());
    // Found by its old text and by its edit: once.
    let noon = h
        .search(&[with_bob], &terms("lunch"), Some(all[4].msg_id), 10)
        .await
        .unwrap();
    assert_eq!(noon.iter().filter(|m| m.msg_id == all[3].msg_id).count(), 1);
}
