//! Delivery telemetry. Names follow `parley_<noun>_<unit>_total`; no user
//! id is ever a label.

use std::sync::LazyLock;

use prometheus::{
    register_histogram, register_int_counter, register_int_gauge, Histogram, IntCounter, IntGauge,
};

pub static DELIVERIES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "parley_deliveries_frames_total",
        "msg frames written to device sockets"
    )
    .expect("metric registers once")
});

pub static SOCKETS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("parley_sockets_connected", "WebSocket connections open now")
        .expect("metric registers once")
});

pub static CATCHUP_READS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "parley_catchup_items_read_total",
        "Inbox items read from the store for catch-up and gap-fill"
    )
    .expect("metric registers once")
});

pub static E2E_LATENCY: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "parley_e2e_latency_seconds",
        "From the message's append (its msg_id time) to its push on a device socket",
        vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
    )
    .expect("metric registers once")
});

/// A `msg` frame went out on a socket.
pub fn delivered(appended_ms: u64) {
    DELIVERIES.inc();
    let now = parley_schemas::ids::now_ms();
    E2E_LATENCY.observe(now.saturating_sub(appended_ms) as f64 / 1000.0);
}
