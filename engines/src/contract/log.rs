use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::unique;
use crate::error::EngineError;
use crate::log::{Log, ReadLimit, TopicSpec};

fn payload(i: u64) -> Bytes {
    Bytes::from(format!("record-{i}-{}", "x".repeat((i % 50) as usize)))
}

/// Runs the log contract against `log`.
pub async fn log_contract<L: Log>(log: Arc<L>) {
    topics(&*log).await;
    append_and_read(&*log).await;
    read_limits(&*log).await;
    tail_waits_for_appends(log.clone()).await;
    consumer_offsets(&*log).await;
    concurrent_appends(log.clone()).await;
}

async fn topics<L: Log>(log: &L) {
    let name = unique("contract-topics");
    log.ensure_topic(&TopicSpec::new(&name, 3)).await.unwrap();
    log.ensure_topic(&TopicSpec::new(&name, 3))
        .await
        .expect("ensure_topic is idempotent");
    assert_eq!(log.partitions(&name).await.unwrap(), 3);
    assert!(matches!(
        log.ensure_topic(&TopicSpec::new(&name, 4)).await,
        Err(EngineError::TopicMismatch {
            existing: 3,
            requested: 4,
            ..
        })
    ));
    assert!(matches!(
        log.partitions("no-such-topic-x").await,
        Err(EngineError::UnknownTopic(_))
    ));
    assert!(matches!(
        log.append(&name, 3, vec![Bytes::from_static(b"x")]).await,
        Err(EngineError::UnknownPartition { partition: 3, .. })
    ));
    assert!(matches!(
        log.ensure_topic(&TopicSpec::new("bad/name", 1)).await,
        Err(EngineError::InvalidName(_))
    ));
    let b = log.bounds(&name, 0).await.unwrap();
    assert_eq!((b.start, b.end), (0, 0));
    assert_eq!(
        log.bounds(&name, 0).await.unwrap().epoch,
        b.epoch,
        "epoch is stable"
    );
}

async fn append_and_read<L: Log>(log: &L) {
    let name = unique("contract-rw");
    log.ensure_topic(&TopicSpec::new(&name, 2)).await.unwrap();
    let a = log.append(&name, 0, vec![payload(0)]).await.unwrap();
    assert_eq!((a.first_offset, a.count), (0, 1));
    let b = log
        .append(&name, 0, (1..65).map(payload).collect())
        .await
        .unwrap();
    assert_eq!((b.first_offset, b.count), (1, 64));
    assert_eq!(a.epoch, b.epoch);
    let empty = log.append(&name, 0, vec![]).await.unwrap();
    assert_eq!((empty.first_offset, empty.count), (65, 0));
    // The other partition is independent.
    let other = log
        .append(&name, 1, vec![Bytes::from_static(b"p1")])
        .await
        .unwrap();
    assert_eq!(other.first_offset, 0);

    let bounds = log.bounds(&name, 0).await.unwrap();
    assert_eq!((bounds.start, bounds.end, bounds.epoch), (0, 65, a.epoch));
    let batch = log
        .read(&name, 0, 0, ReadLimit::records(1000))
        .await
        .unwrap();
    assert_eq!(batch.records.len(), 65);
    for (i, r) in batch.records.iter().enumerate() {
        assert_eq!(r.offset, i as u64);
        assert_eq!(r.payload, payload(i as u64), "record {i} byte for byte");
        assert!(r.timestamp > 0);
    }
    assert_eq!(
        (batch.next_offset, batch.end, batch.epoch),
        (65, 65, a.epoch)
    );

    let mid = log.read(&name, 0, 40, ReadLimit::records(5)).await.unwrap();
    assert_eq!(
        mid.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![40, 41, 42, 43, 44]
    );
    assert_eq!(mid.next_offset, 45);

    let at_end = log.read(&name, 0, 65, ReadLimit::default()).await.unwrap();
    assert!(at_end.records.is_empty());
    assert_eq!(at_end.next_offset, 65);
    assert!(matches!(
        log.read(&name, 0, 66, ReadLimit::default()).await,
        Err(EngineError::OffsetOutOfRange {
            requested: 66,
            end: 65,
            ..
        })
    ));
    let p1 = log.read(&name, 1, 0, ReadLimit::default()).await.unwrap();
    assert_eq!(p1.records.len(), 1);
    assert_eq!(&p1.records[0].payload[..], b"p1");

    // A record of 1 MiB goes through whole.
    let big = Bytes::from(vec![0xAB; 1 << 20]);
    let at = log
        .append(&name, 1, vec![big.clone()])
        .await
        .unwrap()
        .first_offset;
    let got = log.read(&name, 1, at, ReadLimit::records(1)).await.unwrap();
    assert_eq!(got.records[0].payload, big);
}

async fn read_limits<L: Log>(log: &L) {
    let name = unique("contract-limits");
    log.ensure_topic(&TopicSpec::new(&name, 1)).await.unwrap();
    let recs: Vec<Bytes> = (0..100).map(|i| Bytes::from(vec![i as u8; 1000])).collect();
    log.append(&name, 0, recs).await.unwrap();
    let small = ReadLimit {
        max_records: 1000,
        max_bytes: 2500,
    };
    let b = log.read(&name, 0, 0, small).await.unwrap();
    assert!(
        (2..=4).contains(&b.records.len()),
        "byte limit, got {}",
        b.records.len()
    );
    let tiny = ReadLimit {
        max_records: 1000,
        max_bytes: 1,
    };
    let b = log.read(&name, 0, 10, tiny).await.unwrap();
    assert_eq!(
        b.records.len(),
        1,
        "at least one record even past max_bytes"
    );
    assert_eq!(b.records[0].payload[0], 10);
    // Paging with next_offset visits every record once.
    let mut from = 0;
    let mut seen = 0;
    while from < 100 {
        let b = log
            .read(&name, 0, from, ReadLimit::records(7))
            .await
            .unwrap();
        for r in &b.records {
            assert_eq!(r.offset, from + (r.offset - from));
            assert_eq!(r.payload[0], r.offset as u8);
        }
        seen += b.records.len();
        from = b.next_offset;
    }
    assert_eq!(seen, 100);
}

async fn tail_waits_for_appends<L: Log>(log: Arc<L>) {
    let name = unique("contract-tail");
    log.ensure_topic(&TopicSpec::new(&name, 1)).await.unwrap();
    log.append(&name, 0, vec![payload(0)]).await.unwrap();
    // Data already there: tail returns at once.
    let b = log.tail(&name, 0, 0, ReadLimit::default()).await.unwrap();
    assert_eq!(b.records.len(), 1);

    let waiter = {
        let (log, name) = (log.clone(), name.clone());
        tokio::spawn(async move { log.tail(&name, 0, 1, ReadLimit::default()).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "tail returned with nothing to read");
    log.append(&name, 0, vec![payload(1), payload(2)])
        .await
        .unwrap();
    let b = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("tail woke up")
        .unwrap()
        .unwrap();
    assert_eq!(b.records[0].offset, 1);
    assert_eq!(b.records[0].payload, payload(1));

    // A dropped tail leaves nothing behind that blocks later appends.
    let dropped = tokio::time::timeout(
        Duration::from_millis(20),
        log.tail(&name, 0, 3, ReadLimit::default()),
    )
    .await;
    assert!(dropped.is_err());
    log.append(&name, 0, vec![payload(3)]).await.unwrap();
    let b = log.tail(&name, 0, 3, ReadLimit::default()).await.unwrap();
    assert_eq!(b.records[0].payload, payload(3));
}

async fn consumer_offsets<L: Log>(log: &L) {
    let name = unique("contract-groups");
    let (g1, g2) = (unique("g1"), unique("g2"));
    log.ensure_topic(&TopicSpec::new(&name, 2)).await.unwrap();
    log.append(&name, 0, (0..10).map(payload).collect())
        .await
        .unwrap();
    assert_eq!(log.committed(&g1, &name, 0).await.unwrap(), None);
    log.commit(&g1, &name, 0, 4).await.unwrap();
    log.commit(&g2, &name, 0, 9).await.unwrap();
    assert_eq!(log.committed(&g1, &name, 0).await.unwrap(), Some(4));
    assert_eq!(log.committed(&g2, &name, 0).await.unwrap(), Some(9));
    assert_eq!(
        log.committed(&g1, &name, 1).await.unwrap(),
        None,
        "per partition"
    );
    log.commit(&g1, &name, 0, 10).await.unwrap();
    assert_eq!(log.committed(&g1, &name, 0).await.unwrap(), Some(10));
    assert!(
        log.commit(&g1, &name, 0, 11).await.is_err(),
        "commit past the end"
    );
}

async fn concurrent_appends<L: Log>(log: Arc<L>) {
    let name = unique("contract-concurrent");
    log.ensure_topic(&TopicSpec::new(&name, 1)).await.unwrap();
    let tasks: Vec<_> = (0..32u64)
        .map(|t| {
            let (log, name) = (log.clone(), name.clone());
            tokio::spawn(async move {
                let mut offsets = Vec::new();
                for i in 0..25u64 {
                    let p = Bytes::from(format!("t{t}-{i}"));
                    let a = log.append(&name, 0, vec![p.clone()]).await.unwrap();
                    offsets.push((a.first_offset, p));
                }
                offsets
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_by_key(|(o, _)| *o);
    assert_eq!(
        all.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        (0..800).collect::<Vec<_>>()
    );
    let mut from = 0;
    while from < 800 {
        let b = log
            .read(&name, 0, from, ReadLimit::default())
            .await
            .unwrap();
        for r in &b.records {
            assert_eq!(
                r.payload, all[r.offset as usize].1,
                "each ack names its own record"
            );
        }
        from = b.next_offset;
    }
}

/// [`Log::trim`]: nothing at or above `below` is ever dropped, nothing
/// newer than `older_than`, and reads below the new start are out of
/// range. `drops`: whether this backend is expected to drop anything of
/// 300 small records (logs that trim whole large segments, or leave
/// retention to their server, keep them).
pub async fn trim_contract<L: Log>(log: Arc<L>, drops: bool) {
    let name = unique("contract-trim");
    log.ensure_topic(&TopicSpec::new(&name, 1)).await.unwrap();
    for chunk in 0..30 {
        let batch = (0..10).map(|i| payload(chunk * 10 + i)).collect();
        log.append(&name, 0, batch).await.unwrap();
    }
    // Nothing was appended before time 0: nothing goes.
    assert_eq!(log.trim(&name, 0, 200, 0).await.unwrap(), 0);
    let now = parley_schemas::ids::now_ms() + 1;
    let start = log.trim(&name, 0, 200, now).await.unwrap();
    assert!(start <= 200, "trimmed past `below`: {start}");
    assert_eq!(log.bounds(&name, 0).await.unwrap().start, start);
    assert_eq!(drops, start > 0, "start after trimming: {start}");
    // Everything from `below` on is still there, in order.
    let batch = log
        .read(&name, 0, 200, ReadLimit::records(1000))
        .await
        .unwrap();
    let offsets: Vec<u64> = batch.records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (200..300).collect::<Vec<_>>());
    assert_eq!(batch.records[0].payload, payload(200));
    if start > 0 {
        assert!(matches!(
            log.read(&name, 0, 0, ReadLimit::records(10)).await,
            Err(EngineError::OffsetOutOfRange { .. })
        ));
    }
    // Trimming again, or below the start, changes nothing; appends go on.
    assert_eq!(log.trim(&name, 0, 100, now).await.unwrap(), start);
    let a = log.append(&name, 0, vec![payload(300)]).await.unwrap();
    assert_eq!(a.first_offset, 300);
}

/// [`Log::compact`]: the records named go (all of them, or none where the
/// log cannot, as `drops` says; the embedded log keeps some), every other
/// keeps its offset and payload, reads step over the gaps, and appends go
/// on after the end.
pub async fn compact_contract<L: Log>(log: Arc<L>, drops: bool) {
    let name = unique("contract-compact");
    log.ensure_topic(&TopicSpec::new(&name, 1)).await.unwrap();
    for chunk in 0..30 {
        let batch = (0..10).map(|i| payload(chunk * 10 + i)).collect();
        log.append(&name, 0, batch).await.unwrap();
    }
    let doomed: std::collections::BTreeSet<u64> = (1..250).filter(|o| o % 3 != 0).collect();
    let dropped = log.compact(&name, 0, doomed.clone()).await.unwrap();
    assert_eq!(drops, dropped > 0, "dropped {dropped}");

    let all = log
        .read(&name, 0, 0, ReadLimit::records(1000))
        .await
        .unwrap();
    assert_eq!(all.next_offset, 300);
    for r in &all.records {
        assert_eq!(r.payload, payload(r.offset), "offset {}", r.offset);
    }
    let offsets: Vec<u64> = all.records.iter().map(|r| r.offset).collect();
    let kept: Vec<u64> = (0..300).filter(|o| !doomed.contains(o)).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "in order");
    assert!(
        kept.iter().all(|o| offsets.contains(o)),
        "kept what was not named"
    );
    assert_eq!(
        offsets.len() as u64,
        300 - dropped,
        "dropped as many as it says"
    );
    // Reading from a gap starts at the next record there is.
    let gap = (1..250).find(|o| !offsets.contains(o));
    if let Some(gap) = gap {
        let b = log
            .read(&name, 0, gap, ReadLimit::records(1))
            .await
            .unwrap();
        assert!(b.records[0].offset > gap);
        assert_eq!(b.records[0].payload, payload(b.records[0].offset));
    }
    // Again: nothing more to drop of what was dropped; appends go on.
    let again = log.compact(&name, 0, doomed).await.unwrap();
    assert!(again <= doomed_left(&offsets), "{again}");
    let a = log.append(&name, 0, vec![payload(300)]).await.unwrap();
    assert_eq!(a.first_offset, 300);
}

/// Named offsets in 1..250 still present (a log that keeps some may drop
/// none of them a second time, or, where it keeps them for good, none).
fn doomed_left(offsets: &[u64]) -> u64 {
    offsets
        .iter()
        .filter(|&&o| (1..250).contains(&o) && o % 3 != 0)
        .count() as u64
}
