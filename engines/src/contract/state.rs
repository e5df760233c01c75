use std::sync::Arc;
use std::time::Duration;

use parley_schemas::ids::{ConversationId, DeviceId, GroupId, MessageId, UserId};
use parley_schemas::wire::ReceiptStatus;

use super::unique;
use crate::state::{Account, Applied, Claim, InboxEntry, Marks, StateOp, StateStore};

/// Users no other run touches, so the suite can share a server.
fn fresh_user() -> UserId {
    UserId(rand::random::<u64>() >> 2)
}

/// Runs the state-store contract against `store`.
pub async fn state_contract<S: StateStore>(store: Arc<S>) {
    cursors(&*store).await;
    idempotency(&*store).await;
    marks(&*store).await;
    presence_and_seq(&*store).await;
    apply_is_atomic_and_idempotent(&*store).await;
    accounts_and_devices(&*store).await;
    inbox_items(&*store).await;
    inbox_runs_and_group_posts(&*store).await;
    derived_idempotency_and_last_seen(&*store).await;
    accounts_restore_from_the_log(&*store).await;
    groups(&*store).await;
    contacts_and_privacy(&*store).await;
}

/// Contact lists with their mirror (who watches whom), and privacy.
async fn contacts_and_privacy<S: StateStore>(s: &S) {
    use parley_schemas::wire::Audience;
    let (a, b, c) = (fresh_user(), fresh_user(), fresh_user());
    assert_eq!(s.contacts(a).await.unwrap(), vec![]);
    assert_eq!(s.privacy(a).await.unwrap(), Audience::Everyone);
    let set = |user, contact, added| StateOp::SetContact {
        user,
        contact,
        added,
    };
    s.write(vec![
        set(a, b, true),
        set(a, c, true),
        set(c, b, true),
        set(a, b, true),
    ])
    .await
    .unwrap();
    let mut ab = vec![b, c];
    ab.sort();
    assert_eq!(s.contacts(a).await.unwrap(), ab);
    let mut watchers_b = vec![a, c];
    watchers_b.sort();
    assert_eq!(s.watchers(b).await.unwrap(), watchers_b);
    s.write(vec![set(a, b, false), set(a, b, false)])
        .await
        .unwrap();
    assert_eq!(s.contacts(a).await.unwrap(), vec![c]);
    assert_eq!(s.watchers(b).await.unwrap(), vec![c]);
    for p in [
        Audience::Contacts,
        Audience::Nobody,
        Audience::Everyone,
        Audience::Nobody,
    ] {
        s.write(vec![StateOp::SetPrivacy {
            user: a,
            presence: p,
        }])
        .await
        .unwrap();
        assert_eq!(s.privacy(a).await.unwrap(), p);
    }
}

/// A group's state is stored whole, by its one writer (the router), and
/// the last write wins, within a job's batch too.
async fn groups<S: StateStore>(s: &S) {
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

/// What the accounts job writes when it replays the log into an empty
/// (wiped) store: the account comes back, and new ids stay above it.
async fn accounts_restore_from_the_log<S: StateStore>(s: &S) {
    let first = s
        .create_account(&unique("first"), "$argon2id$f", "F")
        .await
        .unwrap()
        .unwrap();
    let user = UserId(first.0 + 10);
    let name = unique("restored");
    let restore = |username: &str, display: &str| StateOp::RestoreAccount {
        user,
        username: username.to_owned(),
        password_hash: "$argon2id$r".into(),
        display_name: display.into(),
    };
    s.write(vec![restore(&name, "Restored")]).await.unwrap();
    let want = Account {
        user_id: user,
        username: name.clone(),
        password_hash: "$argon2id$r".into(),
        display_name: "Restored".into(),
        about: String::new(),
        avatar_media_id: None,
    };
    assert_eq!(s.account(user).await.unwrap(), Some(want.clone()));
    assert_eq!(s.account_by_name(&name).await.unwrap(), Some(want.clone()));
    // A replay again changes nothing, not even with other values.
    s.write(vec![restore(&unique("other"), "Other")])
        .await
        .unwrap();
    assert_eq!(s.account(user).await.unwrap(), Some(want));
    let next = s
        .create_account(&unique("next"), "$argon2id$n", "N")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next, UserId(user.0 + 1), "ids continue above restored ones");

    s.write(vec![StateOp::RestoreDevice {
        user,
        device: DeviceId(7),
    }])
    .await
    .unwrap();
    s.write(vec![StateOp::RestoreDevice {
        user,
        device: DeviceId(3),
    }])
    .await
    .unwrap();
    assert_eq!(s.new_device(user).await.unwrap(), DeviceId(8));

    // Profile changes apply in order; `None` keeps a field, an empty
    // avatar removes it; the user is found by name with the new profile.
    let set =
        |display: Option<&str>, about: Option<&str>, avatar: Option<&str>| StateOp::SetProfile {
            user,
            display_name: display.map(str::to_owned),
            about: about.map(str::to_owned),
            avatar_media_id: avatar.map(str::to_owned),
        };
    s.write(vec![
        set(Some("New name"), Some("hello there"), Some("m-1")),
        set(None, Some("busy"), None),
    ])
    .await
    .unwrap();
    let a = s.account(user).await.unwrap().unwrap();
    assert_eq!(
        (
            a.display_name.as_str(),
            a.about.as_str(),
            a.avatar_media_id.as_deref()
        ),
        ("New name", "busy", Some("m-1"))
    );
    assert_eq!(a.username, name, "the name and hash stay");
    assert_eq!(a.password_hash, "$argon2id$r");
    s.write(vec![set(None, None, Some(""))]).await.unwrap();
    let a = s.account_by_name(&name).await.unwrap().unwrap();
    assert_eq!(
        (a.display_name.as_str(), a.about.as_str()),
        ("New name", "busy")
    );
    assert_eq!(a.avatar_media_id, None, "an empty avatar removes it");
    // A change for a user the store does not know creates nothing.
    let ghost = UserId(user.0 + 1_000_000);
    s.write(vec![StateOp::SetProfile {
        user: ghost,
        display_name: Some("Ghost".into()),
        about: None,
        avatar_media_id: None,
    }])
    .await
    .unwrap();
    assert_eq!(s.account(ghost).await.unwrap(), None);
}

async fn accounts_and_devices<S: StateStore>(s: &S) {
    let (alice, bob) = (unique("alice"), unique("bob"));
    let a = s
        .create_account(&alice, "$argon2id$x", "Alice")
        .await
        .unwrap()
        .unwrap();
    let b = s
        .create_account(&bob, "$argon2id$y", "")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(a, b);
    assert_eq!(
        s.create_account(&alice, "other", "Eve").await.unwrap(),
        None,
        "name taken"
    );
    let acc = s.account_by_name(&alice).await.unwrap().unwrap();
    assert_eq!(
        (
            acc.user_id,
            acc.username.as_str(),
            acc.password_hash.as_str(),
            acc.display_name.as_str()
        ),
        (a, alice.as_str(), "$argon2id$x", "Alice")
    );
    assert_eq!(s.account(b).await.unwrap().unwrap().username, bob);
    assert_eq!(s.account_by_name(&unique("nobody")).await.unwrap(), None);
    assert_eq!(s.account(UserId(u64::MAX - 1)).await.unwrap(), None);
    let d1 = s.new_device(a).await.unwrap();
    let d2 = s.new_device(a).await.unwrap();
    assert_ne!(d1, d2, "each device id is new");
}

async fn inbox_items<S: StateStore>(s: &S) {
    let (u, peer) = (fresh_user(), fresh_user());
    let c = ConversationId::direct(u, peer);
    let put = |seq: u64, id: u64| StateOp::InboxPut {
        user: u,
        seq,
        conversation: c,
        msg_id: MessageId(id),
        item: bytes::Bytes::from(format!("item-{seq}")),
    };
    assert!(s.inbox_range(u, 0, 10).await.unwrap().is_empty());
    assert_eq!(s.inbox_head(u, c).await.unwrap(), None);
    s.write((1..=30).map(|i| put(i, 100 + i)).collect())
        .await
        .unwrap();
    assert_eq!(s.inbox_seq(u).await.unwrap(), 30);
    assert_eq!(s.inbox_head(u, c).await.unwrap(), Some(MessageId(130)));
    let page = s.inbox_range(u, 10, 5).await.unwrap();
    assert_eq!(
        page.iter().map(InboxEntry::seq).collect::<Vec<_>>(),
        vec![11, 12, 13, 14, 15]
    );
    assert!(matches!(&page[0], InboxEntry::Item { item, .. } if &item[..] == b"item-11"));
    assert_eq!(s.inbox_range(u, 28, 100).await.unwrap().len(), 2);
    assert!(s.inbox_range(u, 30, 100).await.unwrap().is_empty());
    assert!(
        s.inbox_range(peer, 0, 100).await.unwrap().is_empty(),
        "per user"
    );
    assert_eq!(s.inbox_head(peer, c).await.unwrap(), None);
}

/// Read fan-out: a large group's posts stored once, and members' inboxes
/// holding runs that point at them between ordinary items.
async fn inbox_runs_and_group_posts<S: StateStore>(s: &S) {
    let (u, peer) = (fresh_user(), fresh_user());
    let g = GroupId(rand::random::<u64>() >> 2);
    let gc = ConversationId::group(g);
    let post = |id: u64| StateOp::GroupPost {
        group: g,
        msg_id: MessageId(id),
        message: bytes::Bytes::from(format!("post-{id}")),
    };
    // Posts 200..=209; stored twice (two sequencers, or a replay): no copies.
    s.write((200..210).map(post).collect()).await.unwrap();
    s.write(vec![post(203)]).await.unwrap();
    let posts = s.group_posts(g, MessageId(203), 4).await.unwrap();
    assert_eq!(
        posts.iter().map(|(id, _)| id.0).collect::<Vec<_>>(),
        vec![203, 204, 205, 206]
    );
    assert_eq!(&posts[0].1[..], b"post-203");
    assert_eq!(s.group_posts(g, MessageId(209), 10).await.unwrap().len(), 1);
    assert!(s
        .group_posts(g, MessageId(210), 10)
        .await
        .unwrap()
        .is_empty());

    let item = |seq: u64| StateOp::InboxPut {
        user: u,
        seq,
        conversation: ConversationId::direct(u, peer),
        msg_id: MessageId(100 + seq),
        item: bytes::Bytes::from(format!("item-{seq}")),
    };
    let run = |seq: u64, count: u32, first: u64| StateOp::InboxRun {
        user: u,
        seq,
        count,
        group: g,
        first: MessageId(first),
        last: MessageId(first + u64::from(count) - 1),
    };
    // Seqs: 1 item, 2..=5 run (posts 200..=203), 6 item, 7..=12 run (204..=209).
    s.write(vec![item(1), run(2, 4, 200), item(6), run(7, 6, 204)])
        .await
        .unwrap();
    assert_eq!(s.inbox_seq(u).await.unwrap(), 12);
    assert_eq!(s.inbox_head(u, gc).await.unwrap(), Some(MessageId(209)));
    let runs = |after, limit| async move {
        s.inbox_range(u, after, limit)
            .await
            .unwrap()
            .into_iter()
            .map(|e| match e {
                InboxEntry::Item { seq, .. } => (seq, 1, 0),
                InboxEntry::Run {
                    seq,
                    count,
                    group,
                    first,
                } => {
                    assert_eq!(group, g);
                    (seq, count, first.0)
                }
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        runs(0, 10).await,
        vec![(1, 1, 0), (2, 4, 200), (6, 1, 0), (7, 6, 204)]
    );
    // From inside a run: the run covering seq 4 comes first.
    assert_eq!(runs(3, 2).await, vec![(2, 4, 200), (6, 1, 0)]);
    assert_eq!(runs(5, 10).await, vec![(6, 1, 0), (7, 6, 204)]);
    assert_eq!(runs(11, 10).await, vec![(7, 6, 204)]);
    assert!(runs(12, 10).await.is_empty());
    // A run rewritten by a replay is the same row.
    s.write(vec![run(7, 6, 204)]).await.unwrap();
    assert_eq!(runs(6, 10).await, vec![(7, 6, 204)]);
}

async fn derived_idempotency_and_last_seen<S: StateStore>(s: &S) {
    let u = fresh_user();
    let key = unique("c");
    let far = parley_schemas::ids::now_ms() + 600_000;
    let idem = |id: u64| StateOp::IdemPut {
        user: u,
        client_msg_id: key.clone(),
        msg_id: MessageId(id),
        expires_at: far,
    };
    s.write(vec![idem(5)]).await.unwrap();
    s.write(vec![idem(6)]).await.unwrap();
    assert_eq!(
        s.idem_get(u, &key).await.unwrap(),
        Some(MessageId(5)),
        "a live mapping wins"
    );
    assert_eq!(
        s.idem_claim(u, &key, MessageId(7), Duration::from_secs(60))
            .await
            .unwrap(),
        Claim::Existing(MessageId(5))
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

async fn cursors<S: StateStore>(s: &S) {
    let u = fresh_user();
    assert_eq!(s.cursor(u, DeviceId(1)).await.unwrap(), None);
    s.advance_cursor(u, DeviceId(1), 5).await.unwrap();
    s.advance_cursor(u, DeviceId(2), 9).await.unwrap();
    assert_eq!(
        s.cursor(u, DeviceId(1)).await.unwrap(),
        Some(5),
        "per device"
    );
    s.advance_cursor(u, DeviceId(1), 3).await.unwrap();
    assert_eq!(
        s.cursor(u, DeviceId(1)).await.unwrap(),
        Some(5),
        "never moves back"
    );
    s.advance_cursor(u, DeviceId(1), 6).await.unwrap();
    assert_eq!(s.cursor(u, DeviceId(1)).await.unwrap(), Some(6));
    assert_eq!(s.cursor(u, DeviceId(2)).await.unwrap(), Some(9));
}

async fn idempotency<S: StateStore>(s: &S) {
    let (u, other) = (fresh_user(), fresh_user());
    let ttl = Duration::from_secs(600);
    let key = unique("c");
    assert_eq!(s.idem_get(u, &key).await.unwrap(), None);
    assert_eq!(
        s.idem_claim(u, &key, MessageId(11), ttl).await.unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        s.idem_claim(u, &key, MessageId(12), ttl).await.unwrap(),
        Claim::Existing(MessageId(11))
    );
    assert_eq!(s.idem_get(u, &key).await.unwrap(), Some(MessageId(11)));
    assert_eq!(
        s.idem_claim(other, &key, MessageId(13), ttl).await.unwrap(),
        Claim::Claimed,
        "per user"
    );

    let many = s
        .idem_get_many(vec![
            (u, key.clone()),
            (other, unique("none")),
            (u, key.clone()),
        ])
        .await
        .unwrap();
    assert_eq!(
        many,
        vec![Some(MessageId(11)), None, Some(MessageId(11))],
        "in the order asked"
    );

    // Release only removes the mapping it names.
    s.idem_release(u, &key, MessageId(99)).await.unwrap();
    assert_eq!(s.idem_get(u, &key).await.unwrap(), Some(MessageId(11)));
    s.idem_release(u, &key, MessageId(11)).await.unwrap();
    assert_eq!(s.idem_get(u, &key).await.unwrap(), None);
    assert_eq!(
        s.idem_claim(u, &key, MessageId(14), ttl).await.unwrap(),
        Claim::Claimed
    );

    // Expiry: a mapping past its TTL is gone and can be claimed anew.
    let short = unique("short");
    s.idem_claim(u, &short, MessageId(20), Duration::from_millis(50))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(s.idem_get(u, &short).await.unwrap(), None, "expired");
    assert_eq!(
        s.idem_claim(u, &short, MessageId(21), ttl).await.unwrap(),
        Claim::Claimed
    );
    assert_eq!(s.idem_get(u, &short).await.unwrap(), Some(MessageId(21)));
}

fn mark(c: ConversationId, user: UserId, status: ReceiptStatus, up_to: u64) -> StateOp {
    StateOp::AdvanceMark {
        conversation: c,
        user,
        status,
        up_to: MessageId(up_to),
    }
}

async fn marks<S: StateStore>(s: &S) {
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

async fn presence_and_seq<S: StateStore>(s: &S) {
    let u = fresh_user();
    let job = unique("presence");
    assert_eq!(s.presence(u).await.unwrap(), None);
    assert_eq!(s.inbox_seq(u).await.unwrap(), 0);
    let set = |online, last_seen, at| StateOp::SetPresence {
        user: u,
        online,
        last_seen,
        at,
    };
    s.apply(&job, 0, None, 1, vec![set(true, Some(1_000), 1_000)])
        .await
        .unwrap();
    let p = s.presence(u).await.unwrap().unwrap();
    assert!(p.online);
    assert_eq!((p.last_seen, p.updated), (1_000, 1_000));
    // A background heartbeat: online, last seen unchanged.
    s.apply(&job, 0, Some(1), 2, vec![set(true, None, 2_000)])
        .await
        .unwrap();
    let p = s.presence(u).await.unwrap().unwrap();
    assert_eq!((p.online, p.last_seen, p.updated), (true, 1_000, 2_000));
    // Offline, with a stale last-seen that must not move it back.
    s.apply(&job, 0, Some(2), 3, vec![set(false, Some(500), 3_000)])
        .await
        .unwrap();
    let p = s.presence(u).await.unwrap().unwrap();
    assert_eq!((p.online, p.last_seen, p.updated), (false, 1_000, 3_000));

    s.apply(
        &job,
        0,
        Some(3),
        4,
        vec![StateOp::SetInboxSeq { user: u, seq: 7 }],
    )
    .await
    .unwrap();
    s.apply(
        &job,
        0,
        Some(4),
        5,
        vec![StateOp::SetInboxSeq { user: u, seq: 3 }],
    )
    .await
    .unwrap();
    assert_eq!(s.inbox_seq(u).await.unwrap(), 7, "seq never moves back");
}

async fn apply_is_atomic_and_idempotent<S: StateStore>(s: &S) {
    let job = unique("job");
    let (u, v) = (fresh_user(), fresh_user());
    assert_eq!(s.job_offset(&job, 0).await.unwrap(), None);
    let ops = vec![
        StateOp::SetInboxSeq { user: u, seq: 1 },
        StateOp::SetInboxSeq { user: v, seq: 1 },
    ];
    assert_eq!(
        s.apply(&job, 0, None, 10, ops.clone()).await.unwrap(),
        Applied::Written
    );
    assert_eq!(s.job_offset(&job, 0).await.unwrap(), Some(10));
    assert_eq!(
        (s.inbox_seq(u).await.unwrap(), s.inbox_seq(v).await.unwrap()),
        (1, 1)
    );

    // A replay of the same or an older batch writes nothing, nor does a
    // second runner that expects another offset, nor one that expects an
    // offset where none is stored (a wiped store).
    let replay = vec![StateOp::SetInboxSeq { user: u, seq: 5 }];
    assert_eq!(
        s.apply(&job, 0, None, 10, replay.clone()).await.unwrap(),
        Applied::Stale {
            committed: Some(10)
        }
    );
    assert_eq!(
        s.apply(&job, 0, Some(3), 4, replay.clone()).await.unwrap(),
        Applied::Stale {
            committed: Some(10)
        }
    );
    assert_eq!(
        s.apply(&job, 0, Some(12), 20, replay.clone())
            .await
            .unwrap(),
        Applied::Stale {
            committed: Some(10)
        }
    );
    assert_eq!(
        s.apply(&job, 2, Some(10), 11, replay).await.unwrap(),
        Applied::Stale { committed: None }
    );
    assert_eq!(s.job_offset(&job, 2).await.unwrap(), None);
    assert_eq!(
        s.inbox_seq(u).await.unwrap(),
        1,
        "a stale batch wrote nothing"
    );
    assert_eq!(s.job_offset(&job, 0).await.unwrap(), Some(10));

    // Offsets are per job and partition.
    assert_eq!(s.job_offset(&job, 1).await.unwrap(), None);
    assert_eq!(
        s.apply(&job, 1, None, 3, vec![]).await.unwrap(),
        Applied::Written
    );
    assert_eq!(s.job_offset(&job, 1).await.unwrap(), Some(3));
    assert_eq!(s.job_offset(&unique("other"), 0).await.unwrap(), None);
    assert_eq!(
        s.apply(
            &job,
            0,
            Some(10),
            11,
            vec![StateOp::SetInboxSeq { user: u, seq: 2 }]
        )
        .await
        .unwrap(),
        Applied::Written
    );
    assert_eq!(
        (
            s.job_offset(&job, 0).await.unwrap(),
            s.inbox_seq(u).await.unwrap()
        ),
        (Some(11), 2)
    );
}
