//! Groups: create, add and remove (admins), leave, rename, read, and
//! invite links (admins create, list and revoke them; anyone with one
//! joins). The
//! rules are one function ([`GroupState::apply`]) the edge runs before
//! appending, for a clear error; the router runs it again in log order,
//! which decides races.

use std::sync::Arc;

use futures::StreamExt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use parley_schemas::event::{Event, GroupEvent};
use parley_schemas::group::{GroupChange, GroupState, Refused};
use parley_schemas::ids::{now_ms, ConversationId, GroupId, MessageIdGenerator, UserId};
use parley_schemas::partition::conversation_partition;
use parley_schemas::wire::{
    CreateGroup, CreateInvite, ErrorCode, GroupCreated, GroupInfo, GroupMember, InviteInfo,
    InviteList,
};
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
        let together: Vec<UserId> = req
            .members
            .iter()
            .copied()
            .chain(std::iter::once(caller.user))
            .collect();
        self.none_blocks(&req.members, &together).await?;
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
        if let GroupChange::Added(u) = &change {
            let members: Vec<UserId> = state.current_members().map(|m| m.user).collect();
            self.none_blocks(&[*u], &members).await?;
        }
        state.apply(caller.user, &change).map_err(refusal)?;
        self.log_change(group, caller.user, change, now_ms())
            .await?;
        Ok(group_info(group, &state))
    }

    /// Refuses to put any of `put` into a group with someone they block
    /// among `with`. Who blocks whom is not said.
    async fn none_blocks(&self, put: &[UserId], with: &[UserId]) -> Result<(), ApiError> {
        let with: std::collections::HashSet<UserId> = with.iter().copied().collect();
        let lists = futures::stream::iter(put.iter().copied())
            .map(|u| async move { self.core.state.blocked(u).await })
            .buffer_unordered(16);
        futures::pin_mut!(lists);
        while let Some(blocked) = lists.next().await {
            if blocked?.iter().any(|b| with.contains(b)) {
                return Err(ApiError::forbidden(
                    "someone would be put in a group with a user they blocked",
                ));
            }
        }
        Ok(())
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

    /// An admin's new invite link: the token is answered once, and only
    /// its hash ([`invite_id`]) reaches the log.
    pub async fn create_invite(
        &self,
        caller: Caller,
        group: GroupId,
        req: CreateInvite,
    ) -> Result<InviteInfo, ApiError> {
        if req.max_uses == Some(0) {
            return Err(ApiError::bad_request("max_uses must be at least 1"));
        }
        let now = now_ms();
        let expires_at = match req.expires_in_s {
            Some(s) if s == 0 || s > MAX_INVITE_SECS => {
                return Err(ApiError::bad_request(format!(
                    "expires_in_s must be 1..={MAX_INVITE_SECS}"
                )))
            }
            Some(s) => Some(now + s * 1000),
            None => None,
        };
        let secret: [u8; 16] = rand::random();
        let secret = URL_SAFE_NO_PAD.encode(secret);
        let id = invite_id(&secret);
        let change = GroupChange::InviteCreated {
            invite: id.clone(),
            expires_at,
            max_uses: req.max_uses,
        };
        self.change(caller, group, change).await?;
        Ok(InviteInfo {
            invite_id: id,
            group_id: group,
            token: Some(format!("{group}.{secret}")),
            created_by: caller.user,
            expires_at,
            max_uses: req.max_uses,
            uses: 0,
        })
    }

    /// A group's invites, to its admins.
    pub async fn invites(&self, caller: Caller, group: GroupId) -> Result<InviteList, ApiError> {
        let state = self.core.group_state(group).await?;
        if !state.current(caller.user).is_some_and(|m| m.admin) {
            return Err(ApiError::forbidden("only admins see a group's invites"));
        }
        let invites = state
            .invites
            .iter()
            .map(|i| InviteInfo {
                invite_id: i.id.clone(),
                group_id: group,
                token: None,
                created_by: i.created_by,
                expires_at: i.expires_at,
                max_uses: i.max_uses,
                uses: i.uses,
            })
            .collect();
        Ok(InviteList { invites })
    }

    /// Joins the group of `token`, as a normal member from now on.
    pub async fn join(&self, caller: Caller, token: &str) -> Result<GroupInfo, ApiError> {
        let (group, secret) = parley_schemas::group::parse_invite_token(token)
            .ok_or_else(|| ApiError::bad_request("not an invite token"))?;
        let change = GroupChange::Joined {
            invite: invite_id(secret),
            at: now_ms(),
        };
        let unknown = |e: ApiError| match e.code {
            // No such group and no such invite read the same.
            ErrorCode::NotFound => ApiError::not_found("no such invite"),
            _ => e,
        };
        let mut state = self.core.group_state(group).await.map_err(unknown)?;
        state.apply(caller.user, &change).map_err(refusal)?;
        self.log_change(group, caller.user, change, now_ms())
            .await?;
        // Two joins may race for an invite's last use: the log decides.
        let state = self.core.group_state(group).await?;
        if state.current(caller.user).is_none() {
            return Err(ApiError::forbidden(
                "this invite has expired or been used up",
            ));
        }
        Ok(group_info(group, &state))
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

/// The longest an invite may last: a year.
const MAX_INVITE_SECS: u64 = 366 * 24 * 3600;

/// What the log and the group state know an invite by: a hash of the
/// link's secret, so neither can be turned back into a working link.
fn invite_id(secret: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(secret.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
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
