//! `parley`: one binary, one subcommand per role. `up` runs every role in
//! one process over the embedded engines; the others run one role each so
//! a deployment can scale them apart. Only this crate names concrete
//! backends (see `backends`); the role crates see the engine traits.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use parley::{backends, Config, Overrides};

#[derive(Parser)]
#[command(
    name = "parley",
    version,
    about = "Parley: a chat messenger backend on a partitioned log"
)]
struct Cli {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// Every role in one process, on the embedded engines by default
    Up(RoleArgs),
    /// The edge: HTTP + WebSocket, appends to the log
    Ingest(RoleArgs),
    /// Processor jobs: derive delivery state, presence and inboxes
    Process(RoleArgs),
    /// Delivery: tail inboxes and push to connected devices
    Deliver(RoleArgs),
    /// Create the log's topics and the stores' schemas, then exit
    Migrate(RoleArgs),
    /// Run one of the analysts' ready queries on the ClickHouse history and
    /// print a table; without a name, list them
    Analytics(AnalyticsArgs),
    /// Print users' reports (the `moderation` topic), one JSON object a
    /// line, oldest first per partition
    Moderation(RoleArgs),
    /// Print a new Web Push (VAPID) key for `notify.webpush_key`, and its
    /// public half, which browsers subscribe with
    VapidKey,
}

#[derive(clap::Args)]
struct AnalyticsArgs {
    /// The query's name (`analytics/queries/<name>.sql`)
    name: Option<String>,
    #[command(flatten)]
    role: RoleArgs,
}

#[derive(clap::Args)]
struct RoleArgs {
    /// TOML config file (also PARLEY_CONFIG)
    #[arg(long, env = "PARLEY_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
}

impl RoleArgs {
    fn load(&self) -> Result<Config> {
        Config::load(self.config.as_ref(), &self.overrides).context("loading the configuration")
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PARLEY_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Cli::parse().role {
        Role::Up(args) => {
            let (cfg, listener) = bind(&args).await?;
            parley::raise_open_files_limit();
            parley::up(&cfg, listener, shutdown_signal()).await
        }
        Role::Migrate(args) => migrate(&args.load()?).await,
        Role::Analytics(args) => analytics(&args).await,
        Role::Moderation(args) => {
            let cfg = args.load()?;
            let log =
                backends::open_log(&cfg.log_url(), cfg.durability, cfg.log_segment_bytes).await?;
            for report in parley::admin::moderation_reports(&*log).await? {
                println!("{report}");
            }
            Ok(())
        }
        Role::VapidKey => {
            let (private, public) = parley::admin::new_vapid_key()?;
            println!("notify.webpush_key = \"{private}\"");
            println!("# public key (applicationServerKey): {public}");
            Ok(())
        }
        Role::Ingest(args) => {
            let (cfg, listener) = bind(&args).await?;
            parley::raise_open_files_limit();
            parley::ingest(&cfg, listener, shutdown_signal()).await
        }
        Role::Process(args) => {
            let (cfg, listener) = bind(&args).await?;
            parley::process(&cfg, listener, shutdown_signal()).await
        }
        Role::Deliver(args) => {
            let (cfg, listener) = bind(&args).await?;
            parley::deliver(&cfg, listener, shutdown_signal()).await
        }
    }
}

async fn bind(args: &RoleArgs) -> Result<(Config, tokio::net::TcpListener)> {
    let cfg = args.load()?;
    parley_schemas::codec::write_version(cfg.log_write_version).context("log_write_version")?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    Ok((cfg, listener))
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

/// Creates every topic and opens the state store, so roles started later
/// find them ready. Safe to run again.
async fn migrate(cfg: &Config) -> Result<()> {
    let log = backends::open_log(&cfg.log_url(), cfg.durability, cfg.log_segment_bytes).await?;
    let partitions = parley::migrate(&*log, cfg.partitions, cfg.topic_retention()).await?;
    backends::open_state(&cfg.state_url()).await?;
    backends::migrate_history(&cfg.history_url()).await?;
    tracing::info!(log = %cfg.log_url(), state = %cfg.state_url(), history = %cfg.history_url(), partitions, "migrated");
    Ok(())
}

async fn analytics(args: &AnalyticsArgs) -> Result<()> {
    use parley_analytics::queries;
    let Some(name) = &args.name else {
        println!("queries (parley analytics <name>):");
        for (name, about, _) in queries::QUERIES {
            println!("  {name:<20} {about}");
        }
        return Ok(());
    };
    queries::query(name)?;
    let cfg = args.role.load()?;
    let url = cfg.history_url();
    anyhow::ensure!(
        url.starts_with("clickhouse://"),
        "the ready queries run on ClickHouse; set --history clickhouse://HOST:PORT/DATABASE (history is {url})"
    );
    #[cfg(feature = "clickhouse")]
    {
        let history = backends::open_clickhouse(&url)?;
        let table = queries::run(&history, name)
            .await
            .with_context(|| format!("running {name} on {url}"))?;
        print!("{}", table.render());
        Ok(())
    }
    #[cfg(not(feature = "clickhouse"))]
    Err(backends::not_built(&url, "clickhouse"))
}
