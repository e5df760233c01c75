//! The jobs each partition runs: the processor's (router, presence,
//! accounts, thumbnails, history writers, the notifier and its dispatcher)
//! and the delivery role's sequencer, with their batch settings.

use super::*;
use parley_processors::notify::webpush::Vapid;

/// The process role's group and lease scope: partition `p` of `events`,
/// `presence` and `accounts` go together.
pub const PROCESS_GROUP: &str = "process";
pub const PROCESS_SCOPE: &str = "process/events";
/// The delivery role's group and lease scope (partitions of `inbox`).
pub const DELIVER_GROUP: &str = "deliver";
pub const DELIVER_SCOPE: &str = "deliver/inbox";

fn job_spec(job: &str, topic: &str, partition: u32) -> JobSpec {
    JobSpec {
        job: job.into(),
        topic: topic.into(),
        partition,
        batch: 1024,
        linger: Duration::ZERO,
        caught_up: None,
    }
}

/// The history writers collect up to this many records, or for up to
/// [`HISTORY_LINGER`], per write: ClickHouse wants few large inserts.
const HISTORY_BATCH: usize = 10_000;
const HISTORY_LINGER: Duration = Duration::from_millis(500);

fn history_spec(job: &str, topic: &str, p: u32) -> JobSpec {
    JobSpec {
        batch: HISTORY_BATCH,
        linger: HISTORY_LINGER,
        ..job_spec(job, topic, p)
    }
}

/// Fired by a partition's router and accounts job once each has applied
/// what the partition held at start.
pub(crate) struct CaughtUp {
    pub(crate) router: tokio::sync::oneshot::Sender<()>,
    pub(crate) accounts: tokio::sync::oneshot::Sender<()>,
}

/// What every partition's processor jobs share.
#[derive(Clone)]
pub(crate) struct Processing {
    pub(crate) log: Arc<dyn Log>,
    pub(crate) state: Arc<dyn StateStore>,
    pub(crate) history: Arc<dyn History>,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) partitions: u32,
    pub(crate) read_fanout_above: usize,
    pub(crate) lifetimes: Lifetimes,
    pub(crate) notify: NotifyConfig,
    /// The Web Push sink's identity, when `notify.webpush_subject` is set.
    pub(crate) vapid: Option<Vapid>,
    pub(crate) retention: RetentionConfig,
    /// The embedded log's directory (its disk is watched); `None` on servers.
    pub(crate) log_dir: Option<std::path::PathBuf>,
}

impl Processing {
    /// Refuses a notification setup that cannot work.
    pub(crate) fn new(cfg: &Config, shared: &Engines) -> Result<Processing> {
        cfg.notify.check().map_err(anyhow::Error::msg)?;
        let ms = Duration::from_millis;
        Ok(Processing {
            log: shared.log.clone(),
            state: shared.state.clone(),
            history: shared.history.clone(),
            blobs: shared.blobs.clone(),
            partitions: shared.partitions,
            read_fanout_above: cfg.group_read_fanout_above,
            lifetimes: Lifetimes {
                unsent_after: ms(cfg.limits.media_unsent_ms),
                sessions_after: ms(cfg.limits.media_session_ms),
                grace: ms(cfg.media_blob_grace_ms),
                every: ms(cfg.media_sweep_every_ms.max(1)),
                delivered: (cfg.retention.mode == RetentionMode::UntilDelivered).then(|| {
                    DeliveredMedia {
                        at_most: Duration::try_from_secs_f64(cfg.retention.media_days * 86_400.0)
                            .ok()
                            .filter(|d| !d.is_zero()),
                    }
                }),
            },
            notify: cfg.notify.clone(),
            vapid: crate::edge::vapid(cfg)?,
            retention: cfg.retention.clone(),
            log_dir: crate::backends::file_path(&cfg.log_url()),
        })
    }
}

/// The processor jobs of partition `p`: the router on `events`, the
/// presence job on `presence`, the accounts and thumbnail jobs on
/// `accounts` (and with partition 0 the media sweeper), and the
/// history writers on `events` and `presence`. `caught_up` fires once the
/// router and the accounts job have applied what the partition held at start.
pub(crate) async fn process_partition(
    engines: Processing,
    p: u32,
    stop: CancellationToken,
    caught_up: Option<CaughtUp>,
) {
    let Processing {
        log,
        state,
        history,
        blobs,
        partitions,
        read_fanout_above,
        lifetimes,
        notify,
        vapid,
        retention,
        log_dir,
    } = engines;
    let keep_metadata_only = retention.mode == RetentionMode::UntilDelivered;
    // One log retention task per deployment: with partition 0, like the
    // media sweeper.
    let trim = LogRetention {
        log: log.clone(),
        history: history.clone(),
        state: state.clone(),
        partitions,
        topics: retention::consumers(notify.enabled()),
        cfg: retention,
        disk: log_dir,
    };
    let trim = {
        let stop = stop.clone();
        async move {
            if p == 0 {
                trim.run(stop).await
            }
        }
    };
    // Notifications, when a sink is configured: the notifier job on this
    // partition of `inbox`, and the dispatcher of what it queued.
    let notifications = {
        let (log, state, stop) = (log.clone(), state.clone(), stop.clone());
        async move {
            if !notify.enabled() {
                return;
            }
            let dispatcher = Dispatcher::new(
                state.clone(),
                log.clone(),
                partitions,
                notify.clone(),
                vapid,
            );
            tokio::join!(
                run_job(
                    log,
                    state.clone(),
                    job_spec(notify::JOB, topics::INBOX, p),
                    NotifierJob::new(state, &notify),
                    stop.clone(),
                ),
                dispatcher.run(p, stop),
            );
        }
    };
    // One media sweeper per deployment: with partition 0.
    let sweeper = Sweeper {
        log: log.clone(),
        state: state.clone(),
        blobs: blobs.clone(),
        partitions,
        lifetimes,
    };
    let sweep = {
        let stop = stop.clone();
        async move {
            if p == 0 {
                sweeper.run(stop).await
            }
        }
    };
    let (router_done, accounts_done) = match caught_up {
        Some(c) => (Some(c.router), Some(c.accounts)),
        None => (None, None),
    };
    let router_spec = JobSpec {
        caught_up: router_done,
        ..job_spec(router::JOB, topics::EVENTS, p)
    };
    let accounts_spec = JobSpec {
        caught_up: accounts_done,
        ..job_spec(accounts::JOB, topics::ACCOUNTS, p)
    };
    let router =
        Router::new(log.clone(), state.clone(), partitions).read_fanout_above(read_fanout_above);
    tokio::join!(
        run_job(
            log.clone(),
            state.clone(),
            router_spec,
            router,
            stop.clone()
        ),
        run_job(
            log.clone(),
            state.clone(),
            job_spec(presence::JOB, topics::PRESENCE, p),
            PresenceJob::new(log.clone(), state.clone(), partitions),
            stop.clone(),
        ),
        run_job(
            log.clone(),
            state.clone(),
            accounts_spec,
            AccountsJob,
            stop.clone(),
        ),
        run_job(
            log.clone(),
            state.clone(),
            job_spec(thumbnails::JOB, topics::ACCOUNTS, p),
            ThumbnailJob::new(blobs),
            stop.clone(),
        ),
        sweep,
        trim,
        notifications,
        run_job(
            log.clone(),
            state.clone(),
            history_spec(history_writer::JOB, topics::EVENTS, p),
            HistoryWriter::new(history.clone())
                .with_groups(state.clone())
                .metadata_only(keep_metadata_only),
            stop.clone(),
        ),
        run_job(
            log,
            state,
            history_spec(history_writer::SESSIONS_JOB, topics::PRESENCE, p),
            SessionWriter::new(history),
            stop,
        ),
    );
}

/// The sequencer of `inbox` partition `p`, pushing through `pusher`.
pub(crate) async fn deliver_partition(
    log: Arc<dyn Log>,
    state: Arc<dyn StateStore>,
    pusher: Arc<dyn Pusher>,
    p: u32,
    stop: CancellationToken,
) {
    let spec = job_spec(sequencer::JOB, topics::INBOX, p);
    let job = Sequencer::new(state.clone(), pusher);
    run_job(log, state, spec, job, stop).await
}
