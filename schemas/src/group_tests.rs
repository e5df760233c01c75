//! Group state's rules: membership, admins, spans and receipts.

use super::*;

const A: UserId = UserId(1);
const B: UserId = UserId(2);
const C: UserId = UserId(3);
const D: UserId = UserId(4);

fn id(n: u64) -> MessageId {
    MessageId(n)
}

fn group() -> GroupState {
    GroupState::create(A, "g", &[B, C, B, A], 1).unwrap()
}

#[test]
fn create_dedups_and_makes_the_creator_admin() {
    let g = group();
    let users: Vec<_> = g.members.iter().map(|m| (m.user, m.admin)).collect();
    assert_eq!(users, vec![(A, true), (B, false), (C, false)]);
    assert_eq!(
        GroupState::create(A, " ", &[], 1).unwrap_err().code,
        ErrorCode::BadRequest
    );
    let many: Vec<UserId> = (2..=MAX_MEMBERS as u64 + 1).map(UserId).collect();
    assert!(GroupState::create(A, "big", &many, 1).is_err());
    assert!(GroupState::create(A, "full", &many[..MAX_MEMBERS - 1], 1).is_ok());
}

#[test]
fn only_admins_add_and_remove_but_anyone_leaves() {
    let mut g = group();
    let no = g.apply(B, &GroupChange::Added(D)).unwrap_err();
    assert_eq!(no.code, ErrorCode::Forbidden);
    assert_eq!(
        g.apply(B, &GroupChange::Removed(C)).unwrap_err().code,
        ErrorCode::Forbidden
    );
    g.apply(A, &GroupChange::Added(D)).unwrap();
    assert_eq!(
        g.apply(A, &GroupChange::Added(D)).unwrap_err().code,
        ErrorCode::Conflict
    );
    g.apply(C, &GroupChange::Removed(C)).unwrap();
    assert_eq!(
        g.apply(A, &GroupChange::Removed(C)).unwrap_err().code,
        ErrorCode::NotFound
    );
    // The last admin leaving hands the group to the oldest member.
    g.apply(A, &GroupChange::Removed(A)).unwrap();
    assert!(g.current(B).unwrap().admin);
    g.apply(B, &GroupChange::Renamed("new".into())).unwrap();
    assert_eq!(g.name, "new");
    assert_eq!(
        g.apply(A, &GroupChange::Renamed("x".into()))
            .unwrap_err()
            .code,
        ErrorCode::Forbidden
    );
}

#[test]
fn former_members_are_bounded_oldest_leaver_first() {
    let mut g = group();
    let n = MAX_FORMER as u64 + 3;
    for i in 0..n {
        let u = UserId(100 + i);
        g.apply(A, &GroupChange::Added(u)).unwrap();
        assert!(g.message(id(10 + i), u).is_some());
        g.apply(A, &GroupChange::Removed(u)).unwrap();
    }
    let former = g.members.iter().filter(|m| !m.is_current()).count();
    assert_eq!(former, MAX_FORMER);
    for i in 0..3 {
        assert!(g.entry(UserId(100 + i)).is_none(), "left first: forgotten");
    }
    let last = g.entry(UserId(100 + n - 1)).expect("left last: kept");
    assert!(last.sees(id(10 + n - 1)) && !last.sees(id(10 + n)));
    assert_eq!(g.current_members().count(), 3, "members stay");
    // A forgotten one can join again, from now on.
    g.apply(A, &GroupChange::Added(UserId(100))).unwrap();
    assert!(!g.current(UserId(100)).unwrap().sees(id(10)));
}

#[test]
fn admins_promote_and_demote_and_a_group_keeps_one() {
    let (a, b, c) = (UserId(1), UserId(2), UserId(3));
    let mut g = GroupState::create(a, "g", &[b, c], 0).unwrap();
    let promote = |u, admin| GroupChange::Admin { user: u, admin };
    let code = |r: Result<Vec<Tick>, Refused>| r.unwrap_err().code;
    assert_eq!(code(g.apply(b, &promote(c, true))), ErrorCode::Forbidden);
    assert_eq!(
        code(g.apply(a, &promote(UserId(9), true))),
        ErrorCode::NotFound
    );
    assert_eq!(
        code(g.apply(a, &promote(a, false))),
        ErrorCode::Conflict,
        "the last admin"
    );
    g.apply(a, &promote(b, true)).unwrap();
    assert!(g.current(b).unwrap().admin);
    // Now b may demote a, and a no longer adds members.
    g.apply(b, &promote(a, false)).unwrap();
    assert!(!g.current(a).unwrap().admin);
    assert_eq!(
        code(g.apply(a, &GroupChange::Added(UserId(4)))),
        ErrorCode::Forbidden
    );
    assert_eq!(code(g.apply(b, &promote(b, false))), ErrorCode::Conflict);
}

#[test]
fn members_see_the_span_they_were_in() {
    let mut g = group();
    assert!(g.message(id(10), A).is_some());
    g.apply(A, &GroupChange::Removed(B)).unwrap();
    assert_eq!(g.message(id(11), B), None, "a removed member cannot send");
    assert!(g.message(id(12), A).is_some());
    g.apply(A, &GroupChange::Added(D)).unwrap();
    g.apply(A, &GroupChange::Added(B)).unwrap();
    assert!(g.message(id(13), C).is_some());
    let b = g.entry(B).unwrap();
    assert!(!b.sees(id(12)) && b.sees(id(13)), "rejoined after 12");
    let d = g.entry(D).unwrap();
    assert!(!d.sees(id(10)) && !d.sees(id(12)) && d.sees(id(13)));
    g.apply(C, &GroupChange::Removed(C)).unwrap();
    let c = g.entry(C).unwrap();
    assert!(c.sees(id(10)) && c.sees(id(13)) && !c.sees(id(14)));
}

#[test]
fn receipts_tick_each_sender_then_all() {
    let mut g = group();
    use ReceiptStatus::*;
    let tick = |to, n, status, all| Tick {
        to,
        msg_id: id(n),
        status,
        all,
    };
    assert_eq!(g.message(id(10), A), Some(vec![]));
    // Answering is reading what came before.
    assert_eq!(g.message(id(11), B), Some(vec![tick(A, 10, Read, false)]));
    assert_eq!(g.message(id(12), A), Some(vec![tick(B, 11, Read, false)]));
    // B holds its own 11 and A its 12: C's receipt completes 10 and 11.
    let t = g.receipt(C, id(11), Delivered);
    assert_eq!(
        t,
        vec![
            tick(A, 10, Delivered, false),
            tick(B, 11, Delivered, false),
            tick(A, 10, Delivered, true),
            tick(B, 11, Delivered, true)
        ]
    );
    assert!(g.receipt(C, id(11), Delivered).is_empty(), "nothing new");
    // A receipt past the head is cut to it.
    let t = g.receipt(B, id(99), Read);
    assert_eq!(t, vec![tick(A, 12, Read, false)]);
    // Read implies delivered.
    let t = g.receipt(C, id(12), Read);
    assert_eq!(
        t,
        vec![
            tick(A, 12, Read, false),
            tick(B, 11, Read, false),
            tick(A, 12, Delivered, true),
            tick(A, 12, Read, true),
            tick(B, 11, Read, true),
        ]
    );
}

#[test]
fn a_member_leaving_can_complete_the_aggregate() {
    let mut g = group();
    g.message(id(10), A);
    assert!(g.receipt(B, id(10), ReceiptStatus::Delivered)[1..].is_empty());
    let t = g.apply(C, &GroupChange::Removed(C)).unwrap();
    assert_eq!(
        t,
        vec![Tick {
            to: A,
            msg_id: id(10),
            status: ReceiptStatus::Delivered,
            all: true
        }]
    );
}

#[test]
fn state_round_trips_and_rejects_garbage() {
    let mut g = group();
    g.message(id(7), B);
    assert_eq!(GroupState::decode(&g.encode()).unwrap(), g);
    assert!(GroupState::decode(&[]).is_err());
    assert!(GroupState::decode(&[9, 1, 2]).is_err());
    assert!(GroupState::decode(&[1, 0xff]).is_err());
}

#[test]
fn states_of_versions_1_and_2_decode() {
    let mut g = group();
    g.message(id(7), B);
    let v3 = g.encode();
    assert_eq!(v3[0], 3);
    // Version 2 is version 3 without the (empty) removed list at the end,
    // version 1 is version 2 without the (empty) invite list.
    let mut v2 = v3[..v3.len() - 1].to_vec();
    v2[0] = 2;
    assert_eq!(GroupState::decode(&v2).unwrap(), g);
    let mut v1 = v2[..v2.len() - 1].to_vec();
    v1[0] = 1;
    assert_eq!(GroupState::decode(&v1).unwrap(), g);
}

#[test]
fn one_an_admin_removed_needs_an_admin_to_come_back() {
    let mut g = group();
    let e = |r: Result<Vec<Tick>, Refused>| r.unwrap_err().code;
    g.apply(A, &created("open", None, None)).unwrap();
    // B leaves on their own: an invite brings them back.
    g.apply(B, &GroupChange::Removed(B)).unwrap();
    g.apply(B, &joined("open", 1)).unwrap();
    // An admin removes B: no invite does.
    g.apply(A, &GroupChange::Removed(B)).unwrap();
    assert_eq!(e(g.apply(B, &joined("open", 2))), ErrorCode::Forbidden);
    assert_eq!(GroupState::decode(&g.encode()).unwrap(), g, "kept");
    // Until an admin adds them back; then invites work again after a leave.
    g.apply(A, &GroupChange::Added(B)).unwrap();
    g.apply(B, &GroupChange::Removed(B)).unwrap();
    g.apply(B, &joined("open", 3)).unwrap();
}

#[test]
fn invites_die_when_their_creator_stops_being_an_admin() {
    let mut g = group();
    let e = |r: Result<Vec<Tick>, Refused>| r.unwrap_err().code;
    g.apply(
        A,
        &GroupChange::Admin {
            user: B,
            admin: true,
        },
    )
    .unwrap();
    g.apply(A, &created("by-a", None, None)).unwrap();
    g.apply(B, &created("by-b", None, None)).unwrap();
    // B is demoted: B's invite stops working, A's does not.
    g.apply(
        A,
        &GroupChange::Admin {
            user: B,
            admin: false,
        },
    )
    .unwrap();
    assert_eq!(e(g.apply(D, &joined("by-b", 1))), ErrorCode::NotFound);
    g.apply(D, &joined("by-a", 1)).unwrap();
    // A leaves (an admin): A's invites go with them.
    g.apply(A, &GroupChange::Removed(A)).unwrap();
    assert_eq!(
        e(g.apply(UserId(5), &joined("by-a", 2))),
        ErrorCode::NotFound
    );
}

fn created(invite: &str, expires_at: Option<u64>, max_uses: Option<u32>) -> GroupChange {
    GroupChange::InviteCreated {
        invite: invite.into(),
        expires_at,
        max_uses,
    }
}

fn joined(invite: &str, at: u64) -> GroupChange {
    GroupChange::Joined {
        invite: invite.into(),
        at,
    }
}

#[test]
fn invites_admit_until_they_expire_are_used_up_or_revoked() {
    let mut g = group();
    let e = |r: Result<Vec<Tick>, Refused>| r.unwrap_err().code;
    assert_eq!(
        e(g.apply(B, &created("i1", None, None))),
        ErrorCode::Forbidden
    );
    g.apply(A, &created("once", None, Some(1))).unwrap();
    g.apply(A, &created("soon", Some(100), None)).unwrap();
    assert_eq!(
        e(g.apply(A, &created("once", None, None))),
        ErrorCode::Conflict
    );
    assert_eq!(e(g.apply(D, &joined("nope", 1))), ErrorCode::NotFound);
    assert_eq!(
        e(g.apply(B, &joined("once", 1))),
        ErrorCode::Conflict,
        "a member"
    );

    g.apply(D, &joined("once", 1)).unwrap();
    let d = g.current(D).unwrap();
    assert!(
        !d.admin && d.joined == g.head,
        "a normal member, from now on"
    );
    assert_eq!(
        e(g.apply(UserId(5), &joined("once", 2))),
        ErrorCode::Forbidden
    );
    assert_eq!(
        e(g.apply(UserId(5), &joined("soon", 100))),
        ErrorCode::Forbidden
    );
    g.apply(UserId(6), &joined("soon", 99)).unwrap();
    // Revoked: no one joins with it, and it cannot be revoked twice.
    g.apply(A, &created("r", None, None)).unwrap();
    assert_eq!(
        e(g.apply(B, &GroupChange::InviteRevoked { invite: "r".into() })),
        ErrorCode::Forbidden
    );
    g.apply(A, &GroupChange::InviteRevoked { invite: "r".into() })
        .unwrap();
    assert_eq!(e(g.apply(UserId(7), &joined("r", 1))), ErrorCode::NotFound);
    assert_eq!(
        e(g.apply(A, &GroupChange::InviteRevoked { invite: "r".into() })),
        ErrorCode::NotFound
    );
    assert_eq!(
        GroupState::decode(&g.encode()).unwrap(),
        g,
        "invites are stored"
    );
}
