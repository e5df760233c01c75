//! The embedded log on a full disk (a size-limited tmpfs, mounted by the
//! test as root): appends fail with a retryable error and the log says it
//! is unhealthy; once space returns the partition mends itself and takes
//! appends again, and what it holds is exactly what was acknowledged.

use std::time::{Duration, Instant};

use bytes::Bytes;
use parley_engines::contract::servers::Tmpfs;
use parley_engines::{Log, ReadLimit, Retry, SegmentLog, SegmentLogOptions, TopicSpec};

async fn read_all(log: &SegmentLog) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let b = log.read("t", 0, at, ReadLimit::default()).await.unwrap();
        if b.records.is_empty() {
            return out;
        }
        at = b.next_offset;
        out.extend(b.records.into_iter().map(|r| r.payload));
    }
}

fn rec(i: u64) -> Bytes {
    Bytes::from(format!("{i:08}-{}", "z".repeat(1000)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_appends_then_mends_when_space_returns() {
    let Some(disk) = Tmpfs::mount(256) else {
        println!("skipped: mounting a tmpfs needs root");
        return;
    };
    let log = SegmentLog::open(&disk.path, SegmentLogOptions::default()).unwrap();
    log.ensure_topic(&TopicSpec::new("t", 1)).await.unwrap();
    let mut acked = Vec::new();
    let error = loop {
        let i = acked.len() as u64;
        match log.append("t", 0, vec![rec(i)]).await {
            Ok(a) => {
                assert_eq!(a.first_offset, i);
                acked.push(rec(i));
            }
            Err(e) => break e,
        }
        assert!(acked.len() < 10_000, "the disk never filled");
    };
    assert_eq!(error.retry(), Retry::Later, "{error}");
    assert!(log.healthy().is_err());
    // Still full: still refused, and nothing is half-written meanwhile.
    assert!(log.append("t", 0, vec![rec(99_999)]).await.is_err());

    disk.resize(4096);
    // The partition mends within a second or so, on an append or idle.
    let deadline = Instant::now() + Duration::from_secs(10);
    let next = acked.len() as u64;
    loop {
        match log.append("t", 0, vec![rec(next)]).await {
            Ok(a) => {
                assert_eq!(a.first_offset, next, "offsets go on from the last ack");
                acked.push(rec(next));
                break;
            }
            Err(e) => assert_eq!(e.retry(), Retry::Later, "{e}"),
        }
        assert!(Instant::now() < deadline, "never mended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(log.healthy().is_ok());

    // Exactly the acknowledged records, in order, now and after a reopen.
    assert_eq!(read_all(&log).await, acked);
    drop(log);
    let log = SegmentLog::open(&disk.path, SegmentLogOptions::default()).unwrap();
    assert_eq!(read_all(&log).await, acked);
}
