//! What `parley-loadgen` does the same whatever protocol it speaks: the
//! rate profile and each sender's schedule, the latency histograms, the
//! counters, and each pair's ledger of acked and received messages.
//!
//! A message's body is `lg <due µs> <n>`: when it was due (so latency
//! counts from then: no coordinated omission when a sender falls behind)
//! and its number in its pair's stream (for lost and duplicate counts).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Semaphore;

/// Total send rates over time: `(seconds, msg/s)` segments, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile(pub Vec<(f64, u64)>);

pub fn parse_profile(s: &str) -> Result<Profile, String> {
    let segments = s
        .split(',')
        .map(|seg| {
            let (secs, rate) = seg.split_once('@').ok_or("segments are SECONDS@RATE")?;
            let secs: f64 = secs
                .trim()
                .parse()
                .map_err(|_| format!("bad seconds in {seg}"))?;
            let rate: u64 = rate
                .trim()
                .parse()
                .map_err(|_| format!("bad rate in {seg}"))?;
            if secs <= 0.0 || rate == 0 {
                return Err(format!("{seg}: seconds and rate must be positive"));
            }
            Ok((secs, rate))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Profile(segments))
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let segments: Vec<String> = self.0.iter().map(|(s, r)| format!("{s}@{r}")).collect();
        f.write_str(&segments.join(","))
    }
}

impl Profile {
    pub fn seconds(&self) -> f64 {
        self.0.iter().map(|s| s.0).sum()
    }

    /// The total rate `t` seconds into the profile (before it: the first
    /// segment's; after it: the last's).
    pub fn rate_at(&self, t: f64) -> u64 {
        let mut end = 0.0;
        for &(secs, rate) in &self.0 {
            end += secs;
            if t < end {
                return rate;
            }
        }
        self.0.last().map_or(0, |s| s.1)
    }
}

/// One sender's schedule: open loop by the profile, its share of the
/// total rate; or flat out with a window of unanswered sends.
pub struct Schedule {
    next: Option<Instant>,
    profile: Option<Profile>,
    pairs: f64,
    run_start: Instant,
}

impl Schedule {
    /// Sender `i` of `pairs`; the profile's time 0 is `run_start`.
    pub fn new(profile: Option<Profile>, pairs: usize, i: usize, run_start: Instant) -> Schedule {
        let pairs = pairs as f64;
        // Senders start spread over their first interval.
        let next = profile.as_ref().map(|p| {
            let first = pairs / p.rate_at(-1.0) as f64;
            Instant::now() + Duration::from_secs_f64(first * (i as f64 / 1000.0 % 1.0))
        });
        Schedule {
            next,
            profile,
            pairs,
            run_start,
        }
    }

    /// Waits for the next send and says when it was due: on schedule (a
    /// late one goes at once, keeping its own due time), or, flat out, now
    /// that `window` has room.
    pub async fn next(&mut self, window: &Semaphore) -> Instant {
        match (&mut self.next, &self.profile) {
            (Some(at), Some(p)) => {
                let due = *at;
                tokio::time::sleep_until(due.into()).await;
                let t = due.saturating_duration_since(self.run_start).as_secs_f64()
                    - self.run_start.saturating_duration_since(due).as_secs_f64();
                *at = due + Duration::from_secs_f64(self.pairs / p.rate_at(t) as f64);
                due
            }
            _ => {
                window.acquire().await.expect("never closed").forget();
                Instant::now()
            }
        }
    }
}

/// Send → deliver latency in µs: over the measured run, and over the
/// current second (for the timeline).
pub struct Latency {
    pub run: Histogram<u64>,
    pub second: Histogram<u64>,
}

impl Latency {
    fn record(&mut self, us: u64) {
        let _ = self.run.record(us);
        let _ = self.second.record(us);
    }
}

#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub delivered: AtomicU64,
    pub errors: AtomicU64,
    /// Receipts the receivers sent (`--receipts`).
    pub receipts: AtomicU64,
    /// `status` frames the senders got, by kind.
    pub status_delivered: AtomicU64,
    pub status_read: AtomicU64,
}

/// One pair's sends: what the server acked and what the receiver got, by
/// message number.
#[derive(Default)]
pub struct Ledger {
    pub acked: HashSet<u64>,
    pub received: HashSet<u64>,
    pub duplicates: u64,
}

/// What every pair's tasks share.
pub struct Shared {
    pub hist: Mutex<Latency>,
    pub counters: Counters,
    /// Whether arrivals count toward latency (not during the warm-up).
    pub measuring: AtomicBool,
    epoch: Instant,
}

impl Shared {
    pub fn new() -> Shared {
        let h = || Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
        Shared {
            hist: Mutex::new(Latency {
                run: h(),
                second: h(),
            }),
            counters: Counters::default(),
            measuring: AtomicBool::new(false),
            epoch: Instant::now(),
        }
    }

    /// The body of message `n`, due at `due`.
    pub fn body(&self, due: Instant, n: u64) -> String {
        let due_us = due.saturating_duration_since(self.epoch).as_micros();
        format!("lg {due_us} {n}")
    }

    /// Message `n` was acked (for XMPP: written, as it has no per-message
    /// ack without stream management).
    pub fn acked(&self, ledger: &Mutex<Ledger>, n: u64) {
        self.counters.acked.fetch_add(1, Ordering::Relaxed);
        ledger.lock().unwrap().acked.insert(n);
    }

    /// A body arrived at the pair's receiver.
    pub fn arrived(&self, ledger: &Mutex<Ledger>, body: &str) {
        let mut words = body.split(' ').skip(1);
        let due_us: u64 = words.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if let Some(n) = words.next().and_then(|s| s.parse::<u64>().ok()) {
            let mut l = ledger.lock().unwrap();
            if !l.received.insert(n) {
                l.duplicates += 1;
            }
        }
        if self.measuring.load(Ordering::Relaxed) {
            let now_us = self.epoch.elapsed().as_micros() as u64;
            self.hist
                .lock()
                .unwrap()
                .record(now_us.saturating_sub(due_us).max(1));
            self.counters.delivered.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Default for Shared {
    fn default() -> Self {
        Shared::new()
    }
}

/// Acked messages that never arrived, and arrivals seen before.
pub fn tally(ledgers: &[std::sync::Arc<Mutex<Ledger>>]) -> (u64, u64) {
    ledgers.iter().fold((0, 0), |(lost, dup), l| {
        let l = l.lock().unwrap();
        (
            lost + l.acked.difference(&l.received).count() as u64,
            dup + l.duplicates,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_and_give_the_rate_at_a_time() {
        let p = parse_profile("30@500, 60@5000,60@500").unwrap();
        assert_eq!(p.seconds(), 150.0);
        assert_eq!(
            (p.rate_at(-3.0), p.rate_at(29.9), p.rate_at(30.0)),
            (500, 500, 5000)
        );
        assert_eq!((p.rate_at(149.0), p.rate_at(200.0)), (500, 500));
        assert_eq!(p.to_string(), "30@500,60@5000,60@500");
        assert!(parse_profile("30@0").is_err());
        assert!(parse_profile("30").is_err());
    }

    #[test]
    fn ledgers_count_lost_and_duplicates() {
        let s = Shared::new();
        let l = std::sync::Arc::new(Mutex::new(Ledger::default()));
        for n in 0..3 {
            s.acked(&l, n);
        }
        s.arrived(&l, &s.body(Instant::now(), 0));
        s.arrived(&l, &s.body(Instant::now(), 2));
        s.arrived(&l, &s.body(Instant::now(), 2));
        assert_eq!(tally(&[l]), (1, 1));
    }
}
