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

use crate::ids::{GroupId, MessageId, UserId};
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
    /// An admin creates an invite link; `invite` is its id (a hash of the
    /// link's secret, which the log never holds).
    InviteCreated {
        invite: String,
        expires_at: Option<u64>,
        max_uses: Option<u32>,
    },
    /// An admin revokes an invite.
    InviteRevoked {
        invite: String,
    },
    /// The user `by` joins with an invite, at `at` (ms): judged against
    /// the invite's expiry and uses in log order, so every replay agrees.
    Joined {
        invite: String,
        at: u64,
    },
}

/// An invite link of a group, as its state keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    pub id: String,
    pub created_by: UserId,
    pub expires_at: Option<u64>,
    pub max_uses: Option<u32>,
    pub uses: u32,
}

impl Invite {
    /// Whether it still admits someone at `at`.
    pub fn open_at(&self, at: u64) -> bool {
        self.expires_at.is_none_or(|e| at < e) && self.max_uses.is_none_or(|m| self.uses < m)
    }
}

/// An invite token, `{group_id}.{secret}`: the group, and the secret (1
/// to 64 bytes, which only the token holds; the group keeps its hash).
/// `None` for anything else. Total on any input (fuzzed: `schemas/fuzz`).
pub fn parse_invite_token(token: &str) -> Option<(GroupId, &str)> {
    let (group, secret) = token.split_once('.')?;
    let group: GroupId = group.parse().ok()?;
    (!secret.is_empty() && secret.len() <= 64).then_some((group, secret))
}

/// Invites a group may hold at once.
pub const MAX_INVITES: usize = 100;

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
    /// Invite links, stored after the rest (state version 2).
    #[serde(skip)]
    pub invites: Vec<Invite>,
    /// Users an admin removed, oldest first: no invite lets them back in
    /// until an admin adds them (state version 3, after the invites).
    #[serde(skip)]
    pub removed: Vec<UserId>,
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
            invites: Vec::new(),
            removed: Vec::new(),
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
                self.removed.retain(|r| r != u);
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
                let was_admin = std::mem::replace(&mut m.admin, false);
                if was_admin {
                    self.invites_die_with(*u);
                }
                if *u != by {
                    self.removed.retain(|r| r != u);
                    self.removed.push(*u);
                    if self.removed.len() > MAX_FORMER {
                        self.removed.remove(0);
                    }
                }
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
                if !*admin {
                    self.invites_die_with(*user);
                }
                Ok(Vec::new())
            }
            GroupChange::InviteCreated {
                invite,
                expires_at,
                max_uses,
            } => {
                if !is_admin {
                    return Err(refused(ErrorCode::Forbidden, "only admins create invites"));
                }
                if self.invites.iter().any(|i| i.id == *invite) {
                    return Err(refused(ErrorCode::Conflict, "that invite exists"));
                }
                // Used-up invites make room (expired ones go when someone
                // joins: only a join carries a time to judge them by).
                self.invites
                    .retain(|i| i.max_uses.is_none_or(|m| i.uses < m));
                if self.invites.len() >= MAX_INVITES {
                    return Err(refused(
                        ErrorCode::Conflict,
                        format!("a group holds at most {MAX_INVITES} invites: revoke one"),
                    ));
                }
                self.invites.push(Invite {
                    id: invite.clone(),
                    created_by: by,
                    expires_at: *expires_at,
                    max_uses: *max_uses,
                    uses: 0,
                });
                Ok(Vec::new())
            }
            GroupChange::InviteRevoked { invite } => {
                if !is_admin {
                    return Err(refused(ErrorCode::Forbidden, "only admins revoke invites"));
                }
                let before = self.invites.len();
                self.invites.retain(|i| i.id != *invite);
                if self.invites.len() == before {
                    return Err(refused(ErrorCode::NotFound, "no such invite"));
                }
                Ok(Vec::new())
            }
            GroupChange::Joined { invite, at } => {
                let Some(i) = self.invites.iter().position(|i| i.id == *invite) else {
                    return Err(refused(ErrorCode::NotFound, "no such invite"));
                };
                if self.current(by).is_some() {
                    return Err(refused(ErrorCode::Conflict, "already a member"));
                }
                if self.removed.contains(&by) {
                    return Err(refused(
                        ErrorCode::Forbidden,
                        "an admin removed you from this group: only an admin can add you back",
                    ));
                }
                if !self.invites[i].open_at(*at) {
                    return Err(refused(
                        ErrorCode::Forbidden,
                        "this invite has expired or been used up",
                    ));
                }
                if self.current_members().count() >= MAX_MEMBERS {
                    return Err(refused(
                        ErrorCode::Conflict,
                        format!("the group is full ({MAX_MEMBERS} members)"),
                    ));
                }
                self.invites[i].uses += 1;
                self.invites
                    .retain(|i| i.expires_at.is_none_or(|e| *at < e));
                self.join(by, false);
                Ok(Vec::new())
            }
        }
    }

    /// The invites `user` created stop working: they no longer speak for
    /// an admin.
    fn invites_die_with(&mut self, user: UserId) {
        self.invites.retain(|i| i.created_by != user);
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
}

#[path = "group_codec.rs"]
mod codec;

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
