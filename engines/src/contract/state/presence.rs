//! [`PresenceStore`](crate::state::PresenceStore): presence and last seen,
//! contact lists with their mirror, privacy.

use super::{fresh_user, inbox_put};
use crate::contract::unique;
use crate::state::{InboxStore, JobStore, PresenceStore, StateOp};

pub(super) async fn presence_and_seq<S: PresenceStore + InboxStore + JobStore>(s: &S) {
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

    s.apply(&job, 0, Some(3), 4, vec![inbox_put(u, 7)])
        .await
        .unwrap();
    s.apply(&job, 0, Some(4), 5, vec![inbox_put(u, 3)])
        .await
        .unwrap();
    assert_eq!(s.inbox_seq(u).await.unwrap(), 7, "seq never moves back");
}

/// Contact lists with their mirror (who watches whom), and privacy.
pub(super) async fn contacts_and_privacy<S: PresenceStore + JobStore>(s: &S) {
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

/// Blocks: one way, idempotent, undone by unblocking.
pub(super) async fn blocks<S: PresenceStore + JobStore>(s: &S) {
    let (a, b, c) = (fresh_user(), fresh_user(), fresh_user());
    assert_eq!(s.blocked(a).await.unwrap(), vec![]);
    assert!(!s.blocks(a, b).await.unwrap());
    let set = |user, other, on| StateOp::SetBlock { user, other, on };
    s.write(vec![set(a, b, true), set(a, c, true), set(a, b, true)])
        .await
        .unwrap();
    let mut bc = vec![b, c];
    bc.sort();
    assert_eq!(s.blocked(a).await.unwrap(), bc);
    assert!(s.blocks(a, b).await.unwrap());
    assert!(!s.blocks(b, a).await.unwrap(), "one way");
    s.write(vec![set(a, b, false), set(a, b, false)])
        .await
        .unwrap();
    assert_eq!(s.blocked(a).await.unwrap(), vec![c]);
    assert!(!s.blocks(a, b).await.unwrap());
}
