//! The edge's rate limits and caps, checked where a request comes in:
//! keyed token buckets (governor) per user, per client address and per
//! username, and the bound on password hashes computed at once.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parley_engines::telemetry::emit;
use parley_schemas::ids::UserId;
use parley_schemas::wire::ErrorCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::internal_events::{Limit, LimitHit};
use crate::limits::Limits;

/// One keyed token bucket. Keys not seen lately are forgotten now and
/// then, so its memory follows the clients active lately.
pub struct Throttle<K: Hash + Eq + Clone> {
    limit: Limit,
    limiter: DefaultKeyedRateLimiter<K>,
    checks: AtomicU64,
    what: String,
}

impl<K: Hash + Eq + Clone> Throttle<K> {
    /// `rate` per `per`, with bursts of `burst`; a zero rate is one a period.
    pub fn new(limit: Limit, rate: u32, per: Duration, burst: u32) -> Throttle<K> {
        let rate = rate.max(1);
        let period = per / rate;
        let quota = Quota::with_period(period)
            .expect("a non-zero period")
            .allow_burst(NonZeroU32::new(burst.max(1)).expect("non-zero"));
        Throttle {
            limit,
            limiter: RateLimiter::keyed(quota),
            checks: AtomicU64::new(0),
            what: format!("{rate} per {}s", per.as_secs().max(1)),
        }
    }

    /// Takes one token for `key`, or `rate_limited` with when to retry.
    pub fn check(&self, key: &K) -> Result<(), ApiError> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % 10_000 == 9_999 {
            self.limiter.retain_recent();
        }
        match self.limiter.check_key(key) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                emit(LimitHit { limit: self.limit });
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(ApiError::rate_limited(
                    format!("too many requests: {} ({})", self.limit.label(), self.what),
                    wait,
                ))
            }
        }
    }
}

/// Every limit the edge checks per request.
pub struct Guard {
    pub sends: Throttle<UserId>,
    pub receipts: Throttle<UserId>,
    pub heartbeats: Throttle<UserId>,
    pub history: Throttle<UserId>,
    pub sign_ins_per_ip: Throttle<IpAddr>,
    pub sign_ins_per_account: Throttle<String>,
    pub sign_ups_per_ip: Throttle<IpAddr>,
    pub media_uploads: Throttle<UserId>,
    pub media_chunks: Throttle<UserId>,
    pub account_changes: Throttle<UserId>,
    pub lookups: Throttle<UserId>,
    pub key_claims: Throttle<UserId>,
    pub mqtt_connects_per_ip: Throttle<IpAddr>,
    hashes: Arc<Semaphore>,
    pub limits: Limits,
}

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

impl Guard {
    pub fn new(limits: Limits) -> Guard {
        let l = &limits;
        Guard {
            sends: Throttle::new(Limit::Sends, l.sends_per_sec, SECOND, l.sends_burst),
            receipts: Throttle::new(
                Limit::Receipts,
                l.receipts_per_sec,
                SECOND,
                l.receipts_burst,
            ),
            heartbeats: Throttle::new(
                Limit::Heartbeats,
                l.heartbeats_per_sec,
                SECOND,
                l.heartbeats_burst,
            ),
            history: Throttle::new(Limit::History, l.history_per_sec, SECOND, l.history_burst),
            sign_ins_per_ip: Throttle::new(
                Limit::SignInsPerIp,
                l.sign_ins_per_min_per_ip,
                MINUTE,
                l.sign_ins_per_min_per_ip,
            ),
            sign_ins_per_account: Throttle::new(
                Limit::SignInsPerAccount,
                l.sign_ins_per_min_per_account,
                MINUTE,
                l.sign_ins_per_min_per_account,
            ),
            sign_ups_per_ip: Throttle::new(
                Limit::SignUpsPerIp,
                l.sign_ups_per_hour_per_ip,
                HOUR,
                l.sign_ups_per_hour_per_ip,
            ),
            media_uploads: Throttle::new(
                Limit::MediaUploads,
                l.media_uploads_per_min,
                MINUTE,
                l.media_uploads_per_min,
            ),
            media_chunks: Throttle::new(
                Limit::MediaChunks,
                l.media_chunks_per_min,
                MINUTE,
                l.media_chunks_per_min,
            ),
            account_changes: Throttle::new(
                Limit::AccountChanges,
                l.account_changes_per_min,
                MINUTE,
                l.account_changes_burst,
            ),
            lookups: Throttle::new(Limit::Lookups, l.lookups_per_min, MINUTE, l.lookups_burst),
            key_claims: Throttle::new(
                Limit::KeyClaims,
                l.key_claims_per_min,
                MINUTE,
                l.key_claims_per_min,
            ),
            mqtt_connects_per_ip: Throttle::new(
                Limit::MqttConnects,
                l.mqtt_connects_per_min_per_ip,
                MINUTE,
                l.mqtt_connects_per_min_per_ip,
            ),
            hashes: Arc::new(Semaphore::new(l.hashes_at_once.max(1))),
            limits,
        }
    }

    /// A turn to compute a password hash: at most
    /// [`Limits::hashes_at_once`] run at once, each holding argon2's memory.
    pub async fn hash_turn(&self) -> OwnedSemaphorePermit {
        self.hashes
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }
}

impl ApiError {
    pub fn rate_limited(m: impl Into<String>, wait: Duration) -> Self {
        let mut e = ApiError::new(ErrorCode::RateLimited, m);
        // Whole seconds, rounded up: `Retry-After: 0` would invite a spin.
        e.retry_after_secs = Some(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        e
    }
}

/// The per-user rates a signed-in request counts against, besides its
/// route's own: every change that appends to the account log or rewrites
/// a user's stored settings, and look-ups of other users.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Throttled {
    AccountChange,
    Lookup,
}

impl Guard {
    /// The per-user rates of [`throttled`] for a signed-in request.
    pub fn check_route(
        &self,
        (method, path): (&axum::http::Method, &str),
        user: UserId,
    ) -> Result<(), ApiError> {
        match throttled(method, path) {
            Some(Throttled::AccountChange) => self.account_changes.check(&user),
            Some(Throttled::Lookup) => self.lookups.check(&user),
            None => Ok(()),
        }
    }
}

pub(crate) fn throttled(method: &axum::http::Method, path: &str) -> Option<Throttled> {
    let parts: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
    if method == axum::http::Method::GET {
        return match parts.as_slice() {
            ["users", id] | ["users", id, "presence"] if *id != "me" => Some(Throttled::Lookup),
            _ => None,
        };
    }
    let change = matches!(
        parts.as_slice(),
        ["users", "me"]
            | ["users", "me", "privacy"]
            | ["contacts", ..]
            | ["blocks", ..]
            | ["groups"]
            | ["groups", _]
            | ["groups", _, "invites", ..]
            | ["invites", ..]
            | ["push", "subscriptions", ..]
            | ["push", "settings"]
            | ["conversations", _, "mute" | "pin" | "archive"]
    );
    change.then_some(Throttled::AccountChange)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_changes_and_look_ups_are_told_from_the_rest() {
        use axum::http::Method;
        let t = |m: Method, p: &str| throttled(&m, p);
        for p in [
            "/v1/users/me",
            "/v1/users/me/privacy",
            "/v1/contacts",
            "/v1/contacts/5",
            "/v1/blocks/5",
            "/v1/groups",
            "/v1/groups/9",
            "/v1/groups/9/invites",
            "/v1/invites/abc",
            "/v1/push/subscriptions",
            "/v1/push/settings",
            "/v1/conversations/d:1:2/mute",
            "/v1/conversations/g:9/archive",
        ] {
            for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
                assert_eq!(t(m, p), Some(Throttled::AccountChange), "{p}");
            }
        }
        assert_eq!(t(Method::GET, "/v1/users/7"), Some(Throttled::Lookup));
        assert_eq!(
            t(Method::GET, "/v1/users/7/presence"),
            Some(Throttled::Lookup)
        );
        for (m, p) in [
            (Method::GET, "/v1/users/me"),
            (Method::GET, "/v1/contacts"),
            (Method::POST, "/v1/media"),
            (Method::PUT, "/v1/media/uploads/x"),
            (Method::GET, "/v1/conversations/d:1:2/messages"),
            (Method::POST, "/v1/messages"),
            // An admin's membership changes are bounded by the group's caps.
            (Method::POST, "/v1/groups/9/members"),
            (Method::DELETE, "/v1/groups/9/members/5"),
            (Method::PUT, "/v1/groups/9/admins/5"),
        ] {
            assert_eq!(t(m.clone(), p), None, "{m} {p}");
        }
    }
}
