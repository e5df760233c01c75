//! How far behind the delivery path is, as this edge sees it, and the rule
//! for sends while it is behind.
//!
//! The rule: the edge keeps accepting into the durable log while the
//! pipeline is less than [`Limits::shed_behind_ms`] behind (the log is
//! there to absorb a spike; an ack still means stored). Past that bound a
//! send is answered `unavailable` with a `Retry-After`, and nothing is
//! appended: a backlog that old means the one tick no longer says "soon",
//! and every further message would only wait longer.
//!
//! "Behind" is the age of the oldest record that the router (on `events`)
//! or the sequencer (on `inbox`) has not yet applied, over all partitions,
//! read from the log and the jobs' stored offsets every [`EVERY`]; so it
//! is the same on every edge of a cluster, and it falls as soon as the
//! jobs catch up. Gauge: `parley_pipeline_behind_seconds`; sheds count in
//! `parley_limit_hits_total{limit="backlog"}`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parley_engines::log::ReadLimit;
use parley_engines::telemetry::emit;
use parley_engines::{EngineError, Log, StateStore};
use parley_schemas::ids::now_ms;
use parley_schemas::wire::ErrorCode;
use parley_schemas::{jobs, topics};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::internal_events::{EdgeTrouble, Limit, LimitHit, PipelineBehind};

/// How often the edge measures.
pub const EVERY: Duration = Duration::from_millis(500);

/// The jobs on the way from an ack to a device, with their input topics.
const PATH: [(&str, &str); 2] = [
    (jobs::ROUTER, topics::EVENTS),
    (jobs::SEQUENCER, topics::INBOX),
];

pub struct Backlog {
    /// The last measure, ms.
    behind_ms: AtomicU64,
    /// 0: never shed.
    bound_ms: u64,
}

impl Backlog {
    pub fn new(bound_ms: u64) -> Backlog {
        Backlog {
            behind_ms: AtomicU64::new(0),
            bound_ms,
        }
    }

    /// Whether a send may be appended now.
    pub fn admit(&self) -> Result<(), ApiError> {
        let behind = self.behind_ms.load(Ordering::Relaxed);
        if self.bound_ms == 0 || behind <= self.bound_ms {
            return Ok(());
        }
        emit(LimitHit {
            limit: Limit::Backlog,
        });
        let mut e = ApiError::new(
            ErrorCode::Unavailable,
            format!(
                "delivery is {:.1} s behind; retry later",
                behind as f64 / 1000.0
            ),
        );
        // Long enough for the jobs to work off what is over the bound.
        e.retry_after_secs = Some((behind - self.bound_ms).div_ceil(1000).clamp(1, 30));
        Err(e)
    }

    /// Measures every [`EVERY`] until `stop`.
    pub async fn watch(
        &self,
        log: Arc<dyn Log>,
        state: Arc<dyn StateStore>,
        partitions: u32,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            match behind(log.as_ref(), state.as_ref(), partitions).await {
                Ok(ms) => {
                    self.behind_ms.store(ms, Ordering::Relaxed);
                    emit(PipelineBehind { ms });
                }
                // Keep the last measure: a store that is down fails the
                // sends by itself.
                Err(e) => emit(EdgeTrouble::BacklogUnknown { error: &e }),
            }
        }
    }
}

/// The age in ms of the oldest record on the delivery path not yet applied.
async fn behind(
    log: &dyn Log,
    state: &dyn StateStore,
    partitions: u32,
) -> Result<u64, EngineError> {
    let now = now_ms();
    let mut oldest = now;
    for (job, topic) in PATH {
        for p in 0..partitions {
            let bounds = log.bounds(topic, p).await?;
            let next = state
                .job_offset(job, p)
                .await?
                .unwrap_or(0)
                .max(bounds.start);
            if next >= bounds.end {
                continue;
            }
            let first = log.read(topic, p, next, ReadLimit::records(1)).await?;
            if let Some(r) = first.records.first() {
                oldest = oldest.min(r.timestamp);
            }
        }
    }
    Ok(now.saturating_sub(oldest))
}
