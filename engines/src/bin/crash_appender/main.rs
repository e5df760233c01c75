//! Child process of the SIGKILL crash test: opens the log at `argv[1]`,
//! appends self-checking records in a loop from several tasks, and prints
//! `ack <offset> <count>` for every acknowledged batch. The parent kills it
//! at random moments and checks the log after each reopen.

use std::io::Write;
use std::sync::Arc;

mod record;

use bytes::Bytes;
use parley_engines::{Log, SegmentLog, SegmentLogOptions, TopicSpec};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let root = args.next().expect("usage: parley-crash-appender DIR SEED");
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let opts = SegmentLogOptions {
        segment_bytes: 256 << 10,
        ..Default::default()
    };
    let log = Arc::new(SegmentLog::open(&root, opts).expect("open log"));
    log.ensure_topic(&TopicSpec::new("crash", 1))
        .await
        .expect("topic");
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let tasks: Vec<_> = (0..4u64)
        .map(|t| {
            let (log, out) = (log.clone(), out.clone());
            tokio::spawn(async move {
                for i in 0u64.. {
                    let n = 1 + (i % 5) as usize;
                    let base = (seed << 40) | (t << 32) | (i << 3);
                    let batch: Vec<Bytes> =
                        (0..n as u64).map(|k| record::record(base + k)).collect();
                    let a = log.append("crash", 0, batch).await.expect("append");
                    let mut o = out.lock().unwrap();
                    writeln!(o, "ack {} {} {}", a.first_offset, a.count, base).unwrap();
                    o.flush().unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}
