//! Accounts: sign-up, sign-in, devices and profiles. Each change is
//! written to the log's `accounts` topic, from which the accounts job
//! rebuilds the state store if it is lost.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::OnceCell;

use parley_engines::state::{ERASED, ERASED_NAME};
use parley_engines::StateOp;
use parley_schemas::event::{AccountCreated, AccountDeleted, DeviceAdded, Event, ProfileUpdated};
use parley_schemas::ids::{now_ms, DeviceId, UserId};
use parley_schemas::wire::{
    CreateSession, CreateUser, ErrorCode, IdpSession, Profile, ProfilePatch, Session,
};

use super::core::Core;
use crate::auth::{AuthConfig, Caller};
use crate::error::ApiError;
use crate::guard::Guard;
use crate::idp::Idp;

use super::sessions::Sessions;

pub struct Accounts {
    core: Arc<Core>,
    auth: Arc<AuthConfig>,
    guard: Arc<Guard>,
    sessions: Arc<Sessions>,
    /// Sign-in by an outside identity provider, when configured.
    idp: Option<Arc<Idp>>,
    /// Checked against when a username does not exist, so that a wrong
    /// name costs the same time as a wrong password.
    dummy_hash: OnceCell<String>,
}

/// How recent a provider's sign-in must be to delete its account.
pub const FRESH_ID_TOKEN_SECS: u64 = 300;

/// What proves a deletion is the account holder's: the password, or for a
/// provider's account a fresh ID token.
#[derive(Debug, Default)]
pub struct DeletionProof {
    pub password: Option<String>,
    pub id_token: Option<String>,
}

fn valid_username(u: &str) -> bool {
    (3..=32).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

impl Accounts {
    pub fn new(
        core: Arc<Core>,
        auth: Arc<AuthConfig>,
        guard: Arc<Guard>,
        sessions: Arc<Sessions>,
        idp: Option<Arc<Idp>>,
    ) -> Accounts {
        Accounts {
            core,
            auth,
            guard,
            sessions,
            idp,
            dummy_hash: OnceCell::new(),
        }
    }

    /// Signs a user up. The store takes the username (unique at once),
    /// then the log records the account, so a lost store gets it back.
    /// Everything cheap is checked before the password is hashed.
    pub async fn sign_up(&self, req: CreateUser, ip: Option<IpAddr>) -> Result<UserId, ApiError> {
        if let Some(ip) = ip {
            self.guard.sign_ups_per_ip.check(&ip)?;
        }
        if !valid_username(&req.username) {
            return Err(ApiError::bad_request(
                "username must be 3..32 of a-z, 0-9, '.', '_', '-'",
            ));
        }
        let n = req.password.chars().count();
        if !(8..=256).contains(&n) {
            return Err(ApiError::bad_request("password must be 8..256 characters"));
        }
        if let Some(name) = &req.display_name {
            valid_display_name(name)?;
        }
        let display_name = req.display_name.unwrap_or_else(|| req.username.clone());
        let taken = || ApiError::new(ErrorCode::Conflict, "username is taken");
        if self
            .core
            .state
            .account_by_name(&req.username)
            .await?
            .is_some()
        {
            return Err(taken());
        }
        let password_hash = {
            let _turn = self.guard.hash_turn().await;
            self.auth.hash_password(req.password).await?
        };
        self.create(req.username, password_hash, display_name)
            .await?
            .ok_or_else(taken)
    }

    /// Takes the username in the store, then records the account in the
    /// log; `None` if the name is taken.
    async fn create(
        &self,
        username: String,
        password_hash: String,
        display_name: String,
    ) -> Result<Option<UserId>, ApiError> {
        let Some(user) = self
            .core
            .state
            .create_account(&username, &password_hash, &display_name)
            .await?
        else {
            return Ok(None);
        };
        let event = Event::AccountCreated(AccountCreated {
            user,
            username,
            password_hash,
            display_name,
            ts: now_ms(),
        });
        self.core.append_account(user, &event).await?;
        Ok(Some(user))
    }

    /// Signs in with an outside provider's ID token. Its first sign-in
    /// creates the account, bound to the provider's subject: the account
    /// has no password, and the username stays with that subject.
    pub async fn sign_in_idp(
        &self,
        req: IdpSession,
        ip: Option<IpAddr>,
    ) -> Result<Session, ApiError> {
        let idp = self
            .idp
            .as_ref()
            .ok_or_else(|| ApiError::not_found("no identity provider is configured"))?;
        if let Some(ip) = ip {
            self.guard.sign_ins_per_ip.check(&ip)?;
        }
        let who = idp.verify(&req.id_token)?;
        if !valid_username(&who.username) {
            return Err(ApiError::bad_request(
                "the token's username must be 3..32 of a-z, 0-9, '.', '_', '-'",
            ));
        }
        // Never a PHC string, so no password ever matches it.
        let binding = format!("!idp:{}", who.subject);
        let user = match self.bound_to(&who.username, &binding).await? {
            Some(u) => u,
            None => {
                let name = who.name.filter(|n| valid_display_name(n).is_ok());
                let display_name = name.unwrap_or_else(|| who.username.clone());
                let created = self
                    .create(who.username.clone(), binding.clone(), display_name)
                    .await?;
                match created {
                    Some(u) => u,
                    // Lost a race for the name: to the same subject, or not.
                    None => self
                        .bound_to(&who.username, &binding)
                        .await?
                        .ok_or_else(|| {
                            ApiError::new(
                                ErrorCode::Conflict,
                                "username belongs to another account",
                            )
                        })?,
                }
            }
        };
        self.start(user, req.device_id).await
    }

    /// The account named `username` if `binding` holds it, `None` if there
    /// is none; `conflict` if another (a local account, another subject)
    /// has the name.
    async fn bound_to(&self, username: &str, binding: &str) -> Result<Option<UserId>, ApiError> {
        match self.core.state.account_by_name(username).await? {
            Some(a) if a.password_hash == binding => Ok(Some(a.user_id)),
            Some(_) => Err(ApiError::new(
                ErrorCode::Conflict,
                "username belongs to another account",
            )),
            None => Ok(None),
        }
    }

    /// Checks the password and issues a session token, for a new device
    /// unless the request names one.
    pub async fn sign_in(
        &self,
        req: CreateSession,
        ip: Option<IpAddr>,
    ) -> Result<Session, ApiError> {
        if let Some(ip) = ip {
            self.guard.sign_ins_per_ip.check(&ip)?;
        }
        let bad = || ApiError::unauthorized("wrong username or password");
        if !valid_username(&req.username) {
            // No such account can exist: not worth a throttle key (a flood
            // of made-up names would grow its map), but the same work and
            // answer as a wrong password.
            let hash = self.dummy_hash().await?;
            self.password_matches(req.password, hash).await;
            return Err(bad());
        }
        self.guard.sign_ins_per_account.check(&req.username)?;
        let account = self.core.state.account_by_name(&req.username).await?;
        let hash = match &account {
            Some(a) => a.password_hash.clone(),
            None => self.dummy_hash().await?,
        };
        let matches = self.password_matches(req.password, hash).await;
        let account = match account {
            Some(a) if matches => a,
            _ => return Err(bad()),
        };
        self.start(account.user_id, req.device_id).await
    }

    /// A session of `user` on device `device_id`, or on a new device.
    async fn start(&self, user: UserId, device_id: Option<DeviceId>) -> Result<Session, ApiError> {
        let device = match device_id {
            Some(d) => {
                // Only an id this user was issued: a made-up one would start
                // a device (and a cursor) nobody registered.
                let issued = self.core.state.devices_issued(user).await?;
                if d.0 == 0 || d.0 > issued {
                    return Err(ApiError::bad_request(
                        "device_id was not issued to this user; sign in without one for a new device",
                    ));
                }
                d
            }
            None => self.new_device(user).await?,
        };
        self.sessions.start(Caller { user, device }).await
    }

    /// Argon2 on the blocking pool, one hash at a time per turn.
    async fn password_matches(&self, password: String, hash: String) -> bool {
        let _turn = self.guard.hash_turn().await;
        self.auth.verify_password(password, hash).await
    }

    async fn account(&self, user: UserId) -> Result<parley_engines::Account, ApiError> {
        self.core
            .state
            .account(user)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no user {user}")))
    }

    async fn dummy_hash(&self) -> Result<String, ApiError> {
        self.dummy_hash
            .get_or_try_init(|| async {
                let _turn = self.guard.hash_turn().await;
                self.auth.hash_password("no such user".into()).await
            })
            .await
            .cloned()
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
        if let Some(id) = patch.avatar_media_id.as_deref().filter(|a| !a.is_empty()) {
            // Everyone signed in may fetch an avatar: only the user's own
            // picture may become one.
            let record = match id.parse() {
                Ok(m) => super::media::usable(&self.core, user, m).await?,
                Err(_) => None,
            };
            if !record.is_some_and(|r| r.uploader == user && r.mime.starts_with("image/")) {
                return Err(ApiError::forbidden(
                    "an avatar is an image you uploaded (POST /v1/media)",
                ));
            }
        }
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

    /// Checks that `user` may delete their account: the password again
    /// (none for an identity provider's account). `Ok(true)` if it is
    /// already erased, so a deletion cut short can be finished by any
    /// device still signed in.
    pub async fn confirm_deletion(
        &self,
        user: UserId,
        proof: DeletionProof,
    ) -> Result<bool, ApiError> {
        let a = self.account(user).await?;
        if a.erased() {
            return Ok(true);
        }
        if let Some(subject) = a.password_hash.strip_prefix("!idp:") {
            // The provider proves it is them, as the password does.
            let idp = self.idp.as_ref().ok_or_else(|| {
                ApiError::new(
                    parley_schemas::wire::ErrorCode::Unavailable,
                    "the identity provider is not configured",
                )
            })?;
            let token = proof.id_token.ok_or_else(|| {
                ApiError::bad_request("give a fresh ID token to delete the account")
            })?;
            let who = idp.verify(&token)?;
            let fresh = who
                .authenticated_at
                .is_some_and(|t| t + FRESH_ID_TOKEN_SECS >= now_ms() / 1000);
            if who.subject != subject || !fresh {
                return Err(ApiError::forbidden(format!(
                    "an ID token of this account, from a sign-in of the last {} minutes",
                    FRESH_ID_TOKEN_SECS / 60
                )));
            }
            return Ok(false);
        }
        let password = proof
            .password
            .ok_or_else(|| ApiError::bad_request("give your password to delete the account"))?;
        self.guard.sign_ins_per_account.check(&a.username)?;
        let matches = self.password_matches(password, a.password_hash).await;
        if !matches {
            return Err(ApiError::forbidden("wrong password"));
        }
        Ok(false)
    }

    /// Records the deletion in the log, then erases the account from the
    /// store (as the accounts job does when it replays the log).
    pub async fn erase(&self, user: UserId) -> Result<(), ApiError> {
        let username = self.account(user).await?.username;
        let event = Event::AccountDeleted(AccountDeleted { user, ts: now_ms() });
        self.core.append_account(user, &event).await?;
        // The tombstone compaction keeps: the id and the name stay taken,
        // and the first record (with the password hash) can go.
        let tombstone = Event::AccountCreated(AccountCreated {
            user,
            username,
            password_hash: ERASED.to_owned(),
            display_name: ERASED_NAME.to_owned(),
            ts: now_ms(),
        });
        self.core.append_account(user, &tombstone).await?;
        self.core
            .state
            .write(vec![StateOp::EraseAccount { user }])
            .await?;
        self.core.forget_user(user);
        Ok(())
    }

    /// The profile of the user called `username`.
    pub async fn profile_by_name(
        &self,
        viewer: UserId,
        username: &str,
    ) -> Result<Profile, ApiError> {
        let a = self
            .core
            .state
            .account_by_name(username)
            .await?
            .filter(|a| !a.erased())
            .ok_or_else(|| ApiError::not_found("no user of that name"))?;
        self.profile_for(viewer, a.user_id).await
    }

    /// `user`'s profile as `viewer` sees it: without the photo if `user`
    /// blocks them.
    pub async fn profile_for(&self, viewer: UserId, user: UserId) -> Result<Profile, ApiError> {
        let mut p = self.profile(user).await?;
        if viewer != user && self.core.state.blocks(user, viewer).await? {
            p.avatar_media_id = None;
        }
        Ok(p)
    }

    pub async fn profile(&self, user: UserId) -> Result<Profile, ApiError> {
        let a = self.account(user).await?;
        let deleted = a.erased();
        Ok(Profile {
            user_id: a.user_id,
            // A deleted account's name stays taken, but is not shown.
            username: if deleted { String::new() } else { a.username },
            display_name: a.display_name,
            about: a.about,
            avatar_media_id: a.avatar_media_id,
            deleted,
        })
    }
}

/// Longest display name and "about" text, in characters (WhatsApp allows
/// 25 and 139; names here may be longer, as at sign-up).
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;
pub const MAX_ABOUT_CHARS: usize = 140;

/// The one rule for display names, at sign-up and in a profile change.
fn valid_display_name(name: &str) -> Result<(), ApiError> {
    let n = name.chars().count();
    if name.trim().is_empty() || n > MAX_DISPLAY_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "display_name must be 1..{MAX_DISPLAY_NAME_CHARS} characters, not blank, without control characters"
        )));
    }
    Ok(())
}

/// A profile change must change something, and every field must fit.
fn validate_profile(p: &ProfilePatch) -> Result<(), ApiError> {
    if p.display_name.is_none() && p.about.is_none() && p.avatar_media_id.is_none() {
        return Err(ApiError::bad_request(
            "nothing to change: give display_name, about or avatar_media_id",
        ));
    }
    let no_controls = |s: &str| !s.chars().any(char::is_control);
    if let Some(name) = &p.display_name {
        valid_display_name(name)?;
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
