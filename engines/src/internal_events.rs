//! The engines' telemetry events (see [`crate::telemetry`]): the job loop,
//! partition ownership and pushes mailed between nodes.

use std::sync::LazyLock;

use prometheus::{
    register_int_counter, register_int_counter_vec, register_int_gauge_vec, IntCounter,
    IntCounterVec, IntGaugeVec,
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

static UNDECODABLE: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "parley_undecodable_records_total",
        "Log records no job could decode, skipped",
        &["topic"]
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
            error = %self.error, "undecodable record skipped");
    }
}

/// How far a job trails the end of its partition.
pub struct ConsumerLag<'a> {
    pub job: &'a str,
    pub partition: u32,
    pub records: u64,
}

impl InternalEvent for ConsumerLag<'_> {
    fn emit(self) {
        LAG.with_label_values(&[self.job, &self.partition.to_string()])
            .set(self.records as i64);
    }
}

/// This node took a partition's lease, or no longer holds it.
pub struct PartitionOwned<'a> {
    pub scope: &'a str,
    pub partition: u32,
    pub owned: bool,
    /// Why it was let go, when it was (for the log).
    pub why: &'a str,
}

impl InternalEvent for PartitionOwned<'_> {
    fn emit(self) {
        OWNED
            .with_label_values(&[self.scope, &self.partition.to_string()])
            .set(i64::from(self.owned));
        match (self.owned, self.why) {
            (true, _) => {
                tracing::info!(
                    scope = self.scope,
                    partition = self.partition,
                    "partition taken"
                )
            }
            (false, "handed back" | "stopped") => tracing::info!(
                scope = self.scope,
                partition = self.partition,
                why = self.why,
                "partition released"
            ),
            (false, why) => {
                tracing::warn!(
                    scope = self.scope,
                    partition = self.partition,
                    why,
                    "partition let go"
                )
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
