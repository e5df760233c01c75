//! The `parley` binary's library half: configuration, the choice of
//! backends by URL (the only place that names concrete engines), and the
//! roles. `main.rs` only parses the command line and calls in here; tests
//! call [`up`] directly on a listener bound to port 0.
//!
//! This is where the role crates meet: they depend on `parley-schemas`
//! and `parley-engines` only, and each function below wires the ones its
//! process runs (ARCHITECTURE.md has the process → crates → jobs table).
//!
//! Layout:
//! - [`admin`]: the operator's commands that are no role (moderation
//!   reports, a VAPID key).
//! - [`config`]: layered settings (defaults, file, `PARLEY__` env, flags).
//! - [`backends`]: URL → engine, for the backends this build has.
//! - `edge`: the edge's listeners (TLS, ops), token key and parts;
//!   `jobs`: what each partition runs for the process and delivery roles.
//! - [`up`]: every role in one process, on the embedded engines.
//! - One function per role run as its own process: [`ingest`] (the edge,
//!   holding the sockets), [`process`] (router, presence, accounts and
//!   history writer jobs), [`deliver`] (sequencers). They share the
//!   partitions of their topic with the other live nodes of their role
//!   through leases in the cluster store (Redis), and take over a dead
//!   node's partitions in about 7 s.

pub mod admin;
pub mod backends;
pub mod config;
mod edge;
mod jobs;

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use parley_analytics::writer::{self as history_writer, HistoryWriter, SessionWriter};
use parley_delivery::sequencer::{self, Sequencer};
use parley_engines::job::{run_job, JobSpec};
use parley_engines::ownership::{run_owned, OwnershipSpec};
use parley_engines::push::{ClusterPusher, Pusher};
use parley_engines::{
    BlobStore, Cluster, EngineError, History, LocalCluster, Log, Member, StateStore, TopicSpec,
};
use parley_ingest::auth::AuthConfig;
use parley_ingest::edge::{Edge, EdgeParts};
use parley_ingest::http::AppState;
use parley_ingest::serve::ServeOptions;
use parley_ingest::socket::hub::{run_mailbox, Hub};
use parley_processors::accounts::{self, AccountsJob};
use parley_processors::media_sweeper::{DeliveredMedia, Lifetimes, Sweeper};
use parley_processors::notify::dispatch::Dispatcher;
use parley_processors::notify::{self, NotifierJob, NotifyConfig};
use parley_processors::presence::{self, PresenceJob};
use parley_processors::retention::{self, LogRetention, RetentionConfig};
use parley_processors::router::{self, Router};
use parley_processors::thumbnails::{self, ThumbnailJob};
use parley_schemas::ids::MessageIdGenerator;
use parley_schemas::retention::RetentionMode;
use parley_schemas::topics;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{Config, Overrides};
use edge::{build_edge, mqtt_listener, serving, stop_mqtt, stop_ops};
use jobs::{deliver_partition, process_partition, CaughtUp, Processing};
pub use jobs::{DELIVER_GROUP, DELIVER_SCOPE, PROCESS_GROUP, PROCESS_SCOPE};
pub use parley_ingest::Limits;

/// Creates the topics that do not exist yet; returns the partition count
/// they have (an existing topic keeps its own). `keep`: how long a log
/// that cannot be trimmed behind its consumers (Fluvio) keeps records, as
/// its topics' own retention; `accounts` keeps everything.
pub async fn migrate(log: &dyn Log, partitions: u32, keep: Option<Duration>) -> Result<u32> {
    let mut count = partitions;
    for topic in topics::ALL {
        let retention = parley_engines::log::Retention {
            max_age: keep.filter(|_| topic != topics::ACCOUNTS),
            max_bytes: None,
        };
        match log.partitions(topic).await {
            Ok(n) => count = n,
            Err(EngineError::UnknownTopic(_)) => log
                .ensure_topic(&TopicSpec::new(topic, partitions).with_retention(retention))
                .await
                .with_context(|| format!("creating topic {topic}"))?,
            Err(e) => return Err(e).with_context(|| format!("reading topic {topic}")),
        }
    }
    Ok(count)
}

/// Raises this process's open-files limit to the hard limit: every socket
/// is a file, and 10,000 clients need more than the usual soft 1,024.
pub fn raise_open_files_limit() {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

/// Every role in one process: the edge serves `listener`; the router,
/// presence, accounts, history writer and sequencer jobs run for every
/// partition. Returns once `shutdown` resolves and everything has stopped.
/// Every acknowledged message is already durable, so stopping loses
/// nothing.
pub async fn up(
    cfg: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    up_with_mqtt(cfg, listener, None, shutdown).await
}

/// [`up`], with MQTT served on `mqtt` (else on `mqtt_listen` if set).
pub async fn up_with_mqtt(
    cfg: &Config,
    listener: TcpListener,
    mqtt: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let log = backends::open_log(&cfg.log_url(), cfg.durability, cfg.log_segment_bytes).await?;
    let state = backends::open_state(&cfg.state_url()).await?;
    let history = backends::open_history(&cfg.history_url())?;
    let blobs = backends::open_blobs(&cfg.media_url())?;
    let partitions = migrate(&*log, cfg.partitions, cfg.topic_retention()).await?;
    let hub = Hub::new();
    let engines = Engines {
        log: log.clone(),
        state: state.clone(),
        cluster: Arc::new(LocalCluster::new()),
        history: history.clone(),
        blobs: blobs.clone(),
        partitions,
    };
    let edge = build_edge(cfg, &engines, hub.clone(), hub.clone())?;

    let processing = Processing::new(cfg, &engines)?;
    drop(engines);
    let stop = CancellationToken::new();
    let mut jobs = tokio::task::JoinSet::new();
    let mut caught_up = Vec::new();
    for p in 0..partitions {
        let (router, router_done) = tokio::sync::oneshot::channel();
        let (accounts, accounts_done) = tokio::sync::oneshot::channel();
        caught_up.extend([router_done, accounts_done]);
        jobs.spawn(process_partition(
            processing.clone(),
            p,
            stop.clone(),
            Some(CaughtUp { router, accounts }),
        ));
        jobs.spawn(deliver_partition(
            log.clone(),
            state.clone(),
            hub.clone(),
            p,
            stop.clone(),
        ));
    }
    drop(processing);
    // Serve only once the routers and the accounts jobs have replayed what
    // the log held at start: idempotency keys of sends appended just
    // before a crash are derived by then, so a client's resend finds its
    // first id; and after a lost state store, accounts are back before
    // anyone signs in.
    for rx in caught_up {
        let _ = rx.await;
    }
    for p in 0..partitions {
        let owner = edge.clone();
        let stop = edge.stopping();
        edge.spawn(async move {
            if let Err(e) = owner.run_appender(p, stop).await {
                tracing::error!(error = %e, partition = p, "appender could not start");
            }
        });
    }
    let ready = Arc::new(AtomicBool::new(true));
    let addr = listener.local_addr()?;
    let (opts, ops) = serving(cfg).await?;
    let url = format!("{}://{addr}", opts.scheme());
    tracing::info!(%url, log = %cfg.log_url(), state = %cfg.state_url(), partitions, "parley is up");
    // A stable line on stdout for scripts and tests that start the binary.
    println!("parley listening on {url}");

    let mqtt = mqtt_listener(cfg, &edge, mqtt).await?;
    let app = AppState {
        edge: edge.clone(),
        ready: ready.clone(),
        metrics: ops.is_none() && cfg.public_metrics,
    };
    let served = parley_ingest::run(listener, app, opts, shutdown).await;
    stop_mqtt(mqtt).await;
    stop_ops(ops).await;
    ready.store(false, Ordering::Release);
    edge.shutdown().await;
    stop.cancel();
    while jobs.join_next().await.is_some() {}
    drop(edge);
    debug_assert_eq!(Arc::strong_count(&log), 1, "a task still holds the log");
    tracing::info!("parley stopped");
    served.context("serving")
}

/// What every role opens: the log, state and history, the cluster store,
/// and the topics' partition count (shared by the nodes of a cluster).
struct Engines {
    log: Arc<dyn Log>,
    state: Arc<dyn StateStore>,
    cluster: Arc<dyn Cluster>,
    history: Arc<dyn History>,
    blobs: Arc<dyn BlobStore>,
    partitions: u32,
}

/// The engines a role of a cluster shares with the other nodes, and this
/// node as the others see it.
async fn open_shared(cfg: &Config, listener: &TcpListener) -> Result<(Engines, Member)> {
    if cfg.history_url().starts_with("file://") {
        anyhow::bail!(
            "roles run as separate processes share one history: use --history clickhouse://HOST:PORT/DATABASE (the embedded history serves `parley up` only)"
        );
    }
    if cfg.media.is_none() {
        anyhow::bail!(
            "roles run as separate processes share one media store: use --media s3://BUCKET?endpoint=URL, or --media file://DIR of a directory every node shares"
        );
    }
    let log = backends::open_log(&cfg.log_url(), cfg.durability, cfg.log_segment_bytes).await?;
    let state = backends::open_state(&cfg.state_url()).await?;
    let cluster = backends::open_cluster(&cfg.state_url()).await?;
    let history = backends::open_history(&cfg.history_url())?;
    let partitions = migrate(&*log, cfg.partitions, cfg.topic_retention()).await?;
    let addr = match &cfg.advertise {
        Some(a) => a.clone(),
        None => listener.local_addr()?.to_string(),
    };
    let engines = Engines {
        log,
        state,
        cluster,
        history,
        blobs: backends::open_blobs(&cfg.media_url())?,
        partitions,
    };
    let member = Member {
        node: cfg.node_id as u32,
        addr,
    };
    Ok((engines, member))
}

/// One edge of a cluster: HTTP + WebSocket on `listener`; the appenders of
/// the `events` partitions it holds; pushes for its sockets from its
/// mailbox.
pub async fn ingest(
    cfg: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    if cfg.jwt_secret.is_none() {
        anyhow::bail!(
            "every edge of a cluster must share the token key: set jwt_secret (PARLEY__JWT_SECRET)"
        );
    }
    edge::shared_vapid_key(cfg)?;
    let (shared, member) = open_shared(cfg, &listener).await?;
    let hub = Hub::new();
    let pusher = ClusterPusher::spawn(shared.cluster.clone());
    let edge = build_edge(cfg, &shared, hub.clone(), pusher)?;
    let mail = shared.cluster.subscribe(edge.node()).await?;
    let mailbox = tokio::spawn(run_mailbox(mail, hub));
    let spec = OwnershipSpec::new(
        parley_ingest::edge::GROUP,
        parley_ingest::edge::APPEND_SCOPE,
        shared.partitions,
        member.clone(),
    );
    let owner = edge.clone();
    edge.spawn(run_owned(
        shared.cluster.clone(),
        spec,
        edge.stopping(),
        move |p, stop| {
            let edge = owner.clone();
            async move {
                if let Err(e) = edge.run_appender(p, stop).await {
                    tracing::error!(error = %e, partition = p, "appender could not start");
                }
            }
        },
    ));
    let addr = listener.local_addr()?;
    let (opts, ops) = serving(cfg).await?;
    tracing::info!(node = edge.node(), advertise = %member.addr, "edge is up");
    println!("parley ingest listening on {}://{addr}", opts.scheme());
    let mqtt = mqtt_listener(cfg, &edge, None).await?;
    let app = AppState {
        edge: edge.clone(),
        ready: Arc::new(AtomicBool::new(true)),
        metrics: ops.is_none() && cfg.public_metrics,
    };
    let served = parley_ingest::run(listener, app, opts, shutdown).await;
    stop_mqtt(mqtt).await;
    stop_ops(ops).await;
    edge.shutdown().await;
    mailbox.abort();
    served.context("serving")
}

/// One processor node: the router, presence, accounts and history writer
/// jobs of the partitions it holds. `listener` serves `/healthz`,
/// `/readyz` and `/metrics`.
pub async fn process(
    cfg: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    edge::shared_vapid_key(cfg)?;
    let (shared, member) = open_shared(cfg, &listener).await?;
    let processing = Processing::new(cfg, &shared)?;
    let role = ("process", PROCESS_GROUP, PROCESS_SCOPE);
    run_role(role, shared, member, listener, shutdown, move |p, stop| {
        process_partition(processing.clone(), p, stop, None)
    })
    .await
}

/// One delivery node: the sequencers of the `inbox` partitions it holds,
/// pushing through the session registry to the edges holding the sockets.
pub async fn deliver(
    cfg: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (shared, member) = open_shared(cfg, &listener).await?;
    let pusher: Arc<dyn Pusher> = ClusterPusher::spawn(shared.cluster.clone());
    let (log, state) = (shared.log.clone(), shared.state.clone());
    let role = ("deliver", DELIVER_GROUP, DELIVER_SCOPE);
    run_role(role, shared, member, listener, shutdown, move |p, stop| {
        deliver_partition(log.clone(), state.clone(), pusher.clone(), p, stop)
    })
    .await
}

/// Runs a headless role, `(name, group, lease scope)`: holds its share of
/// the partitions, running `start` for each, next to its operations
/// endpoints until `shutdown`; then stops and waits (leases are freed).
async fn run_role<F, Fut>(
    (role, group, scope): (&str, &str, &str),
    shared: Engines,
    member: Member,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    start: F,
) -> Result<()>
where
    F: Fn(u32, CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let spec = OwnershipSpec::new(group, scope, shared.partitions, member);
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_owned(shared.cluster, spec, stop.clone(), start));
    let addr = listener.local_addr()?;
    println!("parley {role} listening on http://{addr}");
    let limits = &parley_ingest::Limits::default();
    let opts = ServeOptions::plain(limits);
    let served =
        parley_ingest::serve::serve(listener, parley_ingest::http::ops_router(), opts, shutdown)
            .await;
    stop.cancel();
    task.await.context("the role's task")?;
    served.context("serving")
}
