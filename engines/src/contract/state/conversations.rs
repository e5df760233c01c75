//! [`ConversationStore`](crate::state::ConversationStore): the idempotency
//! map, receipt marks and group state.

use parley_schemas::ids::{ConversationId, GroupId, MessageId, UserId};
use parley_schemas::wire::ReceiptStatus;

use super::fresh_user;
use crate::contract::unique;
use crate::state::{
    Applied, ConversationStore, FirstSend, Indexed, JobStore, Marks, PresenceStore, StateOp,
};

/// The live mapping of one key.
pub(super) async fn idem<S: ConversationStore>(
    s: &S,
    user: UserId,
    key: &str,
) -> Option<MessageId> {
    let found = s.idem_get_many(vec![(user, key.to_owned())]).await.unwrap();
    assert_eq!(found.len(), 1);
    found[0].map(|f| f.msg_id)
}

/// The conversation used in these mappings.
fn chat() -> ConversationId {
    ConversationId::direct(UserId(1), UserId(2))
}

pub(super) async fn idempotency<S: ConversationStore + JobStore>(s: &S) {
    let (u, other) = (fresh_user(), fresh_user());
    let far = parley_schemas::ids::now_ms() + 600_000;
    let put = |user: UserId, key: &str, id: u64, expires_at: u64| StateOp::IdemPut {
        user,
        client_msg_id: key.to_owned(),
        msg_id: MessageId(id),
        conversation: chat(),
        expires_at,
    };
    let key = unique("c");
    assert_eq!(idem(s, u, &key).await, None);
    s.write(vec![put(u, &key, 11, far)]).await.unwrap();
    assert_eq!(idem(s, u, &key).await, Some(MessageId(11)));
    assert_eq!(idem(s, other, &key).await, None, "per user");
    s.write(vec![put(other, &key, 13, far)]).await.unwrap();
    assert_eq!(idem(s, other, &key).await, Some(MessageId(13)));
    assert_eq!(idem(s, u, &key).await, Some(MessageId(11)), "per user");

    let many = s
        .idem_get_many(vec![
            (u, key.clone()),
            (other, unique("none")),
            (u, key.clone()),
        ])
        .await
        .unwrap();
    let first = Some(FirstSend {
        msg_id: MessageId(11),
        conversation: Some(chat()),
    });
    assert_eq!(
        many,
        vec![first, None, first],
        "in the order asked, with the conversation"
    );
    assert_eq!(s.idem_get_many(vec![]).await.unwrap(), vec![]);

    // Expiry: a mapping past its time is gone, and a new one takes its place.
    let short = unique("short");
    let past = parley_schemas::ids::now_ms().saturating_sub(1);
    s.write(vec![put(u, &short, 20, past)]).await.unwrap();
    assert_eq!(idem(s, u, &short).await, None, "expired");
    s.write(vec![put(u, &short, 21, far)]).await.unwrap();
    assert_eq!(idem(s, u, &short).await, Some(MessageId(21)));
}

/// The message index: first write wins, a deletion sticks (a replayed
/// index write does not undo it), entries are per conversation and expire.
pub(super) async fn message_index<S: ConversationStore + JobStore>(s: &S) {
    let (a, b) = (fresh_user(), fresh_user());
    let c = ConversationId::direct(a, b);
    let far = parley_schemas::ids::now_ms() + 600_000;
    let text = Indexed {
        from: a,
        text: true,
        deleted: false,
        media: None,
    };
    let index = |id: u64, indexed: Indexed, expires_at: u64| StateOp::IndexMessage {
        conversation: c,
        msg_id: MessageId(id),
        indexed,
        expires_at,
    };
    assert_eq!(s.indexed(c, MessageId(5)).await.unwrap(), None);
    s.write(vec![index(5, text, far)]).await.unwrap();
    assert_eq!(s.indexed(c, MessageId(5)).await.unwrap(), Some(text));
    let elsewhere = ConversationId::direct(a, fresh_user());
    assert_eq!(s.indexed(elsewhere, MessageId(5)).await.unwrap(), None);
    // Written again (a replay) with other values: the first stays.
    let media = Indexed {
        from: b,
        text: false,
        deleted: false,
        media: Some(parley_schemas::media::MediaId::random()),
    };
    s.write(vec![index(5, media, far)]).await.unwrap();
    assert_eq!(s.indexed(c, MessageId(5)).await.unwrap(), Some(text));
    s.write(vec![index(6, media, far)]).await.unwrap();
    assert_eq!(s.indexed(c, MessageId(6)).await.unwrap(), Some(media));

    let deleted = Indexed {
        deleted: true,
        ..text
    };
    let gone = StateOp::IndexDeleted {
        conversation: c,
        msg_id: MessageId(5),
    };
    s.write(vec![gone.clone()]).await.unwrap();
    assert_eq!(s.indexed(c, MessageId(5)).await.unwrap(), Some(deleted));
    s.write(vec![index(5, text, far), gone]).await.unwrap();
    assert_eq!(
        s.indexed(c, MessageId(5)).await.unwrap(),
        Some(deleted),
        "sticks"
    );
    // A deleted media message still names its media.
    s.write(vec![StateOp::IndexDeleted {
        conversation: c,
        msg_id: MessageId(6),
    }])
    .await
    .unwrap();
    assert_eq!(
        s.indexed(c, MessageId(6)).await.unwrap(),
        Some(Indexed {
            deleted: true,
            ..media
        })
    );
    // Deleting what is not indexed creates nothing.
    s.write(vec![StateOp::IndexDeleted {
        conversation: c,
        msg_id: MessageId(7),
    }])
    .await
    .unwrap();
    assert_eq!(s.indexed(c, MessageId(7)).await.unwrap(), None);
    // Past its time: gone.
    let past = parley_schemas::ids::now_ms().saturating_sub(1);
    s.write(vec![index(8, text, past)]).await.unwrap();
    assert_eq!(s.indexed(c, MessageId(8)).await.unwrap(), None);
    for bad in ["", "x:t", "1:q", "1:t:y"] {
        assert_eq!(Indexed::decode(bad), None, "{bad:?}");
    }
}

fn mark(c: ConversationId, user: UserId, status: ReceiptStatus, up_to: u64) -> StateOp {
    StateOp::AdvanceMark {
        conversation: c,
        user,
        status,
        up_to: MessageId(up_to),
    }
}

pub(super) async fn marks<S: ConversationStore + JobStore>(s: &S) {
    let (a, b) = (fresh_user(), fresh_user());
    let c = ConversationId::direct(a, b);
    let g = ConversationId::group(GroupId(a.0));
    let job = unique("marks");
    assert_eq!(s.marks(c, b).await.unwrap(), Marks::default());
    s.apply(
        &job,
        0,
        None,
        1,
        vec![mark(c, b, ReceiptStatus::Delivered, 100)],
    )
    .await
    .unwrap();
    assert_eq!(
        s.marks(c, b).await.unwrap(),
        Marks {
            delivered: Some(MessageId(100)),
            read: None
        }
    );
    s.apply(
        &job,
        0,
        Some(1),
        2,
        vec![mark(c, b, ReceiptStatus::Read, 150)],
    )
    .await
    .unwrap();
    assert_eq!(
        s.marks(c, b).await.unwrap(),
        Marks {
            delivered: Some(MessageId(150)),
            read: Some(MessageId(150))
        },
        "read implies delivered"
    );
    s.apply(
        &job,
        0,
        Some(2),
        3,
        vec![
            mark(c, b, ReceiptStatus::Delivered, 120),
            mark(c, b, ReceiptStatus::Read, 90),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        s.marks(c, b).await.unwrap(),
        Marks {
            delivered: Some(MessageId(150)),
            read: Some(MessageId(150))
        },
        "cumulative marks never move back"
    );
    assert_eq!(s.marks(c, a).await.unwrap(), Marks::default(), "per user");
    assert_eq!(
        s.marks(g, b).await.unwrap(),
        Marks::default(),
        "per conversation"
    );
}

pub(super) async fn derived_idempotency_and_last_seen<
    S: ConversationStore + PresenceStore + JobStore,
>(
    s: &S,
) {
    let u = fresh_user();
    let key = unique("c");
    let far = parley_schemas::ids::now_ms() + 600_000;
    let put = |id: u64| StateOp::IdemPut {
        user: u,
        client_msg_id: key.clone(),
        msg_id: MessageId(id),
        conversation: chat(),
        expires_at: far,
    };
    s.write(vec![put(5)]).await.unwrap();
    s.write(vec![put(6)]).await.unwrap();
    assert_eq!(
        idem(s, u, &key).await,
        Some(MessageId(5)),
        "a live mapping wins"
    );

    s.write(vec![StateOp::TouchLastSeen { user: u, at: 500 }])
        .await
        .unwrap();
    let p = s.presence(u).await.unwrap().unwrap();
    assert_eq!((p.online, p.last_seen), (false, 500));
    s.write(vec![StateOp::TouchLastSeen { user: u, at: 400 }])
        .await
        .unwrap();
    assert_eq!(
        s.presence(u).await.unwrap().unwrap().last_seen,
        500,
        "never moves back"
    );
}

/// A group's state is stored whole, by its one writer (the router), and
/// the last write wins, within a job's batch too.
pub(super) async fn groups<S: ConversationStore + JobStore>(s: &S) {
    use parley_schemas::group::{GroupChange, GroupState};
    let g = GroupId(rand::random::<u64>() >> 2);
    assert_eq!(s.group(g).await.unwrap(), None);
    let (a, b) = (fresh_user(), fresh_user());
    let mut state = GroupState::create(a, "Team", &[b], 5).unwrap();
    s.write(vec![StateOp::PutGroup {
        group: g,
        state: state.clone(),
    }])
    .await
    .unwrap();
    assert_eq!(s.group(g).await.unwrap().as_ref(), Some(&state));
    let first = state.clone();
    state.message(MessageId(9), b);
    state.apply(a, &GroupChange::Removed(b)).unwrap();
    let job = unique("groups");
    let ops = vec![
        StateOp::PutGroup {
            group: g,
            state: first,
        },
        StateOp::PutGroup {
            group: g,
            state: state.clone(),
        },
    ];
    assert_eq!(
        s.apply(&job, 0, None, 3, ops).await.unwrap(),
        Applied::Written
    );
    let back = s.group(g).await.unwrap().unwrap();
    assert_eq!(back, state);
    assert!(back.current(b).is_none() && back.entry(b).unwrap().sees(MessageId(9)));
}

/// The membership index: a user's current groups.
pub(super) async fn memberships<S: ConversationStore + JobStore>(s: &S) {
    let u = fresh_user();
    let (g1, g2) = (
        GroupId(rand::random::<u64>() >> 2),
        GroupId(rand::random::<u64>() >> 2),
    );
    let set = |group, member| StateOp::SetMembership {
        user: u,
        group,
        member,
    };
    assert_eq!(s.groups_of(u).await.unwrap(), vec![]);
    s.write(vec![set(g1, true), set(g2, true), set(g1, true)])
        .await
        .unwrap();
    let mut got = s.groups_of(u).await.unwrap();
    got.sort();
    let mut both = vec![g1, g2];
    both.sort();
    assert_eq!(got, both);
    s.write(vec![set(g1, false), set(g1, false)]).await.unwrap();
    assert_eq!(s.groups_of(u).await.unwrap(), vec![g2]);
}
