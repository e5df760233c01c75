//! What every part of the edge shares: appending one event to the log,
//! waiting until a job has applied it, who exists, and who may see a
//! conversation.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parley_engines::telemetry::emit;
use parley_engines::{Log, StateStore};
use parley_schemas::codec;
use parley_schemas::event::Event;
use parley_schemas::group::GroupState;
use parley_schemas::ids::{ConversationId, GroupId, UserId};
use parley_schemas::partition::user_partition;
use parley_schemas::{jobs, topics};

use crate::error::ApiError;
use crate::internal_events::{EdgeTrouble, RecordsAppended};

/// How long a group, contact or privacy change waits for its job to apply it.
const APPLIED_WAIT: Duration = Duration::from_secs(5);

/// Users remembered as existing; past this, they are checked in the store.
const KNOWN_USERS: usize = 1_000_000;
/// How long a user is remembered as existing before the store is asked
/// again: how long another edge may take sends to an account just deleted.
const KNOWN_FOR: Duration = Duration::from_secs(60);

/// The engines every part of the edge uses, and what they share.
pub struct Core {
    pub(crate) log: Arc<dyn Log>,
    pub(crate) state: Arc<dyn StateStore>,
    /// The partition count of every topic.
    pub(crate) partitions: u32,
    /// Users known to exist, and since when, so a send checks its
    /// recipient without a store call.
    known_users: RwLock<HashMap<UserId, Instant>>,
}

/// What a member may see of a conversation.
pub enum Access {
    Direct,
    /// The group's state; the member's span is in it.
    Group(GroupState),
}

impl Core {
    pub fn new(log: Arc<dyn Log>, state: Arc<dyn StateStore>, partitions: u32) -> Core {
        Core {
            log,
            state,
            partitions,
            known_users: Default::default(),
        }
    }

    pub(crate) async fn append(
        &self,
        topic: &str,
        partition: u32,
        event: &Event,
    ) -> Result<(), ApiError> {
        self.append_at(topic, partition, event).await.map(|_| ())
    }

    /// Appends one event; returns its offset once it is durable.
    pub(crate) async fn append_at(
        &self,
        topic: &str,
        partition: u32,
        event: &Event,
    ) -> Result<u64, ApiError> {
        let at = self
            .log
            .append(topic, partition, vec![Bytes::from(codec::encode(event))])
            .await?;
        emit(RecordsAppended { count: 1 });
        Ok(at.first_offset)
    }

    /// Accounts and devices go to the user's `accounts` partition.
    pub(crate) async fn append_account(&self, user: UserId, event: &Event) -> Result<(), ApiError> {
        let p = user_partition(user, self.partitions);
        self.append(topics::ACCOUNTS, p, event).await
    }

    /// An account-topic change the accounts job derives into the store;
    /// answers once it is there.
    pub(crate) async fn log_account_change(
        &self,
        user: UserId,
        event: &Event,
    ) -> Result<(), ApiError> {
        let p = user_partition(user, self.partitions);
        let offset = self.append_at(topics::ACCOUNTS, p, event).await?;
        self.wait_applied(jobs::ACCOUNTS, p, offset).await
    }

    /// Waits (up to [`APPLIED_WAIT`]) until `job` has applied `offset` of
    /// its partition `p`, so the caller's next call sees the change. Past
    /// that the change is still durable and applies later.
    pub(crate) async fn wait_applied(
        &self,
        job: &str,
        p: u32,
        offset: u64,
    ) -> Result<(), ApiError> {
        let deadline = tokio::time::Instant::now() + APPLIED_WAIT;
        while tokio::time::Instant::now() < deadline {
            if self
                .state
                .job_offset(job, p)
                .await?
                .is_some_and(|o| o > offset)
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        emit(EdgeTrouble::ChangeNotAppliedYet {
            job,
            partition: p,
            offset,
        });
        Ok(())
    }

    /// `not_found` unless `user` exists and has not deleted their account.
    /// Users found are remembered for [`KNOWN_FOR`], so another edge takes
    /// notice of a deletion within that.
    pub async fn require_user(&self, user: UserId) -> Result<(), ApiError> {
        let fresh = |at: &Instant| at.elapsed() < KNOWN_FOR;
        if self
            .known_users
            .read()
            .expect("known users")
            .get(&user)
            .is_some_and(fresh)
        {
            return Ok(());
        }
        match self.state.account(user).await? {
            Some(a) if a.erased() => Err(ApiError::not_found(format!(
                "user {user} deleted their account"
            ))),
            Some(_) => {
                let mut known = self.known_users.write().expect("known users");
                if known.len() >= KNOWN_USERS {
                    known.retain(|_, at| fresh(at));
                }
                if known.len() < KNOWN_USERS {
                    known.insert(user, Instant::now());
                }
                Ok(())
            }
            None => Err(ApiError::not_found(format!("no user {user}"))),
        }
    }

    /// A deleted account is no longer known here.
    pub(crate) fn forget_user(&self, user: UserId) {
        self.known_users.write().expect("known users").remove(&user);
    }

    /// What `user` may see of `conversation`, or why not: `forbidden` to
    /// a non-member (and, with `now`, to a former member), `not_found` for
    /// a group that does not exist.
    pub async fn access(
        &self,
        user: UserId,
        conversation: &ConversationId,
        now: bool,
    ) -> Result<Access, ApiError> {
        match conversation {
            ConversationId::Direct { .. } if conversation.is_direct_member(user) => {
                Ok(Access::Direct)
            }
            ConversationId::Direct { .. } => {
                Err(ApiError::forbidden("not a member of this conversation"))
            }
            ConversationId::Group(g) => {
                let state = self.group_state(*g).await?;
                match state.entry(user) {
                    Some(m) if m.is_current() || !now => Ok(Access::Group(state)),
                    Some(_) => Err(ApiError::forbidden("no longer a member of this group")),
                    None => Err(ApiError::forbidden("not a member of this group")),
                }
            }
        }
    }

    pub(crate) async fn group_state(&self, g: GroupId) -> Result<GroupState, ApiError> {
        self.state
            .group(g)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no group {g}")))
    }
}
