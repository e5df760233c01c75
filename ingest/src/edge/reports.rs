//! Reports of users and messages, for operators: appended to the
//! `moderation` topic (by reporter) with the last messages of that chat
//! the reporter can see, which `parley moderation` prints.

use std::sync::Arc;
use std::time::Duration;

use parley_schemas::event::{Event, ReportFiled};
use parley_schemas::ids::{now_ms, ConversationId, UserId};
use parley_schemas::partition::user_partition;
use parley_schemas::topics;
use parley_schemas::wire::{ReportCreated, ReportRequest};

use super::core::Core;
use super::history::HistoryReads;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::guard::Throttle;
use crate::internal_events::Limit;

/// The last messages of the chat a report carries.
const CONTEXT: u32 = 20;
/// The longest reason, in characters.
const MAX_REASON_CHARS: usize = 1000;
/// Reports a user may file a minute, and in a burst.
const PER_MINUTE: u32 = 10;

pub struct Reports {
    core: Arc<Core>,
    limit: Throttle<UserId>,
}

impl Reports {
    pub fn new(core: Arc<Core>) -> Reports {
        Reports {
            core,
            limit: Throttle::new(
                Limit::Reports,
                PER_MINUTE,
                Duration::from_secs(60),
                PER_MINUTE,
            ),
        }
    }

    /// `POST /v1/reports`: a user, a chat the caller is in, or a message
    /// in it. A user alone means the caller's 1:1 chat with them.
    pub async fn file(
        &self,
        caller: Caller,
        req: ReportRequest,
        history: &HistoryReads,
    ) -> Result<ReportCreated, ApiError> {
        if req.reason.chars().count() > MAX_REASON_CHARS {
            return Err(ApiError::bad_request(format!(
                "reason must be at most {MAX_REASON_CHARS} characters"
            )));
        }
        let conversation = match (req.conversation_id, req.user_id) {
            (Some(c), _) => Some(c),
            (None, Some(u)) if u != caller.user => Some(ConversationId::direct(caller.user, u)),
            (None, Some(_)) => return Err(ApiError::bad_request("you cannot report yourself")),
            (None, None) => None,
        };
        let Some(conversation) = conversation else {
            return Err(ApiError::bad_request(
                "name a user_id or a conversation_id (and msg_id)",
            ));
        };
        if req.msg_id.is_some() && req.conversation_id.is_none() {
            return Err(ApiError::bad_request("msg_id needs its conversation_id"));
        }
        if let Some(u) = req.user_id {
            self.core.require_user(u).await?;
        }
        self.limit.check(&caller.user)?;
        // What the reporter can see, as they would scroll back: a chat they
        // are not in is refused there.
        let messages = history
            .page(caller.user, conversation, None, Some(CONTEXT))
            .await?
            .messages;
        let report_id = format!("{:032x}", rand::random::<u128>());
        let event = Event::ReportFiled(ReportFiled {
            report_id: report_id.clone(),
            reporter: caller.user,
            user: req.user_id,
            conversation: Some(conversation),
            msg_id: req.msg_id,
            reason: req.reason,
            messages_json: serde_json::to_string(&messages).expect("frames serialize"),
            ts: now_ms(),
        });
        let p = user_partition(caller.user, self.core.partitions);
        self.core.append(topics::MODERATION, p, &event).await?;
        Ok(ReportCreated { report_id })
    }
}
