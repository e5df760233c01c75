//! What users set up for notifications: push subscriptions per device
//! (a token for the deployment's gateway, or a browser's Web Push
//! subscription), whether notifications may show text, and muted
//! conversations. The notifier job (processors) reads them.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use parley_engines::egress::is_public;
use parley_engines::push::{Push, Pusher};
use parley_engines::state::StoredSubscription;
use parley_schemas::ids::ConversationId;
use parley_schemas::wire::{ConversationSettings, ServerFrame};
use parley_schemas::wire::{
    ErrorCode, Mute, NotifySettings, PushSubscription, SubscriptionCreated, SubscriptionInfo,
    SubscriptionList, VapidKey,
};

use super::Core;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::internal_events::{Limit, LimitHit};
use parley_engines::telemetry::emit;

const MAX_TOKEN: usize = 4096;
/// Conversations one user may pin (WhatsApp: 3).
pub const MAX_PINNED: usize = 5;

/// A change to how a user keeps one conversation.
pub enum Keep {
    /// Muted until (or for ever), or unmuted.
    Mute(Option<Mute>),
    Pin(bool),
    Archive(bool),
}
const MAX_ENDPOINT: usize = 2048;

pub struct Notifications {
    core: Arc<Core>,
    /// Subscriptions one user may hold, across devices.
    per_user: usize,
    /// Web Push endpoints over plain `http://` (a push service on a
    /// private network, or a test's); `https://` only otherwise.
    http_endpoints: bool,
    /// Web Push endpoints on addresses that are not public (loopback,
    /// private, ...): `notify.webpush_private_endpoints`.
    private_endpoints: bool,
    /// The VAPID public key, when Web Push is on.
    vapid_public: Option<String>,
    /// Where a conversation's new settings go: the user's devices.
    pusher: Arc<dyn Pusher>,
}

fn kind(s: &PushSubscription) -> &'static str {
    match s {
        PushSubscription::Webhook { .. } => "webhook",
        PushSubscription::Webpush { .. } => "webpush",
    }
}

fn validate(s: &PushSubscription, http_endpoints: bool) -> Result<(), ApiError> {
    match s {
        PushSubscription::Webhook { token, platform } => {
            if token.is_empty() || token.len() > MAX_TOKEN {
                return Err(ApiError::bad_request(format!(
                    "token must be 1..{MAX_TOKEN} bytes"
                )));
            }
            let ok = |p: &String| {
                !p.is_empty()
                    && p.len() <= 32
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            };
            if platform.as_ref().is_some_and(|p| !ok(p)) {
                return Err(ApiError::bad_request(
                    "platform must be 1..32 of a-z, 0-9, '_' and '-'",
                ));
            }
        }
        PushSubscription::Webpush { endpoint, keys } => {
            let url = reqwest::Url::parse(endpoint)
                .map_err(|_| ApiError::bad_request("endpoint is not a URL"))?;
            let scheme_ok = url.scheme() == "https" || (http_endpoints && url.scheme() == "http");
            if !scheme_ok || endpoint.len() > MAX_ENDPOINT || url.host().is_none() {
                return Err(ApiError::bad_request(format!(
                    "endpoint must be an https URL of at most {MAX_ENDPOINT} bytes"
                )));
            }
            let decoded = |v: &str| {
                URL_SAFE_NO_PAD
                    .decode(v.trim_end_matches('='))
                    .map(|b| b.len())
                    .unwrap_or(0)
            };
            // RFC 8291: an uncompressed P-256 point and a 16-byte secret.
            if decoded(&keys.p256dh) != 65 || decoded(&keys.auth) != 16 {
                return Err(ApiError::bad_request(
                    "keys.p256dh must be a P-256 public key (65 bytes) and keys.auth 16 bytes, base64url",
                ));
            }
        }
    }
    Ok(())
}

/// Refuses a Web Push endpoint whose host is not a public address (the
/// processors check again where they connect; this tells the user now).
/// The host is read as the HTTP client reads it (`127.1`, `0x7f000001`
/// and `2130706433` are 127.0.0.1), and a name is looked up: one that
/// finds only addresses that are not public is refused, one that finds
/// nothing yet is left to the processors' check.
async fn public_endpoint(endpoint: &str) -> Result<(), ApiError> {
    let refused = || ApiError::bad_request("endpoint must be on a public address");
    let url = reqwest::Url::parse(endpoint).map_err(|_| refused())?;
    let host = url.host_str().ok_or_else(refused)?;
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        return if is_public(ip) {
            Ok(())
        } else {
            Err(refused())
        };
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let lookup = tokio::net::lookup_host((host.to_owned(), port));
    let found = tokio::time::timeout(std::time::Duration::from_secs(2), lookup).await;
    match found {
        Ok(Ok(found)) => {
            let found: Vec<_> = found.map(|a| a.ip()).collect();
            if !found.is_empty() && !found.iter().copied().any(is_public) {
                return Err(refused());
            }
            Ok(())
        }
        Ok(Err(_)) | Err(_) => Ok(()),
    }
}

/// Muted or archived conversations one user may keep: their settings are
/// one stored value, read whole on every change.
pub const MAX_KEPT: usize = 1_000;

/// Refuses one more entry of a list of `len` that is at [`MAX_KEPT`].
fn full(present: bool, len: usize, what: &str) -> Result<(), ApiError> {
    if present || len < MAX_KEPT {
        return Ok(());
    }
    emit(LimitHit {
        limit: Limit::KeptConversations,
    });
    Err(ApiError::new(
        ErrorCode::Conflict,
        format!("at most {MAX_KEPT} {what} conversations"),
    ))
}

impl Notifications {
    pub fn new(
        core: Arc<Core>,
        per_user: usize,
        (http_endpoints, private_endpoints): (bool, bool),
        vapid_public: Option<String>,
        pusher: Arc<dyn Pusher>,
    ) -> Notifications {
        Notifications {
            core,
            per_user,
            http_endpoints,
            private_endpoints,
            vapid_public,
            pusher,
        }
    }

    /// `GET /v1/push/vapid`: `not_found` while Web Push is off.
    pub fn vapid(&self) -> Result<VapidKey, ApiError> {
        let key = self.vapid_public.clone();
        key.map(|public_key| VapidKey { public_key })
            .ok_or_else(|| ApiError::not_found("Web Push is not enabled on this server"))
    }

    /// `POST /v1/push/subscriptions`: the same subscription of the same
    /// device again answers its first id.
    pub async fn subscribe(
        &self,
        caller: Caller,
        sub: PushSubscription,
    ) -> Result<SubscriptionCreated, ApiError> {
        validate(&sub, self.http_endpoints)?;
        if let PushSubscription::Webpush { endpoint, .. } = &sub {
            if !self.private_endpoints {
                public_endpoint(endpoint).await?;
            }
        }
        let json = serde_json::to_string(&sub).expect("subscriptions serialize");
        let held = self.core.state.subscriptions(caller.user).await?;
        if let Some(same) = held
            .iter()
            .find(|s| s.device == caller.device && s.json == json)
        {
            return Ok(SubscriptionCreated {
                subscription_id: same.id.clone(),
            });
        }
        if held.len() >= self.per_user {
            emit(LimitHit {
                limit: Limit::PushSubscriptions,
            });
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "at most {} push subscriptions per user; remove one",
                    self.per_user
                ),
            ));
        }
        let id = format!("{:032x}", rand::random::<u128>());
        let stored = StoredSubscription {
            id: id.clone(),
            device: caller.device,
            json,
        };
        self.core
            .state
            .put_subscription(caller.user, stored)
            .await?;
        Ok(SubscriptionCreated {
            subscription_id: id,
        })
    }

    pub async fn list(&self, caller: Caller) -> Result<SubscriptionList, ApiError> {
        let held = self.core.state.subscriptions(caller.user).await?;
        let subscriptions = held
            .into_iter()
            .filter_map(|s| {
                let sub: PushSubscription = serde_json::from_str(&s.json).ok()?;
                Some(SubscriptionInfo {
                    subscription_id: s.id,
                    device_id: s.device,
                    kind: kind(&sub).to_owned(),
                })
            })
            .collect();
        Ok(SubscriptionList { subscriptions })
    }

    /// `DELETE /v1/push/subscriptions/{id}`: the caller's only; any other
    /// id is `not_found`.
    pub async fn unsubscribe(&self, caller: Caller, id: &str) -> Result<(), ApiError> {
        if self.core.state.remove_subscription(caller.user, id).await? {
            Ok(())
        } else {
            Err(ApiError::not_found("no such subscription"))
        }
    }

    /// The device signed out: it gets no more notifications.
    pub async fn device_gone(&self, caller: Caller) -> Result<(), ApiError> {
        Ok(self
            .core
            .state
            .remove_device_subscriptions(caller.user, caller.device)
            .await?)
    }

    pub async fn settings(&self, caller: Caller) -> Result<NotifySettings, ApiError> {
        let stored = self.core.state.notify_settings(caller.user).await?;
        Ok(NotifySettings::from_stored(stored.as_deref()))
    }

    /// `PUT /v1/push/settings`: `previews` only (mutes have their calls).
    pub async fn set_previews(
        &self,
        caller: Caller,
        new: NotifySettings,
    ) -> Result<NotifySettings, ApiError> {
        let mut s = self.settings(caller).await?;
        s.previews = new.previews;
        self.store(caller, &s).await?;
        Ok(s)
    }

    /// Changes how the caller keeps `conversation` (members only), then
    /// tells every device of theirs, so each shows the same. Pinning
    /// takes a chat out of the archive and archiving unpins it, as in
    /// WhatsApp; at most [`MAX_PINNED`] are pinned.
    pub async fn keep(
        &self,
        caller: Caller,
        conversation: ConversationId,
        change: Keep,
    ) -> Result<(), ApiError> {
        self.core.access(caller.user, &conversation, false).await?;
        let mut s = self.settings(caller).await?;
        let key = conversation.to_string();
        match change {
            Keep::Mute(Some(m)) => {
                full(s.muted.contains_key(&key), s.muted.len(), "muted")?;
                s.muted.insert(key.clone(), m.until.unwrap_or(0));
            }
            Keep::Mute(None) => {
                s.muted.remove(&key);
            }
            Keep::Pin(true) => {
                if !s.pinned.contains(&key) && s.pinned.len() >= MAX_PINNED {
                    return Err(ApiError::new(
                        ErrorCode::Conflict,
                        format!("at most {MAX_PINNED} pinned conversations"),
                    ));
                }
                s.archived.remove(&key);
                s.pinned.insert(key.clone());
            }
            Keep::Pin(false) => {
                s.pinned.remove(&key);
            }
            Keep::Archive(true) => {
                full(s.archived.contains(&key), s.archived.len(), "archived")?;
                s.pinned.remove(&key);
                s.archived.insert(key.clone());
            }
            Keep::Archive(false) => {
                s.archived.remove(&key);
            }
        }
        self.store(caller, &s).await?;
        let frame = ServerFrame::ConversationSettings(ConversationSettings {
            conversation_id: conversation,
            pinned: s.pinned.contains(&key),
            archived: s.archived.contains(&key),
            muted_until: s.muted.get(&key).copied(),
        });
        self.pusher
            .deliver(vec![(caller.user, Push::Frame(Arc::new(frame)))]);
        Ok(())
    }

    async fn store(&self, caller: Caller, s: &NotifySettings) -> Result<(), ApiError> {
        let json = serde_json::to_string(s).expect("settings serialize");
        Ok(self
            .core
            .state
            .put_notify_settings(caller.user, &json)
            .await?)
    }
}
