//! The state contract against a real redis-server started for the test.

use std::sync::Arc;

use parley_engines::contract::servers::RedisServer;
use parley_engines::contract::{
    cluster_contract, compact_contract, log_contract, state_contract, trim_contract,
};
use parley_engines::redis::{RedisCluster, RedisLog, RedisState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_state_passes_the_state_contract() {
    let server = RedisServer::start();
    let store = RedisState::connect(&server.url, "parley-test")
        .await
        .unwrap();
    state_contract(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_passes_the_cluster_contract() {
    let server = RedisServer::start();
    let cluster = RedisCluster::connect(&server.url, "parley-test")
        .await
        .unwrap();
    cluster_contract(Arc::new(cluster)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_streams_log_passes_the_log_contract() {
    let server = RedisServer::start();
    let log = Arc::new(RedisLog::connect(&server.url, "parley-test").await.unwrap());
    log_contract(log.clone()).await;
    trim_contract(log.clone(), true).await;
    compact_contract(log, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_stream_partition_gets_a_new_epoch_and_forgets_offsets() {
    use bytes::Bytes;
    use parley_engines::{Log, TopicSpec};
    let server = RedisServer::start();
    let log = RedisLog::connect(&server.url, "wipe").await.unwrap();
    log.ensure_topic(&TopicSpec::new("t", 1)).await.unwrap();
    log.append(
        "t",
        0,
        vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
    )
    .await
    .unwrap();
    log.commit("g", "t", 0, 2).await.unwrap();
    let before = log.bounds("t", 0).await.unwrap().epoch;
    let mut con = redis::Client::open(server.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg("wipe:s:t:0")
        .arg("wipe:n:t:0")
        .arg("wipe:e:t:0")
        .query(&mut con)
        .unwrap();
    let after = log.bounds("t", 0).await.unwrap();
    assert_ne!(after.epoch, before);
    assert_eq!((after.start, after.end), (0, 0));
    assert_eq!(log.committed("g", "t", 0).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_wait_for_replicas_when_asked() {
    use bytes::Bytes;
    use parley_engines::{EngineError, Log, TopicSpec};
    let primary = RedisServer::start();
    // Asked for a replica that does not exist: not acknowledged.
    let url = format!("{}?replicas=1&replica_timeout_ms=100", primary.url);
    let log = RedisLog::connect(&url, "w").await.unwrap();
    log.ensure_topic(&TopicSpec::new("t", 1)).await.unwrap();
    let e = log
        .append("t", 0, vec![Bytes::from_static(b"a")])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, EngineError::Unavailable(m) if m.contains("reached 0 of 1 replicas")),
        "{e}"
    );
    // With a replica attached, the same append is acknowledged.
    let port = primary.port.to_string();
    let _replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match log.append("t", 0, vec![Bytes::from_static(b"b")]).await {
            Ok(a) => {
                assert_eq!(a.count, 1);
                break;
            }
            Err(e) => assert!(
                std::time::Instant::now() < deadline,
                "the replica never confirmed: {e}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(parley_engines::redis::log::split_url("redis://h:1/?replicas=x").is_err());
    assert_eq!(
        parley_engines::redis::log::split_url("redis://h:1/?protocol=resp3&replicas=2").unwrap(),
        (
            "redis://h:1/?protocol=resp3".to_owned(),
            Some(parley_engines::redis::log::ReplicaWait {
                replicas: 2,
                timeout_ms: 250
            })
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_stored_before_the_uploader_index_are_indexed_on_connect() {
    use parley_engines::state::JobStore;
    use parley_engines::state::{MediaRecord, MediaStore};
    use parley_engines::StateOp;
    use parley_schemas::ids::UserId;
    use parley_schemas::media::MediaId;
    let server = RedisServer::start();
    let store = RedisState::connect(&server.url, "old").await.unwrap();
    let (user, media) = (UserId(42), MediaId::random());
    store
        .write(vec![StateOp::PutMedia {
            media,
            record: MediaRecord {
                uploader: user,
                sha256: "cd".repeat(32),
                size: 3,
                mime: "image/png".into(),
                uploaded_at: 1_000,
                image: None,
            },
        }])
        .await
        .unwrap();
    // As a store written before the index: no index, no marker.
    let client = redis::Client::open(server.url.as_str()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg("old:up:42")
        .arg("old:up:indexed")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(store.uploads(user, 10).await.unwrap().is_empty());
    let again = RedisState::connect(&server.url, "old").await.unwrap();
    assert_eq!(again.uploads(user, 10).await.unwrap(), vec![media]);
    // Once: the marker stays, and a second connect scans nothing.
    let marked: bool = redis::cmd("EXISTS")
        .arg("old:up:indexed")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(marked);
}
