//! Log retention on the embedded engines: records stay until the slowest
//! consumer of their topic has passed them and they are old enough.

use std::sync::Arc;

use bytes::Bytes;
use parley_engines::state::JobStore;
use parley_engines::{Log, RedbState, SegmentLog, SegmentLogOptions, TopicSpec};
use parley_processors::retention::{consumers, LogRetention, RetentionConfig};
use parley_schemas::{jobs, topics};

async fn offset_of(state: &RedbState, job: &str, to: u64) {
    let prev = state.job_offset(job, 0).await.unwrap();
    state.apply(job, 0, prev, to, vec![]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_go_once_the_slowest_consumer_passed_them_and_they_are_old_enough() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SegmentLogOptions {
        segment_bytes: 1024,
        ..Default::default()
    };
    let log = Arc::new(SegmentLog::open(dir.path().join("log"), opts).unwrap());
    let state = Arc::new(RedbState::open(dir.path().join("state.redb")).unwrap());
    for topic in [
        topics::EVENTS,
        topics::PRESENCE,
        topics::INBOX,
        topics::NOTIFY_DEAD,
        topics::MODERATION,
    ] {
        log.ensure_topic(&TopicSpec::new(topic, 1)).await.unwrap();
        for _ in 0..30 {
            let batch = (0..10).map(|_| Bytes::from(vec![b'x'; 40])).collect();
            log.append(topic, 0, batch).await.unwrap();
        }
    }
    let history =
        Arc::new(parley_engines::RedbHistory::open(dir.path().join("history.redb")).unwrap());
    let retention = |log_hours| LogRetention {
        log: log.clone(),
        history: history.clone(),
        state: state.clone(),
        partitions: 1,
        topics: consumers(false),
        cfg: RetentionConfig {
            log_hours,
            ..Default::default()
        },
        disk: None,
    };
    let start = |topic: &'static str| {
        let log = log.clone();
        async move { log.bounds(topic, 0).await.unwrap().start }
    };

    // The router is far ahead, the history writer behind: the history
    // writer decides. Nothing is an hour old yet.
    offset_of(&state, jobs::ROUTER, 250).await;
    offset_of(&state, jobs::HISTORY, 40).await;
    assert_eq!(retention(1.0).pass().await.unwrap(), 0);
    assert_eq!(start(topics::EVENTS).await, 0);

    retention(0.0).pass().await.unwrap();
    let events = start(topics::EVENTS).await;
    assert!(events > 0 && events <= 40, "events start {events}");
    // No consumer of `presence` ran: all of it stays. `inbox`'s sequencer
    // did not either. `notify-dead` has no consumers: by age alone.
    assert_eq!(start(topics::PRESENCE).await, 0);
    assert_eq!(start(topics::INBOX).await, 0);
    assert!(start(topics::NOTIFY_DEAD).await > 0);
    assert!(start(topics::MODERATION).await > 0);

    // The history writer catches up: more goes, never past the router.
    offset_of(&state, jobs::HISTORY, 280).await;
    retention(0.0).pass().await.unwrap();
    let later = start(topics::EVENTS).await;
    assert!(later > events && later <= 250, "events start {later}");
    // What the slowest consumer reads next is there.
    let batch = log
        .read(
            topics::EVENTS,
            0,
            250,
            parley_engines::ReadLimit::records(100),
        )
        .await
        .unwrap();
    assert_eq!(batch.records[0].offset, 250);
}
