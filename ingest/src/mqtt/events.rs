//! The MQTT edge's telemetry: connections by outcome, packets by type and
//! direction, refusals by reason code. Each event logs and counts at once.

use std::sync::LazyLock;

use crate::mqtt::codec::Reason;
use parley_engines::telemetry::InternalEvent;
use prometheus::{register_int_counter_vec, register_int_gauge, IntCounterVec, IntGauge};

static CONNECTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "parley_mqtt_connections_total",
        "MQTT connections by outcome: accepted, or the CONNACK reason that refused them",
        &["result"]
    )
    .expect("metric registers once")
});

static OPEN: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "parley_mqtt_connections_open",
        "MQTT sessions open now (also counted in parley_sockets_connected)"
    )
    .expect("metric registers once")
});

static PACKETS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "parley_mqtt_packets_total",
        "MQTT packets by direction (in: from clients) and type",
        &["direction", "type"]
    )
    .expect("metric registers once")
});

static REFUSALS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "parley_mqtt_errors_total",
        "MQTT refusals (a CONNACK, PUBACK, SUBACK or DISCONNECT reason code, or a 3.1.1 connection closed for it), by reason",
        &["reason"]
    )
    .expect("metric registers once")
});

/// A CONNECT answered: accepted, or refused for `Err(reason)`.
pub struct MqttConnect<'a> {
    pub result: Result<(), Reason>,
    pub why: &'a str,
}

impl InternalEvent for MqttConnect<'_> {
    fn emit(self) {
        match self.result {
            Ok(()) => CONNECTIONS.with_label_values(&["accepted"]).inc(),
            Err(reason) => {
                tracing::info!(
                    reason = reason.label(),
                    why = self.why,
                    "MQTT connection refused"
                );
                CONNECTIONS.with_label_values(&[reason.label()]).inc();
                REFUSALS.with_label_values(&[reason.label()]).inc();
            }
        }
    }
}

/// An accepted MQTT session began (`open`) or ended.
pub struct MqttSession {
    pub open: bool,
}

impl InternalEvent for MqttSession {
    fn emit(self) {
        if self.open {
            OPEN.inc()
        } else {
            OPEN.dec()
        }
    }
}

/// A packet read (`inbound`) or written.
pub struct MqttPacket {
    pub inbound: bool,
    pub kind: &'static str,
}

impl InternalEvent for MqttPacket {
    fn emit(self) {
        let direction = if self.inbound { "in" } else { "out" };
        PACKETS.with_label_values(&[direction, self.kind]).inc();
    }
}

/// Something a client sent was refused with `reason`; `closed` when the
/// connection ends for it (always so in 3.1.1 where it has no code).
pub struct MqttRefused<'a> {
    pub reason: Reason,
    pub why: &'a str,
    pub closed: bool,
}

impl InternalEvent for MqttRefused<'_> {
    fn emit(self) {
        if self.closed {
            tracing::info!(
                reason = self.reason.label(),
                why = self.why,
                "MQTT connection closed"
            );
        } else {
            tracing::debug!(
                reason = self.reason.label(),
                why = self.why,
                "MQTT packet refused"
            );
        }
        REFUSALS.with_label_values(&[self.reason.label()]).inc();
    }
}
