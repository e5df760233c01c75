//! Groups: the membership rules, and the state the router derives from a
//! group's events and messages.
//!
//! One piece of logic serves two places. The edge checks a change against
//! the stored state before appending it, so the caller gets a clear error;
//! the router applies changes in log order with the same rules, so a race
//! between two admins is decided by the log, the same way on every replay.
//!
//! Positions are msg_ids: within a conversation they rise in log order, so
//! "the newest message when X joined" splits the group's messages into
//! those X may see and those it may not. `None` is "before any message".

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::ids::{MessageId, UserId};
use crate::wire::{ErrorCode, ReceiptStatus};

/// The largest group (WhatsApp's limit too).
pub const MAX_MEMBERS: usize = 1024;
pub const MAX_NAME_CHARS: usize = 64;
/// Former members a group remembers, each to keep reading the span of
/// history it was in. Beyond it the one who left longest ago is forgotten
/// (and reads the group no more), so a group's state stays bounded however
/// many come and go.
pub const MAX_FORMER: usize = MAX_MEMBERS;
/// Messages of a group the router remembers (id and sender), to tell whose
/// messages a receipt covers. A receipt reaching further back still moves
/// the marks; only its `status` frames for the older messages are skipped.
pub const RECENT: usize = 1024;

/// A position in a group's messages: after the message with this id, or
/// before any message (`None`).
pub type Position = Option<MessageId>;

/// One user's membership. A user removed and added again keeps one entry,
/// for the latest span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user: UserId,
    pub admin: bool,
    /// Sees the messages after this position.
    pub joined: Position,
    /// Removed or left here: sees no message after it.
    pub left: Option<Position>,
    /// Cumulative receipt marks, as in a 1:1 chat.
    pub delivered: Position,
    pub read: Position,
}

impl Member {
    pub fn is_current(&self) -> bool {
        self.left.is_none()
    }

    /// Whether this member may see message `id`.
    pub fn sees(&self, id: MessageId) -> bool {
        Some(id) > self.joined && self.left.is_none_or(|l| Some(id) <= l)
    }

    fn mark(&self, status: ReceiptStatus) -> Position {
        match status {
            ReceiptStatus::Delivered => self.delivered,
            ReceiptStatus::Read => self.read,
        }
    }
}

/// A change to a group, as the log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupChange {
    Created {
        name: String,
        members: Vec<UserId>,
    },
    Added(UserId),
    /// By the user itself: leaving.
    Removed(UserId),
    Renamed(String),
    /// An admin makes a member an admin (`admin`) or no longer one.
    Admin {
        user: UserId,
        admin: bool,
    },
}

/// Why a change is refused, with the protocol's error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub code: ErrorCode,
    pub reason: String,
}

fn refused(code: ErrorCode, reason: impl Into<String>) -> Refused {
    Refused {
        code,
        reason: reason.into(),
    }
}

/// A `status` to send: `to`'s messages up to `msg_id` reached `status`,
/// for one member, or for every member (`all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    pub to: UserId,
    pub msg_id: MessageId,
    pub status: ReceiptStatus,
    pub all: bool,
}

/// Everything derived about one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    pub name: String,
    pub created_by: UserId,
    pub created_ts: u64,
    /// The newest message.
    pub head: Position,
    /// Every member there has been, in the order they joined.
    pub members: Vec<Member>,
    /// The newest [`RECENT`] messages: id and sender.
    pub recent: VecDeque<(MessageId, UserId)>,
    /// How far every current member has delivered / read.
    pub all_delivered: Position,
    pub all_read: Position,
}

pub fn validate_name(name: &str) -> Result<(), Refused> {
    let n = name.chars().count();
    if name.trim().is_empty() || n > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(refused(
            ErrorCode::BadRequest,
            format!("group name must be 1..{MAX_NAME_CHARS} characters, not blank, without control characters"),
        ));
    }
    Ok(())
}

impl GroupState {
    /// A new group: the creator is its admin; `members` may repeat or
    /// include the creator.
    pub fn create(
        by: UserId,
        name: &str,
        members: &[UserId],
        ts: u64,
    ) -> Result<GroupState, Refused> {
        validate_name(name)?;
        let mut g = GroupState {
            name: name.to_owned(),
            created_by: by,
            created_ts: ts,
            head: None,
            members: Vec::new(),
            recent: VecDeque::new(),
            all_delivered: None,
            all_read: None,
        };
        for &u in std::iter::once(&by).chain(members) {
            if g.current(u).is_none() {
                if g.members.len() == MAX_MEMBERS {
                    return Err(refused(
                        ErrorCode::BadRequest,
                        format!("a group has at most {MAX_MEMBERS} members"),
                    ));
                }
                g.join(u, u == by);
            }
        }
        Ok(g)
    }

    /// `user`'s entry if they are a member now.
    pub fn current(&self, user: UserId) -> Option<&Member> {
        self.entry(user).filter(|m| m.is_current())
    }

    /// `user`'s entry, current or former.
    pub fn entry(&self, user: UserId) -> Option<&Member> {
        self.members.iter().find(|m| m.user == user)
    }

    pub fn current_members(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.is_current())
    }

    fn join(&mut self, user: UserId, admin: bool) {
        // A newcomer has nothing older to acknowledge.
        let fresh = Member {
            user,
            admin,
            joined: self.head,
            left: None,
            delivered: self.head,
            read: self.head,
        };
        match self.members.iter_mut().find(|m| m.user == user) {
            Some(m) => *m = fresh,
            None => self.members.push(fresh),
        }
    }

    /// Checks a change by `by` and applies it. The ticks are aggregates a
    /// removal completed (the one who left no longer holds them back).
    pub fn apply(&mut self, by: UserId, change: &GroupChange) -> Result<Vec<Tick>, Refused> {
        let is_admin = self.current(by).is_some_and(|m| m.admin);
        match change {
            GroupChange::Created { .. } => Err(refused(ErrorCode::Conflict, "the group exists")),
            GroupChange::Added(u) => {
                if !is_admin {
                    return Err(refused(ErrorCode::Forbidden, "only admins add members"));
                }
                if self.current(*u).is_some() {
                    return Err(refused(ErrorCode::Conflict, format!("{u} is a member")));
                }
                if self.current_members().count() >= MAX_MEMBERS {
                    return Err(refused(
                        ErrorCode::Conflict,
                        format!("the group is full ({MAX_MEMBERS} members)"),
                    ));
                }
                self.join(*u, false);
                Ok(Vec::new())
            }
            GroupChange::Removed(u) => {
                if *u != by && !is_admin {
                    return Err(refused(
                        ErrorCode::Forbidden,
                        "only admins remove others; anyone may leave",
                    ));
                }
                let head = self.head;
                let Some(m) = self
                    .members
                    .iter_mut()
                    .find(|m| m.user == *u && m.is_current())
                else {
                    return Err(refused(ErrorCode::NotFound, format!("{u} is not a member")));
                };
                m.left = Some(head);
                m.admin = false;
                // A group is never left without an admin while it has members.
                if !self.current_members().any(|m| m.admin) {
                    if let Some(next) = self.members.iter_mut().find(|m| m.is_current()) {
                        next.admin = true;
                    }
                }
                self.prune_former();
                let mut ticks = self.aggregate(ReceiptStatus::Delivered);
                ticks.extend(self.aggregate(ReceiptStatus::Read));
                Ok(ticks)
            }
            GroupChange::Renamed(name) => {
                if self.current(by).is_none() {
                    return Err(refused(ErrorCode::Forbidden, "not a member of this group"));
                }
                validate_name(name)?;
                self.name = name.clone();
                Ok(Vec::new())
            }
            GroupChange::Admin { user, admin } => {
                if !is_admin {
                    return Err(refused(
                        ErrorCode::Forbidden,
                        "only admins promote or demote",
                    ));
                }
                let admins = self.current_members().filter(|m| m.admin).count();
                let Some(m) = self
                    .members
                    .iter_mut()
                    .find(|m| m.user == *user && m.is_current())
                else {
                    return Err(refused(
                        ErrorCode::NotFound,
                        format!("{user} is not a member"),
                    ));
                };
                if m.admin && !admin && admins == 1 {
                    return Err(refused(
                        ErrorCode::Conflict,
                        "a group keeps at least one admin: promote another first",
                    ));
                }
                m.admin = *admin;
                Ok(Vec::new())
            }
        }
    }

    /// Forgets the former member who left first once there are more than
    /// [`MAX_FORMER`]; the same on every replay, as it follows log order.
    fn prune_former(&mut self) {
        let former = || {
            self.members
                .iter()
                .enumerate()
                .filter(|(_, m)| !m.is_current())
        };
        if former().count() > MAX_FORMER {
            // The first of equals: the one who joined earliest.
            if let Some((i, _)) = former().min_by_key(|(_, m)| m.left) {
                self.members.remove(i);
            }
        }
    }

    /// A message from `from`; `None` (and nothing changes) if `from` is not
    /// a member. Sending implies having read the group up to there, which
    /// ticks like a read receipt.
    pub fn message(&mut self, id: MessageId, from: UserId) -> Option<Vec<Tick>> {
        self.current(from)?;
        let ticks = match self.head {
            Some(head) => self.receipt(from, head, ReceiptStatus::Read),
            None => Vec::new(),
        };
        let m = self
            .members
            .iter_mut()
            .find(|m| m.user == from && m.is_current())
            .expect("checked above");
        m.delivered = m.delivered.max(Some(id));
        m.read = m.read.max(Some(id));
        self.head = self.head.max(Some(id));
        self.recent.push_back((id, from));
        while self.recent.len() > RECENT {
            self.recent.pop_front();
        }
        Some(ticks)
    }

    /// A cumulative receipt by `by`: a tick to each sender whose messages
    /// it newly covers, and aggregate ticks once every member got there.
    pub fn receipt(&mut self, by: UserId, up_to: MessageId, status: ReceiptStatus) -> Vec<Tick> {
        // Nobody acknowledges a message that does not exist yet.
        let up_to = Some(up_to).min(self.head);
        let Some(m) = self
            .members
            .iter_mut()
            .find(|m| m.user == by && m.is_current())
        else {
            return Vec::new();
        };
        let old = m.mark(status);
        if up_to <= old {
            return Vec::new();
        }
        m.delivered = m.delivered.max(up_to);
        if status == ReceiptStatus::Read {
            m.read = up_to;
        }
        let mut ticks: Vec<Tick> = self
            .newest_per_sender(old, up_to, by)
            .into_iter()
            .map(|(to, msg_id)| Tick {
                to,
                msg_id,
                status,
                all: false,
            })
            .collect();
        ticks.extend(self.aggregate(ReceiptStatus::Delivered));
        if status == ReceiptStatus::Read {
            ticks.extend(self.aggregate(ReceiptStatus::Read));
        }
        ticks
    }

    /// The newest message of each sender but `except` in `(after, up_to]`.
    fn newest_per_sender(
        &self,
        after: Position,
        up_to: Position,
        except: UserId,
    ) -> BTreeMap<UserId, MessageId> {
        let mut newest = BTreeMap::new();
        for &(id, from) in &self.recent {
            if Some(id) > after && Some(id) <= up_to && from != except {
                newest.insert(from, id);
            }
        }
        newest
    }

    /// Moves the all-members mark of `status` and ticks the senders whose
    /// messages it newly covers.
    fn aggregate(&mut self, status: ReceiptStatus) -> Vec<Tick> {
        let Some(min) = self.current_members().map(|m| m.mark(status)).min() else {
            return Vec::new();
        };
        let all = match status {
            ReceiptStatus::Delivered => &mut self.all_delivered,
            ReceiptStatus::Read => &mut self.all_read,
        };
        if min <= *all {
            return Vec::new();
        }
        let before = std::mem::replace(all, min);
        // Senders count as having their own messages, so no one is excluded.
        let mut newest = BTreeMap::new();
        for &(id, from) in &self.recent {
            if Some(id) > before && Some(id) <= min {
                newest.insert(from, id);
            }
        }
        newest
            .into_iter()
            .map(|(to, msg_id)| Tick {
                to,
                msg_id,
                status,
                all: true,
            })
            .collect()
    }

    /// The stored form: a version byte, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_extend(self, vec![STATE_VERSION]).expect("group state serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<GroupState, String> {
        match bytes.split_first() {
            Some((&STATE_VERSION, body)) => postcard::from_bytes(body).map_err(|e| e.to_string()),
            Some((v, _)) => Err(format!("unknown group state version {v}")),
            None => Err("empty group state".into()),
        }
    }
}

const STATE_VERSION: u8 = 1;

#[cfg(test)]
mod tests {
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
}
