//! The one place that names concrete engines: a URL picks the backend,
//! everything past here sees only the traits.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use parley_analytics::ClickHouseHistory;
use parley_engines::{
    Cluster, Durability, FluvioLog, History, Log, RedbHistory, RedbState, RedisCluster, RedisLog,
    RedisState, SegmentLog, SegmentLogOptions, StateStore,
};

fn file_path(url: &str) -> Option<PathBuf> {
    url.strip_prefix("file://")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

fn scheme(url: &str) -> &str {
    url.split_once("://").map_or(url, |(s, _)| s)
}

pub async fn open_log(url: &str, durability: Durability) -> Result<Arc<dyn Log>> {
    if let Some(dir) = file_path(url) {
        let opts = SegmentLogOptions {
            durability,
            ..Default::default()
        };
        let log =
            SegmentLog::open(&dir, opts).with_context(|| format!("opening the log at {url}"))?;
        return Ok(Arc::new(log));
    }
    match scheme(url) {
        "redis" | "rediss" => {
            let log = RedisLog::connect(url, REDIS_PREFIX)
                .await
                .with_context(|| format!("connecting to the log at {url}"))?;
            Ok(Arc::new(log))
        }
        "fluvio" => {
            let log = FluvioLog::connect(url)
                .await
                .with_context(|| format!("connecting to the log at {url}"))?;
            Ok(Arc::new(log))
        }
        other => bail!("unknown log backend {other:?} in {url:?}: use file://DIR, fluvio://HOST:PORT or redis://HOST:PORT"),
    }
}

/// Key prefix of Parley's state in a shared Redis.
pub const REDIS_PREFIX: &str = "parley";

pub async fn open_state(url: &str) -> Result<Arc<dyn StateStore>> {
    if let Some(path) = file_path(url) {
        let store =
            RedbState::open(&path).with_context(|| format!("opening the state store at {url}"))?;
        return Ok(Arc::new(store));
    }
    match scheme(url) {
        "redis" | "rediss" => {
            let store = RedisState::connect(url, REDIS_PREFIX)
                .await
                .with_context(|| format!("connecting to the state store at {url}"))?;
            Ok(Arc::new(store))
        }
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
        "clickhouse" => Ok(Arc::new(open_clickhouse(url)?)),
        other => bail!(
            "unknown history backend {other:?} in {url:?}: use file://PATH or clickhouse://HOST:PORT/DATABASE"
        ),
    }
}

pub fn open_clickhouse(url: &str) -> Result<ClickHouseHistory> {
    ClickHouseHistory::connect(url).with_context(|| format!("the history URL {url}"))
}

/// The cluster store of roles run as separate processes: the state's Redis.
pub async fn open_cluster(state_url: &str) -> Result<Arc<dyn Cluster>> {
    match scheme(state_url) {
        "redis" | "rediss" => {
            let cluster = RedisCluster::connect(state_url, REDIS_PREFIX)
                .await
                .with_context(|| format!("connecting to the cluster store at {state_url}"))?;
            Ok(Arc::new(cluster))
        }
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
        assert!(open_log(&log_url, Durability::Fsync).await.is_ok());
        let state_url = format!("file://{}", dir.path().join("s.redb").display());
        assert!(open_state(&state_url).await.is_ok());
        let e = open_log("kafka://x:1", Durability::Fsync)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("unknown log backend \"kafka\""), "{e}");
        assert!(open_log("file://", Durability::Fsync).await.is_err());
        let redis = parley_engines::contract::redis_server::RedisServer::start();
        assert!(open_state(&redis.url).await.is_ok());
        assert!(open_log(&redis.url, Durability::Fsync).await.is_ok());
        let e = open_state("memcached://127.0.0.1:1")
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("unknown state backend"), "{e}");
        let history_url = format!("file://{}", dir.path().join("h.redb").display());
        assert!(open_history(&history_url).is_ok());
        assert!(open_history("clickhouse://127.0.0.1:1/parley").is_ok());
        let e = open_history("postgres://x").err().unwrap().to_string();
        assert!(e.contains("unknown history backend"), "{e}");
        let e = open_history("clickhouse://h:1/bad-name").err().unwrap();
        assert!(format!("{e:#}").contains("[A-Za-z0-9_]"), "{e:#}");
    }
}
