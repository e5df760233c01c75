//! What a send says about earlier messages, judged before it is appended:
//! an edit, a deletion or a reaction names its target, a reply names the
//! message it answers, and a forward is rate-limited.
//!
//! Targets are looked up in the message index the router keeps
//! ([`Indexed`]), not in the history, which trails the log. A target sent
//! a moment ago may not be indexed yet: then the check waits for the
//! router to reach the end of the conversation's partition, which the
//! target's append (acked, so in the log) is below, and looks again.

use std::sync::Arc;
use std::time::Duration;

use parley_engines::state::Indexed;
use parley_schemas::group::GroupState;
use parley_schemas::ids::{now_ms, ConversationId, MessageId, UserId};
use parley_schemas::partition::conversation_partition;
use parley_schemas::wire::{is_emoji, Body, SendFrame, MAX_EDIT_BYTES};
use parley_schemas::{jobs, topics};

use super::core::Core;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::guard::Throttle;
use crate::internal_events::Limit;
use crate::limits::Limits;

/// A target younger than this that is not indexed may still be on its
/// way through the router.
const IN_FLIGHT_MS: u64 = 60_000;

pub struct Actions {
    core: Arc<Core>,
    edit_window_ms: u64,
    delete_window_ms: u64,
    forwards: Throttle<UserId>,
}

/// The content checks of an action body, which need no lookup.
pub fn validate(body: &Body) -> Result<(), ApiError> {
    match body {
        Body::Edit(e) if e.text.is_empty() => Err(ApiError::bad_request("text is empty")),
        Body::Edit(e) if e.text.len() > MAX_EDIT_BYTES => Err(ApiError::too_large(format!(
            "text is {} bytes; the limit is {MAX_EDIT_BYTES}",
            e.text.len()
        ))),
        Body::Reaction(r) if !r.emoji.is_empty() && !is_emoji(&r.emoji) => Err(
            ApiError::bad_request("emoji must be one emoji, or empty to remove the reaction"),
        ),
        _ => Ok(()),
    }
}

impl Actions {
    pub fn new(core: Arc<Core>, limits: &Limits) -> Actions {
        Actions {
            core,
            edit_window_ms: limits.edit_window_ms,
            delete_window_ms: limits.delete_window_ms,
            forwards: Throttle::new(
                Limit::Forwards,
                limits.forwards_per_min,
                Duration::from_secs(60),
                limits.forwards_burst,
            ),
        }
    }

    /// Whether `frame` may be sent to `conversation` by `caller`, as far
    /// as it acts on, replies to or forwards other messages. `group` is
    /// the group's state when it is one; `first` is false for a send
    /// another edge already checked and forwarded here.
    pub async fn check(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        group: Option<&GroupState>,
        frame: &SendFrame,
        first: bool,
    ) -> Result<(), ApiError> {
        let action = frame.body.target();
        if action.is_some() && (frame.reply_to.is_some() || frame.forwarded) {
            return Err(ApiError::bad_request(
                "an edit, deletion or reaction cannot be a reply or a forward",
            ));
        }
        if frame.forwarded && first {
            self.forwards.check(&caller.user)?;
        }
        let Some(target) = action.or(frame.reply_to) else {
            return Ok(());
        };
        let indexed = self.find(conversation, target).await?;
        let sees = group.is_none_or(|g| g.entry(caller.user).is_some_and(|m| m.sees(target)));
        let gone = || ApiError::not_found(format!("message {target} was deleted"));
        match (&frame.body, indexed) {
            (_, None) => Err(ApiError::not_found(format!(
                "no message {target} in this conversation"
            ))),
            (_, Some(_)) if !sees => Err(ApiError::forbidden(
                "that message was sent while you were not a member",
            )),
            (Body::Delete(d), Some(_)) if d.for_me => Ok(()),
            (_, Some(i)) if i.deleted => Err(gone()),
            (Body::Edit(_), Some(i)) => {
                if i.from != caller.user {
                    return Err(ApiError::forbidden("only its sender may edit a message"));
                }
                if !i.text {
                    return Err(ApiError::bad_request("only a text message can be edited"));
                }
                self.within(target, self.edit_window_ms, "edited")
            }
            (Body::Delete(_), Some(i)) => {
                let admin = group.is_some_and(|g| g.current(caller.user).is_some_and(|m| m.admin));
                if i.from != caller.user && !admin {
                    return Err(ApiError::forbidden(
                        "only its sender or a group admin may delete a message for everyone",
                    ));
                }
                self.within(target, self.delete_window_ms, "deleted for everyone")
            }
            (_, Some(_)) => Ok(()),
        }
    }

    fn within(&self, target: MessageId, window_ms: u64, what: &str) -> Result<(), ApiError> {
        if now_ms().saturating_sub(target.unix_ms()) > window_ms {
            return Err(ApiError::forbidden(format!(
                "a message can be {what} for {} minutes after it was sent",
                window_ms / 60_000
            )));
        }
        Ok(())
    }

    /// The index entry of `target`, waiting for the router if it may be
    /// on its way.
    async fn find(
        &self,
        conversation: ConversationId,
        target: MessageId,
    ) -> Result<Option<Indexed>, ApiError> {
        let state = &self.core.state;
        if let Some(i) = state.indexed(conversation, target).await? {
            return Ok(Some(i));
        }
        let age = now_ms().saturating_sub(target.unix_ms());
        if age > IN_FLIGHT_MS || target.unix_ms() > now_ms() + IN_FLIGHT_MS {
            return Ok(None);
        }
        let p = conversation_partition(&conversation, self.core.partitions);
        let end = self.core.log.bounds(topics::EVENTS, p).await?.end;
        if end > 0 {
            self.core.wait_applied(jobs::ROUTER, p, end - 1).await?;
        }
        Ok(state.indexed(conversation, target).await?)
    }
}
