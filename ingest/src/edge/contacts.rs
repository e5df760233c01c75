//! Contact lists, blocks and the presence privacy setting:
//! `accounts`-topic events the accounts job derives into the store; each
//! call answers once the change is there.

use std::sync::Arc;

use parley_schemas::event::{BlockChanged, ContactChanged, Event, PrivacySet};
use parley_schemas::ids::{now_ms, UserId};
use parley_schemas::wire::{BlockList, Contact, ContactList, ErrorCode, Privacy};

use super::core::Core;
use crate::error::ApiError;

/// The longest contact list.
pub const MAX_CONTACTS: usize = 5000;
/// The most users one may block.
pub const MAX_BLOCKED: usize = 5000;

/// A user's lists of other users.
#[derive(Clone, Copy)]
enum List {
    Contacts,
    Blocked,
}

pub struct Contacts {
    core: Arc<Core>,
}

impl Contacts {
    pub fn new(core: Arc<Core>) -> Contacts {
        Contacts { core }
    }

    /// Adds `contact` to `user`'s contact list, or removes it.
    pub async fn set(&self, user: UserId, contact: UserId, added: bool) -> Result<(), ApiError> {
        if added {
            self.may_list(user, contact, List::Contacts).await?;
        }
        let event = Event::ContactChanged(ContactChanged {
            user,
            contact,
            added,
            ts: now_ms(),
        });
        self.core.log_account_change(user, &event).await
    }

    /// `user`'s contacts with their display names.
    pub async fn list(&self, user: UserId) -> Result<ContactList, ApiError> {
        let ids = self.core.state.contacts(user).await?;
        Ok(ContactList {
            contacts: self.named(&ids).await?,
        })
    }

    /// `user` blocks `other` (`on`) or no longer does; answered once the
    /// store has it, so every device of `user` sees it at once.
    pub async fn block(&self, user: UserId, other: UserId, on: bool) -> Result<(), ApiError> {
        if on {
            self.may_list(user, other, List::Blocked).await?;
        }
        let event = Event::BlockChanged(BlockChanged {
            user,
            other,
            on,
            ts: now_ms(),
        });
        self.core.log_account_change(user, &event).await
    }

    /// Whom `user` blocks, with their display names.
    pub async fn blocked(&self, user: UserId) -> Result<BlockList, ApiError> {
        let ids = self.core.state.blocked(user).await?;
        Ok(BlockList {
            blocked: self.named(&ids).await?,
        })
    }

    /// What holds before `user` puts `other` on one of their lists:
    /// someone else, who exists, and room on the list.
    async fn may_list(&self, user: UserId, other: UserId, list: List) -> Result<(), ApiError> {
        let (verb, noun, max) = match list {
            List::Contacts => ("add yourself as a contact", "contacts", MAX_CONTACTS),
            List::Blocked => ("block yourself", "blocked users", MAX_BLOCKED),
        };
        if other == user {
            return Err(ApiError::bad_request(format!("you cannot {verb}")));
        }
        self.core.require_user(other).await?;
        let held = match list {
            List::Contacts => self.core.state.contacts(user).await?.len(),
            List::Blocked => self.core.state.blocked(user).await?.len(),
        };
        if held >= max {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("at most {max} {noun}"),
            ));
        }
        Ok(())
    }

    async fn named(&self, ids: &[UserId]) -> Result<Vec<Contact>, ApiError> {
        let state = &self.core.state;
        let accounts = futures::future::try_join_all(ids.iter().map(|u| state.account(*u)));
        Ok(ids
            .iter()
            .zip(accounts.await?)
            .map(|(u, a)| Contact {
                user_id: *u,
                display_name: a.map(|a| a.display_name).unwrap_or_default(),
            })
            .collect())
    }

    pub async fn privacy(&self, user: UserId) -> Result<Privacy, ApiError> {
        let presence = self.core.state.privacy(user).await?;
        Ok(Privacy { presence })
    }

    pub async fn set_privacy(&self, user: UserId, privacy: Privacy) -> Result<(), ApiError> {
        let event = Event::PrivacySet(PrivacySet {
            user,
            presence: privacy.presence,
            ts: now_ms(),
        });
        self.core.log_account_change(user, &event).await
    }
}
