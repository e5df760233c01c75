//! Sends what is due: one partition's queued notifications, a collapse
//! window after their first item, to each subscription of their user.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parley_engines::state::{PendingNotification, StateStore, StoredSubscription};
use parley_engines::telemetry::emit;
use parley_engines::Log;
use parley_schemas::event::{Event, NotificationDead};
use parley_schemas::ids::{now_ms, ConversationId, UserId};
use parley_schemas::partition::user_partition;
use parley_schemas::wire::{NotifySettings, PushSubscription};
use parley_schemas::{codec, topics};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::webhook::Webhook;
use super::webpush::{Vapid, WebPush};
use super::{NotifyConfig, Outcome, Sink, Target};
use crate::internal_events::{
    NotificationDeadLettered, NotificationFailed, NotificationSent, NotificationSkipped,
};

/// Due notifications a partition takes per look.
const BATCH: usize = 256;

/// What every partition's dispatcher shares.
#[derive(Clone)]
pub struct Dispatcher {
    state: Arc<dyn StateStore>,
    log: Arc<dyn Log>,
    partitions: u32,
    cfg: NotifyConfig,
    webhook: Option<Arc<Webhook>>,
    webpush: Option<Arc<WebPush>>,
    limiter: Arc<DefaultKeyedRateLimiter<UserId>>,
}

/// One subscription's notification, ready to go.
struct Delivery {
    sub: StoredSubscription,
    sink: Arc<dyn Sink>,
    target: Target,
    body: Vec<u8>,
}

impl Dispatcher {
    pub fn new(
        state: Arc<dyn StateStore>,
        log: Arc<dyn Log>,
        partitions: u32,
        cfg: NotifyConfig,
        vapid: Option<Vapid>,
    ) -> Dispatcher {
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let webhook = cfg.webhook_url.clone().map(|url| {
            let secret = cfg.webhook_secret.clone().unwrap_or_default();
            Arc::new(Webhook::new(url, &secret, timeout))
        });
        let private = cfg.webpush_private_endpoints;
        let webpush = vapid.map(|v| Arc::new(WebPush::new(v, timeout, private)));
        let per_min = NonZeroU32::new(cfg.per_user_per_min.max(1)).expect("non-zero");
        Dispatcher {
            state,
            log,
            partitions,
            webhook,
            webpush,
            limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(per_min))),
            cfg,
        }
    }

    /// Looks for due notifications of `partition` every `every_ms` until
    /// `stop`; what is in flight then stays queued for the next owner.
    pub async fn run(self, partition: u32, stop: CancellationToken) {
        let inflight: Arc<Mutex<HashSet<(UserId, ConversationId)>>> = Arc::default();
        let tasks = TaskTracker::new();
        let every = Duration::from_millis(self.cfg.every_ms.max(1));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
            let now = now_ms();
            let before = now.saturating_sub(self.cfg.collapse_ms);
            let due = match self.state.due_notifications(partition, before, BATCH).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(partition, error = %e, "reading due notifications");
                    continue;
                }
            };
            for n in due {
                let key = (n.user, n.conversation);
                if inflight.lock().expect("inflight").contains(&key) {
                    continue;
                }
                let deliveries = match self.prepare(&n, partition, now).await {
                    Ok(Some(d)) => d,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "preparing a notification");
                        continue;
                    }
                };
                inflight.lock().expect("inflight").insert(key);
                let (me, inflight, stop) = (self.clone(), inflight.clone(), stop.clone());
                tasks.spawn(async move {
                    if me.deliver(&n, deliveries, &stop).await {
                        if let Err(e) = me.state.notification_sent(partition, &n, now_ms()).await {
                            tracing::warn!(error = %e, "clearing a sent notification");
                        }
                    }
                    inflight.lock().expect("inflight").remove(&key);
                });
            }
        }
        tasks.close();
        tasks.wait().await;
    }

    /// The deliveries of `n`, or `None` when it goes no further: dropped
    /// (muted, the user came back, nowhere to send) or left for later
    /// (the user's rate).
    async fn prepare(
        &self,
        n: &PendingNotification,
        partition: u32,
        now: u64,
    ) -> parley_engines::Result<Option<Vec<Delivery>>> {
        let settings: NotifySettings = self
            .state
            .notify_settings(n.user)
            .await?
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default();
        let presence = self.state.presence(n.user).await?.unwrap_or_default();
        let subs: Vec<_> = self
            .state
            .subscriptions(n.user)
            .await?
            .into_iter()
            .filter_map(|s| Some((self.route(&s)?, s)))
            .collect();
        let drop_why = if settings.muted(&n.conversation, now) {
            Some("muted")
        } else if presence.in_foreground(now) {
            Some("foreground")
        } else if subs.is_empty() {
            Some("no_subscription")
        } else {
            None
        };
        if let Some(why) = drop_why {
            emit(NotificationSkipped { why });
            self.state.notification_sent(partition, n, now).await?;
            return Ok(None);
        }
        if self.limiter.check_key(&n.user).is_err() {
            emit(NotificationSkipped {
                why: "rate_limited",
            });
            return Ok(None);
        }
        let text = self.text(n, &settings).await?;
        Ok(Some(
            subs.into_iter()
                .map(|((sink, target), sub)| {
                    let body = self.payload(n, &sub, &target, &text, now);
                    Delivery {
                        sub,
                        sink,
                        target,
                        body,
                    }
                })
                .collect(),
        ))
    }

    /// The sink that takes a subscription, and where it sends; `None` for
    /// a kind whose sink is not configured.
    fn route(&self, s: &StoredSubscription) -> Option<(Arc<dyn Sink>, Target)> {
        match serde_json::from_str::<PushSubscription>(&s.json).ok()? {
            PushSubscription::Webhook { token, platform } => {
                Some((self.webhook.clone()?, Target::Webhook { token, platform }))
            }
            PushSubscription::Webpush { endpoint, keys } => {
                Some((self.webpush.clone()?, Target::WebPush { endpoint, keys }))
            }
        }
    }

    /// Title and body: the sender and the text only if the user allows
    /// previews and there is text (never for `e2e`); else a count.
    async fn text(
        &self,
        n: &PendingNotification,
        settings: &NotifySettings,
    ) -> parley_engines::Result<(String, String)> {
        let generic = if n.count > 1 {
            format!("{} new messages", n.count)
        } else {
            "New message".to_owned()
        };
        match (&n.preview, settings.previews) {
            (Some(p), true) => {
                let from = self.state.account(n.from).await?;
                let name = from.map_or_else(
                    || n.from.to_string(),
                    |a| {
                        if a.display_name.is_empty() {
                            a.username
                        } else {
                            a.display_name
                        }
                    },
                );
                let body = if n.count > 1 {
                    format!("{p} (+{} more)", n.count - 1)
                } else {
                    p.clone()
                };
                Ok((name, body))
            }
            _ => Ok(("Parley".to_owned(), generic)),
        }
    }

    /// The notification's JSON; a gateway's also names the device token
    /// it is for (a browser's push service already knows its browser).
    fn payload(
        &self,
        n: &PendingNotification,
        sub: &StoredSubscription,
        target: &Target,
        (title, body): &(String, String),
        now: u64,
    ) -> Vec<u8> {
        let mut v = json!({
            "id": format!("{}:{}:{}", n.user, n.conversation, n.msg_id),
            "user_id": n.user,
            "device_id": sub.device,
            "subscription_id": sub.id,
            "conversation_id": n.conversation,
            "collapse_key": n.conversation,
            "msg_id": n.msg_id,
            "count": n.count,
            "title": title,
            "body": body,
            "ts": now,
        });
        if let Target::Webhook { token, platform } = target {
            v["token"] = token.as_str().into();
            v["platform"] = platform.as_deref().into();
        }
        v.to_string().into_bytes()
    }

    /// Sends each delivery, retrying with backoff; true once every one
    /// was taken, found gone or dead-lettered (false: stopped first).
    async fn deliver(
        &self,
        n: &PendingNotification,
        deliveries: Vec<Delivery>,
        stop: &CancellationToken,
    ) -> bool {
        for d in deliveries {
            let sink = d.sink.name();
            let mut wait = Duration::from_millis(self.cfg.backoff_ms.max(1));
            let mut tries = 0;
            loop {
                tries += 1;
                let error = match d.sink.send(&d.target, &d.body, now_ms()).await {
                    Outcome::Taken => {
                        emit(NotificationSent {
                            sink,
                            delay_ms: now_ms().saturating_sub(n.first_at),
                        });
                        break;
                    }
                    Outcome::Gone => {
                        emit(NotificationSkipped {
                            why: "subscription_gone",
                        });
                        if let Err(e) = self.state.remove_subscription(n.user, &d.sub.id).await {
                            tracing::warn!(error = %e, "removing a dead subscription");
                        }
                        break;
                    }
                    Outcome::Failed(e) => e,
                };
                let again = tries < self.cfg.max_tries;
                emit(NotificationFailed {
                    sink,
                    error: &error,
                    again,
                });
                if !again {
                    if !self.dead_letter(n, &d, &error, tries).await {
                        return false;
                    }
                    emit(NotificationDeadLettered {
                        sink,
                        error: &error,
                    });
                    break;
                }
                // Jitter spreads retries of many notifications apart.
                let jittered = wait.mul_f64(0.75 + rand::random::<f64>() / 2.0);
                tokio::select! {
                    _ = stop.cancelled() => return false,
                    _ = tokio::time::sleep(jittered) => {}
                }
                wait = (wait * 2).min(Duration::from_millis(self.cfg.max_backoff_ms));
            }
        }
        true
    }

    /// Appends the given-up notification to `notify-dead`; false if the
    /// log refused (it stays queued and is tried again later).
    async fn dead_letter(
        &self,
        n: &PendingNotification,
        d: &Delivery,
        error: &str,
        tries: u32,
    ) -> bool {
        let event = Event::NotificationDead(NotificationDead {
            user: n.user,
            subscription: d.sub.id.clone(),
            payload: String::from_utf8_lossy(&d.body).into_owned(),
            error: error.to_owned(),
            tries,
            ts: now_ms(),
        });
        let p = user_partition(n.user, self.partitions);
        let record = Bytes::from(codec::encode(&event));
        match self.log.append(topics::NOTIFY_DEAD, p, vec![record]).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "dead-lettering a notification");
                false
            }
        }
    }
}
