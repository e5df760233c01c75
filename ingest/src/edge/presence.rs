//! Heartbeats, typing, and presence as a viewer may see it.

use std::sync::Arc;
use std::time::Duration;

use parley_engines::push::{Push, Pusher};
use parley_schemas::event::{Event, Heartbeat};
use parley_schemas::ids::{now_ms, ConversationId, UserId};
use parley_schemas::partition::user_partition;
use parley_schemas::topics;
use parley_schemas::wire::{Audience, PresenceFrame, ServerFrame, TypingNotice};

use super::core::{Access, Core};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::guard::Throttle;
use crate::internal_events::Limit;

/// Typing frames a user may send a second, and in a burst: clients send
/// one every few seconds while typing; more is noise to every member.
pub const TYPING_PER_SECOND: u32 = 2;
pub const TYPING_BURST: u32 = 5;

pub struct PresenceAndTyping {
    core: Arc<Core>,
    /// Where typing notices go: the local hub in one process, the session
    /// registry in a cluster.
    pusher: Arc<dyn Pusher>,
    typing_limit: Throttle<UserId>,
}

impl PresenceAndTyping {
    pub fn new(core: Arc<Core>, pusher: Arc<dyn Pusher>) -> PresenceAndTyping {
        PresenceAndTyping {
            core,
            pusher,
            typing_limit: Throttle::new(
                Limit::Typing,
                TYPING_PER_SECOND,
                Duration::from_secs(1),
                TYPING_BURST,
            ),
        }
    }

    pub async fn heartbeat(
        &self,
        caller: Caller,
        active: bool,
        closing: bool,
    ) -> Result<(), ApiError> {
        let event = Event::Heartbeat(Heartbeat {
            user: caller.user,
            device: caller.device,
            active,
            closing,
            ts: now_ms(),
        });
        let p = user_partition(caller.user, self.core.partitions);
        self.core.append(topics::PRESENCE, p, &event).await
    }

    /// Ephemeral: straight to the other members' connected devices, never
    /// to the log. Limited per user ([`TYPING_PER_SECOND`]).
    pub async fn typing(
        &self,
        caller: Caller,
        conversation: ConversationId,
    ) -> Result<(), ApiError> {
        self.typing_limit.check(&caller.user)?;
        let frame = Arc::new(ServerFrame::Typing(TypingNotice {
            conversation_id: conversation,
            user_id: caller.user,
        }));
        let to: Vec<UserId> = match self.core.access(caller.user, &conversation, true).await? {
            Access::Direct => match conversation.peer_of(caller.user) {
                Some(peer) if !self.core.state.blocks(peer, caller.user).await? => vec![peer],
                _ => Vec::new(),
            },
            Access::Group(state) => state
                .current_members()
                .map(|m| m.user)
                .filter(|u| *u != caller.user)
                .collect(),
        };
        let pushes = to
            .into_iter()
            .map(|u| (u, Push::Frame(frame.clone())))
            .collect();
        self.pusher.deliver(pushes);
        Ok(())
    }

    /// `owner`'s presence as `viewer` may see it: hidden (offline, no last
    /// seen) unless the owner's setting lets the viewer see it.
    pub async fn presence(&self, viewer: UserId, owner: UserId) -> Result<PresenceFrame, ApiError> {
        self.core.require_user(owner).await?;
        let state = &self.core.state;
        let visible = viewer == owner || {
            let audience = state.privacy(owner).await?;
            let in_contacts =
                audience == Audience::Contacts && state.contacts(owner).await?.contains(&viewer);
            audience.allows(in_contacts) && !state.blocks(owner, viewer).await?
        };
        if !visible {
            return Ok(PresenceFrame {
                user_id: owner,
                online: false,
                last_seen: None,
            });
        }
        let p = state.presence(owner).await?.unwrap_or_default();
        Ok(PresenceFrame {
            user_id: owner,
            online: p.is_online(now_ms()),
            last_seen: (p.last_seen > 0).then_some(p.last_seen),
        })
    }
}
