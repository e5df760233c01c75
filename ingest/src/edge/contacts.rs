//! Contact lists and the presence privacy setting: `accounts`-topic
//! events the accounts job derives into the store; each call answers once
//! the change is there.

use std::sync::Arc;

use parley_schemas::event::{ContactChanged, Event, PrivacySet};
use parley_schemas::ids::{now_ms, UserId};
use parley_schemas::wire::{Contact, ContactList, ErrorCode, Privacy};

use super::core::Core;
use crate::error::ApiError;

/// The longest contact list.
pub const MAX_CONTACTS: usize = 5000;

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
            if contact == user {
                return Err(ApiError::bad_request(
                    "you cannot add yourself as a contact",
                ));
            }
            self.core.require_user(contact).await?;
            if self.core.state.contacts(user).await?.len() >= MAX_CONTACTS {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!("at most {MAX_CONTACTS} contacts"),
                ));
            }
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
        let state = &self.core.state;
        let ids = state.contacts(user).await?;
        let accounts = futures::future::try_join_all(ids.iter().map(|u| state.account(*u)));
        let contacts = ids
            .iter()
            .zip(accounts.await?)
            .map(|(u, a)| Contact {
                user_id: *u,
                display_name: a.map(|a| a.display_name).unwrap_or_default(),
            })
            .collect();
        Ok(ContactList { contacts })
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
