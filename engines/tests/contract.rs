//! The contract suites against the embedded engines.

use std::sync::Arc;

use parley_engines::contract::{
    blob_contract, cluster_contract, history_contract, log_contract, state_contract, trim_contract,
};
use parley_engines::{
    FsBlobs, LocalCluster, RedbHistory, RedbState, SegmentLog, SegmentLogOptions,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_cluster_passes_the_cluster_contract() {
    cluster_contract(Arc::new(LocalCluster::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_log_passes_the_log_contract() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(SegmentLog::open(dir.path(), SegmentLogOptions::default()).unwrap());
    log_contract(log.clone()).await;
    // 300 small records fit the first 64 MiB segment: nothing to drop.
    trim_contract(log, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_log_with_tiny_segments_passes_the_log_contract() {
    // Small segments and a dense index put segment boundaries and index
    // look-ups under every read of the suite.
    let dir = tempfile::tempdir().unwrap();
    let opts = SegmentLogOptions {
        segment_bytes: 2048,
        index_interval: 256,
        read_chunk: 1024,
        ..Default::default()
    };
    let log = Arc::new(SegmentLog::open(dir.path(), opts).unwrap());
    log_contract(log.clone()).await;
    trim_contract(log, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_state_passes_the_state_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbState::open(dir.path().join("state.redb")).unwrap();
    state_contract(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_history_passes_the_history_contract() {
    let dir = tempfile::tempdir().unwrap();
    let history = RedbHistory::open(dir.path().join("history.redb")).unwrap();
    history_contract(Arc::new(history)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_blobs_pass_the_blob_contract() {
    let dir = tempfile::tempdir().unwrap();
    blob_contract(&FsBlobs::open(dir.path()).unwrap()).await;
    // Nothing a writer left behind stays in the temp dir.
    let tmp = std::fs::read_dir(dir.path().join("Tmp")).unwrap().count();
    assert_eq!(tmp, 0);
}
