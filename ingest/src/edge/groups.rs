//! Groups: create, add and remove (admins), leave, rename, and read. The
//! rules are one function ([`GroupState::apply`]) the edge runs before
//! appending, for a clear error; the router runs it again in log order,
//! which decides races.

use std::sync::Arc;

use parley_schemas::event::{Event, GroupEvent};
use parley_schemas::group::{GroupChange, GroupState, Refused};
use parley_schemas::ids::{now_ms, ConversationId, GroupId, MessageIdGenerator, UserId};
use parley_schemas::partition::conversation_partition;
use parley_schemas::wire::{CreateGroup, GroupCreated, GroupInfo, GroupMember};
use parley_schemas::{jobs, topics};

use super::core::{Access, Core};
use crate::auth::Caller;
use crate::error::ApiError;

pub struct Groups {
    core: Arc<Core>,
    /// Group ids come from the msg_id generator: unique across nodes.
    ids: Arc<MessageIdGenerator>,
}

impl Groups {
    pub fn new(core: Arc<Core>, ids: Arc<MessageIdGenerator>) -> Groups {
        Groups { core, ids }
    }

    /// Creates a group with the caller as its admin.
    pub async fn create(&self, caller: Caller, req: CreateGroup) -> Result<GroupCreated, ApiError> {
        // The name and the member cap first: a huge list is refused before
        // any member is looked up.
        let ts = now_ms();
        GroupState::create(caller.user, &req.name, &req.members, ts).map_err(refusal)?;
        for u in &req.members {
            self.core.require_user(*u).await?;
        }
        let group = GroupId(self.ids.next_id().0);
        let change = GroupChange::Created {
            name: req.name,
            members: req.members,
        };
        self.log_change(group, caller.user, change, ts).await?;
        Ok(GroupCreated {
            group_id: group,
            conversation_id: ConversationId::group(group),
        })
    }

    /// Adds, removes (or leaves) or renames, if the caller may; returns
    /// the group as it is after the change.
    pub async fn change(
        &self,
        caller: Caller,
        group: GroupId,
        change: GroupChange,
    ) -> Result<GroupInfo, ApiError> {
        if let GroupChange::Added(u) = &change {
            self.core.require_user(*u).await?;
        }
        let mut state = self.core.group_state(group).await?;
        if state.entry(caller.user).is_none() {
            return Err(ApiError::forbidden("not a member of this group"));
        }
        state.apply(caller.user, &change).map_err(refusal)?;
        self.log_change(group, caller.user, change, now_ms())
            .await?;
        Ok(group_info(group, &state))
    }

    /// The group and its current members, to a current member.
    pub async fn info(&self, caller: Caller, group: GroupId) -> Result<GroupInfo, ApiError> {
        match self
            .core
            .access(caller.user, &ConversationId::group(group), true)
            .await?
        {
            Access::Group(state) => Ok(group_info(group, &state)),
            Access::Direct => unreachable!("a group conversation"),
        }
    }

    /// Appends a group change to the group's partition and waits until the
    /// router has applied it, so the caller's next call sees it.
    async fn log_change(
        &self,
        group: GroupId,
        by: UserId,
        change: GroupChange,
        ts: u64,
    ) -> Result<(), ApiError> {
        let c = ConversationId::group(group);
        let p = conversation_partition(&c, self.core.partitions);
        let event = Event::Group(GroupEvent {
            group,
            by,
            change,
            ts,
        });
        let offset = self.core.append_at(topics::EVENTS, p, &event).await?;
        self.core.wait_applied(jobs::ROUTER, p, offset).await
    }
}

fn refusal(r: Refused) -> ApiError {
    ApiError::new(r.code, r.reason)
}

fn group_info(group: GroupId, state: &GroupState) -> GroupInfo {
    GroupInfo {
        group_id: group,
        conversation_id: ConversationId::group(group),
        name: state.name.clone(),
        members: state
            .current_members()
            .map(|m| GroupMember {
                user_id: m.user,
                admin: m.admin,
            })
            .collect(),
    }
}
