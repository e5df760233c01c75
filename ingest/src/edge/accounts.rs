//! Accounts: sign-up, sign-in, devices and profiles. Each change is
//! written to the log's `accounts` topic, from which the accounts job
//! rebuilds the state store if it is lost.

use std::sync::Arc;

use parley_engines::StateOp;
use parley_schemas::event::{AccountCreated, DeviceAdded, Event, ProfileUpdated};
use parley_schemas::ids::{now_ms, DeviceId, UserId};
use parley_schemas::wire::{CreateSession, CreateUser, ErrorCode, Profile, ProfilePatch, Session};

use super::core::Core;
use crate::auth::{AuthConfig, Caller};
use crate::error::ApiError;

pub struct Accounts {
    core: Arc<Core>,
    auth: Arc<AuthConfig>,
}

fn valid_username(u: &str) -> bool {
    (3..=32).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

impl Accounts {
    pub fn new(core: Arc<Core>, auth: Arc<AuthConfig>) -> Accounts {
        Accounts { core, auth }
    }

    /// Signs a user up. The store takes the username (unique at once),
    /// then the log records the account, so a lost store gets it back.
    pub async fn sign_up(&self, req: CreateUser) -> Result<UserId, ApiError> {
        if !valid_username(&req.username) {
            return Err(ApiError::bad_request(
                "username must be 3..32 of a-z, 0-9, '.', '_', '-'",
            ));
        }
        let n = req.password.chars().count();
        if !(8..=256).contains(&n) {
            return Err(ApiError::bad_request("password must be 8..256 characters"));
        }
        let display_name = req.display_name.unwrap_or_else(|| req.username.clone());
        if display_name.chars().count() > MAX_DISPLAY_NAME_CHARS {
            return Err(ApiError::bad_request(format!(
                "display_name over {MAX_DISPLAY_NAME_CHARS} characters"
            )));
        }
        let password_hash = self.auth.hash_password(req.password).await?;
        let Some(user) = self
            .core
            .state
            .create_account(&req.username, &password_hash, &display_name)
            .await?
        else {
            return Err(ApiError::new(ErrorCode::Conflict, "username is taken"));
        };
        let event = Event::AccountCreated(AccountCreated {
            user,
            username: req.username,
            password_hash,
            display_name,
            ts: now_ms(),
        });
        self.core.append_account(user, &event).await?;
        Ok(user)
    }

    /// Checks the password and issues a session token, for a new device
    /// unless the request names one.
    pub async fn sign_in(&self, req: CreateSession) -> Result<Session, ApiError> {
        let bad = || ApiError::unauthorized("wrong username or password");
        let account = self
            .core
            .state
            .account_by_name(&req.username)
            .await?
            .ok_or_else(bad)?;
        if !self
            .auth
            .verify_password(req.password, account.password_hash)
            .await
        {
            return Err(bad());
        }
        let device = match req.device_id {
            Some(d) => d,
            None => self.new_device(account.user_id).await?,
        };
        let caller = Caller {
            user: account.user_id,
            device,
        };
        Ok(Session {
            token: self.auth.issue(caller),
            user_id: caller.user,
            device_id: device,
        })
    }

    /// A new device id for `user`, recorded in the log as well.
    async fn new_device(&self, user: UserId) -> Result<DeviceId, ApiError> {
        let device = self.core.state.new_device(user).await?;
        let event = Event::DeviceAdded(DeviceAdded {
            user,
            device,
            ts: now_ms(),
        });
        self.core.append_account(user, &event).await?;
        Ok(device)
    }

    /// Changes `user`'s profile: the change goes to the log (from which the
    /// accounts job derives profiles) and, once durable, to the store, so
    /// the caller reads its own change at once. Returns the new profile.
    pub async fn update_profile(
        &self,
        user: UserId,
        patch: ProfilePatch,
    ) -> Result<Profile, ApiError> {
        validate_profile(&patch)?;
        let update = ProfileUpdated {
            user,
            display_name: patch.display_name,
            about: patch.about,
            avatar_media_id: patch.avatar_media_id,
            ts: now_ms(),
        };
        self.core
            .append_account(user, &Event::ProfileUpdated(update.clone()))
            .await?;
        self.core
            .state
            .write(vec![StateOp::SetProfile {
                user,
                display_name: update.display_name,
                about: update.about,
                avatar_media_id: update.avatar_media_id,
            }])
            .await?;
        self.profile(user).await
    }

    pub async fn profile(&self, user: UserId) -> Result<Profile, ApiError> {
        let a = self
            .core
            .state
            .account(user)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no user {user}")))?;
        Ok(Profile {
            user_id: a.user_id,
            username: a.username,
            display_name: a.display_name,
            about: a.about,
            avatar_media_id: a.avatar_media_id,
        })
    }
}

/// Longest display name and "about" text, in characters (WhatsApp allows
/// 25 and 139; names here may be longer, as at sign-up).
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;
pub const MAX_ABOUT_CHARS: usize = 140;

/// A profile change must change something, and every field must fit.
fn validate_profile(p: &ProfilePatch) -> Result<(), ApiError> {
    if p.display_name.is_none() && p.about.is_none() && p.avatar_media_id.is_none() {
        return Err(ApiError::bad_request(
            "nothing to change: give display_name, about or avatar_media_id",
        ));
    }
    let no_controls = |s: &str| !s.chars().any(char::is_control);
    if let Some(name) = &p.display_name {
        let n = name.chars().count();
        if name.trim().is_empty() || n > MAX_DISPLAY_NAME_CHARS || !no_controls(name) {
            return Err(ApiError::bad_request(format!(
                "display_name must be 1..{MAX_DISPLAY_NAME_CHARS} characters, not blank, without control characters"
            )));
        }
    }
    if let Some(about) = &p.about {
        if about.chars().count() > MAX_ABOUT_CHARS || !no_controls(about) {
            return Err(ApiError::bad_request(format!(
                "about must be at most {MAX_ABOUT_CHARS} characters, without control characters"
            )));
        }
    }
    if let Some(media) = &p.avatar_media_id {
        let ok = media.len() <= 128
            && media
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(ApiError::bad_request(
                "avatar_media_id must be a media id (up to 128 of A-Z a-z 0-9 - _), or empty to remove the avatar",
            ));
        }
    }
    Ok(())
}
