//! Account export (GDPR, docs/protocol-additions.md): everything the
//! server holds about the caller that they may see, as one JSON archive:
//! profile, contacts, blocks, privacy, conversation settings, groups, and
//! the messages of their conversations as scrollback shows them.

use std::time::Duration;

use parley_engines::history::MAX_PAGE;
use parley_schemas::ids::{now_ms, ConversationId};
use parley_schemas::wire::{AccountExport, ExportedConversation, GroupInfo};

use super::Edge;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::guard::Throttle;
use crate::internal_events::Limit;

/// Messages one archive holds at most; past it, `truncated` says so.
pub const MAX_EXPORT_MESSAGES: usize = 200_000;
/// Conversations one archive covers, newest activity first.
const MAX_EXPORT_CONVERSATIONS: u32 = 500;
/// Exports a user may make an hour: each reads their whole history.
const PER_HOUR: u32 = 4;

pub fn throttle() -> Throttle<parley_schemas::ids::UserId> {
    Throttle::new(
        Limit::Exports,
        PER_HOUR,
        Duration::from_secs(3600),
        PER_HOUR,
    )
}

impl Edge {
    /// `GET /v1/users/me/export`.
    pub async fn export(&self, caller: Caller) -> Result<AccountExport, ApiError> {
        self.exports.check(&caller.user)?;
        let user = caller.user;
        let profile = self.accounts.profile(user).await?;
        let contacts = self.contacts.list(user).await?.contacts;
        let blocked = self.contacts.blocked(user).await?.blocked;
        let privacy = self.contacts.privacy(user).await?;
        let settings = self.notifications.settings(caller).await?;
        let list = self
            .history
            .conversations(user, Some(MAX_EXPORT_CONVERSATIONS))
            .await?;
        let mut groups = Vec::new();
        let mut conversations = Vec::new();
        let mut left = MAX_EXPORT_MESSAGES;
        let mut truncated = false;
        'listed: for entry in list {
            let c = entry.conversation_id;
            if let ConversationId::Group(g) = c {
                // Groups they are in now; former ones keep their messages.
                if let Ok(info) = self.groups.info(caller, g).await {
                    groups.push(info);
                }
            }
            let mut messages = Vec::new();
            let mut before = None;
            while left > 0 {
                let limit = left.min(MAX_PAGE) as u32;
                let page = match self.history.page(user, c, before, Some(limit)).await {
                    Ok(page) => page,
                    // A conversation listed but no longer theirs to read
                    // (a group that forgot them, a deleted peer): left
                    // out of the archive, not exported empty.
                    Err(e) if e.is_no_access() => continue 'listed,
                    Err(e) => return Err(e),
                };
                let Some(last) = page.last() else { break };
                before = Some(last.msg_id);
                left -= page.len();
                let done = page.len() < limit as usize;
                messages.extend(page);
                if done {
                    break;
                }
            }
            truncated |= left == 0;
            messages.reverse();
            conversations.push(ExportedConversation {
                conversation_id: c,
                messages,
            });
            if left == 0 {
                break;
            }
        }
        Ok(AccountExport {
            exported_at: now_ms(),
            profile,
            contacts,
            blocked,
            privacy,
            settings,
            groups: groups.into_iter().collect::<Vec<GroupInfo>>(),
            conversations,
            truncated,
        })
    }
}
