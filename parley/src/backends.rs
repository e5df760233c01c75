//! The one place that names concrete engines: a URL picks the backend,
//! everything past here sees only the traits. A backend this binary was
//! built without (cargo features) is named in the error, with the feature
//! that brings it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use parley_engines::{
    BlobStore, Cluster, Durability, FsBlobs, History, Log, RedbHistory, RedbState, SegmentLog,
    SegmentLogOptions, StateStore,
};

pub(crate) fn file_path(url: &str) -> Option<PathBuf> {
    url.strip_prefix("file://")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

fn scheme(url: &str) -> &str {
    url.split_once("://").map_or(url, |(s, _)| s)
}

/// The error for a URL whose backend was left out of this build.
pub fn not_built(url: &str, feature: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{url:?} needs the {feature} backend, which this binary was built without: rebuild with `--features {feature}`"
    )
}

/// The log `url` names; `segment_bytes` sizes the embedded log's
/// segments (what retention drops whole).
pub async fn open_log(
    url: &str,
    durability: Durability,
    segment_bytes: u64,
) -> Result<Arc<dyn Log>> {
    if let Some(dir) = file_path(url) {
        let opts = SegmentLogOptions {
            durability,
            segment_bytes: segment_bytes.max(4096),
            ..Default::default()
        };
        let log =
            SegmentLog::open(&dir, opts).with_context(|| format!("opening the log at {url}"))?;
        return Ok(Arc::new(log));
    }
    match scheme(url) {
        #[cfg(feature = "redis")]
        "redis" | "rediss" => {
            let log = parley_engines::redis::RedisLog::connect(url, REDIS_PREFIX)
                .await
                .with_context(|| format!("connecting to the log at {url}"))?;
            Ok(Arc::new(log))
        }
        #[cfg(feature = "fluvio")]
        "fluvio" => {
            let log = parley_engines::fluvio::FluvioLog::connect(url)
                .await
                .with_context(|| format!("connecting to the log at {url}"))?;
            Ok(Arc::new(log))
        }
        #[cfg(not(feature = "redis"))]
        "redis" | "rediss" => Err(not_built(url, "redis")),
        #[cfg(not(feature = "fluvio"))]
        "fluvio" => Err(not_built(url, "fluvio")),
        other => bail!("unknown log backend {other:?} in {url:?}: use file://DIR, fluvio://HOST:PORT or redis://HOST:PORT"),
    }
}

/// Key prefix of Parley's state in a shared Redis.
pub const REDIS_PREFIX: &str = "parley";

/// How often the embedded state store drops expired idempotency keys.
const IDEM_PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

pub async fn open_state(url: &str) -> Result<Arc<dyn StateStore>> {
    if let Some(path) = file_path(url) {
        let store =
            RedbState::open(&path).with_context(|| format!("opening the state store at {url}"))?;
        // Redis expires idempotency keys itself; the embedded store purges
        // them on this schedule (the resend window is a day).
        store.purge_every(IDEM_PURGE_EVERY);
        return Ok(Arc::new(store));
    }
    match scheme(url) {
        #[cfg(feature = "redis")]
        "redis" | "rediss" => {
            let store = parley_engines::redis::RedisState::connect(url, REDIS_PREFIX)
                .await
                .with_context(|| format!("connecting to the state store at {url}"))?;
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "redis"))]
        "redis" | "rediss" => Err(not_built(url, "redis")),
        other => bail!(
            "unknown state backend {other:?} in {url:?}: use file://PATH or redis://HOST:PORT"
        ),
    }
}

/// The history store. A ClickHouse one creates its schema at its first
/// write, so a role starts even while ClickHouse is down.
pub fn open_history(url: &str) -> Result<Arc<dyn History>> {
    if let Some(path) = file_path(url) {
        let history =
            RedbHistory::open(&path).with_context(|| format!("opening the history at {url}"))?;
        return Ok(Arc::new(history));
    }
    match scheme(url) {
        #[cfg(feature = "clickhouse")]
        "clickhouse" => Ok(Arc::new(open_clickhouse(url)?)),
        #[cfg(not(feature = "clickhouse"))]
        "clickhouse" => Err(not_built(url, "clickhouse")),
        other => bail!(
            "unknown history backend {other:?} in {url:?}: use file://PATH or clickhouse://HOST:PORT/DATABASE"
        ),
    }
}

/// Creates the history's schema up front (`parley migrate`): ClickHouse's
/// tables and views; the embedded history makes its own when opened.
pub async fn migrate_history(url: &str) -> Result<()> {
    #[cfg(feature = "clickhouse")]
    if scheme(url) == "clickhouse" {
        return open_clickhouse(url)?
            .migrate()
            .await
            .with_context(|| format!("creating the history schema at {url}"));
    }
    open_history(url).map(drop)
}

/// The ClickHouse history by itself: `parley migrate` creates its schema,
/// `parley analytics` runs the analysts' queries on its client.
#[cfg(feature = "clickhouse")]
pub fn open_clickhouse(url: &str) -> Result<parley_engines::clickhouse::ClickHouseHistory> {
    parley_engines::clickhouse::ClickHouseHistory::connect(url)
        .with_context(|| format!("the history URL {url}"))
}

/// The media blob store: a directory, or S3 (checked here, reached at
/// first use).
pub fn open_blobs(url: &str) -> Result<Arc<dyn BlobStore>> {
    if let Some(dir) = file_path(url) {
        let blobs =
            FsBlobs::open(&dir).with_context(|| format!("opening the media store at {url}"))?;
        return Ok(Arc::new(blobs));
    }
    match scheme(url) {
        #[cfg(feature = "s3")]
        "s3" => Ok(Arc::new(
            parley_engines::s3::S3Blobs::connect(url)
                .with_context(|| format!("the media URL {url}"))?,
        )),
        #[cfg(not(feature = "s3"))]
        "s3" => Err(not_built(url, "s3")),
        other => bail!(
            "unknown media backend {other:?} in {url:?}: use file://DIR or s3://BUCKET?endpoint=URL"
        ),
    }
}

/// The cluster store of roles run as separate processes: the state's Redis.
pub async fn open_cluster(state_url: &str) -> Result<Arc<dyn Cluster>> {
    match scheme(state_url) {
        #[cfg(feature = "redis")]
        "redis" | "rediss" => {
            let cluster = parley_engines::redis::RedisCluster::connect(state_url, REDIS_PREFIX)
                .await
                .with_context(|| format!("connecting to the cluster store at {state_url}"))?;
            Ok(Arc::new(cluster))
        }
        #[cfg(not(feature = "redis"))]
        "redis" | "rediss" => Err(not_built(state_url, "redis")),
        _ => bail!(
            "roles run as separate processes share their state and leases: use --state redis://HOST:PORT (the embedded store serves `parley up` only)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls_pick_backends_and_bad_ones_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let log_url = format!("file://{}", dir.path().join("log").display());
        assert!(open_log(&log_url, Durability::Fsync, 64 << 20)
            .await
            .is_ok());
        let state_url = format!("file://{}", dir.path().join("s.redb").display());
        assert!(open_state(&state_url).await.is_ok());
        let e = open_log("kafka://x:1", Durability::Fsync, 64 << 20)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("unknown log backend \"kafka\""), "{e}");
        assert!(open_log("file://", Durability::Fsync, 64 << 20)
            .await
            .is_err());
        let e = open_state("memcached://127.0.0.1:1")
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("unknown state backend"), "{e}");
        let history_url = format!("file://{}", dir.path().join("h.redb").display());
        assert!(open_history(&history_url).is_ok());
        let e = open_history("postgres://x").err().unwrap().to_string();
        assert!(e.contains("unknown history backend"), "{e}");
        assert!(open_blobs(&format!("file://{}", dir.path().join("m").display())).is_ok());
        let e = open_blobs("ftp://x").err().unwrap().to_string();
        assert!(e.contains("unknown media backend"), "{e}");
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn redis_urls_open_the_redis_backends() {
        let redis = parley_engines::contract::servers::RedisServer::start();
        assert!(open_state(&redis.url).await.is_ok());
        assert!(open_log(&redis.url, Durability::Fsync, 64 << 20)
            .await
            .is_ok());
        assert!(open_cluster(&redis.url).await.is_ok());
    }

    #[cfg(feature = "s3")]
    #[test]
    fn s3_urls_are_checked_before_connecting() {
        assert!(open_blobs("s3://bucket?endpoint=http://127.0.0.1:1&region=us-east-1").is_ok());
        assert!(open_blobs("s3://?endpoint=http://127.0.0.1:1").is_err());
    }

    #[cfg(feature = "clickhouse")]
    #[test]
    fn clickhouse_urls_are_checked_before_connecting() {
        assert!(open_history("clickhouse://127.0.0.1:1/parley").is_ok());
        let e = open_history("clickhouse://h:1/bad-name").err().unwrap();
        assert!(format!("{e:#}").contains("[A-Za-z0-9_]"), "{e:#}");
    }

    #[cfg(not(feature = "fluvio"))]
    #[tokio::test]
    async fn a_backend_left_out_of_the_build_names_its_feature() {
        let e = open_log("fluvio://127.0.0.1:1", Durability::Fsync, 64 << 20)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("--features fluvio"), "{e}");
    }
}
