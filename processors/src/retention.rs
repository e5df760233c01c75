//! Log retention: a periodic pass that drops what every consumer of a
//! topic has passed, once it is older than `retention.log_hours`, or at
//! once while the embedded log's disk runs short of space. One per
//! deployment (it runs beside partition 0's processor jobs).
//!
//! Who consumes what (a topic's records stay until the slowest of these
//! has passed them, so no consumer ever misses one):
//! - `events`: the router and the history writer;
//! - `presence`: the presence job and the presence-session writer;
//! - `inbox`: the sequencer, and the notifier when it runs;
//! - `notify-dead` and `moderation`: nobody (operators read them): by
//!   age only.
//!
//! `accounts` is never trimmed: it is what the state store is rebuilt
//! from. It is compacted instead ([`crate::compaction`]: the latest
//! record per key stays), every `accounts_compact_every_ms`. A deployment
//! that keeps the log shorter than its state store cannot rebuild the
//! derived rest of that store from it: ARCHITECTURE.md, "State durability".

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parley_engines::state::StateStore;
use parley_engines::telemetry::emit;
use parley_engines::{Bounds, EngineError, History, Log, Result};
use parley_schemas::ids::now_ms;
use parley_schemas::{jobs, topics};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::internal_events::{InboxExpired, LogCompacted, LogDiskPressure, LogTrimmed};

/// `[retention]` of the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// `history` (scrollback from the history store) or
    /// `until_delivered` (inbox items go once every device has them, the
    /// history keeps metadata only); docs/retention.md.
    pub mode: parley_schemas::retention::RetentionMode,
    /// Scrollback kept this many days (in either mode, of what the
    /// history holds); 0: for ever.
    pub history_days: u64,
    /// Inbox rows are kept at most this many days (fractions allowed):
    /// older ones are deleted, and a device that had not confirmed them is
    /// told when it syncs (`expired`). 0: kept until confirmed.
    pub undelivered_days: f64,
    /// Records every consumer has passed stay this long, for operators
    /// and for consumers added later (fractions allowed). 0: they go at
    /// the next pass.
    pub log_hours: f64,
    /// How often the retention pass runs.
    pub log_every_ms: u64,
    /// How often history older than `history_days` is deleted (a
    /// ClickHouse mutation rewrites parts: hourly is plenty).
    pub history_every_ms: u64,
    /// `until_delivered`: sent media is deleted once every recipient has
    /// fetched it, or once this many days old (fractions allowed) if
    /// sooner. 0: only once fetched by all.
    pub media_days: f64,
    /// Below this share of free space on the embedded log's disk (in
    /// percent), what every consumer has passed goes at once.
    pub disk_min_free_pct: u8,
    /// How often the `accounts` topic is compacted (each pass reads it
    /// whole); 0: never.
    pub accounts_compact_every_ms: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            mode: Default::default(),
            history_days: 0,
            undelivered_days: 30.0,
            media_days: 30.0,
            log_hours: 7.0 * 24.0,
            log_every_ms: 60_000,
            history_every_ms: 3_600_000,
            disk_min_free_pct: 10,
            accounts_compact_every_ms: 3_600_000,
        }
    }
}

/// Each trimmed topic and the jobs that consume it.
pub fn consumers(notifier: bool) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut inbox = vec![jobs::SEQUENCER];
    if notifier {
        inbox.push(jobs::NOTIFIER);
    }
    vec![
        (topics::EVENTS, vec![jobs::ROUTER, jobs::HISTORY]),
        (
            topics::PRESENCE,
            vec![jobs::PRESENCE, jobs::HISTORY_SESSIONS],
        ),
        (topics::INBOX, inbox),
        (topics::NOTIFY_DEAD, vec![]),
        (topics::MODERATION, vec![]),
    ]
}

pub struct LogRetention {
    pub log: Arc<dyn Log>,
    /// Where `history_days` applies.
    pub history: Arc<dyn History>,
    /// Job offsets, and the inboxes `undelivered_days` applies to.
    pub state: Arc<dyn StateStore>,
    pub partitions: u32,
    pub topics: Vec<(&'static str, Vec<&'static str>)>,
    pub cfg: RetentionConfig,
    /// The embedded log's directory (disk pressure is watched there);
    /// `None` for logs on servers.
    pub disk: Option<PathBuf>,
}

/// Where partition `p` of `topic` stands, and the slowest of `jobs`' next
/// offsets there (a job that never ran holds everything: the start);
/// `None` while the topic does not exist (a newer release's).
pub async fn consumers_floor(
    log: &dyn Log,
    state: &dyn StateStore,
    topic: &str,
    p: u32,
    jobs: &[&str],
) -> Result<Option<(Bounds, u64)>> {
    let bounds = match log.bounds(topic, p).await {
        Ok(b) => b,
        Err(EngineError::UnknownTopic(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut floor = bounds.end;
    for job in jobs {
        let at = state.job_offset(job, p).await?;
        floor = floor.min(at.unwrap_or(bounds.start));
    }
    Ok(Some((bounds, floor)))
}

/// The share of `dir`'s filesystem free to unprivileged writers, percent.
fn free_pct(dir: &std::path::Path) -> Option<u8> {
    let s = rustix::fs::statvfs(dir).ok()?;
    if s.f_blocks == 0 {
        return None;
    }
    Some((s.f_bavail.saturating_mul(100) / s.f_blocks).min(100) as u8)
}

impl LogRetention {
    /// A pass every `log_every_ms` until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let every = Duration::from_millis(self.cfg.log_every_ms.max(1));
        let history_every = Duration::from_millis(self.cfg.history_every_ms.max(1));
        let compact_every = Duration::from_millis(self.cfg.accounts_compact_every_ms);
        let mut history_due = tokio::time::Instant::now();
        let mut compact_due = tokio::time::Instant::now() + compact_every;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if !compact_every.is_zero() && tokio::time::Instant::now() >= compact_due {
                compact_due = tokio::time::Instant::now() + compact_every;
                if let Err(e) = self.compact_accounts().await {
                    tracing::warn!(error = %e, "compacting accounts failed; trying again later");
                }
            }
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "log retention pass failed; trying again at the next");
            }
            if tokio::time::Instant::now() >= history_due {
                history_due += history_every;
                self.expire().await;
            }
        }
    }

    /// Compacts every partition of `accounts` below its consumers'
    /// positions; the records dropped.
    pub async fn compact_accounts(&self) -> Result<u64> {
        let mut dropped = 0;
        for p in 0..self.partitions {
            let consumers = &crate::compaction::CONSUMERS;
            let found = consumers_floor(&*self.log, &*self.state, topics::ACCOUNTS, p, consumers);
            let Some((bounds, floor)) = found.await? else {
                continue;
            };
            let n =
                crate::compaction::compact_partition(&*self.log, p, bounds.start..floor).await?;
            if n > 0 {
                emit(LogCompacted {
                    topic: topics::ACCOUNTS,
                    records: n,
                });
                dropped += n;
            }
        }
        Ok(dropped)
    }

    /// Scrollback past `history_days`, inbox items past
    /// `undelivered_days`.
    pub async fn expire(&self) {
        let days_ago = |d: u64| now_ms().saturating_sub(d.saturating_mul(86_400_000));
        if self.cfg.history_days > 0 {
            if let Err(e) = self.history.expire(days_ago(self.cfg.history_days)).await {
                tracing::warn!(error = %e, "expiring history failed; trying again later");
            }
        }
        if self.cfg.undelivered_days > 0.0 {
            let keep_ms = (self.cfg.undelivered_days * 86_400_000.0) as u64;
            match self
                .state
                .expire_inbox(now_ms().saturating_sub(keep_ms))
                .await
            {
                Ok(rows) => emit(InboxExpired { rows }),
                Err(e) => tracing::warn!(error = %e, "expiring inboxes failed; trying again later"),
            }
        }
    }

    /// One pass over every partition of every trimmed topic; the records
    /// dropped.
    pub async fn pass(&self) -> Result<u64> {
        let pressure = self
            .disk
            .as_deref()
            .and_then(free_pct)
            .is_some_and(|free| free < self.cfg.disk_min_free_pct);
        if pressure {
            emit(LogDiskPressure);
        }
        let older_than = if pressure {
            u64::MAX
        } else {
            now_ms().saturating_sub((self.cfg.log_hours.max(0.0) * 3_600_000.0) as u64)
        };
        let mut dropped = 0;
        for (topic, jobs) in &self.topics {
            for p in 0..self.partitions {
                // A topic not made yet (a newer release's) holds nothing to
                // trim; the others still are.
                let found = consumers_floor(&*self.log, &*self.state, topic, p, jobs).await?;
                let Some((bounds, floor)) = found else {
                    continue;
                };
                if floor <= bounds.start {
                    continue;
                }
                let start = self.log.trim(topic, p, floor, older_than).await?;
                let n = start.saturating_sub(bounds.start);
                if n > 0 {
                    emit(LogTrimmed { topic, records: n });
                    dropped += n;
                }
            }
        }
        Ok(dropped)
    }
}
