//! Account deletion (GDPR, docs/protocol-additions.md): the account leaves
//! its groups, its uploads go, its profile, contacts, blocks, privacy,
//! inbox, cursors, read marks and chat settings are erased, every device
//! is signed out (their keys and push subscriptions go with them), and
//! its unfinished resumable uploads are dropped. Messages already sent stay with their
//! recipients, from "Deleted account".
//!
//! Order: what others see (groups, uploads) goes first; then one durable
//! `AccountDeleted` event is the point of no return; then the sign-outs.
//! A deletion cut short after that event is finished by a retry from any
//! device still signed in (the password then no longer matters).

use std::collections::BTreeSet;

use parley_engines::StateOp;
use parley_schemas::event::{Event, MediaDeleted};
use parley_schemas::group::GroupChange;
use parley_schemas::ids::{now_ms, ConversationId, GroupId};
use parley_schemas::wire::ErrorCode;

use super::Edge;
use crate::auth::Caller;
use crate::error::ApiError;

/// Uploads deleted per read of the user's list.
const UPLOADS_PAGE: usize = 500;
/// Conversations looked through for groups joined before the membership
/// index existed.
const LISTED: u32 = 500;

impl Edge {
    /// `DELETE /v1/users/me`.
    pub async fn delete_account(
        &self,
        caller: Caller,
        proof: super::accounts::DeletionProof,
    ) -> Result<(), ApiError> {
        let user = caller.user;
        let erased = self.accounts.confirm_deletion(user, proof).await?;
        if !erased {
            for g in self.groups_of(caller).await? {
                match self
                    .groups
                    .change(caller, g, GroupChange::Removed(user))
                    .await
                {
                    // Left meanwhile, or never fully in: nothing to leave.
                    Ok(_) => {}
                    Err(e) if matches!(e.code, ErrorCode::NotFound | ErrorCode::Forbidden) => {}
                    Err(e) => return Err(e),
                }
            }
            self.delete_uploads(caller).await?;
            self.accounts.erase(user).await?;
        }
        let devices = self.core.state.device_sessions(user).await?;
        for (device, s) in devices {
            if !s.revoked {
                self.sessions.sign_out(user, device).await?;
            }
        }
        // Last, so none begun before the sign-outs stays.
        self.media.drop_sessions_of(user).await
    }

    /// The groups `caller` is in: the membership index, and groups in
    /// their conversation list (joined before the index existed).
    async fn groups_of(&self, caller: Caller) -> Result<BTreeSet<GroupId>, ApiError> {
        let mut groups: BTreeSet<GroupId> = self
            .core
            .state
            .groups_of(caller.user)
            .await?
            .into_iter()
            .collect();
        for entry in self
            .history
            .conversations(caller.user, Some(LISTED))
            .await?
        {
            if let ConversationId::Group(g) = entry.conversation_id {
                groups.insert(g);
            }
        }
        Ok(groups)
    }

    /// Every upload of the caller's goes: recipients' fetches answer 404,
    /// and the sweeper frees blobs no other upload holds.
    async fn delete_uploads(&self, caller: Caller) -> Result<(), ApiError> {
        let state = &self.core.state;
        // Each deletion takes its upload out of the index; one the index
        // still lists after it (a store out of step) is not tried forever.
        let mut done = std::collections::HashSet::new();
        loop {
            let page = state.uploads(caller.user, UPLOADS_PAGE).await?;
            let fresh: Vec<_> = page.into_iter().filter(|m| done.insert(*m)).collect();
            if fresh.is_empty() {
                return Ok(());
            }
            for media in fresh {
                let ts = now_ms();
                let event = Event::MediaDeleted(MediaDeleted { media, ts });
                self.core.append_account(caller.user, &event).await?;
                state
                    .write(vec![StateOp::DeleteMedia { media, at: ts }])
                    .await?;
            }
        }
    }
}
