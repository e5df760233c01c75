//! The edge's telemetry events (see `parley_engines::telemetry`): appends,
//! errors answered, sockets, and what goes out on them.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use parley_engines::internal_events::StageLatency;
use parley_engines::telemetry::InternalEvent;
use parley_engines::EngineError;
use parley_schemas::ids::UserId;
use parley_schemas::wire::ErrorCode;
use prometheus::{
    register_histogram, register_int_counter, register_int_counter_vec, register_int_gauge,
    Histogram, IntCounter, IntCounterVec, IntGauge,
};

static APPENDS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "parley_appends_records_total",
        "Records durably appended by the edge"
    )
    .expect("metric registers once")
});

static ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "parley_errors_total",
        "Errors returned to clients, by code",
        &["code"]
    )
    .expect("metric registers once")
});

static DELIVERIES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "parley_deliveries_frames_total",
        "msg frames written to device sockets"
    )
    .expect("metric registers once")
});

static SOCKETS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("parley_sockets_connected", "WebSocket connections open now")
        .expect("metric registers once")
});

static SOCKETS_LIMIT: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "parley_sockets_limit",
        "The most WebSockets this edge holds open (limits.sockets), for alerts on nearing it"
    )
    .expect("metric registers once")
});

static CATCHUP_READS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "parley_catchup_items_read_total",
        "Inbox items read from the store for catch-up and gap-fill"
    )
    .expect("metric registers once")
});

static INBOX_DELETED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "parley_inbox_rows_deleted_total",
        "Inbox rows deleted because every device of their user confirmed them (retention.mode = until_delivered)"
    )
    .expect("metric registers once")
});

/// Inbox rows every device confirmed, deleted.
pub struct InboxDelivered {
    pub rows: u64,
}

impl InternalEvent for InboxDelivered {
    fn emit(self) {
        INBOX_DELETED.inc_by(self.rows);
    }
}

static E2E_LATENCY: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "parley_e2e_latency_seconds",
        "From the message's append (its msg_id time) to its push on a device socket",
        vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
    )
    .expect("metric registers once")
});

static EDGE_TROUBLE: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "parley_edge_troubles_total",
        "Things that went wrong at the edge without failing a request (each recovered as its log line says), by kind",
        &["kind"]
    )
    .expect("metric registers once")
});

/// Records the log made durable for this edge.
pub struct RecordsAppended {
    pub count: u64,
}

impl InternalEvent for RecordsAppended {
    fn emit(self) {
        APPENDS.inc_by(self.count);
    }
}

static MEDIA_UPLOADS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("parley_media_uploads_total", "Uploads stored")
        .expect("metric registers once")
});

static MEDIA_UPLOAD_BYTES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "parley_media_upload_bytes_total",
        "Bytes of uploads stored (before deduplication)"
    )
    .expect("metric registers once")
});

static MEDIA_SERVED_BYTES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "parley_media_served_bytes_total",
        "Bytes of media and thumbnails sent to clients"
    )
    .expect("metric registers once")
});

/// An upload stored: its blob and its record are durable.
pub struct MediaStored {
    pub bytes: u64,
}

impl InternalEvent for MediaStored {
    fn emit(self) {
        MEDIA_UPLOADS.inc();
        MEDIA_UPLOAD_BYTES.inc_by(self.bytes);
    }
}

static PREKEYS_UPLOADED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "parley_prekeys_uploaded_total",
        "One-time prekeys devices uploaded to the key directory"
    )
    .expect("metric registers once")
});

static KEY_BUNDLES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "parley_key_bundles_total",
        "Device key bundles handed out, by whether one had a one-time prekey",
        &["prekey"]
    )
    .expect("metric registers once")
});

/// A device published its keys.
pub struct KeysUploaded {
    pub prekeys: usize,
}

impl InternalEvent for KeysUploaded {
    fn emit(self) {
        PREKEYS_UPLOADED.inc_by(self.prekeys as u64);
    }
}

/// Key bundles handed out for one user's devices.
pub struct KeysClaimed {
    pub with_prekey: usize,
    pub without: usize,
}

impl InternalEvent for KeysClaimed {
    fn emit(self) {
        KEY_BUNDLES
            .with_label_values(&["given"])
            .inc_by(self.with_prekey as u64);
        KEY_BUNDLES
            .with_label_values(&["none_left"])
            .inc_by(self.without as u64);
    }
}

/// Bytes of media on their way to a client.
pub struct MediaServed {
    pub bytes: u64,
}

impl InternalEvent for MediaServed {
    fn emit(self) {
        MEDIA_SERVED_BYTES.inc_by(self.bytes);
    }
}

/// An error answered to a client, over HTTP or as an `error` frame.
pub struct ErrorAnswered {
    pub code: ErrorCode,
}

impl InternalEvent for ErrorAnswered {
    fn emit(self) {
        ERRORS.with_label_values(&[self.code.as_str()]).inc();
    }
}

/// An engine failure: the client is told only whether to retry; the log
/// says what.
pub struct EngineFailed<'a> {
    pub error: &'a EngineError,
}

impl InternalEvent for EngineFailed<'_> {
    fn emit(self) {
        match self.error.retry() {
            parley_engines::Retry::Later => {
                tracing::warn!(error = %self.error, "engine unavailable")
            }
            parley_engines::Retry::Never => tracing::error!(error = %self.error, "engine error"),
        }
    }
}

/// A WebSocket opened (`open`) or closed.
pub struct Socket {
    pub open: bool,
}

impl InternalEvent for Socket {
    fn emit(self) {
        if self.open {
            SOCKETS.inc()
        } else {
            SOCKETS.dec()
        }
    }
}

static BEHIND: LazyLock<prometheus::Gauge> = LazyLock::new(|| {
    prometheus::register_gauge!(
        "parley_pipeline_behind_seconds",
        "Age of the oldest record the router or the sequencer has not applied yet, as this edge last measured it (sends are refused past limits.shed_behind_ms)"
    )
    .expect("metric registers once")
});

/// The edge measured how far behind delivery is.
pub struct PipelineBehind {
    pub ms: u64,
}

impl InternalEvent for PipelineBehind {
    fn emit(self) {
        BEHIND.set(self.ms as f64 / 1000.0);
    }
}

/// The edge started with this cap on its sockets.
pub struct SocketLimit {
    pub sockets: usize,
}

impl InternalEvent for SocketLimit {
    fn emit(self) {
        SOCKETS_LIMIT.set(self.sockets as i64);
        // Both series exist from the start, so their ratio does.
        SOCKETS.add(0);
    }
}

/// A `msg` frame went out on a socket; `appended_ms` is its msg_id time.
pub struct MsgDelivered {
    pub appended_ms: u64,
}

impl InternalEvent for MsgDelivered {
    fn emit(self) {
        DELIVERIES.inc();
        let now = parley_schemas::ids::now_ms();
        E2E_LATENCY.observe(now.saturating_sub(self.appended_ms) as f64 / 1000.0);
    }
}

static APPEND_STAGE: LazyLock<StageLatency> = LazyLock::new(|| StageLatency::register("append"));
static PUSH_STAGE: LazyLock<StageLatency> = LazyLock::new(|| StageLatency::register("push"));

/// A send the edge queued for its partition's appender is durable.
pub struct SendDurable {
    pub queued: Instant,
}

impl InternalEvent for SendDurable {
    fn emit(self) {
        APPEND_STAGE.observe(self.queued.elapsed());
    }
}

/// A live item went out on a socket, `waited` after it reached the hub.
pub struct PushWritten {
    pub waited: Duration,
}

impl InternalEvent for PushWritten {
    fn emit(self) {
        PUSH_STAGE.observe(self.waited);
    }
}

/// An inbox item read from the store for catch-up or gap-fill.
pub struct CatchupItemRead;

impl InternalEvent for CatchupItemRead {
    fn emit(self) {
        CATCHUP_READS.inc();
    }
}

/// Something went wrong at the edge that a client does not see as an
/// error: each is recovered from, as its log line says.
pub enum EdgeTrouble<'a> {
    /// A device's cursor could not be stored; it is stored again later,
    /// and until then the device may be sent items twice.
    CursorNotSaved { error: &'a dyn std::fmt::Display },
    /// The session registry entry could not be refreshed; the next refresh
    /// tries again before it expires.
    SessionNotRefreshed { error: &'a str },
    /// Mail from a delivery node did not decode; devices recover its items
    /// from the store when the next push arrives.
    MailUndecodable { error: &'a dyn std::fmt::Display },
    /// An inbox item or a run's group posts could not be read back: the
    /// store holds something it should not (logged with the user).
    InboxUnreadable {
        user: UserId,
        seq: u64,
        what: &'a str,
    },
    /// Idempotency keys were not stored after an ack; the router derives
    /// them from the log.
    IdempotencyNotStored { error: &'a dyn std::fmt::Display },
    /// A group, contact or privacy change is durable but its job had not
    /// applied it when the caller was answered; it applies later.
    ChangeNotAppliedYet {
        job: &'a str,
        partition: u32,
        offset: u64,
    },
    /// Accepting a connection failed (out of descriptors, say); the
    /// listener pauses and goes on.
    AcceptFailed { error: &'a std::io::Error },
    /// How far behind the pipeline is could not be read; the last measure
    /// stands.
    BacklogUnknown { error: &'a dyn std::fmt::Display },
    /// A send forwarded to the edge owning its partition failed; the
    /// client is told `unavailable` without the peer's address.
    ForwardFailed {
        node: u32,
        error: &'a dyn std::fmt::Display,
    },
}

impl InternalEvent for EdgeTrouble<'_> {
    fn emit(self) {
        let kind = match self {
            EdgeTrouble::CursorNotSaved { error } => {
                tracing::warn!(%error, "saving a device cursor failed");
                "cursor_not_saved"
            }
            EdgeTrouble::SessionNotRefreshed { error } => {
                tracing::warn!(error, "refreshing a session failed");
                "session_not_refreshed"
            }
            EdgeTrouble::MailUndecodable { error } => {
                tracing::error!(%error, "undecodable mail dropped");
                "mail_undecodable"
            }
            EdgeTrouble::InboxUnreadable { user, seq, what } => {
                tracing::error!(%user, seq, what, "unreadable inbox entry skipped");
                "inbox_unreadable"
            }
            EdgeTrouble::IdempotencyNotStored { error } => {
                tracing::warn!(%error, "storing idempotency keys failed; the router will derive them");
                "idempotency_not_stored"
            }
            EdgeTrouble::ChangeNotAppliedYet {
                job,
                partition,
                offset,
            } => {
                tracing::warn!(job, partition, offset, "change durable but not applied yet");
                "change_not_applied_yet"
            }
            EdgeTrouble::ForwardFailed { node, error } => {
                tracing::warn!(node, %error, "forwarding a send to its partition's edge failed");
                "forward_failed"
            }
            EdgeTrouble::AcceptFailed { error } => {
                tracing::warn!(%error, "accepting a connection failed");
                "accept_failed"
            }
            EdgeTrouble::BacklogUnknown { error } => {
                tracing::warn!(%error, "measuring the pipeline's backlog failed");
                "backlog_unknown"
            }
        };
        EDGE_TROUBLE.with_label_values(&[kind]).inc();
    }
}

static LIMIT_HITS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "parley_limit_hits_total",
        "Requests refused or connections closed because a client met a limit, by limit",
        &["limit"]
    )
    .expect("metric registers once")
});

/// The limits of [`crate::limits::Limits`], as metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Sends,
    Receipts,
    Heartbeats,
    Typing,
    History,
    SignInsPerIp,
    SignInsPerAccount,
    SignUpsPerIp,
    Sockets,
    SocketsPerUser,
    /// Open connections on a listener.
    Connections,
    /// Open connections from one client address (`connections_per_ip`).
    ConnectionsPerIp,
    /// A connection that sent no request's headers within
    /// `header_timeout_ms` of being accepted (silent, or HTTP/2 preface only).
    FirstRequest,
    /// A connection with no request in flight for `idle_timeout_ms`.
    IdleConnection,
    /// A request body slower than `body_min_bytes_per_sec`.
    SlowBody,
    /// A TLS handshake that failed or did not finish in time.
    TlsHandshake,
    /// A socket silent past the idle timeout, closed.
    IdleSocket,
    /// A socket whose client stopped reading, closed.
    SlowReader,
    /// A send refused while delivery is further behind than
    /// `limits.shed_behind_ms`.
    Backlog,
    /// An upload over `limits.media_max_bytes`.
    MediaSize,
    /// A user's uploads of the day over `limits.media_bytes_per_day`.
    MediaQuota,
    /// Uploads per minute per user.
    MediaUploads,
    /// Resumable upload chunks per minute per user.
    MediaChunks,
    /// An upload that sent nothing for `limits.media_stall_ms`.
    MediaStall,
    /// Key bundle fetches per minute per caller.
    KeyClaims,
    /// A device's upload past the one-time prekeys it may hold.
    Prekeys,
    /// A user's push subscriptions past `limits.push_subscriptions_per_user`.
    PushSubscriptions,
    /// Muted or archived conversations past their cap per user.
    KeptConversations,
    /// Account changes (profile, contacts, blocks, privacy, group creation
    /// and renames, invites, push and conversation settings, refreshes)
    /// per minute per user.
    AccountChanges,
    /// Profile and presence look-ups per minute per caller.
    Lookups,
    /// Reports per minute per user.
    Reports,
    /// Forwarded sends per minute per user (`limits.forwards_*`).
    Forwards,
    /// Account exports per hour per user.
    Exports,
    /// MQTT connections per minute per client address.
    MqttConnects,
    /// An MQTT packet over `limits.mqtt_max_packet`.
    MqttPacketSize,
    /// An MQTT client that left the server's messages unacknowledged
    /// past `limits.mqtt_inflight` while more kept coming.
    MqttInflight,
    /// An MQTT client silent past 1.5 times its keep-alive.
    MqttKeepAlive,
}

impl Limit {
    pub fn label(self) -> &'static str {
        match self {
            Limit::Sends => "sends",
            Limit::Receipts => "receipts",
            Limit::Heartbeats => "heartbeats",
            Limit::Typing => "typing",
            Limit::History => "history",
            Limit::SignInsPerIp => "sign_ins_per_ip",
            Limit::SignInsPerAccount => "sign_ins_per_account",
            Limit::SignUpsPerIp => "sign_ups_per_ip",
            Limit::Sockets => "sockets",
            Limit::SocketsPerUser => "sockets_per_user",
            Limit::Connections => "connections",
            Limit::ConnectionsPerIp => "connections_per_ip",
            Limit::FirstRequest => "first_request",
            Limit::IdleConnection => "idle_connection",
            Limit::SlowBody => "slow_body",
            Limit::TlsHandshake => "tls_handshake",
            Limit::IdleSocket => "idle_socket",
            Limit::SlowReader => "slow_reader",
            Limit::Backlog => "backlog",
            Limit::MediaSize => "media_size",
            Limit::MediaQuota => "media_quota",
            Limit::MediaUploads => "media_uploads",
            Limit::MediaChunks => "media_chunks",
            Limit::MediaStall => "media_stall",
            Limit::KeyClaims => "key_claims",
            Limit::Prekeys => "prekeys",
            Limit::PushSubscriptions => "push_subscriptions",
            Limit::KeptConversations => "kept_conversations",
            Limit::AccountChanges => "account_changes",
            Limit::Lookups => "lookups",
            Limit::Reports => "reports",
            Limit::Forwards => "forwards",
            Limit::Exports => "exports",
            Limit::MqttConnects => "mqtt_connects",
            Limit::MqttPacketSize => "mqtt_packet_size",
            Limit::MqttInflight => "mqtt_inflight",
            Limit::MqttKeepAlive => "mqtt_keep_alive",
        }
    }
}

/// A client met a limit.
pub struct LimitHit {
    pub limit: Limit,
}

impl InternalEvent for LimitHit {
    fn emit(self) {
        tracing::debug!(limit = self.limit.label(), "limit met");
        LIMIT_HITS.with_label_values(&[self.limit.label()]).inc();
    }
}
