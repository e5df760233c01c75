//! What only the embedded segment log can be asked: recovery from damaged
//! files, epochs across a wipe, retention, and the cost of a read.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use parley_engines::{
    EngineError, Log, ReadLimit, Retention, SegmentLog, SegmentLogOptions, TopicSpec,
};

fn segments(root: &Path, topic: &str, p: u32) -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(root.join("topics").join(topic).join(p.to_string()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

fn rec(i: u64) -> Bytes {
    Bytes::from(format!("rec-{i:06}-{}", "y".repeat(100)))
}

async fn fill(log: &SegmentLog, topic: &str, n: u64) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        log.append(topic, 0, chunk.iter().copied().map(rec).collect())
            .await
            .unwrap();
    }
}

/// A log with topic `t` of one partition holding records `0..n`, closed again.
async fn filled(dir: &Path, opts: SegmentLogOptions, n: u64) {
    let log = SegmentLog::open(dir, opts).unwrap();
    log.ensure_topic(&TopicSpec::new("t", 1)).await.unwrap();
    fill(&log, "t", n).await;
}

async fn all(log: &SegmentLog, topic: &str) -> Vec<Bytes> {
    let b = log.bounds(topic, 0).await.unwrap();
    let mut out = Vec::new();
    let mut from = b.start;
    while from < b.end {
        let batch = log
            .read(topic, 0, from, ReadLimit::default())
            .await
            .unwrap();
        out.extend(batch.records.into_iter().map(|r| r.payload));
        from = batch.next_offset;
    }
    out
}

#[tokio::test]
async fn data_and_offsets_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SegmentLogOptions {
        segment_bytes: 4096,
        ..Default::default()
    };
    let epoch = {
        let log = SegmentLog::open(dir.path(), opts).unwrap();
        log.ensure_topic(&TopicSpec::new("t", 2)).await.unwrap();
        fill(&log, "t", 300).await;
        log.commit("g", "t", 0, 120).await.unwrap();
        log.bounds("t", 0).await.unwrap().epoch
    };
    assert!(
        segments(dir.path(), "t", 0).len() >= 4,
        "the test spans many segments"
    );
    let log = SegmentLog::open(dir.path(), opts).unwrap();
    assert_eq!(log.partitions("t").await.unwrap(), 2);
    let b = log.bounds("t", 0).await.unwrap();
    assert_eq!((b.start, b.end, b.epoch), (0, 300, epoch));
    assert_eq!(all(&log, "t").await, (0..300).map(rec).collect::<Vec<_>>());
    assert_eq!(log.committed("g", "t", 0).await.unwrap(), Some(120));
    assert_eq!(
        log.append("t", 0, vec![rec(300)])
            .await
            .unwrap()
            .first_offset,
        300
    );
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SegmentLogOptions::default();
    filled(dir.path(), opts, 50).await;
    let seg = segments(dir.path(), "t", 0).pop().unwrap();
    let good_len = fs::metadata(&seg).unwrap().len();
    // Half a frame header and some payload, as a crash mid-write leaves it.
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[0x30, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 50, 0, 0])
        .unwrap();
    drop(f);

    let log = SegmentLog::open(dir.path(), opts).unwrap();
    assert_eq!(
        fs::metadata(&seg).unwrap().len(),
        good_len,
        "torn bytes truncated"
    );
    assert_eq!(log.bounds("t", 0).await.unwrap().end, 50);
    assert_eq!(
        log.append("t", 0, vec![rec(50)])
            .await
            .unwrap()
            .first_offset,
        50
    );
    assert_eq!(all(&log, "t").await, (0..51).map(rec).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_damaged_last_record_is_dropped_not_returned() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SegmentLogOptions::default();
    filled(dir.path(), opts, 10).await;
    let seg = segments(dir.path(), "t", 0).pop().unwrap();
    let mut data = fs::read(&seg).unwrap();
    let n = data.len();
    data[n - 3] ^= 0xff; // inside the payload of record 9
    fs::write(&seg, &data).unwrap();
    let log = SegmentLog::open(dir.path(), opts).unwrap();
    assert_eq!(all(&log, "t").await, (0..9).map(rec).collect::<Vec<_>>());
}

#[tokio::test]
async fn damage_inside_a_sealed_segment_is_an_error_not_a_silent_loss() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SegmentLogOptions {
        segment_bytes: 2048,
        ..Default::default()
    };
    filled(dir.path(), opts, 100).await;
    let first = segments(dir.path(), "t", 0).remove(0);
    let mut data = fs::read(&first).unwrap();
    data[40] ^= 0xff;
    fs::write(&first, &data).unwrap();
    // The saved index still opens it; the read finds the damage.
    let log = SegmentLog::open(dir.path(), opts).unwrap();
    let err = log.read("t", 0, 0, ReadLimit::default()).await.unwrap_err();
    assert!(matches!(err, EngineError::Corrupt { .. }), "{err}");
    // Without the index, opening it is refused outright.
    drop(log);
    fs::remove_file(first.with_extension("idx")).unwrap();
    assert!(matches!(
        SegmentLog::open(dir.path(), opts),
        Err(EngineError::Corrupt { .. })
    ));
}

#[tokio::test]
async fn a_wiped_partition_gets_a_new_epoch_and_forgets_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SegmentLogOptions::default();
    let before = {
        let log = SegmentLog::open(dir.path(), opts).unwrap();
        log.ensure_topic(&TopicSpec::new("t", 1)).await.unwrap();
        fill(&log, "t", 20).await;
        log.commit("g", "t", 0, 20).await.unwrap();
        log.bounds("t", 0).await.unwrap().epoch
    };
    fs::remove_dir_all(dir.path().join("topics/t/0")).unwrap();
    let log = SegmentLog::open(dir.path(), opts).unwrap();
    let after = log.bounds("t", 0).await.unwrap();
    assert_ne!(
        after.epoch, before,
        "a consumer can tell the partition was recreated"
    );
    assert_eq!((after.start, after.end), (0, 0));
    assert_eq!(
        log.committed("g", "t", 0).await.unwrap(),
        None,
        "old offset is void"
    );
}

#[tokio::test]
async fn retention_by_size_drops_whole_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SegmentLogOptions {
        segment_bytes: 4096,
        ..Default::default()
    };
    let log = SegmentLog::open(dir.path(), opts).unwrap();
    let spec = TopicSpec::new("t", 1).with_retention(Retention {
        max_bytes: Some(16 << 10),
        max_age: None,
    });
    log.ensure_topic(&spec).await.unwrap();
    fill(&log, "t", 1000).await;
    let b = log.bounds("t", 0).await.unwrap();
    assert_eq!(b.end, 1000);
    assert!(b.start > 0, "old segments dropped");
    let kept: u64 = segments(dir.path(), "t", 0)
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert!(kept <= (16 << 10) + 2 * 4096 + 200, "kept {kept} bytes");
    // What is kept is intact; what is gone is an explicit error.
    assert_eq!(
        all(&log, "t").await,
        (b.start..1000).map(rec).collect::<Vec<_>>()
    );
    assert!(matches!(
        log.read("t", 0, 0, ReadLimit::default()).await,
        Err(EngineError::OffsetOutOfRange { start, .. }) if start == b.start
    ));
    // Reopening finds the same bounds.
    drop(log);
    let log = SegmentLog::open(dir.path(), opts).unwrap();
    assert_eq!(log.bounds("t", 0).await.unwrap().start, b.start);
}

#[tokio::test]
async fn retention_by_age_drops_old_segments_on_roll() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SegmentLogOptions {
        segment_bytes: 4096,
        ..Default::default()
    };
    let log = SegmentLog::open(dir.path(), opts).unwrap();
    let spec = TopicSpec::new("t", 1).with_retention(Retention {
        max_bytes: None,
        max_age: Some(Duration::from_millis(100)),
    });
    log.ensure_topic(&spec).await.unwrap();
    fill(&log, "t", 200).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    // The next roll finds every sealed segment older than the limit.
    fill(&log, "t", 200).await;
    // Segments roll between batches of 64, so the one holding 192..199 also
    // took new records and stays; every segment of only old records goes.
    let b = log.bounds("t", 0).await.unwrap();
    assert_eq!(b.start, 192, "segments older than 100 ms dropped");
}

#[tokio::test]
async fn a_read_costs_what_it_returns_not_the_partition() {
    let dir = tempfile::tempdir().unwrap();
    let log = SegmentLog::open(dir.path(), SegmentLogOptions::default()).unwrap();
    log.ensure_topic(&TopicSpec::new("t", 1)).await.unwrap();
    fill(&log, "t", 100_000).await;
    let before = log.records_scanned("t", 0).unwrap();
    let b = log
        .read("t", 0, 99_990, ReadLimit::default())
        .await
        .unwrap();
    assert_eq!(b.records.len(), 10);
    let scanned = log.records_scanned("t", 0).unwrap() - before;
    // The sparse index lands within 4 KiB (~30 records) of the offset.
    assert!(scanned <= 10 + 40, "read 10 records by decoding {scanned}");
    let before = log.records_scanned("t", 0).unwrap();
    log.read("t", 0, 50_000, ReadLimit::records(5))
        .await
        .unwrap();
    assert!(log.records_scanned("t", 0).unwrap() - before <= 5 + 40);
}

#[tokio::test]
async fn oversized_records_and_bad_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SegmentLogOptions {
        max_record_bytes: 1024,
        ..Default::default()
    };
    let log = SegmentLog::open(dir.path(), opts).unwrap();
    log.ensure_topic(&TopicSpec::new("t", 1)).await.unwrap();
    let err = log
        .append("t", 0, vec![Bytes::from(vec![0; 1025])])
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        EngineError::RecordTooLarge {
            size: 1025,
            limit: 1024
        }
    ));
    assert_eq!(log.bounds("t", 0).await.unwrap().end, 0, "nothing appended");
    for bad in ["", "..", "a b", "x/y", &"n".repeat(129)] {
        assert!(
            log.ensure_topic(&TopicSpec::new(bad, 1)).await.is_err(),
            "{bad:?}"
        );
    }
    assert!(log.commit("../escape", "t", 0, 0).await.is_err());
}
