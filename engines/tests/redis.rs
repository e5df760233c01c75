//! The state contract against a real redis-server started for the test.

use std::sync::Arc;

use parley_engines::contract::redis_server::RedisServer;
use parley_engines::contract::{cluster_contract, log_contract, state_contract};
use parley_engines::{RedisCluster, RedisLog, RedisState};

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
    let log = RedisLog::connect(&server.url, "parley-test").await.unwrap();
    log_contract(Arc::new(log)).await;
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
