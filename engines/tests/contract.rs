//! The contract suites against the embedded engines.

use std::sync::Arc;

use parley_engines::contract::{
    blob_contract, cluster_contract, compact_contract, history_contract, log_contract,
    state_contract, trim_contract,
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
    trim_contract(log.clone(), false).await;
    compact_contract(log, false).await;
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
    trim_contract(log.clone(), true).await;
    compact_contract(log, true).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_segment_log_reopens_the_same_with_or_without_its_indexes() {
    use parley_engines::{Log, ReadLimit, TopicSpec};
    let dir = tempfile::tempdir().unwrap();
    let opts = SegmentLogOptions {
        segment_bytes: 2048,
        index_interval: 256,
        ..Default::default()
    };
    let read_all = |log: SegmentLog| async move {
        let b = log.read("t", 0, 0, ReadLimit::records(1000)).await.unwrap();
        b.records
            .into_iter()
            .map(|r| (r.offset, r.payload))
            .collect::<Vec<_>>()
    };
    let log = SegmentLog::open(dir.path(), opts).unwrap();
    log.ensure_topic(&TopicSpec::new("t", 1)).await.unwrap();
    for i in 0..200u64 {
        let p = bytes::Bytes::from(format!("record {i} {}", "x".repeat(i as usize % 40)));
        log.append("t", 0, vec![p]).await.unwrap();
    }
    let doomed = (0..190).filter(|o| o % 4 != 1).collect();
    assert!(log.compact("t", 0, doomed).await.unwrap() > 100);
    let before = read_all(log).await;
    assert!(before.len() < 100, "{}", before.len());

    // Reopened: the indexes written by compaction are used.
    let log = SegmentLog::open(dir.path(), opts).unwrap();
    let end = log.append("t", 0, vec!["after".into()]).await.unwrap();
    assert_eq!(end.first_offset, 200);
    let mut again = read_all(log).await;
    assert_eq!(again.pop().unwrap().0, 200);
    assert_eq!(again, before);

    // Without them, every sealed segment is scanned, gaps and all.
    let mut removed = 0;
    for e in std::fs::read_dir(dir.path().join("topics").join("t").join("0")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "idx") {
            std::fs::remove_file(p).unwrap();
            removed += 1;
        }
    }
    assert!(removed > 3, "{removed}");
    let log = SegmentLog::open(dir.path(), opts).unwrap();
    let mut scanned = read_all(log).await;
    assert_eq!(scanned.pop().unwrap().0, 200);
    assert_eq!(scanned, before);
}
