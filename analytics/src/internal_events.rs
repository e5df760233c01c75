//! The history writer's telemetry events (see `parley_engines::telemetry`).

use std::sync::LazyLock;

use parley_engines::telemetry::InternalEvent;
use parley_engines::EngineError;
use prometheus::{register_int_counter_vec, IntCounterVec};

static ROWS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "parley_history_rows_total",
        "Rows the history writer handed to the history store, by table",
        &["table"]
    )
    .expect("metric registers once")
});

static FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "parley_history_write_failures_total",
        "History batches the store refused or could not take (retried)",
        &["job"]
    )
    .expect("metric registers once")
});

/// The history store took `rows` rows of `table`.
pub struct HistoryRowsWritten<'a> {
    pub table: &'a str,
    pub rows: usize,
}

impl InternalEvent for HistoryRowsWritten<'_> {
    fn emit(self) {
        ROWS.with_label_values(&[self.table])
            .inc_by(self.rows as u64);
    }
}

/// A batch the history store refused or could not take; the job retries it.
pub struct HistoryWriteFailed<'a> {
    pub job: &'a str,
    pub rows: usize,
    pub error: &'a EngineError,
}

impl InternalEvent for HistoryWriteFailed<'_> {
    fn emit(self) {
        FAILURES.with_label_values(&[self.job]).inc();
        tracing::warn!(job = self.job, rows = self.rows, error = %self.error,
            "history write failed; the batch will be retried");
    }
}
