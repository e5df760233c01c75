//! The job loop's batching: a processor that asks to linger gets a steady
//! stream of records in few batches, and a lone record without waiting
//! for the whole `max`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use parley_engines::job::{run_job, JobSpec, Linger, Processor};
use parley_engines::{
    Log, Record, RedbState, Result, SegmentLog, SegmentLogOptions, StateOp, TopicSpec,
};
use tokio_util::sync::CancellationToken;

/// Records each batch's size and when it was handed over.
struct Batches {
    seen: Arc<Mutex<Vec<(usize, Instant)>>>,
    linger: Linger,
}

#[async_trait]
impl Processor for Batches {
    async fn process(&mut self, _partition: u32, records: &[Record]) -> Result<Vec<StateOp>> {
        self.seen
            .lock()
            .unwrap()
            .push((records.len(), Instant::now()));
        Ok(Vec::new())
    }

    fn linger(&self, _first: &[Record]) -> Option<Linger> {
        Some(self.linger)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lingering_collects_a_stream_and_lets_a_lone_record_go() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn Log> =
        Arc::new(SegmentLog::open(dir.path().join("log"), SegmentLogOptions::default()).unwrap());
    let state = Arc::new(RedbState::open(dir.path().join("s.redb")).unwrap());
    log.ensure_topic(&TopicSpec::new("t", 1)).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let linger = Linger {
        max: Duration::from_millis(600),
        idle: Duration::from_millis(100),
    };
    let job = Batches {
        seen: seen.clone(),
        linger,
    };
    let spec = JobSpec {
        job: "j".into(),
        topic: "t".into(),
        partition: 0,
        batch: 1000,
        linger: Duration::ZERO,
        caught_up: None,
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_job(log.clone(), state, spec, job, stop.clone()));
    let one = || vec![Bytes::from_static(b"r")];

    // A lone record is handed over after `idle`, well before `max`.
    let sent = Instant::now();
    log.append("t", 0, one()).await.unwrap();
    while seen.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (n, at) = seen.lock().unwrap()[0];
    assert_eq!(n, 1);
    let waited = at - sent;
    assert!(
        waited >= linger.idle && waited < linger.max,
        "a lone record waited {waited:?}"
    );

    // Twenty records 10 ms apart (closer than `idle`): one or two batches,
    // not twenty.
    for _ in 0..20 {
        log.append("t", 0, one()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(linger.max).await;
    let batches: Vec<usize> = seen.lock().unwrap()[1..].iter().map(|(n, _)| *n).collect();
    assert_eq!(batches.iter().sum::<usize>(), 20);
    assert!(batches.len() <= 4, "a stream in few batches: {batches:?}");
    stop.cancel();
    task.await.unwrap();
}

/// Counts its attempts; fails the batch when a record does not decode.
struct Decoding {
    attempts: Arc<tokio::sync::Notify>,
    seen: Arc<Mutex<Vec<u64>>>,
}

#[async_trait]
impl Processor for Decoding {
    async fn process(&mut self, partition: u32, records: &[Record]) -> Result<Vec<StateOp>> {
        self.attempts.notify_one();
        let events = parley_engines::job::events("t", partition, records)?;
        self.seen
            .lock()
            .unwrap()
            .extend(events.into_iter().map(|(offset, _)| offset));
        Ok(Vec::new())
    }
}

/// A record of a newer build (an envelope version this one does not
/// know) stops the partition there, retried and counted, and is never
/// skipped: the record after it is not processed either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_does_not_decode_stops_the_partition_and_is_never_skipped() {
    use parley_engines::state::JobStore;
    use parley_schemas::codec;
    use parley_schemas::event::{Event, Heartbeat};
    use parley_schemas::ids::{DeviceId, UserId};

    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn Log> =
        Arc::new(SegmentLog::open(dir.path().join("log"), SegmentLogOptions::default()).unwrap());
    let state = Arc::new(RedbState::open(dir.path().join("s.redb")).unwrap());
    log.ensure_topic(&TopicSpec::new("t", 1)).await.unwrap();
    let beat = |ts| {
        Bytes::from(codec::encode(&Event::Heartbeat(Heartbeat {
            user: UserId(1),
            device: DeviceId(1),
            active: true,
            closing: false,
            ts,
        })))
    };
    let mut newer = codec::encode(&Event::Heartbeat(Heartbeat {
        user: UserId(1),
        device: DeviceId(1),
        active: true,
        closing: false,
        ts: 2,
    }));
    newer[1] = codec::VERSION + 1;
    log.append("t", 0, vec![beat(1)]).await.unwrap();
    let attempts = Arc::new(tokio::sync::Notify::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let job = Decoding {
        attempts: attempts.clone(),
        seen: seen.clone(),
    };
    let spec = JobSpec {
        job: "j".into(),
        topic: "t".into(),
        partition: 0,
        batch: 1,
        linger: Duration::ZERO,
        caught_up: None,
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_job(log.clone(), state.clone(), spec, job, stop.clone()));
    attempts.notified().await;
    log.append("t", 0, vec![Bytes::from(newer), beat(3)])
        .await
        .unwrap();
    // The first record, then the newer one tried again and again (with
    // backoff) while the partition waits.
    for _ in 0..4 {
        attempts.notified().await;
    }
    assert_eq!(*seen.lock().unwrap(), vec![0], "nothing past the record");
    assert_eq!(state.job_offset("j", 0).await.unwrap(), Some(1));
    stop.cancel();
    task.await.unwrap();
}
