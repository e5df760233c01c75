//! Device sessions: each sign-in starts one, refresh tokens rotate within
//! it (each works once; a reused one signs the device out, as it means a
//! copy leaked), and signing out ends it: the device's tokens stop working
//! and its sockets close. The session lives in the state store (one
//! compare-and-set per change) and every change goes to the log too, so a
//! lost store gets it back.

use std::sync::Arc;

use parley_engines::push::{Push, Pusher};
use parley_engines::DeviceSession;
use parley_schemas::event::{DeviceSessionChanged, Event};
use parley_schemas::ids::{now_ms, DeviceId, UserId};
use parley_schemas::wire::{DeviceInfo, DeviceList, Session};

use super::core::Core;
use super::keys::Keys;
use super::notify::Notifications;
use crate::auth::{AuthConfig, Caller, ACCESS, EDGE, REFRESH};
use crate::error::ApiError;

pub struct Sessions {
    core: Arc<Core>,
    auth: Arc<AuthConfig>,
    /// Where "signed out" goes: the device's sockets, wherever they are.
    pusher: Arc<dyn Pusher>,
    /// A device signed out leaves the key directory.
    keys: Arc<Keys>,
    /// ... and gets no more notifications.
    notifications: Arc<Notifications>,
    /// Refreshes count as account changes.
    guard: Arc<crate::guard::Guard>,
}

fn signed_out() -> ApiError {
    ApiError::unauthorized("this device is signed out; sign in again")
}

impl Sessions {
    pub fn new(
        core: Arc<Core>,
        auth: Arc<AuthConfig>,
        pusher: Arc<dyn Pusher>,
        keys: Arc<Keys>,
        notifications: Arc<Notifications>,
        guard: Arc<crate::guard::Guard>,
    ) -> Sessions {
        Sessions {
            core,
            auth,
            pusher,
            keys,
            notifications,
            guard,
        }
    }

    /// The caller an access token names, if its device's sign-in is still
    /// the current one and not signed out.
    pub async fn verify_access(&self, token: &str) -> Result<Caller, ApiError> {
        let v = self.auth.verify(token, ACCESS)?;
        let current = self
            .core
            .state
            .device_session(v.caller.user, v.caller.device)
            .await?;
        match current {
            Some(s) if s.session == v.sid && !s.revoked => Ok(v.caller),
            _ => Err(signed_out()),
        }
    }

    /// The caller of a send another edge forwarded.
    pub fn verify_edge(&self, token: &str) -> Result<Caller, ApiError> {
        Ok(self.auth.verify(token, EDGE)?.caller)
    }

    /// A token for forwarding `caller`'s send to another edge.
    pub fn edge_token(&self, caller: Caller) -> String {
        self.auth.edge(caller)
    }

    /// Whether a socket's device is still signed in (checked now and then
    /// in case the "signed out" push was lost).
    pub async fn still_signed_in(&self, caller: Caller) -> Result<bool, ApiError> {
        let s = self
            .core
            .state
            .device_session(caller.user, caller.device)
            .await?;
        Ok(s.is_some_and(|s| !s.revoked))
    }

    /// Starts a new sign-in of `device` (tokens of earlier ones stop working).
    pub async fn start(&self, caller: Caller) -> Result<Session, ApiError> {
        let mut replaced = false;
        let next = self
            .change(caller, |cur| {
                replaced = cur.is_some_and(|c| !c.revoked);
                Some(DeviceSession {
                    session: cur.map_or(0, |c| c.session) + 1,
                    refresh: 0,
                    revoked: false,
                })
            })
            .await?
            .expect("a sign-in always changes the session");
        if replaced {
            // The sign-in it replaces ends now, sockets too, before this
            // one's tokens exist (so none of its sockets can be closed).
            self.pusher
                .deliver(vec![(caller.user, Push::SignedOut(caller.device))]);
        }
        Ok(self.session(caller, next, now_ms() / 1000))
    }

    /// Trades refresh token `token` for a new pair. A token used before
    /// signs the device out.
    pub async fn refresh(&self, token: &str) -> Result<Session, ApiError> {
        let v = self.auth.verify(token, REFRESH)?;
        // Each refresh appends to the account log.
        self.guard.account_changes.check(&v.caller.user)?;
        if self.auth.session_over(v.auth_time) {
            return Err(ApiError::unauthorized(
                "this sign-in reached its lifetime; sign in again",
            ));
        }
        let mut reused = false;
        let next = self
            .change(v.caller, |cur| {
                let cur = cur.filter(|c| c.session == v.sid && !c.revoked)?;
                reused = cur.refresh != v.gen;
                Some(DeviceSession {
                    refresh: cur.refresh + u64::from(!reused),
                    revoked: reused,
                    ..cur
                })
            })
            .await?;
        match next {
            Some(next) if !reused => Ok(self.session(v.caller, next, v.auth_time)),
            Some(_) => {
                self.ended(v.caller).await?;
                Err(ApiError::unauthorized(
                    "this refresh token was used before; the device is signed out",
                ))
            }
            None => Err(signed_out()),
        }
    }

    /// Signs `device` of `user` out: its tokens stop working and its
    /// sockets close. Signing out twice is fine.
    pub async fn sign_out(&self, user: UserId, device: DeviceId) -> Result<(), ApiError> {
        let caller = Caller { user, device };
        self.change(caller, |cur| {
            let cur = cur.filter(|c| !c.revoked)?;
            Some(DeviceSession {
                revoked: true,
                ..cur
            })
        })
        .await?;
        self.ended(caller).await
    }

    /// The caller's devices that ever signed in.
    pub async fn list(&self, caller: Caller) -> Result<DeviceList, ApiError> {
        let devices = self.core.state.device_sessions(caller.user).await?;
        Ok(DeviceList {
            devices: devices
                .into_iter()
                .map(|(device, s)| DeviceInfo {
                    device_id: device,
                    current: device == caller.device,
                    signed_in: !s.revoked,
                })
                .collect(),
        })
    }

    fn session(&self, caller: Caller, s: DeviceSession, auth_time: u64) -> Session {
        Session {
            token: self.auth.access(caller, s.session),
            user_id: caller.user,
            device_id: caller.device,
            refresh_token: self.auth.refresh(caller, s.session, s.refresh, auth_time),
            expires_in: self.auth.token_ttl_secs,
        }
    }

    /// The device's session ended: its keys leave the directory, its push
    /// subscriptions go, and its sockets close.
    async fn ended(&self, caller: Caller) -> Result<(), ApiError> {
        self.keys.remove(caller).await?;
        self.notifications.device_gone(caller).await?;
        self.pusher
            .deliver(vec![(caller.user, Push::SignedOut(caller.device))]);
        Ok(())
    }

    /// Applies `f` to the device's session with a compare-and-set (again
    /// if another request changed it meanwhile), then records the result
    /// in the log. `None` from `f`: nothing to change.
    async fn change<F>(&self, caller: Caller, mut f: F) -> Result<Option<DeviceSession>, ApiError>
    where
        F: FnMut(Option<DeviceSession>) -> Option<DeviceSession>,
    {
        let state = &self.core.state;
        loop {
            let cur = state.device_session(caller.user, caller.device).await?;
            let Some(next) = f(cur) else {
                return Ok(None);
            };
            if state
                .swap_device_session(caller.user, caller.device, cur, next)
                .await?
            {
                let event = Event::DeviceSession(DeviceSessionChanged {
                    user: caller.user,
                    device: caller.device,
                    session: next,
                    ts: now_ms(),
                });
                self.core.append_account(caller.user, &event).await?;
                return Ok(Some(next));
            }
        }
    }
}
