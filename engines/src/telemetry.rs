//! Telemetry as named events, after Vector's `internal_events`: each thing
//! an operator may want to see is a type in its crate's `internal_events`
//! module, and emitting it logs (tracing) and counts (Prometheus) in one
//! place, so a log line never goes without its metric nor the reverse.
//! Metric names follow `parley_<noun>_<unit>_total` (gauges and histograms
//! drop the `_total`); no user id is ever a label.

/// Something that happened, worth a log line, a metric, or both.
pub trait InternalEvent {
    fn emit(self);
}

/// Logs and counts `event`.
pub fn emit(event: impl InternalEvent) {
    event.emit()
}
