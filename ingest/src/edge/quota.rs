//! The daily upload quota, per user, on this edge: bytes stored today,
//! and bytes promised to resumable sessions begun today. A session is
//! charged its declared size when it begins (so opening many sessions
//! cannot hold more than the quota in parts), and refunded if it expires
//! unfinished.

use std::collections::HashMap;
use std::sync::Mutex;

use parley_schemas::ids::{now_ms, UserId};
use parley_schemas::media::MediaId;

pub const DAY_MS: u64 = 86_400_000;

/// Past this many users, yesterday's entries are dropped as today's come.
const TIDY_PAST: usize = 100_000;

/// A session charged on this edge and not yet finished.
struct Open {
    id: MediaId,
    size: u64,
    day: u64,
    expires_at: u64,
}

#[derive(Default)]
struct Books {
    /// (day, bytes charged that day) per user.
    used: HashMap<UserId, (u64, u64)>,
    /// Sessions charged here and not finished, per user.
    open: HashMap<UserId, Vec<Open>>,
}

pub struct DailyQuota {
    per_day: u64,
    books: Mutex<Books>,
}

impl DailyQuota {
    pub fn new(per_day: u64) -> DailyQuota {
        DailyQuota {
            per_day,
            books: Mutex::default(),
        }
    }

    /// What `user` may still upload today.
    pub fn left(&self, user: UserId) -> u64 {
        let now = now_ms();
        let mut b = self.books.lock().expect("quota");
        b.refund_expired(user, now);
        let used = b
            .used
            .get(&user)
            .filter(|(d, _)| *d == now / DAY_MS)
            .map_or(0, |(_, n)| *n);
        self.per_day.saturating_sub(used)
    }

    /// Counts `bytes` against today's quota.
    pub fn charge(&self, user: UserId, bytes: u64) {
        self.books
            .lock()
            .expect("quota")
            .charge(user, bytes, now_ms());
    }

    /// A resumable session of `size` bytes began: charged now, refunded
    /// by [`left`](Self::left) if it is still open at `expires_at`.
    pub fn begin(&self, user: UserId, id: MediaId, size: u64, expires_at: u64) {
        let now = now_ms();
        let mut b = self.books.lock().expect("quota");
        b.charge(user, size, now);
        b.open.entry(user).or_default().push(Open {
            id,
            size,
            day: now / DAY_MS,
            expires_at,
        });
    }

    /// Session `id` finished: whether this edge charged it at `begin`
    /// (otherwise it began on another edge, and is charged as it is stored).
    pub fn finish(&self, user: UserId, id: MediaId) -> bool {
        let mut b = self.books.lock().expect("quota");
        let Some(open) = b.open.get_mut(&user) else {
            return false;
        };
        let before = open.len();
        open.retain(|o| o.id != id);
        let found = open.len() < before;
        if open.is_empty() {
            b.open.remove(&user);
        }
        found
    }
}

impl Books {
    fn charge(&mut self, user: UserId, bytes: u64, now: u64) {
        let day = now / DAY_MS;
        if self.used.len() > TIDY_PAST {
            self.used.retain(|_, (d, _)| *d == day);
            self.open.retain(|_, o| {
                o.retain(|s| s.expires_at > now);
                !o.is_empty()
            });
        }
        let e = self.used.entry(user).or_insert((day, 0));
        if e.0 != day {
            *e = (day, 0);
        }
        e.1 += bytes;
    }

    /// Gives back what `user`'s expired, unfinished sessions were charged
    /// today (yesterday's charges are gone with yesterday).
    fn refund_expired(&mut self, user: UserId, now: u64) {
        let Some(open) = self.open.get_mut(&user) else {
            return;
        };
        let mut refund = 0;
        open.retain(|o| {
            let expired = o.expires_at <= now;
            if expired && o.day == now / DAY_MS {
                refund += o.size;
            }
            !expired
        });
        if open.is_empty() {
            self.open.remove(&user);
        }
        if let Some(e) = self.used.get_mut(&user) {
            if e.0 == now / DAY_MS {
                e.1 = e.1.saturating_sub(refund);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_charged_at_begin_and_refunded_only_if_it_expires_unfinished() {
        let q = DailyQuota::new(1_000);
        let user = UserId(7);
        let (a, b) = (MediaId::random(), MediaId::random());
        q.begin(user, a, 600, now_ms() + 60_000);
        assert_eq!(q.left(user), 400, "charged at begin");
        q.begin(user, b, 300, now_ms() - 1);
        // `b` expired unfinished: refunded; `a` still open.
        assert_eq!(q.left(user), 400);
        assert!(q.finish(user, a), "this edge charged it");
        assert_eq!(q.left(user), 400, "finishing keeps the charge");
        assert!(!q.finish(user, b), "b was refunded and forgotten");
        q.charge(user, 400);
        assert_eq!(q.left(user), 0);
    }
}
