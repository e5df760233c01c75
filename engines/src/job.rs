//! The consumer loop every job runs: resume from the offset stored with
//! the job's output, tail the partition (notified, no polling), hand each
//! batch to the job, then store its output and the new offset in one
//! atomic `JobStore::apply`. A crash anywhere replays from the stored
//! offset, and `apply` refuses a batch already applied, so replay is
//! idempotent.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parley_schemas::ids::now_ms;
use parley_schemas::{codec, Event};
use tokio_util::sync::CancellationToken;

use crate::error::{EngineError, Result};
use crate::internal_events::{
    ConsumerLag, JobResumed, JobStepFailed, RecordUndecodable, Resume, StageLatency,
};
use crate::log::{Log, ReadLimit, Record};
use crate::state::{Applied, JobStore, StateOp};
use crate::telemetry::emit;

/// The events of `records` with their offsets, in order. A record that
/// does not decode (a newer build's, during a rolling upgrade, or a
/// corrupt one) fails the batch: the job retries it with backoff and the
/// partition waits, counted in `parley_undecodable_records_total` and
/// alerted on, until a build that reads it takes over. Skipping it would
/// drop what may be an acked message.
pub fn events(topic: &str, partition: u32, records: &[Record]) -> Result<Vec<(u64, Event)>> {
    records
        .iter()
        .map(|r| match codec::decode(&r.payload) {
            Ok(e) => Ok((r.offset, e)),
            Err(e) => {
                emit(RecordUndecodable {
                    topic,
                    partition,
                    offset: r.offset,
                    error: &e,
                });
                Err(EngineError::Undecodable {
                    topic: topic.to_owned(),
                    partition,
                    offset: r.offset,
                    reason: e.to_string(),
                })
            }
        })
        .collect()
}

/// One job's logic over a batch of records.
#[async_trait]
pub trait Processor: Send {
    /// Derives the state writes for `records`. It may append to other
    /// topics before returning: those appends happen again on replay, so
    /// their consumers must tolerate duplicates.
    async fn process(&mut self, partition: u32, records: &[Record]) -> Result<Vec<StateOp>>;

    /// Whether to keep collecting records after these first ones arrived
    /// (beyond [`JobSpec::linger`]): a job whose cost per batch dwarfs its
    /// cost per record can ask for more while they keep coming.
    fn linger(&self, _first: &[Record]) -> Option<Linger> {
        None
    }

    /// After the writes and offset are stored (`Written`), or refused
    /// because the stored offset moved (`Stale`): caches must be dropped.
    async fn committed(&mut self, _applied: Applied) {}
}

/// Collect more records for up to `max`, but stop as soon as none has
/// come for `idle`: a lone record waits `idle`, a steady stream fills
/// batches of up to `max` of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linger {
    pub max: Duration,
    pub idle: Duration,
}

pub struct JobSpec {
    pub job: String,
    pub topic: String,
    pub partition: u32,
    pub batch: usize,
    /// How long to keep collecting records after the first ones arrive,
    /// until `batch` are in hand: sinks that want few large writes (the
    /// history store) set it; zero hands each read over at once.
    pub linger: Duration,
    /// Fired once the job has applied everything the partition held when
    /// the job started.
    pub caught_up: Option<tokio::sync::oneshot::Sender<()>>,
}

/// How long a job waits for records before it checks its stored offset.
const IDLE_CHECK: Duration = Duration::from_secs(2);

/// Runs until `shutdown` is cancelled. Failures are retried with backoff
/// (the batch is never skipped, not even for a record that does not
/// decode: skipping would lose messages). `state` is
/// where the job's output goes with its offset.
pub async fn run_job<P: Processor>(
    log: Arc<dyn Log>,
    state: Arc<dyn JobStore>,
    spec: JobSpec,
    mut processor: P,
    shutdown: CancellationToken,
) {
    let mut spec = spec;
    let mut caught_up = spec.caught_up.take();
    let mut target: Option<u64> = None;
    // Where to read next; `None` until asked of the store (at start and
    // after a failure), since after each apply the loop knows it.
    let mut position: Option<u64> = None;
    // The offset the store holds for this job, as last read or written:
    // `apply` writes only if it is still that.
    let mut stored: Option<u64> = None;
    // Whether `stored` was read once: later reads that differ mean the
    // offset moved under this run.
    let mut loaded = false;
    let lag = ConsumerLag::register(&spec.job, spec.partition);
    let stage = StageLatency::register(&spec.job);
    let resumed = |why: Resume| {
        emit(JobResumed {
            job: &spec.job,
            partition: spec.partition,
            why,
        })
    };
    let mut backoff = Duration::from_millis(50);
    while !shutdown.is_cancelled() {
        let step = async {
            let from = match position {
                Some(p) => p,
                None => {
                    let now = state.job_offset(&spec.job, spec.partition).await?;
                    if loaded && now != stored {
                        // The store lost or moved the offset while this run
                        // was away (a failed step: the store restarted
                        // empty, or another owner went on): what the
                        // processor cached of it is wrong now.
                        resumed(Resume::OffsetMoved {
                            expected: stored,
                            found: now,
                            idle: false,
                        });
                        processor.committed(Applied::Stale { committed: now }).await;
                    }
                    loaded = true;
                    stored = now;
                    let from = stored.unwrap_or(0);
                    let bounds = log.bounds(&spec.topic, spec.partition).await?;
                    target.get_or_insert(bounds.end);
                    if from < bounds.start {
                        resumed(Resume::Expired {
                            from,
                            start: bounds.start,
                        });
                    }
                    from.max(bounds.start)
                }
            };
            if target.is_some_and(|t| from >= t) {
                if let Some(tx) = caught_up.take() {
                    let _ = tx.send(());
                }
            }
            let limit = ReadLimit::records(spec.batch);
            let mut batch = tokio::select! {
                b = log.tail(&spec.topic, spec.partition, from, limit) => b?,
                _ = shutdown.cancelled() => return Ok::<_, EngineError>(()),
                // Idle: check that the store still holds our offset. If it
                // was wiped, replay now, not when the next record comes.
                _ = tokio::time::sleep(IDLE_CHECK) => {
                    let now = state.job_offset(&spec.job, spec.partition).await?;
                    if now != stored {
                        resumed(Resume::OffsetMoved {
                            expected: stored,
                            found: now,
                            idle: true,
                        });
                        position = None;
                        // Caches of what the store held are wrong now.
                        processor.committed(Applied::Stale { committed: now }).await;
                    }
                    return Ok(());
                }
            };
            let fixed = Linger {
                max: spec.linger,
                idle: spec.linger,
            };
            let linger = match processor.linger(&batch.records) {
                Some(l) if l.max > fixed.max => l,
                _ => fixed,
            };
            let deadline = tokio::time::Instant::now() + linger.max;
            while !linger.max.is_zero() && batch.records.len() < spec.batch {
                let limit = ReadLimit::records(spec.batch - batch.records.len());
                let until = deadline.min(tokio::time::Instant::now() + linger.idle);
                let more = tokio::select! {
                    b = log.tail(&spec.topic, spec.partition, batch.next_offset, limit) => b?,
                    _ = tokio::time::sleep_until(until) => break,
                    _ = shutdown.cancelled() => break,
                };
                batch.records.extend(more.records);
                batch.next_offset = more.next_offset;
                batch.end = more.end;
            }
            // Set before processing too, so a sink that keeps failing
            // shows its lag growing.
            lag.set(batch.end.saturating_sub(from));
            let ops = processor.process(spec.partition, &batch.records).await?;
            let applied = state
                .apply(&spec.job, spec.partition, stored, batch.next_offset, ops)
                .await?;
            lag.set(batch.end.saturating_sub(batch.next_offset));
            position = match applied {
                Applied::Written => {
                    let now = now_ms();
                    for r in &batch.records {
                        stage.observe_ms(r.timestamp, now);
                    }
                    stored = Some(batch.next_offset);
                    stored
                }
                // Another run moved the offset, or the store was wiped:
                // resume from what it holds (a wiped store replays the
                // log from its start, rebuilding what was lost).
                Applied::Stale { committed } => {
                    resumed(Resume::OffsetMoved {
                        expected: stored,
                        found: committed,
                        idle: false,
                    });
                    None
                }
            };
            processor.committed(applied).await;
            Ok(())
        };
        match step.await {
            Ok(()) => backoff = Duration::from_millis(50),
            Err(e) => {
                position = None;
                emit(JobStepFailed {
                    job: &spec.job,
                    partition: spec.partition,
                    error: &e,
                });
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
