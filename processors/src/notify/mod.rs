//! Notifications for users who are away.
//!
//! - [`NotifierJob`] consumes `inbox` (by user): each item for a user with
//!   no app in the foreground (`heartbeat active: true` within 15 s) is
//!   queued in the state store with the job's offset, collapsed with the
//!   others of its conversation: exactly once per item, across restarts.
//! - [`dispatch::Dispatcher`], beside the job on each partition, takes what
//!   is due (a collapse window after a conversation's first queued item),
//!   drops it if muted or the user came back, rate-limits per user, and
//!   hands it to the sinks for each of the user's subscriptions; a
//!   notification leaves the queue once every subscription took it or
//!   gave up (so a crash sends it again: receivers dedup by its `id`).
//! - [`Sink`]s, one per kind of subscription, each retried with
//!   exponential backoff and dead-lettered to `notify-dead` after N tries:
//!   - [`webhook`]: a deployment's own gateway to FCM or APNs, signed with
//!     HMAC-SHA256 over a timestamp and the body;
//!   - [`webpush`]: browsers, through their push services (RFC 8030),
//!     encrypted for the browser (RFC 8291) and signed with VAPID
//!     (RFC 8292).

pub mod dispatch;
pub mod webhook;
pub mod webpush;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use parley_engines::job::{events, Processor};
use parley_engines::state::{NotifyItem, StateStore};
use parley_engines::telemetry::emit;
use parley_engines::{Record, Result, StateOp};
use parley_schemas::event::{Event, MessageSent};
use parley_schemas::ids::{now_ms, UserId};
use parley_schemas::topics;
use parley_schemas::wire::Body;
use serde::{Deserialize, Serialize};

use crate::internal_events::NotificationsQueued;

pub const JOB: &str = parley_schemas::jobs::NOTIFIER;

/// A preview is at most this many characters of the text.
const PREVIEW_CHARS: usize = 120;

/// `[notify]` of the config: where notifications go and how hard to try.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// The deployment's gateway (to FCM or APNs); off when unset.
    pub webhook_url: Option<String>,
    /// The HMAC-SHA256 key the gateway checks signatures with: at least
    /// 32 bytes, required with `webhook_url`.
    pub webhook_secret: Option<String>,
    /// Web Push is on when set: the contact (`mailto:` or `https:`) push
    /// services see in each request's VAPID token.
    pub webpush_subject: Option<String>,
    /// The VAPID private key, base64url of PKCS#8 DER. Every node of a
    /// cluster needs the same one (browsers subscribe to its public
    /// half); `parley up` makes one into `<data_dir>/vapid.key` if unset.
    pub webpush_key: Option<String>,
    /// Web Push endpoints on loopback or private addresses are called too
    /// (a push service inside the deployment's network, or a test's);
    /// otherwise refused, so no user can aim the server at its own network.
    pub webpush_private_endpoints: bool,
    /// One attempt's deadline.
    pub timeout_ms: u64,
    /// Attempts before a notification is dead-lettered.
    pub max_tries: u32,
    /// The first retry's wait; each next one doubles, up to `max_backoff_ms`.
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// A conversation's items within this window make one notification.
    pub collapse_ms: u64,
    /// How often each partition looks for due notifications.
    pub every_ms: u64,
    /// Notifications per user per minute; more wait.
    pub per_user_per_min: u32,
    /// Items older than this when the job sees them get none (a job that
    /// starts on an old log, or comes back after a long outage).
    pub max_age_ms: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            webhook_url: None,
            webhook_secret: None,
            webpush_subject: None,
            webpush_key: None,
            webpush_private_endpoints: false,
            timeout_ms: 5_000,
            max_tries: 8,
            backoff_ms: 500,
            max_backoff_ms: 60_000,
            collapse_ms: 1_500,
            every_ms: 250,
            per_user_per_min: 20,
            max_age_ms: 10 * 60 * 1000,
        }
    }
}

impl NotifyConfig {
    /// Whether any sink is configured (the job runs only then).
    pub fn enabled(&self) -> bool {
        self.webhook_url.is_some() || self.webpush_subject.is_some()
    }

    /// Refuses settings that cannot work: a webhook without a strong key.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.webhook_url.is_some() && self.webhook_secret.as_ref().is_none_or(|s| s.len() < 32) {
            return Err(
                "notify.webhook_secret must be set, at least 32 bytes, with notify.webhook_url"
                    .into(),
            );
        }
        Ok(())
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx: the gateway or push service has it.
    Taken,
    /// 404 or 410: the token or subscription is dead; it is removed.
    Gone,
    Failed(String),
}

/// Where one subscription's notifications go, as its sink needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The gateway's device token, and the platform it named.
    Webhook {
        token: String,
        platform: Option<String>,
    },
    /// A browser's push endpoint and its keys.
    WebPush {
        endpoint: String,
        keys: parley_schemas::wire::WebPushKeys,
    },
}

/// A way out for notifications.
#[async_trait]
pub trait Sink: Send + Sync + 'static {
    /// Its name in metrics and logs.
    fn name(&self) -> &'static str;

    /// One attempt to hand `body` (the notification's JSON) over for
    /// `target`, at `now` (ms).
    async fn send(&self, target: &Target, body: &[u8], now: u64) -> Outcome;
}

#[async_trait]
impl Sink for webhook::Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, _: &Target, body: &[u8], now: u64) -> Outcome {
        webhook::Webhook::send(self, body, now).await
    }
}

#[async_trait]
impl Sink for webpush::WebPush {
    fn name(&self) -> &'static str {
        "webpush"
    }

    async fn send(&self, target: &Target, body: &[u8], now: u64) -> Outcome {
        match target {
            Target::WebPush { endpoint, keys } => {
                webpush::WebPush::send(self, endpoint, keys, body, now).await
            }
            Target::Webhook { .. } => Outcome::Failed("not a Web Push subscription".into()),
        }
    }
}

/// Queues a notification for each inbox item whose user is away.
pub struct NotifierJob {
    state: Arc<dyn StateStore>,
    max_age_ms: u64,
}

impl NotifierJob {
    pub fn new(state: Arc<dyn StateStore>, cfg: &NotifyConfig) -> NotifierJob {
        NotifierJob {
            state,
            max_age_ms: cfg.max_age_ms,
        }
    }
}

/// What a notification may show of a message: text only, never an `e2e`
/// body's (the server cannot read it) nor a media caption.
fn preview(m: &MessageSent) -> Option<String> {
    match &m.body {
        Body::Text(t) => Some(t.chars().take(PREVIEW_CHARS).collect()),
        _ => None,
    }
}

#[async_trait]
impl Processor for NotifierJob {
    async fn process(&mut self, partition: u32, records: &[Record]) -> Result<Vec<StateOp>> {
        let now = now_ms();
        let mut items: Vec<(UserId, &MessageSent)> = Vec::new();
        let decoded: Vec<Event> = events(topics::INBOX, partition, records)?
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        for e in &decoded {
            match e {
                Event::InboxItem(i) => items.push((i.user, &i.message)),
                Event::GroupPost(g) => items.extend(g.to.iter().map(|u| (*u, &g.message))),
                _ => {}
            }
        }
        let mut away: HashMap<UserId, bool> = HashMap::new();
        let mut ops = Vec::new();
        for (user, m) in items {
            // Edits, deletions and reactions change what is there; they
            // are not news to wake a phone for.
            if user == m.from || m.body.is_action() || now.saturating_sub(m.ts) > self.max_age_ms {
                continue;
            }
            let is_away = match away.get(&user) {
                Some(a) => *a,
                None => {
                    let p = self.state.presence(user).await?.unwrap_or_default();
                    *away.entry(user).or_insert(!p.in_foreground(now))
                }
            };
            if is_away {
                ops.push(StateOp::QueueNotification {
                    partition,
                    item: NotifyItem {
                        user,
                        conversation: m.conversation,
                        msg_id: m.msg_id,
                        from: m.from,
                        at: now,
                        preview: preview(m),
                    },
                });
            }
        }
        emit(NotificationsQueued { count: ops.len() });
        Ok(ops)
    }
}
