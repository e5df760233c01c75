//! The processors' telemetry events (see `parley_engines::telemetry`).

use std::sync::LazyLock;

use parley_engines::telemetry::InternalEvent;
use parley_schemas::ids::{GroupId, MessageId, UserId};
use prometheus::{
    register_histogram, register_int_counter, register_int_counter_vec, Histogram, IntCounter,
    IntCounterVec,
};

static GROUP_REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "parley_group_refused_records_total",
        "Group records the router refused in log order (a race the edge's check could not see)",
        &["kind"]
    )
    .expect("metric registers once")
});

static NOTICES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "parley_presence_notices_total",
        "Presence changes addressed to watchers (one per watcher)"
    )
    .expect("metric registers once")
});

static CAPPED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "parley_presence_capped_total",
        "Presence changes whose watchers exceeded the fan-out cap"
    )
    .expect("metric registers once")
});

static THUMBNAILS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("parley_thumbnails_total", "Thumbnails made and stored")
        .expect("metric registers once")
});

static THUMBNAIL_BYTES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("parley_thumbnail_bytes_total", "Bytes of thumbnails stored")
        .expect("metric registers once")
});

static THUMBNAILS_FAILED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "parley_thumbnails_failed_total",
        "Uploaded images no thumbnail could be made of (corrupt, too many pixels)"
    )
    .expect("metric registers once")
});

/// A thumbnail stored.
pub struct ThumbnailMade {
    pub bytes: usize,
}

impl InternalEvent for ThumbnailMade {
    fn emit(self) {
        THUMBNAILS.inc();
        THUMBNAIL_BYTES.inc_by(self.bytes as u64);
    }
}

/// An upload of an image type that did not decode, or was too large.
pub struct ThumbnailFailed<'a> {
    pub media: parley_schemas::media::MediaId,
    pub reason: &'a str,
}

impl InternalEvent for ThumbnailFailed<'_> {
    fn emit(self) {
        THUMBNAILS_FAILED.inc();
        tracing::info!(media = %self.media, reason = self.reason, "no thumbnail");
    }
}

static MEDIA_DELETED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "parley_media_deleted_total",
        "What the media sweeper deleted: uploads never sent, blobs no upload refers to, expired resumable sessions, sent uploads gone under until_delivered retention",
        &["what"]
    )
    .expect("metric registers once")
});

static SWEEPS_FAILED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "parley_media_sweeps_failed_total",
        "Media sweeper passes that failed (tried again at the next)"
    )
    .expect("metric registers once")
});

/// A sweeper pass ended.
pub struct MediaSwept {
    pub swept: crate::media_sweeper::Swept,
}

impl InternalEvent for MediaSwept {
    fn emit(self) {
        let s = self.swept;
        for (what, n) in [
            ("upload", s.uploads),
            ("blob", s.blobs),
            ("session", s.sessions),
            ("delivered", s.delivered),
        ] {
            MEDIA_DELETED.with_label_values(&[what]).inc_by(n);
        }
        if s != Default::default() {
            tracing::info!(
                uploads = s.uploads,
                blobs = s.blobs,
                sessions = s.sessions,
                delivered = s.delivered,
                "media swept"
            );
        }
    }
}

/// A sweeper pass failed.
pub struct SweepFailed<'a> {
    pub error: &'a parley_engines::EngineError,
}

impl InternalEvent for SweepFailed<'_> {
    fn emit(self) {
        SWEEPS_FAILED.inc();
        tracing::warn!(error = %self.error, "media sweep failed");
    }
}

/// A message from someone no longer a member when the router reached it
/// (the edge checked an older state): not delivered.
pub struct GroupMessageRefused {
    pub group: GroupId,
    pub msg_id: MessageId,
}

impl InternalEvent for GroupMessageRefused {
    fn emit(self) {
        GROUP_REFUSED.with_label_values(&["message"]).inc();
        tracing::warn!(group = %self.group, msg_id = %self.msg_id, "message from a non-member refused");
    }
}

/// A group change the rules refused in log order.
pub struct GroupChangeRefused<'a> {
    pub group: GroupId,
    pub by: UserId,
    pub reason: &'a str,
}

impl InternalEvent for GroupChangeRefused<'_> {
    fn emit(self) {
        GROUP_REFUSED.with_label_values(&["change"]).inc();
        tracing::warn!(group = %self.group, by = %self.by, reason = self.reason, "group change refused");
    }
}

/// A presence change addressed to `watchers` users.
pub struct PresenceNoticesSent {
    pub watchers: usize,
}

impl InternalEvent for PresenceNoticesSent {
    fn emit(self) {
        NOTICES.inc_by(self.watchers as u64);
    }
}

/// A user with more watchers than the fan-out cap changed presence: the
/// rest read it when they look.
pub struct PresenceFanoutCapped {
    pub watchers: usize,
    pub cap: usize,
}

impl InternalEvent for PresenceFanoutCapped {
    fn emit(self) {
        CAPPED.inc();
        tracing::debug!(
            watchers = self.watchers,
            cap = self.cap,
            "presence fan-out capped"
        );
    }
}

static NOTIFY_QUEUED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "parley_notifications_queued_total",
        "Inbox items for users who were away, queued for a notification (collapsed per conversation)"
    )
    .expect("metric registers once")
});

fn sink_counter(name: &str, help: &str) -> IntCounterVec {
    register_int_counter_vec!(name, help, &["sink"]).expect("metric registers once")
}

static NOTIFY_SENT: LazyLock<IntCounterVec> = LazyLock::new(|| {
    sink_counter(
        "parley_notifications_sent_total",
        "Notifications a sink took (2xx), by sink",
    )
});

static NOTIFY_FAILED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    sink_counter(
        "parley_notifications_failed_total",
        "Notification attempts that failed (an error, a timeout, a non-2xx answer), by sink",
    )
});

static NOTIFY_RETRIED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    sink_counter(
        "parley_notifications_retried_total",
        "Notification attempts made again after a failure, by sink",
    )
});

static NOTIFY_DEAD: LazyLock<IntCounterVec> = LazyLock::new(|| {
    sink_counter(
        "parley_notifications_dead_lettered_total",
        "Notifications given up on after every try, appended to the notify-dead topic, by sink",
    )
});

static NOTIFY_SKIPPED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "parley_notifications_skipped_total",
        "Due notifications not sent, by why: muted, foreground (the user came back), no_subscription, rate_limited (sent later), subscription_gone",
        &["why"]
    )
    .expect("metric registers once")
});

static NOTIFY_DELAY: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "parley_notification_delay_seconds",
        "From the first item of a notification being queued to a sink taking it (the collapse window included)",
        vec![0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0]
    )
    .expect("metric registers once")
});

/// Items queued for notifications by one batch of the notifier job.
pub struct NotificationsQueued {
    pub count: usize,
}

impl InternalEvent for NotificationsQueued {
    fn emit(self) {
        NOTIFY_QUEUED.inc_by(self.count as u64);
    }
}

/// A sink took a notification.
pub struct NotificationSent {
    pub sink: &'static str,
    pub delay_ms: u64,
}

impl InternalEvent for NotificationSent {
    fn emit(self) {
        NOTIFY_SENT.with_label_values(&[self.sink]).inc();
        NOTIFY_DELAY.observe(self.delay_ms as f64 / 1000.0);
    }
}

/// One attempt failed; `again`: it will be retried.
pub struct NotificationFailed<'a> {
    pub sink: &'static str,
    pub error: &'a str,
    pub again: bool,
}

impl InternalEvent for NotificationFailed<'_> {
    fn emit(self) {
        NOTIFY_FAILED.with_label_values(&[self.sink]).inc();
        if self.again {
            NOTIFY_RETRIED.with_label_values(&[self.sink]).inc();
        }
        tracing::debug!(
            sink = self.sink,
            error = self.error,
            again = self.again,
            "notification attempt failed"
        );
    }
}

/// Given up on after every try.
pub struct NotificationDeadLettered<'a> {
    pub sink: &'static str,
    pub error: &'a str,
}

impl InternalEvent for NotificationDeadLettered<'_> {
    fn emit(self) {
        NOTIFY_DEAD.with_label_values(&[self.sink]).inc();
        tracing::warn!(
            sink = self.sink,
            error = self.error,
            "notification dead-lettered"
        );
    }
}

/// A due notification not sent, and why.
pub struct NotificationSkipped {
    pub why: &'static str,
}

impl InternalEvent for NotificationSkipped {
    fn emit(self) {
        NOTIFY_SKIPPED.with_label_values(&[self.why]).inc();
    }
}

static LOG_TRIMMED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "parley_log_trimmed_records_total",
        "Log records dropped by retention (every consumer had passed them), by topic",
        &["topic"]
    )
    .expect("metric registers once")
});

static LOG_DISK_PRESSURE: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "parley_log_disk_pressure_passes_total",
        "Retention passes that found the embedded log's disk short of space and dropped what no consumer needs, whatever its age"
    )
    .expect("metric registers once")
});

/// Retention dropped `records` of `topic`.
pub struct LogTrimmed<'a> {
    pub topic: &'a str,
    pub records: u64,
}

impl InternalEvent for LogTrimmed<'_> {
    fn emit(self) {
        LOG_TRIMMED
            .with_label_values(&[self.topic])
            .inc_by(self.records);
        tracing::debug!(topic = self.topic, records = self.records, "log trimmed");
    }
}

/// Compaction dropped `records` of `topic` that later ones made redundant.
pub struct LogCompacted<'a> {
    pub topic: &'a str,
    pub records: u64,
}

impl InternalEvent for LogCompacted<'_> {
    fn emit(self) {
        LOG_COMPACTED
            .with_label_values(&[self.topic])
            .inc_by(self.records);
        tracing::info!(topic = self.topic, records = self.records, "log compacted");
    }
}

static LOG_COMPACTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "parley_log_compacted_records_total",
        "Log records dropped by compaction because later records set all they set",
        &["topic"]
    )
    .expect("metric registers once")
});

/// A retention pass under disk pressure.
pub struct LogDiskPressure;

impl InternalEvent for LogDiskPressure {
    fn emit(self) {
        LOG_DISK_PRESSURE.inc();
        tracing::warn!("the log's disk is short of space: dropping what every consumer has passed");
    }
}

static INBOX_EXPIRED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "parley_inbox_rows_expired_total",
        "Inbox items deleted because no device confirmed them within retention.undelivered_days"
    )
    .expect("metric registers once")
});

/// Inbox items past `undelivered_days`, deleted.
pub struct InboxExpired {
    pub rows: u64,
}

impl InternalEvent for InboxExpired {
    fn emit(self) {
        INBOX_EXPIRED.inc_by(self.rows);
        if self.rows > 0 {
            tracing::info!(rows = self.rows, "undelivered inbox items expired");
        }
    }
}
