//! The engines' telemetry events (see [`crate::telemetry`]): the job loop,
//! partition ownership and pushes mailed between nodes.

use std::sync::LazyLock;

use prometheus::{
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec,
};

use crate::error::EngineError;
use crate::telemetry::InternalEvent;

static LAG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "parley_consumer_lag_records",
        "Records in the partition that the job has not yet applied",
        &["job", "partition"]
    )
    .expect("metric registers once")
});

static STAGE_LATENCY: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "parley_stage_latency_seconds",
        "Time to get through a stage of the pipeline: `append` (a send queued at the edge to durable in the log), one per job (`router`, `sequencer`, ...: its input record appended to the job's output stored), `push` (stored in the inbox to written to the socket)",
        &["stage"],
        vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
    )
    .expect("metric registers once")
});

static POISONED: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "parley_log_partitions_poisoned",
        "Embedded log partitions refusing appends after a failed write or fsync (a full disk), until they mend"
    )
    .expect("metric registers once")
});

static UNDECODABLE: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "parley_undecodable_records_total",
        "Log records a job could not decode; the partition waits on them",
        &["topic"]
    )
    .expect("metric registers once")
});

static JOB_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "parley_job_failures_total",
        "Job steps that failed and will be retried (a batch is never skipped)",
        &["job"]
    )
    .expect("metric registers once")
});

static JOB_RESUMES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "parley_job_resumes_total",
        "Times a job resumed from somewhere other than where it left off, by why",
        &["job", "why"]
    )
    .expect("metric registers once")
});

// Partition numbers are bounded, so they may be labels.
static OWNED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "parley_partition_owned",
        "1 for each partition this node holds, by scope (role/topic)",
        &["scope", "partition"]
    )
    .expect("metric registers once")
});

static MAIL_SENT: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "parley_mail_pushes_total",
        "Pushes mailed to other nodes for their sockets"
    )
    .expect("metric registers once")
});

static MAIL_FAILED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "parley_mail_failures_total",
        "Push batches that could not be routed or mailed (devices recover them from the store)"
    )
    .expect("metric registers once")
});

/// A record no job can decode was skipped (the log keeps it).
pub struct RecordUndecodable<'a> {
    pub topic: &'a str,
    pub partition: u32,
    pub offset: u64,
    pub error: &'a dyn std::fmt::Display,
}

impl InternalEvent for RecordUndecodable<'_> {
    fn emit(self) {
        UNDECODABLE.with_label_values(&[self.topic]).inc();
        tracing::error!(topic = self.topic, partition = self.partition, offset = self.offset,
            error = %self.error, "undecodable record: the partition waits for a build that reads it");
    }
}

/// How far a job trails the end of its partition. Registered once per job
/// and partition (the series exists from then on, at 0), since the job
/// loop sets it twice a batch: no label look-up on that path.
pub struct ConsumerLag(IntGauge);

impl ConsumerLag {
    pub fn register(job: &str, partition: u32) -> ConsumerLag {
        ConsumerLag(LAG.with_label_values(&[job, &partition.to_string()]))
    }

    pub fn set(&self, records: u64) {
        self.0.set(records as i64);
    }
}

/// One stage's latency histogram, registered once per stage (a job, the
/// edge's appends, its pushes): no label look-up per observation.
#[derive(Clone)]
pub struct StageLatency(Histogram);

impl StageLatency {
    pub fn register(stage: &str) -> StageLatency {
        StageLatency(STAGE_LATENCY.with_label_values(&[stage]))
    }

    pub fn observe(&self, d: std::time::Duration) {
        self.0.observe(d.as_secs_f64());
    }

    /// From `since_ms` (ms since the epoch) to `now_ms`.
    pub fn observe_ms(&self, since_ms: u64, now_ms: u64) {
        self.0
            .observe(now_ms.saturating_sub(since_ms) as f64 / 1000.0);
    }
}

/// An embedded log partition was poisoned (`true`) or mended (`false`).
pub struct PartitionPoisoned {
    pub poisoned: bool,
}

impl InternalEvent for PartitionPoisoned {
    fn emit(self) {
        if self.poisoned {
            POISONED.inc();
        } else {
            POISONED.dec();
        }
    }
}

/// What became of a partition's lease on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    Taken,
    /// Above the fair share: handed back once its task finished.
    HandedBack,
    /// The node is stopping cleanly.
    Stopped,
    /// Another node holds the lease now.
    LeaseLost,
    /// Not renewed for nearly a TTL: stopped before others may take it.
    MayLapse,
}

/// This node took a partition's lease, or no longer holds it.
pub struct PartitionOwned<'a> {
    pub scope: &'a str,
    pub partition: u32,
    pub node: u32,
    pub what: Ownership,
}

impl InternalEvent for PartitionOwned<'_> {
    fn emit(self) {
        let (scope, partition, node) = (self.scope, self.partition, self.node);
        let owned = self.what == Ownership::Taken;
        OWNED
            .with_label_values(&[scope, &partition.to_string()])
            .set(i64::from(owned));
        match self.what {
            Ownership::Taken => tracing::info!(scope, partition, node, "partition taken"),
            Ownership::HandedBack => {
                tracing::info!(scope, partition, "partition handed back")
            }
            Ownership::Stopped => tracing::info!(scope, partition, "partition stopped"),
            Ownership::LeaseLost => tracing::warn!(scope, partition, "lease lost"),
            Ownership::MayLapse => {
                tracing::warn!(scope, partition, "lease may lapse; partition stopped")
            }
        }
    }
}

/// Pushes were mailed to the edge holding their sockets.
pub struct PushesMailed {
    pub count: usize,
}

impl InternalEvent for PushesMailed {
    fn emit(self) {
        MAIL_SENT.inc_by(self.count as u64);
    }
}

/// A batch of pushes could not be routed or mailed; devices recover the
/// items from the store.
pub struct PushesNotMailed<'a> {
    pub error: &'a EngineError,
}

impl InternalEvent for PushesNotMailed<'_> {
    fn emit(self) {
        MAIL_FAILED.inc();
        tracing::warn!(error = %self.error, "routing pushes failed; devices recover them from the store");
    }
}

/// A job step (read, process, apply) failed; the same batch is retried.
pub struct JobStepFailed<'a> {
    pub job: &'a str,
    pub partition: u32,
    pub error: &'a EngineError,
}

impl InternalEvent for JobStepFailed<'_> {
    fn emit(self) {
        JOB_FAILURES.with_label_values(&[self.job]).inc();
        tracing::warn!(job = self.job, partition = self.partition, error = %self.error,
            retry = ?self.error.retry(), "job step failed; retrying");
    }
}

/// Why a job resumed somewhere other than where it left off.
#[derive(Debug, Clone, Copy)]
pub enum Resume {
    /// Its records were removed by retention: it goes on at the log's start.
    Expired { from: u64, start: u64 },
    /// The stored offset is not the one it wrote: another run got further,
    /// or the store was wiped (then it replays the log, rebuilding it).
    OffsetMoved {
        expected: Option<u64>,
        found: Option<u64>,
        idle: bool,
    },
}

pub struct JobResumed<'a> {
    pub job: &'a str,
    pub partition: u32,
    pub why: Resume,
}

impl InternalEvent for JobResumed<'_> {
    fn emit(self) {
        let (job, partition) = (self.job, self.partition);
        match self.why {
            Resume::Expired { from, start } => {
                JOB_RESUMES.with_label_values(&[job, "expired"]).inc();
                tracing::warn!(
                    job,
                    partition,
                    from,
                    start,
                    "records before the log start were removed by retention; resuming at the start"
                );
            }
            Resume::OffsetMoved {
                expected,
                found,
                idle,
            } => {
                JOB_RESUMES.with_label_values(&[job, "offset_moved"]).inc();
                let under = if idle { "this idle job" } else { "this job" };
                tracing::warn!(
                    job,
                    partition,
                    ?expected,
                    ?found,
                    "the stored offset moved under {under}; resuming from it"
                );
            }
        }
    }
}
