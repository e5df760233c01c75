//! The `parley` binary's library half: configuration, the choice of
//! backends by URL (the only place that names concrete engines), and the
//! roles. `main.rs` only parses the command line and calls in here; tests
//! call [`up`] directly on a listener bound to port 0.
//!
//! Layout: [`config`] (layered settings), [`backends`] (URL → engine),
//! [`up`] (every role in one process).

pub mod backends;
pub mod config;

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use parley_delivery::hub::Hub;
use parley_delivery::sequencer::{self, Sequencer};
use parley_engines::job::{run_job, JobSpec};
use parley_engines::{EngineError, Log, TopicSpec};
use parley_ingest::auth::AuthConfig;
use parley_ingest::edge::Edge;
use parley_ingest::http::AppState;
use parley_processors::presence::{self, PresenceJob};
use parley_processors::router::{self, Router};
use parley_schemas::ids::MessageIdGenerator;
use parley_schemas::topics;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{Config, Overrides};

/// Creates the topics that do not exist yet; returns the partition count
/// they have (an existing topic keeps its own).
pub async fn migrate(log: &dyn Log, partitions: u32) -> Result<u32> {
    let mut count = partitions;
    for topic in topics::ALL {
        match log.partitions(topic).await {
            Ok(n) => count = n,
            Err(EngineError::UnknownTopic(_)) => log
                .ensure_topic(&TopicSpec::new(topic, partitions))
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

/// The token key: from config, else generated once into the data dir.
fn jwt_secret(cfg: &Config) -> Result<Vec<u8>> {
    if let Some(s) = &cfg.jwt_secret {
        return Ok(s.as_bytes().to_vec());
    }
    let path = cfg.data_dir.join("jwt.secret");
    match std::fs::read(&path) {
        Ok(s) if s.len() >= 32 => Ok(s),
        Ok(_) => anyhow::bail!("{} is shorter than 32 bytes", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
            write_private(&path, &secret)?;
            Ok(secret)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

/// Every role in one process: the edge serves `listener`; the router,
/// presence and delivery jobs run for every partition. Returns once
/// `shutdown` resolves and everything has stopped. Every acknowledged
/// message is already durable, so stopping loses nothing.
pub async fn up(
    cfg: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let log = backends::open_log(&cfg.log_url(), cfg.durability).await?;
    let state = backends::open_state(&cfg.state_url()).await?;
    let partitions = migrate(&*log, cfg.partitions).await?;
    let ids = Arc::new(MessageIdGenerator::new(cfg.node_id).context("node_id")?);
    let auth = AuthConfig {
        secret: jwt_secret(cfg)?,
        token_ttl_secs: cfg.token_ttl_secs,
        argon2_memory_kib: cfg.argon2_memory_kib,
    };
    let hub = Hub::new();
    let edge = Edge::new(
        log.clone(),
        state.clone(),
        hub.clone(),
        auth,
        ids,
        partitions,
    );

    let stop = CancellationToken::new();
    let mut jobs = tokio::task::JoinSet::new();
    let mut routers_caught_up = Vec::new();
    for p in 0..partitions {
        let spec = |job: &str, topic: &str| JobSpec {
            job: job.into(),
            topic: topic.into(),
            partition: p,
            batch: 1024,
            caught_up: None,
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        routers_caught_up.push(rx);
        let router_spec = JobSpec {
            caught_up: Some(tx),
            ..spec(router::JOB, topics::EVENTS)
        };
        jobs.spawn(run_job(
            log.clone(),
            state.clone(),
            router_spec,
            Router::new(log.clone(), partitions),
            stop.clone(),
        ));
        jobs.spawn(run_job(
            log.clone(),
            state.clone(),
            spec(presence::JOB, topics::PRESENCE),
            PresenceJob::default(),
            stop.clone(),
        ));
        jobs.spawn(run_job(
            log.clone(),
            state.clone(),
            spec(sequencer::JOB, topics::INBOX),
            Sequencer::new(state.clone(), hub.clone()),
            stop.clone(),
        ));
    }
    // Serve only once the router has replayed what the log held at start:
    // idempotency keys of sends appended just before a crash are derived
    // by then, so a client's resend finds its first id.
    for rx in routers_caught_up {
        let _ = rx.await;
    }
    let ready = Arc::new(AtomicBool::new(true));
    let addr = listener.local_addr()?;
    tracing::info!(url = %format!("http://{addr}"), log = %cfg.log_url(), state = %cfg.state_url(), partitions, "parley is up");
    // A stable line on stdout for scripts and tests that start the binary.
    println!("parley listening on http://{addr}");

    let app = AppState {
        edge: edge.clone(),
        ready: ready.clone(),
    };
    let served = parley_ingest::run(listener, app, shutdown).await;
    ready.store(false, Ordering::Release);
    edge.shutdown().await;
    stop.cancel();
    while jobs.join_next().await.is_some() {}
    drop(edge);
    debug_assert_eq!(Arc::strong_count(&log), 1, "a task still holds the log");
    tracing::info!("parley stopped");
    served.context("serving")
}
